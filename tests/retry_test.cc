#include "core/retry.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <set>
#include <variant>

#include "core/outcome.h"
#include "core/rng.h"

namespace turnstile::core {
namespace {

const AttemptResult kSuccess{OutcomeClass::success, std::nullopt};
const AttemptResult kTransient{OutcomeClass::transient, std::nullopt};
const AttemptResult kPermanent{OutcomeClass::permanent, std::nullopt};

AttemptResult transient_after(Ms retry_after_ms) { return AttemptResult{OutcomeClass::transient, retry_after_ms}; }

// A config whose delay is fixed, so times can be written down exactly.
RetryConfig fixed_delay(Ms timeout_ms, Ms budget_ms, Ms delay_ms, Ms min_attempt_ms) {
  return RetryConfig{timeout_ms, budget_ms, delay_ms, delay_ms, min_attempt_ms};
}

void expect_start(Retry& retry, int attempt, Ms deadline) {
  const std::optional<RetryEffect> effect = retry.poll();
  ASSERT_TRUE(effect.has_value()) << "expected StartAttempt{" << attempt << ", " << deadline << "}";
  const auto* start = std::get_if<StartAttempt>(&*effect);
  ASSERT_NE(start, nullptr) << "expected StartAttempt, got effect #" << effect->index();
  EXPECT_EQ(start->attempt, attempt);
  EXPECT_EQ(start->deadline, deadline);
}

void expect_wake(Retry& retry, Ms at) {
  const std::optional<RetryEffect> effect = retry.poll();
  ASSERT_TRUE(effect.has_value()) << "expected RetryWake{" << at << "}";
  const auto* wake = std::get_if<RetryWake>(&*effect);
  ASSERT_NE(wake, nullptr) << "expected RetryWake, got effect #" << effect->index();
  EXPECT_EQ(wake->at, at);
}

// The wake time, or -1 when the effect was not a RetryWake.
Ms take_wake(Retry& retry) {
  const std::optional<RetryEffect> effect = retry.poll();
  if (!effect.has_value()) return -1;
  const auto* wake = std::get_if<RetryWake>(&*effect);
  return wake == nullptr ? -1 : wake->at;
}

void expect_done(Retry& retry, OutcomeClass outcome_class) {
  const std::optional<RetryEffect> effect = retry.poll();
  ASSERT_TRUE(effect.has_value()) << "expected RetryDone{" << outcome_class_name(outcome_class) << "}";
  const auto* done = std::get_if<RetryDone>(&*effect);
  ASSERT_NE(done, nullptr) << "expected RetryDone, got effect #" << effect->index();
  EXPECT_EQ(done->outcome_class, outcome_class) << outcome_class_name(done->outcome_class);
  EXPECT_TRUE(retry.done());
  EXPECT_EQ(retry.next_deadline(), std::nullopt);
}

void expect_nothing(Retry& retry) { EXPECT_FALSE(retry.poll().has_value()); }

// --- configuration -----------------------------------------------------------

TEST(Retry, R_DefaultsAreValid) {
  EXPECT_FALSE(check_retry_config(RetryConfig{}));
  EXPECT_FALSE(check_retry_config(RetryConfig::broker_defaults()));
  EXPECT_FALSE(check_retry_config(RetryConfig::store_defaults()));
  const RetryConfig broker = RetryConfig::broker_defaults();
  EXPECT_EQ(broker.attempt_timeout_ms, 2500);
  EXPECT_EQ(broker.budget_ms, 6000);
  EXPECT_EQ(broker.jitter_min_ms, 50);
  EXPECT_EQ(broker.jitter_max_ms, 250);
  EXPECT_EQ(broker.min_attempt_ms, 250);
  const RetryConfig store = RetryConfig::store_defaults();
  EXPECT_EQ(store.attempt_timeout_ms, 300);
  EXPECT_EQ(store.budget_ms, 800);
  EXPECT_EQ(store.jitter_min_ms, 10);
  EXPECT_EQ(store.jitter_max_ms, 50);
  EXPECT_EQ(store.min_attempt_ms, 50);
}

TEST(Retry, R_ConfigNamesItsFirstInvalidField) {
  const auto field_of = [](RetryConfig config) {
    const std::optional<FieldError> error = check_retry_config(config);
    return error ? error->field : std::string("(valid)");
  };
  EXPECT_EQ(field_of({0, 800, 10, 50, 50}), "attempt_timeout");
  EXPECT_EQ(field_of({-1, 800, 10, 50, 50}), "attempt_timeout");
  EXPECT_EQ(field_of({1, 1, 0, 0, 0}), "(valid)");
  EXPECT_EQ(field_of({801, 800, 10, 50, 50}), "budget");  // A <= B
  EXPECT_EQ(field_of({800, 800, 10, 50, 50}), "(valid)");
  EXPECT_EQ(field_of({300, 800, -1, 50, 50}), "jitter_min");
  EXPECT_EQ(field_of({300, 800, 51, 50, 50}), "jitter_max");  // J0 <= J1
  EXPECT_EQ(field_of({300, 800, 50, 50, 50}), "(valid)");
  EXPECT_EQ(field_of({300, 800, 10, 50, -1}), "min_attempt");
  EXPECT_EQ(field_of({300, kMaxTimeMs + 1, 10, 50, 50}), "budget");
  EXPECT_EQ(field_of({300, 800, 10, kMaxTimeMs + 1, 50}), "jitter_max");
}

TEST(RetryDeathTest, R_InvalidConfigStopsTheRun) {
  EXPECT_DEATH(Retry(RetryConfig{900, 800, 10, 50, 50}, 0), "assertion failed");
}

// --- R2 ------------------------------------------------------------------------

TEST(Retry, R2_FirstAttemptDeadlineIsTimeoutWhenBelowBudget) {
  Retry retry(RetryConfig::store_defaults(), 1000);
  EXPECT_EQ(retry.next_deadline(), std::nullopt);  // idle: nothing to wait for
  retry.start();
  expect_start(retry, 1, 1300);
  EXPECT_EQ(retry.next_deadline(), 1300);
  EXPECT_EQ(retry.attempts_started(), 1);
  expect_nothing(retry);  // poll() hands out each effect once
}

TEST(Retry, R2_FirstAttemptDeadlineIsBudgetWhenTimeoutEqualsBudget) {
  Retry retry(RetryConfig{800, 800, 10, 50, 50}, 1000);
  retry.start();
  expect_start(retry, 1, 1800);
}

TEST(Retry, R2_TimerBeforeTheDeadlineDoesNothing) {
  Rng rng(1);
  Retry retry(RetryConfig::store_defaults(), 1000);
  retry.start();
  expect_start(retry, 1, 1300);
  retry.on_timer(1299, rng);
  expect_nothing(retry);
  EXPECT_EQ(retry.next_deadline(), 1300);
}

// --- R1 ------------------------------------------------------------------------

TEST(Retry, R1_EndsAtBudgetWhenSecondAttemptTimesOut) {
  Rng rng(1);
  const Ms t0 = 1000;
  Retry retry(fixed_delay(500, 800, 10, 50), t0);
  retry.start();
  expect_start(retry, 1, 1500);
  retry.on_timer(1500, rng);  // attempt 1 times out: transient
  expect_wake(retry, 1510);
  retry.on_timer(1510, rng);
  // t1 + A = 2010 would outlive the budget; the deadline is cut to t0 + B.
  expect_start(retry, 2, t0 + 800);
  retry.on_timer(t0 + 800, rng);
  expect_done(retry, OutcomeClass::transient);
  EXPECT_EQ(retry.attempts_started(), 2);
}

TEST(Retry, R1_ResultAfterTheDeadlineCountsAsTheTimeout) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  // The driver noticed late: the attempt had timed out at 300, so its success
  // at 301 does not count, and the retry is timed from the deadline.
  retry.on_result(301, 1, kSuccess, rng);
  expect_wake(retry, 310);
  EXPECT_FALSE(retry.done());
}

TEST(Retry, R1_ResultAtExactlyTheDeadlineCounts) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(300, 1, kSuccess, rng);
  expect_done(retry, OutcomeClass::success);
}

