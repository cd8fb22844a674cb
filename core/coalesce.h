#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace turnstile::core {

// SPEC C: identical in-flight requests of one client and episode share one flight.
struct FlightKey {
  std::string pool;
  std::string client;
  std::string episode;

  auto operator<=>(const FlightKey&) const = default;
  bool operator==(const FlightKey&) const = default;
};

using FlightId = std::uint64_t;  // assigned by the coalescer, from 1, never reused
using WaiterId = std::uint64_t;  // assigned by the driver; unique among live requests

struct CoalesceConfig {
  std::size_t max_flights = 10000;  // C5
  std::size_t max_waiters = 64;     // C5, per flight
};

enum class JoinOutcome {
  leader,  // a new flight was started for this key; the caller must run it
  joined,  // the request waits on the key's running flight (C1)
  busy,    // a bound of C5 was hit; answer `busy` at once, nothing was queued
};

struct JoinResult {
  JoinOutcome outcome = JoinOutcome::busy;
  FlightId flight = 0;  // 0 when busy
};

// The flight table. Flights are kept in ordered maps so that any walk over
// them is deterministic.
class Coalescer {
 public:
  explicit Coalescer(const CoalesceConfig& config = {});

  // C1, C5: joins the key's flight, or starts one.
  JoinResult join(const FlightKey& key, WaiterId waiter);

  // C4: the waiter went away. The flight goes on, even with no waiter left.
  // Returns false if the waiter was not waiting on that flight.
  bool leave(FlightId flight, WaiterId waiter);

  // C3: the flight ended. Returns its remaining waiters in join order, every
  // one of which must receive the same response (C2), and removes the key in
  // the same step, so a later request starts a new flight.
  std::vector<WaiterId> finish(FlightId flight);

  std::size_t flight_count() const;                // C6: 0 at quiescence
  std::size_t waiter_count(FlightId flight) const;  // 0 for an unknown flight
  bool has_flight(FlightId flight) const;
  const FlightKey* key_of(FlightId flight) const;

 private:
  struct Flight {
    FlightKey key;
    std::vector<WaiterId> waiters;
  };
  CoalesceConfig config_;
  FlightId last_flight_ = 0;
  std::map<FlightKey, FlightId> by_key_;
  std::map<FlightId, Flight> flights_;
};

}  // namespace turnstile::core
