#include "sim/clock.h"

#include <algorithm>

#include "core/assert.h"

namespace turnstile::sim {
namespace {

// std::push_heap builds a max-heap, so "less" here means "wakes later".
bool wakes_later(const Timer& a, const Timer& b) {
  if (a.wake_ms != b.wake_ms) return a.wake_ms > b.wake_ms;
  return a.sequence > b.sequence;
}

}  // namespace

void Clock::advance_to(core::Ms to_ms) {
  TS_ASSERT(to_ms >= now_ms_);
  now_ms_ = to_ms;
}

TimerQueue::TimerQueue(std::size_t capacity) : capacity_(capacity) { heap_.reserve(capacity); }

bool TimerQueue::push(core::Ms wake_ms, SimFiberId fiber) {
  TS_ASSERT(fiber != kNoFiber);
  if (heap_.size() >= capacity_) return false;
  heap_.push_back(Timer{wake_ms, next_sequence_++, fiber});
  std::push_heap(heap_.begin(), heap_.end(), wakes_later);
  return true;
}

bool TimerQueue::remove(SimFiberId fiber) {
  const auto found = std::find_if(heap_.begin(), heap_.end(), [fiber](const Timer& t) { return t.fiber == fiber; });
  if (found == heap_.end()) return false;
  *found = heap_.back();
  heap_.pop_back();
  std::make_heap(heap_.begin(), heap_.end(), wakes_later);
  return true;
}

core::Ms TimerQueue::next_wake_ms() const {
  TS_ASSERT(!heap_.empty());
  return heap_.front().wake_ms;
}

core::Ms TimerQueue::pop_earliest(std::vector<SimFiberId>& out) {
  TS_ASSERT(!heap_.empty());
  const core::Ms wake_ms = heap_.front().wake_ms;
  // Each round removes one entry, so the loop ends within size() rounds.
  while (!heap_.empty() && heap_.front().wake_ms == wake_ms) {
    std::pop_heap(heap_.begin(), heap_.end(), wakes_later);
    out.push_back(heap_.back().fiber);
    heap_.pop_back();
  }
  return wake_ms;
}

}  // namespace turnstile::sim
