#include "sim/draws.h"

#include <array>
#include <utility>

#include "core/assert.h"

namespace turnstile::sim {
namespace {

constexpr std::array<std::string_view, kDrawSiteCount> kSiteNames = {
    "swarm", "workload", "instance", "store_latency", "store_fault", "broker_latency", "broker_fault", "clock_skew",
    "jitter",
};

// Stream numbers for core::derive_seed. The world splits the scheduler's seed
// from the run's seed with stream 0; each draw site takes 1 + its index, so
// no two purposes ever share a stream.
constexpr std::uint64_t kFirstSiteStream = 1;

std::size_t index_of(DrawSite site) {
  const auto index = static_cast<std::size_t>(site);
  TS_ASSERT(index < kDrawSiteCount);
  return index;
}

}  // namespace

std::string_view draw_site_name(DrawSite site) { return kSiteNames[index_of(site)]; }

std::optional<DrawSite> draw_site_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kSiteNames.size(); ++i) {
    if (kSiteNames[i] == name) return static_cast<DrawSite>(i);
  }
  return std::nullopt;
}

Draws::Draws(std::uint64_t seed) {
  streams_.reserve(kDrawSiteCount);
  for (std::size_t i = 0; i < kDrawSiteCount; ++i) {
    streams_.emplace_back(core::derive_seed(seed, kFirstSiteStream + i));
  }
}

Draws::Draws(std::vector<Draw> recorded) : recorded_(std::move(recorded)), replaying_(true) {}

Draws::Draws(DrawPlan plan) : plan_(std::move(plan)) {}

std::uint64_t Draws::below(DrawSite site, std::uint64_t bound) {
  TS_ASSERT(bound >= 1);
  const std::size_t index = log_.size();
  std::uint64_t value = 0;
  if (plan_) {
    const std::size_t at = index_of(site);
    const std::vector<std::uint64_t>& values = plan_->values[at];
    const std::size_t taken = planned_taken_[at]++;
    value = taken < values.size() ? values[taken] % bound : 0;
  } else if (!replaying_) {
    value = streams_[index_of(site)].below(bound);
  } else if (!divergence_) {
    // A recorded draw is followed only where the code asks the same question
    // (site and bound) and the answer fits it; a trace edited by hand or a
    // changed program gets a divergence, never an out-of-range value.
    if (index >= recorded_.size()) {
      divergence_ = DrawDivergence{index, std::nullopt, Draw{site, bound, 0}};
    } else {
      const Draw& expected = recorded_[index];
      if (expected.site != site || expected.bound != bound || expected.value >= bound) {
        divergence_ = DrawDivergence{index, expected, Draw{site, bound, 0}};
      } else {
        value = expected.value;
      }
    }
  }
  log_.push_back(Draw{site, bound, value});
  return value;
}

std::int64_t Draws::uniform(DrawSite site, std::int64_t lo, std::int64_t hi) {
  TS_ASSERT(lo <= hi);
  const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  // The whole 64-bit range would need a bound of 2^64; no site asks for it.
  TS_ASSERT(span < ~std::uint64_t{0});
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + below(site, span + 1));
}

bool Draws::chance_permille(DrawSite site, std::uint32_t permille) {
  TS_ASSERT(permille <= 1000);
  // A site that cannot fire takes no draw, so turning a fault off (swarm
  // testing, or shrinking) removes its draws instead of shifting values.
  if (permille == 0) return false;
  // The top `permille` values fire, so the simplest value, 0, never does
  // (unless the chance is certain).
  return below(site, 1000) >= 1000 - permille;
}

}  // namespace turnstile::sim
