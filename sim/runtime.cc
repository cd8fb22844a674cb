#include "sim/runtime.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>
#include <exception>
#include <utility>

#include <boost/fiber/context.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/type.hpp>

#include "core/assert.h"
#include "sim/clock.h"
#include "sim/fingerprint.h"

#if defined(__SANITIZE_ADDRESS__)
#define TURNSTILE_ASAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TURNSTILE_ASAN_FIBERS 1
#endif
#endif
#if defined(TURNSTILE_ASAN_FIBERS)
#include <sanitizer/common_interface_defs.h>
#endif

namespace turnstile::sim {
namespace {

using boost::fibers::context;

// AddressSanitizer must be told when execution moves to another stack, or it
// takes a fiber's stack for the thread's: a throw on a fiber (how Cancelled
// unwinds) then unpoisons the wrong range and ASan reports stack overflows
// that are not there. Debian's Boost is built without its own annotations
// (BOOST_USE_ASAN), but every switch of a simulated fiber goes through this
// file (driver to fiber in pick(), fiber to driver in park, yield_point and
// the fiber's end), so the annotations live here; they keep ASan clean with
// detect_stack_use_after_return on as well. Switches between the driver and
// Boost's dispatcher are not annotated: only Boost's own code and pick_next
// run there, and nothing is thrown. Without ASan these compile to nothing.
struct StackBounds {
  const void* bottom = nullptr;
  std::size_t size = 0;
};

#if defined(TURNSTILE_ASAN_FIBERS)
void asan_start_switch(void** fake_stack_save, const StackBounds& to) {
  __sanitizer_start_switch_fiber(fake_stack_save, to.bottom, to.size);
}
void asan_finish_switch(void* fake_stack_save, StackBounds* from) {
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(fake_stack_save, &bottom, &size);
  if (from != nullptr) *from = StackBounds{bottom, size};
}
#else
void asan_start_switch(void** /*fake_stack_save*/, const StackBounds& /*to*/) {}
void asan_finish_switch(void* /*fake_stack_save*/, StackBounds* /*from*/) {}
#endif

// Fiber stacks, kept per thread for reuse. A fresh stack costs an mmap and a
// page fault for every page a fiber touches; a reused one is already mapped,
// which makes a run several times cheaper (bench/world_bench). Only the
// allocation is reused, never contents a run could read: a fiber starts with
// nothing on its stack. Bounded: at most kMaxCachedStacks per thread.
class StackCache {
 public:
  static constexpr std::size_t kMaxCachedStacks = 256;

  // Reserved up front so that give(), called from a noexcept deallocator,
  // never allocates.
  StackCache() { free_.reserve(kMaxCachedStacks); }
  ~StackCache() {
    for (const Entry& entry : free_) std::free(entry.base);
  }
  void* take(std::size_t size_bytes) {
    for (std::size_t i = free_.size(); i > 0; --i) {
      if (free_[i - 1].size_bytes != size_bytes) continue;
      void* base = free_[i - 1].base;
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i - 1));
      return base;
    }
    void* base = std::malloc(size_bytes);
    if (base == nullptr) throw std::bad_alloc();
    return base;
  }
  void give(void* base, std::size_t size_bytes) {
    if (free_.size() >= kMaxCachedStacks) {
      std::free(base);
      return;
    }
    free_.push_back(Entry{base, size_bytes});
  }

 private:
  struct Entry {
    void* base = nullptr;
    std::size_t size_bytes = 0;
  };
  std::vector<Entry> free_;
};

thread_local StackCache t_stacks;

// A stack allocator for Boost.Fiber over StackCache, remembering where the
// stack is so the switch annotations above can name it.
class RecordingStack {
 public:
  RecordingStack(std::size_t size_bytes, StackBounds* bounds) : size_bytes_(size_bytes), bounds_(bounds) {}

  boost::context::stack_context allocate() {
    void* base = t_stacks.take(size_bytes_);
    boost::context::stack_context stack;
    stack.size = size_bytes_;
    stack.sp = static_cast<char*>(base) + size_bytes_;  // stacks grow down
    *bounds_ = StackBounds{static_cast<char*>(base), size_bytes_};
    return stack;
  }
  void deallocate(boost::context::stack_context& stack) noexcept {
    t_stacks.give(static_cast<char*>(stack.sp) - stack.size, stack.size);
  }

 private:
  std::size_t size_bytes_;
  StackBounds* bounds_;
};

// The Runtime whose run() is under way on this thread. Per thread, because
// each thread has its own Boost scheduler and so its own runs.
thread_local Runtime* t_current = nullptr;

}  // namespace

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::finished:
      return "finished";
    case Outcome::stuck:
      return "stuck";
    case Outcome::step_limit:
      return "step_limit";
    case Outcome::time_limit:
      return "time_limit";
    case Outcome::fiber_limit:
      return "fiber_limit";
    case Outcome::fiber_failed:
      return "fiber_failed";
    case Outcome::stopped:
      return "stopped";
  }
  return "unknown";
}

