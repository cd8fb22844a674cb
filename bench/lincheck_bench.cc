// How long `turnstile lincheck` takes (SPEC H): gate histories of 10^2 to
// 10^5 operations at concurrency 2, 8, 16 and 32, linearizable and not.
//
// A history is made by running the real gate sequentially: each operation
// gets a linearization point, strictly increasing, and a call/ret interval
// around it, with each process's intervals one after another. Concurrency P
// means P processes, whose intervals overlap about P at a time. A "not"
// history is the same with one answer in the middle replaced by an admission
// with a token never issued, so its time includes trying every order around
// that operation and finding the shortest unexplainable prefix.
//
//   build-lincheck-rel/bench/lincheck_bench --benchmark_filter=Check
//
// Args: operations, processes, linearizable (1) or not (0).
//
// BM_P14 is P14's cost per simulated run (sim/gate_history.h): lincheck over
// the gate histories of 100 runs of the default scenario; items/s is runs
// checked per second.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "cli/lincheck_command.h"
#include "core/gate.h"
#include "core/rng.h"
#include "sim/history_format.h"
#include "sim/gate_history.h"
#include "sim/lincheck.h"
#include "sim/world.h"

namespace {

using namespace turnstile;

std::vector<sim::HistoryOp> make_history(std::int64_t operations, std::int64_t processes, bool linearizable,
                                         std::uint64_t seed) {
  core::Rng rng(seed);
  core::GateConfig config;
  config.capacity = std::max<std::int64_t>(1, processes / 2);
  config.ttl_ms = 400;
  config.grace_ms = 200;
  core::PoolState state;

  std::vector<sim::HistoryOp> ops;
  sim::HistoryOp setup;
  setup.process = "setup";
  setup.call = 0;
  setup.ret = 0;
  setup.pool = "p";
  setup.op = config;
  ops.push_back(setup);

  struct Process {
    std::int64_t ready = 1;  // the earliest time its next call may be
    core::Token token = core::kNoToken;
    std::int64_t requests = 0;
  };
  std::vector<Process> lanes(static_cast<std::size_t>(processes));
  // Intervals are up to `spread` wide on each side of the point, and points
  // 1-3 apart, so about `processes` intervals overlap at a time.
  const std::int64_t spread = processes * 2;
  std::int64_t point = spread;
  for (std::int64_t i = 0; i < operations; ++i) {
    point += rng.uniform(1, 3);
    // A process that is free at this point (every process is free again by
    // the time `point` has moved `spread` + 3 past its last return).
    std::size_t lane = rng.below(lanes.size());
    while (lanes[lane].ready >= point) {
      lane = (lane + 1) % lanes.size();
      if (lane == 0) ++point;
    }
    Process& process = lanes[lane];
    core::Op op;
    op.client = fmt::format("c{}", lane);
    op.now = point;
    const auto draw = rng.below(10);
    if (process.token == core::kNoToken || draw < 3) {
      op.kind = core::OpKind::admit;
      op.episode = rng.chance(1, 4) ? "tt2" : "tt1";
      op.request = fmt::format("r{}", ++process.requests);
      op.issued_at = point;
    } else {
      op.kind = draw < 9 ? core::OpKind::heartbeat : core::OpKind::release;
      op.token = process.token;
    }
    const core::Decision decision = core::apply(state, op, config);
    if (core::is_granted(decision.outcome)) process.token = decision.token;
    if (decision.outcome == core::Outcome::released || decision.outcome == core::Outcome::gone) {
      process.token = core::kNoToken;
    }

    sim::HistoryOp entry;
    entry.process = fmt::format("w{}", lane);
    entry.call = rng.uniform(std::max(process.ready, point - spread), point);
    entry.ret = point + rng.uniform(0, spread);
    entry.pool = "p";
    entry.op = op;
    entry.out = decision;
    process.ready = *entry.ret + 1;
    ops.push_back(std::move(entry));
  }
  if (!linearizable) {
    // A token no order of these operations can have issued.
    core::Decision& out = *ops[ops.size() / 2].out;
    out.outcome = core::Outcome::admitted;
    out.token = 1'000'000'000;
  }
  for (std::size_t i = 0; i < ops.size(); ++i) ops[i].line = i + 1;
  return ops;
}

// A search that runs longer than this ends as unknown, reported as an error.
constexpr int kTimeLimitS = 60;

void BM_Check(benchmark::State& bench) {
  const bool linearizable = bench.range(2) == 1;
  const auto ops = make_history(bench.range(0), bench.range(1), linearizable, 20261127);
  sim::LincheckLimits limits;
  limits.max_search_bytes = std::size_t{8} << 30;
  std::uint64_t states = 0;
  std::uint64_t steps = 0;
  for (auto _ : bench) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeLimitS);
    limits.should_stop = [deadline] { return std::chrono::steady_clock::now() >= deadline; };
    auto results = cli::check_pools(ops, limits, 1);
    const auto expected = linearizable ? sim::LincheckVerdict::linearizable : sim::LincheckVerdict::not_linearizable;
    if (results.size() != 1 || results[0].verdict.verdict != expected) {
      if (std::getenv("LINCHECK_BENCH_DEBUG") != nullptr) std::fputs(cli::format_text_report(results).c_str(), stderr);
      const bool unknown = results.size() == 1 && results[0].verdict.verdict == sim::LincheckVerdict::unknown;
      bench.SkipWithError(unknown ? ("unknown: " + results[0].verdict.unknown_cause).c_str() : "unexpected verdict");
      break;
    }
    states = results[0].verdict.states;
    steps = results[0].verdict.steps;
    benchmark::DoNotOptimize(results);
  }
  bench.counters["states"] = static_cast<double>(states);
  bench.counters["steps"] = static_cast<double>(steps);
  bench.SetItemsProcessed(bench.iterations() * bench.range(0));
}

