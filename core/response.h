#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace turnstile::core {

// SPEC F2/F3: what the stream route answers. Denials are normal answers
// (HTTP 200), never HTTP errors.
enum class DenialReason { capacity, policy, busy, unavailable, superseded, resolve_failed };

std::string_view denial_text(DenialReason reason);  // "capacity", ..., "resolve-failed"

struct Stream {
  std::string name;
  std::string url;

  bool operator==(const Stream&) const = default;
};

struct Response {
  bool denied = false;
  DenialReason reason = DenialReason::policy;  // when denied
  std::vector<Stream> streams;                  // when not denied (F2)

  bool operator==(const Response&) const = default;

  static Response denial(DenialReason reason);
  static Response granted(std::vector<Stream> streams);
};

// The JSON body, byte for byte: F2 {"streams":[{"name":..,"url":..}]}
// or F3 {"streams":[{"name":"turnstile","description":"<why>"}],"cacheMaxAge":0}.
std::string render_body(const Response& response);

// Appends the session token to a stream URL as the query parameter `session` (F2).
std::string with_session_token(std::string_view url, std::string_view token);

// Appends `text` to `out` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view text);

}  // namespace turnstile::core
