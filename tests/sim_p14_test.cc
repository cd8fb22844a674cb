// P14 (SPEC P, H): the simulator records every store command as its caller
// saw it (sim/gate_history.h) and lincheck checks the history at the end of
// every run. The real core passes on many seeds of the default scenario with
// every fault; a store that is not atomic, injected here, fails with the
// stuck operation named; so does the legacy gate once other rules no longer
// stop its runs first. Restarts split the history into epochs; busy commands
// are left out, unanswered ones pending; a bound that runs out is reported
// as unknown, never as a violation.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "sim/gate_history.h"
#include "sim/history_format.h"
#include "sim/lincheck.h"
#include "sim/sleep.h"
#include "sim/world.h"

namespace turnstile::sim {
namespace {

RunSpec spec_for(std::uint64_t seed, GateMode gate = GateMode::atomic) {
  RunSpec spec;
  spec.seed = seed;
  spec.gate = gate;
  return spec;
}

std::string describe(const RunReport& report) {
  std::string text(outcome_name(report.runtime.outcome));
  if (report.violation) text += " " + report.violation->rule + ": " + report.violation->message;
  if (report.p14) text += " p14 " + std::string(verdict_name(report.p14->verdict)) + " " + report.p14->message;
  return text;
}

// A store whose gate is not one atomic step: it reads the pool's token
// counter, lets the scheduler run another command, then issues tokens from
// what it read. Two admissions in flight at once take the same token, which
// no sequential order of G can give. Capacity, rotation and pruning are
// core::apply's on the pool as it is after the pause, so the rules that look
// at one gate step at a time mostly see nothing wrong.
core::Decision token_race_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  const core::Token read = pool.last_token;
  yield_point();
  pool.last_token = read;
  return core::apply(pool, op, config);
}

// The default scenario without restarts: the injected gate holds a reference
// to its pool across a scheduling point, which a restart would destroy.
RunSpec token_race_spec(std::uint64_t seed) {
  RunSpec spec = spec_for(seed);
  spec.scenario.faults.store_restart_permille = 0;
  spec.hooks.gate = token_race_gate;
  return spec;
}

TEST(P14, P14_AtomicGateHistoriesAreLinearizableUnderEveryFault) {
  int with_restarts = 0;
  int with_pending = 0;
  int with_busy = 0;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    const RunReport report = run_world(spec_for(seed));
    ASSERT_FALSE(report.violation.has_value()) << "seed " << seed << ": " << describe(report);
    ASSERT_TRUE(report.p14.has_value()) << "seed " << seed;
    EXPECT_EQ(report.p14->verdict, LincheckVerdict::linearizable) << "seed " << seed << ": " << describe(report);
    EXPECT_GT(report.p14->operations, 1u) << "seed " << seed;
    if (report.gate_history.restarts > 0) ++with_restarts;
    if (report.p14->pending > 0) ++with_pending;
    for (const GateCommand& command : report.gate_history.commands) {
      if (command.end == CommandEnd::not_run) {
        ++with_busy;
        break;
      }
    }
  }
  // The seeds exercised what the recording has to get right.
  EXPECT_GT(with_restarts, 0);
  EXPECT_GT(with_pending, 10);
  EXPECT_GT(with_busy, 0);
}

TEST(P14, P14_GateHistoryTextIsReadBackWithTheSameVerdict) {
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    const RunReport report = run_world(spec_for(seed));
    const std::string text = gate_history_text(report.gate_history);
    auto parsed = read_history(text, "history.jsonl");
    ASSERT_TRUE(std::holds_alternative<std::vector<HistoryOp>>(parsed))
        << "seed " << seed << ": " << std::get<HistoryError>(parsed).message;
    const auto& ops = std::get<std::vector<HistoryOp>>(parsed);
    ASSERT_TRUE(report.p14.has_value());
    EXPECT_EQ(ops.size(), report.p14->operations) << "seed " << seed;
    // Written again, byte for byte the same.
    std::string again;
    for (const HistoryOp& op : ops) append_history_line(again, op);
    EXPECT_EQ(again, text) << "seed " << seed;
    for (const PoolHistory& pool : split_by_pool(ops)) {
      EXPECT_EQ(check_pool(pool, LincheckLimits{}).verdict, LincheckVerdict::linearizable)
          << "seed " << seed << " pool " << pool.pool;
    }
  }
}

