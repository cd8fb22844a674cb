// The fake Redis and the fake broker (sim/fake_store.h, sim/fake_broker.h):
// each fault does what SPEC R3 says to one call; the atomic gate is one step
// that never over-admits (G14), while the legacy read-decide-write gate
// over-admits under some interleavings, which is the race the simulator
// exists to find (P1).

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sim/fake_broker.h"
#include "sim/fake_store.h"
#include "sim/runtime.h"
#include "sim/sleep.h"

namespace turnstile::sim {
namespace {

core::Op admit(const std::string& client, const std::string& request, core::Ms now) {
  core::Op op;
  op.kind = core::OpKind::admit;
  op.client = client;
  op.episode = "tt1:1:1";
  op.request = request;
  op.issued_at = now;
  op.now = now;
  return op;
}

core::Op heartbeat(const std::string& client, core::Token token, core::Ms now) {
  core::Op op;
  op.kind = core::OpKind::heartbeat;
  op.client = client;
  op.token = token;
  op.now = now;
  return op;
}

core::Op release(const std::string& client, core::Token token, core::Ms now) {
  core::Op op = heartbeat(client, token, now);
  op.kind = core::OpKind::release;
  return op;
}

StoreOptions options(GateMode mode = GateMode::atomic, StoreFaults faults = {}) {
  StoreOptions o;
  o.mode = mode;
  o.config = core::GateConfig{.capacity = 2, .ttl_ms = 3000, .grace_ms = 1500};
  o.faults = faults;
  return o;
}

// A fake store, its draws and what it recorded.
struct Harness {
  explicit Harness(StoreOptions o, Draws d = Draws(1))
      : draws(std::move(d)), store(std::move(o), draws, [this](EventBody body) { events.push_back(std::move(body)); }) {}

  template <typename T>
  std::vector<T> recorded() const {
    std::vector<T> out;
    for (const EventBody& body : events) {
      if (const auto* e = std::get_if<T>(&body)) out.push_back(*e);
    }
    return out;
  }

  Draws draws;
  std::vector<EventBody> events;
  FakeStore store;
};

// Runs the calls one after another in one fiber; returns their replies and
// the virtual time each ended at.
struct Done {
  std::optional<core::StoreReply> reply;
  core::Ms at_ms = 0;
};
std::vector<Done> run_calls(Harness& h, const std::vector<core::Op>& ops, std::uint64_t seed = 1) {
  std::vector<Done> done;
  Runtime rt({.seed = seed});
  rt.spawn("caller", [&] {
    for (const core::Op& op : ops) done.push_back(Done{h.store.call("p", op), now_ms()});
  });
  const RunResult result = rt.run(10'000);
  EXPECT_EQ(result.outcome, Outcome::finished);
  return done;
}

TEST(FakeStore, G14_AtomicStepIsRecordedWithPoolBeforeAndAfter) {
  Harness h(options());
  const auto done = run_calls(h, {admit("c1", "r1", 100)});
  ASSERT_EQ(done.size(), 1u);
  ASSERT_TRUE(done[0].reply && done[0].reply->decision);
  EXPECT_EQ(done[0].reply->result.outcome_class, core::OutcomeClass::success);
  EXPECT_EQ(done[0].reply->decision->outcome, core::Outcome::admitted);
  EXPECT_EQ(done[0].reply->decision->token, 1u);

  const auto steps = h.recorded<GateStep>();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].pool, "p");
  EXPECT_FALSE(steps[0].legacy);
  EXPECT_TRUE(steps[0].before.sessions.empty());
  ASSERT_EQ(steps[0].after.sessions.size(), 1u);
  EXPECT_EQ(steps[0].after, *h.store.pool("p"));
  EXPECT_EQ(steps[0].config.capacity, 2);
}

TEST(FakeStore, G1_ABackwardsCallerClockNeverMovesThePoolBack) {
  Harness h(options());
  (void)run_calls(h, {admit("c1", "r1", 1000), heartbeat("c1", 1, 500)});
  const auto steps = h.recorded<GateStep>();
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[1].op.now, 500);
  EXPECT_EQ(steps[1].after.last_now, 1000);
  EXPECT_EQ(steps[1].decision.outcome, core::Outcome::alive);
}

TEST(FakeStore, R3_ResetIsTransientAndNotApplied) {
  Harness h(options(GateMode::atomic, StoreFaults{.reset_permille = 1000}));
  const auto done = run_calls(h, {admit("c1", "r1", 0)});
  ASSERT_TRUE(done[0].reply);
  EXPECT_FALSE(done[0].reply->decision);
  EXPECT_EQ(done[0].reply->result.outcome_class, core::OutcomeClass::transient);
  EXPECT_TRUE(h.recorded<GateStep>().empty());
  EXPECT_EQ(h.store.pool("p"), nullptr);
  ASSERT_EQ(h.recorded<FaultFired>().size(), 1u);
  EXPECT_EQ(h.recorded<FaultFired>()[0].site, "store.reset");
}

