// The simulator's foundation (DESIGN.md, "Determinism rules"): a seeded
// strategy picks among ready fibers, virtual time moves only when no fiber is
// ready, fibers due at one instant are woken together, a recorded schedule
// replays exactly, and every way a run can end is reported, never crashed.

#include <algorithm>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "sim/runtime.h"
#include "sim/scheduler.h"
#include "sim/sleep.h"

namespace turnstile::sim {
namespace {

StrategySpec pct(std::uint32_t depth) {
  StrategySpec spec;
  spec.kind = StrategyKind::pct;
  spec.pct_depth = depth;
  return spec;
}

StrategySpec replay(std::vector<Choice> choices) {
  StrategySpec spec;
  spec.kind = StrategyKind::replay;
  spec.replay = std::move(choices);
  return spec;
}

struct Observed {
  RunResult result;
  std::vector<SimFiberId> log;  // which fiber ran each segment, as the fibers saw it
};

// `fibers` fibers that each yield `yields` times, logging themselves before
// every yield: the log is the interleaving.
Observed run_yielders(std::uint64_t seed, const StrategySpec& strategy, int fibers = 3, int yields = 4) {
  Observed out;
  Runtime rt({.seed = seed, .strategy = strategy});
  for (int f = 0; f < fibers; ++f) {
    rt.spawn("yielder-" + std::to_string(f), [&out, yields] {
      for (int i = 0; i < yields; ++i) {
        out.log.push_back(self());
        yield_point();
      }
    });
  }
  out.result = rt.run(1000);
  return out;
}

// The number of maximal runs of one fiber in a log: 3 fibers run one after
// another give 3.
int blocks(const std::vector<SimFiberId>& log) {
  int count = 0;
  for (std::size_t i = 0; i < log.size(); ++i) count += (i == 0 || log[i] != log[i - 1]) ? 1 : 0;
  return count;
}

TEST(SimScheduler, P3_SameSeedGivesSameScheduleAndFingerprint) {
  for (const auto& strategy : {StrategySpec{}, pct(3)}) {
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
      const Observed first = run_yielders(seed, strategy);
      const Observed second = run_yielders(seed, strategy);
      ASSERT_EQ(first.result.outcome, Outcome::finished);
      EXPECT_EQ(first.result.schedule, second.result.schedule) << strategy_name(strategy) << " seed " << seed;
      EXPECT_EQ(first.result.fingerprint, second.result.fingerprint);
      EXPECT_EQ(first.log, second.log);
    }
  }
}

TEST(SimScheduler, DifferentSeedsGiveDifferentInterleavings) {
  std::set<std::vector<SimFiberId>> logs;
  std::set<std::uint64_t> fingerprints;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const Observed run = run_yielders(seed, StrategySpec{});
    EXPECT_EQ(run.result.outcome, Outcome::finished);
    EXPECT_EQ(run.log.size(), 12u);
    logs.insert(run.log);
    fingerprints.insert(run.result.fingerprint);
  }
  // 12!/(4!^3) = 34650 interleavings: 40 seeds should land on many.
  EXPECT_GE(logs.size(), 20u);
  EXPECT_EQ(fingerprints.size(), logs.size());
}

TEST(SimScheduler, EveryStepChoosesAmongAllReadyFibersIncludingTheOneThatYielded) {
  // Boost picks the next fiber before it re-queues the one that yields; the
  // driver must still see all three, or the yielder could never run twice
  // in a row.
  bool ran_twice_in_a_row = false;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const Observed run = run_yielders(seed, StrategySpec{});
    // Each fiber takes 5 steps (4 yields, then its end); a fiber is ready
    // at every step until its fifth.
    std::vector<int> taken(3, 0);
    for (const auto& step : run.result.schedule) {
      const auto alive = static_cast<std::uint32_t>(std::count_if(taken.begin(), taken.end(), [](int t) { return t < 5; }));
      EXPECT_EQ(step.choice.ready, alive) << "seed " << seed << " step " << step.step;
      ++taken[step.fiber];
    }
    for (std::size_t i = 1; i < run.log.size(); ++i) ran_twice_in_a_row |= run.log[i] == run.log[i - 1];
  }
  EXPECT_TRUE(ran_twice_in_a_row);
}

