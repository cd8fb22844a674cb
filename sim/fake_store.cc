#include "sim/fake_store.h"

#include <algorithm>
#include <utility>

#include "core/assert.h"
#include "core/outcome.h"
#include "sim/runtime.h"
#include "sim/sleep.h"

namespace turnstile::sim {
namespace {

core::StoreReply error_reply(core::OutcomeClass outcome_class) {
  core::StoreReply reply;
  reply.result.outcome_class = outcome_class;
  return reply;
}

// The outcomes after which the legacy gate writes: a session was created,
// switched, refreshed or rotated in. The others (a G3 replay, superseded,
// blocked) change nothing beyond G1-G2.
bool writes(const core::Decision& decision) { return core::is_granted(decision.outcome); }

// The scheduler step the calling fiber runs in (0 outside a run).
std::uint64_t current_step() {
  const Runtime* runtime = Runtime::current();
  if (runtime == nullptr || runtime->steps_taken() == 0) return 0;
  return runtime->steps_taken() - 1;
}

// G2 as the legacy write step runs it on the pool as it is now.
void prune(core::PoolState& pool, const core::GateConfig& config) {
  std::erase_if(pool.sessions,
                [&](const core::Session& s) { return core::age_of(s, pool.last_now, config) == core::Age::gone; });
}

}  // namespace

FakeStore::FakeStore(StoreOptions options, Draws& draws, EventSink sink)
    : options_(std::move(options)),
      draws_(draws),
      sink_(std::move(sink)),
      recorder_(options_.config, options_.max_gate_commands) {
  TS_ASSERT(!core::check_config(options_.config));
  if (!options_.gate) options_.gate = core::apply;
}

const core::PoolState* FakeStore::pool(std::string_view name) const {
  auto found = pools_.find(name);
  return found == pools_.end() ? nullptr : &found->second.state;
}

std::optional<core::StoreReply> FakeStore::call(const std::string& pool, const core::Op& op) {
  // Recorded as the caller sees it: from now, when the command leaves it,
  // to when (if ever) a reply comes back. A command cut off by the run's end
  // (Cancelled out of a sleep below) stays open: pending.
  const GateHistoryRecorder::Handle command = recorder_.begin(pool, op, now_ms(), current_step());
  const Fault fault = draw_fault();
  if (fault == Fault::restart) {
    // The store went down and came back empty while the command travelled.
    pools_.clear();
    recorder_.restart();
    sink_(StoreRestarted{});
  }
  if (const core::Ms latency_ms = draw_latency(); latency_ms > 0) sleep_until(now_ms() + latency_ms);

  switch (fault) {
    case Fault::restart:
    case Fault::reset:
      // A connection error: the caller cannot tell whether it ran.
      recorder_.no_reply(command);
      return error_reply(core::OutcomeClass::transient);
    case Fault::busy:
      // BUSY and LOADING say the command did not run.
      recorder_.not_run(command);
      return error_reply(core::classify_store_error("BUSY"));
    case Fault::timeout:
      recorder_.no_reply(command);
      return std::nullopt;
    case Fault::noscript:
      // EVALSHA answered NOSCRIPT; EVAL goes out in the same attempt.
      sleep_until(now_ms() + std::max<core::Ms>(1, draw_latency()));
      break;
    case Fault::lost_reply:
    case Fault::none:
      break;
  }

  const bool legacy = options_.mode == GateMode::legacy && op.kind == core::OpKind::admit;
  const core::Decision decision = legacy ? legacy_admit(pool, op) : atomic_step(pool, op);
  if (fault == Fault::lost_reply) {
    recorder_.no_reply(command);
    return std::nullopt;
  }
  recorder_.answered(command, decision, now_ms(), current_step());
  core::StoreReply reply;
  reply.decision = decision;
  return reply;
}

FakeStore::Fault FakeStore::draw_fault() {
  if (healed_) return Fault::none;
  const StoreFaults& f = options_.faults;
  // One draw per site that is on, in a fixed order; the first that fires wins.
  if (draws_.chance_permille(DrawSite::store_fault, f.restart_permille)) {
    fault_fired("store.restart", "all data lost");
    return Fault::restart;
  }
  if (draws_.chance_permille(DrawSite::store_fault, f.reset_permille)) {
    fault_fired("store.reset", "connection reset before apply");
    return Fault::reset;
  }
  if (draws_.chance_permille(DrawSite::store_fault, f.busy_permille)) {
    const bool loading = draws_.below(DrawSite::store_fault, 2) == 1;
    fault_fired("store.busy", loading ? "LOADING" : "BUSY");
    return Fault::busy;
  }
  if (draws_.chance_permille(DrawSite::store_fault, f.timeout_permille)) {
    fault_fired("store.timeout", "no reply");
    return Fault::timeout;
  }
  if (draws_.chance_permille(DrawSite::store_fault, f.lost_reply_permille)) {
    fault_fired("store.lost_reply", "applied, reply dropped");
    return Fault::lost_reply;
  }
  if (draws_.chance_permille(DrawSite::store_fault, f.noscript_permille)) {
    fault_fired("store.noscript", "EVAL fallback");
    return Fault::noscript;
  }
  return Fault::none;
}

core::Ms FakeStore::draw_latency() {
  if (healed_ || options_.faults.latency_max_ms <= 0) return 0;
  return draws_.uniform(DrawSite::store_latency, 0, options_.faults.latency_max_ms);
}

FakeStore::Pool& FakeStore::pool_for(const std::string& name) {
  auto found = pools_.find(name);
  if (found == pools_.end()) found = pools_.emplace(name, Pool{{}, options_.config}).first;
  return found->second;
}

void FakeStore::fault_fired(std::string site, std::string detail) {
  sink_(FaultFired{std::move(site), std::move(detail)});
}

core::Decision FakeStore::atomic_step(const std::string& name, const core::Op& op) {
  Pool& pool = pool_for(name);
  core::PoolState before = pool.state;
  const core::Decision decision = options_.gate(pool.state, op, pool.config);
  sink_(GateStep{name, op, decision, pool.config, std::move(before), pool.state, false});
  return decision;
}

core::Decision FakeStore::legacy_admit(const std::string& name, const core::Op& op) {
  // Read step: the old route read the pool (G1, G2, the slots held, the
  // client's own session) and decided locally, exactly as G would decide from
  // what it read. That decision is the gate run on a copy of the pool.
  core::PoolState view = pool_for(name).state;
  const core::GateConfig config = pool_for(name).config;
  core::Decision planned = options_.gate(view, op, config);
  if (!writes(planned)) {
    // Nothing to write: the read was the whole operation, and it changed
    // only what G1-G2 change, all in this one step.
    Pool& pool = pool_for(name);
    core::PoolState before = std::move(pool.state);
    pool.state = std::move(view);
    sink_(GateStep{name, op, planned, config, std::move(before), pool.state, true});
    return planned;
  }
  const core::Session* read = core::find_session(view, op.client);
  TS_ASSERT(read != nullptr);
  core::Session session = *read;

  // The local decision, then the write's own round trip: other commands may
  // run in between, which is the race this gate models.
  yield_point();
  if (const core::Ms latency_ms = draw_latency(); latency_ms > 0) {
    sleep_until(now_ms() + latency_ms);
  } else {
    yield_point();
  }

  // Write step, against the pool as it is now (a restart may have emptied
  // it): remove the victim, put the client's session, take new tokens from
  // the pool's counter as it is now.
  Pool& pool = pool_for(name);
  core::PoolState before = pool.state;
  core::PoolState& state = pool.state;
  state.last_now = std::max(state.last_now, op.now);
  prune(state, config);
  if (planned.outcome == core::Outcome::rotated) {
    std::erase_if(state.sessions, [&](const core::Session& s) { return s.client == planned.victim; });
  }
  if (core::is_new_token(planned.outcome)) {
    session.token = ++state.last_token;
    planned.token = session.token;
  }
  session.last_seen = state.last_now;
  auto own = std::find_if(state.sessions.begin(), state.sessions.end(),
                          [&](const core::Session& s) { return s.client == op.client; });
  if (own == state.sessions.end()) own = state.sessions.insert(state.sessions.end(), session);
  else *own = session;
  planned.held = static_cast<std::int64_t>(state.sessions.size());
  own->last_decision = planned;
  sink_(GateStep{name, op, planned, config, std::move(before), state, true});
  return planned;
}

}  // namespace turnstile::sim
