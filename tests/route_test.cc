#include "core/route.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace turnstile::core {
namespace {

constexpr Ms kStart = 1000;

StreamRequest req(std::string client = "c1", std::string episode = "tt1:1:1", std::string request = "r1",
                  Ms issued_at = kStart) {
  return StreamRequest{"p", std::move(client), std::move(episode), std::move(request), issued_at};
}

RouteConfig config(std::size_t max_flights = 10000, std::size_t max_waiters = 64) {
  RouteConfig route_config;
  route_config.coalesce = CoalesceConfig{max_flights, max_waiters};
  return route_config;
}

std::vector<RouteEffect> drain(Route& route) {
  std::vector<RouteEffect> effects;
  while (std::optional<RouteEffect> effect = route.poll()) effects.push_back(std::move(*effect));
  return effects;
}

template <class T>
std::vector<T> all_of(const std::vector<RouteEffect>& effects) {
  std::vector<T> out;
  for (const RouteEffect& effect : effects) {
    if (const auto* typed = std::get_if<T>(&effect)) out.push_back(*typed);
  }
  return out;
}

// The single effect an input produced; throws (failing the test) if it is of another kind.
template <class T>
T only(const std::vector<RouteEffect>& effects) {
  EXPECT_EQ(effects.size(), 1u);
  return std::get<T>(effects.at(0));
}

StoreReply decided(Outcome outcome, Token token = kNoToken) {
  return StoreReply{Decision{outcome, token, {}, 1}, AttemptResult{OutcomeClass::success, std::nullopt}};
}

BrokerReply resolved(std::vector<Stream> streams) {
  return BrokerReply{AttemptResult{OutcomeClass::success, std::nullopt}, std::move(streams)};
}

// Drives every flight with timers only (store and broker hang) until the
// route is quiet; returns the time of the last timer.
Ms run_timers_to_quiescence(Route& route, Rng& rng, std::vector<RouteEffect>& log) {
  Ms now = kStart;
  for (int step = 0; step < 100; ++step) {
    const std::optional<Ms> deadline = route.next_deadline();
    if (!deadline) break;
    now = *deadline;
    route.on_timer(now, rng);
    for (RouteEffect& effect : drain(route)) log.push_back(std::move(effect));
  }
  return now;
}

TEST(Route, V4_InvalidRequestsArePolicyWithNoStoreCall) {
  std::vector<StreamRequest> bad = {
      StreamRequest{"p/x", "c1", "tt1", "r1", kStart},           // pool
      StreamRequest{"p", "", "tt1", "r1", kStart},               // client
      StreamRequest{"p", "c1", "tt1 1", "r1", kStart},           // episode
      StreamRequest{"p", "c1", "tt1", std::string(65, 'r'), kStart},  // request
      StreamRequest{"p", "c1", "tt1", "r:1", kStart},            // ':' only in episodes
      StreamRequest{"p", "c1", "tt1", "r1", -1},                 // issued_at
      StreamRequest{"p", "c1", "tt1", "r1", kMaxTimeMs + 1},     // issued_at
  };
  Route route(config());
  Rng rng(1);
  WaiterId waiter = 1;
  for (const StreamRequest& request : bad) {
    route.on_request(kStart, waiter, request, rng);
    const RouteRespond respond = only<RouteRespond>(drain(route));
    EXPECT_EQ(respond.waiter, waiter);
    EXPECT_EQ(respond.response, Response::denial(DenialReason::policy));
    ++waiter;
  }
  EXPECT_EQ(route.flight_count(), 0u);
  EXPECT_FALSE(route.next_deadline().has_value());
}

TEST(Route, F1_ARequestStartsAFlightWithOneStoreCall) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  EXPECT_EQ(call.flight, 1u);
  EXPECT_EQ(call.call.call, 1u);
  EXPECT_EQ(call.call.attempt, 1);
  EXPECT_EQ(call.call.op.kind, OpKind::admit);
  EXPECT_EQ(call.call.op.request, "r1");
  EXPECT_EQ(route.flight_count(), 1u);
  EXPECT_EQ(route.next_deadline(), kStart + 300);
}

