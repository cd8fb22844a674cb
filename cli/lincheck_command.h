#pragma once

// `turnstile lincheck HISTORY [--time-limit S] [--max-memory-mb M] [--jobs N] [--json] [--html OUT]`
// (SPEC H, P14; docs/lincheck.md). main() wires the flags to LincheckOptions:
//
//   Action add_lincheck(CLI::App& app) {
//     auto* lincheck = app.add_subcommand("lincheck", "Decide whether a gate history (SPEC H) is linearizable");
//     auto options = std::make_shared<turnstile::cli::LincheckOptions>();
//     lincheck->add_option("history", options->history_path,
//                          "History file (JSON Lines, SPEC H); '-' for standard input")->required();
//     lincheck->add_option("--time-limit", options->time_limit_s,
//                          "Stop after S seconds with the verdict unknown (exit 1)");
//     lincheck->add_option("--max-memory-mb", options->max_memory_mb,
//                          "Memory for the searches, shared by the jobs (default 2048)");
//     lincheck->add_option("--jobs", options->jobs, "Pools checked in parallel (the output does not depend on it)");
//     lincheck->add_flag("--json", options->json, "Print the result as one JSON object instead of text");
//     lincheck->add_option("--html", options->html_path, "Also write a self-contained HTML timeline to this file");
//     return [lincheck, options] {
//       return lincheck->parsed() ? turnstile::cli::run_lincheck_command(*options, std::cout, std::cerr) : -1;
//     };
//   }
//
// Exit codes:
//   0  every pool is linearizable
//   1  some pool is not linearizable, or a limit ran out first (verdict
//      unknown): a gate must not pass on a history nobody checked
//   2  bad usage or bad input: one line on `err`, "<file>:<line>: field 'x': expected …"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "sim/history_format.h"
#include "sim/lincheck.h"

namespace turnstile::cli {

struct LincheckOptions {
  std::string history_path;  // "-": standard input
  double time_limit_s = 0;   // 0: no limit
  std::int64_t max_memory_mb = 2048;
  int jobs = 1;
  bool json = false;
  std::string html_path;  // empty: no HTML
};

int run_lincheck_command(const LincheckOptions& options, std::ostream& out, std::ostream& err);

// The same on a history already in memory; `source` names it in messages.
int run_lincheck(std::string_view text, std::string_view source, const LincheckOptions& options, std::ostream& out,
                 std::ostream& err);

// The pieces, for tests.

struct PoolResult {
  sim::PoolHistory pool;
  sim::PoolVerdict verdict;
};

// Checks every pool, `jobs` at a time; results in pool-name order. The
// memory bound is per pool search.
std::vector<PoolResult> check_pools(std::vector<sim::HistoryOp> ops, const sim::LincheckLimits& limits, int jobs);

std::string format_text_report(const std::vector<PoolResult>& results);
std::string format_json_report(const std::vector<PoolResult>& results);
std::string format_html_report(const std::vector<PoolResult>& results, std::string_view source);

// 0 when every pool is linearizable, else 1.
int exit_code_of(const std::vector<PoolResult>& results);

}  // namespace turnstile::cli
