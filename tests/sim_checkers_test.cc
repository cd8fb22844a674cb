// The P rules of SPEC as checkers over hand-built histories: for every
// checker, a short history that keeps the rule (no violation) and one that a
// deliberately broken gate, retry, coalescer or route would record (the
// checker names its rule and the event that broke it).

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/gate.h"
#include "core/response.h"
#include "core/route.h"
#include "sim/checkers.h"
#include "sim/history.h"
#include "sim/scenario.h"
#include "sim/world.h"
#include "tests/broken_variants.h"

namespace turnstile::sim {
namespace {

using core::Ms;

// ---------------------------------------------------------------------------
// Building histories.

// A small gate: two slots, live for 100 ms, idle for 50 more.
core::GateConfig small_gate() { return core::GateConfig{2, 100, 50}; }

// The default flow: store A=300 B=800 J=[10,50] M=50; broker A=2500 B=6000 J=[50,250] M=250.
Scenario test_scenario() {
  Scenario scenario;
  scenario.gate = small_gate();
  return scenario;
}

core::Session session(std::string client, core::Token token, Ms last_seen, std::string request = "",
                      Ms issued_at = -1) {
  core::Session s;
  s.client = std::move(client);
  s.episode = "e1";
  s.token = token;
  s.admitted_at = last_seen;
  s.last_seen = last_seen;
  s.last_request = request.empty() ? "r-" + s.client : std::move(request);
  s.last_issued = issued_at < 0 ? last_seen : issued_at;
  s.last_decision = core::Decision{core::Outcome::admitted, token, {}, 1};
  return s;
}

core::PoolState pool(Ms last_now, core::Token last_token, std::vector<core::Session> sessions) {
  return core::PoolState{last_now, last_token, std::move(sessions)};
}

core::Op admit(std::string client, std::string episode, std::string request, Ms issued_at, Ms now) {
  core::Op op;
  op.kind = core::OpKind::admit;
  op.client = std::move(client);
  op.episode = std::move(episode);
  op.request = std::move(request);
  op.issued_at = issued_at;
  op.now = now;
  return op;
}

core::Op heartbeat(std::string client, core::Token token, Ms now) {
  core::Op op;
  op.kind = core::OpKind::heartbeat;
  op.client = std::move(client);
  op.token = token;
  op.now = now;
  return op;
}

core::Op release(std::string client, core::Token token, Ms now) {
  core::Op op = heartbeat(std::move(client), token, now);
  op.kind = core::OpKind::release;
  return op;
}

// A step of the real gate (core::apply) from `before`.
GateStep real_step(const core::PoolState& before, const core::Op& op, const core::GateConfig& config = small_gate()) {
  core::PoolState after = before;
  const core::Decision decision = core::apply(after, op, config);
  return GateStep{"p", op, decision, config, before, std::move(after), false};
}

RequestSent request(core::WaiterId waiter, std::string client, std::string request_id, Ms issued_at,
                    InstanceId instance = 0, std::string episode = "e1") {
  return RequestSent{instance, waiter,
                     core::StreamRequest{"p", std::move(client), std::move(episode), std::move(request_id), issued_at}};
}

FlightStarted flight_started(core::FlightId flight, std::string client, InstanceId instance = 0,
                             std::string episode = "e1") {
  return FlightStarted{instance, flight, core::FlightKey{"p", std::move(client), std::move(episode)}};
}

CallStarted store_call(core::FlightId flight, std::uint32_t call, int attempt, core::Op op, Ms deadline,
                       InstanceId instance = 0) {
  return CallStarted{instance, flight, Dependency::store, call, attempt, std::move(op), deadline};
}

CallStarted broker_call(core::FlightId flight, std::uint32_t call, int attempt, Ms deadline, InstanceId instance = 0) {
  return CallStarted{instance, flight, Dependency::broker, call, attempt, core::Op{}, deadline};
}

CallEnded call_ended(core::FlightId flight, Dependency dependency, std::uint32_t call, core::OutcomeClass outcome,
                     bool timed_out = false, std::optional<Ms> retry_after_ms = std::nullopt, InstanceId instance = 0) {
  return CallEnded{instance, flight, dependency, call, outcome, retry_after_ms, timed_out};
}

core::Response granted(core::Token token) {
  return core::Response::granted({core::Stream{"s", "http://x/1?session=" + std::to_string(token)}});
}

ResponseReceived answer(core::WaiterId waiter, core::Response response, InstanceId instance = 0) {
  return ResponseReceived{instance, waiter, std::move(response), core::kNoToken};
}

// A history being written: each add returns the new event's index.
class Recorder {
 public:
  std::uint64_t add(Ms at_ms, EventBody body) {
    const std::uint64_t index = history_.size();
    EXPECT_TRUE(history_.append(step_++, at_ms, std::move(body)));
    return index;
  }
  const History& history() const { return history_; }

