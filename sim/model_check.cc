#include "sim/model_check.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>
#include <span>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"
#include "core/rng.h"
#include "sim/describe.h"

namespace turnstile::sim {
namespace {

using core::Age;
using core::Ms;

// ---------------------------------------------------------------------------
// The model's state.

// Where a client is in its round's program.
enum class Pc : std::uint8_t {
  admit,      // next: the round's admit (legacy: its read step)
  write,      // legacy only: next, the admit's write step
  heartbeat,  // next: heartbeat with the granted token
  release,    // next: release with the granted token
  done,       // every round ran
};

// Legacy, between an admit's read and its write: the admit's `now`, the
// route's local decision and the session it will write (both from the read).
struct PendingWrite {
  Ms read_now = 0;
  core::Decision planned;
  core::Session snapshot;
};

struct Client {
  std::uint8_t round = 0;
  Pc pc = Pc::admit;
  core::Token token = core::kNoToken;  // the token granted this round
  std::optional<PendingWrite> pending;  // present exactly while pc == write
};

struct State {
  Ms now = 0;  // the model's clock: how many ticks ran
  core::PoolState pool;
  std::vector<Client> clients;
};

// What one transition did, for the checks and the counterexample.
struct StepInfo {
  CheckAction action = CheckAction::tick;
  bool gate_step = false;  // the pool went through a gate step (checked)
  core::Op op;
  core::Decision decision;
  core::PoolState before;  // the pool before the gate step
};

// ---------------------------------------------------------------------------
// Describing things in messages (the simulator's checkers use the same words).




// ---------------------------------------------------------------------------
// The rules checked on each gate step (SPEC P, G14).

bool is_gone(const core::Session& session, Ms now, const core::GateConfig& config) {
  return core::age_of(session, now, config) == Age::gone;
}

// Live and idle sessions hold a slot; gone ones hold nothing (SPEC G).
std::int64_t slots_held(const core::PoolState& pool, Ms now, const core::GateConfig& config) {
  return static_cast<std::int64_t>(std::count_if(pool.sessions.begin(), pool.sessions.end(),
                                                 [&](const core::Session& s) { return !is_gone(s, now, config); }));
}

// The client's session as G3-G8 see it: after G2, so a gone one is no session.
const core::Session* held_session(const core::PoolState& pool, std::string_view client, Ms now,
                                  const core::GateConfig& config) {
  const core::Session* session = core::find_session(pool, client);
  if (session == nullptr || is_gone(*session, now, config)) return nullptr;
  return session;
}

// G7's order: smallest last_seen, then smallest admitted_at, then smallest client id.
bool older_than(const core::Session& a, const core::Session& b) {
  return std::tie(a.last_seen, a.admitted_at, a.client) < std::tie(b.last_seen, b.admitted_at, b.client);
}

const core::Session* oldest_idle(const core::PoolState& pool, Ms now, const core::GateConfig& config) {
  const core::Session* oldest = nullptr;
  for (const core::Session& session : pool.sessions) {
    if (core::age_of(session, now, config) != Age::idle) continue;
    if (oldest == nullptr || older_than(session, *oldest)) oldest = &session;
  }
  return oldest;
}

std::optional<CheckViolation> check_step(const core::PoolState& before, const core::PoolState& after,
                                         const core::Op& op, const core::Decision& decision,
                                         const core::GateConfig& config) {
  // G1: the gate's clock for a step is the later of the pool's last time and the op's.
  const Ms now = std::max(before.last_now, op.now);
  const auto fail = [](std::string_view rule, std::string message) {
    return std::optional<CheckViolation>(CheckViolation{std::string(rule), std::move(message)});
  };

  // P1 (G14): slots held never grow past max(C, slots held before).
  const std::int64_t held_before = slots_held(before, now, config);
  const std::int64_t held_after = slots_held(after, now, config);
  const std::int64_t limit = std::max(config.capacity, held_before);
  if (held_after > limit) {
    return fail("P1", fmt::format("after the {} (decision {}) at gate time {}: {} slots held, expected at most {} = "
                                  "max(capacity {}, {} held before)",
                                  describe_op(op), describe_decision(decision), now, held_after, limit,
                                  config.capacity, held_before));
  }

  // P2: at most one session per client.
  for (std::size_t i = 0; i < after.sessions.size(); ++i) {
    for (std::size_t j = i + 1; j < after.sessions.size(); ++j) {
      if (after.sessions[i].client != after.sessions[j].client) continue;
      return fail("P2", fmt::format("after the {}: client {} holds two sessions, expected at most one",
                                    describe_op(op), after.sessions[i].client));
    }
  }

  // P4: a rotation never takes a live session.
  if (decision.outcome == core::Outcome::rotated) {
    const core::Session* victim = core::find_session(before, decision.victim);
    if (victim != nullptr && core::age_of(*victim, now, config) == Age::live) {
      return fail("P4", fmt::format("the {} rotated out {}, which was live at gate time {} (ttl {}); live sessions "
                                    "are never rotated",
                                    describe_op(op), describe_session(*victim), now, config.ttl_ms));
    }
  }

  // G14: a live session survives every step but its owner's release.
  for (const core::Session& session : before.sessions) {
    if (core::age_of(session, now, config) != Age::live) continue;
    if (core::find_session(after, session.client) != nullptr) continue;
    const bool released = op.kind == core::OpKind::release && decision.outcome == core::Outcome::released &&
                          op.client == session.client;
    if (released) continue;
    return fail("G14", fmt::format("the {} (decision {}) removed {}, which was live at gate time {}; only its own "
                                   "release may",
                                   describe_op(op), describe_decision(decision), describe_session(session), now));
  }

  // P5 (G7): a rotation happens only when full, and takes the oldest idle.
  if (decision.outcome == core::Outcome::rotated) {
    if (held_before < config.capacity) {
      return fail("P5", fmt::format("the {} rotated out client {} although only {} of {} slots were held at gate "
                                    "time {} (G6 admits without a victim)",
                                    describe_op(op), decision.victim, held_before, config.capacity, now));
    }
    const core::Session* oldest = oldest_idle(before, now, config);
    if (oldest == nullptr) {
      return fail("P5", fmt::format("the {} rotated out client {} although no session was idle at gate time {}",
                                    describe_op(op), decision.victim, now));
    }
    if (oldest->client != decision.victim) {
      return fail("P5", fmt::format("the {} rotated out client {}, expected the oldest idle {} at gate time {}",
                                    describe_op(op), decision.victim, describe_session(*oldest), now));
    }
  }

  if (op.kind == core::OpKind::admit && decision.outcome == core::Outcome::blocked_capacity) {
    const core::Session* own = held_session(before, op.client, now, config);
    if (own == nullptr) {
      // P6 (G8): a newcomer is blocked only when full with no idle session.
      if (held_before < config.capacity) {
        return fail("P6", fmt::format("the {} was blocked with only {} of {} slots held at gate time {}",
                                      describe_op(op), held_before, config.capacity, now));
      }
      if (const core::Session* idle = oldest_idle(before, now, config)) {
        return fail("P6", fmt::format("the {} was blocked although {} was idle at gate time {} and could be "
                                      "rotated (G7)",
                                      describe_op(op), describe_session(*idle), now));
      }
    } else {
      // P7 (G5): an owner is never blocked.
      return fail("P7", fmt::format("the {} was blocked although the client held {} at gate time {}; an owner is "
                                    "never blocked",
                                    describe_op(op), describe_session(*own), now));
    }
  }

  // P9 (G2): no session gone at the step's now survives it.
  for (const core::Session& session : after.sessions) {
    if (!is_gone(session, now, config)) continue;
    return fail("P9", fmt::format("after the {}: {} was gone at gate time {} (ttl {} + grace {}) but was not pruned",
                                  describe_op(op), describe_session(session), now, config.ttl_ms, config.grace_ms));
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Compact byte encodings: the frontier holds states in this form.

class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  void u(std::uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<std::uint8_t>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<std::uint8_t>(value));
  }
  // Times, counts and held are never negative in the model.
  void s(std::int64_t value) {
    TS_ASSERT(value >= 0);
    u(static_cast<std::uint64_t>(value));
  }

 private:
  std::vector<std::uint8_t>& out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::uint64_t u() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      TS_ASSERT(at_ < bytes_.size());
      const std::uint8_t byte = bytes_[at_++];
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    TS_ASSERT(false);
    return value;
  }
  std::int64_t s() { return static_cast<std::int64_t>(u()); }
  bool done() const { return at_ == bytes_.size(); }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t at_ = 0;
};

// The model's strings by small index; index 0 is the empty string.
struct Names {
  std::vector<std::string> clients;   // "", c1..cK
  std::vector<std::string> episodes;  // "", e1, e2
  std::vector<std::string> requests;  // "", r1..rR

