#include "core/ids.h"

#include <cstddef>

namespace turnstile::core {
namespace {

bool is_plain_byte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::size_t max_length(IdKind kind) { return kind == IdKind::episode ? 128 : 64; }

}  // namespace

bool is_valid_id(IdKind kind, std::string_view value) {
  if (value.empty() || value.size() > max_length(kind)) return false;
  for (char c : value) {
    if (is_plain_byte(c)) continue;
    if (kind == IdKind::episode && c == ':') continue;
    return false;
  }
  return true;
}

std::string_view id_expectation(IdKind kind) {
  switch (kind) {
    case IdKind::pool:
    case IdKind::client:
    case IdKind::request:
      return "1-64 bytes of [A-Za-z0-9._-]";
    case IdKind::episode:
      return "1-128 bytes of [A-Za-z0-9._:-]";
  }
  return "";
}

std::optional<FieldError> check_id(IdKind kind, std::string_view field, std::string_view value) {
  if (is_valid_id(kind, value)) return std::nullopt;
  return FieldError{std::string(field), std::string(id_expectation(kind))};
}

}  // namespace turnstile::core