TEST(P14, P14_ANonAtomicStoreFailsWithTheStuckOperationNamed) {
  int caught = 0;
  int caught_only_by_p14 = 0;
  for (std::uint64_t seed = 0; seed < 60; ++seed) {
    RunSpec spec = token_race_spec(seed);
    spec.stop_on_violation = false;
    const RunReport report = run_world(spec);
    ASSERT_TRUE(report.p14.has_value()) << "seed " << seed;
    if (report.p14->verdict != LincheckVerdict::not_linearizable) continue;
    ++caught;
    ASSERT_TRUE(report.p14->stuck.has_value()) << "seed " << seed;
    const GateCommand& stuck = report.gate_history.commands[*report.p14->stuck];
    EXPECT_EQ(stuck.end, CommandEnd::answered);
    // The stuck operation is an admission that got a token already issued.
    EXPECT_EQ(stuck.op.kind, core::OpKind::admit) << describe(report);
    EXPECT_TRUE(core::is_new_token(stuck.out.outcome)) << describe(report);
    EXPECT_NE(report.p14->message.find("admit of client " + stuck.op.client), std::string::npos)
        << report.p14->message;
    EXPECT_NE(report.p14->message.find("token " + std::to_string(stuck.out.token)), std::string::npos)
        << report.p14->message;

    // With the other rules stopping the run as usual, P14 is the verdict
    // whenever nothing else broke first.
    const RunReport stopped = run_world(token_race_spec(seed));
    ASSERT_TRUE(stopped.violation.has_value()) << "seed " << seed;
    if (stopped.violation->rule != "P14") continue;
    ++caught_only_by_p14;
    EXPECT_EQ(stopped.violation->step, stuck.ret_step);
    EXPECT_EQ(stopped.violation->at_ms, stuck.ret_ms);
    EXPECT_EQ(stopped.violation->message, report.p14->message);
    EXPECT_LT(stopped.violation->event_index, stopped.history.size());
    EXPECT_EQ(stopped.history.events()[stopped.violation->event_index].step, stuck.ret_step);
  }
  EXPECT_GT(caught, 5);
  // Some of the races no rule but P14 sees.
  EXPECT_GT(caught_only_by_p14, 0);
}

TEST(P14, P14_TheSameStoreRunAtomicallyPasses) {
  // The injected gate without its pause: the same code, one atomic step.
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    RunSpec spec = token_race_spec(seed);
    spec.hooks.gate = [](core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
      const core::Token read = pool.last_token;
      pool.last_token = read;
      return core::apply(pool, op, config);
    };
    const RunReport report = run_world(spec);
    EXPECT_FALSE(report.violation.has_value()) << "seed " << seed << ": " << describe(report);
  }
}

TEST(P14, P14_LegacyGateFailsWhenOtherRulesDoNotStopTheRun) {
  int caught = 0;
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    RunSpec spec = spec_for(seed, GateMode::legacy);
    spec.stop_on_violation = false;
    const RunReport report = run_world(spec);
    ASSERT_TRUE(report.p14.has_value()) << "seed " << seed;
    if (report.p14->verdict != LincheckVerdict::not_linearizable) continue;
    ++caught;
    ASSERT_TRUE(report.p14->stuck.has_value());
    // The legacy gate's race is in its admit: read, decide, write.
    EXPECT_EQ(report.gate_history.commands[*report.p14->stuck].op.kind, core::OpKind::admit) << describe(report);
  }
  EXPECT_GT(caught, 5);
}

TEST(P14, P3_P14IsDeterministic) {
  for (std::uint64_t seed : {2u, 11u, 23u}) {
    const RunReport a = run_world(spec_for(seed));
    const RunReport b = run_world(spec_for(seed));
    ASSERT_TRUE(a.p14 && b.p14);
    EXPECT_EQ(a.fingerprint, b.fingerprint);
    EXPECT_EQ(a.p14->steps, b.p14->steps);
    EXPECT_EQ(gate_history_text(a.gate_history), gate_history_text(b.gate_history));
  }
}

