#include "core/coalesce.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace turnstile::core {
namespace {

FlightKey key(std::string pool = "pool", std::string client = "client", std::string episode = "ep") {
  return FlightKey{std::move(pool), std::move(client), std::move(episode)};
}

// Fills the table with `n` flights of distinct clients, so the next new key meets a full table.
void fill(Coalescer& coalescer, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(coalescer.join(key("pool", "filler-" + std::to_string(i)), 1000 + i).outcome, JoinOutcome::leader);
  }
}

TEST(Coalesce, C1_SecondRequestForKeyJoinsTheRunningFlight) {
  Coalescer coalescer;
  const JoinResult first = coalescer.join(key(), 1);
  const JoinResult second = coalescer.join(key(), 2);
  EXPECT_EQ(first.outcome, JoinOutcome::leader);
  EXPECT_EQ(second.outcome, JoinOutcome::joined);
  EXPECT_EQ(second.flight, first.flight);
  EXPECT_EQ(coalescer.flight_count(), 1u);
  EXPECT_EQ(coalescer.waiter_count(first.flight), 2u);
}

TEST(Coalesce, C1_LeaderIsTheFlightsFirstWaiter) {
  Coalescer coalescer;
  const JoinResult leader = coalescer.join(key(), 7);
  ASSERT_EQ(leader.outcome, JoinOutcome::leader);
  EXPECT_EQ(coalescer.waiter_count(leader.flight), 1u);
  ASSERT_NE(coalescer.key_of(leader.flight), nullptr);
  EXPECT_EQ(*coalescer.key_of(leader.flight), key());
  EXPECT_EQ(coalescer.finish(leader.flight), (std::vector<WaiterId>{7}));
}

