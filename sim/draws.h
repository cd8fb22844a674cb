#pragma once

// Every random decision a run makes outside the scheduler (the workload's
// choices, fault decisions, latencies, the retry machines' jitter) goes
// through one Draws object, which either draws it from the seed or, in
// replay, takes it from a trace. Each draw is logged with its site and bound,
// so a trace holds every decision the run took and a replay that meets a
// different site or bound can say exactly where the code diverged.
//
// Convention that shrinking relies on (issue "properties that shrink"): for
// every site, value 0 is the simplest outcome: no fault, the least latency,
// the first behaviour. Write new sites so that smaller values are simpler.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"

namespace turnstile::sim {

// Where a draw was taken. Each site has its own stream split from the run's
// seed, so adding draws at one site does not shift the others.
enum class DrawSite : std::uint8_t {
  swarm,           // which fault sites are on for this seed, and how often
  workload,        // client behaviour choices: think times, episodes, counts
  instance,        // which server instance a request lands on
  store_latency,
  store_fault,
  broker_latency,
  broker_fault,
  clock_skew,      // the callers' clocks
  jitter,          // the retry machines' R5 draws
};
inline constexpr std::size_t kDrawSiteCount = 9;

std::string_view draw_site_name(DrawSite site);
std::optional<DrawSite> draw_site_from_name(std::string_view name);

struct Draw {
  DrawSite site = DrawSite::workload;
  std::uint64_t bound = 1;  // the value is in [0, bound)
  std::uint64_t value = 0;

  friend bool operator==(const Draw&, const Draw&) = default;
};

// A plan for every draw of a run, by site, for generated runs (properties,
// shrinking): the i-th draw at a site takes values[site][i] modulo its bound,
// and 0 (the simplest outcome) once the site's list has run out. Any plan is
// a valid run, so a generator or a shrinker may change, cut or drop values
// freely; a site's values do not shift when another site draws more or less.
struct DrawPlan {
  std::array<std::vector<std::uint64_t>, kDrawSiteCount> values;

  friend bool operator==(const DrawPlan&, const DrawPlan&) = default;
};

// Why a replay could not follow its recording.
struct DrawDivergence {
  std::size_t index = 0;                // which draw, from 0
  std::optional<Draw> expected;         // nullopt: the recording had ended
  Draw got;                             // site and bound the code asked for now
};

class Draws {
 public:
  // Record mode: values come from per-site streams split from `seed`.
  explicit Draws(std::uint64_t seed);
  // Replay mode: values come from `recorded`, in order. A draw whose site or
  // bound differs from the recording, or that runs past its end, marks the
  // divergence and from then on returns 0 (the simplest outcome), so the run
  // can end cleanly and report where it diverged.
  explicit Draws(std::vector<Draw> recorded);
  // Plan mode: values come from `plan` (see DrawPlan); it never diverges.
  explicit Draws(DrawPlan plan);

  // A value in [0, bound). bound >= 1.
  std::uint64_t below(DrawSite site, std::uint64_t bound);
  // A value in [lo, hi]; lo is the simplest.
  std::int64_t uniform(DrawSite site, std::int64_t lo, std::int64_t hi);
  // True with probability permille / 1000; the simplest outcome is false.
  bool chance_permille(DrawSite site, std::uint32_t permille);

  const std::vector<Draw>& log() const { return log_; }
  const std::optional<DrawDivergence>& divergence() const { return divergence_; }

 private:
  std::vector<core::Rng> streams_;  // record mode: one per site
  std::vector<Draw> recorded_;      // replay mode
  bool replaying_ = false;
  std::optional<DrawPlan> plan_;    // plan mode
  std::array<std::size_t, kDrawSiteCount> planned_taken_{};  // plan mode: values used per site
  std::vector<Draw> log_;
  std::optional<DrawDivergence> divergence_;
};

// Core machines that need randomness take a core::Rng& (the retry machine's
// R5 jitter). The world gives each flight its own core::Rng, seeded by one
// draw at DrawSite::jitter, so a replay reproduces the jitter through that
// recorded seed.

}  // namespace turnstile::sim
