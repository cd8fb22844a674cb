#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.h"
#include "core/time.h"

namespace turnstile::core {

// SPEC G: the admission gate of one pool, as a function over data. The fake
// store, `turnstile gate`, the property oracle and gate.lua all answer to
// apply() below.

// The most sessions one pool may hold. Capacity is validated against it, and
// G13/G14 keep slots held at or below the largest capacity ever set, so the
// session table never grows past this bound.
inline constexpr std::int64_t kMaxCapacity = 100000;

struct GateConfig {
  std::int64_t capacity = 4;  // C >= 1, at most kMaxCapacity
  Ms ttl_ms = 30000;          // T > 0
  Ms grace_ms = 15000;        // G >= 0
};

// The config's first invalid field, or nothing when it is valid.
std::optional<FieldError> check_config(const GateConfig& config);

enum class Outcome {
  admitted,
  resumed,
  switched,
  rotated,
  superseded,
  blocked_capacity,
  alive,
  gone,
  released,
};

std::string_view outcome_name(Outcome outcome);
std::optional<Outcome> outcome_from_name(std::string_view name);

// Tokens are a pool-wide counter (G9). 0 is never issued and stands for "no token".
using Token = std::uint64_t;
inline constexpr Token kNoToken = 0;

struct Decision {
  Outcome outcome = Outcome::gone;
  Token token = kNoToken;  // for admitted/resumed/switched/rotated (and their G3 replays)
  std::string victim;      // the rotated-out client for `rotated`, else empty
  std::int64_t held = 0;   // slots held in the pool after the operation

  bool operator==(const Decision&) const = default;
};

// True for the outcomes that leave the client holding a session token.
bool is_granted(Outcome outcome);

// True for the outcomes that issued a new token (G9): admitted, switched, rotated.
bool is_new_token(Outcome outcome);

enum class OpKind { admit, heartbeat, release };

// Each kind's name, in OpKind's order, as SPEC D, traces and gate.lua spell it.
inline constexpr std::array<std::string_view, 3> kOpKindNames = {"admit", "heartbeat", "release"};

std::string_view op_kind_name(OpKind kind);

struct Op {
  OpKind kind = OpKind::admit;
  std::string client;
  std::string episode;  // admit only
  std::string request;  // admit only
  Ms issued_at = 0;     // admit only: when the route received the request
  Ms now = 0;           // the store's clock
  Token token = kNoToken;  // heartbeat and release only
};

struct Session {
  std::string client;
  std::string episode;
  Token token = kNoToken;
  Ms admitted_at = 0;
  Ms last_seen = 0;
  std::string last_request;
  Ms last_issued = 0;
  Decision last_decision;

  bool operator==(const Session&) const = default;
};

// One pool's whole state. A new session is appended, except that one admitted
// by rotation (G7) takes its victim's place, so the order of the sessions, and
// any walk over them, is deterministic. No decision depends on this order.
struct PoolState {
  Ms last_now = 0;         // G1
  Token last_token = 0;    // G9: the last token issued; the next is last_token + 1
  std::vector<Session> sessions;

  bool operator==(const PoolState&) const = default;
};

// Age classes of a session at `now` (SPEC G).
enum class Age { live, idle, gone };
Age age_of(const Session& session, Ms now, const GateConfig& config);

// Applies one operation as one atomic step (G1-G12). The op must be valid
// (ids per V, times in [0, kMaxTimeMs], a valid config); apply asserts it.
Decision apply(PoolState& pool, const Op& op, const GateConfig& config);

// The client's session, or null.
const Session* find_session(const PoolState& pool, std::string_view client);

}  // namespace turnstile::core
