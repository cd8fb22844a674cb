#pragma once

// Deliberately broken implementations of the gate and the route, shared by
// the properties (props/sim_rules_prop.cc shows each property catching its
// variant), the trace corpus (traces/<variant>.trace.jsonl, replayed by
// tests/replay_corpus_test.cc) and the checker tests. Each is injected
// through sim::WorldHooks (a gate function, or a Server wrapping the real
// route), never through a switch in core/. A trace names its variant in its
// header; `turnstile replay` knows none of these, the tests pass them in
// through cli::Variants.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "cli/sim_commands.h"
#include "core/gate.h"
#include "core/response.h"
#include "core/route.h"
#include "sim/world.h"

namespace turnstile::broken {

// ---------------------------------------------------------------------------
// Route wrappers.

// A Server that forwards every input to the real route; subclasses rewrite
// the effects of each input, or answer a call themselves.
class ForwardingServer : public sim::Server {
 public:
  explicit ForwardingServer(const core::RouteConfig& config) : inner_(sim::make_core_server(config)) {}

  void on_request(core::Ms now, core::WaiterId waiter, const core::StreamRequest& request, core::Rng& rng) override {
    inner_->on_request(now, waiter, request, rng);
    collect(now, &rng);
  }
  void on_leave(core::Ms now, core::WaiterId waiter) override {
    inner_->on_leave(now, waiter);
    collect(now, rng_);
  }
  void on_store_reply(core::Ms now, core::FlightId flight, std::uint32_t call, const core::StoreReply& reply,
                      core::Rng& rng) override {
    inner_->on_store_reply(now, flight, call, reply, rng);
    collect(now, &rng);
  }
  void on_broker_reply(core::Ms now, core::FlightId flight, std::uint32_t call, const core::BrokerReply& reply,
                       core::Rng& rng) override {
    inner_->on_broker_reply(now, flight, call, reply, rng);
    collect(now, &rng);
  }
  void on_timer(core::Ms now, core::Rng& rng) override {
    inner_->on_timer(now, rng);
    collect(now, &rng);
  }
  std::optional<core::RouteEffect> poll() override {
    if (out_.empty()) return std::nullopt;
    core::RouteEffect effect = std::move(out_.front());
    out_.pop_front();
    return effect;
  }
  std::optional<core::Ms> next_deadline() const override { return inner_->next_deadline(); }
  std::size_t flight_count() const override { return inner_->flight_count(); }
  bool has_flight(core::FlightId flight) const override { return inner_->has_flight(flight); }

 protected:
  // The effects of one input, as the real route gave them; returns what goes out.
  virtual std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) { return effects; }
  sim::Server& inner() { return *inner_; }
  const sim::Server& inner() const { return *inner_; }
  // The input being rewritten: its time and the instance's jitter source.
  core::Ms now() const { return now_; }
  core::Rng& rng() { return *rng_; }

 private:
  void collect(core::Ms now, core::Rng* rng) {
    now_ = now;
    rng_ = rng;
    std::vector<core::RouteEffect> effects;
    while (std::optional<core::RouteEffect> effect = inner_->poll()) effects.push_back(std::move(*effect));
    for (core::RouteEffect& effect : rewrite(std::move(effects))) out_.push_back(std::move(effect));
  }

  std::unique_ptr<sim::Server> inner_;
  std::deque<core::RouteEffect> out_;
  core::Ms now_ = 0;
  // The instance's source, which outlives this server (the world keeps it
  // beside it); on_leave has none of its own and uses the last one seen.
  core::Rng* rng_ = nullptr;
};

// P16: answers every waiter twice.
class AnswersTwice final : public ForwardingServer {
 public:
  using ForwardingServer::ForwardingServer;

 protected:
  std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) override {
    std::vector<core::RouteEffect> out;
    for (core::RouteEffect& effect : effects) {
      if (std::holds_alternative<core::RouteRespond>(effect)) out.push_back(effect);
      out.push_back(std::move(effect));
    }
    return out;
  }
};

// P11 (R4): a route that retries a broker call after a 404. The fake broker's
// permanent answers (501, an unreadable body) stand for the 404: the wrapper
// hands the route a transient outcome instead, while the history records
// what the broker said.
class RetriesOn404 final : public ForwardingServer {
 public:
  using ForwardingServer::ForwardingServer;

