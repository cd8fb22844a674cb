#include "sim/scenario.h"

#include <string>

#include "core/ids.h"
#include "core/retry.h"

namespace turnstile::sim {
namespace {

// Bounds that keep every run small and every loop in the world bounded.
constexpr std::uint32_t kMaxGroupClients = 64;
constexpr std::uint32_t kMaxClients = 256;
constexpr std::uint32_t kMaxInstances = 16;
constexpr std::uint32_t kMaxBurst = 64;
constexpr std::uint32_t kMaxSwitches = 16;
constexpr std::size_t kMaxGroups = 64;
// A day of virtual time: far beyond any useful scenario, far below kMaxTimeMs.
constexpr core::Ms kMaxPhaseMs = 24LL * 60 * 60 * 1000;
// A latency or skew past a minute says the scenario is mistyped.
constexpr core::Ms kMaxFaultMs = 60'000;
// A watcher heartbeats at most this many times, so a client's loop is bounded.
constexpr core::Ms kMaxHeartbeatsPerWatch = 10'000;
constexpr std::size_t kMaxCoalesceBound = 100'000;
constexpr std::uint64_t kMaxSteps = 100'000'000;
constexpr std::uint64_t kMaxEvents = 10'000'000;

ScenarioError field_error(std::string field, std::string_view expected) {
  return ScenarioError{"field '" + std::move(field) + "': expected " + std::string(expected)};
}

std::optional<ScenarioError> check_ms(const std::string& field, core::Ms value, core::Ms lo, core::Ms hi) {
  if (value < lo || value > hi) {
    return field_error(field, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + " (ms)");
  }
  return std::nullopt;
}

std::optional<ScenarioError> check_count(const std::string& field, std::uint64_t value, std::uint64_t lo,
                                         std::uint64_t hi) {
  if (value < lo || value > hi) {
    return field_error(field, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return std::nullopt;
}

std::optional<ScenarioError> check_group(const ClientGroup& group, std::size_t index, core::Ms duration_ms) {
  const std::string at = "clients[" + std::to_string(index) + "].";
  if (auto e = check_count(at + "count", group.count, 1, kMaxGroupClients)) return e;
  if (auto e = check_ms(at + "start_ms", group.start_ms, 0, duration_ms)) return e;
  if (auto e = check_ms(at + "spread_ms", group.spread_ms, 0, kMaxPhaseMs)) return e;
  if (auto e = check_ms(at + "watch_ms", group.watch_ms, 1, kMaxPhaseMs)) return e;
  if (auto e = check_ms(at + "heartbeat_ms", group.heartbeat_ms, 1, kMaxPhaseMs)) return e;
  if (group.watch_ms / group.heartbeat_ms > kMaxHeartbeatsPerWatch) {
    return field_error(at + "heartbeat_ms", "at least watch_ms / " + std::to_string(kMaxHeartbeatsPerWatch));
  }
  if (auto e = check_ms(at + "think_ms", group.think_ms, 0, kMaxPhaseMs)) return e;
  if (auto e = check_count(at + "burst", group.burst, 1, kMaxBurst)) return e;
  if (auto e = check_count(at + "switches", group.switches, 1, kMaxSwitches)) return e;
  if (auto e = check_count(at + "abandon_permille", group.abandon_permille, 0, 1000)) return e;
  return std::nullopt;
}

std::optional<ScenarioError> check_faults(const FaultRates& f) {
  const std::pair<const char*, std::uint32_t> permilles[] = {
      {"faults.store_timeout_permille", f.store_timeout_permille},
      {"faults.store_lost_reply_permille", f.store_lost_reply_permille},
      {"faults.store_reset_permille", f.store_reset_permille},
      {"faults.store_busy_permille", f.store_busy_permille},
      {"faults.store_noscript_permille", f.store_noscript_permille},
      {"faults.store_restart_permille", f.store_restart_permille},
      {"faults.clock_backwards_permille", f.clock_backwards_permille},
      {"faults.broker_transient_permille", f.broker_transient_permille},
      {"faults.broker_501_permille", f.broker_501_permille},
      {"faults.broker_reset_permille", f.broker_reset_permille},
      {"faults.broker_hang_permille", f.broker_hang_permille},
      {"faults.broker_malformed_permille", f.broker_malformed_permille},
  };
  for (const auto& [field, value] : permilles) {
    if (auto e = check_count(field, value, 0, 1000)) return e;
  }
  if (auto e = check_ms("faults.store_latency_max_ms", f.store_latency_max_ms, 0, kMaxFaultMs)) return e;
  if (auto e = check_ms("faults.clock_skew_max_ms", f.clock_skew_max_ms, 0, kMaxFaultMs)) return e;
  if (auto e = check_ms("faults.broker_latency_max_ms", f.broker_latency_max_ms, 0, kMaxFaultMs)) return e;
  return std::nullopt;
}

}  // namespace

std::string_view behaviour_name(Behaviour behaviour) {
  switch (behaviour) {
    case Behaviour::watch:
      return "watch";
    case Behaviour::blip:
      return "blip";
    case Behaviour::zap:
      return "zap";
    case Behaviour::burst:
      return "burst";
    case Behaviour::storm:
      return "storm";
  }
  return "unknown";
}

Scenario default_scenario() {
  Scenario s;
  s.name = "default";
  s.pool = "p";
  // A small pool with short timeouts: two slots make capacity races likely,
  // and a short T + G keeps the liveness phase (and so each seed) short.
  s.gate = core::GateConfig{.capacity = 2, .ttl_ms = 3000, .grace_ms = 1500};
  s.flow.store = core::RetryConfig::store_defaults();
  s.flow.broker = core::RetryConfig{.attempt_timeout_ms = 500,
                                    .budget_ms = 1200,
                                    .jitter_min_ms = 20,
                                    .jitter_max_ms = 100,
                                    .min_attempt_ms = 100};
  s.flow.fail_policy = core::FailPolicy::fail_closed;
  s.coalesce = core::CoalesceConfig{.max_flights = 256, .max_waiters = 16};
  s.instances = 2;

  // Every behaviour, eight clients in all. The storm's three newcomers all
  // ask at the first instant, into an empty pool of two slots: the race a
  // non-atomic gate loses.
  ClientGroup storm{.behaviour = Behaviour::storm, .count = 3, .start_ms = 0, .spread_ms = 0,
                    .watch_ms = 3000, .heartbeat_ms = 1000, .abandon_permille = 500};
  ClientGroup watch{.behaviour = Behaviour::watch, .count = 2, .start_ms = 500, .spread_ms = 3000,
                    .watch_ms = 2000, .heartbeat_ms = 1000, .abandon_permille = 500};
  ClientGroup blip{.behaviour = Behaviour::blip, .count = 1, .start_ms = 0, .spread_ms = 2000,
                   .watch_ms = 4000, .heartbeat_ms = 1000, .think_ms = 500};
  ClientGroup zap{.behaviour = Behaviour::zap, .count = 1, .start_ms = 0, .spread_ms = 3000,
                  .watch_ms = 2000, .heartbeat_ms = 1000, .think_ms = 300, .switches = 3};
  ClientGroup burst{.behaviour = Behaviour::burst, .count = 1, .start_ms = 1000, .spread_ms = 3000,
                    .watch_ms = 3000, .heartbeat_ms = 1000, .burst = 3};
  s.clients = {storm, watch, blip, zap, burst};

  s.faults = FaultRates{};
  s.faults.broker_latency_max_ms = 300;  // below the scaled-down broker attempt timeout, mostly
  s.duration_ms = 8000;
  // T + G (4500) + the F6 bound (800 + 1200 + 800) + a margin.
  s.heal_ms = 9000;
  s.max_steps = 200'000;
  s.max_events = 100'000;
  return s;
}

std::optional<ScenarioError> check_scenario(const Scenario& scenario) {
  if (scenario.name.empty() || scenario.name.size() > 64) {
    return field_error("name", "1 to 64 bytes");
  }
  if (auto e = core::check_id(core::IdKind::pool, "pool", scenario.pool)) {
    return field_error(e->field, e->expected);
  }
  if (auto e = core::check_config(scenario.gate)) return field_error("gate." + e->field, e->expected);
  if (auto e = core::check_retry_config(scenario.flow.store)) return field_error("flow.store." + e->field, e->expected);
  if (auto e = core::check_retry_config(scenario.flow.broker)) {
    return field_error("flow.broker." + e->field, e->expected);
  }
  if (auto e = check_count("coalesce.max_flights", scenario.coalesce.max_flights, 1, kMaxCoalesceBound)) return e;
  if (auto e = check_count("coalesce.max_waiters", scenario.coalesce.max_waiters, 1, kMaxCoalesceBound)) return e;
  if (auto e = check_count("instances", scenario.instances, 1, kMaxInstances)) return e;
  if (auto e = check_ms("duration_ms", scenario.duration_ms, 1, kMaxPhaseMs)) return e;

  if (scenario.clients.empty() || scenario.clients.size() > kMaxGroups) {
    return field_error("clients", "1 to " + std::to_string(kMaxGroups) + " client groups");
  }
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < scenario.clients.size(); ++i) {
    if (auto e = check_group(scenario.clients[i], i, scenario.duration_ms)) return e;
    total += scenario.clients[i].count;
  }
  if (total > kMaxClients) {
    return field_error("clients", "at most " + std::to_string(kMaxClients) + " clients in all");
  }

  if (auto e = check_faults(scenario.faults)) return e;

  // The liveness phase must outlast every answer still owed (F6) and every
  // abandoned slot's T + G, or its checks would blame the scenario's length.
  // Each term is at most kMaxTimeMs (2^53 - 1), so the sum cannot overflow;
  // the upper bound on heal_ms then bounds T, G and the budgets too.
  const core::Ms f6_ms = 2 * scenario.flow.store.budget_ms + scenario.flow.broker.budget_ms;
  const core::Ms least_heal_ms = scenario.gate.ttl_ms + scenario.gate.grace_ms + f6_ms;
  if (scenario.heal_ms <= least_heal_ms || scenario.heal_ms > kMaxPhaseMs) {
    return field_error("heal_ms", "more than ttl + grace + 2 x store budget + broker budget (" +
                                      std::to_string(least_heal_ms) + ") and at most " +
                                      std::to_string(kMaxPhaseMs) + " (ms)");
  }
  if (auto e = check_count("max_steps", scenario.max_steps, 1, kMaxSteps)) return e;
  if (auto e = check_count("max_events", scenario.max_events, 1, kMaxEvents)) return e;
  return std::nullopt;
}

}  // namespace turnstile::sim
