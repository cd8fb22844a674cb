#pragma once

#include <cstdint>
#include <limits>

namespace turnstile::sim {

// A simulated fiber's identity: a small integer the Runtime hands out in
// spawn order (0, 1, 2, ...), stable from run to run. Everything that orders
// fibers (the ready list, traces, fingerprints) uses it, never Boost's
// fiber::id, which wraps a pointer and changes between runs.
using SimFiberId = std::uint32_t;

// "No fiber": what spawn returns when it refuses, and what Runtime::self
// returns outside a simulated fiber.
inline constexpr SimFiberId kNoFiber = std::numeric_limits<SimFiberId>::max();

// One scheduling decision: which entry of the ready list ran, out of how many.
// The ready list is always sorted by SimFiberId, so (index, ready) names the
// fiber exactly and is all a trace must keep to replay the decision.
struct Choice {
  std::uint32_t index = 0;
  std::uint32_t ready = 0;

  friend bool operator==(const Choice&, const Choice&) = default;
};

}  // namespace turnstile::sim
