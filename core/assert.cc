#include "core/assert.h"

#include <cstdio>
#include <cstdlib>

namespace turnstile::core {

void assert_fail(const char* expression, const char* file, int line) {
  std::fprintf(stderr, "turnstile: assertion failed: %s (%s:%d)\n", expression, file, line);
  std::abort();
}

}  // namespace turnstile::core
