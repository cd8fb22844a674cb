// `turnstile check` (sim/model_check.h): states per second and total time of
// whole explorations, for K = 3..6 clients. Each benchmark runs one
// exploration (Iterations(1)): the state spaces are large enough that one
// run is a stable measure, and the biggest take minutes.
//
// Arguments: gate (0 atomic, 1 legacy), K clients, C capacity, R rounds,
// symmetry (1 on, 0 off). The label is the verdict, and the rule and
// counterexample length for a violation. Select with --benchmark_filter, e.g.
//   build-rel/bench/model_check_bench --benchmark_filter='BM_Check/gate:0/K:6'

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "sim/model_check.h"

namespace {

using turnstile::sim::CheckConfig;
using turnstile::sim::CheckResult;
using turnstile::sim::CheckVerdict;
using turnstile::sim::GateMode;

void BM_Check(benchmark::State& state) {
  CheckConfig config;
  config.gate = state.range(0) == 1 ? GateMode::legacy : GateMode::atomic;
  config.clients = static_cast<int>(state.range(1));
  config.capacity = state.range(2);
  config.rounds = static_cast<int>(state.range(3));
  config.symmetry = state.range(4) == 1;
  config.max_ticks = turnstile::sim::default_max_ticks(config.ttl_ms, config.grace_ms);

  CheckResult result;
  std::uint64_t states = 0;
  for (auto _ : state) {
    result = turnstile::sim::run_check(config);
    states += result.states;
    benchmark::DoNotOptimize(result.states);
  }
  state.counters["states"] = static_cast<double>(result.states);
  state.counters["transitions"] = static_cast<double>(result.transitions);
  state.counters["depth"] = static_cast<double>(result.depth);
  state.counters["states_per_s"] = benchmark::Counter(static_cast<double>(states), benchmark::Counter::kIsRate);
  std::string label(turnstile::sim::verdict_name(result.verdict));
  if (result.violation) label += " " + result.violation->rule + " in " + std::to_string(result.trace.size());
  state.SetLabel(label);
}

void check_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"gate", "K", "C", "R", "sym"});
  // The atomic gate, verified: the whole space.
  for (int k = 3; k <= 6; ++k) {
    b->Args({0, k, 2, 1, 1});
    b->Args({0, k, 2, 2, 1});
    b->Args({0, k, 3, 2, 1});
  }
  // What the symmetry reduction saves.
  for (int k = 3; k <= 5; ++k) b->Args({0, k, 2, 2, 0});
  // The legacy gate: the time to a shortest counterexample.
  for (int k = 3; k <= 6; ++k) {
    b->Args({1, k, 2, 1, 1});
    b->Args({1, k, 3, 2, 1});
  }
}

BENCHMARK(BM_Check)->Apply(check_args)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
