#include "core/rng.h"

#include "core/assert.h"

namespace turnstile::core {
namespace {

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

std::uint64_t splitmix64_next(std::uint64_t& state) {
  state += 0x9e3779b97f4a7c15ULL;
  return mix64(state);
}

}  // namespace

std::uint64_t mix64(std::uint64_t value) {
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  return mix64(seed ^ mix64(stream + 0x9e3779b97f4a7c15ULL));
}

Rng::Rng(std::uint64_t seed) {
  std::uint64_t sm = seed;
  for (auto& word : state_) word = splitmix64_next(sm);
}

std::uint64_t Rng::next_u64() {
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

std::uint64_t Rng::below(std::uint64_t bound) {
  TS_ASSERT(bound >= 1);
  // Reject the top sliver of the 64-bit range that does not divide evenly by
  // bound; what is left maps onto [0, bound) uniformly. The loop ends with
  // probability at least 1/2 per round, so it is bounded in expectation; the
  // cap only guards against a broken generator.
  const std::uint64_t limit = (0 - bound) % bound;  // 2^64 mod bound
  for (int round = 0; round < 1024; ++round) {
    const std::uint64_t x = next_u64();
    if (x >= limit) return x % bound;
  }
  TS_ASSERT(false && "Rng::below rejected 1024 draws in a row");
  return 0;
}

std::int64_t Rng::uniform(std::int64_t lo, std::int64_t hi) {
  TS_ASSERT(lo <= hi);
  const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  const std::uint64_t offset = span == ~std::uint64_t{0} ? next_u64() : below(span + 1);
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + offset);
}

bool Rng::chance(std::uint64_t numerator, std::uint64_t denominator) {
  TS_ASSERT(denominator >= 1 && numerator <= denominator);
  return below(denominator) < numerator;
}

}  // namespace turnstile::core
