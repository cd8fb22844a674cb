// The simulator's virtual clock, timer queue and fingerprint (DESIGN.md,
// "Determinism rules"): bounded, ordered only by their inputs, and the
// fingerprint a fully specified function that travels between machines.

#include <vector>

#include <gtest/gtest.h>

#include "sim/clock.h"
#include "sim/fingerprint.h"

namespace turnstile::sim {
namespace {

TEST(SimClock, StartsWhereToldAndOnlyMovesForward) {
  Clock clock(250);
  EXPECT_EQ(clock.now_ms(), 250);
  clock.advance_to(250);
  clock.advance_to(300);
  EXPECT_EQ(clock.now_ms(), 300);
  EXPECT_DEATH(clock.advance_to(299), "to_ms >= now_ms_");
}

TEST(SimTimers, PopsEveryTimerDueAtTheEarliestInstantTogether) {
  TimerQueue timers(8);
  ASSERT_TRUE(timers.push(30, 4));
  ASSERT_TRUE(timers.push(10, 7));
  ASSERT_TRUE(timers.push(30, 1));
  ASSERT_TRUE(timers.push(10, 2));
  ASSERT_TRUE(timers.push(20, 3));
  std::vector<SimFiberId> due;
  EXPECT_EQ(timers.next_wake_ms(), 10);
  EXPECT_EQ(timers.pop_earliest(due), 10);
  EXPECT_EQ(due, (std::vector<SimFiberId>{7, 2}));  // in the order they were pushed
  due.clear();
  EXPECT_EQ(timers.pop_earliest(due), 20);
  EXPECT_EQ(due, std::vector<SimFiberId>{3});
  due.clear();
  EXPECT_EQ(timers.pop_earliest(due), 30);
  EXPECT_EQ(due, (std::vector<SimFiberId>{4, 1}));
  EXPECT_TRUE(timers.empty());
}

TEST(SimTimers, IsBoundedAndRemovesEarlyWakeUps) {
  TimerQueue timers(2);
  EXPECT_TRUE(timers.push(5, 0));
  EXPECT_TRUE(timers.push(6, 1));
  EXPECT_FALSE(timers.push(7, 2));
  EXPECT_EQ(timers.size(), 2u);
  EXPECT_TRUE(timers.remove(0));
  EXPECT_FALSE(timers.remove(0));
  EXPECT_EQ(timers.next_wake_ms(), 6);
  EXPECT_TRUE(timers.push(7, 2));
  std::vector<SimFiberId> due;
  EXPECT_EQ(timers.pop_earliest(due), 6);
  EXPECT_EQ(due, std::vector<SimFiberId>{1});
}

TEST(SimFingerprint, IsFnv1aOverLittleEndianWords) {
  // Known FNV-1a 64 values: the offset basis for no input, and the hash of
  // the eight bytes 01 00 00 00 00 00 00 00.
  Fingerprint empty;
  EXPECT_EQ(empty.value(), 0xcbf29ce484222325ULL);
  Fingerprint one;
  one.add(1);
  EXPECT_EQ(one.value(), 0x89cd31291d2aefa4ULL);
  Fingerprint two;
  two.add(2);
  EXPECT_NE(two.value(), one.value());
}

}  // namespace
}  // namespace turnstile::sim