  // Every table's entry i is a letter and the digit i, so the index is read
  // off the string and confirmed against the table.
  static std::uint64_t index_of(const std::vector<std::string>& table, const std::string& value) {
    if (value.empty()) return 0;
    if (value.size() == 2) {
      const auto digit = static_cast<std::uint64_t>(value[1] - '0');
      if (digit >= 1 && digit < table.size() && table[digit] == value) return digit;
    }
    // Every string in the state comes from an op of the model.
    TS_ASSERT(false);
    return 0;
  }
  static const std::string& at(const std::vector<std::string>& table, std::uint64_t index) {
    TS_ASSERT(index < table.size());
    return table[index];
  }
};

// ---------------------------------------------------------------------------
// The visited set: fingerprints in an open-addressed table. 0 marks an empty
// slot, so a fingerprint of 0 is stored as 1.

class FingerprintSet {
 public:
  explicit FingerprintSet(std::uint64_t max_entries) : max_entries_(max_entries) { slots_.assign(1 << 12, 0); }

  enum class Insert : std::uint8_t { added, present, full };

  // Adds `fingerprint` unless it is present, or the set already holds
  // max_entries: one probe either way.
  Insert insert(std::uint64_t fingerprint) {
    if (fingerprint == 0) fingerprint = 1;
    if ((size_ + 1) * 10 > slots_.size() * 7 && size_ < max_entries_) grow();
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = fingerprint & mask;; i = (i + 1) & mask) {
      if (slots_[i] == fingerprint) return Insert::present;
      if (slots_[i] == 0) {
        if (size_ >= max_entries_) return Insert::full;
        slots_[i] = fingerprint;
        ++size_;
        return Insert::added;
      }
    }
  }
  std::uint64_t size() const { return size_; }