 private:
  History history_{10000};
  std::uint64_t step_ = 0;
};

EndState quiescent_end(Ms end_ms) { return EndState{end_ms, true, {0, 0}, 0}; }

// One checker of make_checkers, fed the whole history and then the end.
std::optional<Violation> run_rule(std::string_view rule, const History& history, const EndState& end,
                                  const Scenario& scenario = test_scenario()) {
  for (std::unique_ptr<Checker>& checker : make_checkers(scenario)) {
    if (checker->rule() != rule) continue;
    for (const Event& event : history.events()) {
      if (std::optional<Violation> violation = checker->on_event(event)) return violation;
    }
    return checker->at_end(history, end);
  }
  ADD_FAILURE() << "no checker for " << rule;
  return std::nullopt;
}

std::optional<Violation> run_rule(std::string_view rule, const Recorder& recorder, Ms end_ms = 100000) {
  return run_rule(rule, recorder.history(), quiescent_end(end_ms));
}

// Asserts that `violation` names `rule` at event `index`, with a one-line message.
void expect_violation(const std::optional<Violation>& violation, std::string_view rule, std::uint64_t index) {
  ASSERT_TRUE(violation.has_value()) << "expected a " << rule << " violation at event " << index;
  EXPECT_EQ(violation->rule, rule) << violation->message;
  EXPECT_EQ(violation->event_index, index) << violation->message;
  EXPECT_FALSE(violation->message.empty());
  EXPECT_EQ(violation->message.find('\n'), std::string::npos) << violation->message;
}

void expect_clean(const std::optional<Violation>& violation) {
  EXPECT_FALSE(violation.has_value()) << violation->rule << " at event " << violation->event_index << ": "
                                      << violation->message;
}

// ---------------------------------------------------------------------------
// Gate histories driven by the real gate: every gate rule holds.

// Admits, a heartbeat, a switch, a block, a rotation of the oldest idle, a
// replay, a superseded late intent, a release and a prune, all by core::apply.
Recorder real_gate_history() {
  Recorder r;
  core::PoolState state;
  auto step = [&](Ms at, const core::Op& op) {
    GateStep s = real_step(state, op);
    state = s.after;
    r.add(at, std::move(s));
  };
  step(0, admit("c1", "e1", "r1", 0, 0));        // admitted 1
  step(10, admit("c2", "e1", "r2", 10, 10));     // admitted 2
  step(20, admit("c3", "e1", "r3", 20, 20));     // blocked: both live
  step(30, heartbeat("c1", 1, 30));              // alive
  step(40, admit("c1", "e2", "r4", 40, 40));     // switched: token 3
  step(41, admit("c1", "e2", "r4", 40, 41));     // replay
  step(42, admit("c1", "e1", "r0", 35, 42));     // superseded
  step(43, heartbeat("c1", 1, 43));              // gone: token 1 was switched away
  step(125, admit("c3", "e1", "r5", 125, 125));  // c2 idle (age 115): rotated
  step(126, release("c3", 4, 126));              // released
  step(300, admit("c4", "e1", "r6", 300, 300));  // everything else pruned
  return r;
}

TEST(Checkers, RealGateKeepsEveryGateRule) {
  const Recorder r = real_gate_history();
  // The history does what the comments say, so each rule is exercised.
  const auto& events = r.history().events();
  ASSERT_EQ(events.size(), 11u);
  EXPECT_EQ(std::get<GateStep>(events[2].body).decision.outcome, core::Outcome::blocked_capacity);
  EXPECT_EQ(std::get<GateStep>(events[4].body).decision.outcome, core::Outcome::switched);
  EXPECT_EQ(std::get<GateStep>(events[6].body).decision.outcome, core::Outcome::superseded);
  EXPECT_EQ(std::get<GateStep>(events[7].body).decision.outcome, core::Outcome::gone);
  EXPECT_EQ(std::get<GateStep>(events[8].body).decision.outcome, core::Outcome::rotated);
  EXPECT_EQ(std::get<GateStep>(events[9].body).decision.outcome, core::Outcome::released);
  for (std::string_view rule : {"P1", "P2", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P17"}) {
    SCOPED_TRACE(rule);
    expect_clean(run_rule(rule, r));
  }
  expect_clean(check_history(test_scenario(), r.history(), quiescent_end(1000)));
}

// ---------------------------------------------------------------------------
// P1 capacity.

TEST(Checkers, P1_CatchesAGateThatOverAdmits) {
  Recorder r;
  const core::PoolState full = pool(10, 2, {session("c1", 1, 0), session("c2", 2, 10)});
  GateStep over = real_step(full, admit("c3", "e1", "r3", 20, 20));
  ASSERT_EQ(over.decision.outcome, core::Outcome::blocked_capacity);
  // The broken gate admits anyway.
  over.after.sessions.push_back(session("c3", 3, 20));
  over.after.last_token = 3;
  over.decision = core::Decision{core::Outcome::admitted, 3, {}, 3};
  r.add(5, real_step(pool(0, 1, {session("c1", 1, 0)}), admit("c2", "e1", "r2", 10, 10)));
  const std::uint64_t bad = r.add(20, over);
  expect_violation(run_rule("P1", r), "P1", bad);
  expect_violation(check_history(test_scenario(), r.history(), quiescent_end(100)), "P1", bad);
}

TEST(Checkers, P1_AllowsHeldAboveCapacityToStayAfterCapacityIsLowered) {
  Recorder r;
  // Three live sessions, then capacity drops to 2: G13 keeps them, and a
  // newcomer is blocked; the held count never grows.
  core::GateConfig lowered = small_gate();
  const core::PoolState three = pool(10, 3, {session("c1", 1, 0), session("c2", 2, 5), session("c3", 3, 10)});
  r.add(20, real_step(three, admit("c4", "e1", "r4", 20, 20), lowered));
  r.add(21, real_step(three, heartbeat("c1", 1, 21), lowered));
  expect_clean(run_rule("P1", r));
}

// ---------------------------------------------------------------------------
// P2 one session per client.

TEST(Checkers, P2_CatchesASecondSessionForOneClient) {
  Recorder r;
  GateStep twice = real_step(pool(0, 1, {session("c1", 1, 0)}), admit("c1", "e2", "r2", 10, 10));
  ASSERT_EQ(twice.decision.outcome, core::Outcome::switched);
  twice.after.sessions.push_back(session("c1", 1, 0));  // the old session kept beside the new one
  r.add(0, real_step(pool(0, 0, {}), admit("c1", "e1", "r1", 0, 0)));
  const std::uint64_t bad = r.add(10, twice);
  expect_violation(run_rule("P2", r), "P2", bad);
}

// ---------------------------------------------------------------------------
// P4 live sessions are never rotated.

TEST(Checkers, P4_CatchesARotatedLiveSession) {
  Recorder r;
  // Both sessions live at 50 (ttl 100): the real gate blocks c3.
  const core::PoolState full = pool(40, 2, {session("c1", 1, 0), session("c2", 2, 40)});
  GateStep step = real_step(full, admit("c3", "e1", "r3", 50, 50));
  ASSERT_EQ(step.decision.outcome, core::Outcome::blocked_capacity);
  expect_clean([&] {
    Recorder ok;
    ok.add(50, step);
    return run_rule("P4", ok);
  }());
  // The broken gate rotates c1 out although it is live.
  step.after.sessions = {session("c2", 2, 40), session("c3", 3, 50)};
  step.after.last_token = 3;
  step.decision = core::Decision{core::Outcome::rotated, 3, "c1", 2};
  const std::uint64_t bad = r.add(50, step);
  expect_violation(run_rule("P4", r), "P4", bad);
}

TEST(Checkers, P4_CatchesALiveSessionLostByAWrite) {
  Recorder r;
  // A write based on a stale read puts back a pool without c2's fresh session.
  GateStep step = real_step(pool(40, 2, {session("c1", 1, 0), session("c2", 2, 40)}), heartbeat("c1", 1, 50));
  ASSERT_EQ(step.decision.outcome, core::Outcome::alive);
  std::erase_if(step.after.sessions, [](const core::Session& s) { return s.client == "c2"; });
  const std::uint64_t bad = r.add(50, step);
  expect_violation(run_rule("P4", r), "P4", bad);
}

TEST(Checkers, P4_AllowsAnOwnerToReleaseItsLiveSession) {
  Recorder r;
  r.add(50, real_step(pool(40, 2, {session("c1", 1, 0), session("c2", 2, 40)}), release("c2", 2, 50)));
  expect_clean(run_rule("P4", r));
}

// ---------------------------------------------------------------------------
// P5 the victim is the oldest idle.

TEST(Checkers, P5_CatchesNewestIdleVictim) {
  // At 140 both are idle (ages 140 and 120, ttl 100, grace 50); c1 is older.
  const core::PoolState full = pool(20, 2, {session("c1", 1, 0), session("c2", 2, 20)});
  GateStep step = real_step(full, admit("c3", "e1", "r3", 140, 140));
  ASSERT_EQ(step.decision.outcome, core::Outcome::rotated);
  ASSERT_EQ(step.decision.victim, "c1");
  {
    Recorder ok;
    ok.add(140, step);
    expect_clean(run_rule("P5", ok));
  }
  // The broken gate picks the newest idle session.
  step.decision.victim = "c2";
  step.after.sessions = {session("c1", 1, 0), session("c3", 3, 140)};
  Recorder r;
  const std::uint64_t bad = r.add(140, step);
  expect_violation(run_rule("P5", r), "P5", bad);
}

TEST(Checkers, P5_CatchesARotationWithAFreeSlot) {
  // One idle session and a free slot: G6 admits without a victim.
  GateStep step = real_step(pool(0, 1, {session("c1", 1, 0)}), admit("c3", "e1", "r3", 120, 120));
  ASSERT_EQ(step.decision.outcome, core::Outcome::admitted);
  step.decision = core::Decision{core::Outcome::rotated, 2, "c1", 1};
  step.after.sessions = {session("c3", 2, 120)};
  Recorder r;
  const std::uint64_t bad = r.add(120, step);
  expect_violation(run_rule("P5", r), "P5", bad);
}

TEST(Checkers, P5_P4_JudgeNoReplayedRotationAsANewOne) {
  // c3 rotated c1 out at 140; its retry (same request id) replays that
  // decision later, when no session is idle any more (G3): no new rotation.
  const core::PoolState full = pool(20, 2, {session("c1", 1, 0), session("c2", 2, 20)});
  GateStep rotation = real_step(full, admit("c3", "e1", "r3", 140, 140));
  ASSERT_EQ(rotation.decision.outcome, core::Outcome::rotated);
  GateStep live = real_step(rotation.after, heartbeat("c2", 2, 160));
  GateStep replay = real_step(live.after, admit("c3", "e1", "r3", 140, 170));
  ASSERT_EQ(replay.decision.outcome, core::Outcome::rotated);
  ASSERT_EQ(replay.decision.victim, "c1");
  Recorder r;
  r.add(140, rotation);
  r.add(160, live);
  r.add(170, replay);
  expect_clean(run_rule("P4", r));
  expect_clean(run_rule("P5", r));
  expect_clean(check_history(test_scenario(), r.history(), quiescent_end(200)));
}

// ---------------------------------------------------------------------------
// P6 blocked only when full with no idle session.

TEST(Checkers, P6_CatchesABlockWhileASessionIsIdle) {
  const core::PoolState full = pool(20, 2, {session("c1", 1, 0), session("c2", 2, 20)});
  // At 110 c1 is idle (age 110): the real gate rotates it out.
  GateStep step = real_step(full, admit("c3", "e1", "r3", 110, 110));
  ASSERT_EQ(step.decision.outcome, core::Outcome::rotated);
  step.decision = core::Decision{core::Outcome::blocked_capacity, core::kNoToken, {}, 2};
  step.after = full;
  step.after.last_now = 110;
  Recorder r;
  const std::uint64_t bad = r.add(110, step);
  expect_violation(run_rule("P6", r), "P6", bad);
}

TEST(Checkers, P6_CatchesABlockWithAFreeSlot) {
  GateStep step = real_step(pool(0, 1, {session("c1", 1, 0)}), admit("c2", "e1", "r2", 10, 10));
  step.decision = core::Decision{core::Outcome::blocked_capacity, core::kNoToken, {}, 1};
  step.after = pool(10, 1, {session("c1", 1, 0)});
  Recorder r;
  r.add(0, real_step(pool(0, 0, {}), admit("c1", "e1", "r1", 0, 0)));
  const std::uint64_t bad = r.add(10, step);
  expect_violation(run_rule("P6", r), "P6", bad);
}

TEST(Checkers, P6_AllowsABlockWhenFullOfLiveSessions) {
  Recorder r;
  r.add(50, real_step(pool(40, 2, {session("c1", 1, 0), session("c2", 2, 40)}), admit("c3", "e1", "r3", 50, 50)));
  expect_clean(run_rule("P6", r));
}

// ---------------------------------------------------------------------------
// P7 owner never blocked.

TEST(Checkers, P7_CatchesABlockedOwner) {
  // c1 is idle (age 120) in a full pool of one slot; the real gate switches it.
  const core::GateConfig one{1, 100, 50};
  GateStep step = real_step(pool(0, 1, {session("c1", 1, 0)}), admit("c1", "e2", "r2", 120, 120), one);
  ASSERT_EQ(step.decision.outcome, core::Outcome::switched);
  {
    Recorder ok;
    ok.add(120, step);
    expect_clean(run_rule("P7", ok));
  }
  step.decision = core::Decision{core::Outcome::blocked_capacity, core::kNoToken, {}, 1};
  step.after = pool(120, 1, {session("c1", 1, 0)});
  Recorder r;
  const std::uint64_t bad = r.add(120, step);
  expect_violation(run_rule("P7", r), "P7", bad);
  // The owner's block is P7's, not P6's.
  expect_violation(check_history(test_scenario(), r.history(), quiescent_end(200)), "P7", bad);
}

// ---------------------------------------------------------------------------
// P8 replay.

TEST(Checkers, P8_CatchesAReplayThatChangesState) {
  core::PoolState state;
  GateStep first = real_step(state, admit("c1", "e1", "r1", 0, 0));
  GateStep replay = real_step(first.after, admit("c1", "e1", "r1", 0, 30));
  ASSERT_EQ(replay.decision.outcome, core::Outcome::admitted);
  ASSERT_EQ(replay.decision.token, first.decision.token);
  {
    Recorder ok;
    ok.add(0, first);
    ok.add(30, replay);
    expect_clean(run_rule("P8", ok));
  }
  // A broken gate refreshes last_seen on a replay.
  replay.after.sessions[0].last_seen = 30;
  Recorder r;
  r.add(0, first);
  const std::uint64_t bad = r.add(30, replay);
  expect_violation(run_rule("P8", r), "P8", bad);
}

TEST(Checkers, P8_CatchesAReplayWithANewDecision) {
  core::PoolState state;
  GateStep first = real_step(state, admit("c1", "e1", "r1", 0, 0));
  // A gate without G3 issues a second token for a retried request.
  GateStep replay = real_step(first.after, admit("c1", "e1", "r1", 0, 30));
  replay.decision = core::Decision{core::Outcome::admitted, 2, {}, 1};
  replay.after.sessions[0].token = 2;
  replay.after.last_token = 2;
  Recorder r;
  r.add(0, first);
  const std::uint64_t bad = r.add(30, replay);
  expect_violation(run_rule("P8", r), "P8", bad);
}

// ---------------------------------------------------------------------------
// P9 gone sessions are pruned.

TEST(Checkers, P9_CatchesAGoneSessionLeftInThePool) {
  // At 200, c1 (last_seen 0) is gone: ttl 100 + grace 50 < 200.
  GateStep step = real_step(pool(0, 1, {session("c1", 1, 0)}), admit("c2", "e1", "r2", 200, 200));
  ASSERT_EQ(step.after.sessions.size(), 1u);
  {
    Recorder ok;
    ok.add(200, step);
    expect_clean(run_rule("P9", ok));
  }
  step.after.sessions.insert(step.after.sessions.begin(), session("c1", 1, 0));  // a gate that never prunes
  Recorder r;
  const std::uint64_t bad = r.add(200, step);
  expect_violation(run_rule("P9", r), "P9", bad);
}

// ---------------------------------------------------------------------------
// P10 dead tokens stay dead.

TEST(Checkers, P10_CatchesARevivedDeadToken) {
  Recorder r;
  core::PoolState state;
  GateStep s1 = real_step(state, admit("c1", "e1", "r1", 0, 0));       // token 1
  GateStep s2 = real_step(s1.after, admit("c1", "e2", "r2", 10, 10));  // switched: token 2, token 1 dies
  GateStep s3 = real_step(s2.after, heartbeat("c1", 1, 20));           // gone
  ASSERT_EQ(s3.decision.outcome, core::Outcome::gone);
  GateStep s4 = real_step(s3.after, heartbeat("c1", 1, 30));
  // The broken gate says the dead token is alive.
  s4.decision = core::Decision{core::Outcome::alive, core::kNoToken, {}, 1};
  r.add(0, s1);
  r.add(10, s2);
  r.add(20, s3);
  const std::uint64_t bad = r.add(30, s4);
  expect_violation(run_rule("P10", r), "P10", bad);
}

TEST(Checkers, P10_CatchesAReleasedTokenReleasedAgain) {
  Recorder r;
  GateStep s1 = real_step(pool(0, 0, {}), admit("c1", "e1", "r1", 0, 0));
  GateStep s2 = real_step(s1.after, release("c1", 1, 10));
  ASSERT_EQ(s2.decision.outcome, core::Outcome::released);
  GateStep s3 = real_step(s2.after, release("c1", 1, 20));
  ASSERT_EQ(s3.decision.outcome, core::Outcome::gone);
  s3.decision.outcome = core::Outcome::released;
  r.add(0, s1);
  r.add(10, s2);
  const std::uint64_t bad = r.add(20, s3);
  expect_violation(run_rule("P10", r), "P10", bad);
}

TEST(Checkers, P10_ForgetsTokensWhenTheStoreRestarts) {
  // After a restart the pool's counter starts again at 1 (G9 holds per store
  // lifetime), so token 1 may legitimately be issued and be alive again.
  Recorder r;
  GateStep s1 = real_step(pool(0, 0, {}), admit("c1", "e1", "r1", 0, 0));
  GateStep s2 = real_step(s1.after, release("c1", 1, 10));
  r.add(0, s1);
  r.add(10, s2);
  r.add(15, StoreRestarted{});
  GateStep s3 = real_step(pool(0, 0, {}), admit("c1", "e1", "r2", 20, 20));
  ASSERT_EQ(s3.decision.token, 1u);
  r.add(20, s3);
  r.add(30, real_step(s3.after, heartbeat("c1", 1, 30)));
  expect_clean(run_rule("P10", r));
}

// ---------------------------------------------------------------------------
// P11 retries. Store: A=300 B=800 J=[10,50] M=50. Broker: A=2500 B=6000.

// A flight whose gate phase retries once after a timeout and whose resolve succeeds.
Recorder retried_flight() {
  Recorder r;
  const core::Op op = admit("c1", "e1", "r1", 1000, 1000);
  r.add(1000, request(1, "c1", "r1", 1000));
  r.add(1000, flight_started(1, "c1"));
  r.add(1000, store_call(1, 1, 1, op, 1300));
  r.add(1300, call_ended(1, Dependency::store, 1, core::OutcomeClass::transient, true));
  core::Op retry = op;
  retry.now = 1330;
  r.add(1330, store_call(1, 2, 2, retry, 1630));  // delay 30 in [10, 50]; deadline min(1330+300, 1800)
  r.add(1340, real_step(pool(0, 0, {}), retry, small_gate()));
  r.add(1340, call_ended(1, Dependency::store, 2, core::OutcomeClass::success));
  r.add(1340, broker_call(1, 3, 1, 3840));
  r.add(1400, call_ended(1, Dependency::broker, 3, core::OutcomeClass::success));
  r.add(1400, answer(1, granted(1)));
  r.add(1400, FlightEnded{0, 1});
  return r;
}

TEST(Checkers, P11_AcceptsARetryWithinR1ToR6) {
  const Recorder r = retried_flight();
  expect_clean(run_rule("P11", r));
  expect_clean(check_history(test_scenario(), r.history(), quiescent_end(10000)));
}

TEST(Checkers, P11_AcceptsARetryDelayedByRetryAfter) {
  Recorder r;
  r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, admit("c1", "e1", "r1", 0, 0), 300));
  r.add(10, call_ended(1, Dependency::store, 1, core::OutcomeClass::success));
  r.add(10, broker_call(1, 2, 1, 2510));
  // 503 with Retry-After 400: the delay is max(jitter, 400).
  r.add(100, call_ended(1, Dependency::broker, 2, core::OutcomeClass::transient, false, 400));
  r.add(500, broker_call(1, 3, 2, 3000));
  r.add(600, call_ended(1, Dependency::broker, 3, core::OutcomeClass::success));
  r.add(600, FlightEnded{0, 1});
  expect_clean(run_rule("P11", r));
}

TEST(Checkers, P11_CatchesARetryThatIgnoresTheBudget) {
  Recorder r;
  const core::Op op = admit("c1", "e1", "r1", 1000, 1000);
  r.add(1000, flight_started(1, "c1"));
  r.add(1000, store_call(1, 1, 1, op, 1300));
  r.add(1300, call_ended(1, Dependency::store, 1, core::OutcomeClass::transient, true));
  // Attempt 2 gets a full A from its start, past t0 + B = 1800.
  const std::uint64_t bad = r.add(1540, store_call(1, 2, 2, op, 1840));
  // (a delay of 240 is also outside J, but the budget is what is reported first)
  expect_violation(run_rule("P11", r), "P11", bad);
  EXPECT_NE(run_rule("P11", r)->message.find("R1"), std::string::npos);
}

TEST(Checkers, P11_CatchesAFirstAttemptDeadlinePastR2) {
  Recorder r;
  r.add(1000, flight_started(1, "c1"));
  const std::uint64_t bad = r.add(1000, store_call(1, 1, 1, admit("c1", "e1", "r1", 1000, 1000), 1500));
  expect_violation(run_rule("P11", r), "P11", bad);
  EXPECT_NE(run_rule("P11", r)->message.find("R2"), std::string::npos);
}

TEST(Checkers, P11_CatchesAThirdAttempt) {
  Recorder r;
  r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, admit("c1", "e1", "r1", 0, 0), 300));
  r.add(100, call_ended(1, Dependency::store, 1, core::OutcomeClass::transient));
  r.add(120, store_call(1, 2, 2, admit("c1", "e1", "r1", 0, 120), 420));
  r.add(200, call_ended(1, Dependency::store, 2, core::OutcomeClass::transient));
  const std::uint64_t bad = r.add(220, store_call(1, 3, 3, admit("c1", "e1", "r1", 0, 220), 520));
  expect_violation(run_rule("P11", r), "P11", bad);
  EXPECT_NE(run_rule("P11", r)->message.find("R4"), std::string::npos);
}

