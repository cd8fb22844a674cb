#pragma once

// RapidCheck generators for whole simulated runs (issue "properties that
// shrink"). A run is three generated values, shrunk together:
//   - the scenario: gate and flow config, instances, client groups and the
//     fault rates' upper bounds (sim/scenario.h);
//   - the draw plan: every random decision of the run, site by site
//     (sim::DrawPlan: a value is taken modulo its draw's bound, 0 once a
//     site's list runs out, and 0 is always the simplest outcome: no fault,
//     no latency, the first choice);
//   - the scheduler's choices, consumed by the `guided` strategy (a choice
//     is taken modulo the ready count, index 0 past the end).
// Every value of each is a valid run, so RapidCheck may cut, lower and drop
// anything, and what it shrinks towards (fewer clients, no faults, choice 0)
// is the simplest run. The seed plays no part.

#include <rapidcheck.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/gate.h"
#include "core/retry.h"
#include "sim/draws.h"
#include "sim/scenario.h"
#include "sim/shrink.h"
#include "sim/world.h"

namespace turnstile::props {

// One generated run.
struct SimCase {
  sim::Scenario scenario;
  sim::DrawPlan plan;
  std::vector<std::uint32_t> choices;
};

// What a property asks of the generator: the behaviours it draws clients
// from (the first is the one shrinking leads to; repeat one to weigh it),
// and which fault families may be on.
struct Focus {
  std::vector<sim::Behaviour> behaviours = {sim::Behaviour::watch, sim::Behaviour::storm, sim::Behaviour::blip,
                                            sim::Behaviour::zap, sim::Behaviour::burst};
  bool store_faults = true;
  bool broker_faults = true;
  bool clock_faults = true;
  // Budgets that bind: a retry may find too little of its budget left (R6).
  bool tight_budgets = true;
  // The most client groups, and clients per group.
  int max_groups = 3;
  int max_group_clients = 3;
};

namespace gen_detail {

// One of `options`, each as likely at every size; shrinks towards the
// first (gen::elementOf does not shrink at all).
template <typename T>
rc::Gen<T> pick_from(const std::vector<T>& options) {
  return [options](const rc::Random& random, int /*size*/) {
    const auto index = static_cast<std::size_t>(rc::Random(random).next() % options.size());
    return rc::shrinkable::map(
        rc::shrinkable::shrinkRecur(index, [](std::size_t i) { return rc::shrink::towards<std::size_t>(i, 0); }),
        [options](std::size_t i) { return options[i]; });
  };
}

// One of `values`; shrinks towards the first.
template <typename T>
rc::Gen<T> pick(std::initializer_list<T> values) {
  return pick_from(std::vector<T>(values));
}

// A time in ms, a multiple of `step_ms` from lo_ms to hi_ms; shrinks to lo_ms.
inline rc::Gen<core::Ms> ms(core::Ms lo_ms, core::Ms hi_ms, core::Ms step_ms) {
  return rc::gen::map(rc::gen::inRange<core::Ms>(0, (hi_ms - lo_ms) / step_ms + 1),
                      [=](core::Ms n) { return lo_ms + n * step_ms; });
}

// A fault rate's upper bound, in permille; shrinks to 0 (the site is off).
inline rc::Gen<std::uint32_t> permille(bool on) {
  if (!on) return rc::gen::just<std::uint32_t>(0);
  return gen_detail::pick<std::uint32_t>({0, 50, 300, 1000});
}

// The defaults, or a config drawn around them; shrinks to the defaults.
inline rc::Gen<core::RetryConfig> retry_config(core::RetryConfig defaults, core::Ms max_attempt_ms, bool tight) {
  if (!tight) return rc::gen::just(defaults);
  return rc::gen::exec([=] {
    if (!*pick<bool>({false, true})) return defaults;
    core::RetryConfig c;
    c.attempt_timeout_ms = *ms(50, max_attempt_ms, 50);
    // Room for up to two attempts and a delay: from a budget that binds at
    // once to one that never does.
    c.budget_ms = c.attempt_timeout_ms + *ms(0, 2 * c.attempt_timeout_ms + 100, 50);
    c.jitter_min_ms = *ms(0, 50, 10);
    c.jitter_max_ms = c.jitter_min_ms + *ms(0, 100, 10);
    c.min_attempt_ms = *ms(0, 200, 50);
    return c;
  });
}

}  // namespace gen_detail

inline rc::Gen<sim::ClientGroup> gen_group(const Focus& focus, core::Ms duration_ms) {
  return rc::gen::exec([focus, duration_ms] {
    using gen_detail::ms;
    sim::ClientGroup g;
    g.behaviour = *gen_detail::pick_from(focus.behaviours);
    g.count = *rc::gen::inRange<std::uint32_t>(1, static_cast<std::uint32_t>(focus.max_group_clients) + 1);
    g.start_ms = *ms(0, std::min<core::Ms>(duration_ms, 3000), 100);
    g.spread_ms = *ms(0, 3000, 100);
    g.watch_ms = *ms(100, 5000, 100);
    // Sometimes slower than the ttl: the session goes idle while watched.
    g.heartbeat_ms = *ms(250, 4000, 250);
    g.think_ms = *ms(0, 1000, 100);
    g.burst = *rc::gen::inRange<std::uint32_t>(1, 5);
    g.switches = *rc::gen::inRange<std::uint32_t>(1, 5);
    g.abandon_permille = *gen_detail::pick<std::uint32_t>({0, 500, 1000});
    return g;
  });
}

inline rc::Gen<sim::Scenario> gen_scenario(const Focus& focus) {
  return rc::gen::exec([focus] {
    using gen_detail::ms;
    using gen_detail::permille;
    sim::Scenario s = sim::default_scenario();
    s.name = "generated";
    // From two slots up, two most often: one slot cannot show a race
    // between holders, and two is where the textbook over-admission lives.
    s.gate.capacity = *gen_detail::pick<std::int64_t>({2, 2, 3, 4});
    s.gate.ttl_ms = *ms(500, 4000, 500);
    s.gate.grace_ms = *ms(0, 3000, 500);
    s.flow.store = *gen_detail::retry_config(core::RetryConfig::store_defaults(), 500, focus.tight_budgets);
    s.flow.broker = *gen_detail::retry_config(sim::default_scenario().flow.broker, 1500, focus.tight_budgets);
    s.flow.fail_policy =
        *gen_detail::pick<core::FailPolicy>({core::FailPolicy::fail_closed, core::FailPolicy::fail_open});
    s.coalesce.max_flights = *gen_detail::pick<std::size_t>({256, 2});
    s.coalesce.max_waiters = *gen_detail::pick<std::size_t>({16, 2});
    s.instances = *rc::gen::inRange<std::uint32_t>(1, 4);
    s.duration_ms = *ms(2000, 8000, 1000);
    const int groups = *rc::gen::inRange(1, focus.max_groups + 1);
    s.clients.clear();
    for (int i = 0; i < groups; ++i) s.clients.push_back(*gen_group(focus, s.duration_ms));

    sim::FaultRates& f = s.faults;
    f.store_latency_max_ms = focus.store_faults ? *gen_detail::pick<core::Ms>({0, 40, 400}) : 0;
    f.store_timeout_permille = *permille(focus.store_faults);
    f.store_lost_reply_permille = *permille(focus.store_faults);
    f.store_reset_permille = *permille(focus.store_faults);
    f.store_busy_permille = *permille(focus.store_faults);
    f.store_noscript_permille = *permille(focus.store_faults);
    f.store_restart_permille = focus.store_faults ? *gen_detail::pick<std::uint32_t>({0, 5, 50}) : 0;
    f.clock_skew_max_ms = focus.clock_faults ? *gen_detail::pick<core::Ms>({0, 200, 1000}) : 0;
    f.clock_backwards_permille = *permille(focus.clock_faults);
    f.broker_latency_max_ms = focus.broker_faults ? *gen_detail::pick<core::Ms>({0, 100, 1000}) : 0;
    f.broker_transient_permille = *permille(focus.broker_faults);
    f.broker_501_permille = *permille(focus.broker_faults);
    f.broker_reset_permille = *permille(focus.broker_faults);
    f.broker_hang_permille = *permille(focus.broker_faults);
    f.broker_malformed_permille = *permille(focus.broker_faults);

    // The liveness phase must outlast T + G and the F6 bound (check_scenario).
    s.heal_ms = s.gate.ttl_ms + s.gate.grace_ms + 2 * s.flow.store.budget_ms + s.flow.broker.budget_ms + 500;
    s.max_steps = 100'000;
    s.max_events = 50'000;
    return s;
  });
}

// Values for every draw site; each list as long as the size allows.
inline rc::Gen<sim::DrawPlan> gen_plan() {
  return rc::gen::exec([] {
    sim::DrawPlan plan;
    for (auto& values : plan.values) {
      values =
          *rc::gen::container<std::vector<std::uint64_t>>(rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 32));
    }
    return plan;
  });
}