TEST(P14, P14_ABoundThatRunsOutIsUnknownAndNoViolation) {
  RunSpec spec = spec_for(3);
  spec.p14_limits.max_search_bytes = 1;
  const RunReport report = run_world(spec);
  EXPECT_FALSE(report.violation.has_value()) << describe(report);
  ASSERT_TRUE(report.p14.has_value());
  EXPECT_EQ(report.p14->verdict, LincheckVerdict::unknown);
  EXPECT_EQ(report.p14->unknown_cause, "memory limit");
  EXPECT_NE(report.p14->message.find("memory limit"), std::string::npos) << report.p14->message;
}

TEST(P14, P14_NotRunAfterAnEarlierViolationStopsTheRun) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const RunReport report = run_world(spec_for(seed, GateMode::legacy));
    if (!report.violation || report.violation->rule == "P14") continue;
    EXPECT_FALSE(report.p14.has_value()) << describe(report);
    return;
  }
  FAIL() << "no legacy violation in 20 seeds";
}

// ---------------------------------------------------------------------------
// The recording, by hand.

core::Op admit(const std::string& client, core::Ms now) {
  core::Op op;
  op.kind = core::OpKind::admit;
  op.client = client;
  op.episode = "tt1";
  op.request = client + ".r1";
  op.issued_at = now;
  op.now = now;
  return op;
}

core::Decision admitted(core::Token token, std::int64_t held) {
  core::Decision decision;
  decision.outcome = core::Outcome::admitted;
  decision.token = token;
  decision.held = held;
  return decision;
}

TEST(P14, P14_EachFaultBecomesWhatItsCallerCanKnow) {
  GateHistoryRecorder recorder(core::GateConfig{2, 3000, 1500}, 100);
  const auto answered = recorder.begin("p", admit("c1", 0), 0, 1);
  recorder.answered(answered, admitted(1, 1), 5, 2);
  const auto busy = recorder.begin("p", admit("c2", 10), 10, 3);
  recorder.not_run(busy);
  const auto lost = recorder.begin("p", admit("c3", 20), 20, 4);
  recorder.no_reply(lost);
  (void)recorder.begin("p", admit("c4", 30), 30, 5);  // cut off by the run's end

  const GateHistoryOps ops = gate_history_ops(recorder.history());
  ASSERT_EQ(ops.ops.size(), 4u);  // the config op, c1, c3, c4: busy is left out
  EXPECT_TRUE(ops.ops[0].is_config());
  EXPECT_EQ(ops.ops[0].call, 0);
  EXPECT_EQ(ops.ops[0].ret, 0);
  EXPECT_EQ(ops.command_of[0], std::nullopt);
  // Completed: virtual time plus one, with its answer.
  EXPECT_EQ(ops.ops[1].process, "c1");
  EXPECT_EQ(ops.ops[1].call, 1);
  EXPECT_EQ(ops.ops[1].ret, 6);
  ASSERT_TRUE(ops.ops[1].out.has_value());
  EXPECT_EQ(*ops.ops[1].out, admitted(1, 1));
  // Lost reply and cut off: pending.
  EXPECT_EQ(ops.command_of[2], 2u);
  EXPECT_TRUE(ops.ops[2].pending());
  EXPECT_TRUE(ops.ops[3].pending());
  for (std::size_t i = 0; i < ops.ops.size(); ++i) EXPECT_EQ(ops.ops[i].line, i + 1);
}

