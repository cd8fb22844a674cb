#include "core/gate.h"

#include <algorithm>
#include <array>
#include <tuple>
#include <utility>

#include "core/assert.h"

namespace turnstile::core {
namespace {

constexpr std::array<std::string_view, 9> kOutcomeNames = {
    "admitted", "resumed", "switched", "rotated", "superseded",
    "blocked_capacity", "alive", "gone", "released",
};

bool is_valid_time(Ms t) { return t >= 0 && t <= kMaxTimeMs; }

std::int64_t held(const PoolState& pool) { return static_cast<std::int64_t>(pool.sessions.size()); }

Session* find_mutable(PoolState& pool, std::string_view client) {
  for (auto& session : pool.sessions) {
    if (session.client == client) return &session;
  }
  return nullptr;
}

// G2: every gone session is removed and its token dies. Live and idle
// sessions keep their relative order.
void prune(PoolState& pool, const GateConfig& config) {
  std::erase_if(pool.sessions, [&](const Session& s) { return age_of(s, pool.last_now, config) == Age::gone; });
}

// G7's order: smallest last_seen, then smallest admitted_at, then smallest client id.
bool older_than(const Session& a, const Session& b) {
  return std::tie(a.last_seen, a.admitted_at, a.client) < std::tie(b.last_seen, b.admitted_at, b.client);
}

// G10: what every session created or updated by G5-G7 records.
void record_intent(Session& session, const Op& op, Ms now, const Decision& decision) {
  session.last_request = op.request;
  session.last_issued = op.issued_at;
  session.last_decision = decision;
  session.last_seen = now;
}

Decision admit(PoolState& pool, const Op& op, const GateConfig& config) {
  const Ms now = pool.last_now;
  if (Session* own = find_mutable(pool, op.client)) {
    // G3: a replay of the request that made the session's current state.
    if (own->last_request == op.request) {
      Decision replay = own->last_decision;
      replay.held = held(pool);
      return replay;
    }
    // G4: an intent older than the one already applied changes nothing.
    if (std::tie(op.issued_at, op.request) < std::tie(own->last_issued, own->last_request)) {
      return Decision{Outcome::superseded, kNoToken, {}, held(pool)};
    }
    // G5: the owner keeps its slot, live or idle, and is never blocked.
    Decision decision{Outcome::resumed, own->token, {}, held(pool)};
    if (own->episode != op.episode) {
      own->token = ++pool.last_token;
      own->episode = op.episode;
      decision = Decision{Outcome::switched, own->token, {}, held(pool)};
    }
    record_intent(*own, op, now, decision);
    return decision;
  }

  Decision decision{Outcome::admitted, kNoToken, {}, 0};
  // Where the newcomer goes: a new place at the end (G6) or its victim's (G7).
  auto place = pool.sessions.end();
  if (held(pool) >= config.capacity) {
    // G7: only an idle session may make room, the oldest first; G8 otherwise.
    auto victim = pool.sessions.end();
    for (auto it = pool.sessions.begin(); it != pool.sessions.end(); ++it) {
      if (age_of(*it, now, config) != Age::idle) continue;
      if (victim == pool.sessions.end() || older_than(*it, *victim)) victim = it;
    }
    if (victim == pool.sessions.end()) {
      return Decision{Outcome::blocked_capacity, kNoToken, {}, held(pool)};
    }
    decision.outcome = Outcome::rotated;
    decision.victim = victim->client;
    // The newcomer takes the victim's place. Erasing the victim and appending
    // would move every later session, which made a rotation on a 64-session
    // pool four times slower; no decision depends on the order.
    place = victim;
  }
  // G6 (or the slot G7 just freed). G13: a newcomer never raises slots held
  // above max(C, held before), since it enters only when held < C or by rotation.
  Session session;
  session.client = op.client;
  session.episode = op.episode;
  session.token = ++pool.last_token;
  session.admitted_at = now;
  decision.token = session.token;
  if (place == pool.sessions.end()) {
    TS_ASSERT(held(pool) < kMaxCapacity);
    place = pool.sessions.insert(place, std::move(session));
  } else {
    *place = std::move(session);
  }
  decision.held = held(pool);
  record_intent(*place, op, now, decision);
  return decision;
}

}  // namespace

std::optional<FieldError> check_config(const GateConfig& config) {
  if (config.capacity < 1 || config.capacity > kMaxCapacity) {
    return FieldError{"capacity", "an integer from 1 to 100000"};
  }
  if (config.ttl_ms <= 0 || config.ttl_ms > kMaxTimeMs) {
    return FieldError{"ttl", "an integer from 1 to 9007199254740991 (ms)"};
  }
  if (config.grace_ms < 0 || config.grace_ms > kMaxTimeMs) {
    return FieldError{"grace", "an integer from 0 to 9007199254740991 (ms)"};
  }
  return std::nullopt;
}

std::string_view outcome_name(Outcome outcome) { return kOutcomeNames.at(static_cast<std::size_t>(outcome)); }

std::string_view op_kind_name(OpKind kind) { return kOpKindNames.at(static_cast<std::size_t>(kind)); }

std::optional<Outcome> outcome_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == name) return static_cast<Outcome>(i);
  }
  return std::nullopt;
}

