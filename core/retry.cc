#include "core/retry.h"

#include <algorithm>

#include "core/assert.h"

namespace turnstile::core {
namespace {

bool is_valid_duration(Ms value) { return value >= 0 && value <= kMaxTimeMs; }

// Each input produces at most one effect, and the driver drains it before the
// next input, so a second effect in the slot means a driver skipped poll().
void emit(std::optional<RetryEffect>& slot, RetryEffect effect) {
  TS_ASSERT(!slot.has_value());
  slot = effect;
}

}  // namespace

std::optional<FieldError> check_retry_config(const RetryConfig& config) {
  // Every value is bounded by kMaxTimeMs so that t0 + B and t + d never
  // overflow for times the core accepts.
  if (config.attempt_timeout_ms < 1 || config.attempt_timeout_ms > kMaxTimeMs) {
    return FieldError{"attempt_timeout", "an integer from 1 to 9007199254740991 (ms)"};
  }
  if (!is_valid_duration(config.budget_ms) || config.budget_ms < config.attempt_timeout_ms) {
    return FieldError{"budget", "an integer from attempt_timeout to 9007199254740991 (ms)"};
  }
  if (!is_valid_duration(config.jitter_min_ms)) {
    return FieldError{"jitter_min", "an integer from 0 to 9007199254740991 (ms)"};
  }
  if (!is_valid_duration(config.jitter_max_ms) || config.jitter_max_ms < config.jitter_min_ms) {
    return FieldError{"jitter_max", "an integer from jitter_min to 9007199254740991 (ms)"};
  }
  if (!is_valid_duration(config.min_attempt_ms)) {
    return FieldError{"min_attempt", "an integer from 0 to 9007199254740991 (ms)"};
  }
  return std::nullopt;
}

Retry::Retry(const RetryConfig& config, Ms t0) : config_(config), t0_(t0) {
  TS_ASSERT(!check_retry_config(config));
  TS_ASSERT(t0 >= 0 && t0 <= kMaxTimeMs);
}

void Retry::start() {
  TS_ASSERT(phase_ == Phase::idle);
  begin_attempt(t0_);
}

void Retry::on_result(Ms now, int attempt, const AttemptResult& result, Rng& rng) {
  TS_ASSERT(now >= t0_);
  if (phase_ != Phase::attempting || attempt != attempt_) return;
  // A reply that arrives after its attempt's deadline comes from an attempt
  // that had already timed out; the driver only noticed late. Ending with it
  // would break R1, so the timeout wins and the reply is ignored.
  if (now > deadline_) {
    on_timer(now, rng);
    return;
  }
  switch (result.outcome_class) {
    case OutcomeClass::success:
    case OutcomeClass::permanent:
      // R4: a permanent outcome is never retried. R7: one final outcome.
      phase_ = Phase::done;
      emit(pending_, RetryDone{result.outcome_class});
      return;
    case OutcomeClass::transient:
      fail_attempt(now, result, rng);
      return;
  }
}

void Retry::on_timer(Ms now, Rng& rng) {
  TS_ASSERT(now >= t0_);
  if (phase_ == Phase::attempting && now >= deadline_) {
    // The attempt timed out at its deadline (R3: transient). Counting from the
    // deadline rather than from a late driver's `now` keeps the operation's
    // timeline within t0 + B whatever the driver's lateness.
    fail_attempt(deadline_, AttemptResult{OutcomeClass::transient, std::nullopt}, rng);
    return;
  }
  if (phase_ == Phase::waiting && now >= deadline_) {
    begin_attempt(deadline_);
  }
}

void Retry::cancel() {
  if (phase_ == Phase::done) return;  // R7: the final outcome was already given.
  phase_ = Phase::done;
  emit(pending_, RetryDone{OutcomeClass::permanent});
}

std::optional<RetryEffect> Retry::poll() {
  std::optional<RetryEffect> effect = pending_;
  pending_.reset();
  return effect;
}

std::optional<Ms> Retry::next_deadline() const {
  if (phase_ == Phase::attempting || phase_ == Phase::waiting) return deadline_;
  return std::nullopt;
}

bool Retry::done() const { return phase_ == Phase::done; }

int Retry::attempts_started() const { return attempt_; }

void Retry::fail_attempt(Ms now, const AttemptResult& result, Rng& rng) {
  TS_ASSERT(result.outcome_class == OutcomeClass::transient);
  TS_ASSERT(now <= t0_ + config_.budget_ms);  // R1: the failure is inside the budget.
  if (attempt_ >= 2) {
    // R4: the second attempt was the last.
    phase_ = Phase::done;
    emit(pending_, RetryDone{OutcomeClass::transient});
    return;
  }
  // R5: the delay is always drawn, even when no retry can follow, so that the
  // source's use depends only on the outcome sequence (R8).
  Ms delay_ms = config_.jitter_min_ms + rng.uniform(0, config_.jitter_max_ms - config_.jitter_min_ms);
  if (result.retry_after_ms.has_value()) {
    TS_ASSERT(*result.retry_after_ms >= 0);
    delay_ms = std::max(delay_ms, *result.retry_after_ms);
  }
  // R6: t0 + B - t1 >= M, written as a bound on the delay so that a huge
  // Retry-After cannot overflow t1.
  const Ms left_ms = t0_ + config_.budget_ms - now;
  if (delay_ms > left_ms - config_.min_attempt_ms) {
    phase_ = Phase::done;
    emit(pending_, RetryDone{OutcomeClass::transient});
    return;
  }
  phase_ = Phase::waiting;
  deadline_ = now + delay_ms;
  TS_ASSERT(deadline_ <= t0_ + config_.budget_ms);
  emit(pending_, RetryWake{deadline_});
}

void Retry::begin_attempt(Ms at) {
  ++attempt_;
  TS_ASSERT(attempt_ == 1 || attempt_ == 2);  // R4
  const Ms end_ms = t0_ + config_.budget_ms;
  // R2 for attempt 1 (at == t0, and A <= B), R6 for attempt 2.
  deadline_ = std::min(at + config_.attempt_timeout_ms, end_ms);
  TS_ASSERT(deadline_ <= end_ms);  // R1: no attempt outlives t0 + B.
  phase_ = Phase::attempting;
  emit(pending_, StartAttempt{attempt_, deadline_});
}

}  // namespace turnstile::core