TEST(FakeStore, R3_BusyOrLoadingIsTransientAndNotApplied) {
  Harness h(options(GateMode::atomic, StoreFaults{.busy_permille = 1000}));
  const auto done = run_calls(h, {admit("c1", "r1", 0), admit("c2", "r2", 0), admit("c3", "r3", 0)});
  for (const Done& d : done) {
    ASSERT_TRUE(d.reply);
    EXPECT_EQ(d.reply->result.outcome_class, core::OutcomeClass::transient);
  }
  EXPECT_TRUE(h.recorded<GateStep>().empty());
  for (const FaultFired& f : h.recorded<FaultFired>()) {
    EXPECT_EQ(f.site, "store.busy");
    EXPECT_TRUE(f.detail == "BUSY" || f.detail == "LOADING") << f.detail;
  }
}

TEST(FakeStore, R3_TimeoutNeverRepliesAndIsNotApplied) {
  Harness h(options(GateMode::atomic, StoreFaults{.timeout_permille = 1000}));
  const auto done = run_calls(h, {admit("c1", "r1", 0)});
  EXPECT_FALSE(done[0].reply);
  EXPECT_TRUE(h.recorded<GateStep>().empty());
}

TEST(FakeStore, R3a_LostReplyIsAppliedButNeverAnswered) {
  Harness h(options(GateMode::atomic, StoreFaults{.lost_reply_permille = 1000}));
  const auto done = run_calls(h, {admit("c1", "r1", 0)});
  EXPECT_FALSE(done[0].reply);
  ASSERT_EQ(h.recorded<GateStep>().size(), 1u);
  ASSERT_NE(h.store.pool("p"), nullptr);
  EXPECT_NE(core::find_session(*h.store.pool("p"), "c1"), nullptr);
}

TEST(FakeStore, R3_NoscriptFallsBackWithinTheAttemptAndApplies) {
  Harness h(options(GateMode::atomic, StoreFaults{.noscript_permille = 1000}));
  const auto done = run_calls(h, {admit("c1", "r1", 0)});
  ASSERT_TRUE(done[0].reply && done[0].reply->decision);
  EXPECT_EQ(done[0].reply->decision->outcome, core::Outcome::admitted);
  EXPECT_GE(done[0].at_ms, 1);  // the EVAL fallback is a second round trip
  EXPECT_EQ(h.recorded<GateStep>().size(), 1u);
}

TEST(FakeStore, G9_RestartLosesEveryPoolAndTheCallFails) {
  // Only the restart site is on: the first call draws 0 (no fault), the second 999 (restart).
  Draws draws(std::vector<Draw>{Draw{DrawSite::store_fault, 1000, 0}, Draw{DrawSite::store_fault, 1000, 999},
                                Draw{DrawSite::store_fault, 1000, 0}});
  Harness h(options(GateMode::atomic, StoreFaults{.restart_permille = 500}), std::move(draws));
  const auto done = run_calls(h, {admit("c1", "r1", 0), heartbeat("c1", 1, 10), admit("c2", "r2", 20)});
  ASSERT_TRUE(done[1].reply);
  EXPECT_EQ(done[1].reply->result.outcome_class, core::OutcomeClass::transient);
  EXPECT_EQ(h.recorded<StoreRestarted>().size(), 1u);
  // The store came back empty: tokens count from 1 again.
  ASSERT_TRUE(done[2].reply && done[2].reply->decision);
  EXPECT_EQ(done[2].reply->decision->token, 1u);
  EXPECT_EQ(core::find_session(*h.store.pool("p"), "c1"), nullptr);
  EXPECT_FALSE(h.draws.divergence().has_value());
}

TEST(FakeStore, LatencyIsASleepOnTheVirtualClock) {
  Draws draws(std::vector<Draw>{Draw{DrawSite::store_latency, 41, 25}});
  Harness h(options(GateMode::atomic, StoreFaults{.latency_max_ms = 40}), std::move(draws));
  const auto done = run_calls(h, {admit("c1", "r1", 0)});
  EXPECT_EQ(done[0].at_ms, 25);
  EXPECT_FALSE(h.draws.divergence().has_value());
}

