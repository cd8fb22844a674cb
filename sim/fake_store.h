#pragma once

// The fake Redis: the gate's pools, applied by the atomic gate (one step, as
// gate.lua does) or by the legacy read-decide-write gate, behind the store's
// fault sites. A call runs inside the calling simulated fiber: its latency is
// a sleep on the virtual clock, and the legacy gate's steps are separated by
// scheduling points, so other fibers can run in between.
//
// What each fault does to one call (SPEC R3):
//   reset      connection reset before the command ran: transient, not applied
//   busy       BUSY or LOADING: transient, not applied
//   timeout    never answered, not applied: the caller waits to its deadline
//   noscript   EVALSHA failed; the adapter's EVAL fallback costs a second round
//              trip inside the same attempt, then the command applies
//   lost_reply applied, but the reply never arrives: the caller times out
//   restart    the store lost every pool (tokens start again from 1); the
//              call itself sees a connection error: transient, not applied
//
// Every call is also recorded as its caller saw it (sim/gate_history.h), for
// P14: when it entered the store, how it ended, and what it answered.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/flow.h"
#include "core/gate.h"
#include "sim/draws.h"
#include "sim/gate_history.h"
#include "sim/history.h"
#include "sim/world.h"

namespace turnstile::sim {

using GateFunction = std::function<core::Decision(core::PoolState&, const core::Op&, const core::GateConfig&)>;

// Where the fakes record what they did (the world appends it to the history).
using EventSink = std::function<void(EventBody)>;

// The store's fault sites for one run, as the swarm drew them: a rate per
// call in permille (0: the site is off) and the most latency a call may add.
struct StoreFaults {
  core::Ms latency_max_ms = 0;
  std::uint32_t timeout_permille = 0;
  std::uint32_t lost_reply_permille = 0;
  std::uint32_t reset_permille = 0;
  std::uint32_t busy_permille = 0;
  std::uint32_t noscript_permille = 0;
  std::uint32_t restart_permille = 0;
};

struct StoreOptions {
  GateMode mode = GateMode::atomic;
  core::GateConfig config;  // every pool's
  StoreFaults faults;
  GateFunction gate;  // the atomic gate; empty means core::apply
  // The most calls the gate history records (sim/gate_history.h); past it
  // the history is marked truncated.
  std::size_t max_gate_commands = kMaxHistoryOps;
};

class FakeStore {
 public:
  FakeStore(StoreOptions options, Draws& draws, EventSink sink);

  // One store command (an admit, heartbeat or release) against `pool`, with
  // op.now as the caller's clock (G1 keeps each pool monotonic whatever it
  // says). Must be called from a simulated fiber. Returns the reply, or
  // nullopt when no reply will ever come (timeout, lost reply).
  std::optional<core::StoreReply> call(const std::string& pool, const core::Op& op);

  // From now on no call draws or suffers a fault (the liveness phase).
  void heal() { healed_ = true; }
  bool healed() const { return healed_; }

  // A pool's state, or null if the store has none by that name.
  const core::PoolState* pool(std::string_view name) const;

  // Every call so far, as its caller saw it (P14's input).
  GateHistory gate_history() const { return recorder_.history(); }

 private:
  enum class Fault { none, restart, reset, busy, timeout, lost_reply, noscript };
  struct Pool {
    core::PoolState state;
    core::GateConfig config;
  };

  Fault draw_fault();
  core::Ms draw_latency();
  Pool& pool_for(const std::string& name);
  // One atomic step of the gate, recorded.
  core::Decision atomic_step(const std::string& name, const core::Op& op);
  // The legacy gate's admit: read, decide, write, with scheduling points between.
  core::Decision legacy_admit(const std::string& name, const core::Op& op);
  void fault_fired(std::string site, std::string detail);

  StoreOptions options_;
  Draws& draws_;
  EventSink sink_;
  bool healed_ = false;
  GateHistoryRecorder recorder_;
  // Ordered by name, so any walk over the pools is deterministic. At most one
  // pool per name a scenario uses.
  std::map<std::string, Pool, std::less<>> pools_;
};

}  // namespace turnstile::sim
