#include "core/flow.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "core/assert.h"
#include "core/ids.h"

namespace turnstile::core {
namespace {

// One input yields at most a handful of effects (a retry's effect, the next
// phase's first attempt, a response), and the driver drains them after every
// input, so more than this pending at once is a driver that never polls.
constexpr std::size_t kMaxPendingEffects = 8;

// Each input makes each retry machine emit at most one effect, and one input
// can end at most every phase, so one drive() never needs more steps than this.
constexpr int kMaxDriveSteps = 8;

// Three phases (gate, resolve, release) of at most two attempts each (R4): the
// most calls one flow ever emits, so call ids never wrap.
constexpr std::uint32_t kMaxCalls = 6;

// A broker reply is outside input; a flight keeps this many of its streams at
// most, so one response stays bounded whatever the broker sent.
constexpr std::size_t kMaxStreams = 64;

bool is_valid_time(Ms t) { return t >= 0 && t <= kMaxTimeMs; }

// Budgets are validated but not bounded from above; the F6 bound must not overflow.
Ms saturating_add(Ms a, Ms b) {
  if (b > 0 && a > std::numeric_limits<Ms>::max() - b) return std::numeric_limits<Ms>::max();
  return a + b;
}

// A store success that answers an admit: one of G3-G8's outcomes, and a token
// whenever a session was granted. Anything else is a malformed reply (R3: permanent).
bool answers_admit(const std::optional<Decision>& decision) {
  if (!decision) return false;
  switch (decision->outcome) {
    case Outcome::admitted:
    case Outcome::resumed:
    case Outcome::switched:
    case Outcome::rotated:
      return decision->token != kNoToken;
    case Outcome::superseded:
    case Outcome::blocked_capacity:
      return true;
    case Outcome::alive:
    case Outcome::gone:
    case Outcome::released:
      return false;
  }
  return false;
}

// A store success that answers a release: G12's outcomes. Anything else is a
// malformed reply (R3: permanent).
bool answers_release(const std::optional<Decision>& decision) {
  return decision && (decision->outcome == Outcome::released || decision->outcome == Outcome::gone);
}

}  // namespace

Flow::Flow(const FlowConfig& config, StreamRequest request) : config_(config), request_(std::move(request)) {
  // The route validates every request (V4) before a flow exists.
  TS_ASSERT(is_valid_id(IdKind::pool, request_.pool));
  TS_ASSERT(is_valid_id(IdKind::client, request_.client));
  TS_ASSERT(is_valid_id(IdKind::episode, request_.episode));
  TS_ASSERT(is_valid_id(IdKind::request, request_.request));
  TS_ASSERT(is_valid_time(request_.issued_at));
  TS_ASSERT(!check_retry_config(config_.store));
  TS_ASSERT(!check_retry_config(config_.broker));
}

void Flow::start(Ms now) {
  TS_ASSERT(phase_ == Phase::idle);
  started_at_ = now;
  // F1: the gate comes first; nothing reaches the broker before it granted.
  phase_ = Phase::gate;
  retry_.emplace(config_.store, now);
  retry_->start();
  drive(now);
}

void Flow::on_store_reply(Ms now, std::uint32_t call, const StoreReply& reply, Rng& rng) {
  // A reply to any other call is stale: its attempt timed out, it belongs to
  // an earlier phase, or it was already answered. It says nothing about the
  // running attempt, which still ends by its own reply or deadline.
  const std::optional<int> attempt = outstanding_attempt(CallKind::store, call);
  if (!attempt) return;
  TS_ASSERT(phase_ == Phase::gate || phase_ == Phase::release);
  note_input(now);
  AttemptResult result = reply.result;
  if (result.outcome_class == OutcomeClass::success) {
    const bool well_formed =
        phase_ == Phase::gate ? answers_admit(reply.decision) : answers_release(reply.decision);
    if (!well_formed) result.outcome_class = OutcomeClass::permanent;
  }
  if (phase_ == Phase::gate) {
    // Kept only for on_retry_done: the retry ends in success only on this very reply.
    decision_ = result.outcome_class == OutcomeClass::success ? reply.decision : std::nullopt;
  }
  retry_->on_result(now, *attempt, result, rng);
  drive(now);
}

void Flow::on_broker_reply(Ms now, std::uint32_t call, const BrokerReply& reply, Rng& rng) {
  // A reply to any other call is stale (see on_store_reply).
  const std::optional<int> attempt = outstanding_attempt(CallKind::broker, call);
  if (!attempt) return;
  TS_ASSERT(phase_ == Phase::resolve);
  note_input(now);
  // Kept only for on_retry_done: the retry ends in success only on this very reply.
  streams_.clear();
  if (reply.result.outcome_class == OutcomeClass::success) {
    const std::size_t kept = std::min(reply.streams.size(), kMaxStreams);
    streams_.assign(reply.streams.begin(), reply.streams.begin() + static_cast<std::ptrdiff_t>(kept));
  }
  retry_->on_result(now, *attempt, reply.result, rng);
  drive(now);
}

void Flow::on_timer(Ms now, Rng& rng) {
  if (phase_ == Phase::idle || phase_ == Phase::done) return;
  note_input(now);
  retry_->on_timer(now, rng);
  drive(now);
}

std::optional<FlowEffect> Flow::poll() {
  if (next_effect_ == effects_.size()) return std::nullopt;
  FlowEffect effect = std::move(effects_[next_effect_]);
  ++next_effect_;
  if (next_effect_ == effects_.size()) {
    // Drained: reuse the storage, so the vector never grows past one input's effects.
    effects_.clear();
    next_effect_ = 0;
  }
  return effect;
}

std::optional<Ms> Flow::next_deadline() const {
  if (phase_ == Phase::idle || phase_ == Phase::done || !retry_) return std::nullopt;
  return retry_->next_deadline();
}

bool Flow::done() const { return phase_ == Phase::done; }

void Flow::drive(Ms now) {
  for (int step = 0; retry_; ++step) {
    TS_ASSERT(step < kMaxDriveSteps);
    std::optional<RetryEffect> effect = retry_->poll();
    if (!effect) return;
    if (const auto* attempt = std::get_if<StartAttempt>(&*effect)) {
      // The previous attempt ended with an effect of its own, so none is outstanding.
      TS_ASSERT(!outstanding_);
      TS_ASSERT(calls_emitted_ < kMaxCalls);
      ++calls_emitted_;
      if (phase_ == Phase::resolve) {
        outstanding_ = Outstanding{CallKind::broker, calls_emitted_, attempt->attempt};
        emit(BrokerCall{calls_emitted_, attempt->attempt, request_.episode, attempt->deadline});
      } else {
        outstanding_ = Outstanding{CallKind::store, calls_emitted_, attempt->attempt};
        // R3a: every attempt of the admit carries the request's own id.
        emit(StoreCall{calls_emitted_, attempt->attempt, store_op(now), attempt->deadline});
      }
    } else if (const auto* wake = std::get_if<RetryWake>(&*effect)) {
      // The running attempt ended (answered or timed out); the retry waits.
      outstanding_.reset();
      emit(Wake{wake->at});
    } else {
      // The machine is done, so its last attempt ended. on_retry_done may
      // replace or reset retry_; the loop then drains the next phase's machine.
      outstanding_.reset();
      on_retry_done(now, std::get<RetryDone>(*effect).outcome_class);
    }
  }
}

std::optional<int> Flow::outstanding_attempt(CallKind kind, std::uint32_t call) const {
  if (!outstanding_ || outstanding_->kind != kind || outstanding_->call != call) return std::nullopt;
  TS_ASSERT(retry_ && !retry_->done());
  return outstanding_->attempt;
}

void Flow::on_retry_done(Ms now, OutcomeClass outcome_class) {
  const bool success = outcome_class == OutcomeClass::success;
  switch (phase_) {
    case Phase::gate:
      if (success) {
        TS_ASSERT(answers_admit(decision_));
        if (is_granted(decision_->outcome)) {
          begin_resolve(now);
        } else if (decision_->outcome == Outcome::superseded) {
          respond(now, Response::denial(DenialReason::superseded));  // G4
        } else {
          TS_ASSERT(decision_->outcome == Outcome::blocked_capacity);
          respond(now, Response::denial(DenialReason::capacity));  // G8
        }
        return;
      }
      // F4: the store failed after R; no decision was made.
      decision_.reset();
      if (config_.fail_policy == FailPolicy::fail_open) {
        begin_resolve(now);
      } else {
        respond(now, Response::denial(DenialReason::unavailable));
      }
      return;
    case Phase::resolve:
      if (success) {
        std::vector<Stream> streams = std::move(streams_);
        streams_.clear();
        if (decision_) {
          // F2: every stream carries the session token; fail_open has none to carry.
          const std::string token = std::to_string(decision_->token);
          for (Stream& stream : streams) stream.url = with_session_token(stream.url, token);
        }
        respond(now, Response::granted(std::move(streams)));
        return;
      }
      // F5: a token this flight created would otherwise hold a slot for T + G.
      if (decision_ && is_new_token(decision_->outcome)) {
        begin_release(now);
      } else {
        respond(now, Response::denial(DenialReason::resolve_failed));
      }
      return;
    case Phase::release:
      // F5: released, gone or failed, the answer is the same; a failed
      // release leaves the slot to G2 within T + G.
      respond(now, Response::denial(DenialReason::resolve_failed));
      return;
    case Phase::idle:
    case Phase::done:
      TS_ASSERT(false);
  }
}

void Flow::begin_resolve(Ms now) {
  TS_ASSERT(phase_ == Phase::gate);
  phase_ = Phase::resolve;
  retry_.emplace(config_.broker, now);
  retry_->start();
}

void Flow::begin_release(Ms now) {
  TS_ASSERT(phase_ == Phase::resolve);
  TS_ASSERT(decision_ && decision_->token != kNoToken);
  phase_ = Phase::release;
  retry_.emplace(config_.store, now);
  retry_->start();
}

void Flow::respond(Ms now, Response response) {
  TS_ASSERT(phase_ != Phase::idle && phase_ != Phase::done);
  // F6: each phase ends within its budget of its start, so the whole flight
  // ends within the three budgets, plus however late the driver's inputs came.
  Ms bound = saturating_add(started_at_, config_.store.budget_ms);
  bound = saturating_add(bound, config_.broker.budget_ms);
  bound = saturating_add(bound, config_.store.budget_ms);
  bound = saturating_add(bound, late_ms_);
  TS_ASSERT(now <= bound);
  TS_ASSERT(!outstanding_);  // a flow answers only once its last call ended
  phase_ = Phase::done;
  retry_.reset();
  emit(Respond{std::move(response)});
}

void Flow::emit(FlowEffect effect) {
  TS_ASSERT(effects_.size() - next_effect_ < kMaxPendingEffects);
  effects_.push_back(std::move(effect));
}

void Flow::note_input(Ms now) {
  const std::optional<Ms> deadline = next_deadline();
  if (deadline && now > *deadline) late_ms_ = saturating_add(late_ms_, now - *deadline);
}

Op Flow::store_op(Ms now) const {
  Op op;
  op.client = request_.client;
  op.now = now;
  if (phase_ == Phase::release) {
    op.kind = OpKind::release;
    op.token = decision_->token;
  } else {
    op.kind = OpKind::admit;
    op.episode = request_.episode;
    op.request = request_.request;
    op.issued_at = request_.issued_at;
  }
  return op;
}

}  // namespace turnstile::core
