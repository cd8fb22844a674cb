#pragma once

#include <cstdint>
#include <optional>
#include <variant>

#include "core/ids.h"
#include "core/outcome.h"
#include "core/rng.h"
#include "core/time.h"

namespace turnstile::core {

// SPEC R: one bounded call to a dependency, at most two attempts.
struct RetryConfig {
  Ms attempt_timeout_ms = 2500;  // A
  Ms budget_ms = 6000;           // B, A <= B
  Ms jitter_min_ms = 50;         // J0
  Ms jitter_max_ms = 250;        // J1, J0 <= J1
  Ms min_attempt_ms = 250;       // M

  static RetryConfig broker_defaults() { return {2500, 6000, 50, 250, 250}; }
  static RetryConfig store_defaults() { return {300, 800, 10, 50, 50}; }
};

// The config's first invalid field, or nothing: all values >= 0, A >= 1,
// A <= B, J0 <= J1.
std::optional<FieldError> check_retry_config(const RetryConfig& config);

// How an attempt ended, as the driver saw it. A timeout is transient.
struct AttemptResult {
  OutcomeClass outcome_class = OutcomeClass::success;
  std::optional<Ms> retry_after_ms;  // from a 429 or 503, if the reply had one
};

// Effects, drained with poll().
struct StartAttempt {
  int attempt = 1;  // 1 or 2
  Ms deadline = 0;  // the attempt must be abandoned (reported as a timeout) at this time
};
struct RetryWake {
  Ms at = 0;  // call on_timer() at this time
};
struct RetryDone {
  OutcomeClass outcome_class = OutcomeClass::success;  // R7: the one final outcome
};
using RetryEffect = std::variant<StartAttempt, RetryWake, RetryDone>;

// The retry machine of one operation (R1-R8). Sans-IO: the driver performs
// each StartAttempt, reports its result with on_result(), and calls
// on_timer() at next_deadline(). Drain order: each input produces at most one
// effect; poll() returns it once.
class Retry {
 public:
  Retry(const RetryConfig& config, Ms t0);

  // Emits StartAttempt{1, t0 + min(A, B)} (R2).
  void start();

  // The result of `attempt`. A result for an attempt that is no longer
  // running (already timed out) is ignored. A transient result of attempt 1
  // draws the retry delay from rng (R5).
  void on_result(Ms now, int attempt, const AttemptResult& result, Rng& rng);

  // Time passed: a running attempt whose deadline is <= now timed out
  // (transient); a retry whose start time is <= now begins.
  void on_timer(Ms now, Rng& rng);

  // A caller's cancellation: the operation ends now as permanent (R3).
  void cancel();

  [[nodiscard]] std::optional<RetryEffect> poll();

  // When on_timer() must next be called, or nothing when the machine is done.
  std::optional<Ms> next_deadline() const;

  bool done() const;
  int attempts_started() const;

 private:
  void fail_attempt(Ms now, const AttemptResult& result, Rng& rng);
  void begin_attempt(Ms at);

  enum class Phase { idle, attempting, waiting, done };
  RetryConfig config_;
  Ms t0_;
  Phase phase_ = Phase::idle;
  int attempt_ = 0;
  Ms deadline_ = 0;  // of the running attempt, or the retry's start while waiting
  std::optional<RetryEffect> pending_;
};

}  // namespace turnstile::core
