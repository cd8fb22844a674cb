#pragma once

// Shrinking a failing run (`turnstile shrink`, docs/shrink.md): the smallest
// run, by a fixed measure, that still violates the same rule.
//
// A run is shrunk in the form the `guided` strategy and a DrawPlan replay
// (sim/scheduler.h, sim/draws.h): the scenario, the scheduler's choices and
// every draw's value site by site. Any such case is a valid run, so the
// shrinker may drop client groups, lower counts, turn fault sites off, cut or
// lower choices and draw values freely; 0 is always the simplest choice and
// the simplest draw (no fault, no latency). The gate's and the flow's config
// (capacity, ttl, grace, budgets) are the system under test and stay as they
// were (but see ShrinkOptions::min_capacity).
//
// The algorithm is deterministic (candidates in a fixed order, no
// randomness) and bounded (ShrinkOptions::max_runs runs in all). A candidate
// is kept only when it still breaks the same rule and is strictly smaller by
// RunSize's measure, steps first, so the result is never larger than the
// input, and the loop ends.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/draws.h"
#include "sim/scenario.h"
#include "sim/trace.h"
#include "sim/world.h"

namespace turnstile::sim {

// A run as the shrinker holds it.
struct ShrinkCase {
  Scenario scenario;
  GateMode gate = GateMode::atomic;
  std::vector<std::uint32_t> choices;  // guided: each taken modulo the ready count, 0 past the end
  DrawPlan plan;
};

// The spec that runs a case: strategy guided, every draw from the plan.
RunSpec guided_spec(const ShrinkCase& c, const WorldHooks& hooks);

// The case of a recorded run: the choices it took and its draws site by
// site. Run guided, it is the same run, step for step.
ShrinkCase case_of_run(const Scenario& scenario, GateMode gate, const RunReport& report);
ShrinkCase case_of_trace(const Trace& trace);

// How big a run is, as `turnstile shrink` reports it.
struct RunSize {
  std::uint64_t steps = 0;    // scheduler steps
  std::uint64_t choices = 0;  // steps at which more than one fiber was ready
  std::uint64_t clients = 0;  // in the scenario
  std::uint64_t draws = 0;    // random decisions (faults, latencies, workload)
  std::uint64_t events = 0;   // history events

  friend bool operator==(const RunSize&, const RunSize&) = default;
};
RunSize run_size(const Scenario& scenario, const RunReport& report);
RunSize trace_size(const Trace& trace);
// "14 steps, 3 choices, 3 clients, 2 draws, 12 events"
std::string describe_size(const RunSize& size);

struct ShrinkProgress {
  std::uint64_t runs = 0;
  std::uint64_t max_runs = 0;
  RunSize best;
};

struct ShrinkOptions {
  // Runs in all, the first (which checks that the case fails) included.
  std::uint64_t max_runs = 3000;
  // Called after every run (a progress line, say); may be empty.
  std::function<void(const ShrinkProgress&)> progress;
  // 0 keeps the gate's capacity as it is (`turnstile shrink`: the config is
  // the system under test). Above 0, capacity may be lowered down to this:
  // the properties' generator makes pools of two slots and more, and
  // shrinking its cases stays inside what it generates.
  std::int64_t min_capacity = 0;
};

struct ShrinkResult {
  ShrinkCase shrunk;
  RunReport report;  // the shrunk case's run
  RunSize before;    // the input's run
  RunSize after;
  std::uint64_t runs = 0;
  bool budget_exhausted = false;  // max_runs ran out before no candidate was left
};

// Shrinks `start`, which must violate `rule` when run guided with `hooks`
// (nullopt when it does not: nothing to shrink).
std::optional<ShrinkResult> shrink(const ShrinkCase& start, std::string_view rule, const WorldHooks& hooks,
                                   const ShrinkOptions& options);

}  // namespace turnstile::sim
