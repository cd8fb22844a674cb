#pragma once

// Assertions stay on in every build: a broken invariant in the core is a bug
// that must stop the run, not a state to continue from (TIGER_STYLE).

namespace turnstile::core {
[[noreturn]] void assert_fail(const char* expression, const char* file, int line);
}  // namespace turnstile::core

#define TS_ASSERT(condition)                                               \
  do {                                                                     \
    if (!(condition)) ::turnstile::core::assert_fail(#condition, __FILE__, __LINE__); \
  } while (false)