TEST(Checkers, P11_CatchesASecondAttemptAfterAPermanentOutcome) {
  Recorder r;
  r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, admit("c1", "e1", "r1", 0, 0), 300));
  r.add(10, call_ended(1, Dependency::store, 1, core::OutcomeClass::success));
  r.add(10, broker_call(1, 2, 1, 2510));
  r.add(100, call_ended(1, Dependency::broker, 2, core::OutcomeClass::permanent));  // a 501
  const std::uint64_t bad = r.add(200, broker_call(1, 3, 2, 2700));
  expect_violation(run_rule("P11", r), "P11", bad);
  EXPECT_NE(run_rule("P11", r)->message.find("permanent"), std::string::npos);
}

TEST(Checkers, P11_CatchesARetryDelayOutsideTheJitter) {
  Recorder r;
  r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, admit("c1", "e1", "r1", 0, 0), 300));
  r.add(100, call_ended(1, Dependency::store, 1, core::OutcomeClass::transient));
  // J = [10, 50]: a retry at once is too early.
  const std::uint64_t bad = r.add(100, store_call(1, 2, 2, admit("c1", "e1", "r1", 0, 100), 400));
  expect_violation(run_rule("P11", r), "P11", bad);
  EXPECT_NE(run_rule("P11", r)->message.find("R5"), std::string::npos);
}