TEST(SimScheduler, FibersDueAtTheSameInstantAreWokenTogetherAndTheStrategyOrdersThem) {
  std::set<std::vector<SimFiberId>> orders;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    std::vector<SimFiberId> order;
    std::vector<core::Ms> times;
    Runtime rt({.seed = seed});
    for (int f = 0; f < 3; ++f) {
      rt.spawn("sleeper", [&] {
        sleep_until(100);
        order.push_back(self());
        times.push_back(now_ms());
      });
    }
    const RunResult result = rt.run(100);
    ASSERT_EQ(result.outcome, Outcome::finished);
    EXPECT_EQ(times, (std::vector<core::Ms>{100, 100, 100}));
    // Steps 0-2 start the fibers at time 0; step 3 is the first after the
    // wake-up, and all three were ready for it.
    ASSERT_EQ(result.schedule.size(), 6u);
    EXPECT_EQ(result.schedule[3].now_ms, 100);
    EXPECT_EQ(result.schedule[3].choice.ready, 3u);
    orders.insert(order);
  }
  // The timer queue's tie order would give one order only; the strategy
  // gives many, and fiber 0 runs both before and after fiber 1.
  EXPECT_GE(orders.size(), 4u);
  const auto zero_before_one = [](const std::vector<SimFiberId>& order) {
    return std::find(order.begin(), order.end(), 0u) < std::find(order.begin(), order.end(), 1u);
  };
  EXPECT_TRUE(std::any_of(orders.begin(), orders.end(), zero_before_one));
  EXPECT_FALSE(std::all_of(orders.begin(), orders.end(), zero_before_one));
}

TEST(SimScheduler, VirtualTimeAdvancesOnlyWhenNoFiberIsReady) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<core::Ms> busy_times;
    core::Ms woke_at = -1;
    Runtime rt({.seed = seed, .start_ms = 1000});
    rt.spawn("busy", [&] {
      for (int i = 0; i < 30; ++i) {
        busy_times.push_back(now_ms());
        yield_point();
      }
    });
    rt.spawn("sleeper", [&] {
      sleep_until(1010);
      woke_at = now_ms();
    });
    const RunResult result = rt.run(1000);
    ASSERT_EQ(result.outcome, Outcome::finished);
    // The sleeper is due at 1010, but the busy fiber is ready all along, so
    // time stands still until it ends.
    EXPECT_EQ(busy_times, std::vector<core::Ms>(30, 1000));
    EXPECT_EQ(woke_at, 1010);
    EXPECT_EQ(result.end_ms, 1010);
    // Time never goes back, and the one step at 1010 is the last.
    for (std::size_t i = 1; i < result.schedule.size(); ++i) EXPECT_LE(result.schedule[i - 1].now_ms, result.schedule[i].now_ms);
    EXPECT_EQ(result.schedule.back().now_ms, 1010);
    EXPECT_EQ(result.schedule[result.schedule.size() - 2].now_ms, 1000);
  }
}

TEST(SimScheduler, ReplayOfRecordedChoicesReproducesTheExactSchedule) {
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    const Observed original = run_yielders(seed, seed % 2 == 0 ? StrategySpec{} : pct(3));
    const Observed replayed = run_yielders(seed + 1000, replay(original.result.choices()));
    EXPECT_EQ(replayed.result.schedule, original.result.schedule) << "seed " << seed;
    EXPECT_EQ(replayed.result.fingerprint, original.result.fingerprint);
    EXPECT_EQ(replayed.log, original.log);
    EXPECT_FALSE(replayed.result.replay_diverged_at.has_value());
  }
}

