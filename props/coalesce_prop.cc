#include "core/coalesce.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace turnstile::core {
namespace {

// A small key space (2 pools x 2 clients x 2 episodes) so that requests
// collide on a key often and the bounds are hit often.
constexpr std::array<const char*, 2> kPools = {"pool-a", "pool-b"};
constexpr std::array<const char*, 2> kClients = {"client-1", "client-2"};
constexpr std::array<const char*, 2> kEpisodes = {"ep-1", "ep-2"};

enum class CommandKind { join, leave, finish };

// `pick` chooses among the flights (or join pairs) seen so far, with one
// extra choice meaning "one never issued", so unknown ids are exercised too.
struct Command {
  CommandKind kind = CommandKind::join;
  std::size_t pool = 0;
  std::size_t client = 0;
  std::size_t episode = 0;
  std::size_t pick = 0;
};

rc::Gen<Command> gen_command() {
  auto index = [](std::size_t n) { return rc::gen::inRange<std::size_t>(0, n); };
  return rc::gen::build<Command>(
      rc::gen::set(&Command::kind, rc::gen::weightedElement<CommandKind>({{5, CommandKind::join},
                                                                          {2, CommandKind::leave},
                                                                          {2, CommandKind::finish}})),
      rc::gen::set(&Command::pool, index(kPools.size())), rc::gen::set(&Command::client, index(kClients.size())),
      rc::gen::set(&Command::episode, index(kEpisodes.size())),
      rc::gen::set(&Command::pick, index(64)));
}

// The naive model: every flight ever started, in a list scanned from the
// start, with ended ones kept and marked.
struct ModelFlight {
  FlightId id = 0;
  FlightKey key;
  std::vector<WaiterId> waiters;
  bool ended = false;
};

struct Model {
  CoalesceConfig config;
  std::vector<ModelFlight> flights;

  ModelFlight* live(const FlightKey& key) {
    for (auto& f : flights) {
      if (!f.ended && f.key == key) return &f;
    }
    return nullptr;
  }
  ModelFlight* live(FlightId id) {
    for (auto& f : flights) {
      if (!f.ended && f.id == id) return &f;
    }
    return nullptr;
  }
  std::size_t live_count() const {
    return static_cast<std::size_t>(std::count_if(flights.begin(), flights.end(), [](auto& f) { return !f.ended; }));
  }

  JoinResult join(const FlightKey& key, WaiterId waiter) {
    if (ModelFlight* f = live(key)) {
      if (f->waiters.size() >= config.max_waiters) return {JoinOutcome::busy, 0};
      f->waiters.push_back(waiter);
      return {JoinOutcome::joined, f->id};
    }
    if (live_count() >= config.max_flights || config.max_waiters == 0) return {JoinOutcome::busy, 0};
    flights.push_back(ModelFlight{flights.size() + 1, key, {waiter}, false});
    return {JoinOutcome::leader, flights.back().id};
  }
  bool leave(FlightId id, WaiterId waiter) {
    ModelFlight* f = live(id);
    if (f == nullptr) return false;
    auto it = std::find(f->waiters.begin(), f->waiters.end(), waiter);
    if (it == f->waiters.end()) return false;
    f->waiters.erase(it);
    return true;
  }
  std::vector<WaiterId> finish(FlightId id) {
    ModelFlight* f = live(id);
    if (f == nullptr) return {};
    f->ended = true;
    return f->waiters;
  }
};

// What one step did, as seen by both the implementation and the model.
struct Step {
  Command command;
  FlightKey key;
  FlightId flight = 0;
  WaiterId waiter = 0;
  JoinResult join_got;
  JoinResult join_expected;
  bool leave_got = false;
  bool leave_expected = false;
  std::vector<WaiterId> finish_got;
  std::vector<WaiterId> finish_expected;
  std::size_t flights_before = 0;
  bool was_live = false;  // the model held the flight before a finish
  std::size_t waiters_before = 0;  // of the key's flight, before a join
};

// Runs commands against an implementation `C` and the model side by side.
template <class C>
struct Driver {
  explicit Driver(const CoalesceConfig& config) : impl(config), model{config, {}} {}

  C impl;
  Model model;
  std::vector<FlightId> issued;                             // every id a join returned, once
  std::vector<std::pair<FlightId, WaiterId>> join_pairs;  // every successful join
  WaiterId next_waiter = 1;