  void on_broker_reply(core::Ms now, core::FlightId flight, std::uint32_t call, const core::BrokerReply& reply,
                       core::Rng& rng) override {
    core::BrokerReply seen = reply;
    if (seen.result.outcome_class == core::OutcomeClass::permanent) {
      seen.result.outcome_class = core::OutcomeClass::transient;
    }
    ForwardingServer::on_broker_reply(now, flight, call, seen, rng);
  }
};

// A coalescer that leaks some flights: the real route ends them, but their
// key stays in the table for ever, and a later request for that key joins
// the leaked flight (C1) and is never answered. Which flights leak is the
// subclass's choice, made when the flight ends, from what it answered.
class LeakingServer : public ForwardingServer {
 public:
  using ForwardingServer::ForwardingServer;

  void on_request(core::Ms now, core::WaiterId waiter, const core::StreamRequest& request, core::Rng& rng) override {
    core::FlightKey key{request.pool, request.client, request.episode};
    if (leaked_keys_.contains(key)) {
      stuck_.insert(waiter);
      return;
    }
    arriving_ = std::move(key);
    ForwardingServer::on_request(now, waiter, request, rng);
    arriving_.reset();
  }
  void on_leave(core::Ms now, core::WaiterId waiter) override {
    if (stuck_.erase(waiter) > 0) return;
    ForwardingServer::on_leave(now, waiter);
  }
  std::size_t flight_count() const override { return inner().flight_count() + leaked_.size(); }
  bool has_flight(core::FlightId flight) const override {
    return inner().has_flight(flight) || leaked_.contains(flight);
  }

 protected:
  // Whether a flight that ended in an input leaks: `answers` are the
  // responses of that input (its waiters', if it had any left).
  virtual bool leaks(const std::vector<const core::Response*>& answers) const = 0;

  std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) override {
    std::vector<const core::Response*> answers;
    for (const core::RouteEffect& effect : effects) {
      if (const auto* call = std::get_if<core::RouteStoreCall>(&effect)) {
        // A flight's first call comes in the input of its leader's request.
        if (arriving_ && !keys_.contains(call->flight)) keys_.emplace(call->flight, *arriving_);
      }
      if (const auto* answer = std::get_if<core::RouteRespond>(&effect)) answers.push_back(&answer->response);
    }
    // The flights the real route ended in this input.
    for (auto it = keys_.begin(); it != keys_.end();) {
      if (inner().has_flight(it->first)) {
        ++it;
        continue;
      }
      if (leaks(answers)) {
        leaked_.insert(it->first);
        leaked_keys_.insert(it->second);
      }
      it = keys_.erase(it);
    }
    return effects;
  }

 private:
  std::optional<core::FlightKey> arriving_;
  std::map<core::FlightId, core::FlightKey> keys_;  // running, as the real route has them
  std::set<core::FlightId> leaked_;
  std::set<core::FlightKey> leaked_keys_;
  std::set<core::WaiterId> stuck_;  // joined a leaked flight
};

// P12 (C3): leaks the key of a flight whose resolve failed (the broker
// failed). Its waiters are answered, but the flight does not end with its
// answers, which C3 asks for in the same step.
class LeaksKeyOnBrokerFailure final : public LeakingServer {
 public:
  using LeakingServer::LeakingServer;

 protected:
  bool leaks(const std::vector<const core::Response*>& answers) const override {
    return std::any_of(answers.begin(), answers.end(), [](const core::Response* r) {
      return r->denied && r->reason == core::DenialReason::resolve_failed;
    });
  }
};

// P13 (C4, C6): leaks a flight that ends with no waiter left to answer (a
// burst member that went away), as a table that removes a key only when it
// answers someone would.
class LeaksFlightsWithoutWaiters final : public LeakingServer {
 public:
  using LeakingServer::LeakingServer;

 protected:
  bool leaks(const std::vector<const core::Response*>& answers) const override { return answers.empty(); }
};

// P15 (F5): a flow that keeps its slot after a failed resolve. The release
// the real flow sends is dropped, and the flow is told it succeeded, so the
// newly admitted session holds its slot until G2 prunes it.
class KeepsSlotAfterFailedResolve final : public ForwardingServer {
 public:
  using ForwardingServer::ForwardingServer;

 protected:
  std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) override {
    std::vector<core::RouteEffect> out;
    // Each dropped release is answered at once, which may emit more effects
    // (the answer); a flow has one release, so this ends.
    std::deque<core::RouteEffect> pending(std::make_move_iterator(effects.begin()),
                                          std::make_move_iterator(effects.end()));
    while (!pending.empty()) {
      core::RouteEffect effect = std::move(pending.front());
      pending.pop_front();
      const auto* call = std::get_if<core::RouteStoreCall>(&effect);
      if (call == nullptr || call->call.op.kind != core::OpKind::release) {
        out.push_back(std::move(effect));
        continue;
      }
      core::StoreReply released;
      released.decision = core::Decision{core::Outcome::released, core::kNoToken, {}, 0};
      inner().on_store_reply(now(), call->flight, call->call.call, released, rng());
      while (std::optional<core::RouteEffect> more = inner().poll()) pending.push_back(std::move(*more));
    }
    return out;
  }
};

