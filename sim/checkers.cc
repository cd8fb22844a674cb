#include "sim/checkers.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <variant>

#include "core/gate.h"
#include "core/outcome.h"
#include "core/response.h"
#include "sim/describe.h"

namespace turnstile::sim {
namespace {

using core::Age;
using core::Ms;

// A flight or a waiter is named by its instance and its id on that instance:
// each instance numbers its own.
using FlightRef = std::pair<InstanceId, core::FlightId>;
using WaiterRef = std::pair<InstanceId, core::WaiterId>;

struct InstanceKey {
  InstanceId instance = 0;
  core::FlightKey key;

  auto operator<=>(const InstanceKey&) const = default;
  bool operator==(const InstanceKey&) const = default;
};

Violation violation_at(std::string_view rule, const Event& event, std::string message) {
  return Violation{std::string(rule), event.index, event.step, event.at_ms, std::move(message)};
}

// ---------------------------------------------------------------------------
// Describing things in messages.




std::string describe_key(const core::FlightKey& key) {
  return fmt::format("{}/{}/{}", key.pool, key.client, key.episode);
}

std::string describe_response(const core::Response& response) {
  if (response.denied) return fmt::format("denial {}", core::denial_text(response.reason));
  std::string text = fmt::format("{} stream(s)", response.streams.size());
  if (!response.streams.empty()) text += fmt::format(" first {}", response.streams.front().url);
  return text;
}

std::string_view outcome_class_text(core::OutcomeClass outcome_class, bool timed_out) {
  if (timed_out) return "timed out";
  return core::outcome_class_name(outcome_class);
}

// ---------------------------------------------------------------------------
// The gate's view of a step (SPEC G), recomputed from the step's own data.

// G1: the gate's clock for a step is the later of the pool's last time and the op's.
Ms step_now(const GateStep& step) { return std::max(step.before.last_now, step.op.now); }

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

// G3: an admit of the request that made the client's session what it is. Its
// decision is the recorded one, replayed (P8 judges it), not a new rotation
// or block.
bool is_replay(const GateStep& step, Ms now) {
  if (step.op.kind != core::OpKind::admit) return false;
  const core::Session* own = held_session(step.before, step.op.client, now, step.config);
  return own != nullptr && own->last_request == step.op.request;
}

// G7's order: smallest last_seen, then smallest admitted_at, then smallest client id.
bool older_than(const core::Session& a, const core::Session& b) {
  return std::tie(a.last_seen, a.admitted_at, a.client) < std::tie(b.last_seen, b.admitted_at, b.client);
}

// The oldest idle session of `pool` at `now` (G7's victim), or null.
const core::Session* oldest_idle(const core::PoolState& pool, Ms now, const core::GateConfig& config) {
  const core::Session* oldest = nullptr;
  for (const core::Session& session : pool.sessions) {
    if (core::age_of(session, now, config) != Age::idle) continue;
    if (oldest == nullptr || older_than(session, *oldest)) oldest = &session;
  }
  return oldest;
}

// G1 and G2 applied to `pool`: what a step that changes nothing else leaves.
core::PoolState clocked_and_pruned(const core::PoolState& pool, Ms now, const core::GateConfig& config) {
  core::PoolState out = pool;
  out.last_now = now;
  std::erase_if(out.sessions, [&](const core::Session& s) { return is_gone(s, now, config); });
  return out;
}

// The first way `actual` differs from `expected`, for P8's message.
std::string describe_change(const core::PoolState& expected, const core::PoolState& actual) {
  if (expected.last_now != actual.last_now) {
    return fmt::format("last_now {} instead of {}", actual.last_now, expected.last_now);
  }
  if (expected.last_token != actual.last_token) {
    return fmt::format("last_token {} instead of {}", actual.last_token, expected.last_token);
  }
  for (const core::Session& want : expected.sessions) {
    const core::Session* got = core::find_session(actual, want.client);
    if (got == nullptr) return fmt::format("the session of client {} was removed", want.client);
    if (*got != want) {
      return fmt::format("the session of {} became {} (episode {}, request {})", describe_session(want),
                         describe_session(*got), got->episode, got->last_request);
    }
  }
  for (const core::Session& got : actual.sessions) {
    if (core::find_session(expected, got.client) == nullptr) {
      return fmt::format("a session for client {} appeared", got.client);
    }
  }
  return "the sessions were reordered";
}

// Checkers that look only at gate steps (P1, P2, P4-P10, P17).
class GateRule : public Checker {
 public:
  explicit GateRule(std::string_view rule) : rule_(rule) {}
  std::string_view rule() const override { return rule_; }

  std::optional<Violation> on_event(const Event& event) override {
    if (const auto* step = std::get_if<GateStep>(&event.body)) {
      std::optional<std::string> problem = check(event, *step);
      if (problem) return violation_at(rule_, event, *std::move(problem));
    } else if (std::holds_alternative<StoreRestarted>(event.body)) {
      on_restart();
    }
    return std::nullopt;
  }
  std::optional<Violation> at_end(const History& /*history*/, const EndState& /*end*/) override { return std::nullopt; }

 protected:
  // One line describing the breach, or nothing.
  virtual std::optional<std::string> check(const Event& event, const GateStep& step) = 0;
  // The store lost all data: every pool starts empty and tokens count from 1 again (G9).
  virtual void on_restart() {}

 private:
  std::string_view rule_;
};

// P1 (G14): slots held after a step never exceed max(C, slots held before it).
// A step that prunes gone sessions counts only what still held a slot at its
// `now`, so a gate that refills pruned slots past C is caught too.
class CapacityRule final : public GateRule {
 public:
  CapacityRule() : GateRule("P1") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    const Ms now = step_now(step);
    const std::int64_t before = slots_held(step.before, now, step.config);
    const std::int64_t after = slots_held(step.after, now, step.config);
    const std::int64_t limit = std::max(step.config.capacity, before);
    if (after <= limit) return std::nullopt;
    return fmt::format(
        "after the {} (decision {}) at gate time {}: {} slots held, expected at most {} = max(capacity {}, "
        "{} held before)",
        describe_op(step.op), describe_decision(step.decision), now, after, limit, step.config.capacity, before);
  }
};

// P2: at most one session per client.
class OneSessionRule final : public GateRule {
 public:
  OneSessionRule() : GateRule("P2") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    std::set<std::string_view> seen;
    for (const core::Session& session : step.after.sessions) {
      if (!seen.insert(session.client).second) {
        return fmt::format("after the {}: client {} holds two sessions, expected at most one", describe_op(step.op),
                           session.client);
      }
    }
    return std::nullopt;
  }
};

