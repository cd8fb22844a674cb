#include "sim/describe.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/response.h"

namespace turnstile::sim {

std::string describe_op(const core::Op& op) {
  switch (op.kind) {
    case core::OpKind::admit:
      return fmt::format("admit of client {} (episode {}, request {}, issued_at {})", op.client, op.episode, op.request,
                         op.issued_at);
    case core::OpKind::heartbeat:
      return fmt::format("heartbeat of client {} with token {}", op.client, op.token);
    case core::OpKind::release:
      return fmt::format("release of client {} with token {}", op.client, op.token);
  }
  return "operation";
}

std::string describe_decision(const core::Decision& decision) {
  std::string text(core::outcome_name(decision.outcome));
  if (decision.token != core::kNoToken) text += fmt::format(" token {}", decision.token);
  if (!decision.victim.empty()) text += fmt::format(" victim {}", decision.victim);
  return text;
}

std::string describe_session(const core::Session& session) {
  return fmt::format("client {} (token {}, last_seen {}, admitted_at {})", session.client, session.token,
                     session.last_seen, session.admitted_at);
}

std::string quote_input(std::string_view text) {
  constexpr std::size_t kMaxQuoted = 64;
  std::size_t keep = std::min(text.size(), kMaxQuoted);
  while (keep > 0 && keep < text.size() && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  std::string out;
  core::append_json_string(out, text.substr(0, keep));
  out = out.substr(1, out.size() - 2);
  if (keep < text.size()) out += "...";
  return out;
}

}  // namespace turnstile::sim
