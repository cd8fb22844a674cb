#include "cli/show_command.h"

#include <chrono>
#include <iostream>
#include <iterator>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/file_io.h"
#include "cli/show_columns.h"

namespace turnstile::cli {

using show_detail::count_of;

namespace {

// Inputs larger than this are refused: a trace of that size would take
// minutes to parse, and a window of it is what the page shows anyway.
constexpr std::size_t kMaxInputBytes = std::size_t{2} << 30;
// What lincheck may use while looking for the operation to highlight.
constexpr std::size_t kLincheckMemoryBytes = std::size_t{1} << 30;

int fail(std::ostream& err, std::string_view message) {
  err << message << "\n";
  return 2;
}

std::string first_line(std::string_view text) {
  const std::size_t newline = text.find('\n');
  std::string_view line = text.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return std::string(line);
}

}  // namespace

std::variant<ShowInput, std::string> detect_input(std::string_view text, std::string_view source) {
  if (text.empty()) {
    return fmt::format("{}:1: an empty file: expected a trace (turnstile run --trace-out) or a history (SPEC H)",
                       source);
  }
  const std::string line = first_line(text);
  const nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return fmt::format("{}:1: not valid JSON", source);
  if (!value.is_object()) return fmt::format("{}:1: expected a JSON object", source);
  if (value.contains("turnstile_trace")) return ShowInput::trace;
  if (value.contains("turnstile_check_trace")) return ShowInput::check_trace;
  if (value.contains("process")) return ShowInput::history;
  return fmt::format(
      "{}:1: field 'turnstile_trace': expected a trace header (turnstile run --trace-out), a check trace header "
      "('turnstile_check_trace') or a history line (SPEC H, with 'process')",
      source);
}

int run_show(std::string_view text, std::string_view source, const ShowOptions& options, std::ostream& out,
             std::ostream& err) {
  if (options.html_path.empty() && !options.text) return fail(err, "show: expected -o OUT.html or --text");
  if (options.detail < kMinShowDetail || options.detail > kMaxShowDetail) {
    return fail(err, fmt::format("--detail: expected an integer from {} to {}", kMinShowDetail, kMaxShowDetail));
  }
  if (options.lincheck_time_limit_s < 0) return fail(err, "lincheck time limit: expected 0 or more seconds");

  const auto kind = detect_input(text, source);
  if (const auto* error = std::get_if<std::string>(&kind)) return fail(err, *error);
  ShowLimits limits;
  limits.detail = options.detail;
  limits.around = options.around;

  ShowModel model;
  switch (std::get<ShowInput>(kind)) {
    case ShowInput::trace: {
      auto parsed = sim::read_trace(text, source);
      if (const auto* error = std::get_if<sim::TraceError>(&parsed)) return fail(err, error->message);
      const auto& trace = std::get<sim::Trace>(parsed);
      if (options.around && *options.around >= trace.events.size()) {
        return fail(err, fmt::format("--around: expected an event index below {}, the trace's events",
                                     trace.events.size()));
      }
      model = trace_model(trace, source, limits);
      break;
    }
    case ShowInput::history: {
      auto parsed = sim::read_history(text, source);
      if (const auto* error = std::get_if<sim::HistoryError>(&parsed)) return fail(err, error->message);
      auto& ops = std::get<std::vector<sim::HistoryOp>>(parsed);
      std::size_t endpoints = 0;
      for (const sim::HistoryOp& op : ops) endpoints += op.pending() ? 1 : 2;
      if (options.around && *options.around >= endpoints) {
        return fail(err, fmt::format("--around: expected an index below {}, the history's calls and returns",
                                     endpoints));
      }
      sim::LincheckLimits lincheck;
      lincheck.max_search_bytes = kLincheckMemoryBytes;
      if (options.lincheck_time_limit_s > 0) {
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(options.lincheck_time_limit_s));
        lincheck.should_stop = [deadline] { return std::chrono::steady_clock::now() >= deadline; };
      }
      model = history_model(check_pools(std::move(ops), lincheck, 1), source, limits);
      break;
    }
    case ShowInput::check_trace: {
      auto parsed = sim::read_check_trace(text, source);
      if (const auto* error = std::get_if<sim::CheckTraceError>(&parsed)) return fail(err, error->message);
      const auto& trace = std::get<sim::CheckTrace>(parsed);
      if (options.around && *options.around >= trace.steps.size()) {
        return fail(err, fmt::format("--around: expected a step index below {}, the trace's steps",
                                     trace.steps.size()));
      }
      model = check_trace_model(trace, source, limits);
      break;
    }
  }

  if (options.text) out << render_text(model);
  if (!options.html_path.empty()) {
    const std::string html = render_html(model);
    if (std::string error = write_file(options.html_path, html); !error.empty()) return fail(err, error);
    if (!options.text) {
      std::size_t full = 0;
      for (const ShowColumn& column : model.columns) full += column.summary ? 0 : 1;
      out << fmt::format("show: wrote {} ({} bytes): {} lanes, {} of {} in full{}\n", options.html_path,
                         html.size(), model.lanes.size(), full, count_of(model.total, model.event_noun),
                         model.violation ? fmt::format(", {} highlighted at {}", model.violation->rule,
                                                       model.violation->where)
                                         : std::string{});
    }
  }
  out.flush();
  return 0;
}

int run_show_command(const ShowOptions& options, std::ostream& out, std::ostream& err) {
  if (options.input_path.empty() || options.input_path == "-") {
    std::string text(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>{});
    if (std::cin.bad()) return fail(err, "<stdin>: read error");
    return run_show(text, "<stdin>", options, out, err);
  }
  const FileText file = read_file(options.input_path, kMaxInputBytes);
  if (!file.text) return fail(err, file.error);
  return run_show(*file.text, options.input_path, options, out, err);
}

}  // namespace turnstile::cli
