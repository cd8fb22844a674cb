#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "core/outcome.h"
#include "core/retry.h"
#include "core/rng.h"

namespace turnstile::core {
namespace {

// What the simulated dependency does with one attempt.
struct AttemptScript {
  OutcomeClass outcome_class = OutcomeClass::success;
  Ms latency_ms = 0;                 // the reply comes this long after the start
  std::optional<Ms> retry_after_ms;  // sent with a transient reply
  bool late_reply = false;           // a timed-out attempt's reply still arrives
};

struct Scenario {
  RetryConfig config;
  Ms t0 = 0;
  std::uint64_t seed = 0;
  // One script more than R4 allows, so that a machine which starts a third
  // attempt is driven like any other and the property sees it.
  std::array<AttemptScript, 3> scripts;
};

// One attempt as the driver saw it.
struct AttemptRecord {
  int attempt = 0;
  Ms started_at = 0;
  Ms deadline = 0;
  Ms ended_at = 0;  // when its result or its timeout reached the machine
  OutcomeClass outcome_class = OutcomeClass::transient;
  std::optional<Ms> retry_after_ms;
  bool timed_out = false;
  bool ended = false;
};

struct RunRecord {
  std::vector<AttemptRecord> attempts;
  int done_count = 0;
  std::optional<OutcomeClass> final_class;
  Ms ended_at = 0;
  int effects_after_done = 0;  // anything the machine emitted after its final outcome
};

// A reply of a timed-out attempt that is still on its way.
struct LateReply {
  Ms at = 0;
  int attempt = 0;
  AttemptResult result;
};

// Small ranges, so that the interesting edges (t0 + B - t1 close to M,
// Retry-After close to the budget, replies at the deadline) come up often.
Scenario gen_scenario() {
  Scenario s;
  s.config.attempt_timeout_ms = *rc::gen::inRange<Ms>(1, 1000);
  s.config.budget_ms = s.config.attempt_timeout_ms + *rc::gen::inRange<Ms>(0, 2000);
  s.config.jitter_min_ms = *rc::gen::inRange<Ms>(0, 200);
  s.config.jitter_max_ms = s.config.jitter_min_ms + *rc::gen::inRange<Ms>(0, 200);
  s.config.min_attempt_ms = *rc::gen::inRange<Ms>(0, 500);
  s.t0 = *rc::gen::inRange<Ms>(0, 1000000);
  s.seed = *rc::gen::arbitrary<std::uint64_t>();
  for (AttemptScript& script : s.scripts) {
    script.outcome_class = *rc::gen::weightedElement<OutcomeClass>(
        {{1, OutcomeClass::success}, {3, OutcomeClass::transient}, {1, OutcomeClass::permanent}});
    // Up to one and a half attempt timeouts, so a third of attempts time out.
    script.latency_ms = *rc::gen::inRange<Ms>(0, s.config.attempt_timeout_ms * 3 / 2 + 2);
    if (script.outcome_class == OutcomeClass::transient && *rc::gen::inRange(0, 3) == 0) {
      script.retry_after_ms = *rc::gen::inRange<Ms>(0, 2500);
    }
    script.late_reply = *rc::gen::arbitrary<bool>();
  }
  return s;
}

// Drives a retry machine the way the simulator does: each attempt's reply
// comes at start + latency, unless that is past the attempt's deadline, in
// which case the driver calls on_timer() at the deadline and the reply may
// still arrive later. Every step moves to the earliest pending event.
template <class Machine>
RunRecord run_scenario(const Scenario& s) {
  constexpr int kMaxSteps = 32;  // a correct machine needs at most 6
  Rng rng(s.seed);
  Machine machine(s.config, s.t0);
  RunRecord record;
  Ms now = s.t0;
  std::optional<std::size_t> running;  // index into record.attempts
  std::optional<Ms> wake_at;
  std::vector<LateReply> late;

  const auto drain = [&]() {
    for (int i = 0; i < kMaxSteps; ++i) {
      const std::optional<RetryEffect> effect = machine.poll();
      if (!effect.has_value()) return;
      if (record.final_class.has_value()) {
        ++record.effects_after_done;
      } else if (const auto* start = std::get_if<StartAttempt>(&*effect)) {
        AttemptRecord attempt;
        attempt.attempt = start->attempt;
        attempt.started_at = now;
        attempt.deadline = start->deadline;
        record.attempts.push_back(attempt);
        running = record.attempts.size() - 1;
      } else if (const auto* wake = std::get_if<RetryWake>(&*effect)) {
        wake_at = wake->at;
      } else if (const auto* done = std::get_if<RetryDone>(&*effect)) {
        ++record.done_count;
        record.final_class = done->outcome_class;
        record.ended_at = now;
      }
    }
  };

  machine.start();
  drain();
  for (int step = 0; step < kMaxSteps && !record.final_class.has_value(); ++step) {
    // The earliest event; a late reply goes first on a tie, as the harder case.
    std::optional<Ms> reply_at;
    std::optional<Ms> timeout_at;
    if (running.has_value()) {
      const AttemptRecord& attempt = record.attempts[*running];
      const AttemptScript& script = s.scripts[static_cast<std::size_t>(std::clamp(attempt.attempt, 1, 3) - 1)];
      const Ms at = attempt.started_at + script.latency_ms;
      if (at <= attempt.deadline) {
        reply_at = at;
      } else {
        timeout_at = attempt.deadline;
      }
    }
    const auto late_it = std::min_element(late.begin(), late.end(),
                                          [](const LateReply& a, const LateReply& b) { return a.at < b.at; });
    const Ms next = std::min({reply_at.value_or(INT64_MAX), timeout_at.value_or(INT64_MAX),
                              wake_at.value_or(INT64_MAX), late_it == late.end() ? INT64_MAX : late_it->at});
    if (next == INT64_MAX) break;  // the machine left nothing to wait for
    now = std::max(now, next);

    if (late_it != late.end() && late_it->at == next) {
      const LateReply reply = *late_it;
      late.erase(late_it);
      machine.on_result(now, reply.attempt, reply.result, rng);
    } else if (reply_at == next) {
      AttemptRecord& attempt = record.attempts[*running];
      const AttemptScript& script = s.scripts[static_cast<std::size_t>(std::clamp(attempt.attempt, 1, 3) - 1)];
      attempt.ended = true;
      attempt.ended_at = now;
      attempt.outcome_class = script.outcome_class;
      attempt.retry_after_ms = script.retry_after_ms;
      running.reset();
      machine.on_result(now, attempt.attempt, AttemptResult{script.outcome_class, script.retry_after_ms}, rng);
    } else if (timeout_at == next) {
      AttemptRecord& attempt = record.attempts[*running];
      const AttemptScript& script = s.scripts[static_cast<std::size_t>(std::clamp(attempt.attempt, 1, 3) - 1)];
      attempt.ended = true;
      attempt.ended_at = now;
      attempt.outcome_class = OutcomeClass::transient;
      attempt.timed_out = true;
      if (script.late_reply) {
        late.push_back(LateReply{attempt.started_at + script.latency_ms, attempt.attempt,
                                 AttemptResult{script.outcome_class, script.retry_after_ms}});
      }
      running.reset();
      machine.on_timer(now, rng);
    } else {
      wake_at.reset();
      machine.on_timer(now, rng);
    }
    drain();
  }

  // R7: whatever comes after the final outcome changes nothing.
  if (record.final_class.has_value()) {
    for (const LateReply& reply : late) machine.on_result(std::max(now, reply.at), reply.attempt, reply.result, rng);
    for (int attempt = 1; attempt <= 2; ++attempt) machine.on_result(now, attempt, AttemptResult{}, rng);
    machine.on_timer(now + s.config.budget_ms + 1, rng);
    drain();
  }
  return record;
}

// --- the properties, each over any machine with Retry's interface ---------------

// R1, R2: the operation ends, and every attempt's deadline lies, within t0 + B;
// attempt 1 starts at t0 with deadline t0 + min(A, B).
template <class Machine>
void budget_property() {
  const Scenario s = gen_scenario();
  const RunRecord record = run_scenario<Machine>(s);
  const Ms end_ms = s.t0 + s.config.budget_ms;
  RC_ASSERT(record.final_class.has_value());
  RC_ASSERT(record.ended_at <= end_ms);
  RC_ASSERT(!record.attempts.empty());
  RC_ASSERT(record.attempts[0].started_at == s.t0);
  RC_ASSERT(record.attempts[0].deadline == s.t0 + std::min(s.config.attempt_timeout_ms, s.config.budget_ms));
  for (const AttemptRecord& attempt : record.attempts) {
    RC_ASSERT(attempt.deadline <= end_ms);
    RC_ASSERT(attempt.ended_at <= end_ms);
  }
}

// R4: at most two attempts, numbered 1 then 2, and a second only after a
// transient outcome of the first.
template <class Machine>
void attempts_property() {
  const Scenario s = gen_scenario();
  const RunRecord record = run_scenario<Machine>(s);
  RC_ASSERT(record.attempts.size() <= 2u);
  for (std::size_t i = 0; i < record.attempts.size(); ++i) {
    RC_ASSERT(record.attempts[i].attempt == static_cast<int>(i) + 1);
  }
  if (record.attempts.size() == 2) {
    RC_ASSERT(record.attempts[0].ended);
    RC_ASSERT(record.attempts[0].outcome_class == OutcomeClass::transient);
  }
}

// R5, R6: attempt 2 starts at t1 = t_fail + d, with d in [J0, J1] or equal to
// the Retry-After (and never below it), only if t0 + B - t1 >= M, with deadline
// min(t1 + A, t0 + B). Exactly: d is the first draw of the run's seed (R8),
// so a retry happens if and only if that d leaves M of the budget.
template <class Machine>
void delay_property() {
  const Scenario s = gen_scenario();
  const RunRecord record = run_scenario<Machine>(s);
  const RetryConfig& c = s.config;
  const Ms end_ms = s.t0 + c.budget_ms;
  // Only a transient first attempt can lead to a retry. Returning (rather than
  // RC_PRE) keeps rc::check from giving up, which would look like a failure.
  RC_ASSERT(!record.attempts.empty());
  if (!record.attempts[0].ended || record.attempts[0].outcome_class != OutcomeClass::transient) {
    RC_ASSERT(record.attempts.size() == 1u);
    return;
  }
  const AttemptRecord& first = record.attempts[0];

  Rng reference(s.seed);
  Ms expected_d = c.jitter_min_ms + reference.uniform(0, c.jitter_max_ms - c.jitter_min_ms);
  if (first.retry_after_ms.has_value()) expected_d = std::max(expected_d, *first.retry_after_ms);
  const bool retry_fits = end_ms - (first.ended_at + expected_d) >= c.min_attempt_ms;
  RC_ASSERT((record.attempts.size() == 2) == retry_fits);

  if (record.attempts.size() == 2) {
    const AttemptRecord& second = record.attempts[1];
    const Ms t1 = second.started_at;
    const Ms d = t1 - first.ended_at;
    const bool in_jitter = d >= c.jitter_min_ms && d <= c.jitter_max_ms;
    RC_ASSERT(in_jitter || d == first.retry_after_ms);
    RC_ASSERT(!first.retry_after_ms.has_value() || d >= *first.retry_after_ms);
    RC_ASSERT(d == expected_d);
    RC_ASSERT(end_ms - t1 >= c.min_attempt_ms);
    RC_ASSERT(second.deadline == std::min(t1 + c.attempt_timeout_ms, end_ms));
  } else {
    RC_ASSERT(record.final_class == OutcomeClass::transient);
  }
}

// R7: exactly one final outcome, the class of the last attempt's outcome, and
// nothing after it.
template <class Machine>
void final_outcome_property() {
  const Scenario s = gen_scenario();
  const RunRecord record = run_scenario<Machine>(s);
  RC_ASSERT(record.done_count == 1);
  RC_ASSERT(record.effects_after_done == 0);
  RC_ASSERT(!record.attempts.empty());
  RC_ASSERT(record.attempts.back().ended);
  RC_ASSERT(record.final_class == record.attempts.back().outcome_class);
}

RC_GTEST_PROP(Props, R1_R2_OperationAndAttemptsEndWithinBudget, ()) { budget_property<Retry>(); }
RC_GTEST_PROP(Props, R4_AtMostTwoAttemptsAndOnlyAfterTransient, ()) { attempts_property<Retry>(); }
RC_GTEST_PROP(Props, R5_R6_RetryDelayAndBudgetLeft, ()) { delay_property<Retry>(); }
RC_GTEST_PROP(Props, R7_OneFinalOutcomeFromTheLastAttempt, ()) { final_outcome_property<Retry>(); }

// --- broken machines: each property must catch its bug ----------------------------

// Forwards everything to the real machine; the broken ones below hide one member.
class ForwardingRetry {
 public:
  ForwardingRetry(const RetryConfig& config, Ms t0) : inner_(config, t0), config_(config) {}
  void start() { inner_.start(); }
  void on_result(Ms now, int attempt, const AttemptResult& result, Rng& rng) {
    inner_.on_result(now, attempt, result, rng);
  }
  void on_timer(Ms now, Rng& rng) { inner_.on_timer(now, rng); }
  std::optional<RetryEffect> poll() { return inner_.poll(); }

