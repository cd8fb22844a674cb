// The world (sim/world.h): the real route on simulated instances, the fake
// store and broker, and the scenario's clients, under the seeded scheduler.
// A seed decides everything (P3); the atomic gate survives the default
// scenario; the legacy gate's over-admission (P1) is found within a few
// seeds; a run's recorded choices and draws replay it exactly.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sim/world.h"

namespace turnstile::sim {
namespace {

RunSpec spec_for(std::uint64_t seed, GateMode gate = GateMode::atomic) {
  RunSpec spec;
  spec.seed = seed;
  spec.gate = gate;
  return spec;
}

std::vector<std::uint64_t> event_hashes(const History& history) {
  std::vector<std::uint64_t> out;
  out.reserve(history.size());
  for (const Event& event : history.events()) out.push_back(event_hash(event));
  return out;
}

std::string describe(const RunReport& report) {
  std::string text(outcome_name(report.runtime.outcome));
  if (report.violation) text += " " + report.violation->rule + ": " + report.violation->message;
  if (report.runtime.failure) text += " failure: " + report.runtime.failure->message;
  return text;
}

TEST(World, P3_SameSeedTwiceGivesAnIdenticalRun) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    const RunReport a = run_world(spec_for(seed));
    const RunReport b = run_world(spec_for(seed));
    EXPECT_EQ(a.fingerprint, b.fingerprint) << "seed " << seed;
    EXPECT_EQ(a.history.fingerprint(), b.history.fingerprint()) << "seed " << seed;
    EXPECT_EQ(event_hashes(a.history), event_hashes(b.history)) << "seed " << seed;
    EXPECT_EQ(a.runtime.schedule, b.runtime.schedule) << "seed " << seed;
    EXPECT_EQ(a.draws, b.draws) << "seed " << seed;
    EXPECT_EQ(a.requests, b.requests) << "seed " << seed;
  }
}

TEST(World, P3_DifferentSeedsGiveDifferentRuns) {
  std::set<std::uint64_t> fingerprints;
  for (std::uint64_t seed = 0; seed < 20; ++seed) fingerprints.insert(run_world(spec_for(seed)).fingerprint);
  EXPECT_EQ(fingerprints.size(), 20u);
}

TEST(World, P3_ARunOnAnotherThreadGivesTheSameFingerprint) {
  for (std::uint64_t seed : {3u, 17u}) {
    const std::uint64_t here = run_world(spec_for(seed)).fingerprint;
    std::uint64_t there = 0;
    std::thread worker([&there, seed] { there = run_world(spec_for(seed)).fingerprint; });
    worker.join();
    EXPECT_EQ(here, there) << "seed " << seed;
  }
}

// What the history says about one run's requests, flights and phases.
struct Tally {
  std::map<core::WaiterId, int> answers;  // per waiter sent
  std::set<core::WaiterId> left;
  std::uint64_t flights_started = 0;
  std::uint64_t flights_ended = 0;
  bool fault_after_heal = false;
  bool healed = false;
};

Tally tally(const History& history) {
  Tally t;
  for (const Event& event : history.events()) {
    if (const auto* sent = std::get_if<RequestSent>(&event.body)) t.answers[sent->waiter] += 0;
    if (const auto* got = std::get_if<ResponseReceived>(&event.body)) t.answers[got->waiter] += 1;
    if (const auto* left = std::get_if<WaiterLeft>(&event.body)) t.left.insert(left->waiter);
    if (std::holds_alternative<FlightStarted>(event.body)) ++t.flights_started;
    if (std::holds_alternative<FlightEnded>(event.body)) ++t.flights_ended;
    if (std::holds_alternative<FaultsHealed>(event.body)) t.healed = true;
    if (t.healed && std::holds_alternative<FaultFired>(event.body)) t.fault_after_heal = true;
  }
  return t;
}