 private:
  static void place(std::vector<std::uint64_t>& slots, std::uint64_t fingerprint) {
    const std::size_t mask = slots.size() - 1;
    std::size_t i = fingerprint & mask;
    while (slots[i] != 0) i = (i + 1) & mask;
    slots[i] = fingerprint;
  }
  void grow() {
    // The set never holds more than max_entries, so the table stops growing
    // at the first power of two that keeps that many under 70% full.
    std::vector<std::uint64_t> bigger(slots_.size() * 2, 0);
    for (std::uint64_t fingerprint : slots_) {
      if (fingerprint != 0) place(bigger, fingerprint);
    }
    slots_ = std::move(bigger);
  }

  std::vector<std::uint64_t> slots_;
  std::uint64_t size_ = 0;
  std::uint64_t max_entries_;
};

// ---------------------------------------------------------------------------
// The explorer.

constexpr std::uint32_t kNoParent = std::numeric_limits<std::uint32_t>::max();

bool writes(const core::Decision& decision) { return core::is_granted(decision.outcome); }

void prune(core::PoolState& pool, const core::GateConfig& config) {
  std::erase_if(pool.sessions, [&](const core::Session& s) { return is_gone(s, pool.last_now, config); });
}

class Explorer {
 public:
  Explorer(const CheckConfig& config, const CheckHooks& hooks)
      : config_(config), hooks_(hooks), gate_config_{config.capacity, config.ttl_ms, config.grace_ms} {
    if (!hooks_.gate) hooks_.gate = core::apply;
    if (hooks_.progress_every == 0) hooks_.progress_every = 1;
    names_.clients.emplace_back();
    for (int i = 0; i < config_.clients; ++i) names_.clients.push_back(check_client_name(i));
    names_.episodes = {"", check_episode_name(0), check_episode_name(1)};
    names_.requests.emplace_back();
    for (int r = 0; r < config_.rounds; ++r) names_.requests.push_back(check_request_name(r));
  }

  CheckResult run();
  CheckPathResult run_path(const std::vector<int>& labels) const;

 private:
  int clients() const { return config_.clients; }
  int tick_label() const { return config_.clients; }

  State initial() const {
    State state;
    state.clients.assign(static_cast<std::size_t>(clients()), Client{});
    return state;
  }

  core::Op admit_op(int client, int round, Ms now) const {
    core::Op op;
    op.kind = core::OpKind::admit;
    op.client = names_.clients[static_cast<std::size_t>(client) + 1];
    op.episode = names_.episodes[static_cast<std::size_t>(round % 2) + 1];
    op.request = names_.requests[static_cast<std::size_t>(round) + 1];
    op.issued_at = now;
    op.now = now;
    return op;
  }

  core::Op token_op(core::OpKind kind, int client, core::Token token, Ms now) const {
    core::Op op;
    op.kind = kind;
    op.client = names_.clients[static_cast<std::size_t>(client) + 1];
    op.token = token;
    op.now = now;
    return op;
  }

  void next_round(Client& client) const {
    const std::uint8_t round = static_cast<std::uint8_t>(client.round + 1);
    client = Client{};
    client.round = round;
    client.pc = round < config_.rounds ? Pc::admit : Pc::done;
  }

  // Whether `label` (a client index, or tick_label()) can move in `state`.
  bool enabled(const State& state, int label) const {
    if (label == tick_label()) return state.now < config_.max_ticks;
    return state.clients[static_cast<std::size_t>(label)].pc != Pc::done;
  }
  bool step(State& state, int label, StepInfo& info) const;
  void step_admit(State& state, int index, StepInfo& info) const;
  void step_write(State& state, int index, StepInfo& info) const;

  using SessionsByClient = std::array<const core::Session*, kMaxCheckClients>;
  SessionsByClient sessions_by_client(const State& state) const;
  std::uint64_t fingerprint(const State& state) const;
  std::array<int, kMaxCheckClients> canonical_order(const State& state, const SessionsByClient& sessions) const;

  void encode(const State& state, std::vector<std::uint8_t>& out) const;
  State decode(Reader& reader) const;
  void encode_session(Writer& w, const core::Session& session) const;
  core::Session decode_session(Reader& r) const;
  void encode_decision(Writer& w, const core::Decision& decision) const;
  core::Decision decode_decision(Reader& r) const;

  std::vector<CheckStep> replay(const std::vector<std::uint8_t>& labels, CheckViolation& violation) const;

  CheckConfig config_;
  CheckHooks hooks_;
  core::GateConfig gate_config_;
  Names names_;
};

