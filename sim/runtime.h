#pragma once

// The simulator's driver for one run: it owns the virtual clock, the timer
// queue and the scheduling strategy, runs simulated fibers one step at a
// time, and reports how the run ended.
//
// How to use it (a fake server and a client, say):
//
//   sim::Runtime rt({.seed = seed, .strategy = *sim::parse_strategy("pct:3")});
//   std::deque<Request> queue;
//   const sim::SimFiberId redis = rt.spawn("redis", [&] {
//     for (;;) {
//       while (queue.empty()) sim::park();  // check, then park: see unpark
//       serve(queue.front()); queue.pop_front();
//       sim::yield_point();
//     }
//   }, sim::FiberKind::daemon);
//   rt.spawn("client-0", [&] {
//     queue.push_back(request); sim::unpark(redis);
//     if (!sim::park_until(sim::now_ms() + 50)) { /* timed out */ }
//   });
//   sim::RunResult result = rt.run(10'000);
//   // result.outcome, result.fingerprint, result.schedule, result.choices()
//
// Model. A step is one scheduling decision: the driver asks the strategy to
// pick one of the ready fibers (sorted by SimFiberId) and that fiber runs
// until its next scheduling point, where it hands control back to the driver:
//   sim::yield_point()      stays ready; the strategy may pick it again;
//   sim::sleep_until(t)     parks until virtual time t;
//   sim::park()             parks until another fiber calls sim::unpark(id);
//   sim::park_until(t)      parks until unparked or until t, whichever first;
//   returning               the fiber ends.
// Between those points a fiber runs alone, so code between two points is
// atomic with respect to every other simulated fiber. Put a scheduling point
// wherever a real system could be interleaved (before and after each network
// call, say). unpark is not remembered (no permit is stored): a fiber that
// is not parked yet misses it, so always park in a loop that first checks
// the condition it waits for, as above; the check and the park are atomic.
//
// Time. Virtual time moves only when no fiber is ready: the driver then jumps
// to the earliest wake time and makes every fiber due at that instant ready
// at once, so the strategy, not the order they went to sleep, decides who
// runs first. Simulated code never calls Boost.Fiber's sleeps or timed waits
// (they read steady_clock); a unit test scans sim/ for them.
//
// Ending. run() returns when every ordinary fiber has ended (daemons, such as
// a fake server's loop, do not keep a run alive), when nothing can run any
// more (stuck), at a limit, or when a fiber asks (request_stop). Every fiber still alive then is cancelled:
// its pending scheduling point throws sim::Cancelled, which unwinds its stack
// (destructors run) and ends it. So after run() no fiber of the run is left,
// and a Runtime can be created, run and destroyed many times per process.
//
// Threads. One Runtime runs at a time on a thread. It installs its Boost.Fiber
// scheduling algorithm on the calling thread the first time and keeps it for
// the thread's life (Boost lets a thread pick its algorithm only once in
// practice); later runs rebind the same algorithm. Runs on different threads
// are independent. A thread that simulates must not use Boost fibers of its
// own, and simulated code must block only through the points above: a fiber
// blocked in a Boost mutex, condition variable or channel cannot be
// cancelled, and the run stops with an assertion naming the problem.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.h"
#include "sim/scheduler.h"
#include "sim/types.h"

namespace turnstile::sim {

struct RuntimeOptions {
  // The scheduler's seed (random draws and PCT's priorities). Split it from
  // the run's seed with core::derive_seed so the other streams stay apart.
  std::uint64_t seed = 0;
  StrategySpec strategy = {};
  // At most this many fibers per run, counting those that have ended. A
  // spawn past it returns kNoFiber and the run ends with fiber_limit.
  std::size_t max_fibers = 256;
  core::Ms start_ms = 0;
  // Each fiber's stack: malloc'd, and reused by later fibers of the thread.
  std::size_t stack_bytes = 256 * 1024;
};

struct RunLimits {
  // At most this many steps; a run that still had a ready fiber then ends
  // with step_limit.
  std::uint64_t max_steps = 100'000;
  // Virtual time is never advanced past this; a run that would have to ends
  // with time_limit.
  core::Ms max_time_ms = core::kMaxTimeMs;
};

enum class FiberKind {
  ordinary,  // the run lasts until every ordinary fiber has ended (so a run
             // with none finishes before its first step)
  daemon,    // serves others (a fake server); cancelled when they are done
};

enum class Outcome {
  finished,      // every ordinary fiber ended
  stuck,         // ordinary fibers remain but none is ready and no timer is set
  step_limit,    // RunLimits::max_steps reached with a fiber still ready
  time_limit,    // the next wake-up lies past RunLimits::max_time_ms
  fiber_limit,   // a spawn past RuntimeOptions::max_fibers
  fiber_failed,  // an exception other than sim::Cancelled left a fiber
  stopped,       // a fiber called Runtime::request_stop (a checker, say)
};

std::string_view outcome_name(Outcome outcome);

// One step as it was taken: its number (from 0), the fiber that ran, the
// virtual time, the strategy's choice, and the run's fingerprint after it.
struct StepRecord {
  std::uint64_t step = 0;
  SimFiberId fiber = kNoFiber;
  core::Ms now_ms = 0;
  Choice choice;
  std::uint64_t fingerprint = 0;