// P4: live sessions are never rotated, nor removed at all except by their
// own release (G14's last clause).
class LiveNeverRotatedRule final : public GateRule {
 public:
  LiveNeverRotatedRule() : GateRule("P4") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    const Ms now = step_now(step);
    if (step.decision.outcome == core::Outcome::rotated && !is_replay(step, now)) {
      const core::Session* victim = core::find_session(step.before, step.decision.victim);
      if (victim != nullptr && core::age_of(*victim, now, step.config) == Age::live) {
        return fmt::format(
            "the {} rotated out {}, which was live at gate time {} (ttl {}); live sessions are never "
            "rotated",
            describe_op(step.op), describe_session(*victim), now, step.config.ttl_ms);
      }
    }
    for (const core::Session& session : step.before.sessions) {
      if (core::age_of(session, now, step.config) != Age::live) continue;
      if (core::find_session(step.after, session.client) != nullptr) continue;
      const bool released = step.op.kind == core::OpKind::release && step.decision.outcome == core::Outcome::released &&
                            step.op.client == session.client;
      if (released) continue;
      return fmt::format("the {} (decision {}) removed {}, which was live at gate time {}; only its own release may",
                         describe_op(step.op), describe_decision(step.decision), describe_session(session), now);
    }
    return std::nullopt;
  }
};

// P5 (G7): a rotation happens only when every slot is held, and its victim is
// the oldest idle session.
class OldestIdleVictimRule final : public GateRule {
 public:
  OldestIdleVictimRule() : GateRule("P5") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    if (step.decision.outcome != core::Outcome::rotated) return std::nullopt;
    const Ms now = step_now(step);
    if (is_replay(step, now)) return std::nullopt;
    const std::int64_t held = slots_held(step.before, now, step.config);
    if (held < step.config.capacity) {
      return fmt::format(
          "the {} rotated out client {} although only {} of {} slots were held at gate time {} (G6 "
          "admits without a victim)",
          describe_op(step.op), step.decision.victim, held, step.config.capacity, now);
    }
    const core::Session* oldest = oldest_idle(step.before, now, step.config);
    if (oldest == nullptr) {
      return fmt::format("the {} rotated out client {} although no session was idle at gate time {}",
                         describe_op(step.op), step.decision.victim, now);
    }
    if (oldest->client != step.decision.victim) {
      const core::Session* victim = core::find_session(step.before, step.decision.victim);
      return fmt::format("the {} rotated out {}, expected the oldest idle {} at gate time {}", describe_op(step.op),
                         victim != nullptr ? describe_session(*victim) : fmt::format("client {}", step.decision.victim),
                         describe_session(*oldest), now);
    }
    return std::nullopt;
  }
};

// P6 (G8): a newcomer is blocked only when every slot is held and no session
// is idle. An owner's block is P7's.
class BlockedOnlyWhenFullRule final : public GateRule {
 public:
  BlockedOnlyWhenFullRule() : GateRule("P6") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    if (step.decision.outcome != core::Outcome::blocked_capacity) return std::nullopt;
    const Ms now = step_now(step);
    if (held_session(step.before, step.op.client, now, step.config) != nullptr) return std::nullopt;
    const std::int64_t held = slots_held(step.before, now, step.config);
    if (held < step.config.capacity) {
      return fmt::format("the {} was blocked with only {} of {} slots held at gate time {}", describe_op(step.op), held,
                         step.config.capacity, now);
    }
    if (const core::Session* idle = oldest_idle(step.before, now, step.config)) {
      return fmt::format("the {} was blocked although {} was idle at gate time {} and could be rotated (G7)",
                         describe_op(step.op), describe_session(*idle), now);
    }
    return std::nullopt;
  }
};

// P7 (G5): a client that holds a session, live or idle, is never blocked.
class OwnerNeverBlockedRule final : public GateRule {
 public:
  OwnerNeverBlockedRule() : GateRule("P7") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    if (step.op.kind != core::OpKind::admit || step.decision.outcome != core::Outcome::blocked_capacity) {
      return std::nullopt;
    }
    const Ms now = step_now(step);
    const core::Session* own = held_session(step.before, step.op.client, now, step.config);
    if (own == nullptr) return std::nullopt;
    return fmt::format("the {} was blocked although the client held {} at gate time {}; an owner is never blocked",
                       describe_op(step.op), describe_session(*own), now);
  }
};

// P8 (G3): a replayed request gets the recorded decision and changes nothing
// beyond G1 and G2.
class ReplayRule final : public GateRule {
 public:
  ReplayRule() : GateRule("P8") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    if (step.op.kind != core::OpKind::admit) return std::nullopt;
    const Ms now = step_now(step);
    const core::Session* own = held_session(step.before, step.op.client, now, step.config);
    if (own == nullptr || own->last_request != step.op.request) return std::nullopt;
    const core::Decision& recorded = own->last_decision;
    const core::Decision& got = step.decision;
    if (got.outcome != recorded.outcome || got.token != recorded.token || got.victim != recorded.victim) {
      return fmt::format("the replayed {} got {}, expected the recorded decision {}", describe_op(step.op),
                         describe_decision(got), describe_decision(recorded));
    }
    const core::PoolState expected = clocked_and_pruned(step.before, now, step.config);
    if (step.after != expected) {
      return fmt::format("the replayed {} changed the pool: {}", describe_op(step.op),
                         describe_change(expected, step.after));
    }
    return std::nullopt;
  }
};

// P9 (G2): no session that is gone at a step's `now` survives the step.
class GonePrunedRule final : public GateRule {
 public:
  GonePrunedRule() : GateRule("P9") {}

 private:
  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    const Ms now = step_now(step);
    for (const core::Session& session : step.after.sessions) {
      if (!is_gone(session, now, step.config)) continue;
      return fmt::format("after the {}: {} was gone at gate time {} (ttl {} + grace {}) but was not pruned",
                         describe_op(step.op), describe_session(session), now, step.config.ttl_ms,
                         step.config.grace_ms);
    }
    return std::nullopt;
  }
};

// P10 (G11): a token that died never answers `alive` or `released`, and is
// never granted again. A token dies when the gate says `gone` to it, or when
// its session loses it (switched, rotated out, released, pruned). Tokens are
// kept per pool and client for the run; a store restart forgets them, since
// the pool's counter starts again at 1 (G9 holds within a store's lifetime).
class DeadTokensRule final : public GateRule {
 public:
  DeadTokensRule() : GateRule("P10") {}

 private:
  struct Death {
    std::uint64_t event_index = 0;
    std::string_view how;
  };
  using ClientRef = std::pair<std::string, std::string>;  // pool, client

