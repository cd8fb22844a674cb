#include "cli/shrink_command.h"

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "cli/file_io.h"
#include "sim/shrink.h"
#include "sim/trace.h"

namespace turnstile::cli {
namespace {

using WallClock = std::chrono::steady_clock;

constexpr std::size_t kMaxTraceBytes = std::size_t{1} << 30;
constexpr std::uint64_t kMaxRuns = 1'000'000;
constexpr auto kProgressPeriod = std::chrono::milliseconds(200);

std::string describe(const sim::Violation& v) {
  return fmt::format("violation of {} at step {}, {} ms (event {}): {}", v.rule, v.step, v.at_ms, v.event_index,
                     v.message);
}

}  // namespace

int shrink_command(const ShrinkCommandOptions& options, const Variants& variants, std::ostream& out,
                   std::ostream& err) {
  const std::string& in_path = options.trace_path;
  if (options.out_path.empty()) {
    err << "shrink: -o OUT: expected the file to write the shrunk trace to\n";
    return 2;
  }
  if (options.max_runs < 1 || options.max_runs > kMaxRuns) {
    err << fmt::format("--max-runs: expected an integer from 1 to {}, got {}\n", kMaxRuns, options.max_runs);
    return 2;
  }
  const FileText file = read_file(in_path, kMaxTraceBytes);
  if (!file.text) {
    err << file.error << "\n";
    return 2;
  }
  auto parsed = sim::read_trace(*file.text, in_path);
  if (auto* error = std::get_if<sim::TraceError>(&parsed)) {
    err << error->message << "\n";
    return 2;
  }
  const sim::Trace& trace = std::get<sim::Trace>(parsed);
  sim::WorldHooks hooks;
  if (trace.header.variant != "core") {
    const auto it = variants.find(trace.header.variant);
    if (it == variants.end()) {
      err << fmt::format("{}: trace needs variant {}, which only the test suite provides\n", in_path,
                         trace.header.variant);
      return 2;
    }
    hooks = it->second;
  }
  if (!trace.violation) {
    err << fmt::format("{}: the trace records no violation (verdict pass): nothing to shrink\n", in_path);
    return 2;
  }
  // Only a trace that still reproduces is worth shrinking: the shrunk one
  // must stand for the same failure of the same code.
  const ReplayResult replayed = replay_trace(trace, hooks);
  if (replayed.divergence) {
    err << fmt::format("{}: the trace does not replay, so it cannot be shrunk: {}\n", in_path, *replayed.divergence);
    return 2;
  }
  const std::string& rule = trace.violation->rule;

  sim::ShrinkOptions shrink_options;
  shrink_options.max_runs = options.max_runs;
  WallClock::time_point next_progress = WallClock::now() + kProgressPeriod;
  bool progress_shown = false;
  if (options.progress) {
    shrink_options.progress = [&](const sim::ShrinkProgress& p) {
      const WallClock::time_point now = WallClock::now();
      if (now < next_progress) return;
      next_progress = now + kProgressPeriod;
      progress_shown = true;
      err << fmt::format("\rshrink: run {} of at most {}, best so far {}   ", p.runs, p.max_runs,
                         sim::describe_size(p.best))
          << std::flush;
    };
  }
  const std::optional<sim::ShrinkResult> result = sim::shrink(sim::case_of_trace(trace), rule, hooks, shrink_options);
  if (progress_shown) err << "\r" << std::string(100, ' ') << "\r" << std::flush;
  if (!result) {
    // The exact replay broke the rule, so the guided run of the same
    // choices and draws must too; if not, the two runs differ somewhere.
    err << fmt::format("{}: the trace's run, driven by its own choices and draws, no longer breaks {}\n", in_path,
                       rule);
    return 2;
  }

  sim::TraceHeader header = trace.header;
  header.scenario = result->shrunk.scenario;
  header.strategy = "guided";
  const std::string shrunk_text = sim::write_trace(header, result->report);
  // The output must replay as any trace does, bit for bit.
  auto reread = sim::read_trace(shrunk_text, options.out_path);
  if (auto* error = std::get_if<sim::TraceError>(&reread)) {
    err << fmt::format("{}: the shrunk trace does not read back: {}\n", options.out_path, error->message);
    return 2;
  }
  const ReplayResult check = replay_trace(std::get<sim::Trace>(reread), hooks);
  if (check.divergence) {
    err << fmt::format("{}: the shrunk trace does not replay: {}\n", options.out_path, *check.divergence);
    return 2;
  }
  if (const std::string error = write_file_creating_directory(options.out_path, shrunk_text); !error.empty()) {
    err << error << "\n";
    return 2;
  }

  out << fmt::format("shrink: {}: {} (gate {}, variant {})\n", in_path, describe(*trace.violation),
                     sim::gate_mode_name(trace.header.gate), trace.header.variant);
  out << "before: " << sim::describe_size(result->before) << "\n";
  out << "after:  " << sim::describe_size(result->after) << "\n";
  out << fmt::format("runs: {} of at most {}{}\n", result->runs, options.max_runs,
                     result->budget_exhausted ? " (the budget ran out; --max-runs may shrink further)" : "");
  out << "verdict: " << describe(*result->report.violation) << "\n";
  out << fmt::format("wrote: {} (turnstile replay {})\n", options.out_path, options.out_path);
  return 0;
}

}  // namespace turnstile::cli
