#pragma once

// What simulated code calls to let time pass and to let other fibers run.
// Each acts on the Runtime whose run is under way on this thread
// (Runtime::current()) and must be called from one of its fibers; see
// sim/runtime.h for the model. Never call boost::this_fiber's sleeps, or any
// Boost timed wait, from simulated code: they read steady_clock.

#include "core/time.h"
#include "sim/types.h"

namespace turnstile::sim {

// The run's virtual time.
core::Ms now_ms();

// The calling fiber's SimFiberId.
SimFiberId self();

// A scheduling point: stays ready, the strategy picks who runs next.
void yield_point();

// Parks until virtual time wake_ms (a time at or before now: yield_point).
void sleep_until(core::Ms wake_ms);

// Parks until another fiber calls unpark(self()).
void park();

// Parks until unparked (true) or until deadline_ms (false).
bool park_until(core::Ms deadline_ms);

// Readies a fiber waiting in park()/park_until(); false if it is not.
bool unpark(SimFiberId fiber);

}  // namespace turnstile::sim
