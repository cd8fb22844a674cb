#pragma once

// One simulated run: the real core's route on a few server instances, a fake
// Redis and a fake broker with faults, and clients as fibers, all under the
// seeded scheduler and virtual time of sim/runtime.h. The checkers watch the
// history as it grows and stop the run at the first violation.
//
// Phases: the fault phase (scenario.duration_ms) with every drawn fault on,
// then the liveness phase (scenario.heal_ms) with every fault healed, in
// which every request must be answered (P16) and every abandoned slot freed
// within T + G (G2, P9).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gate.h"
#include "core/route.h"
#include "sim/checkers.h"
#include "sim/draws.h"
#include "sim/gate_history.h"
#include "sim/history.h"
#include "sim/runtime.h"
#include "sim/scenario.h"

namespace turnstile::sim {

// How the fake store applies an admit.
//   atomic  one step: core::apply (SPEC G's design, what gate.lua does).
//   legacy  the racy design it replaced: a read step (prune, count, find the
//           client's session), the route's local decision, then a write
//           step, each its own scheduling point, so interleaved admits can
//           over-admit.
enum class GateMode : std::uint8_t { atomic, legacy };

std::string_view gate_mode_name(GateMode mode);
std::optional<GateMode> gate_mode_from_name(std::string_view name);

// What a server instance runs: core::Route's interface, so a test can wrap
// the real route in a broken one (one that answers twice, say) and show a
// checker catching it.
class Server {
 public:
  virtual ~Server() = default;
  virtual void on_request(core::Ms now, core::WaiterId waiter, const core::StreamRequest& request, core::Rng& rng) = 0;
  virtual void on_leave(core::Ms now, core::WaiterId waiter) = 0;
  virtual void on_store_reply(core::Ms now, core::FlightId flight, std::uint32_t call, const core::StoreReply& reply,
                              core::Rng& rng) = 0;
  virtual void on_broker_reply(core::Ms now, core::FlightId flight, std::uint32_t call,
                               const core::BrokerReply& reply, core::Rng& rng) = 0;
  virtual void on_timer(core::Ms now, core::Rng& rng) = 0;
  [[nodiscard]] virtual std::optional<core::RouteEffect> poll() = 0;
  virtual std::optional<core::Ms> next_deadline() const = 0;
  virtual std::size_t flight_count() const = 0;
  // Whether `flight` is still running. The world asks after every input, so
  // it records each flight's end at the step it happened, even a flight that
  // ended with no waiter left to answer (C4).
  virtual bool has_flight(core::FlightId flight) const = 0;
};

// The real route.
std::unique_ptr<Server> make_core_server(const core::RouteConfig& config);

// Injection points for tests. Left empty, the world runs the real core.
struct WorldHooks {
  // The atomic gate (default core::apply).
  std::function<core::Decision(core::PoolState&, const core::Op&, const core::GateConfig&)> gate;
  // The route each instance runs (default make_core_server).
  std::function<std::unique_ptr<Server>(const core::RouteConfig&)> make_server;
};

struct RunSpec {
  Scenario scenario = default_scenario();
  std::uint64_t seed = 0;
  StrategySpec strategy = {};
  GateMode gate = GateMode::atomic;
  // Replay: the draws of a trace (the scheduler's choices go in strategy).
  std::optional<std::vector<Draw>> replay_draws;
  // Generated runs: every draw from this plan instead of the seed (see
  // DrawPlan; the scheduler's choices go in strategy, kind guided).
  std::optional<DrawPlan> draw_plan;
  WorldHooks hooks;
  // Stop at the first violation (default); false records the whole run.
  bool stop_on_violation = true;
  // false: record the history but run no checker, so a benchmark can measure
  // the world's own cost. Every other caller checks.
  bool check_rules = true;
  // P14's bound on lincheck's search at the end of the run.
  GateCheckLimits p14_limits;
};

struct RunReport {
  RunResult runtime;  // how the scheduler's run ended, its steps and choices
  History history;
  std::vector<Draw> draws;
  std::optional<Violation> violation;
  std::optional<DrawDivergence> draw_divergence;        // replay only
  std::optional<std::uint64_t> schedule_divergence;     // replay only: the step
  std::uint64_t fingerprint = 0;  // over the schedule and every history event
  std::uint64_t requests = 0;     // stream requests sent by clients
  bool history_full = false;      // the run stopped at scenario.max_events
  // Every store command of the run as its caller saw it (sim/gate_history.h);
  // gate_history_text() writes it as SPEC H.
  GateHistory gate_history;
  // P14: lincheck over gate_history, run after the run when no other rule
  // was violated (or always, with stop_on_violation false; never without
  // check_rules). Its verdict may be unknown (a bound ran out), which is no
  // violation but is reported. A not-linearizable verdict is also
  // `violation` (rule P14) when nothing else was violated first.
  std::optional<GateCheck> p14;
};

RunReport run_world(const RunSpec& spec);

}  // namespace turnstile::sim