// P12 (C2): gives the second and later waiters a flight answers in one step
// an answer of their own (one stream more, or another denial).
class SplitsAnswers final : public ForwardingServer {
 public:
  using ForwardingServer::ForwardingServer;

 protected:
  std::vector<core::RouteEffect> rewrite(std::vector<core::RouteEffect> effects) override {
    bool first = true;
    for (core::RouteEffect& effect : effects) {
      auto* answer = std::get_if<core::RouteRespond>(&effect);
      if (answer == nullptr) continue;
      if (first) {
        first = false;
        continue;
      }
      core::Response& response = answer->response;
      if (response.denied) {
        response.reason =
            response.reason == core::DenialReason::busy ? core::DenialReason::capacity : core::DenialReason::busy;
      } else {
        response.streams.push_back(core::Stream{"extra", "http://stream.local/extra"});
      }
    }
    return effects;
  }
};

// P11 (R1, R6): a retry that ignores the budget. The route believes every
// budget is three times what the scenario says, so it retries when too
// little of the real budget is left and lets attempts run past it.
inline std::unique_ptr<sim::Server> retry_ignoring_budget(const core::RouteConfig& config) {
  core::RouteConfig loose = config;
  loose.flow.store.budget_ms *= 3;
  loose.flow.broker.budget_ms *= 3;
  return sim::make_core_server(loose);
}

// ---------------------------------------------------------------------------
// Gate functions: core::apply with one rule of SPEC G taken out.

using GateFn = std::function<core::Decision(core::PoolState&, const core::Op&, const core::GateConfig&)>;

namespace detail {

inline core::Ms gate_now(const core::PoolState& pool, const core::Op& op) { return std::max(pool.last_now, op.now); }

// G1 and G2 alone, as a step that changes nothing else leaves the pool.
inline void clock_and_prune(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  pool.last_now = gate_now(pool, op);
  std::erase_if(pool.sessions,
                [&](const core::Session& s) { return core::age_of(s, pool.last_now, config) == core::Age::gone; });
}

// Whether the admit is a G3 replay of the client's last request.
inline bool is_replay(const core::PoolState& pool, const core::Op& op) {
  const core::Session* own = core::find_session(pool, op.client);
  return op.kind == core::OpKind::admit && own != nullptr && own->last_request == op.request;
}

inline core::Decision blocked(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  clock_and_prune(pool, op, config);
  return core::Decision{
      core::Outcome::blocked_capacity, core::kNoToken, {}, static_cast<std::int64_t>(pool.sessions.size())};
}

}  // namespace detail

// P5 (G7): rotates the newest idle session instead of the oldest.
inline core::Decision rotate_newest_idle(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::PoolState trial = pool;
  core::Decision decision = core::apply(trial, op, config);
  if (decision.outcome != core::Outcome::rotated || detail::is_replay(pool, op)) {
    pool = std::move(trial);
    return decision;
  }
  const core::Ms now = detail::gate_now(pool, op);
  const core::Session* newest = nullptr;
  for (const core::Session& s : pool.sessions) {
    if (core::age_of(s, now, config) != core::Age::idle) continue;
    if (newest == nullptr || std::tie(s.last_seen, s.admitted_at, s.client) >
                                 std::tie(newest->last_seen, newest->admitted_at, newest->client)) {
      newest = &s;
    }
  }
  if (newest == nullptr || newest->client == decision.victim) {
    pool = std::move(trial);
    return decision;
  }
  // The oldest idle session comes back; the newest goes in its place.
  const core::Session* oldest = core::find_session(pool, decision.victim);
  core::Session kept = *oldest;
  const std::string victim = newest->client;
  std::erase_if(trial.sessions, [&](const core::Session& s) { return s.client == victim; });
  trial.sessions.push_back(std::move(kept));
  decision.victim = victim;
  for (core::Session& s : trial.sessions) {
    if (s.client == op.client) s.last_decision = decision;
  }
  pool = std::move(trial);
  return decision;
}