bool Explorer::step(State& state, int label, StepInfo& info) const {
  info.gate_step = false;
  if (label == tick_label()) {
    if (state.now >= config_.max_ticks) return false;
    ++state.now;
    info.action = CheckAction::tick;
    return true;
  }
  Client& client = state.clients[static_cast<std::size_t>(label)];
  switch (client.pc) {
    case Pc::done:
      return false;
    case Pc::admit:
      step_admit(state, label, info);
      return true;
    case Pc::write:
      step_write(state, label, info);
      return true;
    case Pc::heartbeat:
    case Pc::release: {
      const bool heartbeat = client.pc == Pc::heartbeat;
      info.action = heartbeat ? CheckAction::heartbeat : CheckAction::release;
      info.op = token_op(heartbeat ? core::OpKind::heartbeat : core::OpKind::release, label, client.token, state.now);
      info.before = state.pool;
      info.decision = hooks_.gate(state.pool, info.op, gate_config_);
      info.gate_step = true;
      if (heartbeat) {
        client.pc = Pc::release;
      } else {
        next_round(client);
      }
      return true;
    }
  }
  return false;
}

void Explorer::step_admit(State& state, int index, StepInfo& info) const {
  Client& client = state.clients[static_cast<std::size_t>(index)];
  info.op = admit_op(index, client.round, state.now);
  // The model never sends a request id twice, so G3 never answers and the
  // stored last_decision is never read: the fingerprint may leave it out.
  const core::Session* own = core::find_session(state.pool, info.op.client);
  TS_ASSERT(own == nullptr || own->last_request != info.op.request);

  if (config_.gate == GateMode::atomic) {
    info.action = CheckAction::admit;
    info.before = state.pool;
    info.decision = hooks_.gate(state.pool, info.op, gate_config_);
    info.gate_step = true;
    if (core::is_granted(info.decision.outcome)) {
      client.token = info.decision.token;
      client.pc = Pc::heartbeat;
    } else {
      next_round(client);
    }
    return;
  }

  // Legacy read step (as FakeStore::legacy_admit): the route's local decision
  // is the gate run on a copy of the pool.
  info.action = CheckAction::admit_read;
  core::PoolState view = state.pool;
  info.decision = hooks_.gate(view, info.op, gate_config_);
  if (!writes(info.decision)) {
    // Nothing to write: the read was the whole operation, and it changed only
    // what G1-G2 change, in this one step.
    info.before = std::move(state.pool);
    state.pool = std::move(view);
    info.gate_step = true;
    next_round(client);
    return;
  }
  const core::Session* read = core::find_session(view, info.op.client);
  TS_ASSERT(read != nullptr);
  client.pending = PendingWrite{state.now, info.decision, *read};
  client.pc = Pc::write;
}

void Explorer::step_write(State& state, int index, StepInfo& info) const {
  Client& client = state.clients[static_cast<std::size_t>(index)];
  // The write of the same admit: its op, with the read's `now`.
  info.action = CheckAction::admit_write;
  TS_ASSERT(client.pending.has_value());
  const PendingWrite& pending = *client.pending;
  info.op = admit_op(index, client.round, pending.read_now);
  info.before = state.pool;
  info.gate_step = true;

  // Against the pool as it is now: G1-G2, remove the victim, put the
  // client's session, take a new token from the pool's counter as it is now.
  core::PoolState& pool = state.pool;
  core::Decision planned = pending.planned;
  core::Session session = pending.snapshot;
  pool.last_now = std::max(pool.last_now, info.op.now);
  prune(pool, gate_config_);
  if (planned.outcome == core::Outcome::rotated) {
    std::erase_if(pool.sessions, [&](const core::Session& s) { return s.client == planned.victim; });
  }
  if (core::is_new_token(planned.outcome)) {
    session.token = ++pool.last_token;
    planned.token = session.token;
  }
  session.last_seen = pool.last_now;
  auto own = std::find_if(pool.sessions.begin(), pool.sessions.end(),
                          [&](const core::Session& s) { return s.client == info.op.client; });
  if (own == pool.sessions.end()) {
    own = pool.sessions.insert(pool.sessions.end(), session);
  } else {
    *own = session;
  }
  planned.held = static_cast<std::int64_t>(pool.sessions.size());
  own->last_decision = planned;
  info.decision = planned;

  const std::uint8_t round = client.round;
  client = Client{};
  client.round = round;
  client.token = planned.token;
  client.pc = Pc::heartbeat;
}

// ---------------------------------------------------------------------------
// Canonical form and fingerprint.

// Each client's session in the pool, by client index. A client never holds
// two: a step that gives it a second one breaks P2, which ends the run there.
Explorer::SessionsByClient Explorer::sessions_by_client(const State& state) const {
  SessionsByClient sessions{};
  for (const core::Session& session : state.pool.sessions) {
    // Every session belongs to a client of the model.
    const std::uint64_t index = Names::index_of(names_.clients, session.client);
    TS_ASSERT(index >= 1);
    TS_ASSERT(sessions[index - 1] == nullptr);
    sessions[index - 1] = &session;
  }
  return sessions;
}

