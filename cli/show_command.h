#pragma once

// `turnstile show TRACE|HISTORY (-o OUT.html | --text) [--detail N] [--around E]`
// (docs/show.md): draws a simulator trace (sim/trace.h), a model checker's
// trace (sim/check_trace.h) or a history (SPEC H, sim/history_format.h) as a
// timeline: a lane per client (or process) and one each for the store and
// the broker (those that the input has). main() wires the flags:
//
//   Action add_show(CLI::App& app) {
//     auto* show = app.add_subcommand("show", "Draw a trace or a history as a timeline (HTML or text)");
//     auto options = std::make_shared<turnstile::cli::ShowOptions>();
//     show->add_option("input", options->input_path, "...")->required();
//     show->add_option("-o,--output", options->html_path, "Write a self-contained HTML page here");
//     show->add_flag("--text", options->text, "Print the timeline for a terminal");
//     show->add_option("--detail", options->detail, "...");
//     show->add_option("--around", options->around, "...");
//     return [show, options] { return show->parsed() ? run_show_command(*options, std::cout, std::cerr) : -1; };
//   }
//
// Which kind a file is, is read from its first line: a trace's header has
// "turnstile_trace", a model checker's trace "turnstile_check_trace", a
// history's lines "process".
//
// A large input stays drawable: past `detail` events, a window of that many
// around the violation (or `around`) is drawn in full and the rest is
// summarised in a few columns of counts, so the page stays a few megabytes
// whatever the trace's length.
//
// Exit codes:
//   0  drawn (whatever the trace's verdict: drawing a violation is success)
//   2  bad usage or bad input: one line on `err`, "<file>:<line>: field 'x': expected ..."

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cli/lincheck_command.h"
#include "cli/show_render.h"
#include "sim/check_trace.h"
#include "sim/history_format.h"
#include "sim/trace.h"

namespace turnstile::cli {

inline constexpr std::size_t kDefaultShowDetail = 1000;
inline constexpr std::size_t kMinShowDetail = 10;
inline constexpr std::size_t kMaxShowDetail = 20000;

struct ShowOptions {
  std::string input_path;  // "-": standard input
  std::string html_path;   // -o: write the HTML page here
  bool text = false;       // --text: print the timeline on `out`
  std::size_t detail = kDefaultShowDetail;  // events drawn in full, at most
  std::optional<std::uint64_t> around;      // the event to centre the window on
  // How long lincheck may take on a history to find the operation to
  // highlight; past it the page says the verdict is unknown.
  double lincheck_time_limit_s = 20;
};

int run_show_command(const ShowOptions& options, std::ostream& out, std::ostream& err);

// The same on text already in memory; `source` names it in messages.
int run_show(std::string_view text, std::string_view source, const ShowOptions& options, std::ostream& out,
             std::ostream& err);

// The pieces, for tests.

enum class ShowInput : std::uint8_t { trace, check_trace, history };

// The kind of file, from its first line, or the one-line error.
std::variant<ShowInput, std::string> detect_input(std::string_view text, std::string_view source);

struct ShowLimits {
  std::size_t detail = kDefaultShowDetail;  // events drawn in full, at most
  std::size_t buckets = 60;                 // summary columns on each side of the window, at most
  std::optional<std::uint64_t> around;      // centre of the window; default the violation, else the start
};

ShowModel trace_model(const sim::Trace& trace, std::string_view source, const ShowLimits& limits);

// A model checker's counterexample (sim/check_trace.h): a lane per client
// and one for the store; a legacy admit is a bar from its read to its write.
ShowModel check_trace_model(const sim::CheckTrace& trace, std::string_view source, const ShowLimits& limits);

// `results` as check_pools returns them (lincheck_command.h): every
// operation of the history, by pool, with each pool's verdict.
ShowModel history_model(const std::vector<PoolResult>& results, std::string_view source, const ShowLimits& limits);

}  // namespace turnstile::cli
