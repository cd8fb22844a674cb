// One run of the world. The pieces, all fibers of one Runtime:
//
//   clients     one fiber per client (sim/clients.cc), plus a burst's members
//   store/broker calls
//               one fiber per attempt a route emits: it performs the call
//               against the fake (faults, latency, the gate) and hands the
//               reply back to the route; no reply (a timeout, a lost reply,
//               a hang) and the route's own deadline ends the attempt
//   timer       one daemon per instance: sleeps until the server's
//               next_deadline() and calls on_timer(); woken early when an
//               input brings an earlier deadline
//   phases      the fault phase, then FaultsHealed, then the liveness phase,
//               ending with one probe of the pool (a last G2 prune on record)
//
// The route driver (drain) runs after every input to a server, in the
// input's own step: it performs each effect in the order poll() gives them
// (a call starts its fiber and records CallStarted, and a flight id not seen
// before records FlightStarted first; a response records ResponseReceived and
// lands in the waiter's mailbox; a wake needs nothing, the timer follows
// next_deadline()), then records FlightEnded for every flight the server no
// longer has, then wakes the timer if the next deadline came earlier. Every
// event goes through record(), which appends it to the history and shows it
// to the checkers; the first violation stops the run (RunSpec::stop_on_violation).
//
// Randomness: the scheduler's seed is split from the run's seed; everything
// else is a draw (sim/draws.h): the swarm's fault mix, the instances' clock
// skews and retry-jitter seeds, the clients' choices, each call's faults and
// latencies. The retry machines' R5 jitter comes from one core::Rng per
// instance, seeded by a draw: Route::on_timer serves every due flight of an
// instance with one source, so a per-flight source cannot be threaded through.

#include "sim/world.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"
#include "sim/clients.h"
#include "sim/fake_broker.h"
#include "sim/fake_store.h"
#include "sim/fingerprint.h"
#include "sim/sleep.h"

namespace turnstile::sim {

std::string_view gate_mode_name(GateMode mode) { return mode == GateMode::legacy ? "legacy" : "atomic"; }

std::optional<GateMode> gate_mode_from_name(std::string_view name) {
  if (name == "atomic") return GateMode::atomic;
  if (name == "legacy") return GateMode::legacy;
  return std::nullopt;
}

namespace {

class CoreServer final : public Server {
 public:
  explicit CoreServer(const core::RouteConfig& config) : route_(config) {}

  void on_request(core::Ms now, core::WaiterId waiter, const core::StreamRequest& request, core::Rng& rng) override {
    route_.on_request(now, waiter, request, rng);
  }
  void on_leave(core::Ms now, core::WaiterId waiter) override { route_.on_leave(now, waiter); }
  void on_store_reply(core::Ms now, core::FlightId flight, std::uint32_t call, const core::StoreReply& reply,
                      core::Rng& rng) override {
    route_.on_store_reply(now, flight, call, reply, rng);
  }
  void on_broker_reply(core::Ms now, core::FlightId flight, std::uint32_t call, const core::BrokerReply& reply,
                       core::Rng& rng) override {
    route_.on_broker_reply(now, flight, call, reply, rng);
  }
  void on_timer(core::Ms now, core::Rng& rng) override { route_.on_timer(now, rng); }
  std::optional<core::RouteEffect> poll() override { return route_.poll(); }
  std::optional<core::Ms> next_deadline() const override { return route_.next_deadline(); }
  std::size_t flight_count() const override { return route_.flight_count(); }
  bool has_flight(core::FlightId flight) const override { return route_.coalescer().has_flight(flight); }