// The client order the fingerprint encodes in. Without symmetry, the ids'
// own order. With it, clients sorted by their state (ids and token values
// left out), constrained to keep the id order of every pair that could tie
// in G7: two sessions tie only with equal admitted_at, so a client's possible
// admitted_at values are its session's, its pending legacy write's, and
// every time from now on while it still has an admit to run. Pairs whose
// sets meet keep their order; the others may be reordered, since no G7 tie
// between them can ever be decided from this state on, and those sets only
// shrink along every path (docs/check.md).
std::array<int, kMaxCheckClients> Explorer::canonical_order(const State& state,
                                                            const SessionsByClient& sessions) const {
  std::array<int, kMaxCheckClients> order{};
  const int k = clients();
  for (int i = 0; i < k; ++i) order[static_cast<std::size_t>(i)] = i;
  if (!config_.symmetry || k < 2) return order;

  struct Info {
    std::array<std::uint64_t, 16> key;  // only [0, key_size) is read
    std::size_t key_size = 0;
    std::array<Ms, 2> points;  // only [0, point_count) is read
    std::size_t point_count = 0;
    bool open = false;  // may still admit at any time from now on
  };
  std::array<Info, kMaxCheckClients> infos;
  for (int i = 0; i < k; ++i) {
    const Client& client = state.clients[static_cast<std::size_t>(i)];
    Info& info = infos[static_cast<std::size_t>(i)];
    const auto push = [&](std::uint64_t value) {
      TS_ASSERT(info.key_size < info.key.size());
      info.key[info.key_size++] = value;
    };
    push(client.round);
    push(static_cast<std::uint64_t>(client.pc));
    push(client.token != core::kNoToken ? 1 : 0);
    if (client.pending) {
      const PendingWrite& pending = *client.pending;
      push(static_cast<std::uint64_t>(pending.read_now));
      push(static_cast<std::uint64_t>(pending.planned.outcome));
      push(Names::index_of(names_.episodes, pending.snapshot.episode));
      push(static_cast<std::uint64_t>(pending.snapshot.admitted_at));
      info.points[info.point_count++] = pending.snapshot.admitted_at;
    }
    const core::Session* session = sessions[static_cast<std::size_t>(i)];
    push(session != nullptr ? 1 : 0);
    if (session != nullptr) {
      push(Names::index_of(names_.episodes, session->episode));
      push(session->token == client.token ? 1 : 0);
      push(static_cast<std::uint64_t>(session->admitted_at));
      push(static_cast<std::uint64_t>(session->last_seen));
      push(Names::index_of(names_.requests, session->last_request));
      push(static_cast<std::uint64_t>(session->last_issued));
      info.points[info.point_count++] = session->admitted_at;
    }
    info.open = client.pc == Pc::admit || (client.pc != Pc::done && client.round + 1 < config_.rounds);
  }

  const auto may_tie = [&](const Info& a, const Info& b) {
    if (a.open && b.open) return true;
    for (std::size_t i = 0; i < a.point_count; ++i) {
      if (b.open && a.points[i] >= state.now) return true;
      for (std::size_t j = 0; j < b.point_count; ++j) {
        if (a.points[i] == b.points[j]) return true;
      }
    }
    for (std::size_t j = 0; j < b.point_count; ++j) {
      if (a.open && b.points[j] >= state.now) return true;
    }
    return false;
  };
  const auto key_less = [&](int a, int b) {
    const Info& x = infos[static_cast<std::size_t>(a)];
    const Info& y = infos[static_cast<std::size_t>(b)];
    return std::lexicographical_compare(x.key.begin(), x.key.begin() + static_cast<std::ptrdiff_t>(x.key_size),
                                        y.key.begin(), y.key.begin() + static_cast<std::ptrdiff_t>(y.key_size));
  };

  // must_follow[c]: the smaller ids that may tie with c, as a bit set.
  std::array<unsigned, kMaxCheckClients> must_follow{};
  for (int b = 1; b < k; ++b) {
    for (int a = 0; a < b; ++a) {
      if (may_tie(infos[static_cast<std::size_t>(a)], infos[static_cast<std::size_t>(b)])) {
        must_follow[static_cast<std::size_t>(b)] |= 1u << a;
      }
    }
  }

  // A linear extension of "a before b when a < b and they may tie": at each
  // position, the smallest key among the clients whose constrained
  // predecessors are all placed (ties: the smaller id).
  unsigned placed = 0;
  for (int position = 0; position < k; ++position) {
    int best = -1;
    for (int candidate = 0; candidate < k; ++candidate) {
      if ((placed & (1u << candidate)) != 0) continue;
      if ((must_follow[static_cast<std::size_t>(candidate)] & ~placed) != 0) continue;
      if (best < 0 || key_less(candidate, best)) best = candidate;
    }
    TS_ASSERT(best >= 0);
    placed |= 1u << best;
    order[static_cast<std::size_t>(position)] = best;
  }
  return order;
}

