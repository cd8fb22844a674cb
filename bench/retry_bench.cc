#include <benchmark/benchmark.h>

#include <optional>

#include "core/outcome.h"
#include "core/retry.h"
#include "core/rng.h"

namespace turnstile::core {
namespace {

// Drains the machine's one pending effect, so the compiler cannot drop the step.
void drain(Retry& retry) { benchmark::DoNotOptimize(retry.poll()); }

// The common path: attempt 1 succeeds. Three steps: start, result, done.
void BM_RetryOneAttemptSuccess(benchmark::State& state) {
  const RetryConfig config = RetryConfig::store_defaults();
  Rng rng(1);
  Ms t0 = 0;
  for (auto _ : state) {
    Retry retry(config, t0);
    retry.start();
    drain(retry);
    retry.on_result(t0 + 5, 1, AttemptResult{OutcomeClass::success, std::nullopt}, rng);
    drain(retry);
    t0 += 1;
  }
  state.SetItemsProcessed(state.iterations() * 2);  // inputs fed: start, result
  state.counters["operations/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RetryOneAttemptSuccess);

// The retry path: attempt 1 transient, the wake, attempt 2 succeeds.
void BM_RetryTransientThenSuccess(benchmark::State& state) {
  const RetryConfig config = RetryConfig::store_defaults();
  Rng rng(1);
  Ms t0 = 0;
  for (auto _ : state) {
    Retry retry(config, t0);
    retry.start();
    drain(retry);
    retry.on_result(t0 + 5, 1, AttemptResult{OutcomeClass::transient, std::nullopt}, rng);
    const std::optional<Ms> wake_at = retry.next_deadline();
    drain(retry);
    retry.on_timer(*wake_at, rng);
    drain(retry);
    retry.on_result(*wake_at + 5, 2, AttemptResult{OutcomeClass::success, std::nullopt}, rng);
    drain(retry);
    t0 += 1;
  }
  state.SetItemsProcessed(state.iterations() * 4);  // inputs fed: start, result, timer, result
  state.counters["operations/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RetryTransientThenSuccess);

}  // namespace
}  // namespace turnstile::core