TEST(Route, C1_C2_ABurstSharesOneFlightAndOneAnswer) {
  constexpr int kBurst = 5;
  Route route(config());
  Rng rng(1);
  std::vector<RouteEffect> log;
  for (int i = 0; i < kBurst; ++i) {
    route.on_request(kStart + i, static_cast<WaiterId>(10 + i), req("c1", "tt1:1:1", "r" + std::to_string(i)), rng);
    for (RouteEffect& effect : drain(route)) log.push_back(std::move(effect));
  }
  ASSERT_EQ(log.size(), 1u);  // C1: one StoreCall for the whole burst
  const RouteStoreCall call = std::get<RouteStoreCall>(log[0]);
  EXPECT_EQ(route.flight_count(), 1u);
  EXPECT_EQ(route.coalescer().waiter_count(call.flight), static_cast<std::size_t>(kBurst));

  route.on_store_reply(kStart + 20, call.flight, call.call.call, decided(Outcome::admitted, 8), rng);
  const RouteBrokerCall broker = only<RouteBrokerCall>(drain(route));
  EXPECT_EQ(broker.flight, call.flight);
  route.on_broker_reply(kStart + 50, call.flight, broker.call.call, resolved({{"s", "http://x/s"}}), rng);

  const std::vector<RouteEffect> answers = drain(route);
  ASSERT_EQ(answers.size(), static_cast<std::size_t>(kBurst));
  for (int i = 0; i < kBurst; ++i) {
    const RouteRespond respond = std::get<RouteRespond>(answers[static_cast<std::size_t>(i)]);
    EXPECT_EQ(respond.waiter, static_cast<WaiterId>(10 + i));  // join order
    EXPECT_EQ(respond.response, Response::granted({{"s", "http://x/s?session=8"}}));  // C2
  }
  EXPECT_EQ(route.flight_count(), 0u);  // C3, C6
  EXPECT_FALSE(route.next_deadline().has_value());
}

TEST(Route, C3_TheNextRequestStartsANewFlight) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  const RouteStoreCall first = only<RouteStoreCall>(drain(route));
  route.on_store_reply(kStart + 5, first.flight, first.call.call, decided(Outcome::superseded), rng);
  EXPECT_EQ(only<RouteRespond>(drain(route)).response, Response::denial(DenialReason::superseded));
  EXPECT_EQ(route.flight_count(), 0u);

  route.on_request(kStart + 6, 2, req("c1", "tt1:1:1", "r2", kStart + 6), rng);
  const RouteStoreCall second = only<RouteStoreCall>(drain(route));
  EXPECT_NE(second.flight, first.flight);
  EXPECT_EQ(second.call.op.request, "r2");
  EXPECT_EQ(route.flight_count(), 1u);
}

TEST(Route, C3_AnswersAndKeyRemovalAreOneStep) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  route.on_request(kStart, 2, req("c1", "tt1:1:1", "r2"), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  route.on_store_reply(kStart + 5, call.flight, call.call.call, decided(Outcome::blocked_capacity), rng);
  // Before the answers are even polled, the key is free.
  EXPECT_EQ(route.flight_count(), 0u);
  EXPECT_FALSE(route.coalescer().has_flight(call.flight));
  const std::vector<RouteRespond> answers = all_of<RouteRespond>(drain(route));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].response, Response::denial(DenialReason::capacity));
  EXPECT_EQ(answers[1].response, answers[0].response);
}

TEST(Route, C4_TheLastWaiterLeavingDoesNotCancelTheFlight) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  route.on_leave(kStart + 1, 1);
  EXPECT_EQ(route.flight_count(), 1u);  // the flight goes on
  EXPECT_EQ(route.coalescer().waiter_count(call.flight), 0u);

  route.on_store_reply(kStart + 20, call.flight, call.call.call, decided(Outcome::admitted, 3), rng);
  const RouteBrokerCall broker = only<RouteBrokerCall>(drain(route));
  route.on_broker_reply(kStart + 50, call.flight, broker.call.call, resolved({{"s", "http://x/s"}}), rng);
  EXPECT_TRUE(drain(route).empty());     // nobody left to answer
  EXPECT_EQ(route.flight_count(), 0u);  // C6: no leak
}

TEST(Route, C4_C6_AWaiterlessHungFlightEndsWithinItsBudget) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  (void)drain(route);
  route.on_leave(kStart + 1, 1);
  std::vector<RouteEffect> log;
  const Ms end = run_timers_to_quiescence(route, rng, log);
  EXPECT_EQ(route.flight_count(), 0u);
  EXPECT_TRUE(all_of<RouteRespond>(log).empty());
  EXPECT_LE(end, kStart + 800);
}

TEST(Route, C4_OthersAreStillAnsweredWhenOneLeaves) {
  Route route(config());
  Rng rng(1);
  for (WaiterId waiter = 1; waiter <= 3; ++waiter) route.on_request(kStart, waiter, req(), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  route.on_leave(kStart + 1, 2);
  route.on_leave(kStart + 1, 2);   // twice: nothing more to forget
  route.on_leave(kStart + 1, 77);  // never seen
  route.on_store_reply(kStart + 5, call.flight, call.call.call, decided(Outcome::superseded), rng);
  const std::vector<RouteRespond> answers = all_of<RouteRespond>(drain(route));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].waiter, 1u);
  EXPECT_EQ(answers[1].waiter, 3u);
  EXPECT_EQ(answers[0].response, answers[1].response);
}