// Folds a canonical encoding into 64 bits: values as bytes (255 escapes a
// larger one), eight bytes to a word, each word through core::mix64.
class Hasher {
 public:
  void put(std::uint64_t value) {
    if (value < 255) {
      byte(static_cast<std::uint8_t>(value));
      return;
    }
    byte(255);
    for (int i = 0; i < 8; ++i) byte(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  void put_time(Ms value) { put(static_cast<std::uint64_t>(value)); }
  std::uint64_t finish() {
    if (fill_ > 0) flush();
    return core::mix64(hash_ ^ bytes_);
  }

 private:
  void byte(std::uint8_t value) {
    word_ |= static_cast<std::uint64_t>(value) << (8 * fill_);
    ++bytes_;
    if (++fill_ == 8) flush();
  }
  void flush() {
    hash_ = core::mix64((hash_ ^ word_) + 0x9e3779b97f4a7c15ULL);
    word_ = 0;
    fill_ = 0;
  }

  std::uint64_t hash_ = 0x243f6a8885a308d3ULL;
  std::uint64_t word_ = 0;
  int fill_ = 0;
  std::uint64_t bytes_ = 0;
};

std::uint64_t Explorer::fingerprint(const State& state) const {
  const SessionsByClient sessions = sessions_by_client(state);
  const std::array<int, kMaxCheckClients> order = canonical_order(state, sessions);
  const int k = clients();
  std::array<std::uint64_t, kMaxCheckClients + 1> rank{};  // by client table index (0: no client)
  for (int position = 0; position < k; ++position) {
    rank[static_cast<std::size_t>(order[static_cast<std::size_t>(position)]) + 1] =
        static_cast<std::uint64_t>(position) + 1;
  }

  // Tokens renumbered by first appearance in the canonical encoding.
  std::array<core::Token, 64> tokens;  // only [0, token_count) is read
  std::size_t token_count = 0;
  const auto token = [&](core::Token value) -> std::uint64_t {
    if (value == core::kNoToken) return 0;
    for (std::size_t i = 0; i < token_count; ++i) {
      if (tokens[i] == value) return i + 1;
    }
    TS_ASSERT(token_count < tokens.size());
    tokens[token_count++] = value;
    return token_count;
  };

  Hasher h;
  h.put_time(state.now);
  // The pool's last_now is read only through G1's max(last_now, op.now). Every
  // op carries the model's clock, which is never behind last_now, except a
  // legacy write, which carries its read's: only then does last_now matter.
  const bool pending_write = std::any_of(state.clients.begin(), state.clients.end(),
                                         [](const Client& client) { return client.pending.has_value(); });
  h.put_time(pending_write ? state.pool.last_now : 0);
  for (int position = 0; position < k; ++position) {
    const int index = order[static_cast<std::size_t>(position)];
    const Client& client = state.clients[static_cast<std::size_t>(index)];
    h.put(client.round);
    h.put(static_cast<std::uint64_t>(client.pc));
    h.put(token(client.token));
    h.put(client.pending ? 1 : 0);
    if (client.pending) {
      // The write overwrites a new token, the held count, last_seen and
      // last_decision, so those parts of the plan are left out.
      const PendingWrite& pending = *client.pending;
      const bool new_token = core::is_new_token(pending.planned.outcome);
      h.put_time(pending.read_now);
      h.put(static_cast<std::uint64_t>(pending.planned.outcome));
      h.put(new_token ? 0 : token(pending.planned.token));
      h.put(rank[Names::index_of(names_.clients, pending.planned.victim)]);
      h.put(Names::index_of(names_.episodes, pending.snapshot.episode));
      h.put(new_token ? 0 : token(pending.snapshot.token));
      h.put_time(pending.snapshot.admitted_at);
      h.put(Names::index_of(names_.requests, pending.snapshot.last_request));
      h.put_time(pending.snapshot.last_issued);
    }
    const core::Session* session = sessions[static_cast<std::size_t>(index)];
    h.put(session != nullptr ? 1 : 0);
    if (session != nullptr) {
      h.put(Names::index_of(names_.episodes, session->episode));
      h.put(token(session->token));
      h.put_time(session->admitted_at);
      h.put_time(session->last_seen);
      h.put(Names::index_of(names_.requests, session->last_request));
      h.put_time(session->last_issued);
    }
  }
  return h.finish();
}

// ---------------------------------------------------------------------------
// Storage encoding: exact, so a decoded state is the state that was encoded.

void Explorer::encode_decision(Writer& w, const core::Decision& decision) const {
  w.u(static_cast<std::uint64_t>(decision.outcome));
  w.u(decision.token);
  w.u(decision.victim.empty() ? 0 : Names::index_of(names_.clients, decision.victim));
  w.s(decision.held);
}

core::Decision Explorer::decode_decision(Reader& r) const {
  core::Decision decision;
  decision.outcome = static_cast<core::Outcome>(r.u());
  decision.token = r.u();
  decision.victim = Names::at(names_.clients, r.u());
  decision.held = r.s();
  return decision;
}

void Explorer::encode_session(Writer& w, const core::Session& session) const {
  w.u(Names::index_of(names_.clients, session.client));
  w.u(Names::index_of(names_.episodes, session.episode));
  w.u(session.token);
  w.s(session.admitted_at);
  w.s(session.last_seen);
  w.u(Names::index_of(names_.requests, session.last_request));
  w.s(session.last_issued);
  encode_decision(w, session.last_decision);
}

core::Session Explorer::decode_session(Reader& r) const {
  core::Session session;
  session.client = Names::at(names_.clients, r.u());
  session.episode = Names::at(names_.episodes, r.u());
  session.token = r.u();
  session.admitted_at = r.s();
  session.last_seen = r.s();
  session.last_request = Names::at(names_.requests, r.u());
  session.last_issued = r.s();
  session.last_decision = decode_decision(r);
  return session;
}

void Explorer::encode(const State& state, std::vector<std::uint8_t>& out) const {
  Writer w(out);
  w.s(state.now);
  w.s(state.pool.last_now);
  w.u(state.pool.last_token);
  w.u(state.pool.sessions.size());
  for (const core::Session& session : state.pool.sessions) encode_session(w, session);
  for (const Client& client : state.clients) {
    w.u(client.round);
    w.u(static_cast<std::uint64_t>(client.pc));
    w.u(client.token);
    w.u(client.pending ? 1 : 0);
    if (client.pending) {
      w.s(client.pending->read_now);
      encode_decision(w, client.pending->planned);
      encode_session(w, client.pending->snapshot);
    }
  }
}

State Explorer::decode(Reader& r) const {
  State state;
  state.now = r.s();
  state.pool.last_now = r.s();
  state.pool.last_token = r.u();
  const std::uint64_t sessions = r.u();
  TS_ASSERT(sessions <= 2 * kMaxCheckClients);
  for (std::uint64_t i = 0; i < sessions; ++i) state.pool.sessions.push_back(decode_session(r));
  state.clients.resize(static_cast<std::size_t>(clients()));
  for (Client& client : state.clients) {
    client.round = static_cast<std::uint8_t>(r.u());
    client.pc = static_cast<Pc>(r.u());
    client.token = r.u();
    if (r.u() == 1) {
      PendingWrite pending;
      pending.read_now = r.s();
      pending.planned = decode_decision(r);
      pending.snapshot = decode_session(r);
      client.pending = std::move(pending);
    }
  }
  return state;
}

// ---------------------------------------------------------------------------
// The search.

std::vector<CheckStep> Explorer::replay(const std::vector<std::uint8_t>& labels, CheckViolation& violation) const {
  std::vector<CheckStep> steps;
  State state = initial();
  std::optional<CheckViolation> found;
  for (std::uint8_t label : labels) {
    TS_ASSERT(!found);
    StepInfo info;
    const bool moved = step(state, label, info);
    TS_ASSERT(moved);
    CheckStep out;
    out.client = label == tick_label() ? -1 : label;
    out.action = info.action;
    out.now = state.now;
    if (info.action != CheckAction::tick) {
      out.op = info.op;
      out.decision = info.decision;
    }
    out.wrote = info.gate_step;
    out.pool = state.pool;
    steps.push_back(std::move(out));
    if (info.gate_step) found = check_step(info.before, state.pool, info.op, info.decision, gate_config_);
  }
  // The path reproduces the violation at its last step, and not before.
  TS_ASSERT(found.has_value());
  violation = *found;
  return steps;
}

CheckPathResult Explorer::run_path(const std::vector<int>& labels) const {
  CheckPathResult result;
  State state = initial();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int label = labels[i] < 0 ? tick_label() : labels[i];
    if (labels[i] >= clients() || !enabled(state, label)) {
      result.impossible = i;
      break;
    }
    StepInfo info;
    const bool moved = step(state, label, info);
    TS_ASSERT(moved);
    CheckStep out;
    out.client = label == tick_label() ? -1 : label;
    out.action = info.action;
    out.now = state.now;
    if (info.action != CheckAction::tick) {
      out.op = info.op;
      out.decision = info.decision;
    }
    out.wrote = info.gate_step;
    out.pool = state.pool;
    result.steps.push_back(std::move(out));
    if (info.gate_step) {
      result.violation = check_step(info.before, state.pool, info.op, info.decision, gate_config_);
      if (result.violation) break;
    }
  }
  return result;
}

CheckResult Explorer::run() {
  CheckResult result;
  FingerprintSet visited(config_.max_states);
  std::vector<std::uint32_t> parents;  // by node index
  std::vector<std::uint8_t> labels;    // the label that reached the node

  std::vector<std::uint8_t> frontier;
  std::vector<std::uint8_t> next;
  const auto push = [&](std::vector<std::uint8_t>& buffer, std::uint32_t node, const State& state) {
    Writer w(buffer);
    w.u(node);
    encode(state, buffer);
  };

  const State root = initial();
  const FingerprintSet::Insert first = visited.insert(fingerprint(root));
  TS_ASSERT(first == FingerprintSet::Insert::added);
  parents.push_back(kNoParent);
  labels.push_back(0);
  push(frontier, 0, root);

  const auto progress = [&](std::uint32_t depth) {
    if (!hooks_.progress) return;
    hooks_.progress(CheckProgress{visited.size(), result.transitions, depth, static_cast<std::uint64_t>(next.size())});
  };
  const auto finish = [&](CheckVerdict verdict) {
    result.verdict = verdict;
    result.states = visited.size();
    result.collision_probability = collision_bound(result.states);
    progress(result.depth);
    return result;
  };

  std::uint32_t depth = 0;
  while (!frontier.empty()) {
    // The graph is acyclic and every transition advances a client or the
    // clock, so the depth is bounded by the programs' length plus the ticks.
    TS_ASSERT(depth <= static_cast<std::uint32_t>(config_.clients * config_.rounds * 4 + config_.max_ticks));
    result.depth = depth;
    Reader reader(frontier);
    while (!reader.done()) {
      const std::uint32_t node = static_cast<std::uint32_t>(reader.u());
      const State state = decode(reader);
      for (int label = 0; label <= tick_label(); ++label) {
        if (!enabled(state, label)) continue;
        State successor = state;
        StepInfo info;
        if (!step(successor, label, info)) continue;
        ++result.transitions;
        if (info.gate_step) {
          if (auto violation = check_step(info.before, successor.pool, info.op, info.decision, gate_config_)) {
            // Breadth-first: no shorter path reaches a violation.
            std::vector<std::uint8_t> path{static_cast<std::uint8_t>(label)};
            for (std::uint32_t at = node; parents[at] != kNoParent; at = parents[at]) path.push_back(labels[at]);
            std::reverse(path.begin(), path.end());
            CheckViolation replayed;
            result.trace = replay(path, replayed);
            TS_ASSERT(replayed.rule == violation->rule && replayed.message == violation->message);
            result.violation = std::move(violation);
            result.depth = depth + 1;
            return finish(CheckVerdict::violation);
          }
        }
        const FingerprintSet::Insert inserted = visited.insert(fingerprint(successor));
        if (inserted == FingerprintSet::Insert::present) continue;
        if (inserted == FingerprintSet::Insert::full) return finish(CheckVerdict::incomplete);
        const auto index = static_cast<std::uint32_t>(parents.size());
        parents.push_back(node);
        labels.push_back(static_cast<std::uint8_t>(label));
        push(next, index, successor);
        if (visited.size() % hooks_.progress_every == 0) progress(depth);
      }
    }
    frontier.swap(next);
    next.clear();
    if (!frontier.empty()) ++depth;
    progress(depth);
  }
  return finish(CheckVerdict::verified);
}

}  // namespace

