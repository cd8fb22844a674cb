#include "core/response.h"

#include <array>
#include <cstddef>
#include <utility>

namespace turnstile::core {
namespace {

constexpr std::array<std::string_view, 6> kDenialTexts = {
    "capacity", "policy", "busy", "unavailable", "superseded", "resolve-failed",
};

constexpr std::string_view kHexDigits = "0123456789abcdef";

}  // namespace

std::string_view denial_text(DenialReason reason) { return kDenialTexts.at(static_cast<std::size_t>(reason)); }

Response Response::denial(DenialReason reason) {
  Response response;
  response.denied = true;
  response.reason = reason;
  return response;
}

Response Response::granted(std::vector<Stream> streams) {
  Response response;
  response.denied = false;
  response.streams = std::move(streams);
  return response;
}

std::string render_body(const Response& response) {
  std::string body;
  if (response.denied) {
    // F3: a denial is one pseudo-stream that says why, and must not be cached
    // by the client, since the next request may well be granted.
    body += R"({"streams":[{"name":"turnstile","description":)";
    append_json_string(body, denial_text(response.reason));
    body += R"(}],"cacheMaxAge":0})";
    return body;
  }
  body += R"({"streams":[)";
  bool first = true;
  for (const Stream& stream : response.streams) {
    if (!first) body += ',';
    first = false;
    body += R"({"name":)";
    append_json_string(body, stream.name);
    body += R"(,"url":)";
    append_json_string(body, stream.url);
    body += '}';
  }
  body += "]}";
  return body;
}

std::string with_session_token(std::string_view url, std::string_view token) {
  // The fragment stays last: it is never sent to the server, so a token after
  // it would be lost.
  const std::size_t hash = url.find('#');
  const std::string_view base = url.substr(0, hash);
  const std::string_view fragment = hash == std::string_view::npos ? std::string_view{} : url.substr(hash);

  std::string out(base);
  if (base.find('?') == std::string_view::npos) {
    out += '?';
  } else if (!base.ends_with('?') && !base.ends_with('&')) {
    // An existing query gets one more parameter; an empty trailing one needs no separator.
    out += '&';
  }
  out += "session=";
  out += token;
  out += fragment;
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (byte < 0x20) {
          // JSON forbids raw control characters inside strings.
          out += "\\u00";
          out += kHexDigits[byte >> 4];
          out += kHexDigits[byte & 0x0f];
        } else {
          // Bytes from 0x80 up are UTF-8 sequences and pass through as they are.
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace turnstile::core