  FlightId pick_flight(std::size_t pick) const {
    const std::size_t i = pick % (issued.size() + 1);
    return i < issued.size() ? issued[i] : 1000000 + pick;  // never issued
  }

  Step run(const Command& command) {
    Step step;
    step.command = command;
    step.flights_before = impl.flight_count();
    switch (command.kind) {
      case CommandKind::join: {
        step.key = FlightKey{kPools[command.pool], kClients[command.client], kEpisodes[command.episode]};
        step.waiter = next_waiter++;
        if (ModelFlight* f = model.live(step.key)) step.waiters_before = impl.waiter_count(f->id);
        step.join_expected = model.join(step.key, step.waiter);
        step.join_got = impl.join(step.key, step.waiter);
        step.flight = step.join_got.flight;
        if (step.join_got.outcome != JoinOutcome::busy) {
          join_pairs.emplace_back(step.join_got.flight, step.waiter);
          if (std::find(issued.begin(), issued.end(), step.join_got.flight) == issued.end()) {
            issued.push_back(step.join_got.flight);
          }
        }
        break;
      }
      case CommandKind::leave: {
        const std::size_t i = command.pick % (join_pairs.size() + 1);
        if (i < join_pairs.size()) {
          step.flight = join_pairs[i].first;
          step.waiter = join_pairs[i].second;
        } else {
          step.flight = pick_flight(command.pick);
          step.waiter = next_waiter + 1000;  // never joined
        }
        step.leave_expected = model.leave(step.flight, step.waiter);
        step.leave_got = impl.leave(step.flight, step.waiter);
        break;
      }
      case CommandKind::finish: {
        step.flight = pick_flight(command.pick);
        if (const ModelFlight* f = model.live(step.flight)) {
          step.was_live = true;
          step.key = f->key;
        }
        step.finish_expected = model.finish(step.flight);
        step.finish_got = impl.finish(step.flight);
        break;
      }
    }
    return step;
  }