// ---------------------------------------------------------------------------
// P12 coalescing.

// Two waiters of one key: the second joins the first's flight; both get the same answer.
Recorder coalesced_flight(const core::Response& second_answer) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, admit("c1", "e1", "r1", 0, 0), 300));
  r.add(5, request(2, "c1", "r1", 5));  // a burst: joins flight 1
  r.add(10, call_ended(1, Dependency::store, 1, core::OutcomeClass::success));
  r.add(10, broker_call(1, 2, 1, 2510));
  r.add(50, call_ended(1, Dependency::broker, 2, core::OutcomeClass::success));
  r.add(50, answer(1, granted(1)));
  r.add(50, answer(2, second_answer));
  r.add(50, FlightEnded{0, 1});
  // A later request starts a new flight (C3).
  r.add(60, request(3, "c1", "r2", 60));
  r.add(60, flight_started(2, "c1"));
  r.add(60, store_call(2, 1, 1, admit("c1", "e1", "r2", 60, 60), 360));
  r.add(70, call_ended(2, Dependency::store, 1, core::OutcomeClass::success));
  r.add(70, broker_call(2, 2, 1, 2570));
  r.add(90, call_ended(2, Dependency::broker, 2, core::OutcomeClass::success));
  r.add(90, answer(3, granted(1)));
  r.add(90, FlightEnded{0, 2});
  return r;
}

