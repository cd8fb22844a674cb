#pragma once

// `turnstile check`: the exhaustive model checker (sim/model_check.h,
// docs/check.md) on the command line. main() only wires flags to
// run_check_command; tests call it in-process.
//
// Usage:
//   turnstile check --gate atomic|legacy --clients K --capacity C --rounds R
//                   [--ttl T] [--grace G] [--max-ticks N] [--max-states N]
//                   [--no-symmetry] [--trace-out F] [--json]
//
// Flags, each to one field of CheckOptions:
//   --gate atomic|legacy  gate         the gate under check (required)
//   --clients K           clients      1..6 clients (required)
//   --capacity C          capacity     1..6 slots (required)
//   --rounds R            rounds       1..9 rounds of admit/heartbeat/release per client (required)
//   --ttl T               ttl          1..16 ticks (default 2)
//   --grace G             grace        0..16 ticks (default 1)
//   --max-ticks N         max_ticks    0..40 clock steps (default T + G + 1, so a session can become gone)
//   --max-states N        max_states   stop with `incomplete` after this many states (default 50000000)
//   --no-symmetry         no_symmetry  turn the client symmetry reduction off
//   --trace-out F         trace_out    write the trace (JSON Lines, docs/check.md) to F, whatever the verdict
//   --json                json         print one JSON summary line instead of text
// main() also sets `progress` when stderr is a terminal: a progress line
// (states, states/s, depth) on `err` while it runs, and the time at the end.
//
// Exit codes:
//   0  verified: no violation in the whole finite state space
//   1  a violation was found (the shortest counterexample is printed)
//   2  bad usage (one line on `err`), or the trace file could not be written
//   1  also when incomplete: --max-states was reached before the space was
//      explored (not verified is not a pass; the output says which)

#include <cstdint>
#include <iosfwd>
#include <string>

#include "sim/model_check.h"

namespace turnstile::cli {

struct CheckOptions {
  std::string gate;   // "atomic" or "legacy"
  int clients = 0;    // 0: not given
  int capacity = 0;   // 0: not given
  int rounds = 0;     // 0: not given
  std::int64_t ttl = 2;
  std::int64_t grace = 1;
  int max_ticks = -1;  // -1: T + G + 1
  std::uint64_t max_states = sim::kDefaultCheckMaxStates;
  bool no_symmetry = false;
  std::string trace_out;
  bool json = false;
  bool progress = false;
};

int run_check_command(const CheckOptions& options, std::ostream& out, std::ostream& err);

// The same, with the checker's hooks (a test's broken gate). A progress
// callback in `hooks` is replaced when options.progress is set.
int run_check_command(const CheckOptions& options, const sim::CheckHooks& hooks, std::ostream& out,
                      std::ostream& err);

// The pieces, for tests.

// The checker's config from the options, or the one line of bad usage.
struct CheckSetup {
  sim::CheckConfig config;
  std::string error;  // empty when the options are valid
};
CheckSetup check_setup(const CheckOptions& options);

// The trace file's text (docs/check.md, sim/check_trace.h): the header, one
// line per step of the counterexample, then the verdict. `turnstile replay`
// runs it again.
std::string check_trace_text(const sim::CheckConfig& config, const sim::CheckResult& result);

}  // namespace turnstile::cli