std::vector<Choice> RunResult::choices() const {
  std::vector<Choice> out;
  out.reserve(schedule.size());
  for (const auto& step : schedule) out.push_back(step.choice);
  return out;
}

struct Runtime::State final : FiberAlgorithm::Picker {
  struct Slot {
    std::string name;
    std::function<void()> body;
    FiberKind kind = FiberKind::ordinary;
    boost::fibers::fiber fiber;
    context* ctx = nullptr;  // set when the fiber first runs
    bool ended = false;
    bool parked = false;      // in sleep_until, park or park_until
    bool unparkable = false;  // in park or park_until
    bool unparked = false;    // the last wake came from unpark
    StackBounds stack;
    void* asan_fake_stack = nullptr;
  };

  explicit State(RuntimeOptions opts)
      : options(std::move(opts)), clock(options.start_ms), timers(options.max_fibers) {
    TS_ASSERT(options.max_fibers >= 1 && options.max_fibers < kNoFiber);
    slots.reserve(options.max_fibers);
    pending_start.reserve(options.max_fibers);
  }

  std::size_t pick(std::span<const SimFiberId> ready) override;
  void start(SimFiberId id);
  void fiber_main(SimFiberId id);
  void wake(SimFiberId id, bool by_unpark);
  bool park(std::optional<core::Ms> deadline_ms, bool unparkable);
  void check_not_ending() const {
    if (ending) throw Cancelled{};
  }
  void step_yield();
  void fiber_yield(SimFiberId id);
  void start_pending();
  Outcome drive(const RunLimits& limits);
  void end_all_fibers();

  RuntimeOptions options;
  Clock clock;
  TimerQueue timers;
  // Never grows past options.max_fibers (reserved), so references to slots
  // stay valid while fibers spawn others.
  std::vector<Slot> slots;
  std::size_t live_ordinary = 0;
  std::optional<Chooser> chooser;
  FiberAlgorithm* algorithm = nullptr;
  Fingerprint fingerprint;
  std::vector<StepRecord> schedule;
  std::uint64_t steps = 0;
  bool running = false;
  bool ran = false;
  bool ending = false;  // cancelling every fiber at the end of the run
  std::optional<Outcome> stop;  // fiber_limit, fiber_failed or stopped, set by fibers
  std::optional<FiberFailure> failure;
  std::vector<SimFiberId> due;  // scratch for the timers due at one instant
  // Spawned but not yet started. Only the driver creates fibers: Boost jumps
  // onto a new fiber's stack as it creates it, a switch no annotation covers,
  // and doing it from the driver keeps that jump off every fiber's stack.
  std::vector<SimFiberId> pending_start;
  // For the ASan annotations: the driver's stack, learnt when a fiber first
  // runs, and whether pick() announced a switch the driver must finish.
  StackBounds driver_stack;
  void* driver_fake_stack = nullptr;
  bool driver_switch_started = false;
};

std::size_t Runtime::State::pick(std::span<const SimFiberId> ready) {
  // While the run ends, fibers are resumed only to unwind: not steps, not
  // recorded, lowest id first.
  if (ending) {
    asan_start_switch(&driver_fake_stack, slots[ready[0]].stack);
    driver_switch_started = true;
    return 0;
  }
  const Choice choice = chooser->choose(ready);
  const SimFiberId fiber = ready[choice.index];
  const std::uint64_t step = steps++;
  fingerprint.add(step);
  fingerprint.add(fiber);
  fingerprint.add_signed(clock.now_ms());
  schedule.push_back(StepRecord{step, fiber, clock.now_ms(), choice, fingerprint.value()});
  asan_start_switch(&driver_fake_stack, slots[fiber].stack);
  driver_switch_started = true;
  return choice.index;
}

void Runtime::State::step_yield() {
  boost::this_fiber::yield();
  if (driver_switch_started) {
    asan_finish_switch(driver_fake_stack, nullptr);
    driver_switch_started = false;
  }
  start_pending();
}

void Runtime::State::start_pending() {
  // In id order, so the ready list sees them the same way in every run.
  for (const SimFiberId id : pending_start) start(id);
  pending_start.clear();
}

void Runtime::State::fiber_yield(SimFiberId id) {
  Slot& slot = slots[id];
  asan_start_switch(&slot.asan_fake_stack, driver_stack);
  boost::this_fiber::yield();
  asan_finish_switch(slot.asan_fake_stack, &driver_stack);
}