TEST(Retry, R1_LateTimerStillEndsWithinBudget) {
  Rng rng(1);
  Retry retry(fixed_delay(500, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 500);
  retry.on_timer(700, rng);  // 200 ms late: the timeout still happened at 500
  expect_wake(retry, 510);
  retry.on_timer(900, rng);  // late again: attempt 2 still ends by t0 + B
  expect_start(retry, 2, 800);
  retry.on_timer(950, rng);
  expect_done(retry, OutcomeClass::transient);
}

// --- R4 ------------------------------------------------------------------------

TEST(Retry, R4_SuccessOfFirstAttemptEndsAtOnce) {
  Rng rng(1);
  Retry retry(RetryConfig::store_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(120, 1, kSuccess, rng);
  expect_done(retry, OutcomeClass::success);
  EXPECT_EQ(retry.attempts_started(), 1);
}

TEST(Retry, R4_PermanentIsNeverRetried) {
  Rng rng(1);
  Retry retry(RetryConfig::store_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(10, 1, kPermanent, rng);
  expect_done(retry, OutcomeClass::permanent);
  retry.on_timer(10000, rng);
  expect_nothing(retry);
  EXPECT_EQ(retry.attempts_started(), 1);
}

TEST(Retry, R4_AtMostTwoAttempts) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 6000, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(100, 1, kTransient, rng);
  expect_wake(retry, 110);
  retry.on_timer(110, rng);
  expect_start(retry, 2, 410);
  // Plenty of budget is left, but the second transient is final.
  retry.on_result(200, 2, kTransient, rng);
  expect_done(retry, OutcomeClass::transient);
  EXPECT_EQ(retry.attempts_started(), 2);
  retry.on_timer(5000, rng);
  expect_nothing(retry);
}

TEST(Retry, R4_SecondAttemptCanSucceed) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(50, 1, kTransient, rng);
  expect_wake(retry, 60);
  retry.on_timer(60, rng);
  expect_start(retry, 2, 360);
  retry.on_result(100, 2, kSuccess, rng);
  expect_done(retry, OutcomeClass::success);
}

TEST(Retry, R4_PermanentOfSecondAttemptIsFinal) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(50, 1, kTransient, rng);
  expect_wake(retry, 60);
  retry.on_timer(60, rng);
  expect_start(retry, 2, 360);
  retry.on_result(100, 2, kPermanent, rng);
  expect_done(retry, OutcomeClass::permanent);
}