  std::optional<std::string> check(const Event& event, const GateStep& step) override {
    const ClientRef ref{step.pool, step.op.client};
    const auto dead = dead_.find(ref);
    if (dead != dead_.end()) {
      const bool revived =
          step.decision.outcome == core::Outcome::alive || step.decision.outcome == core::Outcome::released;
      if (revived && dead->second.contains(step.op.token)) {
        const Death& death = dead->second.at(step.op.token);
        return fmt::format("the {} got {}, but that token died at event {} ({}); a dead token never comes back",
                           describe_op(step.op), describe_decision(step.decision), death.event_index, death.how);
      }
      if (core::is_granted(step.decision.outcome) && dead->second.contains(step.decision.token)) {
        const Death& death = dead->second.at(step.decision.token);
        return fmt::format("the {} was granted {}, but that token died at event {} ({})", describe_op(step.op),
                           describe_decision(step.decision), death.event_index, death.how);
      }
    }
    // A `gone` for a token the pool's counter already passed is final. A
    // larger one was never issued in this store's lifetime (it predates a
    // restart) and may still be issued, so it is not marked.
    const bool probes_token = step.op.kind != core::OpKind::admit;
    if (probes_token && step.decision.outcome == core::Outcome::gone && step.op.token != core::kNoToken &&
        step.op.token <= step.before.last_token) {
      dead_[ref].try_emplace(step.op.token, Death{event.index, "answered gone"});
    }
    for (const core::Session& session : step.before.sessions) {
      const core::Session* now_session = core::find_session(step.after, session.client);
      if (now_session != nullptr && now_session->token == session.token) continue;
      dead_[ClientRef{step.pool, session.client}].try_emplace(session.token, Death{event.index, "its session lost it"});
    }
    return std::nullopt;
  }
  void on_restart() override { dead_.clear(); }

  std::map<ClientRef, std::map<core::Token, Death>> dead_;
};

// P17 (G4): while a client holds a session, the intent it records
// (last_issued, last_request) never goes back to one older than an intent the
// gate already applied for that client. Once the session ends (released,
// rotated out, pruned) the gate keeps nothing of the client, so a later
// admit starts afresh (G6), and so does this rule; a store restart forgets
// every pool.
class LastIntentWinsRule final : public GateRule {
 public:
  LastIntentWinsRule() : GateRule("P17") {}

 private:
  struct Intent {
    Ms issued_at = 0;
    std::string request;
    auto operator<=>(const Intent&) const = default;
    bool operator==(const Intent&) const = default;
  };
  using ClientRef = std::pair<std::string, std::string>;  // pool, client

  std::optional<std::string> check(const Event& /*event*/, const GateStep& step) override {
    const Ms now = step_now(step);
    // A session gone at this step's `now` is pruned first (G2): the gate no
    // longer holds its intent, so neither does this rule.
    forget_clients_without(step.pool, step.before,
                           [&](const core::Session& s) { return !is_gone(s, now, step.config); });
    // What the pool held before the step was applied too (a history may begin mid-run).
    for (const core::Session& session : step.before.sessions) {
      if (is_gone(session, now, step.config)) continue;
      note(ClientRef{step.pool, session.client}, Intent{session.last_issued, session.last_request});
    }
    std::optional<std::string> problem;
    for (const core::Session& session : step.after.sessions) {
      const ClientRef ref{step.pool, session.client};
      const Intent held{session.last_issued, session.last_request};
      const auto newest = newest_.find(ref);
      if (!problem && newest != newest_.end() && held < newest->second) {
        problem = fmt::format(
            "after the {}: client {}'s session holds intent (issued_at {}, request {}), older than "
            "the intent (issued_at {}, request {}) the gate already applied",
            describe_op(step.op), session.client, held.issued_at, held.request, newest->second.issued_at,
            newest->second.request);
      }
      note(ref, held);
    }
    // Clients left without a session start afresh.
    forget_clients_without(step.pool, step.after, [](const core::Session&) { return true; });
    return problem;
  }

  // Forgets every client of `pool_name` that has no session in `pool` for which `holds` is true.
  template <typename Holds>
  void forget_clients_without(const std::string& pool_name, const core::PoolState& pool, Holds holds) {
    for (auto it = newest_.lower_bound(ClientRef{pool_name, ""});
         it != newest_.end() && it->first.first == pool_name;) {
      const core::Session* session = core::find_session(pool, it->first.second);
      if (session == nullptr || !holds(*session)) {
        it = newest_.erase(it);
      } else {
        ++it;
      }
    }
  }
  void on_restart() override { newest_.clear(); }

  void note(const ClientRef& ref, const Intent& intent) {
    auto [it, inserted] = newest_.try_emplace(ref, intent);
    if (!inserted && it->second < intent) it->second = intent;
  }

  std::map<ClientRef, Intent> newest_;
};

// ---------------------------------------------------------------------------
// P11: the retry rules R1-R6 over each flight's calls, phase by phase.

enum class Phase : std::uint8_t { gate, resolve, release };
constexpr std::size_t kPhaseCount = 3;

std::string_view phase_name(Phase phase) {
  switch (phase) {
    case Phase::gate:
      return "gate";
    case Phase::resolve:
      return "resolve";
    case Phase::release:
      return "release";
  }
  return "?";
}

// The phase a call belongs to: an admit starts the gate phase, a broker call
// the resolve phase, a release the release phase (F1, F5).
std::optional<Phase> phase_of(const CallStarted& call) {
  if (call.dependency == Dependency::broker) return Phase::resolve;
  if (call.op.kind == core::OpKind::admit) return Phase::gate;
  if (call.op.kind == core::OpKind::release) return Phase::release;
  return std::nullopt;
}

class RetryRule final : public Checker {
 public:
  explicit RetryRule(const core::FlowConfig& flow) : flow_(flow) {}
  std::string_view rule() const override { return "P11"; }

  std::optional<Violation> on_event(const Event& event) override {
    if (const auto* call = std::get_if<CallStarted>(&event.body)) {
      std::optional<std::string> problem = started(event, *call);
      if (problem) return violation_at("P11", event, *std::move(problem));
    } else if (const auto* ended = std::get_if<CallEnded>(&event.body)) {
      std::optional<std::string> problem = on_call_ended(event, *ended);
      if (problem) return violation_at("P11", event, *std::move(problem));
    } else if (const auto* flight = std::get_if<FlightEnded>(&event.body)) {
      flights_.erase(FlightRef{flight->instance, flight->flight});
    }
    return std::nullopt;
  }
  std::optional<Violation> at_end(const History& /*history*/, const EndState& /*end*/) override { return std::nullopt; }

 private:
  struct Attempt {
    std::uint32_t call = 0;
    Ms start_ms = 0;
    Ms deadline_ms = 0;
    bool ended = false;
    core::OutcomeClass outcome_class = core::OutcomeClass::success;
    bool timed_out = false;
    std::optional<Ms> retry_after_ms{};
    Ms end_ms = 0;
  };
  struct PhaseRun {
    Ms t0_ms = 0;
    std::vector<Attempt> attempts;  // at most 2: a third is reported and not kept
  };
  struct FlightRun {
    std::array<std::optional<PhaseRun>, kPhaseCount> phases;
  };