 protected:
  Retry inner_;
  RetryConfig config_;
};

// R1 broken: attempt 2 gets a full attempt timeout, whatever is left of the budget.
class BudgetIgnoringRetry : public ForwardingRetry {
 public:
  using ForwardingRetry::ForwardingRetry;
  void on_timer(Ms now, Rng& rng) {
    last_timer_ = now;
    inner_.on_timer(now, rng);
  }
  std::optional<RetryEffect> poll() {
    std::optional<RetryEffect> effect = inner_.poll();
    if (effect.has_value()) {
      if (auto* start = std::get_if<StartAttempt>(&*effect); start != nullptr && start->attempt == 2) {
        start->deadline = last_timer_ + config_.attempt_timeout_ms;
      }
    }
    return effect;
  }

 private:
  Ms last_timer_ = 0;
};

// R4 broken: a permanent outcome of attempt 1 is retried as if it were transient.
class PermanentRetryingRetry : public ForwardingRetry {
 public:
  using ForwardingRetry::ForwardingRetry;
  void on_result(Ms now, int attempt, const AttemptResult& result, Rng& rng) {
    AttemptResult changed = result;
    if (attempt == 1 && result.outcome_class == OutcomeClass::permanent) {
      changed.outcome_class = OutcomeClass::transient;
    }
    inner_.on_result(now, attempt, changed, rng);
  }
};

// R6 broken: retries whenever the retry starts within the budget, ignoring M.
class MinAttemptIgnoringRetry : public ForwardingRetry {
 public:
  MinAttemptIgnoringRetry(const RetryConfig& config, Ms t0) : ForwardingRetry(without_min(config), t0) {}

