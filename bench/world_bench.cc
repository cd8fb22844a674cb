// The cost of the fiber world (issue 3): the default scenario's clients run
// as fibers under the seeded scheduler, against the same core machines driven
// directly by a plain event loop over the same workload.
//
// The workload is taken from the world itself: for each seed, one untimed
// run records every request, every waiter leaving and every heartbeat and
// release a client sent to the store. The plain loop then feeds exactly
// those inputs, at their recorded times, to one core::Route per instance,
// applies store calls with core::apply at once and answers broker calls at
// once. Faults are off in both (a fault-free scenario), so the two do the
// same work: the ratio is the price of fibers, virtual time, the scheduler
// and the history, not of retries the loop would never make.
//
// Usage: world_bench [seeds] [repetitions]   (default 2000 seeds, 3 repetitions)
// Prints requests per second for each and the ratios; the best repetition counts.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <queue>
#include <string>
#include <variant>
#include <vector>

#include "core/gate.h"
#include "core/route.h"
#include "core/rng.h"
#include "sim/history.h"
#include "sim/scenario.h"
#include "sim/world.h"

namespace {

using namespace turnstile;

sim::Scenario fault_free_scenario() {
  sim::Scenario scenario = sim::default_scenario();
  scenario.faults = sim::FaultRates{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  return scenario;
}

// One input of the recorded workload.
struct RequestInput {
  sim::InstanceId instance = 0;
  core::WaiterId waiter = 0;
  core::StreamRequest request;
};
struct LeaveInput {
  sim::InstanceId instance = 0;
  core::WaiterId waiter = 0;
};
struct ClientStoreOp {  // a heartbeat or release a client sent to the store directly
  core::Op op;
};
struct TimedInput {
  core::Ms at_ms = 0;
  std::variant<RequestInput, LeaveInput, ClientStoreOp> input;
};

struct Workload {
  std::vector<TimedInput> inputs;  // in the order the world saw them
  std::uint64_t requests = 0;
  std::uint64_t responses = 0;  // what the world answered, to compare with the loop
};

Workload record_workload(const sim::Scenario& scenario, std::uint64_t seed) {
  sim::RunSpec spec;
  spec.scenario = scenario;
  spec.seed = seed;
  spec.check_rules = false;
  const sim::RunReport report = sim::run_world(spec);
  Workload workload;
  for (const sim::Event& event : report.history.events()) {
    if (const auto* sent = std::get_if<sim::RequestSent>(&event.body)) {
      workload.inputs.push_back({event.at_ms, RequestInput{sent->instance, sent->waiter, sent->request}});
      ++workload.requests;
    } else if (const auto* left = std::get_if<sim::WaiterLeft>(&event.body)) {
      workload.inputs.push_back({event.at_ms, LeaveInput{left->instance, left->waiter}});
    } else if (const auto* gate = std::get_if<sim::GateStep>(&event.body)) {
      // Without faults no flight releases (F5 needs a failed resolve), so
      // every heartbeat and release is a client's own.
      if (gate->op.kind != core::OpKind::admit) workload.inputs.push_back({event.at_ms, ClientStoreOp{gate->op}});
    } else if (std::holds_alternative<sim::ResponseReceived>(event.body)) {
      ++workload.responses;
    }
  }
  return workload;
}

// The plain loop: a time-ordered queue of inputs, replies and timers.
class PlainLoop {
 public:
  // `record`: keep the history the world keeps (requests, answers, calls and
  // gate steps with the pool before and after), as any driver must for the
  // checkers to judge the run. Without it the loop only computes.
  PlainLoop(const sim::Scenario& scenario, std::uint64_t seed, bool record)
      : scenario_(scenario), record_(record), history_(scenario.max_events) {
    const core::RouteConfig config{scenario.flow, scenario.coalesce};
    for (std::uint32_t i = 0; i < scenario.instances; ++i) {
      routes_.emplace_back(config);
      rngs_.emplace_back(core::derive_seed(seed, i));
    }
  }

  // Returns the number of answers the routes gave.
  std::uint64_t run(const Workload& workload) {
    for (std::size_t i = 0; i < workload.inputs.size(); ++i) push(workload.inputs[i].at_ms, InputRef{i});
    while (!queue_.empty()) {
      const Item item = queue_.top();
      queue_.pop();
      std::visit([&](const auto& what) { handle(item.at_ms, what, workload); }, item.what);
    }
    return responses_;
  }

 private:
  struct InputRef {
    std::size_t index = 0;
  };
  struct StoreReplyIn {
    std::uint32_t instance = 0;
    core::FlightId flight = 0;
    std::uint32_t call = 0;
    std::size_t decision = 0;  // index into decisions_, which keeps Item small
  };
  struct BrokerReplyIn {
    std::uint32_t instance = 0;
    core::FlightId flight = 0;
    std::uint32_t call = 0;
  };
  struct TimerIn {
    std::uint32_t instance = 0;
  };
  struct Item {
    core::Ms at_ms = 0;
    std::uint64_t order = 0;  // FIFO among equal times
    std::variant<InputRef, StoreReplyIn, BrokerReplyIn, TimerIn> what;
    bool operator>(const Item& other) const {
      return at_ms != other.at_ms ? at_ms > other.at_ms : order > other.order;
    }
  };

  template <typename T>
  void push(core::Ms at_ms, T what) {
    queue_.push(Item{at_ms, next_order_++, std::move(what)});
  }

  void handle(core::Ms now, const InputRef& ref, const Workload& workload) {
    const TimedInput& timed = workload.inputs[ref.index];
    if (const auto* request = std::get_if<RequestInput>(&timed.input)) {
      note(now, sim::RequestSent{request->instance, request->waiter, request->request});
      routes_[request->instance].on_request(now, request->waiter, request->request, rngs_[request->instance]);
      drain(now, request->instance);
    } else if (const auto* leave = std::get_if<LeaveInput>(&timed.input)) {
      note(now, sim::WaiterLeft{leave->instance, leave->waiter});
      routes_[leave->instance].on_leave(now, leave->waiter);
      drain(now, leave->instance);
    } else {
      (void)apply(now, std::get<ClientStoreOp>(timed.input).op);
    }
  }
  void handle(core::Ms now, const StoreReplyIn& in, const Workload&) {
    core::StoreReply reply;
    reply.decision = decisions_[in.decision];
    note(now, sim::CallEnded{in.instance, in.flight, sim::Dependency::store, in.call, core::OutcomeClass::success, std::nullopt, false});
    routes_[in.instance].on_store_reply(now, in.flight, in.call, reply, rngs_[in.instance]);
    drain(now, in.instance);
  }
  void handle(core::Ms now, const BrokerReplyIn& in, const Workload&) {
    core::BrokerReply reply;
    reply.streams.push_back(core::Stream{"stream", "https://example.invalid/stream"});
    note(now, sim::CallEnded{in.instance, in.flight, sim::Dependency::broker, in.call, core::OutcomeClass::success, std::nullopt, false});
    routes_[in.instance].on_broker_reply(now, in.flight, in.call, reply, rngs_[in.instance]);
    drain(now, in.instance);
  }
  void handle(core::Ms now, const TimerIn& in, const Workload&) {
    routes_[in.instance].on_timer(now, rngs_[in.instance]);
    drain(now, in.instance);
  }

  void drain(core::Ms now, std::uint32_t instance) {
    // Bounded by the route's own effect bound per input.
    while (std::optional<core::RouteEffect> effect = routes_[instance].poll()) {
      if (auto* store = std::get_if<core::RouteStoreCall>(&*effect)) {
        core::Op op = store->call.op;
        op.now = now;
        note(now, sim::CallStarted{instance, store->flight, sim::Dependency::store, store->call.call,
                                   store->call.attempt, op, store->call.deadline});
        decisions_.push_back(apply(now, op));
        push(now, StoreReplyIn{instance, store->flight, store->call.call, decisions_.size() - 1});
      } else if (auto* broker = std::get_if<core::RouteBrokerCall>(&*effect)) {
        note(now, sim::CallStarted{instance, broker->flight, sim::Dependency::broker, broker->call.call,
                                   broker->call.attempt, core::Op{}, broker->call.deadline});
        push(now, BrokerReplyIn{instance, broker->flight, broker->call.call});
      } else if (auto* wake = std::get_if<core::RouteWake>(&*effect)) {
        push(wake->at, TimerIn{instance});
      } else {
        const auto& respond = std::get<core::RouteRespond>(*effect);
        note(now, sim::ResponseReceived{instance, respond.waiter, respond.response, core::kNoToken});
        ++responses_;
      }
    }
  }

  core::Decision apply(core::Ms now, const core::Op& op) {
    if (!record_) return core::apply(pool_, op, scenario_.gate);
    core::PoolState before = pool_;
    const core::Decision decision = core::apply(pool_, op, scenario_.gate);
    note(now, sim::GateStep{scenario_.pool, op, decision, scenario_.gate, std::move(before), pool_, false});
    return decision;
  }

  void note(core::Ms now, sim::EventBody body) {
    if (record_) (void)history_.append(0, now, std::move(body));
  }

  const sim::Scenario& scenario_;
  bool record_ = false;
  sim::History history_;
  std::vector<core::Route> routes_;
  std::vector<core::Rng> rngs_;
  core::PoolState pool_;
  std::vector<core::Decision> decisions_;  // one per store call, bounded by the workload
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue_;
  std::uint64_t next_order_ = 0;
  std::uint64_t responses_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t seeds = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000;
  const int repetitions = argc > 2 ? std::atoi(argv[2]) : 3;
  const sim::Scenario scenario = fault_free_scenario();

  std::vector<Workload> workloads;
  std::uint64_t requests = 0;
  std::uint64_t world_responses = 0;
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    workloads.push_back(record_workload(scenario, seed));
    requests += workloads.back().requests;
    world_responses += workloads.back().responses;
  }

  double world_s = 1e300, checked_s = 1e300, loop_s = 1e300, recording_loop_s = 1e300;
  std::uint64_t loop_responses = 0;
  for (int rep = 0; rep < repetitions; ++rep) {
    for (const bool check : {false, true}) {
      const auto start = std::chrono::steady_clock::now();
      for (std::uint64_t seed = 0; seed < seeds; ++seed) {
        sim::RunSpec spec;
        spec.scenario = scenario;
        spec.seed = seed;
        spec.check_rules = check;
        if (sim::run_world(spec).violation) std::fprintf(stderr, "seed %llu: violation\n", (unsigned long long)seed);
      }
      (check ? checked_s : world_s) = std::min(check ? checked_s : world_s, seconds_since(start));
    }
    for (const bool record : {false, true}) {
      const auto start = std::chrono::steady_clock::now();
      loop_responses = 0;
      for (std::uint64_t seed = 0; seed < seeds; ++seed) {
        loop_responses += PlainLoop(scenario, seed, record).run(workloads[seed]);
      }
      (record ? recording_loop_s : loop_s) = std::min(record ? recording_loop_s : loop_s, seconds_since(start));
    }
  }

  std::printf("default scenario, faults off, %llu seeds, %llu requests (answered: world %llu, loop %llu)\n",
              (unsigned long long)seeds, (unsigned long long)requests, (unsigned long long)world_responses,
              (unsigned long long)loop_responses);
  std::printf("%-40s %9s %12s %14s %16s\n", "driver", "seconds", "requests/s", "vs bare loop", "vs recording loop");
  const auto row = [&](const char* name, double s) {
    std::printf("%-40s %9.3f %12.0f %13.2fx %15.2fx\n", name, s, double(requests) / s, s / loop_s,
                s / recording_loop_s);
  };
  row("plain loop, computing only", loop_s);
  row("plain loop recording the history", recording_loop_s);
  row("fiber world, no checkers", world_s);
  row("fiber world with every checker", checked_s);
  return 0;
}
