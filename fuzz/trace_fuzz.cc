// libFuzzer harness for the trace reader: any bytes, as one trace file, must
// either read as a trace or give one line "<source>:<line>: ..."; never a
// crash, hang or sanitizer report. A trace that reads is written again and
// must read back the same, so the reader accepts nothing the writer could
// not have written.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "sim/runtime.h"
#include "sim/trace.h"

namespace {

using turnstile::sim::Trace;
using turnstile::sim::TraceError;

constexpr std::string_view kSource = "fuzz.jsonl";

void check_error(const TraceError& error) {
  const std::string& message = error.message;
  if (message.rfind(std::string(kSource) + ":", 0) != 0) __builtin_trap();
  if (message.find('\n') != std::string::npos) __builtin_trap();
}

turnstile::sim::Outcome outcome_from_name(const std::string& name) {
  using turnstile::sim::Outcome;
  for (Outcome outcome : {Outcome::finished, Outcome::stuck, Outcome::step_limit, Outcome::time_limit,
                          Outcome::fiber_limit, Outcome::fiber_failed, Outcome::stopped}) {
    if (turnstile::sim::outcome_name(outcome) == name) return outcome;
  }
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = turnstile::sim::read_trace(text, kSource);
  if (const auto* error = std::get_if<TraceError>(&result)) {
    check_error(*error);
    return 0;
  }
  const Trace& trace = std::get<Trace>(result);
  turnstile::sim::RunReport report;
  report.runtime.schedule = trace.schedule;
  report.runtime.outcome = outcome_from_name(trace.outcome);
  report.draws = trace.draws;
  report.history = turnstile::sim::History(trace.header.scenario.max_events);
  for (const auto& event : trace.events) {
    if (!report.history.append(event.step, event.at_ms, event.body)) __builtin_trap();
  }
  report.violation = trace.violation;
  report.fingerprint = trace.fingerprint;
  const std::string written = turnstile::sim::write_trace(trace.header, report);
  auto again = turnstile::sim::read_trace(written, kSource);
  if (!std::holds_alternative<Trace>(again)) __builtin_trap();
  const Trace& reread = std::get<Trace>(again);
  if (reread.schedule != trace.schedule || reread.draws != trace.draws ||
      reread.events.size() != trace.events.size() || reread.violation != trace.violation ||
      reread.fingerprint != trace.fingerprint || reread.outcome != trace.outcome) {
    __builtin_trap();
  }
  for (std::size_t i = 0; i < trace.events.size(); ++i) {
    if (turnstile::sim::event_to_json(reread.events[i]) != turnstile::sim::event_to_json(trace.events[i])) {
      __builtin_trap();
    }
  }
  return 0;
}
