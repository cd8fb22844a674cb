#pragma once

// SPEC H / P14: is a concurrent history of gate operations linearizable with
// respect to the gate (SPEC G)? That is: is there one sequential order of the
// operations that respects real-time order (an operation that returned before
// another was called comes first), in which core::apply gives every completed
// operation exactly its recorded answer?
//
// The search is Wing and Gong's, with Lowe's cache, as Porcupine does it: the
// call and return events sorted by time in a linked list; an operation may be
// linearized when its call comes before every return still in the list; a
// configuration (the set of operations linearized, the gate's state) that was
// already explored is never explored again. Operations on different pools are
// independent, so each pool is one search (split_by_pool).
//
// Real time: A precedes B when A.ret < B.call. Equal times count as
// overlapping, since the clocks are read before sending and after receiving.
//
// Pending operations (ret null) may take effect at any point after their call,
// or never: their return is placed after every other event, any answer is
// accepted, and the search succeeds once every completed operation is
// linearized (taking effect after all of those is the same as never).
//
// Config ops are operations of the model (sim/history_format.h): the state
// searched over is the pool's config with its PoolState, starting from D's
// default config.
//
// Nothing here reads a clock or starts a thread: a time limit is the caller's
// should_stop, and the caller runs pools in parallel if it wants to.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gate.h"
#include "sim/history_format.h"

namespace turnstile::sim {

enum class LincheckVerdict { linearizable, not_linearizable, unknown };

// "linearizable", "not linearizable", "unknown".
std::string_view verdict_name(LincheckVerdict verdict);

struct LincheckLimits {
  // The most bytes one pool's search may hold in its cache of explored
  // configurations, which also holds every state on its stack (an estimate:
  // keys, states and their strings). Past it the verdict is unknown, cause
  // "memory limit".
  std::size_t max_search_bytes = std::size_t{1} << 30;
  // Polled every kStopPollSteps steps of a search; true ends it with unknown,
  // cause "time limit". Empty: never stop. May be called from several
  // threads when the caller checks pools in parallel.
  std::function<bool()> should_stop;
  // Compare states with their times exactly, rather than by what the future
  // can tell of them (sim/lincheck.cc). The verdict is the same; the search
  // is slower. For tests that hold the two to the same verdict.
  bool exact_times = false;
};

inline constexpr std::uint64_t kStopPollSteps = 1024;

// One pool's operations, in file order.
struct PoolHistory {
  std::string pool;
  std::vector<HistoryOp> ops;
};

// Splits a history by pool: pools sorted by name (bytewise), each pool's
// operations in the order of the file.
std::vector<PoolHistory> split_by_pool(std::vector<HistoryOp> ops);

// One operation of an order the search found, with the answer the gate gives
// it there (for a config op: outcome unset, the default Decision).
struct Placed {
  std::size_t op = 0;  // index into PoolHistory::ops
  core::Decision model;
};

struct PoolVerdict {
  LincheckVerdict verdict = LincheckVerdict::unknown;
  std::string unknown_cause;  // "time limit" or "memory limit" when unknown
  std::size_t operations = 0;
  std::size_t pending = 0;
  std::uint64_t steps = 0;   // operations tried, over every search this verdict took
  std::uint64_t states = 0;  // configurations cached by the search of the whole history

  // Linearizable: an order that explains the whole history (pending
  // operations that need not take effect are left out). Not linearizable:
  // an order that explains the longest explainable prefix (below).
  std::vector<Placed> order;

  // Not linearizable only. The prefix of a history up to an event is the
  // operations called before it, those that returned by then completed and
  // the others pending. `stuck` is the completed operation whose return ends
  // the shortest prefix that no order explains; `prefix_ops` counts the
  // operations of that prefix. The prefix just before stuck's return is the
  // longest explainable one, and `order` explains it.
  std::size_t stuck = 0;  // index into PoolHistory::ops
  std::size_t prefix_ops = 0;
  // The gate's answer for the stuck operation at the end of `order` (or at
  // its place in `order`, if that order placed it while it was still pending).
  core::Decision model_out;
  // Unknown only: the completed operation whose return no order found so far
  // gets past (every operation returned before it is explained), if any.
  std::optional<std::size_t> frontier;  // index into PoolHistory::ops
  // False when a limit ran out while looking for the shortest prefix: the
  // history is not linearizable, and `stuck` ends a prefix that is not
  // either, but a shorter one may exist.
  bool minimized = true;
};

// Checks one pool's operations. Every operation must be of `pool.pool`.
PoolVerdict check_pool(const PoolHistory& pool, const LincheckLimits& limits);

}  // namespace turnstile::sim
