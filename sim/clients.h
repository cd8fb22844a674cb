#pragma once

// The scenario's clients as simulated fibers, one script per behaviour
// (sim/scenario.h): watch, blip, zap, burst, storm. A client asks an
// instance's route for a stream, waits for its answer, then heartbeats its
// session straight through the store and releases it (or abandons it).
// Every choice a client makes (start times, time away, whether to abandon,
// which instance) is a draw, so a seed and its recorded draws decide them.
//
// Clients start no new request once the fault phase has ended, except a
// blip's reconnection already under way; every client fiber ends.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/coalesce.h"
#include "core/flow.h"
#include "core/gate.h"
#include "core/response.h"
#include "sim/draws.h"
#include "sim/history.h"
#include "sim/scenario.h"

namespace turnstile::sim {

// An answer as the client reads it: the response and the session token its
// stream URLs carry (kNoToken for a denial).
struct Answer {
  core::Response response;
  core::Token token = core::kNoToken;
};

// What the world offers its clients. Every call is made from a client fiber.
class ClientWorld {
 public:
  virtual ~ClientWorld() = default;
  virtual std::uint32_t instance_count() const = 0;
  // Sends a stream request to an instance (the world stamps issued_at with
  // the instance's clock) and returns the waiter that names it.
  virtual core::WaiterId send(InstanceId instance, core::StreamRequest request) = 0;
  // Parks until the waiter's answer arrives, or until deadline_ms (nullopt).
  virtual std::optional<Answer> await_answer(core::WaiterId waiter, core::Ms deadline_ms) = 0;
  // The client went away before its answer (C4). No effect once answered.
  virtual void leave(core::WaiterId waiter) = 0;
  // A heartbeat or release straight to the store, stamped with the
  // instance's clock. nullopt when the store never replied; the call then
  // took the store's attempt timeout.
  virtual std::optional<core::StoreReply> store(InstanceId instance, core::Op op) = 0;
  // Starts another client fiber (a burst's extra members); false if the run refused.
  virtual bool spawn(std::string name, std::function<void()> body) = 0;
};

// What clients need to know of the run.
struct ClientSetup {
  std::string pool;
  core::Ms duration_ms = 0;  // the fault phase: no new request starts after it
  core::Ms answer_timeout_ms = 0;  // a client gives up on an answer after this (past F6 for a sound route)
  core::Ms away_max_ms = 0;  // a blip's longest time away: T + G
};

// The fiber bodies of every client of the scenario, in a fixed order (group
// by group), each with its name ("c0", "c1", ...). The bodies refer to
// `world` and `draws`, which must outlive the run.
struct ClientFiber {
  std::string name;
  std::function<void()> body;
};
std::vector<ClientFiber> make_clients(const Scenario& scenario, const ClientSetup& setup, ClientWorld& world,
                                      Draws& draws);

// The token a granted answer's stream URLs carry as `session=`, or kNoToken.
core::Token token_of(const core::Response& response);

}  // namespace turnstile::sim