int default_max_ticks(core::Ms ttl_ms, core::Ms grace_ms) {
  const core::Ms ticks = ttl_ms + grace_ms + 1;
  return static_cast<int>(std::min<core::Ms>(ticks, kMaxCheckTicks));
}

std::optional<std::string> check_config_error(const CheckConfig& config) {
  if (config.clients < 1 || config.clients > kMaxCheckClients) {
    return fmt::format("clients: expected an integer from 1 to {}", kMaxCheckClients);
  }
  if (config.capacity < 1 || config.capacity > kMaxCheckCapacity) {
    return fmt::format("capacity: expected an integer from 1 to {}", kMaxCheckCapacity);
  }
  if (config.rounds < 1 || config.rounds > kMaxCheckRounds) {
    return fmt::format("rounds: expected an integer from 1 to {}", kMaxCheckRounds);
  }
  if (config.ttl_ms < 1 || config.ttl_ms > kMaxCheckTtlMs) {
    return fmt::format("ttl: expected an integer from 1 to {} (ticks)", kMaxCheckTtlMs);
  }
  if (config.grace_ms < 0 || config.grace_ms > kMaxCheckGraceMs) {
    return fmt::format("grace: expected an integer from 0 to {} (ticks)", kMaxCheckGraceMs);
  }
  if (config.max_ticks < 0 || config.max_ticks > kMaxCheckTicks) {
    return fmt::format("max-ticks: expected an integer from 0 to {}", kMaxCheckTicks);
  }
  if (config.max_states < 1 || config.max_states > kMaxCheckStates) {
    return fmt::format("max-states: expected an integer from 1 to {}", kMaxCheckStates);
  }
  return std::nullopt;
}