TEST(World, P16_AtomicGateRunsTheDefaultScenarioCleanly) {
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    const RunReport report = run_world(spec_for(seed));
    ASSERT_FALSE(report.violation.has_value()) << "seed " << seed << ": " << describe(report);
    ASSERT_EQ(report.runtime.outcome, Outcome::finished) << "seed " << seed << ": " << describe(report);
    EXPECT_FALSE(report.history_full);
    EXPECT_GT(report.requests, 0u);

    const Tally t = tally(report.history);
    EXPECT_EQ(t.answers.size(), report.requests);
    for (const auto& [waiter, answers] : t.answers) {
      // Answered exactly once, or the client went away before its answer.
      EXPECT_TRUE(answers == 1 || (answers == 0 && t.left.contains(waiter)))
          << "seed " << seed << " waiter " << waiter << " answers " << answers;
    }
    EXPECT_EQ(t.flights_started, t.flights_ended) << "seed " << seed;  // C6
    EXPECT_TRUE(t.healed) << "seed " << seed;
    EXPECT_FALSE(t.fault_after_heal) << "seed " << seed;
  }
}

TEST(World, DefaultScenarioExercisesEveryBehaviourAndFault) {
  std::set<std::string> seen;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    const RunReport report = run_world(spec_for(seed));
    for (const Event& event : report.history.events()) {
      seen.insert(std::string(event_kind_name(event.body)));
      if (const auto* step = std::get_if<GateStep>(&event.body)) {
        seen.insert(std::string(core::outcome_name(step->decision.outcome)));
      } else if (const auto* fault = std::get_if<FaultFired>(&event.body)) {
        seen.insert(fault->site);
      } else if (const auto* call = std::get_if<CallStarted>(&event.body)) {
        if (call->attempt == 2) seen.insert("retry");
        if (call->op.kind == core::OpKind::release) seen.insert("release_call");
      } else if (const auto* response = std::get_if<ResponseReceived>(&event.body)) {
        if (response->response.denied) seen.insert(std::string(core::denial_text(response->response.reason)));
      }
    }
  }
  for (const char* expected :
       {"request", "response", "leave", "flight_start", "flight_end", "call", "call_end", "gate", "fault",
        "store_restart", "faults_healed", "admitted", "resumed", "switched", "rotated", "blocked_capacity", "alive",
        "gone", "released", "store.reset", "store.busy", "store.timeout", "store.lost_reply", "store.noscript",
        "store.restart", "clock.backwards", "broker.status", "broker.reset", "broker.hang", "broker.malformed",
        "retry", "release_call", "capacity", "unavailable", "resolve-failed"}) {
    EXPECT_TRUE(seen.contains(expected)) << expected;
  }
}

TEST(World, P1_LegacyGateOverAdmitsWithinTheFirstSeeds) {
  std::optional<std::uint64_t> first;
  for (std::uint64_t seed = 0; seed < 50 && !first; ++seed) {
    const RunReport report = run_world(spec_for(seed, GateMode::legacy));
    if (report.violation && report.violation->rule == "P1") {
      first = seed;
      EXPECT_EQ(report.runtime.outcome, Outcome::stopped);
      // The run stopped at the step that broke the rule.
      EXPECT_EQ(report.history.events().back().step, report.violation->step);
    }
  }
  ASSERT_TRUE(first.has_value());
  EXPECT_LT(*first, 10u);
}

TEST(World, P1_AnOverAdmittingGateIsCaught) {
  // A gate that believes the pool has one slot more than it has.
  RunSpec spec = spec_for(0);
  spec.hooks.gate = [](core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
    core::GateConfig loose = config;
    loose.capacity = config.capacity + 1;
    return core::apply(pool, op, loose);
  };
  int caught = 0;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    spec.seed = seed;
    const RunReport report = run_world(spec);
    if (report.violation && report.violation->rule == "P1") ++caught;
  }
  EXPECT_GT(caught, 0);
}

TEST(World, StopOnViolationOffRecordsTheWholeRun) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    RunSpec spec = spec_for(seed, GateMode::legacy);
    spec.stop_on_violation = false;
    const RunReport report = run_world(spec);
    if (!report.violation) continue;
    EXPECT_EQ(report.runtime.outcome, Outcome::finished) << describe(report);
    EXPECT_GT(report.history.size(), report.violation->event_index + 1);
    return;
  }
  FAIL() << "no legacy violation in 50 seeds";
}

