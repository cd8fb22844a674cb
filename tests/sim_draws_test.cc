// Draws (sim/draws.h): every random decision outside the scheduler comes
// from per-site streams split from the run's seed (R8, DESIGN "Determinism
// rules"), is logged, and replays from the log; a replay that asks a
// different question names the first draw where it diverged.

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "sim/draws.h"

namespace turnstile::sim {
namespace {

std::vector<std::uint64_t> take(Draws& draws, DrawSite site, int n, std::uint64_t bound = 1000) {
  std::vector<std::uint64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(draws.below(site, bound));
  return out;
}

TEST(Draws, R8_SameSeedGivesSameValues) {
  Draws a(42);
  Draws b(42);
  EXPECT_EQ(take(a, DrawSite::workload, 50), take(b, DrawSite::workload, 50));
  EXPECT_EQ(a.log(), b.log());
}

TEST(Draws, R8_DifferentSeedsGiveDifferentValues) {
  Draws a(1);
  Draws b(2);
  EXPECT_NE(take(a, DrawSite::workload, 50), take(b, DrawSite::workload, 50));
}

TEST(Draws, EverySiteHasItsOwnStream) {
  // Adding draws at one site never shifts another site's values.
  Draws plain(7);
  Draws busy(7);
  (void)take(busy, DrawSite::store_fault, 25);
  (void)take(busy, DrawSite::jitter, 3);
  EXPECT_EQ(take(plain, DrawSite::broker_latency, 40), take(busy, DrawSite::broker_latency, 40));
}

TEST(Draws, SitesDoNotShareValues) {
  Draws draws(7);
  EXPECT_NE(take(draws, DrawSite::workload, 20, 1'000'000), take(draws, DrawSite::instance, 20, 1'000'000));
}

TEST(Draws, LogHoldsSiteBoundAndValueOfEveryDraw) {
  Draws draws(3);
  const std::uint64_t v = draws.below(DrawSite::instance, 4);
  const std::int64_t u = draws.uniform(DrawSite::store_latency, 10, 20);
  ASSERT_EQ(draws.log().size(), 2u);
  EXPECT_EQ(draws.log()[0], (Draw{DrawSite::instance, 4, v}));
  EXPECT_EQ(draws.log()[1].site, DrawSite::store_latency);
  EXPECT_EQ(draws.log()[1].bound, 11u);
  EXPECT_EQ(static_cast<std::int64_t>(draws.log()[1].value) + 10, u);
}

TEST(Draws, ValuesStayInRange) {
  Draws draws(99);
  for (int i = 0; i < 500; ++i) {
    EXPECT_LT(draws.below(DrawSite::workload, 7), 7u);
    const std::int64_t u = draws.uniform(DrawSite::clock_skew, -500, 500);
    EXPECT_GE(u, -500);
    EXPECT_LE(u, 500);
  }
}

TEST(Draws, P3_ReplayReturnsTheRecordedValues) {
  Draws recorder(11);
  std::vector<std::int64_t> recorded;
  recorded.push_back(static_cast<std::int64_t>(recorder.below(DrawSite::swarm, 2)));
  recorded.push_back(recorder.uniform(DrawSite::store_latency, 0, 40));
  recorded.push_back(recorder.chance_permille(DrawSite::store_fault, 500) ? 1 : 0);
  recorded.push_back(recorder.uniform(DrawSite::clock_skew, -300, 300));

  Draws replay(recorder.log());
  std::vector<std::int64_t> replayed;
  replayed.push_back(static_cast<std::int64_t>(replay.below(DrawSite::swarm, 2)));
  replayed.push_back(replay.uniform(DrawSite::store_latency, 0, 40));
  replayed.push_back(replay.chance_permille(DrawSite::store_fault, 500) ? 1 : 0);
  replayed.push_back(replay.uniform(DrawSite::clock_skew, -300, 300));

  EXPECT_EQ(replayed, recorded);
  EXPECT_EQ(replay.log(), recorder.log());
  EXPECT_FALSE(replay.divergence().has_value());
}

TEST(Draws, ReplayNamesADrawAtAnotherSite) {
  Draws recorder(5);
  (void)recorder.below(DrawSite::workload, 10);
  (void)recorder.below(DrawSite::instance, 2);

  Draws replay(recorder.log());
  (void)replay.below(DrawSite::workload, 10);
  EXPECT_EQ(replay.below(DrawSite::jitter, 2), 0u);  // diverged: the simplest value
  ASSERT_TRUE(replay.divergence().has_value());
  EXPECT_EQ(replay.divergence()->index, 1u);
  ASSERT_TRUE(replay.divergence()->expected.has_value());
  EXPECT_EQ(replay.divergence()->expected->site, DrawSite::instance);
  EXPECT_EQ(replay.divergence()->got.site, DrawSite::jitter);
}

TEST(Draws, ReplayNamesADrawWithAnotherBound) {
  Draws recorder(5);
  (void)recorder.below(DrawSite::workload, 10);
  Draws replay(recorder.log());
  (void)replay.below(DrawSite::workload, 11);
  ASSERT_TRUE(replay.divergence().has_value());
  EXPECT_EQ(replay.divergence()->index, 0u);
  EXPECT_EQ(replay.divergence()->got.bound, 11u);
}

TEST(Draws, ReplayPastTheRecordingDivergesAndReturnsTheSimplestValue) {
  Draws replay(std::vector<Draw>{Draw{DrawSite::workload, 10, 9}});
  EXPECT_EQ(replay.below(DrawSite::workload, 10), 9u);
  EXPECT_EQ(replay.below(DrawSite::workload, 10), 0u);
  ASSERT_TRUE(replay.divergence().has_value());
  EXPECT_EQ(replay.divergence()->index, 1u);
  EXPECT_FALSE(replay.divergence()->expected.has_value());
  // Later draws keep returning the simplest value; the first divergence stays.
  EXPECT_EQ(replay.below(DrawSite::workload, 10), 0u);
  EXPECT_EQ(replay.divergence()->index, 1u);
}

TEST(Draws, ReplayOfAnOutOfRangeValueDivergesInsteadOfReturningIt) {
  // A trace edited by hand: the value does not fit its bound.
  Draws replay(std::vector<Draw>{Draw{DrawSite::workload, 10, 10}});
  EXPECT_EQ(replay.below(DrawSite::workload, 10), 0u);
  ASSERT_TRUE(replay.divergence().has_value());
  EXPECT_EQ(replay.divergence()->index, 0u);
}

TEST(Draws, ChanceOfZeroIsFalseAndTakesNoDraw) {
  Draws draws(1);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(draws.chance_permille(DrawSite::store_fault, 0));
  EXPECT_TRUE(draws.log().empty());
}

TEST(Draws, ChanceOfAThousandIsTrue) {
  Draws draws(1);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(draws.chance_permille(DrawSite::store_fault, 1000));
}

TEST(Draws, ChanceSimplestValueIsFalse) {
  // Value 0 is the simplest outcome (shrinking relies on it): no fault.
  Draws replay(std::vector<Draw>{Draw{DrawSite::store_fault, 1000, 0}, Draw{DrawSite::store_fault, 1000, 999}});
  EXPECT_FALSE(replay.chance_permille(DrawSite::store_fault, 999));
  EXPECT_TRUE(replay.chance_permille(DrawSite::store_fault, 1));
  EXPECT_FALSE(replay.divergence().has_value());
}

TEST(Draws, ChanceFiresAtRoughlyItsRate) {
  Draws draws(2024);
  int fired = 0;
  for (int i = 0; i < 10000; ++i) fired += draws.chance_permille(DrawSite::store_fault, 100) ? 1 : 0;
  EXPECT_GT(fired, 800);
  EXPECT_LT(fired, 1200);
}

TEST(Draws, UniformSimplestValueIsTheLowEnd) {
  Draws replay(std::vector<Draw>{Draw{DrawSite::clock_skew, 11, 0}});
  EXPECT_EQ(replay.uniform(DrawSite::clock_skew, -5, 5), -5);
}

TEST(Draws, SiteNamesRoundTrip) {
  for (std::size_t i = 0; i < kDrawSiteCount; ++i) {
    const auto site = static_cast<DrawSite>(i);
    const auto back = draw_site_from_name(draw_site_name(site));
    ASSERT_TRUE(back.has_value()) << draw_site_name(site);
    EXPECT_EQ(*back, site);
  }
  EXPECT_EQ(draw_site_name(DrawSite::store_fault), "store_fault");
  EXPECT_FALSE(draw_site_from_name("nonsense").has_value());
}

}  // namespace
}  // namespace turnstile::sim