  // Every flight the model still holds, as the quiescence of C6 needs them ended.
  std::vector<FlightId> live_in_model() const {
    std::vector<FlightId> ids;
    for (const auto& f : model.flights) {
      if (!f.ended) ids.push_back(f.id);
    }
    return ids;
  }
};

CoalesceConfig gen_config() {
  CoalesceConfig config;
  config.max_flights = *rc::gen::inRange<std::size_t>(1, 5);
  config.max_waiters = *rc::gen::inRange<std::size_t>(1, 4);
  return config;
}

std::vector<Command> gen_commands() { return *rc::gen::container<std::vector<Command>>(gen_command()); }

// C1: join answers as the model does, and the live flights the
// implementation reports have pairwise different keys.
template <class C>
void one_flight_per_key() {
  const CoalesceConfig config = gen_config();
  Driver<C> driver(config);
  for (const Command& command : gen_commands()) {
    const Step step = driver.run(command);
    if (command.kind == CommandKind::join) {
      RC_ASSERT(step.join_got.outcome == step.join_expected.outcome);
      RC_ASSERT(step.join_got.flight == step.join_expected.flight);
    }
    std::set<FlightKey> keys;
    std::size_t live = 0;
    for (FlightId id : driver.issued) {
      if (!driver.impl.has_flight(id)) continue;
      const FlightKey* key = driver.impl.key_of(id);
      RC_ASSERT(key != nullptr);
      RC_ASSERT(keys.insert(*key).second);
      ++live;
    }
    RC_ASSERT(live == driver.impl.flight_count());
    RC_ASSERT(live == driver.model.live_count());
  }
}

// C2, C3: finish returns exactly the waiters that joined and did not leave,
// each once, in join order; the flight and its key are gone in the same step;
// a later request never joins an ended flight and a new flight has a new id.
template <class C>
void finish_answers_every_waiter_once() {
  const CoalesceConfig config = gen_config();
  Driver<C> driver(config);
  std::set<FlightId> ended;
  FlightId highest = 0;
  for (const Command& command : gen_commands()) {
    const Step step = driver.run(command);
    switch (command.kind) {
      case CommandKind::join:
        if (step.join_got.outcome == JoinOutcome::leader) {
          RC_ASSERT(step.join_got.flight > highest);
          highest = step.join_got.flight;
        }
        if (step.join_got.outcome == JoinOutcome::joined) {
          RC_ASSERT(ended.count(step.join_got.flight) == 0u);
          RC_ASSERT(driver.impl.has_flight(step.join_got.flight));
        }
        break;
      case CommandKind::leave:
        RC_ASSERT(step.leave_got == step.leave_expected);
        break;
      case CommandKind::finish: {
        RC_ASSERT(step.finish_got == step.finish_expected);
        const std::set<WaiterId> distinct(step.finish_got.begin(), step.finish_got.end());
        RC_ASSERT(distinct.size() == step.finish_got.size());
        RC_ASSERT(!driver.impl.has_flight(step.flight));
        RC_ASSERT(driver.impl.key_of(step.flight) == nullptr);
        RC_ASSERT(driver.impl.waiter_count(step.flight) == 0u);
        if (step.was_live) {
          ended.insert(step.flight);
          RC_ASSERT(driver.impl.flight_count() + 1 == step.flights_before);
          // The key is free in the same step: no live flight carries it any more.
          for (FlightId id : driver.issued) {
            const FlightKey* key = driver.impl.key_of(id);
            const bool carries_key = key != nullptr && *key == step.key;
            RC_ASSERT(!carries_key);
          }
        }
        break;
      }
    }
  }
}

// C4: a leave never ends a flight, whether or not it was the last waiter;
// only finish does.
template <class C>
void leave_never_ends_a_flight() {
  const CoalesceConfig config = gen_config();
  Driver<C> driver(config);
  for (const Command& command : gen_commands()) {
    const std::size_t before = driver.impl.flight_count();
    const Step step = driver.run(command);
    if (command.kind != CommandKind::leave) continue;
    RC_ASSERT(step.leave_got == step.leave_expected);
    RC_ASSERT(driver.impl.flight_count() == before);
    if (step.leave_got) {
      RC_ASSERT(driver.impl.has_flight(step.flight));
      RC_ASSERT(driver.impl.waiter_count(step.flight) == driver.model.live(step.flight)->waiters.size());
    }
  }
}

// C5: the table never holds more than max_flights flights nor a flight more
// than max_waiters waiters; busy is answered exactly when a bound is hit and
// records nothing.
template <class C>
void bounds_hold() {
  const CoalesceConfig config = gen_config();
  Driver<C> driver(config);
  for (const Command& command : gen_commands()) {
    const Step step = driver.run(command);
    RC_ASSERT(driver.impl.flight_count() <= config.max_flights);
    for (FlightId id : driver.issued) RC_ASSERT(driver.impl.waiter_count(id) <= config.max_waiters);
    if (command.kind != CommandKind::join) continue;
    RC_ASSERT((step.join_got.outcome == JoinOutcome::busy) == (step.join_expected.outcome == JoinOutcome::busy));
    if (step.join_got.outcome == JoinOutcome::busy) {
      RC_ASSERT(step.join_got.flight == 0u);
      RC_ASSERT(driver.impl.flight_count() == step.flights_before);
      if (const ModelFlight* f = driver.model.live(step.key)) {
        RC_ASSERT(driver.impl.waiter_count(f->id) == step.waiters_before);
      }
    }
  }
}

// C6: once every flight has finished, the table is empty.
template <class C>
void empty_at_quiescence() {
  const CoalesceConfig config = gen_config();
  Driver<C> driver(config);
  for (const Command& command : gen_commands()) driver.run(command);
  for (FlightId id : driver.live_in_model()) driver.impl.finish(id);
  RC_ASSERT(driver.impl.flight_count() == 0u);
  for (FlightId id : driver.issued) {
    RC_ASSERT(!driver.impl.has_flight(id));
    RC_ASSERT(driver.impl.waiter_count(id) == 0u);
  }
}

RC_GTEST_PROP(Coalesce, C1_AtMostOneFlightPerKeyAsTheModelSays, ()) { one_flight_per_key<Coalescer>(); }
RC_GTEST_PROP(Coalesce, C2_C3_FinishAnswersEveryRemainingWaiterOnceAndFreesTheKey, ()) {
  finish_answers_every_waiter_once<Coalescer>();
}
RC_GTEST_PROP(Coalesce, C4_LeaveNeverEndsAFlight, ()) { leave_never_ends_a_flight<Coalescer>(); }
RC_GTEST_PROP(Coalesce, C5_BoundsAreNeverExceeded, ()) { bounds_hold<Coalescer>(); }
RC_GTEST_PROP(Coalesce, C6_TableIsEmptyOnceEveryFlightFinished, ()) { empty_at_quiescence<Coalescer>(); }

// Broken coalescers, each wrapping the real one and breaking one rule, so
// the properties above can be shown to catch what they claim to catch.
class Forwarding {
 public:
  explicit Forwarding(const CoalesceConfig& config) : inner_(config) {}
  JoinResult join(const FlightKey& key, WaiterId waiter) { return inner_.join(key, waiter); }
  bool leave(FlightId flight, WaiterId waiter) { return inner_.leave(flight, waiter); }
  std::vector<WaiterId> finish(FlightId flight) { return inner_.finish(flight); }
  std::size_t flight_count() const { return inner_.flight_count(); }
  std::size_t waiter_count(FlightId flight) const { return inner_.waiter_count(flight); }
  bool has_flight(FlightId flight) const { return inner_.has_flight(flight); }
  const FlightKey* key_of(FlightId flight) const { return inner_.key_of(flight); }