 private:
  core::Route route_;
};

}  // namespace

std::unique_ptr<Server> make_core_server(const core::RouteConfig& config) {
  return std::make_unique<CoreServer>(config);
}

namespace {

// The scheduler's stream of the run's seed; Draws takes streams 1 and up.
constexpr std::uint64_t kSchedulerStream = 0;
// Each instance's route gets a retry-jitter source seeded by one draw below this.
constexpr std::uint64_t kJitterSeedBound = std::uint64_t{1} << 32;
// The client whose heartbeat, at the end of the liveness phase, makes the
// store prune the pool one last time, so the history shows every abandoned
// slot freed (G2).
constexpr const char* kProbeClient = "liveness-probe";
// A client fiber is unparked only by its own answer; more wake-ups than this
// for one answer is a bug in the world.
constexpr int kMaxWakeupsPerAnswer = 1000;

// Which fault sites are on for this run, and how often they fire: swarm
// testing (each seed draws its own mix; a site that is off never draws).
struct Swarm {
  StoreFaults store;
  BrokerFaults broker;
  core::Ms clock_skew_max_ms = 0;
  std::uint32_t clock_backwards_permille = 0;
};

Swarm draw_swarm(const FaultRates& rates, Draws& draws) {
  // A site is on with probability 1/2 (0, the simplest, is off); when on, its
  // rate is drawn up to the scenario's bound.
  auto permille = [&draws](std::uint32_t max) -> std::uint32_t {
    if (max == 0 || draws.below(DrawSite::swarm, 2) == 0) return 0;
    return static_cast<std::uint32_t>(draws.uniform(DrawSite::swarm, 1, max));
  };
  auto ms = [&draws](core::Ms max) -> core::Ms {
    if (max <= 0 || draws.below(DrawSite::swarm, 2) == 0) return 0;
    return draws.uniform(DrawSite::swarm, 1, max);
  };
  Swarm s;
  s.store.latency_max_ms = ms(rates.store_latency_max_ms);
  s.store.timeout_permille = permille(rates.store_timeout_permille);
  s.store.lost_reply_permille = permille(rates.store_lost_reply_permille);
  s.store.reset_permille = permille(rates.store_reset_permille);
  s.store.busy_permille = permille(rates.store_busy_permille);
  s.store.noscript_permille = permille(rates.store_noscript_permille);
  s.store.restart_permille = permille(rates.store_restart_permille);
  s.clock_skew_max_ms = ms(rates.clock_skew_max_ms);
  s.clock_backwards_permille = permille(rates.clock_backwards_permille);
  s.broker.latency_max_ms = ms(rates.broker_latency_max_ms);
  s.broker.transient_permille = permille(rates.broker_transient_permille);
  s.broker.status_501_permille = permille(rates.broker_501_permille);
  s.broker.reset_permille = permille(rates.broker_reset_permille);
  s.broker.hang_permille = permille(rates.broker_hang_permille);
  s.broker.malformed_permille = permille(rates.broker_malformed_permille);
  return s;
}

// F6: the most a sound route takes to answer.
core::Ms answer_bound_ms(const core::FlowConfig& flow) {
  return flow.store.budget_ms + flow.broker.budget_ms + flow.store.budget_ms;
}

// How long after the liveness phase began a client may still be busy: a
// blip that arrived last, watched, was away T + G and watches again; a zap
// that switched every time. A safety limit for the run, not a rule.
core::Ms client_tail_ms(const Scenario& scenario, core::Ms answer_timeout_ms) {
  core::Ms tail = 0;
  for (const ClientGroup& g : scenario.clients) {
    const core::Ms switching = static_cast<core::Ms>(g.switches) * (g.think_ms + answer_timeout_ms);
    tail = std::max(tail, g.spread_ms + 2 * g.watch_ms + scenario.gate.ttl_ms + scenario.gate.grace_ms + switching +
                              2 * answer_timeout_ms + g.heartbeat_ms + scenario.flow.store.attempt_timeout_ms);
  }
  return tail;
}

// Fibers a run may need: the instances' timers, the phases, every client and
// burst member, and one fiber per dependency call (a request's flight makes
// at most six: two attempts in each of three phases).
std::size_t fiber_bound(const Scenario& scenario) {
  constexpr std::size_t kCallsPerRequest = 6;
  std::size_t fibers = 1 + scenario.instances;
  for (const ClientGroup& g : scenario.clients) {
    std::size_t requests = 1;
    switch (g.behaviour) {
      case Behaviour::watch:
      case Behaviour::storm:
        requests = 4;  // clients.cc: kMaxTries
        break;
      case Behaviour::blip:
        requests = 5;
        break;
      case Behaviour::zap:
        requests = g.switches;
        break;
      case Behaviour::burst:
        requests = g.burst;
        break;
    }
    fibers += g.count * (g.burst + requests * kCallsPerRequest);
  }
  return fibers;
}

class World final : public ClientWorld {
 public:
  explicit World(const RunSpec& spec);
  RunReport run();

