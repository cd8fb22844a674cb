#pragma once

// A check trace: what `turnstile check --trace-out F` writes (docs/check.md),
// `turnstile replay` runs again and `turnstile show` draws. JSON Lines:
//
//   {"turnstile_check_trace":1,"version":"0.1.0","gate":"legacy","clients":3,"capacity":2,"rounds":1,
//    "ttl_ms":2,"grace_ms":1,"max_ticks":4,"max_states":50000000,"symmetry":true,"pool":"p"}
//   {"step":1,"client":"c1","action":"admit_read","now":0,"op":{…a D input…},"decision":{…a D output…},
//    "wrote":false,"sessions":[{"client":"c1","episode":"e1","token":"1","admitted_at":0,"last_seen":0,
//    "last_request":"r1"}, …]}
//   …
//   {"verdict":"violation","rule":"P1","step":6,"message":"…","states":249,"transitions":441,"depth":6}
//
// The header is the model's config (sim/model_check.h); each step line is one
// transition of the counterexample as it ran: which client moved (null for a
// tick), what it did, the model's clock, the gate op and decision (null for a
// tick), whether the pool was written, and the pool's sessions after it. The
// verdict line ends the file; a verified or incomplete check has no steps.
//
// The reader is strict, like every reader here: a line is wholly valid or the
// file is refused with one line "<source>:<line>: field 'x': expected …".
//
// Replaying runs the steps again, from the model's initial state, on the
// gate of the header's mode (run_check_path), and compares every step and
// the verdict with the recording. A verified or incomplete trace has no path
// to run: replaying it runs the whole check again and compares the verdict
// and the counts.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sim/history_format.h"
#include "sim/model_check.h"

namespace turnstile::sim {

inline constexpr int kCheckTraceFormat = 1;
// A counterexample is at most one step per op of every client's rounds and
// one per tick; a trace with more steps than this is refused.
inline constexpr std::size_t kMaxCheckTraceSteps = 4096;

struct CheckTrace {
  std::string version;  // turnstile's, informative
  CheckConfig config;
  // The counterexample's steps. Each step's `pool` holds only what the trace
  // records of the sessions: client, episode, token, admitted_at, last_seen
  // and last_request.
  std::vector<CheckStep> steps;
  CheckVerdict verdict = CheckVerdict::verified;
  std::optional<CheckViolation> violation;  // present exactly for a violation
  std::uint64_t states = 0;
  std::uint64_t transitions = 0;
  std::uint32_t depth = 0;
};

struct CheckTraceError {
  std::string message;  // "<source>:<line>: field 'x': expected …", one line
};

// The trace of a check, as JSON Lines text; `version` goes in the header.
std::string write_check_trace(const CheckConfig& config, const CheckResult& result, std::string_view version);

// One step line (no newline), number from 1, exactly as the trace holds it.
std::string check_step_json(std::size_t number, const CheckStep& step);

// The check's settings as one JSON object (gate, clients, capacity, rounds,
// ttl_ms, grace_ms, max_ticks, max_states, symmetry), as a check trace's
// header and `turnstile check --json` list them.
std::string check_config_json(const CheckConfig& config);

// Whether `text` starts with a check trace's header (its first line is an
// object with the key "turnstile_check_trace"), as opposed to a run's trace.
bool is_check_trace(std::string_view text);

std::variant<CheckTrace, CheckTraceError> read_check_trace(std::string_view text, std::string_view source);

struct CheckTraceReplay {
  // The steps that ran again (a violation trace) with the violation they
  // broke, or the check run again (a verified or incomplete trace).
  CheckPathResult path;
  std::optional<CheckResult> rerun;
  // Empty when every step and the verdict matched the recording; otherwise
  // one line: "the run diverged at step k: expected …, got …" (or "at the
  // verdict").
  std::optional<std::string> divergence;
  // A hash over every step line and the verdict, as `turnstile replay`
  // prints it last; the same trace gives the same value.
  std::uint64_t fingerprint = 0;
};

// Replays a trace on the gate of its header's mode; `hooks.gate` replaces
// core::apply (a test's broken gate).
CheckTraceReplay replay_check_trace(const CheckTrace& trace, const CheckHooks& hooks = {});

// The steps of a path as a SPEC H history of pool kCheckPool: the config op
// at [0, 0], then one operation per gate op, its call and return the numbers
// of the steps that began and ended it (a legacy admit spans its read and its
// write; one whose write never ran is pending). What `turnstile replay
// --history` writes for a check trace; lincheck finds a legacy
// over-admission not linearizable.
std::vector<HistoryOp> check_path_history(const CheckConfig& config, const std::vector<CheckStep>& steps);

}  // namespace turnstile::sim