std::string_view verdict_name(CheckVerdict verdict) {
  switch (verdict) {
    case CheckVerdict::verified: return "verified";
    case CheckVerdict::violation: return "violation";
    case CheckVerdict::incomplete: return "incomplete";
  }
  return "verified";
}

std::string_view action_name(CheckAction action) {
  switch (action) {
    case CheckAction::tick: return "tick";
    case CheckAction::admit: return "admit";
    case CheckAction::admit_read: return "admit_read";
    case CheckAction::admit_write: return "admit_write";
    case CheckAction::heartbeat: return "heartbeat";
    case CheckAction::release: return "release";
  }
  return "tick";
}

std::string check_client_name(int index) { return fmt::format("c{}", index + 1); }
std::string check_request_name(int round) { return fmt::format("r{}", round + 1); }
std::string check_episode_name(int round) { return fmt::format("e{}", round % 2 + 1); }

double collision_bound(std::uint64_t states) {
  const double n = static_cast<double>(states);
  return n * n / 36893488147419103232.0;  // 2^65
}

CheckPathResult run_check_path(const CheckConfig& config, const std::vector<int>& labels, const CheckHooks& hooks) {
  TS_ASSERT(!check_config_error(config));
  return Explorer(config, hooks).run_path(labels);
}

CheckResult run_check(const CheckConfig& config, const CheckHooks& hooks) {
  TS_ASSERT(!check_config_error(config));
  Explorer explorer(config, hooks);
  return explorer.run();
}

}  // namespace turnstile::sim
