#pragma once

// A trace is one self-describing JSON Lines file (DESIGN.md, "Traces"):
//   line 1     the header: format version, turnstile version, the full
//              scenario, seed, strategy, gate mode, and the variant (the name
//              of an injected broken implementation, or "core")
//   then       the steps in the order they happened: scheduler choices,
//              draws (fault decisions, workload and jitter), and history
//              events, each with the running fingerprint
//   last line  the verdict: the violated rule, its step and time, or "pass"
// Replay restores everything from the header, feeds the recorded choices and
// draws, and compares what happens with what was recorded, naming the first
// step that differs.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sim/checkers.h"
#include "sim/draws.h"
#include "sim/history.h"
#include "sim/scenario.h"
#include "sim/world.h"

namespace turnstile::sim {

inline constexpr int kTraceFormat = 1;

struct TraceHeader {
  int format = kTraceFormat;
  std::string version;      // turnstile's, informative
  Scenario scenario;
  std::uint64_t seed = 0;
  std::string strategy;     // "random", "pct:D" (what recorded the choices)
  GateMode gate = GateMode::atomic;
  std::string variant = "core";
};

struct Trace {
  TraceHeader header;
  std::vector<StepRecord> schedule;  // one per scheduler step
  std::vector<Draw> draws;
  std::vector<Event> events;
  std::optional<Violation> violation;  // nullopt: the verdict was pass
  std::string outcome;                 // the runtime's outcome name
  std::uint64_t fingerprint = 0;       // the run's final fingerprint
};

// The trace of a run, as JSON Lines text.
std::string write_trace(const TraceHeader& header, const RunReport& report);

struct TraceError {
  std::string message;  // "<source>:<line>: field 'x': expected ..."
};

// Reads a trace; a truncated or corrupted one is an error naming the line
// and field, never a crash.
std::variant<Trace, TraceError> read_trace(std::string_view text, std::string_view source);

// One history event as a JSON object (no newline), and back. Used by traces
// and by `turnstile show`.
std::string event_to_json(const Event& event);

}  // namespace turnstile::sim
