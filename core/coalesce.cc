#include "core/coalesce.h"

#include <algorithm>
#include <utility>

#include "core/assert.h"

namespace turnstile::core {

// A bound of 0 is allowed: it answers every request of that kind `busy` (C5).
Coalescer::Coalescer(const CoalesceConfig& config) : config_(config) {}

JoinResult Coalescer::join(const FlightKey& key, WaiterId waiter) {
  TS_ASSERT(by_key_.size() == flights_.size());
  TS_ASSERT(flights_.size() <= config_.max_flights);

  if (auto found = by_key_.find(key); found != by_key_.end()) {
    auto flight = flights_.find(found->second);
    TS_ASSERT(flight != flights_.end());
    TS_ASSERT(flight->second.key == key);
    TS_ASSERT(flight->second.waiters.size() <= config_.max_waiters);
    // C5: a full flight turns the newcomer away rather than growing.
    if (flight->second.waiters.size() >= config_.max_waiters) return JoinResult{JoinOutcome::busy, 0};
    // C1: the key's running flight serves this request too.
    flight->second.waiters.push_back(waiter);
    return JoinResult{JoinOutcome::joined, flight->first};
  }

  // C5: a full table records nothing, so a busy answer leaves no trace. The
  // leader is the new flight's first waiter, so it needs room for one.
  if (flights_.size() >= config_.max_flights || config_.max_waiters == 0) {
    return JoinResult{JoinOutcome::busy, 0};
  }

  const FlightId id = ++last_flight_;
  TS_ASSERT(id != 0);  // the counter never wraps, so ids are never reused
  by_key_.emplace(key, id);
  flights_.emplace(id, Flight{key, {waiter}});
  TS_ASSERT(by_key_.size() == flights_.size());
  return JoinResult{JoinOutcome::leader, id};
}

bool Coalescer::leave(FlightId flight, WaiterId waiter) {
  auto found = flights_.find(flight);
  if (found == flights_.end()) return false;
  auto& waiters = found->second.waiters;
  auto it = std::find(waiters.begin(), waiters.end(), waiter);
  if (it == waiters.end()) return false;
  // C4: the flight goes on even when its last waiter leaves; only finish ends it.
  waiters.erase(it);
  return true;
}

std::vector<WaiterId> Coalescer::finish(FlightId flight) {
  auto found = flights_.find(flight);
  if (found == flights_.end()) return {};
  auto key = by_key_.find(found->second.key);
  TS_ASSERT(key != by_key_.end());
  TS_ASSERT(key->second == flight);
  // C3: the key and the flight go together, so a later request starts a new flight.
  std::vector<WaiterId> waiters = std::move(found->second.waiters);
  by_key_.erase(key);
  flights_.erase(found);
  TS_ASSERT(by_key_.size() == flights_.size());
  return waiters;
}

std::size_t Coalescer::flight_count() const {
  TS_ASSERT(by_key_.size() == flights_.size());
  return flights_.size();
}

std::size_t Coalescer::waiter_count(FlightId flight) const {
  auto found = flights_.find(flight);
  return found == flights_.end() ? 0 : found->second.waiters.size();
}

bool Coalescer::has_flight(FlightId flight) const { return flights_.contains(flight); }

const FlightKey* Coalescer::key_of(FlightId flight) const {
  auto found = flights_.find(flight);
  return found == flights_.end() ? nullptr : &found->second.key;
}

}  // namespace turnstile::core
