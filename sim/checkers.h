#pragma once

// The P rules of SPEC as checkers over a run's history. Each checker sees
// every event as it is recorded (so a violation stops the run at the step
// that broke the rule) and once more at the end of the run (for rules about
// quiescence and answers). A checker is deterministic and keeps bounded
// state: at most a few entries per client, waiter and flight of the run.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/history.h"
#include "sim/scenario.h"

namespace turnstile::sim {

struct Violation {
  std::string rule;            // "P1" ... "P17"
  std::uint64_t event_index = 0;  // the event at which the rule broke
  std::uint64_t step = 0;
  core::Ms at_ms = 0;
  std::string message;         // one line: what was expected and what happened

  friend bool operator==(const Violation&, const Violation&) = default;
};

// What the world knows at the end of a run, for the end-of-run checks.
struct EndState {
  core::Ms end_ms = 0;
  bool quiescent = false;                    // every client fiber ended, no request in progress
  std::vector<std::size_t> flights_per_instance;  // the routes' flight tables at the end (P13, C6)
  core::Ms healed_at_ms = 0;                 // when the liveness phase began
};

class Checker {
 public:
  virtual ~Checker() = default;
  virtual std::string_view rule() const = 0;
  // Sees each event in order; returns the first violation it finds.
  virtual std::optional<Violation> on_event(const Event& event) = 0;
  // After the last event.
  virtual std::optional<Violation> at_end(const History& history, const EndState& end) = 0;
};

// One checker per rule P1, P2, P4-P13, P15-P17 (P3 is checked by rerunning
// a seed; P14 by lincheck), in rule order, configured for `scenario`.
std::vector<std::unique_ptr<Checker>> make_checkers(const Scenario& scenario);

// Runs every checker over a finished history (as a replay or a test does);
// the first violation by event order, then by rule order.
std::optional<Violation> check_history(const Scenario& scenario, const History& history, const EndState& end);

// SPEC's one-line text of a rule, for messages and `turnstile show`.
std::string_view rule_text(std::string_view rule);

}  // namespace turnstile::sim
