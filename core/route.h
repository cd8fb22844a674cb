#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <variant>

#include "core/coalesce.h"
#include "core/flow.h"

namespace turnstile::core {

// SPEC F1 end to end: validate (V) -> coalesce (C) -> one Flow per flight.
// The driver (simulator or production server) feeds requests, replies and
// timers in, and performs the effects it polls out. Every effect names the
// flight it belongs to; every call also carries its id within the flight,
// which the driver hands back with the reply; every Respond names the waiter
// it answers.
struct RouteConfig {
  FlowConfig flow;
  CoalesceConfig coalesce;
};

struct RouteStoreCall {
  FlightId flight = 0;
  StoreCall call;
};
struct RouteBrokerCall {
  FlightId flight = 0;
  BrokerCall call;
};
struct RouteWake {
  Ms at = 0;
};
struct RouteRespond {
  WaiterId waiter = 0;
  Response response;
};
using RouteEffect = std::variant<RouteStoreCall, RouteBrokerCall, RouteWake, RouteRespond>;

class Route {
 public:
  explicit Route(const RouteConfig& config);

  // A new request. Invalid ids (V4) are answered `policy` at once; a request
  // over a C5 bound is answered `busy` at once; a request whose key has a
  // flight joins it (C1); otherwise a new flight starts. `now` is the
  // request's arrival (its issued_at).
  void on_request(Ms now, WaiterId waiter, const StreamRequest& request, Rng& rng);

  // C4: the waiter went away (client disconnected). Its flight goes on.
  void on_leave(Ms now, WaiterId waiter);

  // The reply to the call with id `call` (RouteStoreCall::call.call,
  // RouteBrokerCall::call.call) of `flight`. A reply for a flight that has
  // ended, or for a call that is not the flight's outstanding one, is stale
  // and ignored (Flow).
  void on_store_reply(Ms now, FlightId flight, std::uint32_t call, const StoreReply& reply, Rng& rng);
  void on_broker_reply(Ms now, FlightId flight, std::uint32_t call, const BrokerReply& reply, Rng& rng);
  void on_timer(Ms now, Rng& rng);

  [[nodiscard]] std::optional<RouteEffect> poll();
  std::optional<Ms> next_deadline() const;

  std::size_t flight_count() const;  // C6: 0 at quiescence
  const Coalescer& coalescer() const;

 private:
  // Moves a flight's effects to the route's queue; when it responded, answers
  // every waiter and ends the flight in the same step (C2, C3).
  void drain(FlightId flight);

  RouteConfig config_;
  Coalescer coalescer_;
  std::map<FlightId, Flow> flows_;
  std::map<WaiterId, FlightId> waiting_;  // which flight each live waiter waits on
  std::deque<RouteEffect> effects_;       // bounded by flights x effects per input
};

}  // namespace turnstile::core