  // ClientWorld
  std::uint32_t instance_count() const override { return static_cast<std::uint32_t>(instances_.size()); }
  core::WaiterId send(InstanceId instance, core::StreamRequest request) override;
  std::optional<Answer> await_answer(core::WaiterId waiter, core::Ms deadline_ms) override;
  void leave(core::WaiterId waiter) override;
  std::optional<core::StoreReply> store(InstanceId instance, core::Op op) override;
  bool spawn(std::string name, std::function<void()> body) override;

 private:
  // An attempt the route started and whose end the world has not recorded.
  struct OpenCall {
    Dependency dependency = Dependency::store;
    core::Ms deadline = 0;
  };
  using CallRef = std::pair<core::FlightId, std::uint32_t>;

  // One server instance and what the world tracks of it.
  struct Instance {
    std::unique_ptr<Server> server;
    core::Rng rng;         // the route's R5 jitter
    core::Ms skew_ms = 0;  // its clock's offset from virtual time, in the fault phase
    SimFiberId timer = kNoFiber;
    std::optional<core::Ms> timer_wake_ms;  // when its timer fiber will next look, if it sleeps on a deadline
    core::FlightId last_flight = 0;         // flight ids only grow: a larger one is a new flight
    std::set<core::FlightId> flights;       // running, as far as the history says
    std::map<CallRef, OpenCall> calls;
  };

  // Where a waiter's answer lands, and the client fiber to wake for it.
  struct Mailbox {
    InstanceId instance = 0;
    SimFiberId fiber = kNoFiber;
    std::optional<Answer> answer;
  };

  void record(EventBody body);

  // An instance's clock offset, when the swarm turned skew on.
  core::Ms draw_skew();
  // The instance's clock: virtual time plus its skew, until the faults heal.
  core::Ms instance_clock(InstanceId i) const;
  // The clock a caller stamps a store command with: the instance's clock,
  // which may also step backwards (a fault).
  core::Ms store_clock(InstanceId i);

  // The route driver: after every input to an instance's server, performs
  // every effect it polled out, then records the flights that ended and
  // wakes the instance's timer if its next deadline came earlier.
  void drain(InstanceId i, const core::StreamRequest* request);
  void note_flight(InstanceId i, core::FlightId flight, const core::StreamRequest* request, const std::string& client,
                   const std::string& episode);
  void start_store_call(InstanceId i, const core::RouteStoreCall& call, const core::StreamRequest* request);
  void start_broker_call(InstanceId i, const core::RouteBrokerCall& call, const core::StreamRequest* request);
  void respond(InstanceId i, const core::RouteRespond& respond);
  void end_flights(InstanceId i);
  void wake_timer(InstanceId i);
  void end_call(InstanceId i, const CallRef& call, const core::AttemptResult& result, bool timed_out);

  // Fiber bodies.
  void perform_store_call(InstanceId i, const core::RouteStoreCall& call);
  void perform_broker_call(InstanceId i, const core::RouteBrokerCall& call);
  void timer_loop(InstanceId i);
  void phases();

  std::optional<Answer> take_answer(core::WaiterId waiter);

  // P14's verdict as a violation, at the step the stuck command returned.
  Violation p14_violation(const GateCheck& check, const RunReport& report) const;

