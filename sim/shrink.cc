#include "sim/shrink.h"

#include <algorithm>
#include <array>
#include <compare>
#include <set>
#include <variant>
#include <cstddef>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"
#include "core/rng.h"

namespace turnstile::sim {
namespace {

// What "smaller" means, most important first: a candidate is kept only when
// its measure is lexicographically below the best so far. Steps come first
// (the run a person reads), then the clients and the events, then the
// decisions that made the run (draws, real choices), then how plain the
// scenario and the recorded values are, so that every simplification that
// keeps the run as short counts as progress too.
struct Measure {
  std::array<std::uint64_t, 11> parts{};
  auto operator<=>(const Measure&) const = default;
};

std::uint64_t client_count(const Scenario& scenario) {
  std::uint64_t clients = 0;
  for (const ClientGroup& g : scenario.clients) clients += g.count;
  return clients;
}

std::uint64_t ms_weight(core::Ms value_ms) { return static_cast<std::uint64_t>(std::max<core::Ms>(0, value_ms)) / 100; }

// How far a scenario is from the plainest one with the same gate and flow.
std::uint64_t scenario_weight(const Scenario& s) {
  std::uint64_t w = ms_weight(s.duration_ms) + ms_weight(s.heal_ms);
  for (const ClientGroup& g : s.clients) {
    w += (g.behaviour == Behaviour::watch ? 0 : 1) + ms_weight(g.start_ms) + ms_weight(g.spread_ms) +
         ms_weight(g.watch_ms) + ms_weight(g.think_ms) + g.burst + g.switches + (g.abandon_permille != 0 ? 1 : 0);
  }
  const FaultRates& f = s.faults;
  w += ms_weight(f.store_latency_max_ms) + f.store_timeout_permille + f.store_lost_reply_permille +
       f.store_reset_permille + f.store_busy_permille + f.store_noscript_permille + f.store_restart_permille +
       ms_weight(f.clock_skew_max_ms) + f.clock_backwards_permille + ms_weight(f.broker_latency_max_ms) +
       f.broker_transient_permille + f.broker_501_permille + f.broker_reset_permille + f.broker_hang_permille +
       f.broker_malformed_permille;
  return w;
}

template <typename T>
std::pair<std::uint64_t, std::uint64_t> nonzero_and_sum(const std::vector<T>& values) {
  std::uint64_t nonzero = 0;
  std::uint64_t sum = 0;
  for (const T v : values) {
    nonzero += v != 0 ? 1 : 0;
    sum += static_cast<std::uint64_t>(v);
  }
  return {nonzero, sum};
}

Measure measure_of(const ShrinkCase& c, const RunReport& report) {
  const RunSize size = run_size(c.scenario, report);
  const auto [choices_nonzero, choices_sum] = nonzero_and_sum(c.choices);
  std::uint64_t plan_nonzero = 0;
  std::uint64_t plan_sum = 0;
  for (const auto& values : c.plan.values) {
    const auto [n, sum] = nonzero_and_sum(values);
    plan_nonzero += n;
    plan_sum += sum;
  }
  return Measure{{size.steps, size.clients, size.events, size.draws, size.choices, c.scenario.instances,
                  choices_nonzero, scenario_weight(c.scenario), plan_nonzero, choices_sum, plan_sum}};
}

template <typename T>
void trim_zeros(std::vector<T>& values) {
  while (!values.empty() && values.back() == 0) values.pop_back();
}

// The case as the run used it: the choices it took and the values it drew,
// site by site, without the trailing zeros that running out gives anyway.
// It runs exactly as the case it came from.
ShrinkCase normalised(const Scenario& scenario, GateMode gate, const RunReport& report) {
  ShrinkCase c;
  c.scenario = scenario;
  c.gate = gate;
  c.choices.reserve(report.runtime.schedule.size());
  for (const StepRecord& step : report.runtime.schedule) c.choices.push_back(step.choice.index);
  trim_zeros(c.choices);
  for (const Draw& draw : report.draws) c.plan.values[static_cast<std::size_t>(draw.site)].push_back(draw.value);
  for (auto& values : c.plan.values) trim_zeros(values);
  return c;
}

class Shrinker {
 public:
  Shrinker(std::string_view rule, const WorldHooks& hooks, const ShrinkOptions& options)
      : rule_(rule), hooks_(hooks), options_(options) {}

