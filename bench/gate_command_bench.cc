// `turnstile gate` end to end, in-process: parse each JSON line, validate,
// apply to the core, format the decision. The baseline in the same run is
// parsing the same lines with nlohmann::json alone, so the printed ratio says
// what the gate and the formatting add on top of reading JSON.

#include <sstream>
#include <string>

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/gate_command.h"
#include "core/rng.h"

namespace {

// A deterministic op file: 4 pools of capacity 64, 300 clients each admitting
// (often resuming), heartbeating with their last token and releasing.
std::string make_ops(int count) {
  turnstile::core::Rng rng(1);
  std::string ops;
  for (int pool = 0; pool < 4; ++pool) {
    ops += fmt::format(R"({{"op":"config","pool":"p{}","capacity":64,"ttl":30000,"grace":15000}})" "\n", pool);
  }
  std::int64_t now = 0;
  for (int i = 0; i < count; ++i) {
    now += rng.uniform(0, 40);
    const auto pool = rng.below(4);
    const auto client = rng.below(300);
    const auto roll = rng.below(100);
    if (roll < 60) {
      ops += fmt::format(
          R"({{"op":"admit","pool":"p{}","client":"c{}","episode":"tt{}:1:{}","request":"r{}","issued_at":{},"now":{}}})"
          "\n",
          pool, client, rng.uniform(1, 3), rng.uniform(1, 3), i, now, now);
    } else if (roll < 95) {
      ops += fmt::format(R"({{"op":"heartbeat","pool":"p{}","client":"c{}","token":"{}","now":{}}})" "\n", pool,
                         client, rng.uniform(1, i + 1), now);
    } else {
      ops += fmt::format(R"({{"op":"release","pool":"p{}","client":"c{}","token":"{}","now":{}}})" "\n", pool,
                         client, rng.uniform(1, i + 1), now);
    }
  }
  return ops;
}

constexpr int kOps = 100000;

void BM_GateCommandEndToEnd(benchmark::State& state) {
  const std::string ops = make_ops(kOps);
  for (auto _ : state) {
    std::istringstream in(ops);
    std::ostringstream out;
    std::ostringstream err;
    const int code = turnstile::cli::run_gate(in, out, err);
    if (code != 0) state.SkipWithError(err.str().c_str());
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * (kOps + 4));
}
BENCHMARK(BM_GateCommandEndToEnd)->Unit(benchmark::kMillisecond);

void BM_BaselineJsonParseOnly(benchmark::State& state) {
  const std::string ops = make_ops(kOps);
  for (auto _ : state) {
    std::istringstream in(ops);
    std::string line;
    std::size_t fields = 0;
    while (std::getline(in, line)) fields += nlohmann::json::parse(line).size();
    benchmark::DoNotOptimize(fields);
  }
  state.SetItemsProcessed(state.iterations() * (kOps + 4));
}
BENCHMARK(BM_BaselineJsonParseOnly)->Unit(benchmark::kMillisecond);

}  // namespace