TEST(Checkers, P12_AcceptsIdenticalAnswersToOneFlightsWaiters) {
  const Recorder r = coalesced_flight(granted(1));
  expect_clean(run_rule("P12", r));
  expect_clean(check_history(test_scenario(), r.history(), quiescent_end(1000)));
}

TEST(Checkers, P12_CatchesWaitersOfOneFlightWithDifferentAnswers) {
  const Recorder r = coalesced_flight(core::Response::denial(core::DenialReason::resolve_failed));
  expect_violation(run_rule("P12", r), "P12", 8);
  EXPECT_NE(run_rule("P12", r)->message.find("C2"), std::string::npos);
}

TEST(Checkers, P12_CatchesTwoFlightsForOneKey) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, flight_started(1, "c1"));
  r.add(5, request(2, "c1", "r1", 5));
  const std::uint64_t bad = r.add(5, flight_started(2, "c1"));  // should have joined flight 1
  expect_violation(run_rule("P12", r), "P12", bad);
  EXPECT_NE(run_rule("P12", r)->message.find("C1"), std::string::npos);
}

TEST(Checkers, P12_AllowsOneKeyOnTwoInstances) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0, 0));
  r.add(0, flight_started(1, "c1", 0));
  r.add(5, request(1, "c1", "r1", 5, 1));
  r.add(5, flight_started(1, "c1", 1));
  expect_clean(run_rule("P12", r));
}

