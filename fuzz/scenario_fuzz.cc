// libFuzzer harness for the scenario reader: any bytes, as one scenario file,
// must either read as a scenario that passes check_scenario or give one line
// "<source>: ..."; never a crash, hang or sanitizer report. A scenario that
// reads is written canonically and must read back to the same text.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "sim/scenario.h"

namespace {

constexpr std::string_view kSource = "fuzz.json";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using turnstile::sim::Scenario;
  using turnstile::sim::ScenarioError;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = turnstile::sim::parse_scenario(text, kSource);
  if (const auto* error = std::get_if<ScenarioError>(&result)) {
    if (error->message.rfind(std::string(kSource) + ": ", 0) != 0) __builtin_trap();
    if (error->message.find('\n') != std::string::npos) __builtin_trap();
    return 0;
  }
  const Scenario& scenario = std::get<Scenario>(result);
  if (turnstile::sim::check_scenario(scenario)) __builtin_trap();
  const std::string canonical = turnstile::sim::scenario_to_json(scenario);
  auto again = turnstile::sim::parse_scenario(canonical, kSource);
  if (!std::holds_alternative<Scenario>(again)) __builtin_trap();
  if (turnstile::sim::scenario_to_json(std::get<Scenario>(again)) != canonical) __builtin_trap();
  return 0;
}
