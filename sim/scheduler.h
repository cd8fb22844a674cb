#pragma once

// Who runs next. Two layers:
//   - Chooser: the strategy, a pure function of its seed and of the ready
//     lists it is shown (random, pct:D, replay). No fibers involved, so it can
//     be tested and reasoned about alone.
//   - FiberAlgorithm: the boost::fibers::algo::algorithm installed on the
//     thread. It keeps the ready simulated fibers sorted by SimFiberId and
//     asks the Runtime (which asks its Chooser) which one runs.
// Simulated code uses neither directly: it uses sim/runtime.h and sim/sleep.h.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/properties.hpp>

#include "core/rng.h"
#include "sim/types.h"

namespace turnstile::sim {

enum class StrategyKind { random, pct, replay, guided };

// How a run picks among ready fibers.
//   random  each step, a uniform pick among the ready fibers.
//   pct     Burckhardt et al., "A Randomized Scheduler with Probabilistic
//           Guarantees of Finding Bugs" (ASPLOS 2010): every fiber gets a
//           random distinct priority when first seen; depth - 1 change points
//           are drawn among steps 1..k (k = pct_steps_estimate, or the run's
//           step limit when that is 0); the highest-priority ready fiber
//           always runs, and the fiber that takes change point i drops to
//           priority i, below every initial priority. Finds any bug of depth
//           `depth` with probability at least 1 / (n k^(depth-1)).
//   replay  the recorded choices, one per step: entry s picks index
//           replay[s].index modulo the ready count (so an out-of-range index
//           still picks deterministically); past the end of the recording,
//           index 0. A step whose recorded (index, ready) differs from what
//           was used marks the run as diverged there.
//   guided  generated choices, for properties and shrinking: step s picks
//           index guided[s] modulo the ready count, and index 0 (the lowest
//           ready id) past the end. Every sequence is a valid schedule, so
//           nothing diverges: a shrinker may cut or lower choices freely.
//           A trace records the choices actually taken, so it replays with
//           `replay` like any other.
struct StrategySpec {
  StrategyKind kind = StrategyKind::random;
  std::uint32_t pct_depth = 3;
  std::uint64_t pct_steps_estimate = 0;
  std::vector<Choice> replay;
  std::vector<std::uint32_t> guided;
};

// "random" or "pct:D" (D >= 1) as the command line spells them; nullopt for
// anything else. "replay" is not parsed: it needs a trace's choices.
std::optional<StrategySpec> parse_strategy(std::string_view text);

// "random", "pct:D", "replay" or "guided": the inverse of parse_strategy, for traces.
std::string strategy_name(const StrategySpec& spec);

// The strategy's state for one run. Every call to choose() is one step.
class Chooser {
 public:
  // steps_estimate is PCT's k when spec.pct_steps_estimate is 0.
  Chooser(StrategySpec spec, std::uint64_t seed, std::uint64_t steps_estimate);

  // Picks one of `ready`, which is non-empty and sorted by ascending id.
  // The result's index is < ready.size() and its `ready` is ready.size().
  Choice choose(std::span<const SimFiberId> ready);

  std::uint64_t choices_made() const { return step_; }

  // The first step at which a replay used a choice other than the recorded
  // one (or ran past the recording); nullopt when it matched so far or the
  // strategy is not replay.
  std::optional<std::uint64_t> replay_diverged_at() const { return diverged_at_; }

 private:
  struct ChangePoint {
    std::uint64_t step;      // 1-based, as in the PCT paper
    std::uint64_t priority;  // 1 .. depth-1, below every initial priority
  };

  std::size_t choose_pct(std::span<const SimFiberId> ready);
  std::size_t choose_replay(std::span<const SimFiberId> ready);
  std::size_t choose_guided(std::span<const SimFiberId> ready) const;