  const core::RetryConfig& config_of(Dependency dependency) const {
    return dependency == Dependency::broker ? flow_.broker : flow_.store;
  }

  std::optional<std::string> started(const Event& event, const CallStarted& call) {
    const std::optional<Phase> phase = phase_of(call);
    if (!phase) return std::nullopt;
    const core::RetryConfig& config = config_of(call.dependency);
    const Ms at = event.at_ms;
    const std::string who = fmt::format("flight {} of instance {}: the {} phase's attempt {} (call {})", call.flight,
                                        call.instance, phase_name(*phase), call.attempt, call.call);
    std::optional<PhaseRun>& run =
        flights_[FlightRef{call.instance, call.flight}].phases.at(static_cast<std::size_t>(*phase));

    if (call.attempt < 1 || call.attempt > 2) {
      return fmt::format("{} started at {}; at most 2 attempts (R4)", who, at);
    }
    if (call.attempt == 1) {
      if (run) {
        return fmt::format(
            "{} started at {}, but the phase had already started at {} (R4: one operation, at most 2 "
            "attempts)",
            who, at, run->t0_ms);
      }
      run = PhaseRun{at, {}};
      const Ms end_ms = at + config.budget_ms;
      if (call.deadline > end_ms) {
        return fmt::format("{} has deadline {}, past the budget's end t0 {} + B {} = {} (R1)", who, call.deadline, at,
                           config.budget_ms, end_ms);
      }
      const Ms expected = at + std::min(config.attempt_timeout_ms, config.budget_ms);
      if (call.deadline != expected) {
        return fmt::format("{} has deadline {}, expected t0 {} + min(A {}, B {}) = {} (R2)", who, call.deadline, at,
                           config.attempt_timeout_ms, config.budget_ms, expected);
      }
      run->attempts.push_back(Attempt{.call = call.call, .start_ms = at, .deadline_ms = call.deadline});
      return std::nullopt;
    }

    // Attempt 2.
    if (!run || run->attempts.empty()) {
      return fmt::format("{} started at {} without an attempt 1 (R4)", who, at);
    }
    if (run->attempts.size() >= 2) {
      return fmt::format("{} started at {}, but attempt 2 (call {}) had already run (R4: at most 2 attempts)", who, at,
                         run->attempts[1].call);
    }
    const Attempt& first = run->attempts[0];
    if (!first.ended) {
      return fmt::format("{} started at {} while attempt 1 (call {}) was still running (R4)", who, at, first.call);
    }
    if (!first.timed_out && first.outcome_class != core::OutcomeClass::transient) {
      return fmt::format(
          "{} started at {} after attempt 1 (call {}) ended {}; a retry follows only a transient "
          "outcome (R4)",
          who, at, first.call, core::outcome_class_name(first.outcome_class));
    }
    const Ms end_ms = run->t0_ms + config.budget_ms;
    if (call.deadline > end_ms) {
      return fmt::format("{} has deadline {}, past the budget's end t0 {} + B {} = {} (R1)", who, call.deadline,
                         run->t0_ms, config.budget_ms, end_ms);
    }
    // The retry machine counts from the failure, or from the deadline when the
    // attempt timed out (or its reply came after it).
    const Ms failed_at = first.timed_out ? first.deadline_ms : std::min(first.end_ms, first.deadline_ms);
    const Ms retry_after = first.retry_after_ms.value_or(0);
    const Ms earliest = failed_at + std::max(config.jitter_min_ms, retry_after);
    const Ms latest = failed_at + std::max(config.jitter_max_ms, retry_after);
    if (at < earliest || at > latest) {
      return fmt::format("{} started at {}, {} ms after attempt 1 failed at {}; the delay must be in [{}, {}] (R5{})",
                         who, at, at - failed_at, failed_at, earliest - failed_at, latest - failed_at,
                         first.retry_after_ms ? fmt::format(", Retry-After {}", retry_after) : std::string());
    }
    if (end_ms - at < config.min_attempt_ms) {
      return fmt::format("{} started at {} with {} ms of budget left, less than M {} (R6)", who, at, end_ms - at,
                         config.min_attempt_ms);
    }
    const Ms expected = std::min(at + config.attempt_timeout_ms, end_ms);
    if (call.deadline != expected) {
      return fmt::format("{} has deadline {}, expected min(t1 {} + A {}, t0 + B {}) = {} (R6)", who, call.deadline, at,
                         config.attempt_timeout_ms, end_ms, expected);
    }
    run->attempts.push_back(Attempt{.call = call.call, .start_ms = at, .deadline_ms = call.deadline});
    return std::nullopt;
  }

