#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/time.h"
#include "sim/types.h"

namespace turnstile::sim {

// Virtual time for one run. It starts where the run says and only moves
// forward, and only when the driver moves it (Runtime advances it when no
// simulated fiber is ready). Nothing in the simulator reads a real clock.
class Clock {
 public:
  explicit Clock(core::Ms start_ms = 0) : now_ms_(start_ms) {}

  core::Ms now_ms() const { return now_ms_; }

  // Moves time forward to to_ms; to_ms must not be in the past.
  void advance_to(core::Ms to_ms);

 private:
  core::Ms now_ms_;
};

// A parked fiber's wake-up: when, and a sequence number that makes every
// entry distinct so the queue's order never depends on anything but its
// inputs. The sequence only breaks ties inside the queue; which of several
// fibers due at the same instant runs first is the scheduler's choice,
// because the driver wakes them all at once (DESIGN, third Boost fact).
struct Timer {
  core::Ms wake_ms = 0;
  std::uint64_t sequence = 0;
  SimFiberId fiber = kNoFiber;
};

// The fibers parked until a virtual time: a binary min-heap on
// (wake_ms, sequence) with a capacity fixed at construction. A fiber is on it
// at most once (it is either running, ready or parked), so a capacity of one
// entry per fiber can never overflow; push still reports a full queue as
// false rather than growing.
class TimerQueue {
 public:
  explicit TimerQueue(std::size_t capacity);

  // Parks `fiber` until wake_ms. False, and nothing changes, when full.
  bool push(core::Ms wake_ms, SimFiberId fiber);

  // Takes `fiber` off the queue (it was woken early). False if absent.
  // Linear in the queue's size, which is at most the number of fibers.
  bool remove(SimFiberId fiber);

  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  std::size_t capacity() const { return capacity_; }

  // The earliest wake time. The queue must not be empty.
  core::Ms next_wake_ms() const;

  // Removes every timer due at the earliest wake time and appends their
  // fibers to `out`, in sequence order. Returns that wake time. The queue
  // must not be empty.
  core::Ms pop_earliest(std::vector<SimFiberId>& out);

 private:
  std::vector<Timer> heap_;
  std::size_t capacity_;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace turnstile::sim
