#pragma once

// What a run did, as the checkers see it: every client-visible event and
// every step of the fake store and broker, each with its virtual time. The
// world appends events as they happen; checkers read them (sim/checkers.h);
// traces store them (sim/trace.h). The history is bounded: a run that would
// record more than its limit ends with that as its outcome.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/coalesce.h"
#include "core/flow.h"
#include "core/gate.h"
#include "core/response.h"
#include "core/time.h"

namespace turnstile::sim {

using InstanceId = std::uint32_t;  // which server instance (each has its own route and coalescer)

// A client sent a stream request; `waiter` names it until it is answered.
struct RequestSent {
  InstanceId instance = 0;
  core::WaiterId waiter = 0;
  core::StreamRequest request;
};

// The route answered a waiter (F2/F3). `token` is the session token the
// answer carried in its stream URLs, if any.
struct ResponseReceived {
  InstanceId instance = 0;
  core::WaiterId waiter = 0;
  core::Response response;
  core::Token token = core::kNoToken;
};

// A waiter went away before its answer (C4).
struct WaiterLeft {
  InstanceId instance = 0;
  core::WaiterId waiter = 0;
};

// A flight started (a leader's request) or ended (its answer went out).
struct FlightStarted {
  InstanceId instance = 0;
  core::FlightId flight = 0;
  core::FlightKey key;
};
struct FlightEnded {
  InstanceId instance = 0;
  core::FlightId flight = 0;
};

enum class Dependency : std::uint8_t { store, broker };

// A flight started an attempt at a dependency (a StoreCall or BrokerCall effect).
struct CallStarted {
  InstanceId instance = 0;
  core::FlightId flight = 0;
  Dependency dependency = Dependency::store;
  std::uint32_t call = 0;  // the flow's call id
  int attempt = 1;
  core::Op op;             // store calls: the gate op (admit or release)
  core::Ms deadline = 0;
};

// The driver delivered an attempt's result to the route (or noticed its
// deadline pass: outcome transient, timed_out true).
struct CallEnded {
  InstanceId instance = 0;
  core::FlightId flight = 0;
  Dependency dependency = Dependency::store;
  std::uint32_t call = 0;
  core::OutcomeClass outcome_class = core::OutcomeClass::success;
  std::optional<core::Ms> retry_after_ms;
  bool timed_out = false;
};

// The fake store applied one gate operation to a pool. For the atomic gate
// this is core::apply (or an injected gate); for the legacy gate it is the
// write step, applied against the pool as it is now, not as it was read.
// `before` is the pool before the step (before G1/G2), `after` after it.
// Client heartbeats and releases are gate steps too (they go to the store
// directly, not through the route).
struct GateStep {
  std::string pool;
  core::Op op;
  core::Decision decision;
  core::GateConfig config;
  core::PoolState before;
  core::PoolState after;
  bool legacy = false;
};

// A fault site fired: which site, and what it did.
struct FaultFired {
  std::string site;    // e.g. "store.lost_reply", "broker.status"
  std::string detail;  // e.g. "503 retry-after 400"
};

// The store lost all data (a restart).
struct StoreRestarted {};

// The liveness phase began: every fault is healed from here on.
struct FaultsHealed {};

using EventBody = std::variant<RequestSent, ResponseReceived, WaiterLeft, FlightStarted, FlightEnded, CallStarted,
                               CallEnded, GateStep, FaultFired, StoreRestarted, FaultsHealed>;

struct Event {
  std::uint64_t index = 0;  // position in the history, from 0
  std::uint64_t step = 0;   // the scheduler step during which it happened
  core::Ms at_ms = 0;       // virtual time
  EventBody body;
};

// The name of an event's kind, as traces and messages spell it:
// "request", "response", "leave", "flight_start", "flight_end", "call",
// "call_end", "gate", "fault", "store_restart", "faults_healed".
std::string_view event_kind_name(const EventBody& body);

// A 64-bit hash of one event, over every field, in a fixed order: the run's
// fingerprint is the running hash of these (sim/fingerprint.h).
std::uint64_t event_hash(const Event& event);

class History {
 public:
  explicit History(std::size_t max_events = 1'000'000);

  // Appends; false, and nothing recorded, when the bound is reached.
  bool append(std::uint64_t step, core::Ms at_ms, EventBody body);

  const std::vector<Event>& events() const { return events_; }
  std::size_t size() const { return events_.size(); }
  std::size_t max_events() const { return max_events_; }
  // The running fingerprint over every event so far.
  std::uint64_t fingerprint() const { return fingerprint_; }

 private:
  std::size_t max_events_;
  std::vector<Event> events_;
  std::uint64_t fingerprint_;
};

}  // namespace turnstile::sim
