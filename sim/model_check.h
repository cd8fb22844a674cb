#pragma once

// `turnstile check`: exhaustive, breadth-first exploration of every
// interleaving of a small gate configuration (docs/check.md).
//
// The model. K clients each run R rounds of one small program:
//   admit (request r<round>, episode e1 or e2 by round), then, if granted,
//   heartbeat with the granted token, then release with it.
// A global `tick` step advances the model's clock by 1 ms, at most max_ticks
// times, so that with a small ttl and grace sessions become idle and gone.
// Every gate operation carries the model's clock as both `now` and
// `issued_at`. Under GateMode::atomic each operation is one transition (the
// gate function, core::apply by default). Under GateMode::legacy an admit is
// two transitions, exactly as sim/fake_store.cc runs it: a read (the gate run
// on a copy of the pool, which is the route's local decision; when it plans
// no write it is committed at once and is the whole operation), then a write
// against the pool as it is then. Heartbeat and release stay atomic.
//
// The state is the clock, the pool's core::PoolState and each client's
// program counter, round, token and (legacy) the planned decision and session
// it will write. The graph is finite and acyclic: every transition advances
// one client's program or the clock.
//
// Checked on every transition (the gate step's pool before and after):
//   P1  slots held <= max(C, slots held before)       (G14)
//   P2  at most one session per client                (G14)
//   P4  a rotation's victim was not live
//   G14 a session live at the step's now still exists afterwards, unless
//       the step is its owner's release
//   P5  a rotation happens only when full, and takes the oldest idle
//   P6  a newcomer is blocked only when full with no idle session
//   P7  a client holding a session is never blocked
//   P9  no session gone at the step's now survives it
//
// Reductions, each sound for gates that use client ids only for equality and
// for G7's tie-break, tokens only for equality and the G9 counter, and the
// pool's last_now only through G1 (the core's gate and the legacy gate do;
// docs/check.md gives the argument):
//   - the visited set holds 64-bit fingerprints (core::mix64 over a canonical
//     encoding), so distinct states collide with probability about n^2/2^65;
//   - tokens are renumbered in order of appearance (only equality and
//     freshness of tokens are observable);
//   - the order of the pool's session vector and each session's stored
//     last_decision are left out (no decision reads the order, and the model
//     never replays a request id, so G3 never reads last_decision; the
//     checker asserts that no replay happens);
//   - the pool's last_now is left out unless a legacy write is pending (every
//     other op carries the model's clock, which G1 takes over it unread);
//   - symmetry (on by default): clients are renamed, sorting them by their
//     state, by a permutation that keeps the relative id order of every pair
//     of clients that could still tie in G7 (equal admitted_at, now or in the
//     future), so no tie-break is ever decided differently.
// The counterexample is never a renamed one: each stored state is a real
// successor of its stored parent, so replaying the stored steps from the
// initial state runs exactly the path found.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gate.h"
#include "core/time.h"
#include "sim/world.h"

