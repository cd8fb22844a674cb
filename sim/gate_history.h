#pragma once

// P14 for the simulator: every command an instance or a client sends to the
// fake store, recorded as it looked to its caller, turned into a SPEC H
// history, and checked by lincheck (sim/lincheck.h) at the end of the run.
//
// What one command becomes, by how the fake store ended it (the faults are
// sim/fake_store.h's):
//   answered (no fault, noscript)  completed: call = when it entered the
//                          store, ret = when its reply was handed back, out =
//                          the decision the caller got
//   lost_reply             pending (ret null): applied, but no reply came
//   timeout                pending: not applied, and the caller cannot know
//   reset                  pending: a connection reset says nothing of
//                          whether the command ran (lincheck may choose
//                          "never happened", which is what the fake did)
//   busy                   left out: a BUSY or LOADING reply says the
//                          command did not run, so it is no operation
//   restart                pending, and a restart boundary (below)
//   legacy admit           one operation from its read to its write's reply,
//                          with the decision the caller got (GateMode::legacy:
//                          that the two steps are not atomic is what P14 sees)
//   cut off by the run's end  pending
//
// Restarts. A restart empties the store: every pool starts again from the
// empty state, tokens from 1. No gate operation does that, so the history is
// split at restarts into epochs, and each (pool, epoch) is checked as a pool
// of its own with fresh state: epoch 0 keeps the pool's name, epoch k > 0 is
// named "<pool>.restart<k>" (cut to fit SPEC V1's 64 bytes). The split uses
// the order in which the store saw things, not times: a command that entered
// the store after the k-th restart cannot have taken effect before it, and one
// whose reply came back before it cannot have taken effect after it. A
// command that spans restarts (entered in epoch i, ended in epoch j > i) is
// pending in every epoch from i to j: it may have taken effect in any one of
// them, or in none, and a pending operation's answer is not held against the
// gate. That loses no soundness and little power: restarts are rare, and the
// commands in flight across one are few.
//
// Times. call and ret are the run's virtual time in ms, plus 1: each pool
// begins with its config op at [0, 0] (the scenario's gate config, which the
// store gives every pool it creates), and lincheck counts equal readings as
// overlapping, so every gate operation must start after 0 for the config to
// come first. Commands at the same virtual ms overlap, whatever order the
// scheduler ran them in: coarse, never unsound.
//
// Processes are the op's client id (the lanes of lincheck's timelines).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gate.h"
#include "core/time.h"
#include "sim/history_format.h"
#include "sim/lincheck.h"

namespace turnstile::sim {

// How a recorded command ended.
enum class CommandEnd : std::uint8_t {
  open,      // still in the store when the run ended: pending
  answered,  // a reply with a decision came back: completed
  no_reply,  // timeout, lost reply, reset, restart: pending
  not_run,   // busy: left out of the history
};

// One store command as its caller saw it.
struct GateCommand {
  std::string pool;
  core::Op op;
  core::Ms call_ms = 0;
  std::uint64_t call_step = 0;
  CommandEnd end = CommandEnd::open;
  core::Ms ret_ms = 0;         // answered only
  std::uint64_t ret_step = 0;  // answered only
  core::Decision out;          // answered only
  std::uint32_t first_epoch = 0;  // restarts the store had done when the command entered
  std::uint32_t last_epoch = 0;   // ... and when it ended (or when the run ended, if open)
};

// Every store command of a run, in the order they entered the store.
struct GateHistory {
  core::GateConfig config;  // every pool's, from its creation
  std::vector<GateCommand> commands;
  std::uint32_t restarts = 0;
  // More commands than the recorder's bound: the later ones were not
  // recorded, so the history cannot be checked (P14 is unknown).
  bool truncated = false;
};

// Records a run's store commands; the fake store owns one and calls it.
class GateHistoryRecorder {
 public:
  using Handle = std::size_t;
  static constexpr Handle kNotRecorded = static_cast<Handle>(-1);

  GateHistoryRecorder(core::GateConfig config, std::size_t max_commands);

  // A command entered the store. kNotRecorded once the bound is reached.
  Handle begin(std::string_view pool, const core::Op& op, core::Ms at_ms, std::uint64_t step);
  // The store lost every pool.
  void restart();
  // How the command ended. Each handle ends at most once.
  void answered(Handle handle, const core::Decision& decision, core::Ms at_ms, std::uint64_t step);
  void no_reply(Handle handle);
  void not_run(Handle handle);

  // The history so far; open commands are pending up to the current epoch.
  GateHistory history() const;

 private:
  void end(Handle handle, CommandEnd how);

  GateHistory history_;
  std::size_t max_commands_;
};

// SPEC H operations of a gate history, in the order written: pools by name,
// each pool's epochs in order, each (pool, epoch) its config op, then its
// commands in the order they entered the store. Each op's `line` is its
// 1-based position.
struct GateHistoryOps {
  std::vector<HistoryOp> ops;
  // For each op, the index of its command in GateHistory::commands;
  // nullopt for a config op.
  std::vector<std::optional<std::size_t>> command_of;
};
GateHistoryOps gate_history_ops(const GateHistory& history);

// The pool name lincheck sees for `pool` in restart epoch `epoch`.
std::string epoch_pool_name(std::string_view pool, std::uint32_t epoch);

// The history as SPEC H text (JSON Lines), which `turnstile lincheck` reads.
std::string gate_history_text(const GateHistory& history);

// P14's bound on the search, chosen so that a default-scenario run stays
// fast. Deterministic, unlike a time limit, so a seed always gets the same
// verdict: lincheck polls should_stop every kStopPollSteps steps.
struct GateCheckLimits {
  std::uint64_t max_steps = std::uint64_t{1} << 20;  // over every pool's searches together
  std::size_t max_search_bytes = std::size_t{64} << 20;
};

// P14's verdict on a run's gate history.
struct GateCheck {
  LincheckVerdict verdict = LincheckVerdict::linearizable;
  std::string unknown_cause;  // unknown: "step limit", "memory limit" or "history bound"
  std::size_t operations = 0;  // H operations checked, config ops included
  std::size_t pending = 0;
  std::uint64_t steps = 0;    // lincheck's steps over every pool
  // Not linearizable (the first pool by name that is not) or unknown (the
  // first pool that is): the pool as lincheck saw it and, when lincheck
  // names one, the command it got stuck on (unknown: the one it could not
  // get past), an index into GateHistory::commands.
  std::string pool;
  std::optional<std::size_t> stuck;
  // Not linearizable: the gate's answer for it after the longest
  // explainable prefix, and that prefix's length in operations.
  core::Decision model;
  std::size_t prefix_ops = 0;
  // One line: what was expected and what happened (empty when linearizable).
  std::string message;
};

GateCheck check_gate_history(const GateHistory& history, const GateCheckLimits& limits = {});

}  // namespace turnstile::sim