TEST(Checkers, P12_CatchesAWaiterLeftBehindWhenItsFlightEnds) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, flight_started(1, "c1"));
  r.add(5, request(2, "c1", "r1", 5));
  r.add(50, answer(1, core::Response::denial(core::DenialReason::capacity)));
  r.add(50, FlightEnded{0, 1});
  // Waiter 2 is answered only later: C3 answers every waiter in the same step.
  const std::uint64_t bad = r.add(70, answer(2, core::Response::denial(core::DenialReason::capacity)));
  expect_violation(run_rule("P12", r), "P12", bad);
  EXPECT_NE(run_rule("P12", r)->message.find("C3"), std::string::npos);
}

TEST(Checkers, P12_IgnoresImmediateAnswersAndWaitersThatLeft) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, flight_started(1, "c1"));
  r.add(1, request(2, "c1", "r1", 1));
  r.add(2, WaiterLeft{0, 2});  // C4: the flight goes on for the others
  r.add(3, request(3, "c2", "bad id!", 3));
  r.add(3, answer(3, core::Response::denial(core::DenialReason::policy)));
  r.add(50, answer(1, core::Response::denial(core::DenialReason::capacity)));
  r.add(50, FlightEnded{0, 1});
  r.add(60, request(4, "c3", "r4", 60));
  expect_clean(run_rule("P12", r));
}

// ---------------------------------------------------------------------------
// P13 no flight leak.

TEST(Checkers, P13_CatchesALeakedFlight) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  const std::uint64_t leaked = r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, admit("c1", "e1", "r1", 0, 0), 300));
  r.add(300, call_ended(1, Dependency::store, 1, core::OutcomeClass::transient, true));
  r.add(300, WaiterLeft{0, 1});
  // The run ends quiescent well within the bound, but the flight never ended.
  expect_violation(run_rule("P13", r.history(), quiescent_end(400)), "P13", leaked);
}

TEST(Checkers, P13_CatchesAFlightStillRunningPastItsBound) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, flight_started(1, "c1"));
  // store B + broker B + store B = 7600 ms after its start, it must have ended.
  r.add(7600, request(2, "c2", "r2", 7600));
  const std::uint64_t bad = r.add(7601, request(3, "c3", "r3", 7601));
  expect_violation(run_rule("P13", r.history(), EndState{7601, false, {1, 0}, 0}), "P13", bad);
}

TEST(Checkers, P13_CatchesAFlightTableNotEmptyAtQuiescence) {
  const Recorder r = coalesced_flight(granted(1));
  const std::uint64_t last = r.history().size() - 1;
  expect_clean(run_rule("P13", r.history(), quiescent_end(1000)));
  expect_violation(run_rule("P13", r.history(), EndState{1000, true, {0, 1}, 0}), "P13", last);
  // A run that did not reach quiescence may still hold flights.
  expect_clean(run_rule("P13", r.history(), EndState{1000, false, {0, 1}, 0}));
}

// ---------------------------------------------------------------------------
// P15 failed resolve releases.

// A flight admitted with token 1 whose resolve fails permanently; with
// `release_first` it releases the token before answering, as F5 demands.
Recorder failed_resolve(bool release_first) {
  Recorder r;
  const core::Op op = admit("c1", "e1", "r1", 0, 0);
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, flight_started(1, "c1"));
  r.add(0, store_call(1, 1, 1, op, 300));
  GateStep gate = real_step(pool(0, 0, {}), op);
  const core::PoolState admitted = gate.after;
  r.add(5, std::move(gate));
  r.add(10, call_ended(1, Dependency::store, 1, core::OutcomeClass::success));
  r.add(10, broker_call(1, 2, 1, 2510));
  r.add(20, call_ended(1, Dependency::broker, 2, core::OutcomeClass::permanent));
  if (release_first) {
    const core::Op free_it = release("c1", 1, 20);
    r.add(20, store_call(1, 3, 1, free_it, 320));
    r.add(25, real_step(admitted, free_it));
    r.add(30, call_ended(1, Dependency::store, 3, core::OutcomeClass::success));
  }
  r.add(30, answer(1, core::Response::denial(core::DenialReason::resolve_failed)));
  r.add(30, FlightEnded{0, 1});
  return r;
}

TEST(Checkers, P15_AcceptsAFailedResolveThatReleases) {
  const Recorder r = failed_resolve(true);
  expect_clean(run_rule("P15", r));
  expect_clean(check_history(test_scenario(), r.history(), quiescent_end(1000)));
}

TEST(Checkers, P15_CatchesAFlightThatKeepsItsSlotAfterAFailedResolve) {
  const Recorder r = failed_resolve(false);
  // Event 7 is the answer that went out before any release.
  ASSERT_TRUE(std::holds_alternative<ResponseReceived>(r.history().events()[7].body));
  expect_violation(run_rule("P15", r), "P15", 7);
}

TEST(Checkers, P15_AsksNoReleaseOfAResumedSession) {
  // A resumed session's token is not the flight's to free (F5: only new tokens).
  Recorder r;
  const core::PoolState held = pool(0, 1, {session("c1", 1, 0)});
  const core::Op op = admit("c1", "e1", "r1", 10, 10);
  r.add(10, request(1, "c1", "r1", 10));
  r.add(10, flight_started(1, "c1"));
  r.add(10, store_call(1, 1, 1, op, 310));
  GateStep gate = real_step(held, op);
  ASSERT_EQ(gate.decision.outcome, core::Outcome::resumed);
  r.add(12, std::move(gate));
  r.add(15, call_ended(1, Dependency::store, 1, core::OutcomeClass::success));
  r.add(15, broker_call(1, 2, 1, 2515));
  r.add(20, call_ended(1, Dependency::broker, 2, core::OutcomeClass::permanent));
  r.add(20, answer(1, core::Response::denial(core::DenialReason::resolve_failed)));
  r.add(20, FlightEnded{0, 1});
  expect_clean(run_rule("P15", r));
}

