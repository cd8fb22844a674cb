#pragma once

#include <cstdint>

namespace turnstile::core {

// The run's seeded source of randomness (SPEC R8, DESIGN "Determinism rules").
// xoshiro256** seeded through SplitMix64: both are fully specified integer
// algorithms, so a seed gives the same numbers with any compiler and standard
// library. Never use <random> distributions in core/ or sim/: their mapping
// from bits to ranges differs between standard libraries.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);

  std::uint64_t next_u64();

  // A uniform integer in [0, bound), without modulo bias. bound >= 1.
  std::uint64_t below(std::uint64_t bound);

  // A uniform integer in [lo, hi], both inclusive. lo <= hi.
  std::int64_t uniform(std::int64_t lo, std::int64_t hi);

  // True with probability numerator / denominator (0 <= numerator <= denominator, denominator >= 1).
  bool chance(std::uint64_t numerator, std::uint64_t denominator);

 private:
  std::uint64_t state_[4];
};

// SplitMix64's finaliser: mixes one 64-bit value into another.
std::uint64_t mix64(std::uint64_t value);

// A sub-seed for one purpose (workload, store, broker, scheduler), split from
// the run's seed so that the streams do not depend on each other's use.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);

}  // namespace turnstile::core