  StrategySpec spec_;
  core::Rng rng_;
  std::uint64_t step_ = 0;
  std::optional<std::uint64_t> diverged_at_;
  // PCT: priority by fiber id (0 = not seen yet), and the change points
  // sorted by step. Bounded by the number of fibers and by depth.
  std::vector<std::uint64_t> priority_;
  std::vector<ChangePoint> change_points_;
  std::size_t next_change_ = 0;
};

// Per-context data Boost keeps for us: the fiber's SimFiberId (kNoFiber for
// Boost's own main and dispatcher contexts).
class SimFiberProps final : public boost::fibers::fiber_properties {
 public:
  explicit SimFiberProps(boost::fibers::context* ctx, SimFiberId id = kNoFiber) : fiber_properties(ctx), id_(id) {}
  SimFiberId id() const { return id_; }

 private:
  SimFiberId id_;
};

// The scheduling algorithm Runtime installs on its thread, once: Boost.Fiber
// 1.74 lets a thread choose its algorithm only before it matters, so one
// instance lives for the thread's lifetime (owned by Boost's scheduler) and a
// Runtime binds itself to it for the length of run().
//
// Policy, in order, for every pick_next():
//   1. the main context (the driver) if it is ready;
//   2. else a ready simulated fiber, chosen by the bound Picker;
//   3. else Boost's dispatcher context (it frees ended fibers);
//   4. else nothing.
// Because the driver is ready whenever a simulated fiber is running (the
// driver's yield() re-queues it), every simulated fiber hands control back
// to the driver when it parks, yields or ends, and the strategy chooses only
// when the driver yields. So each step is exactly one choice, made over every
// ready fiber including one that has just yielded, and main and dispatcher
// are never among the strategy's candidates (DESIGN, first two Boost facts).
class FiberAlgorithm final : public boost::fibers::algo::algorithm_with_properties<SimFiberProps> {
 public:
  // The Runtime's side: picks the index of the fiber to run among `ready`.
  class Picker {
   public:
    virtual std::size_t pick(std::span<const SimFiberId> ready) = 0;

   protected:
    ~Picker() = default;
  };

  // The algorithm of the calling thread, installed on first use. Must be
  // called from the thread's main context, before any other fiber exists on
  // the thread.
  static FiberAlgorithm& for_this_thread();

  explicit FiberAlgorithm(FiberAlgorithm** registry);
  ~FiberAlgorithm() override;

  // A Runtime binds for the length of a run; capacity bounds the ready list.
  void bind(Picker* picker, std::size_t capacity);
  void unbind();

  // The id the next fiber constructed on this thread will carry. Set just
  // before constructing a boost::fibers::fiber, reset to kNoFiber after.
  void set_next_spawn_id(SimFiberId id) { next_spawn_id_ = id; }

  // Ready simulated fibers (main and dispatcher excluded).
  std::size_t ready_count() const { return ready_ids_.size(); }

  // The SimFiberId of the running context; kNoFiber outside simulated fibers.
  static SimFiberId current_id();

  // boost::fibers::algo::algorithm
  void awakened(boost::fibers::context* ctx, SimFiberProps& props) noexcept override;
  boost::fibers::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override;
  void suspend_until(std::chrono::steady_clock::time_point const& until) noexcept override;  // sim-purity: signature only, never read
  void notify() noexcept override;
  boost::fibers::fiber_properties* new_properties(boost::fibers::context* ctx) override;

 private:
  FiberAlgorithm** registry_;
  Picker* picker_ = nullptr;
  SimFiberId next_spawn_id_ = kNoFiber;
  boost::fibers::context* main_ready_ = nullptr;
  boost::fibers::context* dispatcher_ready_ = nullptr;
  // Parallel vectors sorted by id: the ids are what the strategy sees.
  std::vector<SimFiberId> ready_ids_;
  std::vector<boost::fibers::context*> ready_contexts_;
  std::size_t capacity_ = 0;
};

}  // namespace turnstile::sim