TEST(Route, C1_ARequestJoinsARunningFlightEvenWithNoWaiterLeft) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  route.on_leave(kStart + 1, 1);
  route.on_request(kStart + 2, 2, req("c1", "tt1:1:1", "r2", kStart + 2), rng);
  EXPECT_TRUE(drain(route).empty());  // joined: starts nothing itself
  route.on_store_reply(kStart + 5, call.flight, call.call.call, decided(Outcome::blocked_capacity), rng);
  const RouteRespond respond = only<RouteRespond>(drain(route));
  EXPECT_EQ(respond.waiter, 2u);
  EXPECT_EQ(respond.response, Response::denial(DenialReason::capacity));
}

TEST(Route, C5_BusyWhenMaxFlightsIsHit) {
  Route route(config(2, 64));
  Rng rng(1);
  route.on_request(kStart, 1, req("c1"), rng);
  route.on_request(kStart, 2, req("c2"), rng);
  EXPECT_EQ(all_of<RouteStoreCall>(drain(route)).size(), 2u);
  route.on_request(kStart, 3, req("c3"), rng);
  const RouteRespond busy = only<RouteRespond>(drain(route));
  EXPECT_EQ(busy.waiter, 3u);
  EXPECT_EQ(busy.response, Response::denial(DenialReason::busy));
  EXPECT_EQ(render_body(busy.response), R"({"streams":[{"name":"turnstile","description":"busy"}],"cacheMaxAge":0})");
  EXPECT_EQ(route.flight_count(), 2u);
  // A request for a running flight's key still joins.
  route.on_request(kStart, 4, req("c1", "tt1:1:1", "r4"), rng);
  EXPECT_TRUE(drain(route).empty());
}

TEST(Route, C5_BusyWhenMaxWaitersIsHit) {
  Route route(config(10, 2));
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  route.on_request(kStart, 2, req(), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  route.on_request(kStart, 3, req(), rng);
  const RouteRespond busy = only<RouteRespond>(drain(route));
  EXPECT_EQ(busy.waiter, 3u);
  EXPECT_EQ(busy.response, Response::denial(DenialReason::busy));
  // The busy request waits on nothing: the flight answers only its two.
  route.on_store_reply(kStart + 5, call.flight, call.call.call, decided(Outcome::superseded), rng);
  const std::vector<RouteRespond> answers = all_of<RouteRespond>(drain(route));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].waiter, 1u);
  EXPECT_EQ(answers[1].waiter, 2u);
}

TEST(Route, C1_DifferentEpisodesAndClientsAreDifferentFlights) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req("c1", "tt1:1:1"), rng);
  route.on_request(kStart, 2, req("c1", "tt1:1:2"), rng);
  route.on_request(kStart, 3, req("c2", "tt1:1:1"), rng);
  StreamRequest other_pool = req("c1", "tt1:1:1");
  other_pool.pool = "q";
  route.on_request(kStart, 4, other_pool, rng);
  const std::vector<RouteStoreCall> calls = all_of<RouteStoreCall>(drain(route));
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].flight, 1u);
  EXPECT_EQ(calls[1].flight, 2u);
  EXPECT_EQ(calls[2].flight, 3u);
  EXPECT_EQ(calls[3].flight, 4u);
  EXPECT_EQ(calls[1].call.op.episode, "tt1:1:2");
  EXPECT_EQ(calls[2].call.op.client, "c2");
  EXPECT_EQ(route.flight_count(), 4u);
}

TEST(Route, F1_StaleAndUnknownRepliesAreIgnored) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  const RouteStoreCall call = only<RouteStoreCall>(drain(route));
  // An unknown flight.
  route.on_store_reply(kStart + 1, call.flight + 9, call.call.call, decided(Outcome::admitted, 1), rng);
  route.on_broker_reply(kStart + 1, call.flight + 9, call.call.call, resolved({}), rng);
  EXPECT_TRUE(drain(route).empty());
  // A broker reply before the gate answered, carrying the store call's id.
  route.on_broker_reply(kStart + 2, call.flight, call.call.call, resolved({{"s", "http://x/s"}}), rng);
  EXPECT_TRUE(drain(route).empty());
  // A call that was never emitted.
  route.on_store_reply(kStart + 3, call.flight, call.call.call + 1, decided(Outcome::admitted, 1), rng);
  EXPECT_TRUE(drain(route).empty());
  route.on_store_reply(kStart + 4, call.flight, call.call.call, decided(Outcome::superseded), rng);
  (void)only<RouteRespond>(drain(route));
  // The flight has ended.
  route.on_store_reply(kStart + 5, call.flight, call.call.call, decided(Outcome::admitted, 1), rng);
  route.on_timer(kStart + 100000, rng);
  EXPECT_TRUE(drain(route).empty());
  EXPECT_EQ(route.flight_count(), 0u);
}