// P8 (G3): ignores request ids, so a retried admit (after a lost reply, say)
// is decided afresh instead of getting the recorded decision.
inline core::Decision ignore_request_ids(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  if (!detail::is_replay(pool, op)) return core::apply(pool, op, config);
  for (core::Session& s : pool.sessions) {
    // An empty last request compares below any request id, so G4 lets the
    // same intent through again, as a gate without G3 would.
    if (s.client == op.client) s.last_request.clear();
  }
  return core::apply(pool, op, config);
}

// P17 (G4): applies an intent older than the one the session holds, so a
// late retry flips the client back to an old episode.
inline core::Decision without_g4(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  if (op.kind != core::OpKind::admit || detail::is_replay(pool, op)) return core::apply(pool, op, config);
  for (core::Session& s : pool.sessions) {
    if (s.client != op.client) continue;
    if (std::tie(op.issued_at, op.request) < std::tie(s.last_issued, s.last_request)) {
      s.last_issued = op.issued_at;
      s.last_request.clear();
    }
  }
  return core::apply(pool, op, config);
}

// P2: a switch that keeps the old session beside the new one while a slot
// is free.
inline core::Decision second_session(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  const core::Session* own = core::find_session(pool, op.client);
  const std::optional<core::Session> before = own != nullptr ? std::optional(*own) : std::nullopt;
  core::Decision decision = core::apply(pool, op, config);
  if (decision.outcome == core::Outcome::switched && before &&
      static_cast<std::int64_t>(pool.sessions.size()) < config.capacity) {
    pool.sessions.push_back(*before);
  }
  return decision;
}

// P4: when the pool is full of live sessions, rotates the oldest one out.
inline core::Decision rotate_live(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::PoolState trial = pool;
  core::Decision decision = core::apply(trial, op, config);
  if (decision.outcome != core::Outcome::blocked_capacity || trial.sessions.empty()) {
    pool = std::move(trial);
    return decision;
  }
  auto oldest = std::min_element(trial.sessions.begin(), trial.sessions.end(),
                                 [](const core::Session& a, const core::Session& b) {
                                   return std::tie(a.last_seen, a.client) < std::tie(b.last_seen, b.client);
                                 });
  const std::string victim = oldest->client;
  trial.sessions.erase(oldest);
  decision = core::apply(trial, op, config);
  if (decision.outcome == core::Outcome::admitted) {
    decision.outcome = core::Outcome::rotated;
    decision.victim = victim;
    for (core::Session& s : trial.sessions) {
      if (s.client == op.client) s.last_decision = decision;
    }
  }
  pool = std::move(trial);
  return decision;
}

// P6 (G7, G8): never rotates: a newcomer that should rotate an idle session
// out is blocked.
inline core::Decision never_rotate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::PoolState trial = pool;
  const core::Decision decision = core::apply(trial, op, config);
  if (decision.outcome != core::Outcome::rotated || detail::is_replay(pool, op)) {
    pool = std::move(trial);
    return decision;
  }
  return detail::blocked(pool, op, config);
}

// P7 (G5): blocks an owner that asks again while every slot is held.
inline core::Decision block_owner(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::PoolState trial = pool;
  const core::Decision decision = core::apply(trial, op, config);
  const bool owner = decision.outcome == core::Outcome::resumed || decision.outcome == core::Outcome::switched;
  if (!owner || detail::is_replay(pool, op) || decision.held < config.capacity) {
    pool = std::move(trial);
    return decision;
  }
  return detail::blocked(pool, op, config);
}

// P9 (G2): never prunes: it takes sessions to be gone only after a grace
// far longer than the scenario's.
inline core::Decision no_prune(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::GateConfig lax = config;
  lax.grace_ms += 1'000'000'000;
  return core::apply(pool, op, lax);
}

// P10 (G9, G11): restarts its token counter whenever the pool is empty, so a
// token that died is issued again.
inline core::Decision token_counter_reset(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::PoolState pruned = pool;
  detail::clock_and_prune(pruned, op, config);
  if (pruned.sessions.empty()) pool.last_token = 0;
  return core::apply(pool, op, config);
}

// P3: a gate that reads a clock of its own, kept across runs: every call
// moves the store's `now` on by a millisecond more, so the same inputs give
// another history the second time.
inline GateFn gate_with_hidden_clock() {
  auto calls = std::make_shared<core::Ms>(0);
  return [calls](core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
    core::Op shifted = op;
    shifted.now = std::min(core::kMaxTimeMs, op.now + (*calls)++ % 3);
    return core::apply(pool, shifted, config);
  };
}

// ---------------------------------------------------------------------------
// The catalogue.