void Runtime::State::start(SimFiberId id) {
  algorithm->set_next_spawn_id(id);
  slots[id].fiber = boost::fibers::fiber(std::allocator_arg, RecordingStack(options.stack_bytes, &slots[id].stack),
                                         [this, id] { fiber_main(id); });
  algorithm->set_next_spawn_id(kNoFiber);
}

void Runtime::State::fiber_main(SimFiberId id) {
  Slot& slot = slots[id];
  asan_finish_switch(nullptr, &driver_stack);
  slot.ctx = context::active();
  // A fiber first resumed while the run ends never starts its body.
  if (!ending) {
    // Moved out so that what the body captured dies on this fiber's stack.
    const std::function<void()> body = std::move(slot.body);
    try {
      body();
    } catch (const Cancelled&) {
      // The run is ending; unwinding to here was the point.
    } catch (const std::exception& error) {
      if (!failure) failure = FiberFailure{id, slot.name, error.what()};
      if (!stop) stop = Outcome::fiber_failed;
    } catch (...) {
      if (!failure) failure = FiberFailure{id, slot.name, "an exception that is not a std::exception"};
      if (!stop) stop = Outcome::fiber_failed;
    }
  }
  slot.ended = true;
  slot.parked = false;
  if (slot.kind == FiberKind::ordinary) --live_ordinary;
  // Leaving for good: the null save lets ASan drop this fiber's fake stack.
  asan_start_switch(nullptr, driver_stack);
}

void Runtime::State::wake(SimFiberId id, bool by_unpark) {
  Slot& slot = slots[id];
  TS_ASSERT(slot.parked && slot.ctx != nullptr);
  slot.parked = false;
  slot.unparked = by_unpark;
  context::active()->schedule(slot.ctx);
}

bool Runtime::State::park(std::optional<core::Ms> deadline_ms, bool unparkable) {
  check_not_ending();
  const SimFiberId id = FiberAlgorithm::current_id();
  TS_ASSERT(id != kNoFiber && id < slots.size());
  Slot& slot = slots[id];
  slot.parked = true;
  slot.unparkable = unparkable;
  slot.unparked = false;
  if (deadline_ms) {
    // One timer per fiber at most and capacity max_fibers: never full.
    const bool pushed = timers.push(std::max(*deadline_ms, clock.now_ms()), id);
    TS_ASSERT(pushed);
  }
  // Control goes back to the driver (FiberAlgorithm's policy); the fiber
  // continues here once wake() has made it ready and the strategy picked it.
  asan_start_switch(&slot.asan_fake_stack, driver_stack);
  slot.ctx->suspend();
  asan_finish_switch(slot.asan_fake_stack, &driver_stack);
  check_not_ending();
  return slot.unparked;
}

Outcome Runtime::State::drive(const RunLimits& limits) {
  // Each round takes a step (at most max_steps), or wakes at least one fiber
  // (which then needs a step, so at most max_steps + 1 of those), or returns.
  for (;;) {
    if (stop) return *stop;
    if (live_ordinary == 0) return Outcome::finished;
    if (algorithm->ready_count() > 0) {
      if (steps >= limits.max_steps) return Outcome::step_limit;
      // Runs one step: the strategy picks a ready fiber, which runs until it
      // hands control back here. A yield can come back with fibers still
      // ready (Boost picks before it re-queues the yielder), so the ready
      // count is checked again before time may move.
      step_yield();
      continue;
    }
    if (!timers.empty()) {
      if (timers.next_wake_ms() > limits.max_time_ms) return Outcome::time_limit;
      due.clear();
      clock.advance_to(timers.pop_earliest(due));
      for (const SimFiberId id : due) wake(id, false);
      continue;
    }
    return Outcome::stuck;
  }
}

void Runtime::State::end_all_fibers() {
  ending = true;
  // Fibers spawned by the last step start only to end without running.
  start_pending();
  for (SimFiberId id = 0; id < slots.size(); ++id) {
    if (slots[id].parked) {
      timers.remove(id);
      wake(id, false);
    }
  }
  // Each fiber needs one resume to unwind and end (its scheduling point
  // throws Cancelled; a fiber that never started skips its body). The bound
  // allows for fibers that catch Cancelled and reach another point.
  const std::size_t max_rounds = 4 * slots.size() + 4;
  std::size_t rounds = 0;
  while (algorithm->ready_count() > 0) {
    TS_ASSERT(++rounds <= max_rounds && "fibers kept running after the run was cancelled");
    step_yield();
  }
  for (auto& slot : slots) {
    TS_ASSERT(slot.ended && "a simulated fiber is blocked outside the sim:: scheduling points (a Boost mutex, condition variable or channel?) and cannot be cancelled");
    if (slot.fiber.joinable()) slot.fiber.join();
  }
  // With no simulated fiber ready, this yield runs Boost's dispatcher, which
  // frees the ended fibers' stacks before the next run.
  boost::this_fiber::yield();
  TS_ASSERT(timers.empty());
}

