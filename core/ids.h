#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace turnstile::core {

// The kinds of identifier SPEC V names, each with its own length and alphabet.
enum class IdKind { pool, client, episode, request };

// Why a field was rejected: which field, and what was expected there. Readers
// of files turn it into "line N: field 'X': expected ...".
struct FieldError {
  std::string field;
  std::string expected;
};

// V1-V3: pool and client are 1-64 bytes of [A-Za-z0-9._-]; episode is 1-128
// bytes of [A-Za-z0-9._:-]; request is 1-64 bytes of [A-Za-z0-9._-].
bool is_valid_id(IdKind kind, std::string_view value);

// What an id of this kind must look like, as a phrase for error messages.
std::string_view id_expectation(IdKind kind);

// V4: the error for `field` if `value` is not a valid id of `kind`.
std::optional<FieldError> check_id(IdKind kind, std::string_view field, std::string_view value);

}  // namespace turnstile::core
