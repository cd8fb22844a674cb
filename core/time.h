#pragma once

#include <cstdint>

namespace turnstile::core {

// Time and durations are integral milliseconds (SPEC, "Units"). The core never
// reads a clock: every input that needs the time takes it as a parameter.
using Ms = std::int64_t;

// The largest time the gate accepts. gate.lua keeps numbers as doubles, so a
// time beyond 2^53 - 1 would not survive the round trip through Redis.
inline constexpr Ms kMaxTimeMs = (Ms{1} << 53) - 1;

}  // namespace turnstile::core