TEST(SimScheduler, ReplayWrapsOutOfRangeIndicesAndReportsWhereItDiverged) {
  const Observed original = run_yielders(7, StrategySpec{});
  std::vector<Choice> choices = original.result.choices();
  // The same index plus the ready count picks the same fiber by modulo.
  choices[5].index += choices[5].ready;
  const Observed wrapped = run_yielders(7, replay(choices));
  EXPECT_EQ(wrapped.log, original.log);
  EXPECT_EQ(wrapped.result.replay_diverged_at, std::optional<std::uint64_t>{5});

  // Past the end of a recording the replay takes index 0: deterministic.
  const Observed empty_a = run_yielders(1, replay({}));
  const Observed empty_b = run_yielders(2, replay({}));
  EXPECT_EQ(empty_a.log, empty_b.log);
  EXPECT_EQ(empty_a.log.front(), 0u);
  EXPECT_EQ(empty_a.result.replay_diverged_at, std::optional<std::uint64_t>{0});
}

TEST(SimScheduler, PctIsDeterministicAndDepthOneRunsEachFiberToItsEnd) {
  std::set<std::vector<SimFiberId>> depth_one_orders;
  bool depth_three_preempted = false;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const Observed one = run_yielders(seed, pct(1));
    EXPECT_EQ(one.result.outcome, Outcome::finished);
    // Depth 1 has no change points: the highest priority runs until it ends.
    EXPECT_EQ(blocks(one.log), 3) << "seed " << seed;
    depth_one_orders.insert(one.log);
    const Observed three = run_yielders(seed, pct(3));
    EXPECT_EQ(three.result.schedule, run_yielders(seed, pct(3)).result.schedule);
    // Fibers switch only when one ends or takes a change point: at most
    // 2 + 2 switches, so at most 5 blocks.
    EXPECT_LE(blocks(three.log), 5);
    depth_three_preempted |= blocks(three.log) > 3;
  }
  EXPECT_GE(depth_one_orders.size(), 3u);  // the random priorities vary the order
  EXPECT_TRUE(depth_three_preempted);
}

TEST(SimScheduler, PctChangePointsPreemptWithinTheStepEstimate) {
  // With k = 15, the steps the run takes, both change points fall inside
  // the run. One preempts unless it lands on a fiber's last step or on the
  // last fiber left, so most seeds preempt.
  int preempted = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    StrategySpec spec = pct(3);
    spec.pct_steps_estimate = 15;
    preempted += blocks(run_yielders(seed, spec).log) > 3 ? 1 : 0;
  }
  EXPECT_GE(preempted, 20);
}

TEST(SimScheduler, StepLimitIsReportedAndTheFiberIsUnwound) {
  bool unwound = false;
  struct Guard {
    bool* flag;
    ~Guard() { *flag = true; }
  };
  Runtime rt({.seed = 1});
  const SimFiberId spinner = rt.spawn("spinner", [&] {
    Guard guard{&unwound};
    for (;;) yield_point();
  });
  const RunResult result = rt.run(50);
  EXPECT_EQ(result.outcome, Outcome::step_limit);
  EXPECT_EQ(result.steps, 50u);
  EXPECT_EQ(result.schedule.size(), 50u);
  EXPECT_EQ(result.unfinished, std::vector<SimFiberId>{spinner});
  EXPECT_TRUE(unwound);
}

TEST(SimScheduler, StuckFiberIsReportedAndCancelled) {
  bool unwound = false;
  bool returned_from_park = false;
  struct Guard {
    bool* flag;
    ~Guard() { *flag = true; }
  };
  Runtime rt({.seed = 3});
  rt.spawn("done", [] { yield_point(); });
  const SimFiberId waiter = rt.spawn("waiter", [&] {
    Guard guard{&unwound};
    park();
    returned_from_park = true;
  });
  const RunResult result = rt.run(100);
  EXPECT_EQ(result.outcome, Outcome::stuck);
  EXPECT_EQ(result.unfinished, std::vector<SimFiberId>{waiter});
  EXPECT_EQ(rt.fiber_name(waiter), "waiter");
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(returned_from_park);
}

