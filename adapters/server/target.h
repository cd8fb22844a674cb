#pragma once

#include <string>
#include <string_view>

namespace turnstile::adapters {

// What the HTTP layer makes of a request target (F7): one of the two routes,
// a malformed target (400) or an unknown one (404). The query string is
// ignored; path segments are percent-decoded before they are checked (V).
enum class TargetKind { manifest, stream, not_found, malformed };

struct Target {
  TargetKind kind = TargetKind::not_found;
  std::string pool;
  std::string type;     // stream only: movie, series, ...
  std::string episode;  // stream only: the {id} without ".json"
  std::string error;    // malformed only: what was wrong, for the 400's body
};

Target parse_target(std::string_view target);

}  // namespace turnstile::adapters