// ---------------------------------------------------------------------------
// P16 every request answered once, within F6.

TEST(Checkers, P16_CatchesARequestAnsweredTwice) {
  Recorder r = coalesced_flight(granted(1));
  const std::uint64_t bad = r.add(95, answer(3, granted(1)));
  expect_violation(run_rule("P16", r), "P16", bad);
}

TEST(Checkers, P16_CatchesARequestNeverAnswered) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(0, answer(1, granted(1)));
  const std::uint64_t lost = r.add(10, request(2, "c2", "r2", 10));
  r.add(20, request(3, "c3", "r3", 20));
  r.add(20, WaiterLeft{0, 3});  // gone away: needs no answer
  expect_violation(run_rule("P16", r.history(), quiescent_end(100)), "P16", lost);
  // Not quiescent and within its bound, the request may still be answered.
  expect_clean(run_rule("P16", r.history(), EndState{100, false, {0, 0}, 0}));
  // Past its bound (10 + 7600), it is a violation either way.
  expect_violation(run_rule("P16", r.history(), EndState{7611, false, {0, 0}, 0}), "P16", lost);
}

TEST(Checkers, P16_CatchesAnAnswerLaterThanF6) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(7600, request(2, "c2", "r2", 7600));
  const std::uint64_t bad = r.add(7601, answer(1, granted(1)));
  expect_violation(run_rule("P16", r), "P16", bad);
}

TEST(Checkers, P16_AcceptsAnAnswerToAWaiterThatJustLeft) {
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  r.add(40, WaiterLeft{0, 1});
  r.add(40, answer(1, granted(1)));       // already on its way when the client left
  r.add(50, request(1, "c1", "r2", 50));  // the id is free again
  r.add(60, answer(1, granted(1)));
  expect_clean(run_rule("P16", r));
}

// ---------------------------------------------------------------------------
// P17 last intent wins.

TEST(Checkers, P17_CatchesALateIntentLeftApplied) {
  // c1 zapped from e1 (request r1 at 10) to e2 (request r2 at 20); r1's retry arrives late.
  const core::PoolState zapped = pool(20, 2, {session("c1", 2, 20, "r2", 20)});
  const core::Op late = admit("c1", "e1", "r1", 10, 30);
  GateStep step = real_step(zapped, late);
  ASSERT_EQ(step.decision.outcome, core::Outcome::superseded);
  {
    Recorder ok;
    ok.add(30, step);
    expect_clean(run_rule("P17", ok));
  }
  // A gate without G4 switches the client back to the old episode.
  step.decision = core::Decision{core::Outcome::switched, 3, {}, 1};
  step.after.last_token = 3;
  step.after.sessions[0].episode = "e1";
  step.after.sessions[0].token = 3;
  step.after.sessions[0].last_request = "r1";
  step.after.sessions[0].last_issued = 10;
  step.after.sessions[0].last_seen = 30;
  Recorder r;
  const std::uint64_t bad = r.add(30, step);
  expect_violation(run_rule("P17", r), "P17", bad);
}

TEST(Checkers, P17_StartsAfreshOnceTheSessionEnds) {
  // The session is released; a late older intent then admits anew (G6),
  // which G4 allows: the gate keeps nothing of a client without a session.
  Recorder r;
  GateStep s1 = real_step(pool(0, 0, {}), admit("c1", "e2", "r2", 20, 20));
  GateStep s2 = real_step(s1.after, release("c1", 1, 25));
  GateStep s3 = real_step(s2.after, admit("c1", "e1", "r1", 10, 30));
  ASSERT_EQ(s3.decision.outcome, core::Outcome::admitted);
  r.add(20, s1);
  r.add(25, s2);
  r.add(30, s3);
  expect_clean(run_rule("P17", r));
}

TEST(Checkers, P17_StartsAfreshOnceTheSessionIsGone) {
  // The session of r5 ages out (G2); a late r4 then admits anew.
  Recorder r;
  GateStep s1 = real_step(pool(0, 0, {}), admit("c1", "e2", "r5", 50, 50));
  GateStep s2 = real_step(s1.after, admit("c1", "e1", "r4", 40, 250));
  ASSERT_EQ(s2.decision.outcome, core::Outcome::admitted);
  r.add(50, s1);
  r.add(250, s2);
  expect_clean(run_rule("P17", r));
}

// ---------------------------------------------------------------------------
// The set of checkers and the history runner.

TEST(Checkers, MakeCheckersGivesOnePerRuleInRuleOrder) {
  std::vector<std::string> rules;
  for (const std::unique_ptr<Checker>& checker : make_checkers(test_scenario())) rules.emplace_back(checker->rule());
  EXPECT_EQ(rules, (std::vector<std::string>{"P1", "P2", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12", "P13",
                                             "P15", "P16", "P17"}));
}

TEST(Checkers, RuleTextIsSpecsText) {
  EXPECT_EQ(rule_text("P1"), "capacity (G14)");
  EXPECT_EQ(rule_text("P5"), "the victim is the oldest idle (G7)");
  EXPECT_EQ(rule_text("P16"), "every request answered once, within F6");
  for (int i = 1; i <= 17; ++i) EXPECT_FALSE(rule_text("P" + std::to_string(i)).empty()) << i;
  EXPECT_TRUE(rule_text("P18").empty());
}

TEST(Checkers, CheckHistoryReportsTheEarliestEventThenTheRuleOrder) {
  // A request never answered (event 0, found at the end) and an over-admit
  // (event 1, found as it happens): the over-admit stops the run first.
  Recorder r;
  r.add(0, request(1, "c1", "r1", 0));
  GateStep over = real_step(pool(10, 2, {session("c1", 1, 0), session("c2", 2, 10)}), admit("c3", "e1", "r3", 20, 20));
  over.after.sessions.push_back(session("c3", 3, 20));
  over.decision = core::Decision{core::Outcome::admitted, 3, {}, 3};
  r.add(20, over);
  expect_violation(check_history(test_scenario(), r.history(), quiescent_end(100)), "P1", 1);

  // Only end-of-run problems: the earliest event wins.
  Recorder end_only;
  end_only.add(0, request(1, "c1", "r1", 0));
  end_only.add(0, flight_started(1, "c1"));
  expect_violation(check_history(test_scenario(), end_only.history(), quiescent_end(100)), "P16", 0);
}

