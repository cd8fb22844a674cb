#pragma once

#include <cstdint>

namespace turnstile::sim {

// A running 64-bit hash of a run (DESIGN "Determinism rules"): rerunning a
// seed must give the same value, so it is our own fully specified function
// (FNV-1a over each value's 8 bytes, least significant first), never
// std::hash, whose results differ between standard libraries.
class Fingerprint {
 public:
  void add(std::uint64_t value);
  void add_signed(std::int64_t value) { add(static_cast<std::uint64_t>(value)); }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;  // the FNV-1a 64-bit offset basis
};

}  // namespace turnstile::sim