TEST(FakeStore, HealedStoreDrawsNothingAndSuffersNoFault) {
  Harness h(options(GateMode::atomic, StoreFaults{.latency_max_ms = 40, .timeout_permille = 1000,
                                                   .reset_permille = 1000, .restart_permille = 1000}));
  h.store.heal();
  const auto done = run_calls(h, {admit("c1", "r1", 0)});
  ASSERT_TRUE(done[0].reply && done[0].reply->decision);
  EXPECT_EQ(done[0].at_ms, 0);
  EXPECT_TRUE(h.draws.log().empty());
  EXPECT_TRUE(h.recorded<FaultFired>().empty());
}

TEST(FakeStore, InjectedGateReplacesCoreApply) {
  StoreOptions o = options();
  int calls = 0;
  o.gate = [&calls](core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
    ++calls;
    return core::apply(pool, op, config);
  };
  Harness h(o);
  (void)run_calls(h, {admit("c1", "r1", 0), heartbeat("c1", 1, 5)});
  EXPECT_EQ(calls, 2);
}

// Three newcomers admit at the same instant into a pool of capacity 2, each
// from its own fiber; returns the most slots any gate step left held.
std::int64_t most_held_after_concurrent_admits(GateMode mode, std::uint64_t seed, StrategySpec strategy = {}) {
  Harness h(options(mode));
  Runtime rt({.seed = seed, .strategy = std::move(strategy)});
  for (int c = 0; c < 3; ++c) {
    rt.spawn("c" + std::to_string(c), [&h, c] {
      const std::string client = "c" + std::to_string(c);
      (void)h.store.call("p", admit(client, client + ".r1", 0));
    });
  }
  const RunResult result = rt.run(10'000);
  EXPECT_EQ(result.outcome, Outcome::finished);
  std::int64_t most = 0;
  for (const GateStep& step : h.recorded<GateStep>()) {
    most = std::max(most, static_cast<std::int64_t>(step.after.sessions.size()));
  }
  return most;
}

TEST(FakeStore, P1_LegacyGateOverAdmitsUnderSomeInterleaving) {
  int over = 0;
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    if (most_held_after_concurrent_admits(GateMode::legacy, seed) > 2) ++over;
  }
  EXPECT_GT(over, 0);
}

TEST(FakeStore, P1_AtomicGateNeverOverAdmits) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    EXPECT_LE(most_held_after_concurrent_admits(GateMode::atomic, seed), 2) << "seed " << seed;
    EXPECT_LE(most_held_after_concurrent_admits(GateMode::atomic, seed, *parse_strategy("pct:3")), 2)
        << "seed " << seed;
  }
}

TEST(FakeStore, P1_LegacyGateIsSafeWhenCallsDoNotOverlap) {
  // One caller after another: every read sees every earlier write.
  Harness h(options(GateMode::legacy));
  const auto done = run_calls(h, {admit("c1", "r1", 0), admit("c2", "r2", 0), admit("c3", "r3", 0)});
  ASSERT_TRUE(done[2].reply && done[2].reply->decision);
  EXPECT_EQ(done[2].reply->decision->outcome, core::Outcome::blocked_capacity);
  EXPECT_EQ(h.store.pool("p")->sessions.size(), 2u);
}

TEST(FakeStore, LegacyWriteIsRecordedAgainstThePoolAsItIsNow) {
  // Two admits into two free slots, under many interleavings (some read an
  // empty pool twice, some do not).
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Harness h(options(GateMode::legacy));
    Runtime rt({.seed = seed});
    for (int c = 0; c < 2; ++c) {
      rt.spawn("c", [&h, c] {
        const std::string client = "c" + std::to_string(c);
        (void)h.store.call("p", admit(client, client + ".r1", 0));
      });
    }
    (void)rt.run(10'000);
    const auto steps = h.recorded<GateStep>();
    ASSERT_EQ(steps.size(), 2u);
    // The second write's `before` is the pool the first write left, and its
    // token comes from the pool's counter as it is then: never reused (G9).
    EXPECT_TRUE(steps[0].legacy && steps[1].legacy);
    EXPECT_EQ(steps[1].before, steps[0].after);
    EXPECT_NE(steps[0].decision.token, steps[1].decision.token);
    EXPECT_EQ(steps[1].decision.held, 2);
  }
}

TEST(FakeStore, LegacyHeartbeatAndReleaseStayAtomic) {
  Harness h(options(GateMode::legacy));
  (void)run_calls(h, {admit("c1", "r1", 0), heartbeat("c1", 1, 10), release("c1", 1, 20)});
  const auto steps = h.recorded<GateStep>();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[0].legacy);
  EXPECT_FALSE(steps[1].legacy);
  EXPECT_FALSE(steps[2].legacy);
  EXPECT_EQ(steps[2].decision.outcome, core::Outcome::released);
}

