// History (sim/history.h): a bounded record of every event, and a hash over
// every field of every event kind, in a fixed order, so that equal runs give
// equal fingerprints (P3) and any difference in any field shows.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sim/history.h"

namespace turnstile::sim {
namespace {

core::Op sample_op() {
  core::Op op;
  op.kind = core::OpKind::admit;
  op.client = "c1";
  op.episode = "tt1:1:1";
  op.request = "r1";
  op.issued_at = 10;
  op.now = 20;
  op.token = 3;
  return op;
}

core::PoolState sample_pool() {
  core::PoolState pool;
  pool.last_now = 100;
  pool.last_token = 4;
  core::Session s;
  s.client = "c1";
  s.episode = "tt1:1:1";
  s.token = 4;
  s.admitted_at = 50;
  s.last_seen = 90;
  s.last_request = "r1";
  s.last_issued = 45;
  s.last_decision = core::Decision{core::Outcome::admitted, 4, "", 1};
  pool.sessions.push_back(s);
  return pool;
}

// One event of each kind with every field set.
std::vector<EventBody> sample_bodies() {
  core::StreamRequest request{"p", "c1", "tt1:1:1", "r1", 7};
  core::Response granted = core::Response::granted({core::Stream{"s", "http://x/1?session=4"}});
  GateStep gate{"p", sample_op(), core::Decision{core::Outcome::rotated, 5, "c0", 2}, core::GateConfig{2, 3000, 1500},
                sample_pool(), sample_pool(), true};
  return {
      RequestSent{1, 2, request},
      ResponseReceived{1, 2, granted, 4},
      WaiterLeft{1, 2},
      FlightStarted{1, 3, core::FlightKey{"p", "c1", "tt1:1:1"}},
      FlightEnded{1, 3},
      CallStarted{1, 3, Dependency::store, 2, 1, sample_op(), 300},
      CallEnded{1, 3, Dependency::broker, 2, core::OutcomeClass::transient, 400, true},
      gate,
      FaultFired{"store.busy", "BUSY"},
      StoreRestarted{},
      FaultsHealed{},
  };
}

Event event_of(EventBody body) { return Event{5, 6, 7, std::move(body)}; }

using Mutation = std::function<void(EventBody&)>;

template <typename T>
Mutation on(std::function<void(T&)> change) {
  return [change](EventBody& body) { change(std::get<T>(body)); };
}

// Every field of every kind, changed one at a time.
std::vector<std::pair<std::string, Mutation>> mutations() {
  return {
      {"request.instance", on<RequestSent>([](auto& e) { e.instance = 9; })},
      {"request.waiter", on<RequestSent>([](auto& e) { e.waiter = 9; })},
      {"request.pool", on<RequestSent>([](auto& e) { e.request.pool = "q"; })},
      {"request.client", on<RequestSent>([](auto& e) { e.request.client = "c2"; })},
      {"request.episode", on<RequestSent>([](auto& e) { e.request.episode = "tt1:1:2"; })},
      {"request.request", on<RequestSent>([](auto& e) { e.request.request = "r2"; })},
      {"request.issued_at", on<RequestSent>([](auto& e) { e.request.issued_at = 8; })},
      {"response.instance", on<ResponseReceived>([](auto& e) { e.instance = 9; })},
      {"response.waiter", on<ResponseReceived>([](auto& e) { e.waiter = 9; })},
      {"response.denied", on<ResponseReceived>([](auto& e) { e.response.denied = true; })},
      {"response.reason", on<ResponseReceived>([](auto& e) { e.response.reason = core::DenialReason::busy; })},
      {"response.stream.name", on<ResponseReceived>([](auto& e) { e.response.streams[0].name = "t"; })},
      {"response.stream.url", on<ResponseReceived>([](auto& e) { e.response.streams[0].url = "http://x/2"; })},
      {"response.streams", on<ResponseReceived>([](auto& e) { e.response.streams.push_back({"s", "u"}); })},
      {"response.token", on<ResponseReceived>([](auto& e) { e.token = 5; })},
      {"leave.instance", on<WaiterLeft>([](auto& e) { e.instance = 9; })},
      {"leave.waiter", on<WaiterLeft>([](auto& e) { e.waiter = 9; })},
      {"flight_start.instance", on<FlightStarted>([](auto& e) { e.instance = 9; })},
      {"flight_start.flight", on<FlightStarted>([](auto& e) { e.flight = 9; })},
      {"flight_start.pool", on<FlightStarted>([](auto& e) { e.key.pool = "q"; })},
      {"flight_start.client", on<FlightStarted>([](auto& e) { e.key.client = "c2"; })},
      {"flight_start.episode", on<FlightStarted>([](auto& e) { e.key.episode = "x"; })},
      {"flight_end.instance", on<FlightEnded>([](auto& e) { e.instance = 9; })},
      {"flight_end.flight", on<FlightEnded>([](auto& e) { e.flight = 9; })},
      {"call.instance", on<CallStarted>([](auto& e) { e.instance = 9; })},
      {"call.flight", on<CallStarted>([](auto& e) { e.flight = 9; })},
      {"call.dependency", on<CallStarted>([](auto& e) { e.dependency = Dependency::broker; })},
      {"call.call", on<CallStarted>([](auto& e) { e.call = 9; })},
      {"call.attempt", on<CallStarted>([](auto& e) { e.attempt = 2; })},
      {"call.op.kind", on<CallStarted>([](auto& e) { e.op.kind = core::OpKind::release; })},
      {"call.op.client", on<CallStarted>([](auto& e) { e.op.client = "c2"; })},
      {"call.op.episode", on<CallStarted>([](auto& e) { e.op.episode = "x"; })},
      {"call.op.request", on<CallStarted>([](auto& e) { e.op.request = "r9"; })},
      {"call.op.issued_at", on<CallStarted>([](auto& e) { e.op.issued_at = 11; })},
      {"call.op.now", on<CallStarted>([](auto& e) { e.op.now = 21; })},
      {"call.op.token", on<CallStarted>([](auto& e) { e.op.token = 4; })},
      {"call.deadline", on<CallStarted>([](auto& e) { e.deadline = 301; })},
      {"call_end.instance", on<CallEnded>([](auto& e) { e.instance = 9; })},
      {"call_end.flight", on<CallEnded>([](auto& e) { e.flight = 9; })},
      {"call_end.dependency", on<CallEnded>([](auto& e) { e.dependency = Dependency::store; })},
      {"call_end.call", on<CallEnded>([](auto& e) { e.call = 9; })},
      {"call_end.class", on<CallEnded>([](auto& e) { e.outcome_class = core::OutcomeClass::permanent; })},
      {"call_end.retry_after", on<CallEnded>([](auto& e) { e.retry_after_ms = 401; })},
      {"call_end.no_retry_after", on<CallEnded>([](auto& e) { e.retry_after_ms.reset(); })},
      {"call_end.timed_out", on<CallEnded>([](auto& e) { e.timed_out = false; })},
      {"gate.pool", on<GateStep>([](auto& e) { e.pool = "q"; })},
      {"gate.op.now", on<GateStep>([](auto& e) { e.op.now = 99; })},
      {"gate.op.token", on<GateStep>([](auto& e) { e.op.token = 99; })},
      {"gate.decision.outcome", on<GateStep>([](auto& e) { e.decision.outcome = core::Outcome::admitted; })},
      {"gate.decision.token", on<GateStep>([](auto& e) { e.decision.token = 6; })},
      {"gate.decision.victim", on<GateStep>([](auto& e) { e.decision.victim = "c9"; })},
      {"gate.decision.held", on<GateStep>([](auto& e) { e.decision.held = 3; })},
      {"gate.config.capacity", on<GateStep>([](auto& e) { e.config.capacity = 3; })},
      {"gate.config.ttl", on<GateStep>([](auto& e) { e.config.ttl_ms = 3001; })},
      {"gate.config.grace", on<GateStep>([](auto& e) { e.config.grace_ms = 1501; })},
      {"gate.before.last_now", on<GateStep>([](auto& e) { e.before.last_now = 101; })},
      {"gate.before.last_token", on<GateStep>([](auto& e) { e.before.last_token = 5; })},
      {"gate.before.sessions", on<GateStep>([](auto& e) { e.before.sessions.clear(); })},
      {"gate.after.session.client", on<GateStep>([](auto& e) { e.after.sessions[0].client = "c2"; })},
      {"gate.after.session.episode", on<GateStep>([](auto& e) { e.after.sessions[0].episode = "x"; })},
      {"gate.after.session.token", on<GateStep>([](auto& e) { e.after.sessions[0].token = 9; })},
      {"gate.after.session.admitted_at", on<GateStep>([](auto& e) { e.after.sessions[0].admitted_at = 51; })},
      {"gate.after.session.last_seen", on<GateStep>([](auto& e) { e.after.sessions[0].last_seen = 91; })},
      {"gate.after.session.last_request", on<GateStep>([](auto& e) { e.after.sessions[0].last_request = "r2"; })},
      {"gate.after.session.last_issued", on<GateStep>([](auto& e) { e.after.sessions[0].last_issued = 46; })},
      {"gate.after.session.last_decision",
       on<GateStep>([](auto& e) { e.after.sessions[0].last_decision.outcome = core::Outcome::resumed; })},
      {"gate.legacy", on<GateStep>([](auto& e) { e.legacy = false; })},
      {"fault.site", on<FaultFired>([](auto& e) { e.site = "store.reset"; })},
      {"fault.detail", on<FaultFired>([](auto& e) { e.detail = "LOADING"; })},
  };
}

TEST(History, P3_EventHashCoversEveryFieldOfEveryKind) {
  const std::vector<EventBody> bodies = sample_bodies();
  for (const auto& [name, mutate] : mutations()) {
    bool applied = false;
    for (const EventBody& body : bodies) {
      EventBody changed = body;
      try {
        mutate(changed);
      } catch (const std::bad_variant_access&) {
        continue;  // a mutation of another kind
      }
      applied = true;
      EXPECT_NE(event_hash(event_of(body)), event_hash(event_of(changed))) << name;
    }
    EXPECT_TRUE(applied) << name;
  }
}

TEST(History, P3_EventHashCoversIndexStepAndTime) {
  const Event base = event_of(FaultsHealed{});
  Event e = base;
  e.index = 99;
  EXPECT_NE(event_hash(base), event_hash(e));
  e = base;
  e.step = 99;
  EXPECT_NE(event_hash(base), event_hash(e));
  e = base;
  e.at_ms = 99;
  EXPECT_NE(event_hash(base), event_hash(e));
}

TEST(History, P3_EventKindsHashApart) {
  // Kinds with no fields (or equal ones) still differ by kind.
  EXPECT_NE(event_hash(event_of(StoreRestarted{})), event_hash(event_of(FaultsHealed{})));
  EXPECT_NE(event_hash(event_of(WaiterLeft{1, 2})), event_hash(event_of(FlightEnded{1, 2})));
}

TEST(History, P3_EqualEventsHashEqual) {
  for (const EventBody& body : sample_bodies()) {
    EXPECT_EQ(event_hash(event_of(body)), event_hash(event_of(body))) << event_kind_name(body);
  }
}

TEST(History, StringsHashByContentNotByLength) {
  // Same length, one byte apart, at every position of a long string.
  const std::string base(20, 'a');
  for (std::size_t i = 0; i < base.size(); ++i) {
    std::string changed = base;
    changed[i] = 'b';
    EXPECT_NE(event_hash(event_of(FaultFired{base, ""})), event_hash(event_of(FaultFired{changed, ""}))) << i;
  }
  // Moving bytes between two strings changes the hash too.
  EXPECT_NE(event_hash(event_of(FaultFired{"ab", "c"})), event_hash(event_of(FaultFired{"a", "bc"})));
}

TEST(History, KindNames) {
  std::vector<std::string> names;
  for (const EventBody& body : sample_bodies()) names.emplace_back(event_kind_name(body));
  EXPECT_EQ(names, (std::vector<std::string>{"request", "response", "leave", "flight_start", "flight_end", "call",
                                             "call_end", "gate", "fault", "store_restart", "faults_healed"}));
}

TEST(History, AppendRecordsIndexStepAndTime) {
  History history(10);
  ASSERT_TRUE(history.append(3, 100, FaultsHealed{}));
  ASSERT_TRUE(history.append(4, 150, StoreRestarted{}));
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history.events()[0].index, 0u);
  EXPECT_EQ(history.events()[1].index, 1u);
  EXPECT_EQ(history.events()[1].step, 4u);
  EXPECT_EQ(history.events()[1].at_ms, 150);
  EXPECT_TRUE(std::holds_alternative<StoreRestarted>(history.events()[1].body));
}

TEST(History, AppendStopsAtItsBound) {
  History history(3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(history.append(0, i, FaultsHealed{}));
  const std::uint64_t fingerprint = history.fingerprint();
  EXPECT_FALSE(history.append(0, 9, FaultsHealed{}));
  EXPECT_EQ(history.size(), 3u);
  EXPECT_EQ(history.fingerprint(), fingerprint);
  EXPECT_EQ(history.max_events(), 3u);
}

TEST(History, P3_FingerprintFollowsEveryEventInOrder) {
  History a;
  History b;
  History c;
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  const std::uint64_t empty = a.fingerprint();
  a.append(1, 10, WaiterLeft{0, 1});
  b.append(1, 10, WaiterLeft{0, 1});
  EXPECT_NE(a.fingerprint(), empty);
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  a.append(2, 20, WaiterLeft{0, 2});
  b.append(2, 20, WaiterLeft{0, 3});
  EXPECT_NE(a.fingerprint(), b.fingerprint());
  // The same events in another order.
  c.append(1, 10, WaiterLeft{0, 2});
  c.append(2, 20, WaiterLeft{0, 1});
  History d;
  d.append(1, 10, WaiterLeft{0, 1});
  d.append(2, 20, WaiterLeft{0, 2});
  EXPECT_NE(c.fingerprint(), d.fingerprint());
}

}  // namespace
}  // namespace turnstile::sim