bool is_granted(Outcome outcome) {
  return outcome == Outcome::admitted || outcome == Outcome::resumed || outcome == Outcome::switched ||
         outcome == Outcome::rotated;
}

bool is_new_token(Outcome outcome) {
  return outcome == Outcome::admitted || outcome == Outcome::switched || outcome == Outcome::rotated;
}

Age age_of(const Session& session, Ms now, const GateConfig& config) {
  // Times are bounded by kMaxTimeMs, so neither the age nor T + G overflows.
  const Ms age = now - session.last_seen;
  if (age <= config.ttl_ms) return Age::live;
  if (age <= config.ttl_ms + config.grace_ms) return Age::idle;
  return Age::gone;
}

const Session* find_session(const PoolState& pool, std::string_view client) {
  return find_mutable(const_cast<PoolState&>(pool), client);
}

Decision apply(PoolState& pool, const Op& op, const GateConfig& config) {
  TS_ASSERT(!check_config(config));
  TS_ASSERT(is_valid_time(op.now));
  TS_ASSERT(is_valid_id(IdKind::client, op.client));
  const std::int64_t held_before = held(pool);

  // G1: time never runs backwards inside a pool.
  pool.last_now = std::max(pool.last_now, op.now);
  // G2.
  prune(pool, config);

  Decision decision;
  switch (op.kind) {
    case OpKind::admit:
      TS_ASSERT(is_valid_id(IdKind::episode, op.episode));
      TS_ASSERT(is_valid_id(IdKind::request, op.request));
      TS_ASSERT(is_valid_time(op.issued_at));
      decision = admit(pool, op, config);
      break;
    case OpKind::heartbeat: {
      // G11: only the session's current token keeps it alive.
      Session* own = find_mutable(pool, op.client);
      if (own != nullptr && op.token != kNoToken && own->token == op.token) {
        own->last_seen = pool.last_now;
        decision = Decision{Outcome::alive, kNoToken, {}, held(pool)};
      } else {
        decision = Decision{Outcome::gone, kNoToken, {}, held(pool)};
      }
      break;
    }
    case OpKind::release: {
      // G12: only the session's current token frees the slot.
      auto it = std::find_if(pool.sessions.begin(), pool.sessions.end(),
                             [&](const Session& s) { return s.client == op.client; });
      if (it != pool.sessions.end() && op.token != kNoToken && it->token == op.token) {
        pool.sessions.erase(it);
        decision = Decision{Outcome::released, kNoToken, {}, held(pool)};
      } else {
        decision = Decision{Outcome::gone, kNoToken, {}, held(pool)};
      }
      break;
    }
  }

  // G14, the part that can be checked from here: slots held never grow past
  // max(C, held before), and each client holds at most one session.
  TS_ASSERT(decision.held == held(pool));
  TS_ASSERT(held(pool) <= std::max(config.capacity, held_before));
  return decision;
}

}  // namespace turnstile::core