  std::optional<std::string> on_call_ended(const Event& event, const CallEnded& ended) {
    const auto flight = flights_.find(FlightRef{ended.instance, ended.flight});
    if (flight == flights_.end()) return std::nullopt;
    for (std::size_t p = 0; p < kPhaseCount; ++p) {
      std::optional<PhaseRun>& run = flight->second.phases.at(p);
      if (!run) continue;
      const bool broker = static_cast<Phase>(p) == Phase::resolve;
      if (broker != (ended.dependency == Dependency::broker)) continue;
      for (Attempt& attempt : run->attempts) {
        // Only an attempt's first end counts: a reply after its timeout is stale.
        if (attempt.call != ended.call || attempt.ended) continue;
        attempt.ended = true;
        attempt.outcome_class = ended.outcome_class;
        attempt.timed_out = ended.timed_out;
        attempt.retry_after_ms = ended.retry_after_ms;
        attempt.end_ms = event.at_ms;
        const Ms end_ms = run->t0_ms + config_of(ended.dependency).budget_ms;
        if (event.at_ms > end_ms) {
          return fmt::format(
              "flight {} of instance {}: the {} phase's call {} ended ({}) at {}, past the budget's "
              "end {} (R1)",
              ended.flight, ended.instance, phase_name(static_cast<Phase>(p)), ended.call,
              outcome_class_text(ended.outcome_class, ended.timed_out), event.at_ms, end_ms);
        }
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  core::FlowConfig flow_;
  std::map<FlightRef, FlightRun> flights_;
};

// ---------------------------------------------------------------------------
// Which flight each waiter waits on. The history does not say, so it is
// inferred as the route decides it (C1): a request whose key has a running
// flight on its instance joins that flight; otherwise it waits for the next
// flight its key starts there (it is that flight's leader). A request turned
// away at once (policy, busy) never joins: its answer is not a flight's, so
// callers forget such a waiter without judging its answer.
class Membership {
 public:
  struct Flight {
    core::FlightKey key;
    bool ended = false;
    std::set<core::WaiterId> waiting;  // members not yet answered and not gone
  };

  void on_request(const RequestSent& sent) {
    const WaiterRef waiter{sent.instance, sent.waiter};
    forget_waiter(waiter);  // a reused id: the old request is over
    const InstanceKey key{sent.instance, core::FlightKey{sent.request.pool, sent.request.client, sent.request.episode}};
    const auto running = running_.find(key);
    if (running != running_.end()) {
      join(waiter, running->second);
    } else {
      pending_[key].insert(sent.waiter);
      pending_of_[waiter] = key;
    }
  }

  // The flight this key was already running, if any (a C1 breach).
  std::optional<core::FlightId> on_flight_started(const FlightStarted& started) {
    const InstanceKey key{started.instance, started.key};
    std::optional<core::FlightId> prior;
    if (const auto running = running_.find(key); running != running_.end()) prior = running->second;
    running_[key] = started.flight;
    Flight& flight = flights_[FlightRef{started.instance, started.flight}];
    flight.key = started.key;
    flight.ended = false;
    if (const auto pending = pending_.find(key); pending != pending_.end()) {
      for (core::WaiterId waiter : pending->second) {
        pending_of_.erase(WaiterRef{started.instance, waiter});
        join(WaiterRef{started.instance, waiter}, started.flight);
      }
      pending_.erase(pending);
    }
    return prior;
  }

  void on_flight_ended(const FlightEnded& ended) {
    const auto flight = flights_.find(FlightRef{ended.instance, ended.flight});
    if (flight == flights_.end()) return;
    flight->second.ended = true;
    const InstanceKey key{ended.instance, flight->second.key};
    if (const auto running = running_.find(key); running != running_.end() && running->second == ended.flight) {
      running_.erase(running);
    }
  }

  // The waiter was answered or went away: the flight it waited on, if any.
  std::optional<core::FlightId> forget_waiter(const WaiterRef& waiter) {
    if (const auto pending = pending_of_.find(waiter); pending != pending_of_.end()) {
      const auto group = pending_.find(pending->second);
      if (group != pending_.end()) {
        group->second.erase(waiter.second);
        if (group->second.empty()) pending_.erase(group);
      }
      pending_of_.erase(pending);
      return std::nullopt;
    }
    const auto member = member_of_.find(waiter);
    if (member == member_of_.end()) return std::nullopt;
    const core::FlightId flight = member->second;
    member_of_.erase(member);
    if (const auto found = flights_.find(FlightRef{waiter.first, flight}); found != flights_.end()) {
      found->second.waiting.erase(waiter.second);
    }
    return flight;
  }

  const Flight* find(const FlightRef& flight) const {
    const auto found = flights_.find(flight);
    return found == flights_.end() ? nullptr : &found->second;
  }

  // Ended and every member answered or gone: nothing more can happen to it.
  bool finished(const FlightRef& flight) const {
    const Flight* found = find(flight);
    return found == nullptr || (found->ended && found->waiting.empty());
  }
  void erase(const FlightRef& flight) { flights_.erase(flight); }

 private:
  void join(const WaiterRef& waiter, core::FlightId flight) {
    flights_[FlightRef{waiter.first, flight}].waiting.insert(waiter.second);
    member_of_[waiter] = flight;
  }

  std::map<InstanceKey, core::FlightId> running_;
  std::map<FlightRef, Flight> flights_;
  std::map<WaiterRef, core::FlightId> member_of_;
  std::map<InstanceKey, std::set<core::WaiterId>> pending_;
  std::map<WaiterRef, InstanceKey> pending_of_;
};

// Busy and policy denials are answered at once, outside any flight (C5, V4).
bool is_immediate_answer(const core::Response& response) {
  return response.denied &&
         (response.reason == core::DenialReason::busy || response.reason == core::DenialReason::policy);
}

// P12: C1 (one flight per key per instance), C2 (every waiter of a flight gets
// the identical response) and C3 (a flight's end answers all its waiters and
// ends it at one instant).
class CoalescingRule final : public Checker {
 public:
  std::string_view rule() const override { return "P12"; }

  std::optional<Violation> on_event(const Event& event) override {
    if (std::optional<std::string> problem = check_endings(event.at_ms)) {
      return violation_at("P12", event, *std::move(problem));
    }
    std::optional<std::string> problem;
    if (const auto* sent = std::get_if<RequestSent>(&event.body)) {
      members_.on_request(*sent);
    } else if (const auto* started = std::get_if<FlightStarted>(&event.body)) {
      if (const std::optional<core::FlightId> prior = members_.on_flight_started(*started)) {
        problem = fmt::format(
            "instance {} started flight {} for key {} while flight {} of that key was still running "
            "(C1)",
            started->instance, started->flight, describe_key(started->key), *prior);
      }
    } else if (const auto* ended = std::get_if<FlightEnded>(&event.body)) {
      const FlightRef flight{ended->instance, ended->flight};
      members_.on_flight_ended(*ended);
      mark_ending(flight, event.at_ms);
      settle(flight);
    } else if (const auto* response = std::get_if<ResponseReceived>(&event.body)) {
      problem = answered(event, *response);
    } else if (const auto* left = std::get_if<WaiterLeft>(&event.body)) {
      if (const std::optional<core::FlightId> flight =
              members_.forget_waiter(WaiterRef{left->instance, left->waiter})) {
        settle(FlightRef{left->instance, *flight});
      }
    }
    if (problem) return violation_at("P12", event, *std::move(problem));
    return std::nullopt;
  }

  std::optional<Violation> at_end(const History& /*history*/, const EndState& /*end*/) override { return std::nullopt; }

 private:
  struct Answers {
    std::optional<std::pair<core::WaiterId, core::Response>> first;  // the first member's answer
    std::optional<Ms> ending_at_ms;  // when the flight's end began (its FlightEnded or first answer)
  };

  std::optional<std::string> answered(const Event& event, const ResponseReceived& response) {
    const WaiterRef waiter{response.instance, response.waiter};
    if (is_immediate_answer(response.response)) {
      members_.forget_waiter(waiter);
      return std::nullopt;
    }
    const std::optional<core::FlightId> flight_id = members_.forget_waiter(waiter);
    if (!flight_id) return std::nullopt;
    const FlightRef flight{response.instance, *flight_id};
    Answers& answers = answers_[flight];
    std::optional<std::string> problem;
    if (!answers.first) {
      answers.first.emplace(response.waiter, response.response);
    } else if (answers.first->second != response.response) {
      problem = fmt::format("waiter {} of flight {} (instance {}) got {}, but waiter {} of the same flight got {} (C2)",
                            response.waiter, flight_id.value(), response.instance, describe_response(response.response),
                            answers.first->first, describe_response(answers.first->second));
    }
    mark_ending(flight, event.at_ms);
    settle(flight);
    return problem;
  }

  void mark_ending(const FlightRef& flight, Ms at_ms) {
    Answers& answers = answers_[flight];
    if (answers.ending_at_ms) return;
    answers.ending_at_ms = at_ms;
    ending_.emplace(at_ms, flight);
  }

  // Forgets a flight once nothing more can happen to it.
  void settle(const FlightRef& flight) {
    if (!members_.finished(flight)) return;
    if (const auto answers = answers_.find(flight); answers != answers_.end()) {
      if (answers->second.ending_at_ms) ending_.erase(std::pair{*answers->second.ending_at_ms, flight});
      answers_.erase(answers);
    }
    members_.erase(flight);
  }

  // C3: a flight whose end began at an earlier instant must be over by now.
  std::optional<std::string> check_endings(Ms now_ms) {
    while (!ending_.empty() && ending_.begin()->first < now_ms) {
      const auto [began_ms, flight] = *ending_.begin();
      ending_.erase(ending_.begin());
      const Membership::Flight* state = members_.find(flight);
      if (state == nullptr) continue;
      if (!state->ended) {
        return fmt::format("flight {} of instance {} (key {}) answered a waiter at {} but had not ended by {} (C3)",
                           flight.second, flight.first, describe_key(state->key), began_ms, now_ms);
      }
      if (!state->waiting.empty()) {
        return fmt::format(
            "flight {} of instance {} (key {}) ended at {} without answering waiter {} at that "
            "instant (C3)",
            flight.second, flight.first, describe_key(state->key), began_ms, *state->waiting.begin());
      }
    }
    return std::nullopt;
  }

  Membership members_;
  std::map<FlightRef, Answers> answers_;
  std::set<std::pair<Ms, FlightRef>> ending_;
};

// The F6 bound: the gate, the resolve and the release each within its budget.
Ms answer_bound_ms(const core::FlowConfig& flow) {
  return flow.store.budget_ms + flow.broker.budget_ms + flow.store.budget_ms;
}

// P13 (C6, R1): every flight ends, within the three budgets of its start, and
// at quiescence no instance holds a flight.
class NoFlightLeakRule final : public Checker {
 public:
  explicit NoFlightLeakRule(const core::FlowConfig& flow) : bound_ms_(answer_bound_ms(flow)) {}
  std::string_view rule() const override { return "P13"; }

  std::optional<Violation> on_event(const Event& event) override {
    last_ = LastEvent{event.index, event.step, event.at_ms};
    if (!due_.empty() && due_.begin()->first < event.at_ms) {
      const FlightRef flight = due_.begin()->second;
      due_.erase(due_.begin());
      const Running& running = running_.at(flight);
      return violation_at("P13", event,
                          fmt::format("flight {} of instance {} (key {}) started at {} was still running at {}, past "
                                      "its bound {} (three budgets, R1)",
                                      flight.second, flight.first, describe_key(running.key), running.started_ms,
                                      event.at_ms, running.started_ms + bound_ms_));
    }
    if (const auto* started = std::get_if<FlightStarted>(&event.body)) {
      const FlightRef flight{started->instance, started->flight};
      if (const auto old = running_.find(flight); old != running_.end()) {
        due_.erase(std::pair{old->second.started_ms + bound_ms_, flight});
      }
      running_[flight] = Running{started->key, event.index, event.step, event.at_ms};
      due_.emplace(event.at_ms + bound_ms_, flight);
    } else if (const auto* ended = std::get_if<FlightEnded>(&event.body)) {
      const FlightRef flight{ended->instance, ended->flight};
      if (const auto found = running_.find(flight); found != running_.end()) {
        due_.erase(std::pair{found->second.started_ms + bound_ms_, flight});
        running_.erase(found);
      }
    }
    return std::nullopt;
  }

  std::optional<Violation> at_end(const History& /*history*/, const EndState& end) override {
    for (const auto& [flight, running] : running_) {
      const bool overdue = end.end_ms > running.started_ms + bound_ms_;
      if (!end.quiescent && !overdue) continue;
      return Violation{"P13", running.index, running.step, running.started_ms,
                       fmt::format("flight {} of instance {} (key {}) started at {} never ended (run ended at {}{})",
                                   flight.second, flight.first, describe_key(running.key), running.started_ms,
                                   end.end_ms, end.quiescent ? ", quiescent" : "")};
    }
    if (!end.quiescent) return std::nullopt;
    for (std::size_t i = 0; i < end.flights_per_instance.size(); ++i) {
      if (end.flights_per_instance[i] == 0) continue;
      return Violation{"P13", last_.index, last_.step, last_.at_ms,
                       fmt::format("at quiescence (time {}) instance {} still holds {} flight(s) in its table, "
                                   "expected none (C6)",
                                   end.end_ms, i, end.flights_per_instance[i])};
    }
    return std::nullopt;
  }

 private:
  struct Running {
    core::FlightKey key;
    std::uint64_t index = 0;
    std::uint64_t step = 0;
    Ms started_ms = 0;
  };
  struct LastEvent {
    std::uint64_t index = 0;
    std::uint64_t step = 0;
    Ms at_ms = 0;
  };

  Ms bound_ms_;
  std::map<FlightRef, Running> running_;
  std::set<std::pair<Ms, FlightRef>> due_;  // each running flight by the time it must have ended
  LastEvent last_;
};

// P15 (F5): a flight whose gate decision issued a new token and whose
// resolve failed starts a release of that token before any waiter is
// answered. The decision a flight got is the gate step that applied its admit
// (matched by pool, client and request id; a retry's G3 replay gives the same
// decision), taken when the flight's admit call succeeded.
class FailedResolveReleasesRule final : public Checker {
 public:
  std::string_view rule() const override { return "P15"; }

  std::optional<Violation> on_event(const Event& event) override {
    std::optional<std::string> problem;
    if (const auto* sent = std::get_if<RequestSent>(&event.body)) {
      members_.on_request(*sent);
    } else if (const auto* started = std::get_if<FlightStarted>(&event.body)) {
      const FlightRef flight{started->instance, started->flight};
      (void)members_.on_flight_started(*started);
      flights_[flight] = Obligation{.key = started->key};
    } else if (const auto* call = std::get_if<CallStarted>(&event.body)) {
      on_call(*call);
    } else if (const auto* step = std::get_if<GateStep>(&event.body)) {
      on_gate(*step);
    } else if (const auto* ended = std::get_if<CallEnded>(&event.body)) {
      on_call_ended(*ended);
    } else if (const auto* response = std::get_if<ResponseReceived>(&event.body)) {
      const WaiterRef waiter{response->instance, response->waiter};
      const std::optional<core::FlightId> flight = members_.forget_waiter(waiter);
      // An answer given at once (busy, policy) is no flight's.
      if (flight && !is_immediate_answer(response->response)) {
        problem =
            check(FlightRef{response->instance, *flight}, fmt::format("waiter {} was answered", response->waiter));
      }
      if (flight) {
        settle(FlightRef{response->instance, *flight});
      }
    } else if (const auto* left = std::get_if<WaiterLeft>(&event.body)) {
      if (const std::optional<core::FlightId> flight =
              members_.forget_waiter(WaiterRef{left->instance, left->waiter})) {
        settle(FlightRef{left->instance, *flight});
      }
    } else if (const auto* flight_end = std::get_if<FlightEnded>(&event.body)) {
      const FlightRef flight{flight_end->instance, flight_end->flight};
      members_.on_flight_ended(*flight_end);
      problem = check(flight, "the flight ended");
      settle(flight);
    }
    if (problem) return violation_at("P15", event, *std::move(problem));
    return std::nullopt;
  }

  std::optional<Violation> at_end(const History& /*history*/, const EndState& /*end*/) override { return std::nullopt; }

 private:
  using AdmitRef = std::tuple<std::string, std::string, std::string>;  // pool, client, request

  struct Obligation {
    core::FlightKey key;
    std::optional<std::string> request{};  // of its admit calls
    std::set<std::uint32_t> admit_calls{};
    std::optional<core::Decision> gate_decision{};  // the latest gate step that applied its admit
    std::optional<core::Decision> granted_new{};    // the decision its gate phase succeeded with, if it issued a token
    bool resolve_started = false;
    std::uint32_t last_broker_call = 0;
    std::optional<core::OutcomeClass> last_broker_outcome{};  // of the latest broker call, once ended
    bool released = false;                                    // a release of granted_new's token started
    bool checked = false;
  };

  void on_call(const CallStarted& call) {
    const auto found = flights_.find(FlightRef{call.instance, call.flight});
    if (found == flights_.end()) return;
    Obligation& flight = found->second;
    if (call.dependency == Dependency::broker) {
      flight.resolve_started = true;
      flight.last_broker_call = call.call;
      flight.last_broker_outcome.reset();
    } else if (call.op.kind == core::OpKind::admit) {
      flight.admit_calls.insert(call.call);
      if (!flight.request) {
        flight.request = call.op.request;
        by_admit_[AdmitRef{flight.key.pool, call.op.client, call.op.request}].insert(found->first);
      }
    } else if (call.op.kind == core::OpKind::release) {
      if (flight.granted_new && call.op.token == flight.granted_new->token && call.op.client == flight.key.client) {
        flight.released = true;
      }
    }
  }

  void on_gate(const GateStep& step) {
    if (step.op.kind != core::OpKind::admit) return;
    const auto found = by_admit_.find(AdmitRef{step.pool, step.op.client, step.op.request});
    if (found == by_admit_.end()) return;
    for (const FlightRef& flight : found->second) flights_.at(flight).gate_decision = step.decision;
  }

  void on_call_ended(const CallEnded& ended) {
    const auto found = flights_.find(FlightRef{ended.instance, ended.flight});
    if (found == flights_.end()) return;
    Obligation& flight = found->second;
    if (ended.dependency == Dependency::broker) {
      if (ended.call == flight.last_broker_call && !flight.last_broker_outcome) {
        flight.last_broker_outcome = ended.timed_out ? core::OutcomeClass::transient : ended.outcome_class;
      }
      return;
    }
    if (!flight.admit_calls.contains(ended.call) || ended.outcome_class != core::OutcomeClass::success ||
        ended.timed_out) {
      return;
    }
    if (flight.gate_decision && core::is_new_token(flight.gate_decision->outcome)) {
      flight.granted_new = flight.gate_decision;
    }
  }

  std::optional<std::string> check(const FlightRef& ref, std::string_view what) {
    const auto found = flights_.find(ref);
    if (found == flights_.end() || found->second.checked) return std::nullopt;
    Obligation& flight = found->second;
    flight.checked = true;
    if (!flight.granted_new || !flight.resolve_started) return std::nullopt;
    if (flight.last_broker_outcome == core::OutcomeClass::success) return std::nullopt;
    if (flight.released) return std::nullopt;
    return fmt::format(
        "flight {} of instance {} (key {}) was granted {} and its resolve failed, but {} before any "
        "release of token {} started (F5)",
        ref.second, ref.first, describe_key(flight.key), describe_decision(*flight.granted_new), what,
        flight.granted_new->token);
  }

  void settle(const FlightRef& ref) {
    if (!members_.finished(ref)) return;
    members_.erase(ref);
    const auto found = flights_.find(ref);
    if (found == flights_.end()) return;
    if (found->second.request) {
      const auto index =
          by_admit_.find(AdmitRef{found->second.key.pool, found->second.key.client, *found->second.request});
      if (index != by_admit_.end()) {
        index->second.erase(ref);
        if (index->second.empty()) by_admit_.erase(index);
      }
    }
    flights_.erase(found);
  }

  Membership members_;
  std::map<FlightRef, Obligation> flights_;
  std::map<AdmitRef, std::set<FlightRef>> by_admit_;
};

// P16 (F6): every request is answered exactly once (or its client went away),
// within the three budgets of its arrival.
class AnsweredOnceRule final : public Checker {
 public:
  explicit AnsweredOnceRule(const core::FlowConfig& flow) : bound_ms_(answer_bound_ms(flow)) {}
  std::string_view rule() const override { return "P16"; }

  std::optional<Violation> on_event(const Event& event) override {
    while (!due_.empty() && due_.begin()->first < event.at_ms) {
      const WaiterRef waiter = due_.begin()->second;
      due_.erase(due_.begin());
      const auto found = waiting_.find(waiter);
      if (found == waiting_.end()) continue;
      const Waiting overdue = found->second;
      waiting_.erase(found);
      // A waiter that left is kept until its bound only to accept an answer already on its way.
      if (overdue.left) continue;
      return violation_at(
          "P16", event,
          fmt::format("{} sent at {} was not answered by {} (arrival + store B + broker B + store B, "
                      "F6); now {}",
                      describe(waiter, overdue), overdue.sent_ms, overdue.sent_ms + bound_ms_, event.at_ms));
    }
    if (const auto* sent = std::get_if<RequestSent>(&event.body)) {
      const WaiterRef waiter{sent->instance, sent->waiter};
      Waiting next{event.index, event.step, event.at_ms, sent->request.client, sent->request.request, false};
      std::optional<std::string> problem;
      if (const auto old = waiting_.find(waiter); old != waiting_.end()) {
        if (!old->second.left) {
          problem = fmt::format(
              "waiter {} of instance {} sent request {} at {} while its request {} of {} was still "
              "unanswered (waiter ids are unique among live requests)",
              sent->waiter, sent->instance, sent->request.request, event.at_ms, old->second.request,
              old->second.sent_ms);
        }
        due_.erase(std::pair{old->second.sent_ms + bound_ms_, waiter});
      }
      waiting_[waiter] = next;
      due_.emplace(event.at_ms + bound_ms_, waiter);
      if (problem) return violation_at("P16", event, *std::move(problem));
    } else if (const auto* response = std::get_if<ResponseReceived>(&event.body)) {
      const WaiterRef waiter{response->instance, response->waiter};
      const auto found = waiting_.find(waiter);
      if (found == waiting_.end()) {
        return violation_at(
            "P16", event,
            fmt::format("waiter {} of instance {} was answered ({}) at {} with no request waiting: "
                        "answered twice, or never asked",
                        response->waiter, response->instance, describe_response(response->response), event.at_ms));
      }
      due_.erase(std::pair{found->second.sent_ms + bound_ms_, waiter});
      waiting_.erase(found);
    } else if (const auto* left = std::get_if<WaiterLeft>(&event.body)) {
      if (const auto found = waiting_.find(WaiterRef{left->instance, left->waiter}); found != waiting_.end()) {
        found->second.left = true;
      }
    }
    return std::nullopt;
  }

  // After the run: at quiescence every request that did not leave was
  // answered; otherwise none is past its bound.
  std::optional<Violation> at_end(const History& /*history*/, const EndState& end) override {
    std::optional<Violation> first;
    for (const auto& [waiter, waiting] : waiting_) {
      if (waiting.left) continue;
      const bool overdue = end.end_ms > waiting.sent_ms + bound_ms_;
      if (!end.quiescent && !overdue) continue;
      if (first && first->event_index <= waiting.index) continue;
      first = Violation{
          "P16", waiting.index, waiting.step, waiting.sent_ms,
          fmt::format("{} sent at {} was never answered (run ended at {}{}; bound {}, F6)", describe(waiter, waiting),
                      waiting.sent_ms, end.end_ms, end.quiescent ? ", quiescent" : "", waiting.sent_ms + bound_ms_)};
    }
    return first;
  }

 private:
  struct Waiting {
    std::uint64_t index = 0;
    std::uint64_t step = 0;
    Ms sent_ms = 0;
    std::string client;
    std::string request;
    bool left = false;
  };

  static std::string describe(const WaiterRef& waiter, const Waiting& waiting) {
    return fmt::format("the request {} of client {} (waiter {} of instance {})", waiting.request, waiting.client,
                       waiter.second, waiter.first);
  }

  Ms bound_ms_;
  std::map<WaiterRef, Waiting> waiting_;
  std::set<std::pair<Ms, WaiterRef>> due_;  // each waiting request by the time it must be answered
};

struct RuleText {
  std::string_view rule;
  std::string_view text;
};

// SPEC "What the harness checks (P)", word for word.
constexpr std::array<RuleText, 18> kRuleTexts = {{
    {"P1", "capacity (G14)"},
    {"P2", "one session per client"},
    {"P3", "determinism: same inputs and seed → byte-identical history"},
    {"P4", "live sessions are never rotated"},
    {"P5", "the victim is the oldest idle (G7)"},
    {"P6", "blocked only when full with no idle session"},
    {"P7", "owner never blocked while its session exists"},
    {"P8", "replayed request → identical decision, no change (G3)"},
    {"P9", "gone sessions are pruned (G2)"},
    {"P10", "dead tokens stay dead (G11)"},
    {"P11", "retries: ≤ 2 attempts, only after transient, delay within R5, end within B (R1–R6)"},
    {"P12", "coalescing C1–C3"},
    {"P13", "no flight leak (C6)"},
    {"P14",
     "linearizability: the concurrent history of gate operations, with real-time order, is explained by some "
     "sequential order of G"},
    {"P15", "failed resolve releases (F5)"},
    {"P16", "every request answered once, within F6"},
    {"P17",
     "last intent wins: no session is ever left holding an intent older (by issued_at, request) than one the "
     "gate already applied for that client (G4)"},
    {"RUN",
     "the run itself must end normally: every client done before the time and step limits, no fiber failed, the "
     "history within its bound"},
}};

}  // namespace

std::vector<std::unique_ptr<Checker>> make_checkers(const Scenario& scenario) {
  std::vector<std::unique_ptr<Checker>> checkers;
  checkers.push_back(std::make_unique<CapacityRule>());
  checkers.push_back(std::make_unique<OneSessionRule>());
  checkers.push_back(std::make_unique<LiveNeverRotatedRule>());
  checkers.push_back(std::make_unique<OldestIdleVictimRule>());
  checkers.push_back(std::make_unique<BlockedOnlyWhenFullRule>());
  checkers.push_back(std::make_unique<OwnerNeverBlockedRule>());
  checkers.push_back(std::make_unique<ReplayRule>());
  checkers.push_back(std::make_unique<GonePrunedRule>());
  checkers.push_back(std::make_unique<DeadTokensRule>());
  checkers.push_back(std::make_unique<RetryRule>(scenario.flow));
  checkers.push_back(std::make_unique<CoalescingRule>());
  checkers.push_back(std::make_unique<NoFlightLeakRule>(scenario.flow));
  checkers.push_back(std::make_unique<FailedResolveReleasesRule>());
  checkers.push_back(std::make_unique<AnsweredOnceRule>(scenario.flow));
  checkers.push_back(std::make_unique<LastIntentWinsRule>());
  return checkers;
}

std::optional<Violation> check_history(const Scenario& scenario, const History& history, const EndState& end) {
  std::vector<std::unique_ptr<Checker>> checkers = make_checkers(scenario);
  for (const Event& event : history.events()) {
    for (const std::unique_ptr<Checker>& checker : checkers) {
      if (std::optional<Violation> violation = checker->on_event(event)) return violation;
    }
  }
  // The end-of-run checks may name an earlier event (a request never
  // answered): the earliest wins, then the rule order.
  std::optional<Violation> first;
  for (const std::unique_ptr<Checker>& checker : checkers) {
    std::optional<Violation> violation = checker->at_end(history, end);
    if (violation && (!first || violation->event_index < first->event_index)) first = std::move(violation);
  }
  return first;
}

std::string_view rule_text(std::string_view rule) {
  for (const RuleText& entry : kRuleTexts) {
    if (entry.rule == rule) return entry.text;
  }
  return {};
}

}  // namespace turnstile::sim