// The scheduler's choices; a ready list rarely holds more than 16 fibers.
inline rc::Gen<std::vector<std::uint32_t>> gen_choices() {
  return rc::gen::container<std::vector<std::uint32_t>>(rc::gen::inRange<std::uint32_t>(0, 16));
}

inline rc::Gen<SimCase> gen_case(const Focus& focus) {
  return rc::gen::exec([focus] {
    SimCase c;
    c.scenario = *gen_scenario(focus);
    c.plan = *gen_plan();
    c.choices = *gen_choices();
    return c;
  });
}

// The run a case stands for, with the `guided` strategy and the draw plan
// (the same spec sim::shrink runs).
inline sim::RunSpec run_spec(const SimCase& c, sim::GateMode gate, const sim::WorldHooks& hooks) {
  return sim::guided_spec(sim::ShrinkCase{c.scenario, gate, c.choices, c.plan}, hooks);
}

inline void showValue(const SimCase& c, std::ostream& os) {
  os << "scenario " << sim::scenario_to_json(c.scenario) << "\nchoices [";
  for (std::size_t i = 0; i < c.choices.size(); ++i) os << (i == 0 ? "" : ",") << c.choices[i];
  os << "]\ndraw plan:";
  for (std::size_t site = 0; site < c.plan.values.size(); ++site) {
    const auto& values = c.plan.values[site];
    if (values.empty()) continue;
    os << "\n  " << sim::draw_site_name(static_cast<sim::DrawSite>(site)) << " [";
    for (std::size_t i = 0; i < values.size(); ++i) os << (i == 0 ? "" : ",") << values[i];
    os << "]";
  }
  os << "\n";
}

}  // namespace turnstile::props
