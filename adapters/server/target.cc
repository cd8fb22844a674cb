#include "adapters/server/target.h"

#include <optional>
#include <utility>
#include <vector>

#include "core/ids.h"

namespace turnstile::adapters {
namespace {

constexpr std::size_t kMaxTargetBytes = 2048;

std::optional<std::string> percent_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex(text[i + 1]);
    const int low = hex(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

Target malformed(std::string error) {
  Target target;
  target.kind = TargetKind::malformed;
  target.error = std::move(error);
  return target;
}

// A decoded path segment checked as an id of `kind`; the error names `field`.
std::optional<std::string> decode_id(std::string_view raw, core::IdKind kind, std::string_view field,
                                     std::string& error) {
  std::optional<std::string> decoded = percent_decode(raw);
  if (!decoded) {
    error = std::string(field) + ": bad percent-encoding";
    return std::nullopt;
  }
  if (auto field_error = core::check_id(kind, field, *decoded)) {
    error = field_error->field + ": expected " + field_error->expected;
    return std::nullopt;
  }
  return decoded;
}

}  // namespace

Target parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return malformed("the target must be a path starting with /");
  if (target.size() > kMaxTargetBytes) return malformed("the target is longer than 2048 bytes");
  const std::size_t query = target.find_first_of("?#");
  const std::string_view path = target.substr(1, query == std::string_view::npos ? std::string_view::npos : query - 1);

  std::vector<std::string_view> segments;
  std::size_t start = 0;
  while (segments.size() <= 4) {
    const std::size_t slash = path.find('/', start);
    segments.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }

  std::string error;
  if (segments.size() == 2 && segments[1] == "manifest.json") {
    std::optional<std::string> pool = decode_id(segments[0], core::IdKind::pool, "pool", error);
    if (!pool) return malformed(error);
    Target found;
    found.kind = TargetKind::manifest;
    found.pool = std::move(*pool);
    return found;
  }
  constexpr std::string_view kJson = ".json";
  if (segments.size() == 4 && segments[1] == "stream" && segments[3].ends_with(kJson)) {
    std::optional<std::string> pool = decode_id(segments[0], core::IdKind::pool, "pool", error);
    if (!pool) return malformed(error);
    // SPEC V has no rule for the type; it gets the pool's alphabet and length.
    std::optional<std::string> type = decode_id(segments[2], core::IdKind::pool, "type", error);
    if (!type) return malformed(error);
    std::optional<std::string> episode = decode_id(segments[3].substr(0, segments[3].size() - kJson.size()),
                                                   core::IdKind::episode, "id", error);
    if (!episode) return malformed(error);
    Target found;
    found.kind = TargetKind::stream;
    found.pool = std::move(*pool);
    found.type = std::move(*type);
    found.episode = std::move(*episode);
    return found;
  }
  return Target{};
}

}  // namespace turnstile::adapters