TEST(Retry, R3_NotImplementedIsNotRetried) {
  Rng rng(1);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 2500);
  retry.on_result(40, 1, AttemptResult{classify_http_status(501), std::nullopt}, rng);
  expect_done(retry, OutcomeClass::permanent);
  EXPECT_EQ(retry.attempts_started(), 1);
}

TEST(Retry, R3_ServiceUnavailableIsRetried) {
  Rng rng(1);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 2500);
  retry.on_result(40, 1, AttemptResult{classify_http_status(503), std::nullopt}, rng);
  const Ms t1 = take_wake(retry);
  EXPECT_GE(t1, 40 + 50);
  EXPECT_LE(t1, 40 + 250);
}

// --- R5 ------------------------------------------------------------------------

TEST(Retry, R5_DelayIsTheSeededDrawAboveJitterMin) {
  const RetryConfig config = RetryConfig::broker_defaults();
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Rng rng(seed);
    Rng expected(seed);
    Retry retry(config, 0);
    retry.start();
    expect_start(retry, 1, 2500);
    retry.on_result(100, 1, kTransient, rng);
    expect_wake(retry, 100 + 50 + expected.uniform(0, 200));
  }
}

TEST(Retry, R5_DelayCoversJitterRangeInclusive) {
  // Over many seeds every delay is inside [J0, J1] and both ends occur.
  const RetryConfig config{300, 800, 10, 13, 50};
  std::set<Ms> delays;
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    Rng rng(seed);
    Retry retry(config, 0);
    retry.start();
    expect_start(retry, 1, 300);
    retry.on_result(100, 1, kTransient, rng);
    const Ms t1 = take_wake(retry);
    ASSERT_GE(t1, 110);
    ASSERT_LE(t1, 113);
    delays.insert(t1 - 100);
  }
  EXPECT_EQ(delays, (std::set<Ms>{10, 11, 12, 13}));
}