TEST(SimScheduler, DaemonsDoNotKeepARunAlive) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    int requests = 0;
    int served = 0;
    Runtime rt({.seed = seed});
    const SimFiberId server = rt.spawn("server", [&] {
      for (;;) {
        while (requests == 0) park();
        --requests;
        ++served;
        yield_point();
      }
    }, FiberKind::daemon);
    rt.spawn("client", [&] {
      for (int i = 0; i < 3; ++i) {
        ++requests;
        unpark(server);  // may find the server not parked yet: it checks first
        sleep_until(now_ms() + 10);
      }
    });
    const RunResult result = rt.run(1000);
    EXPECT_EQ(result.outcome, Outcome::finished);
    EXPECT_TRUE(result.unfinished.empty());
    EXPECT_EQ(served, 3);
  }
}

TEST(SimScheduler, ParkUntilReturnsTrueWhenUnparkedAndFalseAtTheDeadline) {
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    std::vector<std::pair<bool, core::Ms>> waits;
    Runtime rt({.seed = seed});
    const SimFiberId waiter = rt.spawn("waiter", [&] {
      const bool first = park_until(50);
      waits.emplace_back(first, now_ms());
      const bool second = park_until(now_ms() + 30);
      waits.emplace_back(second, now_ms());
    });
    rt.spawn("waker", [&] {
      sleep_until(20);
      EXPECT_TRUE(unpark(waiter));
      EXPECT_FALSE(unpark(waiter));  // already ready: no effect
    });
    const RunResult result = rt.run(100);
    ASSERT_EQ(result.outcome, Outcome::finished);
    ASSERT_EQ(waits.size(), 2u);
    EXPECT_EQ(waits[0], std::make_pair(true, core::Ms{20}));
    EXPECT_EQ(waits[1], std::make_pair(false, core::Ms{50}));
  }
}

TEST(SimScheduler, SleepingFibersAreNotUnparked) {
  Runtime rt({.seed = 1});
  core::Ms woke_at = 0;
  const SimFiberId sleeper = rt.spawn("sleeper", [&] {
    sleep_until(40);
    woke_at = now_ms();
  });
  rt.spawn("waker", [&] {
    sleep_until(10);
    EXPECT_FALSE(unpark(sleeper));
  });
  EXPECT_EQ(rt.run(100).outcome, Outcome::finished);
  EXPECT_EQ(woke_at, 40);
}

TEST(SimScheduler, FibersSpawnedDuringARunGetTheNextIdsAndRun) {
  std::vector<SimFiberId> ran;
  Runtime rt({.seed = 2});
  rt.spawn("parent", [&] {
    for (int i = 0; i < 3; ++i) {
      const SimFiberId child = Runtime::current()->spawn("child", [&] { ran.push_back(self()); });
      EXPECT_EQ(child, static_cast<SimFiberId>(i + 1));
    }
  });
  EXPECT_EQ(rt.run(100).outcome, Outcome::finished);
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<SimFiberId>{1, 2, 3}));
}

TEST(SimScheduler, FiberLimitIsAnOutcome) {
  Runtime rt({.seed = 1, .max_fibers = 2});
  SimFiberId refused = 0;
  rt.spawn("parent", [&] {
    EXPECT_EQ(Runtime::current()->spawn("one", [] {}), 1u);
    refused = Runtime::current()->spawn("two", [] {});
    yield_point();
  });
  const RunResult result = rt.run(100);
  EXPECT_EQ(refused, kNoFiber);
  EXPECT_EQ(result.outcome, Outcome::fiber_limit);
}

TEST(SimScheduler, TimeLimitIsAnOutcome) {
  Runtime rt({.seed = 1});
  rt.spawn("late", [] { sleep_until(1000); });
  const RunResult result = rt.run({.max_steps = 100, .max_time_ms = 500});
  EXPECT_EQ(result.outcome, Outcome::time_limit);
  EXPECT_EQ(result.end_ms, 0);
  EXPECT_EQ(result.unfinished, std::vector<SimFiberId>{0});
}