Runtime::Runtime(RuntimeOptions options) : state_(std::make_unique<State>(std::move(options))) {}

Runtime::~Runtime() {
  // run() ends every fiber it started; fibers spawned but never run were
  // never started, so there is nothing left to join.
  TS_ASSERT(!state_->running);
}

SimFiberId Runtime::spawn(std::string name, std::function<void()> body, FiberKind kind) {
  State& s = *state_;
  TS_ASSERT(!s.ran || s.running);
  TS_ASSERT(!s.running || current() == this);
  if (s.ending) return kNoFiber;
  if (s.slots.size() >= s.options.max_fibers) {
    if (!s.stop) s.stop = Outcome::fiber_limit;
    return kNoFiber;
  }
  const auto id = static_cast<SimFiberId>(s.slots.size());
  State::Slot& slot = s.slots.emplace_back();
  slot.name = std::move(name);
  slot.body = std::move(body);
  slot.kind = kind;
  if (kind == FiberKind::ordinary) ++s.live_ordinary;
  s.pending_start.push_back(id);
  return id;
}

RunResult Runtime::run(RunLimits limits) {
  State& s = *state_;
  TS_ASSERT(!s.ran && "a Runtime runs once");
  TS_ASSERT(t_current == nullptr && "one run at a time per thread");
  TS_ASSERT(context::active()->is_context(boost::fibers::type::main_context));
  s.ran = true;
  s.running = true;
  t_current = this;
  s.chooser.emplace(s.options.strategy, s.options.seed, limits.max_steps);
  s.algorithm = &FiberAlgorithm::for_this_thread();
  s.algorithm->bind(&s, s.options.max_fibers);
  s.start_pending();

  RunResult result;
  result.outcome = s.drive(limits);
  for (SimFiberId id = 0; id < s.slots.size(); ++id) {
    if (!s.slots[id].ended && s.slots[id].kind == FiberKind::ordinary) result.unfinished.push_back(id);
  }
  s.end_all_fibers();

  s.algorithm->unbind();
  t_current = nullptr;
  s.running = false;
  result.steps = s.steps;
  result.end_ms = s.clock.now_ms();
  result.fingerprint = s.fingerprint.value();
  result.schedule = std::move(s.schedule);
  result.failure = s.failure;
  if (s.options.strategy.kind == StrategyKind::replay) {
    result.replay_diverged_at = s.chooser->replay_diverged_at();
    // A replay that needed fewer steps than were recorded diverged too.
    if (!result.replay_diverged_at && s.chooser->choices_made() < s.options.strategy.replay.size()) {
      result.replay_diverged_at = s.chooser->choices_made();
    }
  }
  return result;
}

core::Ms Runtime::now_ms() const { return state_->clock.now_ms(); }
std::uint64_t Runtime::steps_taken() const { return state_->steps; }
std::size_t Runtime::fiber_count() const { return state_->slots.size(); }

const std::string& Runtime::fiber_name(SimFiberId fiber) const {
  TS_ASSERT(fiber < state_->slots.size());
  return state_->slots[fiber].name;
}

Runtime* Runtime::current() { return t_current; }

SimFiberId Runtime::self() const {
  if (current() != this) return kNoFiber;
  return FiberAlgorithm::current_id();
}

void Runtime::yield_point() {
  State& s = *state_;
  s.check_not_ending();
  const SimFiberId id = self();
  TS_ASSERT(id != kNoFiber);
  s.fiber_yield(id);
  s.check_not_ending();
}

void Runtime::sleep_until(core::Ms wake_ms) {
  if (wake_ms <= now_ms()) {
    yield_point();
    return;
  }
  state_->park(wake_ms, false);
}

void Runtime::park() { state_->park(std::nullopt, true); }

bool Runtime::park_until(core::Ms deadline_ms) {
  if (deadline_ms <= now_ms()) {
    yield_point();
    return false;
  }
  return state_->park(deadline_ms, true);
}

void Runtime::request_stop() {
  TS_ASSERT(self() != kNoFiber && "request_stop is called from a simulated fiber");
  if (!state_->stop) state_->stop = Outcome::stopped;
}

bool Runtime::unpark(SimFiberId fiber) {
  State& s = *state_;
  TS_ASSERT(self() != kNoFiber && "unpark is called from a simulated fiber");
  if (s.ending || fiber >= s.slots.size()) return false;
  State::Slot& slot = s.slots[fiber];
  if (!slot.parked || !slot.unparkable) return false;
  s.timers.remove(fiber);
  s.wake(fiber, true);
  return true;
}

}  // namespace turnstile::sim