struct Variant {
  std::string name;  // as a trace header names it (a pool-id-like word)
  std::string rule;  // the P rule it breaks
  sim::GateMode gate = sim::GateMode::atomic;
  sim::WorldHooks hooks;
  std::string what;  // one line, for reports
};

inline sim::WorldHooks gate_hooks(GateFn gate) {
  sim::WorldHooks hooks;
  hooks.gate = std::move(gate);
  return hooks;
}

template <typename S>
sim::WorldHooks server_hooks() {
  sim::WorldHooks hooks;
  hooks.make_server = [](const core::RouteConfig& config) { return std::make_unique<S>(config); };
  return hooks;
}

// Every variant whose hooks keep no state across runs, in rule order. The
// stateful one (P3's hidden clock) is made fresh by gate_with_hidden_clock().
inline const std::vector<Variant>& variants() {
  static const std::vector<Variant> all = [] {
    std::vector<Variant> v;
    v.push_back(
        {"legacy-gate", "P1", sim::GateMode::legacy, {}, "the racy read-decide-write gate the atomic one replaced"});
    v.push_back({"second-session", "P2", sim::GateMode::atomic, gate_hooks(second_session),
                 "a switch keeps the old session beside the new one"});
    v.push_back({"rotate-live", "P4", sim::GateMode::atomic, gate_hooks(rotate_live),
                 "a full pool of live sessions rotates its oldest out"});
    v.push_back({"rotate-newest-idle", "P5", sim::GateMode::atomic, gate_hooks(rotate_newest_idle),
                 "rotation takes the newest idle session, not the oldest"});
    v.push_back({"never-rotate", "P6", sim::GateMode::atomic, gate_hooks(never_rotate),
                 "a newcomer is blocked where it should rotate an idle session out"});
    v.push_back({"block-owner", "P7", sim::GateMode::atomic, gate_hooks(block_owner),
                 "an owner asking again is blocked when every slot is held"});
    v.push_back({"ignore-request-ids", "P8", sim::GateMode::atomic, gate_hooks(ignore_request_ids),
                 "a retried request is decided afresh (no G3)"});
    v.push_back({"no-prune", "P9", sim::GateMode::atomic, gate_hooks(no_prune), "gone sessions are never pruned"});
    v.push_back({"token-counter-reset", "P10", sim::GateMode::atomic, gate_hooks(token_counter_reset),
                 "the token counter restarts when the pool empties, reissuing dead tokens"});
    v.push_back({"retry-ignores-budget", "P11", sim::GateMode::atomic, sim::WorldHooks{{}, retry_ignoring_budget},
                 "retries as if every budget were three times larger"});
    v.push_back({"retry-on-404", "P11", sim::GateMode::atomic, server_hooks<RetriesOn404>(),
                 "a permanent broker answer (the 404) is retried"});
    v.push_back({"split-answers", "P12", sim::GateMode::atomic, server_hooks<SplitsAnswers>(),
                 "waiters of one flight get different answers"});
    v.push_back({"leak-key-on-broker-failure", "P12", sim::GateMode::atomic, server_hooks<LeaksKeyOnBrokerFailure>(),
                 "a flight whose resolve failed keeps its key after answering (C3)"});
    v.push_back({"leak-flight-without-waiters", "P13", sim::GateMode::atomic,
                 server_hooks<LeaksFlightsWithoutWaiters>(), "a flight that ends with no waiter left stays (C6)"});
    v.push_back({"keep-slot-after-failed-resolve", "P15", sim::GateMode::atomic,
                 server_hooks<KeepsSlotAfterFailedResolve>(), "no release after a failed resolve (F5)"});
    v.push_back({"answers-twice", "P16", sim::GateMode::atomic, server_hooks<AnswersTwice>(),
                 "every waiter is answered twice"});
    v.push_back({"gate-without-g4", "P17", sim::GateMode::atomic, gate_hooks(without_g4),
                 "a late, older intent is applied (no G4)"});
    return v;
  }();
  return all;
}

inline const Variant* find_variant(std::string_view name) {
  for (const Variant& v : variants()) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

// What `turnstile replay` is given in the tests: every variant by name. The
// legacy gate is not among them: it is a gate mode of the core (its traces
// say variant "core", gate "legacy").
inline cli::Variants replay_variants() {
  cli::Variants map;
  for (const Variant& v : variants()) {
    if (v.hooks.gate || v.hooks.make_server) map.emplace(v.name, v.hooks);
  }
  return map;
}

}  // namespace turnstile::broken