TEST(SimScheduler, AnExceptionLeavingAFiberEndsTheRunWithItsMessage) {
  Runtime rt({.seed = 1});
  rt.spawn("other", [] {
    for (;;) sleep_until(now_ms() + 5);
  });
  rt.spawn("thrower", [] {
    sleep_until(12);
    throw std::runtime_error("fake redis lost its data");
  });
  const RunResult result = rt.run(1000);
  EXPECT_EQ(result.outcome, Outcome::fiber_failed);
  ASSERT_TRUE(result.failure.has_value());
  EXPECT_EQ(result.failure->fiber, 1u);
  EXPECT_EQ(result.failure->name, "thrower");
  EXPECT_EQ(result.failure->message, "fake redis lost its data");
}

TEST(SimScheduler, AFiberCanStopTheRunAfterItsStep) {
  bool ran_past_its_point = false;
  int ticks = 0;
  Runtime rt({.seed = 4});
  rt.spawn("ticker", [&] {
    for (;;) {
      ++ticks;
      sleep_until(now_ms() + 10);
    }
  });
  rt.spawn("checker", [&] {
    sleep_until(35);
    Runtime::current()->request_stop();
    yield_point();
    ran_past_its_point = true;
  });
  const RunResult result = rt.run(1000);
  EXPECT_EQ(result.outcome, Outcome::stopped);
  EXPECT_EQ(result.end_ms, 35);
  EXPECT_EQ(result.schedule.back().fiber, 1u);  // the checker's step was the last
  EXPECT_EQ(ticks, 4);                          // at 0, 10, 20 and 30
  EXPECT_FALSE(ran_past_its_point);
  EXPECT_EQ(result.unfinished, (std::vector<SimFiberId>{0, 1}));
}

TEST(SimScheduler, RunsOnAnotherThreadMatchThisThread) {
  const Observed here = run_yielders(11, pct(2));
  Observed there;
  std::thread worker([&] { there = run_yielders(11, pct(2)); });
  worker.join();
  EXPECT_EQ(here.result.schedule, there.result.schedule);
  EXPECT_EQ(here.log, there.log);
}

TEST(SimScheduler, AFingerprintChangesWhenTheScheduleDoes) {
  const Observed a = run_yielders(1, replay({}));
  std::vector<Choice> choices = a.result.choices();
  choices[1].index = (choices[1].index + 1) % choices[1].ready;
  const Observed b = run_yielders(1, replay(choices));
  EXPECT_NE(a.log, b.log);
  EXPECT_NE(a.result.fingerprint, b.result.fingerprint);
  // The running fingerprints agree up to the changed step, not after.
  EXPECT_EQ(a.result.schedule[0].fingerprint, b.result.schedule[0].fingerprint);
  EXPECT_NE(a.result.schedule[1].fingerprint, b.result.schedule[1].fingerprint);
}

TEST(SimStrategy, ParsesRandomAndPctOnly) {
  ASSERT_TRUE(parse_strategy("random").has_value());
  EXPECT_EQ(parse_strategy("random")->kind, StrategyKind::random);
  ASSERT_TRUE(parse_strategy("pct:3").has_value());
  EXPECT_EQ(parse_strategy("pct:3")->kind, StrategyKind::pct);
  EXPECT_EQ(parse_strategy("pct:3")->pct_depth, 3u);
  EXPECT_EQ(strategy_name(*parse_strategy("pct:3")), "pct:3");
  for (const char* bad : {"", "pct", "pct:", "pct:0", "pct:-1", "pct:3x", "pct:65", "replay", "Random"}) {
    EXPECT_FALSE(parse_strategy(bad).has_value()) << bad;
  }
}

TEST(SimStrategy, ChoicesStayInRangeAndRecordTheReadyCount) {
  for (const auto& spec : {StrategySpec{}, pct(4), replay({{7, 2}, {1, 9}})}) {
    Chooser chooser(spec, 42, 100);
    const std::vector<SimFiberId> ready = {2, 5, 9, 14};
    for (std::size_t n = 1; n <= ready.size(); ++n) {
      for (int i = 0; i < 25; ++i) {
        const Choice choice = chooser.choose(std::span(ready).first(n));
        EXPECT_LT(choice.index, n);
        EXPECT_EQ(choice.ready, n);
      }
    }
  }
}

}  // namespace
}  // namespace turnstile::sim
