#pragma once

#include <string_view>

namespace turnstile::core {

// SPEC R3: how one attempt at a dependency ended.
enum class OutcomeClass { success, transient, permanent };

std::string_view outcome_class_name(OutcomeClass outcome_class);

// R3 for HTTP: 2xx success; 408, 429 and 500-599 except 501 and 505
// transient; everything else permanent.
OutcomeClass classify_http_status(int status);

// R3 for a store error reply, by its first word: BUSY, LOADING, TRYAGAIN
// transient; anything else (ERR, WRONGTYPE, ...) permanent. Timeouts and
// connection errors are transient and are reported by the caller as such.
// NOSCRIPT is not an attempt outcome (the adapter falls back to EVAL inside
// the attempt) and is classified permanent should it ever reach here.
OutcomeClass classify_store_error(std::string_view error_reply);

}  // namespace turnstile::core