TEST(P14, P14_RestartsSplitTheHistoryIntoEpochs) {
  // c1 is admitted; the store restarts while c2's command travels; after it,
  // c3 gets token 1 again from the emptied store. One pool could not explain
  // token 1 twice; each epoch on its own can.
  GateHistoryRecorder recorder(core::GateConfig{2, 3000, 1500}, 100);
  const auto c1 = recorder.begin("p", admit("c1", 0), 0, 1);
  recorder.answered(c1, admitted(1, 1), 0, 1);
  const auto c2 = recorder.begin("p", admit("c2", 10), 10, 2);
  recorder.restart();
  recorder.answered(c2, admitted(1, 1), 12, 3);
  const auto c3 = recorder.begin("p", admit("c3", 20), 20, 4);
  recorder.answered(c3, admitted(2, 2), 20, 4);
  const GateHistory history = recorder.history();
  EXPECT_EQ(history.restarts, 1u);

  const GateHistoryOps ops = gate_history_ops(history);
  std::vector<std::string> lines;
  for (const HistoryOp& op : ops.ops) lines.push_back(op.pool + " " + op.process + (op.pending() ? " pending" : ""));
  const std::vector<std::string> expected = {"p setup",           "p c1",           "p c2 pending",
                                             "p.restart1 setup", "p.restart1 c2 pending", "p.restart1 c3"};
  EXPECT_EQ(lines, expected);
  EXPECT_EQ(check_gate_history(history).verdict, LincheckVerdict::linearizable);

  // The same answers without the restart are not linearizable: the split is
  // what makes them explainable, not a blind spot.
  GateHistory no_restart = history;
  no_restart.restarts = 0;
  for (GateCommand& command : no_restart.commands) command.first_epoch = command.last_epoch = 0;
  const GateCheck check = check_gate_history(no_restart);
  EXPECT_EQ(check.verdict, LincheckVerdict::not_linearizable);
  ASSERT_TRUE(check.stuck.has_value());
  EXPECT_NE(check.message.find("admit of client"), std::string::npos) << check.message;
}

TEST(P14, P14_EpochPoolNamesFitV1) {
  EXPECT_EQ(epoch_pool_name("p", 0), "p");
  EXPECT_EQ(epoch_pool_name("p", 3), "p.restart3");
  const std::string long_pool(64, 'x');
  EXPECT_EQ(epoch_pool_name(long_pool, 12).size(), 64u);
  EXPECT_EQ(epoch_pool_name(long_pool, 12).substr(54), ".restart12");
}

TEST(P14, P14_ATruncatedHistoryIsUnknown) {
  GateHistoryRecorder recorder(core::GateConfig{}, 1);
  const auto first = recorder.begin("p", admit("c1", 0), 0, 1);
  recorder.answered(first, admitted(1, 1), 0, 1);
  EXPECT_EQ(recorder.begin("p", admit("c2", 0), 0, 1), GateHistoryRecorder::kNotRecorded);
  const GateCheck check = check_gate_history(recorder.history());
  EXPECT_EQ(check.verdict, LincheckVerdict::unknown);
  EXPECT_EQ(check.unknown_cause, "history bound");
}

TEST(P14, P14_AStepBoundIsDeterministicallyUnknown) {
  // Fourteen heartbeats of sessions that do not exist, all in flight at once,
  // and an admission with a token no order can give: the search tries every
  // subset of the heartbeats before it can say so, far more than the bound.
  GateHistoryRecorder recorder(core::GateConfig{2, 3000, 1500}, 100);
  std::vector<GateHistoryRecorder::Handle> handles;
  for (int i = 0; i < 14; ++i) {
    core::Op op;
    op.kind = core::OpKind::heartbeat;
    op.client = "h" + std::to_string(i);
    op.token = 5;
    op.now = 10;
    handles.push_back(recorder.begin("p", op, 0, 1));
  }
  const auto impossible = recorder.begin("p", admit("c1", 10), 0, 1);
  core::Decision gone;
  gone.outcome = core::Outcome::gone;
  for (const auto handle : handles) recorder.answered(handle, gone, 100, 2);
  recorder.answered(impossible, admitted(99, 1), 100, 2);

  GateCheckLimits limits;
  limits.max_steps = 4096;
  const GateCheck a = check_gate_history(recorder.history(), limits);
  const GateCheck b = check_gate_history(recorder.history(), limits);
  EXPECT_EQ(a.verdict, LincheckVerdict::unknown) << a.message;
  EXPECT_EQ(a.unknown_cause, "step limit");
  EXPECT_EQ(b.verdict, a.verdict);
  EXPECT_EQ(b.steps, a.steps);
  EXPECT_NE(a.message.find("step limit"), std::string::npos) << a.message;

  // Given room, the same history is found not linearizable.
  EXPECT_EQ(check_gate_history(recorder.history(), GateCheckLimits{std::uint64_t{1} << 26, std::size_t{1} << 30}).verdict,
            LincheckVerdict::not_linearizable);
}

}  // namespace
}  // namespace turnstile::sim
