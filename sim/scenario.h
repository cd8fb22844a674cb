#pragma once

// A scenario is what one simulated run is made of (FoundationDB's workloads:
// setup, run, check): the gate's and routes' config, the clients and their
// behaviours, the fault rates, and how long the fault and liveness phases
// last. It is a small JSON file; default_scenario() is built in so that
// `turnstile explore` needs no file.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/coalesce.h"
#include "core/flow.h"
#include "core/gate.h"
#include "core/time.h"

namespace turnstile::sim {

enum class Behaviour : std::uint8_t {
  watch,  // request, heartbeat every heartbeat_ms while watching for watch_ms, then release (or abandon)
  blip,   // like watch, but misses heartbeats for a while, then reconnects with a new request
  zap,    // switches episodes fast: `switches` requests for different episodes, think_ms apart
  burst,  // `burst` identical requests (same request id) at once, then watches
  storm,  // many newcomers at once: every client of the group requests at start_ms exactly
};

std::string_view behaviour_name(Behaviour behaviour);

struct ClientGroup {
  Behaviour behaviour = Behaviour::watch;
  std::uint32_t count = 1;        // clients in this group, 1..64
  core::Ms start_ms = 0;          // the first request at a drawn time in [start_ms, start_ms + spread_ms]
  core::Ms spread_ms = 0;
  core::Ms watch_ms = 20000;      // how long a watch lasts
  core::Ms heartbeat_ms = 10000;  // heartbeat period while watching
  core::Ms think_ms = 200;        // zap: time between switches; blip: the time away is drawn up to ttl + grace
  std::uint32_t burst = 1;        // burst: identical requests at once, 1..64
  std::uint32_t switches = 3;     // zap: episodes to go through, 1..16
  std::uint32_t abandon_permille = 0;  // chance that a watcher never releases (its slot must age out: G2)
};

// Upper bounds for each fault site, in permille per use (or ms for
// latencies). Swarm testing: each seed draws which sites are on and a rate
// up to these bounds, so some seeds see few faults and some see many.
struct FaultRates {
  core::Ms store_latency_max_ms = 40;
  std::uint32_t store_timeout_permille = 20;     // no reply at all
  std::uint32_t store_lost_reply_permille = 20;  // applied, reply dropped
  std::uint32_t store_reset_permille = 20;       // connection reset before apply
  std::uint32_t store_busy_permille = 20;        // BUSY / LOADING
  std::uint32_t store_noscript_permille = 20;    // NOSCRIPT: EVAL fallback inside the attempt
  std::uint32_t store_restart_permille = 5;      // all data lost (per store call)
  core::Ms clock_skew_max_ms = 500;              // an instance's clock runs this far off
  std::uint32_t clock_backwards_permille = 20;   // a caller's clock steps back
  core::Ms broker_latency_max_ms = 300;
  std::uint32_t broker_transient_permille = 50;  // 408, 429 with Retry-After, 500, 502, 503, 504
  std::uint32_t broker_501_permille = 10;
  std::uint32_t broker_reset_permille = 20;
  std::uint32_t broker_hang_permille = 10;       // no reply until the deadline
  std::uint32_t broker_malformed_permille = 10;

  friend bool operator==(const FaultRates&, const FaultRates&) = default;
};

struct Scenario {
  std::string name = "default";
  std::string pool = "p";
  core::GateConfig gate;
  core::FlowConfig flow;
  core::CoalesceConfig coalesce;
  std::uint32_t instances = 2;  // server instances, each with its own route and coalescer; 1..16
  std::vector<ClientGroup> clients;
  FaultRates faults;
  core::Ms duration_ms = 60000;  // the fault phase
  core::Ms heal_ms = 60000;      // the liveness phase: faults healed; must exceed ttl + grace + the F6 bound
  std::uint64_t max_steps = 200000;
  std::uint64_t max_events = 100000;
};

// The built-in scenario: a small pool under every behaviour and every fault.
Scenario default_scenario();

struct ScenarioError {
  std::string message;  // "<source>: field 'clients[2].behaviour': expected one of watch, blip, zap, burst, storm"
};

// Reads a scenario from JSON. Every field is optional and defaults to
// default_scenario()'s, except that `clients`, when present, replaces the
// default client list. Unknown fields are errors. `source` names the input
// in messages (a file name).
std::variant<Scenario, ScenarioError> parse_scenario(std::string_view json_text, std::string_view source);

// The scenario as canonical JSON (every field, fixed key order, one line):
// what a trace header stores. parse_scenario(to_json(s)) == s.
std::string scenario_to_json(const Scenario& scenario);

// The first problem with a scenario built in code, or nothing.
std::optional<ScenarioError> check_scenario(const Scenario& scenario);

}  // namespace turnstile::sim
