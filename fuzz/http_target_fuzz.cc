// libFuzzer harness for what turnstiled makes of a request target (SPEC F7,
// V): any bytes, as a target, must come out as exactly one of the two
// routes, a 404 or a 400 with a one-line reason; never a crash, hang or
// sanitizer report. A route's ids must be ids SPEC V accepts, and a target
// spelled back from them (percent-encoding nothing, as they need none) must
// parse to the same route.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "adapters/server/target.h"
#include "core/ids.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace turnstile;
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  const adapters::Target parsed = adapters::parse_target(target);
  switch (parsed.kind) {
    case adapters::TargetKind::malformed:
      if (parsed.error.empty() || parsed.error.find('\n') != std::string::npos) __builtin_trap();
      return 0;
    case adapters::TargetKind::not_found:
      return 0;
    case adapters::TargetKind::manifest: {
      if (core::check_id(core::IdKind::pool, "pool", parsed.pool)) __builtin_trap();
      const adapters::Target again = adapters::parse_target("/" + parsed.pool + "/manifest.json");
      if (again.kind != adapters::TargetKind::manifest || again.pool != parsed.pool) __builtin_trap();
      return 0;
    }
    case adapters::TargetKind::stream: {
      if (core::check_id(core::IdKind::pool, "pool", parsed.pool) ||
          core::check_id(core::IdKind::pool, "type", parsed.type) ||
          core::check_id(core::IdKind::episode, "id", parsed.episode)) {
        __builtin_trap();
      }
      const adapters::Target again =
          adapters::parse_target("/" + parsed.pool + "/stream/" + parsed.type + "/" + parsed.episode + ".json");
      if (again.kind != adapters::TargetKind::stream || again.pool != parsed.pool || again.type != parsed.type ||
          again.episode != parsed.episode) {
        __builtin_trap();
      }
      return 0;
    }
  }
  __builtin_trap();
}