namespace turnstile::sim {

// The gate under test: core::apply, or a test's broken one.
using GateFunction = std::function<core::Decision(core::PoolState&, const core::Op&, const core::GateConfig&)>;

// Bounds of the model (TIGER_STYLE: a limit on everything). They keep request
// ids to one digit, so their bytewise order is their numeric order (G4).
inline constexpr int kMaxCheckClients = 6;
inline constexpr int kMaxCheckRounds = 9;
inline constexpr std::int64_t kMaxCheckCapacity = 6;
inline constexpr core::Ms kMaxCheckTtlMs = 16;
inline constexpr core::Ms kMaxCheckGraceMs = 16;
inline constexpr int kMaxCheckTicks = 40;
// Node indices are 32-bit.
inline constexpr std::uint64_t kMaxCheckStates = 2'000'000'000;
inline constexpr std::uint64_t kDefaultCheckMaxStates = 50'000'000;

// The pool every operation of the model names (SPEC D's `pool`).
inline constexpr std::string_view kCheckPool = "p";

struct CheckConfig {
  GateMode gate = GateMode::atomic;
  int clients = 3;            // K, 1..kMaxCheckClients
  std::int64_t capacity = 2;  // C, 1..kMaxCheckCapacity
  int rounds = 1;             // R, 1..kMaxCheckRounds
  core::Ms ttl_ms = 2;        // T, 1..kMaxCheckTtlMs
  core::Ms grace_ms = 1;      // G, 0..kMaxCheckGraceMs
  int max_ticks = 4;          // clock steps, 0..kMaxCheckTicks; default T + G + 1 so a session can go
  std::uint64_t max_states = kDefaultCheckMaxStates;  // 1..kMaxCheckStates
  bool symmetry = true;
};

// The default tick bound: enough for a session admitted at 0 to become gone.
int default_max_ticks(core::Ms ttl_ms, core::Ms grace_ms);

// The config's first invalid field as "field: expected ...", or nothing.
std::optional<std::string> check_config_error(const CheckConfig& config);

enum class CheckVerdict : std::uint8_t {
  verified,    // the whole finite space was explored, no violation
  violation,   // a violation was found; the trace is a shortest one
  incomplete,  // max_states was reached first
};
std::string_view verdict_name(CheckVerdict verdict);

enum class CheckAction : std::uint8_t { tick, admit, admit_read, admit_write, heartbeat, release };
std::string_view action_name(CheckAction action);

// One transition of a counterexample, as it ran.
struct CheckStep {
  int client = -1;  // 0-based client index; -1 for a tick
  CheckAction action = CheckAction::tick;
  core::Ms now = 0;  // the model's clock at the step (after it, for a tick)
  std::optional<core::Op> op;
  // The gate's answer; for an admit_read that planned a write, the route's
  // local decision, which the write step then applies.
  std::optional<core::Decision> decision;
  bool wrote = true;  // false for a tick and for an admit_read that planned a write
  core::PoolState pool;  // the pool after the step
};

struct CheckViolation {
  std::string rule;     // "P1", "P2", "G14", "P4", "P5", "P6", "P7", "P9"
  std::string message;  // one line: what was expected and what happened
};

struct CheckProgress {
  std::uint64_t states = 0;
  std::uint64_t transitions = 0;
  std::uint32_t depth = 0;     // the level being expanded
  std::uint64_t frontier = 0;  // states waiting at the next level so far
};

struct CheckResult {
  CheckVerdict verdict = CheckVerdict::verified;
  std::uint64_t states = 0;       // distinct states reached (after reduction)
  std::uint64_t transitions = 0;  // transitions taken
  std::uint32_t depth = 0;        // the deepest level reached
  std::optional<CheckViolation> violation;
  std::vector<CheckStep> trace;   // the counterexample: shortest, as it ran
  double collision_probability = 0;  // states^2 / 2^65
};

struct CheckHooks {
  GateFunction gate;  // empty: core::apply
  // Called after every `progress_every` new states and at each level's end.
  // The checker reads no clock; the caller times the calls if it wants.
  std::function<void(const CheckProgress&)> progress;
  std::uint64_t progress_every = 1 << 16;
};

// Explores the configuration breadth-first. Deterministic: the same config
// and gate give the same result, the same counterexample included.
CheckResult run_check(const CheckConfig& config, const CheckHooks& hooks = {});

// One path of the model run from its initial state, as `turnstile replay`
// runs a check trace's counterexample (sim/check_trace.h). `labels` names who
// moves at each step: a 0-based client index, or -1 for a tick. The path
// stops after the first step that breaks a rule (run_check's checks, in its
// order) or at the first label that cannot move (a client that finished its
// rounds, a tick past max_ticks, a label out of range).
struct CheckPathResult {
  std::vector<CheckStep> steps;              // the steps that ran, as a counterexample records them
  std::optional<CheckViolation> violation;   // broken by the last step of `steps`
  std::optional<std::size_t> impossible;     // the index of a label that could not move
};
CheckPathResult run_check_path(const CheckConfig& config, const std::vector<int>& labels,
                               const CheckHooks& hooks = {});

// The rules run_check checks, in the order it checks them on a step.
inline constexpr std::string_view kCheckRules = "P1 P2 P4 G14 P5 P6 P7 P9";

// The model's names: client i is "c<i+1>"; round r admits request "r<r+1>"
// for episode "e<r % 2 + 1>".
std::string check_client_name(int index);
std::string check_request_name(int round);
std::string check_episode_name(int round);

// The birthday bound on a fingerprint collision among `states` states.
double collision_bound(std::uint64_t states);

}  // namespace turnstile::sim