TEST(Route, R5_TimersReachOnlyDueFlights) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req("c1"), rng);
  route.on_request(kStart + 100, 2, req("c2", "tt1:1:1", "r1", kStart + 100), rng);
  EXPECT_EQ(all_of<RouteStoreCall>(drain(route)).size(), 2u);
  EXPECT_EQ(route.next_deadline(), kStart + 300);
  route.on_timer(kStart + 300, rng);  // flight 1's attempt times out; flight 2 is not due
  const RouteWake wake = only<RouteWake>(drain(route));
  EXPECT_GE(wake.at, kStart + 310);
  EXPECT_LE(wake.at, kStart + 350);
  EXPECT_EQ(route.next_deadline(), wake.at);
  route.on_timer(wake.at, rng);
  const RouteStoreCall retry = only<RouteStoreCall>(drain(route));
  EXPECT_EQ(retry.flight, 1u);
  EXPECT_EQ(retry.call.call, 2u);
  EXPECT_EQ(retry.call.attempt, 2);
  EXPECT_EQ(retry.call.op.request, "r1");  // R3a
}

TEST(Route, F5_ALateGateReplyDuringReleaseIsIgnored) {
  Route route(config());
  Rng rng(1);
  route.on_request(kStart, 1, req(), rng);
  const RouteStoreCall admit1 = only<RouteStoreCall>(drain(route));
  route.on_timer(admit1.call.deadline, rng);  // gate attempt 1 timed out
  const RouteWake wake = only<RouteWake>(drain(route));
  route.on_timer(wake.at, rng);
  const RouteStoreCall admit2 = only<RouteStoreCall>(drain(route));
  route.on_store_reply(wake.at + 10, admit2.flight, admit2.call.call, decided(Outcome::admitted, 6), rng);
  const RouteBrokerCall resolve = only<RouteBrokerCall>(drain(route));
  route.on_broker_reply(wake.at + 20, resolve.flight, resolve.call.call,
                        BrokerReply{AttemptResult{OutcomeClass::permanent, std::nullopt}, {}}, rng);
  const RouteStoreCall release = only<RouteStoreCall>(drain(route));
  ASSERT_EQ(release.call.op.kind, OpKind::release);
  ASSERT_EQ(release.call.attempt, admit1.call.attempt);
  // The gate's attempt 1 fails at last: the same flight and attempt number, another call.
  route.on_store_reply(wake.at + 30, admit1.flight, admit1.call.call,
                       StoreReply{std::nullopt, AttemptResult{OutcomeClass::permanent, std::nullopt}}, rng);
  EXPECT_TRUE(drain(route).empty());
  EXPECT_EQ(route.flight_count(), 1u);
  EXPECT_EQ(route.next_deadline(), release.call.deadline);
  route.on_store_reply(wake.at + 40, release.flight, release.call.call, decided(Outcome::released), rng);
  const RouteRespond respond = only<RouteRespond>(drain(route));
  EXPECT_EQ(respond.waiter, 1u);
  EXPECT_EQ(respond.response, Response::denial(DenialReason::resolve_failed));
  EXPECT_EQ(route.flight_count(), 0u);
}

TEST(Route, F6_C6_HungDependenciesAnswerEveryWaiterInTime) {
  Route route(config());
  Rng rng(5);
  route.on_request(kStart, 1, req("c1"), rng);
  route.on_request(kStart, 2, req("c1"), rng);
  route.on_request(kStart, 3, req("c2"), rng);
  route.on_request(kStart, 4, req("c3", "tt9"), rng);
  std::vector<RouteEffect> log = drain(route);
  const Ms end = run_timers_to_quiescence(route, rng, log);
  const std::vector<RouteRespond> answers = all_of<RouteRespond>(log);
  ASSERT_EQ(answers.size(), 4u);
  for (const RouteRespond& answer : answers) {
    EXPECT_EQ(answer.response, Response::denial(DenialReason::unavailable));  // F4 fail_closed
  }
  EXPECT_TRUE(all_of<RouteBrokerCall>(log).empty());
  EXPECT_LE(end, kStart + 800 + 6000 + 800);
  EXPECT_EQ(route.flight_count(), 0u);
  EXPECT_FALSE(route.next_deadline().has_value());
}

}  // namespace
}  // namespace turnstile::core