TEST(World, P3_ReplayingChoicesAndDrawsReproducesTheRun) {
  for (const GateMode gate : {GateMode::atomic, GateMode::legacy}) {
    for (std::uint64_t seed : {1u, 4u, 9u}) {
      const RunReport original = run_world(spec_for(seed, gate));
      RunSpec replay = spec_for(seed, gate);
      replay.strategy.kind = StrategyKind::replay;
      replay.strategy.replay = original.runtime.choices();
      replay.replay_draws = original.draws;
      // The replay's own seed must not matter: everything comes from the recording.
      replay.seed = seed + 1000;
      const RunReport again = run_world(replay);
      EXPECT_EQ(again.fingerprint, original.fingerprint) << "seed " << seed;
      EXPECT_EQ(event_hashes(again.history), event_hashes(original.history)) << "seed " << seed;
      EXPECT_FALSE(again.draw_divergence.has_value()) << "seed " << seed;
      EXPECT_FALSE(again.schedule_divergence.has_value()) << "seed " << seed;
      EXPECT_EQ(again.violation.has_value(), original.violation.has_value());
    }
  }
}

TEST(World, ReplayNamesTheFirstDivergentDraw) {
  const RunReport original = run_world(spec_for(2));
  ASSERT_GT(original.draws.size(), 10u);
  std::vector<Draw> edited = original.draws;
  edited[5].bound += 1;  // a question the code never asks
  RunSpec replay = spec_for(2);
  replay.strategy.kind = StrategyKind::replay;
  replay.strategy.replay = original.runtime.choices();
  replay.replay_draws = edited;
  const RunReport again = run_world(replay);
  ASSERT_TRUE(again.draw_divergence.has_value());
  EXPECT_EQ(again.draw_divergence->index, 5u);
  ASSERT_TRUE(again.draw_divergence->expected.has_value());
  EXPECT_EQ(again.draw_divergence->expected->bound, edited[5].bound);
  EXPECT_EQ(again.draw_divergence->got.bound, original.draws[5].bound);
}

TEST(World, PctStrategyRunsCleanly) {
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    RunSpec spec = spec_for(seed);
    spec.strategy = *parse_strategy("pct:3");
    const RunReport report = run_world(spec);
    EXPECT_FALSE(report.violation.has_value()) << "seed " << seed << ": " << describe(report);
    EXPECT_EQ(report.runtime.outcome, Outcome::finished) << "seed " << seed;
  }
}

TEST(World, TheHistoryBoundEndsTheRun) {
  RunSpec spec = spec_for(0);
  spec.scenario.max_events = 40;
  const RunReport report = run_world(spec);
  EXPECT_TRUE(report.history_full);
  EXPECT_EQ(report.history.size(), 40u);
  EXPECT_EQ(report.runtime.outcome, Outcome::stopped);
  // A run cut short proves nothing, so it is never a pass.
  ASSERT_TRUE(report.violation.has_value());
  EXPECT_EQ(report.violation->rule, "RUN");
}

TEST(World, TheStepLimitEndsTheRun) {
  RunSpec spec = spec_for(0);
  spec.scenario.max_steps = 30;
  const RunReport report = run_world(spec);
  EXPECT_EQ(report.runtime.outcome, Outcome::step_limit);
  EXPECT_EQ(report.runtime.steps, 30u);
  ASSERT_TRUE(report.violation.has_value());
  EXPECT_EQ(report.violation->rule, "RUN");
  EXPECT_EQ(report.violation->message, "the run ended step_limit");
}

TEST(World, GateModeNamesRoundTrip) {
  for (const GateMode mode : {GateMode::atomic, GateMode::legacy}) {
    EXPECT_EQ(gate_mode_from_name(gate_mode_name(mode)), mode);
  }
  EXPECT_FALSE(gate_mode_from_name("racy").has_value());
}

TEST(World, DefaultScenarioIsValid) {
  EXPECT_FALSE(check_scenario(default_scenario()).has_value());
  Scenario bad = default_scenario();
  bad.heal_ms = bad.gate.ttl_ms;
  ASSERT_TRUE(check_scenario(bad).has_value());
  EXPECT_NE(check_scenario(bad)->message.find("heal_ms"), std::string::npos);
  bad = default_scenario();
  bad.instances = 17;
  EXPECT_TRUE(check_scenario(bad).has_value());
  bad = default_scenario();
  bad.clients[0].count = 65;
  EXPECT_TRUE(check_scenario(bad).has_value());
  bad = default_scenario();
  bad.faults.store_busy_permille = 1001;
  EXPECT_TRUE(check_scenario(bad).has_value());
}

}  // namespace
}  // namespace turnstile::sim
