#include "core/route.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "core/ids.h"

namespace turnstile::core {
namespace {

bool is_valid_time(Ms t) { return t >= 0 && t <= kMaxTimeMs; }

// V1-V3, and an arrival time the gate can take (V4).
bool is_valid_request(const StreamRequest& request) {
  return is_valid_id(IdKind::pool, request.pool) && is_valid_id(IdKind::client, request.client) &&
         is_valid_id(IdKind::episode, request.episode) && is_valid_id(IdKind::request, request.request) &&
         is_valid_time(request.issued_at);
}

// A flow yields at most a few effects per input (Flow's own bound), and its
// end answers at most max_waiters requests; one input can touch every flight.
// The driver drains after every input, so the queue never holds more.
std::size_t effect_bound(const CoalesceConfig& config) {
  constexpr std::size_t kEffectsPerFlight = 8;
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  const std::size_t per_flight = config.max_waiters > max - kEffectsPerFlight ? max : config.max_waiters + kEffectsPerFlight;
  if (config.max_flights != 0 && per_flight > max / config.max_flights) return max;
  // Requests turned away (policy, busy) are answered at once; leave room for a burst of them too.
  const std::size_t bound = per_flight * config.max_flights;
  return bound > max - per_flight ? max : bound + per_flight;
}

}  // namespace

Route::Route(const RouteConfig& config) : config_(config), coalescer_(config.coalesce) {
  TS_ASSERT(!check_retry_config(config_.flow.store));
  TS_ASSERT(!check_retry_config(config_.flow.broker));
}

void Route::on_request(Ms now, WaiterId waiter, const StreamRequest& request, Rng& /*rng*/) {
  TS_ASSERT(is_valid_time(now));
  TS_ASSERT(!waiting_.contains(waiter));  // waiter ids are unique among live requests
  TS_ASSERT(effects_.size() < effect_bound(config_.coalesce));

  // F1, V4: nothing is touched for a request that is not well formed.
  if (!is_valid_request(request)) {
    effects_.push_back(RouteRespond{waiter, Response::denial(DenialReason::policy)});
    return;
  }

  const JoinResult joined = coalescer_.join(FlightKey{request.pool, request.client, request.episode}, waiter);
  switch (joined.outcome) {
    case JoinOutcome::busy:
      // C5: over a bound, answered at once and queued nowhere.
      effects_.push_back(RouteRespond{waiter, Response::denial(DenialReason::busy)});
      return;
    case JoinOutcome::joined:
      // C1: the running flight answers this request too.
      TS_ASSERT(flows_.contains(joined.flight));
      waiting_.emplace(waiter, joined.flight);
      return;
    case JoinOutcome::leader: {
      TS_ASSERT(!flows_.contains(joined.flight));
      waiting_.emplace(waiter, joined.flight);
      auto [flow, inserted] = flows_.try_emplace(joined.flight, config_.flow, request);
      TS_ASSERT(inserted);
      flow->second.start(now);
      drain(joined.flight);
      return;
    }
  }
}

void Route::on_leave(Ms /*now*/, WaiterId waiter) {
  auto found = waiting_.find(waiter);
  // Already answered, or never waited (answered at once): nothing to forget.
  if (found == waiting_.end()) return;
  // C4: the flight goes on for the others, and to its own end if none is left.
  const bool left = coalescer_.leave(found->second, waiter);
  TS_ASSERT(left);
  waiting_.erase(found);
}

void Route::on_store_reply(Ms now, FlightId flight, std::uint32_t call, const StoreReply& reply, Rng& rng) {
  auto found = flows_.find(flight);
  if (found == flows_.end()) return;  // the flight has ended; a late reply changes nothing
  found->second.on_store_reply(now, call, reply, rng);
  drain(flight);
}

void Route::on_broker_reply(Ms now, FlightId flight, std::uint32_t call, const BrokerReply& reply, Rng& rng) {
  auto found = flows_.find(flight);
  if (found == flows_.end()) return;  // the flight has ended; a late reply changes nothing
  found->second.on_broker_reply(now, call, reply, rng);
  drain(flight);
}

void Route::on_timer(Ms now, Rng& rng) {
  // Collected first because drain() erases flights that end; flight order
  // keeps the effects' order deterministic.
  std::vector<FlightId> due;
  due.reserve(flows_.size());
  for (const auto& [flight, flow] : flows_) {
    const std::optional<Ms> deadline = flow.next_deadline();
    if (deadline && *deadline <= now) due.push_back(flight);
  }
  for (FlightId flight : due) {
    auto found = flows_.find(flight);
    TS_ASSERT(found != flows_.end());
    found->second.on_timer(now, rng);
    drain(flight);
  }
}

std::optional<RouteEffect> Route::poll() {
  if (effects_.empty()) return std::nullopt;
  RouteEffect effect = std::move(effects_.front());
  effects_.pop_front();
  return effect;
}

std::optional<Ms> Route::next_deadline() const {
  std::optional<Ms> earliest;
  for (const auto& [flight, flow] : flows_) {
    const std::optional<Ms> deadline = flow.next_deadline();
    if (deadline && (!earliest || *deadline < *earliest)) earliest = deadline;
  }
  return earliest;
}

std::size_t Route::flight_count() const {
  TS_ASSERT(flows_.size() == coalescer_.flight_count());
  return coalescer_.flight_count();
}

const Coalescer& Route::coalescer() const { return coalescer_; }

void Route::drain(FlightId flight) {
  auto found = flows_.find(flight);
  TS_ASSERT(found != flows_.end());
  Flow& flow = found->second;

  std::optional<Response> response;
  while (std::optional<FlowEffect> effect = flow.poll()) {
    TS_ASSERT(!response);  // the response is a flight's last effect
    TS_ASSERT(effects_.size() < effect_bound(config_.coalesce));
    if (auto* store = std::get_if<StoreCall>(&*effect)) {
      effects_.push_back(RouteStoreCall{flight, std::move(*store)});
    } else if (auto* broker = std::get_if<BrokerCall>(&*effect)) {
      effects_.push_back(RouteBrokerCall{flight, std::move(*broker)});
    } else if (const auto* wake = std::get_if<Wake>(&*effect)) {
      effects_.push_back(RouteWake{wake->at});
    } else {
      response = std::move(std::get<Respond>(*effect).response);
    }
  }
  TS_ASSERT(response.has_value() == flow.done());
  if (!response) return;

  // C2, C3: every remaining waiter gets the same response, and the key, the
  // flow and the waiters are gone in this same step.
  const std::vector<WaiterId> waiters = coalescer_.finish(flight);
  for (WaiterId waiter : waiters) {
    TS_ASSERT(effects_.size() < effect_bound(config_.coalesce));
    effects_.push_back(RouteRespond{waiter, *response});
    const std::size_t erased = waiting_.erase(waiter);
    TS_ASSERT(erased == 1);
  }
  flows_.erase(found);
  TS_ASSERT(flows_.size() == coalescer_.flight_count());
}

}  // namespace turnstile::core