  // Runs the start case; false if it does not break the rule.
  bool start(const ShrinkCase& c) {
    std::optional<RunReport> report = run(c);
    if (!report) return false;
    before_ = run_size(c.scenario, *report);
    accept(c, std::move(*report));
    return true;
  }

  // Runs a candidate; keeps it (normalised) if it breaks the rule and is
  // smaller than the best so far.
  bool attempt(const ShrinkCase& candidate) {
    if (out_of_runs()) return false;
    if (check_scenario(candidate.scenario)) return false;  // not a run at all; costs nothing
    std::optional<RunReport> report = run(candidate);
    if (!report) return false;
    const ShrinkCase kept = normalised(candidate.scenario, candidate.gate, *report);
    if (!(measure_of(kept, *report) < measure_)) return false;
    accept(kept, std::move(*report));
    return true;
  }

  // A scenario edit changes which fiber each recorded choice picks, so a
  // race the old choices won may need other ones now: after the candidate
  // as it is, tries kReschedules other schedules, drawn from a source seeded
  // by the number of searches so far (deterministic, as everything here).
  bool attempt_rescheduled(const ShrinkCase& candidate) {
    if (check_scenario(candidate.scenario)) return false;
    if (attempt(candidate)) return true;
    core::Rng rng(++searches_);
    const std::size_t length = 2 * std::max<std::size_t>(best_report_.runtime.schedule.size(), 16);
    for (int k = 0; k < kReschedules && !out_of_runs(); ++k) {
      ShrinkCase other = candidate;
      other.choices.resize(length);
      for (std::uint32_t& choice : other.choices) choice = static_cast<std::uint32_t>(rng.below(kChoiceBound));
      if (attempt(other)) return true;
    }
    return false;
  }

  bool out_of_runs() const { return runs_ >= options_.max_runs; }
  const ShrinkCase& best() const { return best_; }
  const RunReport& best_report() const { return best_report_; }

  ShrinkResult result() && {
    ShrinkResult r;
    r.after = run_size(best_.scenario, best_report_);
    r.shrunk = std::move(best_);
    r.report = std::move(best_report_);
    r.before = before_;
    r.runs = runs_;
    r.budget_exhausted = out_of_runs();
    return r;
  }

 private:
  std::optional<RunReport> run(const ShrinkCase& c) {
    ++runs_;
    RunReport report = run_world(guided_spec(c, hooks_));
    const bool fails = report.violation && report.violation->rule == rule_;
    if (options_.progress) options_.progress(ShrinkProgress{runs_, options_.max_runs, best_size_});
    if (!fails) return std::nullopt;
    return report;
  }

  void accept(ShrinkCase c, RunReport report) {
    measure_ = measure_of(c, report);
    best_size_ = run_size(c.scenario, report);
    best_ = std::move(c);
    best_report_ = std::move(report);
  }

  // Other schedules tried per scenario edit, and the range of their choices
  // (a ready list rarely holds more fibers; choices wrap anyway).
  static constexpr int kReschedules = 8;
  static constexpr std::uint64_t kChoiceBound = 16;