TEST(Coalesce, C1_KeysDifferingInPoolClientOrEpisodeGetDifferentFlights) {
  Coalescer coalescer;
  const std::vector<FlightKey> keys = {key("a", "c", "e"), key("b", "c", "e"), key("a", "d", "e"),
                                       key("a", "c", "f")};
  std::vector<FlightId> flights;
  WaiterId waiter = 1;
  for (const FlightKey& k : keys) {
    const JoinResult result = coalescer.join(k, waiter++);
    EXPECT_EQ(result.outcome, JoinOutcome::leader);
    for (FlightId other : flights) EXPECT_NE(result.flight, other);
    flights.push_back(result.flight);
  }
  EXPECT_EQ(coalescer.flight_count(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_NE(coalescer.key_of(flights[i]), nullptr);
    EXPECT_EQ(*coalescer.key_of(flights[i]), keys[i]);
    EXPECT_EQ(coalescer.waiter_count(flights[i]), 1u);
  }
}

TEST(Coalesce, C2_FinishReturnsEveryWaiterOnceInJoinOrder) {
  Coalescer coalescer;
  const FlightId flight = coalescer.join(key(), 30).flight;
  for (WaiterId waiter : {10u, 50u, 20u, 40u}) {
    EXPECT_EQ(coalescer.join(key(), waiter).outcome, JoinOutcome::joined);
  }
  EXPECT_EQ(coalescer.finish(flight), (std::vector<WaiterId>{30, 10, 50, 20, 40}));
}

TEST(Coalesce, C2_FinishAnswersOnlyItsOwnFlightsWaiters) {
  Coalescer coalescer;
  const FlightId a = coalescer.join(key("pool", "a"), 1).flight;
  const FlightId b = coalescer.join(key("pool", "b"), 2).flight;
  coalescer.join(key("pool", "a"), 3);
  coalescer.join(key("pool", "b"), 4);
  EXPECT_EQ(coalescer.finish(a), (std::vector<WaiterId>{1, 3}));
  EXPECT_TRUE(coalescer.has_flight(b));
  EXPECT_EQ(coalescer.finish(b), (std::vector<WaiterId>{2, 4}));
}

TEST(Coalesce, C3_AfterFinishTheKeyStartsANewFlightWithANewId) {
  Coalescer coalescer;
  const FlightId first = coalescer.join(key(), 1).flight;
  coalescer.finish(first);
  EXPECT_FALSE(coalescer.has_flight(first));
  EXPECT_EQ(coalescer.key_of(first), nullptr);
  const JoinResult again = coalescer.join(key(), 2);
  EXPECT_EQ(again.outcome, JoinOutcome::leader);
  EXPECT_NE(again.flight, first);
  EXPECT_EQ(coalescer.finish(again.flight), (std::vector<WaiterId>{2}));
}

TEST(Coalesce, C3_FlightIdsStartAtOneAndAreNeverReused) {
  Coalescer coalescer;
  for (FlightId expected = 1; expected <= 5; ++expected) {
    const JoinResult result = coalescer.join(key(), expected);
    EXPECT_EQ(result.flight, expected);
    coalescer.finish(result.flight);
  }
}

TEST(Coalesce, C3_FinishOfAnUnknownOrEndedFlightReturnsNothing) {
  Coalescer coalescer;
  EXPECT_TRUE(coalescer.finish(1).empty());
  const FlightId flight = coalescer.join(key(), 1).flight;
  coalescer.join(key(), 2);
  EXPECT_EQ(coalescer.finish(flight).size(), 2u);
  EXPECT_TRUE(coalescer.finish(flight).empty());
  EXPECT_TRUE(coalescer.finish(flight + 1).empty());
  EXPECT_EQ(coalescer.flight_count(), 0u);
}

TEST(Coalesce, C4_AWaiterLeavingDoesNotEndTheFlight) {
  Coalescer coalescer;
  const FlightId flight = coalescer.join(key(), 1).flight;
  coalescer.join(key(), 2);
  coalescer.join(key(), 3);
  EXPECT_TRUE(coalescer.leave(flight, 2));
  EXPECT_TRUE(coalescer.has_flight(flight));
  EXPECT_EQ(coalescer.waiter_count(flight), 2u);
  // A later request still joins the running flight.
  EXPECT_EQ(coalescer.join(key(), 4).flight, flight);
  EXPECT_EQ(coalescer.finish(flight), (std::vector<WaiterId>{1, 3, 4}));
}

TEST(Coalesce, C4_LeaderLeavingIsJustAWaiterLeaving) {
  Coalescer coalescer;
  const FlightId flight = coalescer.join(key(), 1).flight;
  coalescer.join(key(), 2);
  EXPECT_TRUE(coalescer.leave(flight, 1));
  EXPECT_TRUE(coalescer.has_flight(flight));
  EXPECT_EQ(coalescer.finish(flight), (std::vector<WaiterId>{2}));
}

TEST(Coalesce, C4_LastWaiterLeavingLeavesTheFlightRunningUntilFinish) {
  Coalescer coalescer;
  const FlightId flight = coalescer.join(key(), 1).flight;
  EXPECT_TRUE(coalescer.leave(flight, 1));
  EXPECT_TRUE(coalescer.has_flight(flight));
  EXPECT_EQ(coalescer.waiter_count(flight), 0u);
  EXPECT_EQ(coalescer.flight_count(), 1u);
  // A request meanwhile joins the running flight rather than starting another.
  const JoinResult late = coalescer.join(key(), 2);
  EXPECT_EQ(late.outcome, JoinOutcome::joined);
  EXPECT_EQ(late.flight, flight);
  EXPECT_TRUE(coalescer.leave(flight, 2));
  EXPECT_TRUE(coalescer.finish(flight).empty());
  // No leak: the flight and its key are gone, and the next request starts a new flight.
  EXPECT_EQ(coalescer.flight_count(), 0u);
  EXPECT_FALSE(coalescer.has_flight(flight));
  const JoinResult next = coalescer.join(key(), 3);
  EXPECT_EQ(next.outcome, JoinOutcome::leader);
  EXPECT_NE(next.flight, flight);
}

TEST(Coalesce, C4_LeavingTwiceOrTheWrongFlightReturnsFalse) {
  Coalescer coalescer;
  const FlightId a = coalescer.join(key("pool", "a"), 1).flight;
  const FlightId b = coalescer.join(key("pool", "b"), 2).flight;
  EXPECT_FALSE(coalescer.leave(b, 1));
  EXPECT_FALSE(coalescer.leave(b + 100, 1));
  EXPECT_EQ(coalescer.waiter_count(a), 1u);
  EXPECT_TRUE(coalescer.leave(a, 1));
  EXPECT_FALSE(coalescer.leave(a, 1));
  EXPECT_EQ(coalescer.waiter_count(b), 1u);
  coalescer.finish(b);
  EXPECT_FALSE(coalescer.leave(b, 2));
}

TEST(Coalesce, C5_DefaultBoundsAre10000FlightsAnd64Waiters) {
  const CoalesceConfig config;
  EXPECT_EQ(config.max_flights, 10000u);
  EXPECT_EQ(config.max_waiters, 64u);
}

TEST(Coalesce, C5_FullTableAnswersBusyAndRecordsNothing) {
  Coalescer coalescer(CoalesceConfig{.max_flights = 3, .max_waiters = 4});
  fill(coalescer, 3);
  const JoinResult busy = coalescer.join(key("pool", "newcomer"), 1);
  EXPECT_EQ(busy.outcome, JoinOutcome::busy);
  EXPECT_EQ(busy.flight, 0u);
  EXPECT_EQ(coalescer.flight_count(), 3u);
  EXPECT_FALSE(coalescer.has_flight(4));
  // A key that has a flight still joins it when the table is full.
  EXPECT_EQ(coalescer.join(key("pool", "filler-0"), 2).outcome, JoinOutcome::joined);
}

TEST(Coalesce, C5_FullFlightAnswersBusy) {
  Coalescer coalescer(CoalesceConfig{.max_flights = 10, .max_waiters = 3});
  const FlightId flight = coalescer.join(key(), 1).flight;
  EXPECT_EQ(coalescer.join(key(), 2).outcome, JoinOutcome::joined);
  EXPECT_EQ(coalescer.join(key(), 3).outcome, JoinOutcome::joined);
  const JoinResult busy = coalescer.join(key(), 4);
  EXPECT_EQ(busy.outcome, JoinOutcome::busy);
  EXPECT_EQ(busy.flight, 0u);
  EXPECT_EQ(coalescer.waiter_count(flight), 3u);
  EXPECT_EQ(coalescer.flight_count(), 1u);
  EXPECT_EQ(coalescer.finish(flight), (std::vector<WaiterId>{1, 2, 3}));
}

TEST(Coalesce, C5_AWaiterLeavingFreesItsPlaceInTheFlight) {
  Coalescer coalescer(CoalesceConfig{.max_flights = 10, .max_waiters = 2});
  const FlightId flight = coalescer.join(key(), 1).flight;
  coalescer.join(key(), 2);
  EXPECT_EQ(coalescer.join(key(), 3).outcome, JoinOutcome::busy);
  EXPECT_TRUE(coalescer.leave(flight, 1));
  EXPECT_EQ(coalescer.join(key(), 3).outcome, JoinOutcome::joined);
  EXPECT_EQ(coalescer.finish(flight), (std::vector<WaiterId>{2, 3}));
}

TEST(Coalesce, C5_ABoundFreedByFinishAdmitsAgain) {
  Coalescer coalescer(CoalesceConfig{.max_flights = 2, .max_waiters = 1});
  const FlightId a = coalescer.join(key("pool", "a"), 1).flight;
  coalescer.join(key("pool", "b"), 2);
  EXPECT_EQ(coalescer.join(key("pool", "c"), 3).outcome, JoinOutcome::busy);
  EXPECT_EQ(coalescer.join(key("pool", "a"), 4).outcome, JoinOutcome::busy);
  coalescer.finish(a);
  EXPECT_EQ(coalescer.join(key("pool", "c"), 3).outcome, JoinOutcome::leader);
  EXPECT_EQ(coalescer.join(key("pool", "a"), 4).outcome, JoinOutcome::busy);
  EXPECT_EQ(coalescer.flight_count(), 2u);
}

TEST(Coalesce, C5_ZeroBoundsAnswerEveryRequestBusy) {
  Coalescer no_flights(CoalesceConfig{.max_flights = 0, .max_waiters = 64});
  EXPECT_EQ(no_flights.join(key(), 1).outcome, JoinOutcome::busy);
  EXPECT_EQ(no_flights.flight_count(), 0u);
  Coalescer no_waiters(CoalesceConfig{.max_flights = 10, .max_waiters = 0});
  EXPECT_EQ(no_waiters.join(key(), 1).outcome, JoinOutcome::busy);
  EXPECT_EQ(no_waiters.flight_count(), 0u);
}

TEST(Coalesce, C6_FlightCountIsZeroAtQuiescence) {
  Coalescer coalescer;
  EXPECT_EQ(coalescer.flight_count(), 0u);
  std::vector<FlightId> flights;
  WaiterId waiter = 1;
  for (const char* client : {"a", "b", "c"}) {
    flights.push_back(coalescer.join(key("pool", client), waiter++).flight);
    coalescer.join(key("pool", client), waiter++);
  }
  EXPECT_TRUE(coalescer.leave(flights[1], 3));
  EXPECT_TRUE(coalescer.leave(flights[1], 4));
  EXPECT_EQ(coalescer.flight_count(), 3u);
  for (FlightId flight : flights) coalescer.finish(flight);
  EXPECT_EQ(coalescer.flight_count(), 0u);
  for (FlightId flight : flights) EXPECT_EQ(coalescer.waiter_count(flight), 0u);
}

}  // namespace
}  // namespace turnstile::core
