#include "sim/fingerprint.h"

namespace turnstile::sim {

void Fingerprint::add(std::uint64_t value) {
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;  // the FNV-1a 64-bit prime
  for (int byte = 0; byte < 8; ++byte) {
    hash_ ^= (value >> (8 * byte)) & 0xffU;
    hash_ *= kPrime;
  }
}

}  // namespace turnstile::sim