  std::string rule_;
  const WorldHooks& hooks_;
  const ShrinkOptions& options_;
  std::uint64_t runs_ = 0;
  std::uint64_t searches_ = 0;
  RunSize before_;
  RunSize best_size_;
  ShrinkCase best_;
  RunReport best_report_;
  Measure measure_;
};

// Tries `edit` on a copy of the best case; `edit` returns false when it
// would change nothing (no run is spent then).
template <typename Edit>
bool try_edit(Shrinker& s, Edit edit) {
  ShrinkCase c = s.best();
  if (!edit(c)) return false;
  return s.attempt(c);
}

// The same for an edit of the scenario, which may need another schedule.
template <typename Edit>
bool try_scenario_edit(Shrinker& s, Edit edit) {
  ShrinkCase c = s.best();
  if (!edit(c)) return false;
  return s.attempt_rescheduled(c);
}

// Client groups: drop one, lower its count, simplify its fields.
bool shrink_clients(Shrinker& s) {
  bool progress = false;
  for (std::size_t i = 0; i < s.best().scenario.clients.size() && !s.out_of_runs();) {
    const bool dropped = try_scenario_edit(s, [i](ShrinkCase& c) {
      if (c.scenario.clients.size() <= 1) return false;
      c.scenario.clients.erase(c.scenario.clients.begin() + static_cast<std::ptrdiff_t>(i));
      return true;
    });
    progress = progress || dropped;
    if (!dropped) ++i;
  }
  using GroupEdit = bool (*)(ClientGroup&);
  static constexpr GroupEdit kGroupEdits[] = {
      [](ClientGroup& g) { return std::exchange(g.count, 1u) != 1; },
      [](ClientGroup& g) { return g.count > 2 && (g.count /= 2, true); },
      [](ClientGroup& g) { return g.count > 1 && (--g.count, true); },
      [](ClientGroup& g) { return std::exchange(g.behaviour, Behaviour::watch) != Behaviour::watch; },
      [](ClientGroup& g) { return std::exchange(g.start_ms, 0) != 0; },
      [](ClientGroup& g) { return g.start_ms > 1 && (g.start_ms /= 2, true); },
      [](ClientGroup& g) { return std::exchange(g.spread_ms, 0) != 0; },
      [](ClientGroup& g) { return g.spread_ms > 1 && (g.spread_ms /= 2, true); },
      [](ClientGroup& g) { return std::exchange(g.abandon_permille, 0u) != 0; },
      [](ClientGroup& g) { return std::exchange(g.burst, 1u) != 1; },
      [](ClientGroup& g) { return std::exchange(g.switches, 1u) != 1; },
      [](ClientGroup& g) { return std::exchange(g.think_ms, 0) != 0; },
      [](ClientGroup& g) { return g.watch_ms > 1 && (g.watch_ms /= 2, true); },
      // At most one heartbeat per watch.
      [](ClientGroup& g) { return g.heartbeat_ms < g.watch_ms && (g.heartbeat_ms = g.watch_ms, true); },
  };
  for (std::size_t i = 0; i < s.best().scenario.clients.size() && !s.out_of_runs(); ++i) {
    for (const GroupEdit edit : kGroupEdits) {
      progress =
          try_scenario_edit(
              s, [i, edit](ShrinkCase& c) { return i < c.scenario.clients.size() && edit(c.scenario.clients[i]); }) ||
          progress;
    }
  }
  // A group that starts when one of the run's requests was sent may skip
  // the steps that led up to it (a request turned away, say).
  std::set<core::Ms> sent_at;
  for (const Event& event : s.best_report().history.events()) {
    if (std::holds_alternative<RequestSent>(event.body)) sent_at.insert(event.at_ms);
  }
  for (std::size_t i = 0; i < s.best().scenario.clients.size() && !s.out_of_runs(); ++i) {
    for (const core::Ms at_ms : sent_at) {
      progress = try_scenario_edit(s,
                                   [i, at_ms](ShrinkCase& c) {
                                     if (i >= c.scenario.clients.size() || c.scenario.clients[i].start_ms == at_ms)
                                       return false;
                                     c.scenario.clients[i].start_ms = at_ms;
                                     return true;
                                   }) ||
                 progress;
    }
  }
  return progress;
}

// The rest of the scenario: capacity (when allowed), instances, fault
// sites, the phases' lengths.
bool shrink_world(Shrinker& s, std::int64_t min_capacity) {
  bool progress = false;
  progress = try_scenario_edit(s,
                               [min_capacity](ShrinkCase& c) {
                                 return min_capacity > 0 && c.scenario.gate.capacity > min_capacity &&
                                        (--c.scenario.gate.capacity, true);
                               }) ||
             progress;
  progress =
      try_scenario_edit(s, [](ShrinkCase& c) { return std::exchange(c.scenario.instances, 1u) != 1; }) || progress;
  progress =
      try_scenario_edit(s, [](ShrinkCase& c) { return c.scenario.instances > 1 && (--c.scenario.instances, true); }) ||
      progress;
  using RateField = std::uint32_t FaultRates::*;
  static constexpr RateField kRates[] = {
      &FaultRates::store_timeout_permille,   &FaultRates::store_lost_reply_permille,
      &FaultRates::store_reset_permille,     &FaultRates::store_busy_permille,
      &FaultRates::store_noscript_permille,  &FaultRates::store_restart_permille,
      &FaultRates::clock_backwards_permille, &FaultRates::broker_transient_permille,
      &FaultRates::broker_501_permille,      &FaultRates::broker_reset_permille,
      &FaultRates::broker_hang_permille,     &FaultRates::broker_malformed_permille,
  };
  for (const RateField field : kRates) {
    progress =
        try_scenario_edit(s, [field](ShrinkCase& c) { return std::exchange(c.scenario.faults.*field, 0u) != 0; }) ||
        progress;
  }
  using MsField = core::Ms FaultRates::*;
  static constexpr MsField kSpans[] = {&FaultRates::store_latency_max_ms, &FaultRates::clock_skew_max_ms,
                                       &FaultRates::broker_latency_max_ms};
  for (const MsField field : kSpans) {
    progress =
        try_scenario_edit(s, [field](ShrinkCase& c) { return std::exchange(c.scenario.faults.*field, 0) != 0; }) ||
        progress;
  }
  // The liveness phase at the least check_scenario allows, and a shorter
  // fault phase (invalid candidates, a client starting after it, cost nothing).
  progress = try_scenario_edit(s,
                               [](ShrinkCase& c) {
                                 const Scenario& sc = c.scenario;
                                 const core::Ms least_ms = sc.gate.ttl_ms + sc.gate.grace_ms +
                                                           2 * sc.flow.store.budget_ms + sc.flow.broker.budget_ms + 1;
                                 return least_ms < sc.heal_ms && (c.scenario.heal_ms = least_ms, true);
                               }) ||
             progress;
  progress = try_scenario_edit(
                 s, [](ShrinkCase& c) { return c.scenario.duration_ms > 1 && (c.scenario.duration_ms /= 2, true); }) ||
             progress;
  return progress;
}

// A sequence of values (the choices, or one site's draws), delta-debugging
// style: drop chunks of halving length, then zero them, then lower single
// values (to 0, halved, one less).
template <typename T, typename Slot>
bool shrink_sequence(Shrinker& s, Slot slot) {
  bool progress = false;
  auto size = [&] { return slot(s.best()).size(); };
  for (std::size_t chunk = std::max<std::size_t>(1, size() / 2); chunk >= 1 && !s.out_of_runs(); chunk /= 2) {
    for (std::size_t at = 0; at < size() && !s.out_of_runs();) {
      const bool cut = try_edit(s, [&](ShrinkCase& c) {
        std::vector<T>& values = slot(c);
        if (at >= values.size()) return false;
        const std::size_t end = std::min(values.size(), at + chunk);
        values.erase(values.begin() + static_cast<std::ptrdiff_t>(at),
                     values.begin() + static_cast<std::ptrdiff_t>(end));
        return true;
      });
      progress = progress || cut;
      if (!cut) at += chunk;
    }
  }
  for (std::size_t chunk = std::max<std::size_t>(1, size() / 2); chunk >= 1 && !s.out_of_runs(); chunk /= 2) {
    for (std::size_t at = 0; at < size() && !s.out_of_runs(); at += chunk) {
      progress = try_edit(s,
                          [&](ShrinkCase& c) {
                            std::vector<T>& values = slot(c);
                            if (at >= values.size()) return false;
                            const std::size_t end = std::min(values.size(), at + chunk);
                            bool changed = false;
                            for (std::size_t k = at; k < end; ++k)
                              changed = std::exchange(values[k], T{0}) != 0 || changed;
                            return changed;
                          }) ||
                 progress;
    }
  }
  for (std::size_t at = 0; at < size() && !s.out_of_runs(); ++at) {
    for (int how = 0; how < 2; ++how) {
      progress = try_edit(s,
                          [&](ShrinkCase& c) {
                            std::vector<T>& values = slot(c);
                            if (at >= values.size() || values[at] <= 1) return false;
                            values[at] = how == 0 ? values[at] / 2 : values[at] - 1;
                            return true;
                          }) ||
                 progress;
    }
  }
  return progress;
}

}  // namespace

RunSpec guided_spec(const ShrinkCase& c, const WorldHooks& hooks) {
  RunSpec spec;
  spec.scenario = c.scenario;
  spec.seed = 0;
  spec.gate = c.gate;
  spec.strategy.kind = StrategyKind::guided;
  spec.strategy.guided = c.choices;
  spec.draw_plan = c.plan;
  spec.hooks = hooks;
  return spec;
}

ShrinkCase case_of_run(const Scenario& scenario, GateMode gate, const RunReport& report) {
  return normalised(scenario, gate, report);
}

ShrinkCase case_of_trace(const Trace& trace) {
  ShrinkCase c;
  c.scenario = trace.header.scenario;
  c.gate = trace.header.gate;
  for (const StepRecord& step : trace.schedule) c.choices.push_back(step.choice.index);
  trim_zeros(c.choices);
  for (const Draw& draw : trace.draws) c.plan.values[static_cast<std::size_t>(draw.site)].push_back(draw.value);
  for (auto& values : c.plan.values) trim_zeros(values);
  return c;
}

RunSize run_size(const Scenario& scenario, const RunReport& report) {
  RunSize size;
  size.steps = report.runtime.schedule.size();
  for (const StepRecord& step : report.runtime.schedule) size.choices += step.choice.ready > 1 ? 1 : 0;
  size.clients = client_count(scenario);
  size.draws = report.draws.size();
  size.events = report.history.size();
  return size;
}

RunSize trace_size(const Trace& trace) {
  RunSize size;
  size.steps = trace.schedule.size();
  for (const StepRecord& step : trace.schedule) size.choices += step.choice.ready > 1 ? 1 : 0;
  size.clients = client_count(trace.header.scenario);
  size.draws = trace.draws.size();
  size.events = trace.events.size();
  return size;
}

std::string describe_size(const RunSize& size) {
  return fmt::format("{} steps, {} choices, {} clients, {} draws, {} events", size.steps, size.choices, size.clients,
                     size.draws, size.events);
}

std::optional<ShrinkResult> shrink(const ShrinkCase& start, std::string_view rule, const WorldHooks& hooks,
                                   const ShrinkOptions& options) {
  Shrinker s(rule, hooks, options);
  if (options.max_runs == 0 || !s.start(start)) return std::nullopt;
  // Rounds until one makes no progress. Each kept candidate lowers the
  // measure, so this ends even without the run budget.
  for (bool progress = true; progress && !s.out_of_runs();) {
    progress = shrink_clients(s);
    progress = shrink_world(s, options.min_capacity) || progress;
    progress = shrink_sequence<std::uint32_t>(
                   s, [](auto& c) -> auto& { return c.choices; }) ||
               progress;
    for (std::size_t site = 0; site < kDrawSiteCount; ++site) {
      progress = shrink_sequence<std::uint64_t>(
                     s, [site](auto& c) -> auto& { return c.plan.values[site]; }) ||
                 progress;
    }
  }
  return std::move(s).result();
}

}  // namespace turnstile::sim
