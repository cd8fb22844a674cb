#pragma once

// `turnstile run`, `turnstile explore` and `turnstile replay` (DESIGN.md,
// "The command line"; docs/simulator.md). main() only wires flags to these;
// tests call them in-process. Each returns the process's exit code:
//   0  checked, nothing violated (replay: the trace's pass reproduced)
//   1  a violation was found (replay: the trace's violation reproduced)
//   2  bad usage or bad input, one line on `err`; for replay also a run
//      that diverged from its trace ("the run diverged at step k: ...")

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "sim/trace.h"
#include "sim/world.h"

namespace turnstile::cli {

// What traces record as the version of turnstile that wrote them.
inline constexpr std::string_view kTurnstileVersion = "0.1.0";

// Where run and explore put traces when not told otherwise.
inline constexpr std::string_view kDefaultTracesDir = "traces-out";

struct RunOptions {
  std::string seed;  // decimal, 0 to 2^64 - 1
  std::string scenario_path;  // empty: sim::default_scenario()
  std::string gate = "atomic";
  std::string strategy = "random";
  // Where to write the trace (pass or violation). Empty: a violation's trace
  // goes to traces-out/<rule>-seed-<seed>.trace.jsonl, a pass writes none.
  std::string trace_out;
  // Where to write the run's gate history (SPEC H, sim/gate_history.h), which
  // `turnstile lincheck` reads. Empty: none.
  std::string history_out;
  bool json = false;
};

struct ExploreOptions {
  std::string seeds;  // "A..B", both inclusive; empty: 0..999, or open-ended with a time budget
  std::optional<double> time_budget_s;
  std::string scenario_path;
  std::string gate = "atomic";
  std::string strategy = "random";
  int jobs = 1;
  std::string shard;  // "K/N": only seeds with seed % N == K - 1; empty: every seed
  bool stop_on_first = false;
  std::string traces_dir = std::string(kDefaultTracesDir);
  bool json = false;
  int check_determinism = 0;  // rerun this many seeds and compare fingerprints
  bool progress = false;      // a progress line on `err` (main sets it when stderr is a terminal)
};

// Broken implementations a trace may name in its header's `variant`. Only
// the test suite provides any; the command line passes none.
using Variants = std::map<std::string, sim::WorldHooks, std::less<>>;

int run_command(const RunOptions& options, std::ostream& out, std::ostream& err);
int explore_command(const ExploreOptions& options, std::ostream& out, std::ostream& err);
// Replays a run's trace (sim/trace.h) or a check trace (sim/check_trace.h),
// whichever the file is. A check trace's steps run again on the model's gate
// (core::apply; `variants` are for run traces only) with the same exit codes:
// 1 its violation reproduced, 0 its pass (a verified check, run again),
// 2 a divergence, named by its step. `history_out`, when not empty, gets the
// replayed run's gate history (SPEC H): a run's store commands, or a check
// path's gate ops.
int replay_command(const std::string& trace_path, const Variants& variants, std::ostream& out, std::ostream& err,
                   const std::string& history_out = {});

// The pieces, for tests.

struct SeedRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
};
// "A..B" with A <= B; the error is the one line explore prints.
std::variant<SeedRange, std::string> parse_seed_range(std::string_view text);

struct Shard {
  std::uint64_t index = 1;  // K, from 1
  std::uint64_t count = 1;  // N
};
// "K/N" with 1 <= K <= N.
std::variant<Shard, std::string> parse_shard(std::string_view text);

// Replays a trace with `hooks` (its variant's) and compares the run with the
// recording. `divergence` is empty when every step, event, draw, the verdict
// and the fingerprint matched; otherwise it reads
// "the run diverged at step k: expected ..., got ..." (or "at draw i", or
// "at the verdict", or "at the end" when no step differs).
struct ReplayResult {
  sim::RunReport report;
  std::optional<std::string> divergence;
};
ReplayResult replay_trace(const sim::Trace& trace, const sim::WorldHooks& hooks);

}  // namespace turnstile::cli