TEST(Retry, R5_RetryAfterRaisesTheDelay) {
  Rng rng(7);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 2500);
  retry.on_result(100, 1, transient_after(1000), rng);
  expect_wake(retry, 1100);
  retry.on_timer(1100, rng);
  expect_start(retry, 2, 3600);
}

TEST(Retry, R5_RetryAfterBelowTheJitterKeepsTheJitter) {
  Rng rng(7);
  Rng expected(7);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 2500);
  retry.on_result(100, 1, transient_after(1), rng);
  expect_wake(retry, 100 + 50 + expected.uniform(0, 200));
}

TEST(Retry, R5_RetryAfterBeyondTheBudgetFailsAtOnce) {
  Rng rng(7);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 2500);
  retry.on_result(100, 1, transient_after(60000), rng);
  expect_done(retry, OutcomeClass::transient);
  EXPECT_EQ(retry.attempts_started(), 1);
}

TEST(Retry, R5_HugeRetryAfterDoesNotOverflow) {
  Rng rng(7);
  Retry retry(RetryConfig::broker_defaults(), kMaxTimeMs - 6000);
  retry.start();
  expect_start(retry, 1, kMaxTimeMs - 3500);
  retry.on_result(kMaxTimeMs - 5000, 1, transient_after(INT64_MAX), rng);
  expect_done(retry, OutcomeClass::transient);
}

// --- R6 ------------------------------------------------------------------------

