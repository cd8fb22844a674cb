#pragma once

// `turnstile shrink TRACE -o OUT` (docs/shrink.md): the smallest run that
// still breaks the trace's rule (sim/shrink.h), written as a trace that
// `turnstile replay` reproduces bit for bit. main() only wires flags to
// shrink_command; tests call it in-process.
//
// Usage:
//   turnstile shrink TRACE -o OUT [--max-runs N]
//
// It first replays TRACE exactly (as `turnstile replay` does), then shrinks
// the run's scenario (client groups, counts, behaviours, fault sites, phase
// lengths; never the gate's or the flow's config), its scheduler choices and
// its draws, keeping only candidates that break the same rule and are
// smaller, steps first. It prints the size before and after (steps, choices,
// clients, draws, events), writes OUT, and replays OUT to check it. The
// header of OUT keeps the seed, gate and variant; its strategy is `guided`.
// main() sets `progress` when stderr is a terminal: a progress line (runs,
// best size so far) on `err` while it runs.
//
// Exit codes:
//   0  OUT was written: a trace of the same violation, no larger than TRACE
//      (the same size when nothing smaller breaks the rule)
//   2  bad usage or bad input, one line on `err`: TRACE unreadable or not a
//      trace; a trace that records no violation (nothing to shrink); a
//      variant only the test suite provides; a trace that no longer replays
//      (the run diverged); OUT cannot be written
// There is no exit code 1: a shrink's input is a violation already found.

#include <cstdint>
#include <iosfwd>
#include <string>

#include "cli/sim_commands.h"

namespace turnstile::cli {

struct ShrinkCommandOptions {
  std::string trace_path;
  std::string out_path;
  std::uint64_t max_runs = 3000;  // runs of the simulator in all, 1 to 1,000,000
  bool progress = false;
};

int shrink_command(const ShrinkCommandOptions& options, const Variants& variants, std::ostream& out, std::ostream& err);

}  // namespace turnstile::cli
