#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "core/coalesce.h"

namespace turnstile::core {
namespace {

// One coalescer step is a whole flight: a leader starts it, k more requests
// join it, and finish answers all k + 1. The table meanwhile holds `others`
// unrelated flights, so the cost of the ordered maps' depth shows.
void BM_CoalescerFlight(benchmark::State& state) {
  const auto others = static_cast<std::size_t>(state.range(0));
  const auto joiners = static_cast<WaiterId>(state.range(1));
  Coalescer coalescer(CoalesceConfig{.max_flights = others + 1, .max_waiters = 64});
  for (std::size_t i = 0; i < others; ++i) {
    const FlightKey other{"pool-main", "client-" + std::to_string(i), "episode-0001"};
    if (coalescer.join(other, i + 1).outcome != JoinOutcome::leader) {
      state.SkipWithError("could not fill the flight table");
      return;
    }
  }
  // A client name in the middle of the others', so lookups walk the whole depth.
  const FlightKey key{"pool-main", "client-" + std::to_string(others / 2) + "x", "episode-0001"};
  const WaiterId first_waiter = others + 1;

  for (auto _ : state) {
    const JoinResult leader = coalescer.join(key, first_waiter);
    for (WaiterId w = 1; w <= joiners; ++w) {
      benchmark::DoNotOptimize(coalescer.join(key, first_waiter + w));
    }
    auto waiters = coalescer.finish(leader.flight);
    benchmark::DoNotOptimize(waiters.data());
  }
  if (coalescer.flight_count() != others) state.SkipWithError("the table did not return to its starting size");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel("flights; each = 1 leader + " + std::to_string(joiners) + " joins + finish");
}

BENCHMARK(BM_CoalescerFlight)->ArgNames({"others", "k"})->ArgsProduct({{0, 100, 10000}, {1, 8, 63}});

}  // namespace
}  // namespace turnstile::core