void check_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t operations : {100, 1000, 10000, 100000}) {
    for (std::int64_t processes : {2, 8, 16, 32}) {
      for (std::int64_t linearizable : {1, 0}) b->Args({operations, processes, linearizable});
    }
  }
}
BENCHMARK(BM_Check)->Apply(check_args)->Unit(benchmark::kMillisecond);

// Reading a history: the part of `turnstile lincheck` before the search.
void BM_Read(benchmark::State& bench) {
  const auto ops = make_history(bench.range(0), 16, true, 7);
  std::string text;
  for (const auto& op : ops) sim::append_history_line(text, op);
  for (auto _ : bench) {
    auto parsed = sim::read_history(text, "bench");
    benchmark::DoNotOptimize(parsed);
  }
  bench.SetBytesProcessed(bench.iterations() * static_cast<std::int64_t>(text.size()));
  bench.SetItemsProcessed(bench.iterations() * bench.range(0));
}
BENCHMARK(BM_Read)->Arg(10000)->Unit(benchmark::kMillisecond);

// P14's cost per simulated run: lincheck over the gate histories that runs
// of the default scenario record (sim/gate_history.h), as the world checks
// them after every run. The histories are recorded once, outside the timing.
void BM_P14(benchmark::State& bench) {
  const auto gate = bench.range(0) == 1 ? sim::GateMode::legacy : sim::GateMode::atomic;
  std::vector<sim::GateHistory> histories;
  std::uint64_t operations = 0;
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    sim::RunSpec spec;
    spec.seed = seed;
    spec.gate = gate;
    spec.stop_on_violation = false;
    sim::RunReport report = sim::run_world(spec);
    histories.push_back(std::move(report.gate_history));
  }
  std::uint64_t not_linearizable = 0;
  for (auto _ : bench) {
    not_linearizable = 0;
    operations = 0;
    for (const sim::GateHistory& history : histories) {
      const sim::GateCheck check = sim::check_gate_history(history);
      operations += check.operations;
      if (check.verdict == sim::LincheckVerdict::not_linearizable) ++not_linearizable;
      benchmark::DoNotOptimize(check);
    }
  }
  bench.counters["runs"] = static_cast<double>(histories.size());
  bench.counters["ops_per_run"] = static_cast<double>(operations) / static_cast<double>(histories.size());
  bench.counters["not_linearizable"] = static_cast<double>(not_linearizable);
  bench.SetItemsProcessed(bench.iterations() * static_cast<std::int64_t>(histories.size()));
}
BENCHMARK(BM_P14)->ArgName("legacy")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
