#include "sim/sleep.h"

#include "core/assert.h"
#include "sim/runtime.h"

namespace turnstile::sim {
namespace {

Runtime& running() {
  Runtime* runtime = Runtime::current();
  TS_ASSERT(runtime != nullptr && "sim:: scheduling points need a Runtime's run under way on this thread");
  return *runtime;
}

}  // namespace

core::Ms now_ms() { return running().now_ms(); }
SimFiberId self() { return running().self(); }
void yield_point() { running().yield_point(); }
void sleep_until(core::Ms wake_ms) { running().sleep_until(wake_ms); }
void park() { running().park(); }
bool park_until(core::Ms deadline_ms) { return running().park_until(deadline_ms); }
bool unpark(SimFiberId fiber) { return running().unpark(fiber); }

}  // namespace turnstile::sim