// ---------------------------------------------------------------------------
// The fake broker.

struct BrokerHarness {
  explicit BrokerHarness(BrokerFaults faults, Draws d = Draws(1))
      : draws(std::move(d)), broker(faults, draws, [this](EventBody body) { events.push_back(std::move(body)); }) {}

  std::optional<core::BrokerReply> resolve(const std::string& episode) {
    std::optional<core::BrokerReply> reply;
    Runtime rt({.seed = 1});
    rt.spawn("caller", [&] { reply = broker.resolve(episode); });
    (void)rt.run(1000);
    return reply;
  }

  std::vector<FaultFired> faults() const {
    std::vector<FaultFired> out;
    for (const EventBody& body : events) {
      if (const auto* f = std::get_if<FaultFired>(&body)) out.push_back(*f);
    }
    return out;
  }

  Draws draws;
  std::vector<EventBody> events;
  FakeBroker broker;
};

TEST(FakeBroker, F2_SuccessCarriesDeterministicStreams) {
  BrokerHarness a(BrokerFaults{});
  BrokerHarness b(BrokerFaults{});
  const auto first = a.resolve("tt1:1:1");
  const auto again = b.resolve("tt1:1:1");
  ASSERT_TRUE(first && again);
  EXPECT_EQ(first->result.outcome_class, core::OutcomeClass::success);
  ASSERT_GE(first->streams.size(), 1u);
  ASSERT_LE(first->streams.size(), 2u);
  EXPECT_EQ(first->streams[0].url, "http://stream.local/tt1:1:1/1");
  EXPECT_EQ(first->streams, again->streams);
}

TEST(FakeBroker, R3_RetryAfterStatusIsTransientWithItsDelay) {
  // The transient site fires (999), picks 429 (index 1), with Retry-After 300.
  Draws draws(std::vector<Draw>{Draw{DrawSite::broker_fault, 1000, 999}, Draw{DrawSite::broker_fault, 6, 1},
                                Draw{DrawSite::broker_fault, kMaxRetryAfterMs + 1, 300}});
  BrokerHarness h(BrokerFaults{.transient_permille = 500}, std::move(draws));
  const auto reply = h.resolve("tt1:1:1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->result.outcome_class, core::OutcomeClass::transient);
  EXPECT_EQ(reply->result.retry_after_ms, 300);
  EXPECT_TRUE(reply->streams.empty());
  ASSERT_EQ(h.faults().size(), 1u);
  EXPECT_EQ(h.faults()[0].detail, "429 retry-after 300");
  EXPECT_FALSE(h.draws.divergence().has_value());
}

TEST(FakeBroker, R3_EveryTransientStatusIsTransient) {
  BrokerHarness h(BrokerFaults{.transient_permille = 1000}, Draws(77));
  for (int i = 0; i < 30; ++i) {
    const auto reply = h.resolve("tt1:1:1");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->result.outcome_class, core::OutcomeClass::transient);
  }
}

TEST(FakeBroker, R3_501IsPermanent) {
  BrokerHarness h(BrokerFaults{.status_501_permille = 1000});
  const auto reply = h.resolve("tt1:1:1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->result.outcome_class, core::OutcomeClass::permanent);
}

TEST(FakeBroker, R3_ResetIsTransient) {
  BrokerHarness h(BrokerFaults{.reset_permille = 1000});
  const auto reply = h.resolve("tt1:1:1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->result.outcome_class, core::OutcomeClass::transient);
}

TEST(FakeBroker, R3_MalformedBodyIsPermanent) {
  BrokerHarness h(BrokerFaults{.malformed_permille = 1000});
  const auto reply = h.resolve("tt1:1:1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->result.outcome_class, core::OutcomeClass::permanent);
}

TEST(FakeBroker, HangNeverReplies) {
  BrokerHarness h(BrokerFaults{.hang_permille = 1000});
  EXPECT_FALSE(h.resolve("tt1:1:1"));
  ASSERT_EQ(h.faults().size(), 1u);
  EXPECT_EQ(h.faults()[0].site, "broker.hang");
}

TEST(FakeBroker, HealedBrokerDrawsNothing) {
  BrokerHarness h(BrokerFaults{.latency_max_ms = 300, .transient_permille = 1000, .hang_permille = 1000});
  h.broker.heal();
  const auto reply = h.resolve("tt1:1:1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->result.outcome_class, core::OutcomeClass::success);
  EXPECT_TRUE(h.draws.log().empty());
}

}  // namespace
}  // namespace turnstile::sim