  const RunSpec& spec_;
  const Scenario& scenario_;
  Draws draws_;
  History history_;
  std::vector<std::unique_ptr<Checker>> checkers_;
  std::optional<Violation> violation_;
  bool history_full_ = false;
  Swarm swarm_;
  bool healed_ = false;
  FakeStore store_;
  FakeBroker broker_;
  std::vector<Instance> instances_;
  std::map<core::WaiterId, Mailbox> mailboxes_;
  core::WaiterId next_waiter_ = 1;
  std::uint64_t requests_ = 0;
  core::Ms answer_timeout_ms_;
  std::size_t effects_per_input_;
  Runtime runtime_;
};

Draws make_draws(const RunSpec& spec) {
  if (spec.replay_draws) return Draws(*spec.replay_draws);
  if (spec.draw_plan) return Draws(*spec.draw_plan);
  return Draws(spec.seed);
}

World::World(const RunSpec& spec)
    : spec_(spec),
      scenario_(spec.scenario),
      draws_(make_draws(spec)),
      history_(spec.scenario.max_events),
      checkers_(spec.check_rules ? make_checkers(spec.scenario) : std::vector<std::unique_ptr<Checker>>{}),
      swarm_(draw_swarm(spec.scenario.faults, draws_)),
      store_(StoreOptions{spec.gate, spec.scenario.gate, swarm_.store, spec.hooks.gate}, draws_,
             [this](EventBody body) { record(std::move(body)); }),
      broker_(swarm_.broker, draws_, [this](EventBody body) { record(std::move(body)); }),
      answer_timeout_ms_(answer_bound_ms(spec.scenario.flow) + 1000),
      // The route's own bound: every flight's few effects and its waiters' answers.
      effects_per_input_((spec.scenario.coalesce.max_flights + 1) * (spec.scenario.coalesce.max_waiters + 8)),
      runtime_(RuntimeOptions{.seed = core::derive_seed(spec.seed, kSchedulerStream),
                              .strategy = spec.strategy,
                              .max_fibers = fiber_bound(spec.scenario)}) {
  TS_ASSERT(!check_scenario(scenario_));
  const core::RouteConfig config{scenario_.flow, scenario_.coalesce};
  instances_.reserve(scenario_.instances);
  for (InstanceId i = 0; i < scenario_.instances; ++i) {
    std::unique_ptr<Server> server = spec.hooks.make_server ? spec.hooks.make_server(config) : make_core_server(config);
    core::Rng rng(draws_.below(DrawSite::jitter, kJitterSeedBound));
    instances_.push_back(Instance{std::move(server), rng, draw_skew(), kNoFiber, std::nullopt, 0, {}, {}});
  }
}

void World::record(EventBody body) {
  if (history_full_) return;
  const std::uint64_t steps = runtime_.steps_taken();
  const std::uint64_t step = steps == 0 ? 0 : steps - 1;
  if (!history_.append(step, runtime_.now_ms(), std::move(body))) {
    // The history's bound is the run's: it ends here (RunReport::history_full).
    history_full_ = true;
    runtime_.request_stop();
    return;
  }
  if (violation_) return;
  const Event& event = history_.events().back();
  for (const auto& checker : checkers_) {
    if (std::optional<Violation> found = checker->on_event(event)) {
      violation_ = std::move(found);
      if (spec_.stop_on_violation) runtime_.request_stop();
      return;
    }
  }
}

core::Ms World::draw_skew() {
  if (swarm_.clock_skew_max_ms <= 0) return 0;
  // Size first, then direction, so that 0 (the simplest) is no skew at all.
  const core::Ms size_ms = draws_.uniform(DrawSite::clock_skew, 0, swarm_.clock_skew_max_ms);
  if (size_ms == 0) return 0;
  return draws_.below(DrawSite::clock_skew, 2) == 1 ? -size_ms : size_ms;
}

core::Ms World::instance_clock(InstanceId i) const {
  const core::Ms now = now_ms();
  if (healed_) return now;
  return std::clamp<core::Ms>(now + instances_[i].skew_ms, 0, core::kMaxTimeMs);
}

core::Ms World::store_clock(InstanceId i) {
  core::Ms clock = instance_clock(i);
  if (!healed_ && draws_.chance_permille(DrawSite::clock_skew, swarm_.clock_backwards_permille)) {
    const core::Ms back_ms =
        draws_.uniform(DrawSite::clock_skew, 1, std::max<core::Ms>(1, scenario_.faults.clock_skew_max_ms));
    record(FaultFired{"clock.backwards", std::to_string(back_ms) + " ms"});
    clock = std::max<core::Ms>(0, clock - back_ms);
  }
  return clock;
}

// ---------------------------------------------------------------------------
// What clients do.

core::WaiterId World::send(InstanceId instance, core::StreamRequest request) {
  TS_ASSERT(instance < instances_.size());
  request.issued_at = instance_clock(instance);
  const core::WaiterId waiter = next_waiter_++;
  ++requests_;
  record(RequestSent{instance, waiter, request});
  mailboxes_.emplace(waiter, Mailbox{instance, self(), std::nullopt});
  Instance& inst = instances_[instance];
  inst.server->on_request(now_ms(), waiter, request, inst.rng);
  drain(instance, &request);
  return waiter;
}

std::optional<Answer> World::take_answer(core::WaiterId waiter) {
  auto box = mailboxes_.find(waiter);
  TS_ASSERT(box != mailboxes_.end());
  if (!box->second.answer) return std::nullopt;
  Answer answer = std::move(*box->second.answer);
  mailboxes_.erase(box);
  return answer;
}

std::optional<Answer> World::await_answer(core::WaiterId waiter, core::Ms deadline_ms) {
  // Checked before each park: the answer may already be in (a denial given
  // at once, say), and unpark is not remembered.
  for (int round = 0; round < kMaxWakeupsPerAnswer; ++round) {
    if (std::optional<Answer> answer = take_answer(waiter)) return answer;
    if (!park_until(deadline_ms)) return take_answer(waiter);
  }
  TS_ASSERT(false && "a client fiber was woken too often without its answer");
  return std::nullopt;
}

void World::leave(core::WaiterId waiter) {
  auto box = mailboxes_.find(waiter);
  if (box == mailboxes_.end()) return;
  const bool answered = box->second.answer.has_value();
  const InstanceId instance = box->second.instance;
  mailboxes_.erase(box);
  if (answered) return;
  record(WaiterLeft{instance, waiter});
  instances_[instance].server->on_leave(now_ms(), waiter);
  drain(instance, nullptr);
}

std::optional<core::StoreReply> World::store(InstanceId instance, core::Op op) {
  TS_ASSERT(instance < instances_.size());
  op.now = store_clock(instance);
  const core::Ms start_ms = now_ms();
  std::optional<core::StoreReply> reply = store_.call(scenario_.pool, op);
  // No reply: the client's own timeout, the store's attempt timeout, ends its wait.
  if (!reply) sleep_until(start_ms + scenario_.flow.store.attempt_timeout_ms);
  return reply;
}

bool World::spawn(std::string name, std::function<void()> body) {
  return runtime_.spawn(std::move(name), std::move(body)) != kNoFiber;
}

// ---------------------------------------------------------------------------
// The route driver.

void World::drain(InstanceId i, const core::StreamRequest* request) {
  Instance& inst = instances_[i];
  for (std::size_t n = 0;; ++n) {
    TS_ASSERT(n <= effects_per_input_);
    std::optional<core::RouteEffect> effect = inst.server->poll();
    if (!effect) break;
    if (const auto* store_call = std::get_if<core::RouteStoreCall>(&*effect)) {
      start_store_call(i, *store_call, request);
    } else if (const auto* broker_call = std::get_if<core::RouteBrokerCall>(&*effect)) {
      start_broker_call(i, *broker_call, request);
    } else if (const auto* answer = std::get_if<core::RouteRespond>(&*effect)) {
      respond(i, *answer);
    }
    // A RouteWake needs nothing of its own: the timer follows next_deadline().
  }
  end_flights(i);
  wake_timer(i);
}

void World::note_flight(InstanceId i, core::FlightId flight, const core::StreamRequest* request,
                        const std::string& client, const std::string& episode) {
  Instance& inst = instances_[i];
  if (flight <= inst.last_flight) return;
  inst.last_flight = flight;
  inst.flights.insert(flight);
  // A flight starts only on a request (its leader's), whose key it has.
  core::FlightKey key = request != nullptr ? core::FlightKey{request->pool, request->client, request->episode}
                                           : core::FlightKey{scenario_.pool, client, episode};
  record(FlightStarted{i, flight, std::move(key)});
}

void World::start_store_call(InstanceId i, const core::RouteStoreCall& call, const core::StreamRequest* request) {
  note_flight(i, call.flight, request, call.call.op.client, call.call.op.episode);
  record(CallStarted{i, call.flight, Dependency::store, call.call.call, call.call.attempt, call.call.op,
                     call.call.deadline});
  instances_[i].calls[CallRef{call.flight, call.call.call}] = OpenCall{Dependency::store, call.call.deadline};
  (void)runtime_.spawn("store", [this, i, call] { perform_store_call(i, call); });
}

void World::start_broker_call(InstanceId i, const core::RouteBrokerCall& call, const core::StreamRequest* request) {
  note_flight(i, call.flight, request, std::string(), call.call.episode);
  record(CallStarted{i, call.flight, Dependency::broker, call.call.call, call.call.attempt, core::Op{},
                     call.call.deadline});
  instances_[i].calls[CallRef{call.flight, call.call.call}] = OpenCall{Dependency::broker, call.call.deadline};
  (void)runtime_.spawn("broker", [this, i, call] { perform_broker_call(i, call); });
}

void World::respond(InstanceId i, const core::RouteRespond& answer) {
  const core::Token token = token_of(answer.response);
  record(ResponseReceived{i, answer.waiter, answer.response, token});
  auto box = mailboxes_.find(answer.waiter);
  // A waiter that went away gets nothing; a second answer is only recorded
  // (the checkers judge it).
  if (box == mailboxes_.end() || box->second.answer) return;
  box->second.answer = Answer{answer.response, token};
  (void)unpark(box->second.fiber);
}

void World::end_flights(InstanceId i) {
  Instance& inst = instances_[i];
  for (auto it = inst.flights.begin(); it != inst.flights.end();) {
    if (inst.server->has_flight(*it)) {
      ++it;
      continue;
    }
    const core::FlightId flight = *it;
    record(FlightEnded{i, flight});
    // A flight ends with no attempt outstanding; whatever is left is forgotten.
    inst.calls.erase(inst.calls.lower_bound(CallRef{flight, 0}), inst.calls.lower_bound(CallRef{flight + 1, 0}));
    it = inst.flights.erase(it);
  }
}

void World::wake_timer(InstanceId i) {
  Instance& inst = instances_[i];
  const std::optional<core::Ms> due = inst.server->next_deadline();
  if (!due) return;
  if (inst.timer_wake_ms && *inst.timer_wake_ms <= *due) return;
  // Not a scheduling point; no effect if the timer fiber is not parked (it
  // looks at next_deadline() again before it parks).
  (void)unpark(inst.timer);
}

void World::end_call(InstanceId i, const CallRef& call, const core::AttemptResult& result, bool timed_out) {
  Instance& inst = instances_[i];
  const auto open = inst.calls.find(call);
  // Only an attempt's first end counts: a reply after its deadline is stale.
  if (open == inst.calls.end()) return;
  record(CallEnded{i, call.first, open->second.dependency, call.second, result.outcome_class, result.retry_after_ms,
                   timed_out});
  inst.calls.erase(open);
}

void World::perform_store_call(InstanceId i, const core::RouteStoreCall& call) {
  core::Op op = call.call.op;
  op.now = store_clock(i);
  const std::optional<core::StoreReply> reply = store_.call(scenario_.pool, op);
  // No reply: the route's own deadline ends the attempt (timer_loop).
  if (!reply) return;
  end_call(i, CallRef{call.flight, call.call.call}, reply->result, false);
  Instance& inst = instances_[i];
  inst.server->on_store_reply(now_ms(), call.flight, call.call.call, *reply, inst.rng);
  drain(i, nullptr);
}

void World::perform_broker_call(InstanceId i, const core::RouteBrokerCall& call) {
  const std::optional<core::BrokerReply> reply = broker_.resolve(call.call.episode);
  if (!reply) return;
  end_call(i, CallRef{call.flight, call.call.call}, reply->result, false);
  Instance& inst = instances_[i];
  inst.server->on_broker_reply(now_ms(), call.flight, call.call.call, *reply, inst.rng);
  drain(i, nullptr);
}

void World::timer_loop(InstanceId i) {
  Instance& inst = instances_[i];
  // A daemon for the whole run, cancelled at its end. Every round passes a
  // scheduling point, so the run's step limit bounds the loop.
  for (;;) {
    inst.timer_wake_ms = inst.server->next_deadline();
    if (!inst.timer_wake_ms) {
      park();
      continue;
    }
    // Unparked: a deadline earlier than this one came up; look again.
    if (park_until(*inst.timer_wake_ms)) continue;
    inst.timer_wake_ms.reset();
    const core::Ms now = now_ms();
    // The route times out every attempt whose deadline has come (R3: a
    // timeout is transient); record those ends before it moves on.
    for (auto it = inst.calls.begin(); it != inst.calls.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      record(CallEnded{i, it->first.first, it->second.dependency, it->first.second, core::OutcomeClass::transient,
                       std::nullopt, true});
      it = inst.calls.erase(it);
    }
    inst.server->on_timer(now, inst.rng);
    drain(i, nullptr);
  }
}

void World::phases() {
  sleep_until(scenario_.duration_ms);
  // The liveness phase: no fault fires from here on, and clocks agree.
  healed_ = true;
  store_.heal();
  broker_.heal();
  record(FaultsHealed{});
  sleep_until(scenario_.duration_ms + scenario_.heal_ms);
  core::Op probe;
  probe.kind = core::OpKind::heartbeat;
  probe.client = kProbeClient;
  probe.now = now_ms();
  (void)store_.call(scenario_.pool, probe);
}

RunReport World::run() {
  for (InstanceId i = 0; i < instances_.size(); ++i) {
    instances_[i].timer = runtime_.spawn("timer", [this, i] { timer_loop(i); }, FiberKind::daemon);
  }
  (void)runtime_.spawn("phases", [this] { phases(); });
  const ClientSetup setup{scenario_.pool, scenario_.duration_ms, answer_timeout_ms_,
                          scenario_.gate.ttl_ms + scenario_.gate.grace_ms};
  for (ClientFiber& client : make_clients(scenario_, setup, *this, draws_)) {
    (void)runtime_.spawn(std::move(client.name), std::move(client.body));
  }

  const core::Ms end_ms =
      scenario_.duration_ms + scenario_.heal_ms + client_tail_ms(scenario_, answer_timeout_ms_);
  RunReport report;
  report.runtime = runtime_.run(RunLimits{.max_steps = scenario_.max_steps, .max_time_ms = end_ms});

  if (!violation_ && !history_full_) {
    EndState end;
    end.end_ms = report.runtime.end_ms;
    end.quiescent = report.runtime.outcome == Outcome::finished && mailboxes_.empty();
    for (const Instance& inst : instances_) end.flights_per_instance.push_back(inst.server->flight_count());
    end.healed_at_ms = scenario_.duration_ms;
    // As check_history does: the earliest event wins, then the rule order.
    for (const auto& checker : checkers_) {
      std::optional<Violation> found = checker->at_end(history_, end);
      if (found && (!violation_ || found->event_index < violation_->event_index)) violation_ = std::move(found);
    }
  }

  // A run that did not end by itself proves nothing about the P rules: a
  // stuck client, a step or time limit, a failed fiber or a full history is
  // reported as a violation of its own, so no caller can count it as a pass.
  const bool ended_normally =
      report.runtime.outcome == Outcome::finished || report.runtime.outcome == Outcome::stopped;
  if (!violation_ && (!ended_normally || history_full_)) {
    Violation run_failed;
    run_failed.rule = "RUN";
    run_failed.event_index = history_.size();
    run_failed.step = report.runtime.steps;
    run_failed.at_ms = report.runtime.end_ms;
    run_failed.message = history_full_ ? fmt::format("the history reached its bound of {} events", history_.max_events())
                                       : fmt::format("the run ended {}{}", outcome_name(report.runtime.outcome),
                                                     report.runtime.failure ? ": " + report.runtime.failure->message : "");
    violation_ = std::move(run_failed);
  }

  // P14 last: it needs the whole run, and it is the costliest check.
  report.gate_history = store_.gate_history();
  if (spec_.check_rules && (!violation_ || !spec_.stop_on_violation)) {
    GateCheck check = check_gate_history(report.gate_history, spec_.p14_limits);
    if (!violation_ && check.verdict == LincheckVerdict::not_linearizable) violation_ = p14_violation(check, report);
    report.p14 = std::move(check);
  }

  Fingerprint fingerprint;
  fingerprint.add(report.runtime.fingerprint);
  fingerprint.add(history_.fingerprint());
  report.fingerprint = fingerprint.value();
  report.history = std::move(history_);
  report.draws = draws_.log();
  report.violation = std::move(violation_);
  report.draw_divergence = draws_.divergence();
  report.schedule_divergence = report.runtime.replay_diverged_at;
  report.requests = requests_;
  report.history_full = history_full_;
  return report;
}

}  // namespace

Violation World::p14_violation(const GateCheck& check, const RunReport& report) const {
  // The rule broke when the stuck command's answer came back: the event
  // index is the last event of that step.
  TS_ASSERT(check.stuck.has_value());
  const GateCommand& stuck = report.gate_history.commands[*check.stuck];
  const std::vector<Event>& events = history_.events();
  const auto after = std::upper_bound(events.begin(), events.end(), stuck.ret_step,
                                      [](std::uint64_t step, const Event& event) { return step < event.step; });
  Violation violation;
  violation.rule = "P14";
  violation.event_index = after == events.begin() ? 0 : std::prev(after)->index;
  violation.step = stuck.ret_step;
  violation.at_ms = stuck.ret_ms;
  violation.message = check.message;
  return violation;
}

RunReport run_world(const RunSpec& spec) {
  World world(spec);
  return world.run();
}

}  // namespace turnstile::sim