TEST(Retry, R6_RetriesWhenBudgetLeftEqualsMinAttempt) {
  Rng rng(1);
  Retry retry(fixed_delay(800, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 800);
  retry.on_result(740, 1, kTransient, rng);  // t1 = 750, t0 + B - t1 = 50 = M
  expect_wake(retry, 750);
  retry.on_timer(750, rng);
  expect_start(retry, 2, 800);
}

TEST(Retry, R6_NoRetryWhenBudgetLeftBelowMinAttempt) {
  Rng rng(1);
  Retry retry(fixed_delay(800, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 800);
  retry.on_result(741, 1, kTransient, rng);  // t1 = 751, t0 + B - t1 = 49 = M - 1
  expect_done(retry, OutcomeClass::transient);
  EXPECT_EQ(retry.attempts_started(), 1);
}

TEST(Retry, R6_NoRetryAfterAFirstAttemptThatUsedTheWholeBudget) {
  Rng rng(1);
  Retry retry(fixed_delay(800, 800, 0, 50), 0);
  retry.start();
  expect_start(retry, 1, 800);
  retry.on_timer(800, rng);
  expect_done(retry, OutcomeClass::transient);
  EXPECT_EQ(retry.attempts_started(), 1);
}

TEST(Retry, R6_ZeroMinAttemptAllowsARetryAtTheBudgetsEnd) {
  Rng rng(1);
  Retry retry(fixed_delay(800, 800, 0, 0), 0);
  retry.start();
  expect_start(retry, 1, 800);
  retry.on_timer(800, rng);
  // With M = 0 and no delay, t0 + B - t1 = 0 >= M: a zero-length retry is
  // pointless but the rule allows it, and it still ends at t0 + B (R1).
  expect_wake(retry, 800);
  retry.on_timer(800, rng);
  expect_start(retry, 2, 800);
  retry.on_timer(800, rng);
  expect_done(retry, OutcomeClass::transient);
}

TEST(Retry, R6_SecondAttemptDeadlineIsStartPlusTimeoutWhenItFits) {
  Rng rng(1);
  Retry retry(fixed_delay(2500, 6000, 100, 250), 1000);
  retry.start();
  expect_start(retry, 1, 3500);
  retry.on_result(1200, 1, kTransient, rng);
  expect_wake(retry, 1300);
  EXPECT_EQ(retry.next_deadline(), 1300);  // waiting: the retry's start
  retry.on_timer(1299, rng);
  expect_nothing(retry);
  retry.on_timer(1300, rng);
  expect_start(retry, 2, 3800);
  EXPECT_EQ(retry.next_deadline(), 3800);
}

TEST(Retry, R6_SecondAttemptDeadlineIsCutToTheBudget) {
  Rng rng(1);
  Retry retry(fixed_delay(2500, 6000, 100, 250), 1000);
  retry.start();
  expect_start(retry, 1, 3500);
  retry.on_result(1000, 1, transient_after(3900), rng);
  expect_wake(retry, 4900);
  retry.on_timer(4900, rng);
  expect_start(retry, 2, 7000);  // min(4900 + 2500, 1000 + 6000)
}

// --- R7 ------------------------------------------------------------------------

TEST(Retry, R7_LateResultOfTimedOutAttemptIsIgnored) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_timer(300, rng);
  expect_wake(retry, 310);
  retry.on_result(305, 1, kSuccess, rng);  // waiting: attempt 1 is not running
  expect_nothing(retry);
  EXPECT_FALSE(retry.done());
  retry.on_timer(310, rng);
  expect_start(retry, 2, 610);
  retry.on_result(320, 1, kSuccess, rng);  // attempt 2 is running, not attempt 1
  expect_nothing(retry);
  retry.on_result(330, 2, kSuccess, rng);
  expect_done(retry, OutcomeClass::success);
}

TEST(Retry, R7_ResultForAnAttemptNeverStartedIsIgnored) {
  Rng rng(1);
  Retry retry(RetryConfig::store_defaults(), 0);
  retry.on_result(0, 1, kSuccess, rng);  // not started yet
  expect_nothing(retry);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(10, 2, kSuccess, rng);
  retry.on_result(10, 0, kSuccess, rng);
  retry.on_result(10, 3, kSuccess, rng);
  expect_nothing(retry);
  EXPECT_FALSE(retry.done());
}

TEST(Retry, R7_OneFinalOutcome) {
  Rng rng(1);
  Retry retry(RetryConfig::store_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(10, 1, kSuccess, rng);
  expect_done(retry, OutcomeClass::success);
  retry.on_result(20, 1, kPermanent, rng);
  retry.on_result(20, 2, kSuccess, rng);
  retry.on_timer(1000, rng);
  retry.cancel();
  expect_nothing(retry);
  EXPECT_TRUE(retry.done());
}

TEST(Retry, R3_CancelWhileAttemptingEndsPermanent) {
  Rng rng(1);
  Retry retry(RetryConfig::store_defaults(), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.cancel();
  expect_done(retry, OutcomeClass::permanent);
  retry.on_result(10, 1, kSuccess, rng);  // the cancelled attempt's reply
  expect_nothing(retry);
}

TEST(Retry, R3_CancelWhileWaitingEndsPermanent) {
  Rng rng(1);
  Retry retry(fixed_delay(300, 800, 10, 50), 0);
  retry.start();
  expect_start(retry, 1, 300);
  retry.on_result(10, 1, kTransient, rng);
  expect_wake(retry, 20);
  retry.cancel();
  expect_done(retry, OutcomeClass::permanent);
  retry.on_timer(20, rng);  // the retry never starts
  expect_nothing(retry);
  EXPECT_EQ(retry.attempts_started(), 1);
}

// --- R8 ------------------------------------------------------------------------

// The retry's start time for one seed, with attempt 1 failing at 100.
Ms wake_for_seed(std::uint64_t seed) {
  Rng rng(seed);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  (void)retry.poll();
  retry.on_result(100, 1, kTransient, rng);
  return take_wake(retry);
}

TEST(Retry, R8_SameSeedGivesSameDelays) {
  std::set<Ms> distinct;
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    const Ms first = wake_for_seed(seed);
    EXPECT_EQ(first, wake_for_seed(seed)) << "seed " << seed;
    distinct.insert(first);
  }
  // The delay really comes from the seed: different seeds give different delays.
  EXPECT_GT(distinct.size(), 10u);
}

TEST(Retry, R8_DelayDrawnOnceFromTheSource) {
  // The machine takes exactly one draw per failed first attempt, so the
  // caller's source stays in step with a replay.
  Rng rng(99);
  Rng reference(99);
  Retry retry(RetryConfig::broker_defaults(), 0);
  retry.start();
  (void)retry.poll();
  retry.on_result(100, 1, kTransient, rng);
  (void)retry.poll();
  (void)reference.uniform(0, 200);
  EXPECT_EQ(rng.next_u64(), reference.next_u64());
}

}  // namespace
}  // namespace turnstile::core