 private:
  static RetryConfig without_min(RetryConfig config) {
    config.min_attempt_ms = 0;
    return config;
  }
};

// R5 broken: the Retry-After never reaches the machine.
class RetryAfterIgnoringRetry : public ForwardingRetry {
 public:
  using ForwardingRetry::ForwardingRetry;
  void on_result(Ms now, int attempt, const AttemptResult& result, Rng& rng) {
    inner_.on_result(now, attempt, AttemptResult{result.outcome_class, std::nullopt}, rng);
  }
};

// R7 broken: a stale reply after the end produces a second final outcome.
class TwiceDoneRetry : public ForwardingRetry {
 public:
  using ForwardingRetry::ForwardingRetry;
  void on_result(Ms now, int attempt, const AttemptResult& result, Rng& rng) {
    if (finished_) {
      extra_ = RetryDone{result.outcome_class};
      return;
    }
    inner_.on_result(now, attempt, result, rng);
  }
  std::optional<RetryEffect> poll() {
    if (extra_.has_value()) {
      std::optional<RetryEffect> effect = extra_;
      extra_.reset();
      return effect;
    }
    std::optional<RetryEffect> effect = inner_.poll();
    if (effect.has_value() && std::holds_alternative<RetryDone>(*effect)) finished_ = true;
    return effect;
  }

 private:
  bool finished_ = false;
  std::optional<RetryEffect> extra_;
};

TEST(Props, R1_BudgetPropertyCatchesASecondAttemptPastTheBudget) {
  EXPECT_FALSE(rc::check("broken", [] { budget_property<BudgetIgnoringRetry>(); }));
}

TEST(Props, R4_AttemptsPropertyCatchesARetryAfterPermanent) {
  EXPECT_FALSE(rc::check("broken", [] { attempts_property<PermanentRetryingRetry>(); }));
}

TEST(Props, R6_DelayPropertyCatchesARetryWithLessThanMinAttemptLeft) {
  EXPECT_FALSE(rc::check("broken", [] { delay_property<MinAttemptIgnoringRetry>(); }));
}

TEST(Props, R5_DelayPropertyCatchesAnIgnoredRetryAfter) {
  EXPECT_FALSE(rc::check("broken", [] { delay_property<RetryAfterIgnoringRetry>(); }));
}

TEST(Props, R7_FinalOutcomePropertyCatchesASecondOutcome) {
  EXPECT_FALSE(rc::check("broken", [] { final_outcome_property<TwiceDoneRetry>(); }));
}

}  // namespace
}  // namespace turnstile::core