  friend bool operator==(const StepRecord&, const StepRecord&) = default;
};

struct FiberFailure {
  SimFiberId fiber = kNoFiber;
  std::string name;
  std::string message;
};

struct RunResult {
  Outcome outcome = Outcome::finished;
  std::uint64_t steps = 0;
  core::Ms end_ms = 0;
  // A hash over (step, fiber, virtual time) of every step: equal seeds,
  // strategies and code give equal fingerprints.
  std::uint64_t fingerprint = 0;
  // One record per step, so at most RunLimits::max_steps of them.
  std::vector<StepRecord> schedule;
  // Ordinary fibers still alive when the run ended, ascending. For stuck,
  // these are the fibers parked forever.
  std::vector<SimFiberId> unfinished;
  std::optional<FiberFailure> failure;
  // Replay only: the first step whose recorded choice could not be followed.
  std::optional<std::uint64_t> replay_diverged_at;

  // The choices, one per step: feed them to StrategyKind::replay.
  std::vector<Choice> choices() const;
};

// Thrown out of a scheduling point when the run is ending. Not a
// std::exception on purpose: catch (const std::exception&) does not swallow
// it. Code that catches everything must rethrow it. Scheduling points must
// not be reached from destructors (the throw would terminate).
struct Cancelled {};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // A new fiber with the next SimFiberId. Spawned before run(), it is ready
  // when the run starts; spawned by a simulated fiber, it is ready from the
  // next step on (the driver starts it when the spawner hands back control).
  // kNoFiber past max_fibers or while the run is ending. Fibers spawned in
  // the same order get the same ids in every run.
  SimFiberId spawn(std::string name, std::function<void()> body, FiberKind kind = FiberKind::ordinary);

  // Runs to the end (see "Ending" above). Call once, from the thread's main
  // context, not from a fiber.
  RunResult run(RunLimits limits);
  RunResult run(std::uint64_t max_steps) { return run(RunLimits{.max_steps = max_steps}); }

  core::Ms now_ms() const;
  // Steps begun so far. Inside a fiber, the running step is steps_taken() - 1.
  std::uint64_t steps_taken() const;
  std::size_t fiber_count() const;
  const std::string& fiber_name(SimFiberId fiber) const;

  // The Runtime whose run() is under way on this thread, or nullptr.
  static Runtime* current();

  // The rest is for simulated fibers of this Runtime (sim/sleep.h has the
  // same as free functions). Each is a scheduling point, except self() and
  // unpark(), and throws Cancelled when the run is ending.

  // The calling fiber's id; kNoFiber outside this Runtime's fibers.
  SimFiberId self() const;
  void yield_point();
  // A wake time at or before now is a yield_point().
  void sleep_until(core::Ms wake_ms);
  void park();
  // True if unparked, false if deadline_ms came first. A deadline at or
  // before now is a yield_point() and returns false.
  bool park_until(core::Ms deadline_ms);
  // Ends the run once the calling fiber hands back control (outcome
  // stopped), for a checker that has seen a violation. Not a scheduling
  // point: the caller runs on to its next point, where it is cancelled. The
  // first reason to stop wins (a failure or limit already seen stays).
  void request_stop();
  // Makes `fiber` ready if it waits in park() or park_until(); its timer, if
  // any, is dropped. False, with no effect, if it is not parked that way (it
  // is running, ready, sleeping, ended, or the run is ending). Not a
  // scheduling point: the caller keeps running.
  bool unpark(SimFiberId fiber);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace turnstile::sim