 protected:
  Coalescer inner_;
};

// Breaks C1/C3/C4: finish forgets to free the key, so the next request for it
// joins the flight that has already ended.
class LeaksKeyOnFinish : public Forwarding {
 public:
  using Forwarding::Forwarding;
  JoinResult join(const FlightKey& key, WaiterId waiter) {
    if (auto it = stale_.find(key); it != stale_.end()) return {JoinOutcome::joined, it->second};
    return inner_.join(key, waiter);
  }
  std::vector<WaiterId> finish(FlightId flight) {
    if (const FlightKey* key = inner_.key_of(flight)) stale_.emplace(*key, flight);
    return inner_.finish(flight);
  }

 private:
  std::map<FlightKey, FlightId> stale_;
};

// Breaks C2: a flight with several waiters loses its last one at finish.
class DropsAWaiter : public Forwarding {
 public:
  using Forwarding::Forwarding;
  std::vector<WaiterId> finish(FlightId flight) {
    std::vector<WaiterId> waiters = inner_.finish(flight);
    if (waiters.size() >= 2) waiters.pop_back();
    return waiters;
  }
};

// Breaks C4: the last waiter leaving ends the flight.
class LeaveEndsEmptyFlight : public Forwarding {
 public:
  using Forwarding::Forwarding;
  bool leave(FlightId flight, WaiterId waiter) {
    const bool left = inner_.leave(flight, waiter);
    if (left && inner_.waiter_count(flight) == 0) inner_.finish(flight);
    return left;
  }
};

// Breaks C5: the flight table holds one flight more than its bound.
class OneFlightOverBound : public Forwarding {
 public:
  explicit OneFlightOverBound(const CoalesceConfig& config)
      : Forwarding(CoalesceConfig{config.max_flights + 1, config.max_waiters}) {}
};

// Breaks C6: a flight whose waiters all left is never removed by finish.
class LeaksAbandonedFlight : public Forwarding {
 public:
  using Forwarding::Forwarding;
  std::vector<WaiterId> finish(FlightId flight) {
    if (inner_.has_flight(flight) && inner_.waiter_count(flight) == 0) return {};
    return inner_.finish(flight);
  }
};

TEST(Coalesce, C1_PropertyCatchesAKeyLeakedByFinish) {
  EXPECT_FALSE(rc::check("C1 with a leaked key", [] { one_flight_per_key<LeaksKeyOnFinish>(); }));
}

TEST(Coalesce, C3_PropertyCatchesAJoinOfAnEndedFlight) {
  EXPECT_FALSE(rc::check("C3 with a leaked key", [] { finish_answers_every_waiter_once<LeaksKeyOnFinish>(); }));
}

TEST(Coalesce, C2_PropertyCatchesADroppedWaiter) {
  EXPECT_FALSE(rc::check("C2 with a dropped waiter", [] { finish_answers_every_waiter_once<DropsAWaiter>(); }));
}

TEST(Coalesce, C4_PropertyCatchesALeaveThatEndsTheFlight) {
  EXPECT_FALSE(rc::check("C4 with leave ending the flight", [] { leave_never_ends_a_flight<LeaveEndsEmptyFlight>(); }));
}

TEST(Coalesce, C5_PropertyCatchesAFlightOverTheBound) {
  EXPECT_FALSE(rc::check("C5 one flight over", [] { bounds_hold<OneFlightOverBound>(); }));
}

TEST(Coalesce, C6_PropertyCatchesAnAbandonedFlightLeft) {
  EXPECT_FALSE(rc::check("C6 abandoned flight kept", [] { empty_at_quiescence<LeaksAbandonedFlight>(); }));
}

}  // namespace
}  // namespace turnstile::core