// ---------------------------------------------------------------------------
// Whole runs: the real core under the world keeps every rule, and broken
// implementations injected through WorldHooks are caught.

// The first violation among `seeds` runs of `spec` (seed varied), or nothing.
std::optional<Violation> first_violation(RunSpec spec, std::uint64_t seeds) {
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    spec.seed = seed;
    RunReport report = run_world(spec);
    if (report.violation) {
      // The violation names an event of the run, at its step.
      EXPECT_LT(report.violation->event_index, report.history.size());
      if (report.violation->event_index < report.history.size()) {
        EXPECT_EQ(report.history.events()[report.violation->event_index].step, report.violation->step);
      }
      return report.violation;
    }
  }
  return std::nullopt;
}

TEST(CheckersWorld, RealCoreKeepsEveryRule) {
  RunSpec spec;
  expect_clean(first_violation(spec, 40));
}

TEST(CheckersWorld, P1_CatchesAGateThatOverAdmits) {
  RunSpec spec;
  // Admits even when the pool is full of live sessions.
  spec.hooks.gate = [](core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
    core::Decision decision = core::apply(pool, op, config);
    if (decision.outcome != core::Outcome::blocked_capacity) return decision;
    core::Session extra;
    extra.client = op.client;
    extra.episode = op.episode;
    extra.token = ++pool.last_token;
    extra.admitted_at = pool.last_now;
    extra.last_seen = pool.last_now;
    extra.last_request = op.request;
    extra.last_issued = op.issued_at;
    decision =
        core::Decision{core::Outcome::admitted, extra.token, {}, static_cast<std::int64_t>(pool.sessions.size() + 1)};
    extra.last_decision = decision;
    pool.sessions.push_back(extra);
    return decision;
  };
  const std::optional<Violation> violation = first_violation(spec, 20);
  ASSERT_TRUE(violation.has_value());
  EXPECT_EQ(violation->rule, "P1") << violation->message;
}

// A Server that forwards to the real route; subclasses rewrite the effects
// of each input (tests/broken_variants.h).
using broken::ForwardingServer;

TEST(CheckersWorld, RealCoreBehindAForwardingServerKeepsEveryRule) {
  RunSpec spec;
  spec.hooks.make_server = [](const core::RouteConfig& config) { return std::make_unique<ForwardingServer>(config); };
  expect_clean(first_violation(spec, 10));
}

// Answers every waiter twice.
using broken::AnswersTwice;

TEST(CheckersWorld, P16_CatchesARouteThatAnswersTwice) {
  RunSpec spec;
  spec.hooks.make_server = [](const core::RouteConfig& config) { return std::make_unique<AnswersTwice>(config); };
  const std::optional<Violation> violation = first_violation(spec, 5);
  ASSERT_TRUE(violation.has_value());
  EXPECT_EQ(violation->rule, "P16") << violation->message;
  EXPECT_NE(violation->message.find("answered twice"), std::string::npos) << violation->message;
}

// Gives every store attempt a deadline one budget too late.
class LongStoreDeadlines final : public ForwardingServer {
 public:
  explicit LongStoreDeadlines(const core::RouteConfig& config)
      : ForwardingServer(config), budget_ms_(config.flow.store.budget_ms) {}

 protected:
  std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) override {
    for (core::RouteEffect& effect : effects) {
      if (auto* call = std::get_if<core::RouteStoreCall>(&effect)) call->call.deadline += budget_ms_;
    }
    return effects;
  }

 private:
  Ms budget_ms_;
};

TEST(CheckersWorld, P11_CatchesStoreCallsThatOutliveTheBudget) {
  RunSpec spec;
  spec.hooks.make_server = [](const core::RouteConfig& config) { return std::make_unique<LongStoreDeadlines>(config); };
  const std::optional<Violation> violation = first_violation(spec, 5);
  ASSERT_TRUE(violation.has_value());
  EXPECT_EQ(violation->rule, "P11") << violation->message;
  EXPECT_NE(violation->message.find("R1"), std::string::npos) << violation->message;
}

// Swallows the answers of flights whose resolve failed and keeps those
// flights in its table forever.
class LeaksFailedFlights final : public ForwardingServer {
 public:
  using ForwardingServer::ForwardingServer;
  std::size_t flight_count() const override { return inner().flight_count() + leaked_.size(); }
  bool has_flight(core::FlightId flight) const override {
    return inner().has_flight(flight) || leaked_.contains(flight);
  }

 protected:
  std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) override {
    std::vector<core::RouteEffect> out;
    bool failed = false;
    for (core::RouteEffect& effect : effects) {
      if (const auto* call = std::get_if<core::RouteStoreCall>(&effect)) running_.insert(call->flight);
      if (const auto* call = std::get_if<core::RouteBrokerCall>(&effect)) running_.insert(call->flight);
      if (const auto* answer = std::get_if<core::RouteRespond>(&effect)) {
        if (answer->response.denied && answer->response.reason == core::DenialReason::resolve_failed) {
          failed = true;
          continue;
        }
      }
      out.push_back(std::move(effect));
    }
    // The flights the real route ended in this input: kept forever if it swallowed their answer.
    for (auto it = running_.begin(); it != running_.end();) {
      if (inner().has_flight(*it)) {
        ++it;
        continue;
      }
      if (failed) leaked_.insert(*it);
      it = running_.erase(it);
    }
    return out;
  }

 private:
  std::set<core::FlightId> running_;
  std::set<core::FlightId> leaked_;
};

TEST(CheckersWorld, P13_P16_CatchARouteThatNeverFinishesAFlightWhoseResolveFailed) {
  RunSpec spec;
  // A broker that often fails for good (501), so resolves fail.
  spec.scenario.faults.broker_501_permille = 1000;
  spec.hooks.make_server = [](const core::RouteConfig& config) { return std::make_unique<LeaksFailedFlights>(config); };
  const std::optional<Violation> violation = first_violation(spec, 30);
  ASSERT_TRUE(violation.has_value());
  EXPECT_TRUE(violation->rule == "P13" || violation->rule == "P16") << violation->rule << ": " << violation->message;
}

}  // namespace
}  // namespace turnstile::sim
