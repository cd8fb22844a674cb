// libFuzzer harness for the check-trace reader (sim/check_trace.h): any
// bytes, as one check trace, must either read or give one line
// "<source>:<line>: ..."; never a crash, hang or sanitizer report. A trace
// that reads is turned into its H history (what `replay --history` writes),
// which must not crash either. Replaying is left out: a verified trace
// reruns its whole check, which is a search, not a parse.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "sim/check_trace.h"

namespace {

constexpr std::string_view kSource = "fuzz.jsonl";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = turnstile::sim::read_check_trace(text, kSource);
  if (const auto* error = std::get_if<turnstile::sim::CheckTraceError>(&result)) {
    if (error->message.rfind(std::string(kSource) + ":", 0) != 0) __builtin_trap();
    if (error->message.find('\n') != std::string::npos) __builtin_trap();
    return 0;
  }
  const auto& trace = std::get<turnstile::sim::CheckTrace>(result);
  if (trace.steps.size() > turnstile::sim::kMaxCheckTraceSteps) __builtin_trap();
  (void)turnstile::sim::check_path_history(trace.config, trace.steps);
  return 0;
}
