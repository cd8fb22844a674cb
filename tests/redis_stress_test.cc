// Real concurrency on a real server (issue 6, item 4): worker threads, each
// with its own connection, run gate operations through RedisStore::call (the
// retry machine with the store config) against one pool on a redis-server
// of the test's own, with the caller's clock, while a fault thread pauses,
// sleeps and flushes the server's script cache, or restarts it.
//
// Every attempt is recorded in SPEC H format (a timed-out attempt is pending:
// it may or may not have taken effect), the history is written to a file,
// read back, and checked for linearizability against SPEC G (P14).
//
// A pending attempt may be placed anywhere after its call, so the search for
// a linear order grows quickly with the pending attempts of one pool. The
// workers therefore move on to a fresh pool once the current one has
// collected kMaxPendingPerPool pending attempts (a call keeps the pool it
// started on, retry included). Pools are independent under SPEC G, so the
// history is linearizable exactly when each pool's part is, and each part is
// checked whole, pending attempts and all; a late attempt of an earlier pool
// can only act on that pool, whose check allows for it. Slots held
// never exceed capacity in any answer or in the final state (P1, G14), each
// client holds at most one session (P2), and every call ends within the
// store budget (R1), so a request never waits past its F6 bound for the store.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "adapters/redis/gate_lua.h"
#include "adapters/redis/redis_store.h"
#include "core/gate.h"
#include "core/retry.h"
#include "core/rng.h"
#include "sim/history_format.h"
#include "sim/lincheck.h"
#include "tests/redis_server.h"

namespace turnstile::adapters {
namespace {

using core::Ms;

constexpr int kWorkers = 4;
constexpr int kClients = 6;
// Short ttl and grace, so that sessions go idle and gone within the run and
// rotation happens over real time.
constexpr core::GateConfig kGate{3, 300, 150};
// How much later than R1's bound a call may end: this machine's scheduler,
// shared with other builds, is the only source of it.
constexpr Ms kSchedulingSlackMs = 250;
// Pools are "stress0", "stress1", ...: see PoolPhases.
const std::string kPoolPrefix = "stress";
// The most pending attempts a pool collects before new calls move to the
// next pool; calls in flight may add a few more (at most two attempts each).
constexpr int kMaxPendingPerPool = 5;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct WorkerReport {
  std::vector<sim::HistoryOp> history;
  int calls = 0;
  int failed_calls = 0;
  int permanent = 0;
  Ms longest_call_ms = 0;
  std::vector<std::string> violations;
};

enum class Fault { pause, sleep, flush, restart };

std::string pool_name(int index) { return kPoolPrefix + std::to_string(index); }

// Which pool new calls use: the first one, until it has collected
// kMaxPendingPerPool pending attempts, then the next.
class PoolPhases {
 public:
  int current() const { return current_.load(); }
  int pools() const { return current_.load() + 1; }
  // An attempt on pool `index` ended without an answer.
  void note_pending(int index) {
    std::lock_guard lock(mutex_);
    if (++pending_[index] >= kMaxPendingPerPool) {
      int expected = index;
      current_.compare_exchange_strong(expected, index + 1);
    }
  }

 private:
  std::atomic<int> current_{0};
  std::mutex mutex_;
  std::map<int, int> pending_;
};

struct StressOptions {
  int ops_per_worker = 200;
  std::vector<Fault> faults;           // injected in turn; none when empty
  std::string_view script = kGateLua;  // the gate under test
};

// The latest token granted to each client, shared by the workers: a client
// may be served by any worker, as a user's requests may reach any instance.
class TokenBook {
 public:
  void learn(const std::string& client, core::Token token) {
    std::lock_guard lock(mutex_);
    tokens_[client] = token;
  }
  std::optional<core::Token> latest(const std::string& client) {
    std::lock_guard lock(mutex_);
    auto it = tokens_.find(client);
    if (it == tokens_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, core::Token> tokens_;
};

// One worker: its own store and connection, its own seeded choices. Times in
// the history are nanoseconds since `start_ns`, so that the config op written
// first (at 0 and 1) precedes every call.
void run_worker(int id, const std::string& url, const StressOptions& options, std::int64_t start_ns,
                TokenBook& tokens, PoolPhases& phases, WorkerReport& report) {
  std::int64_t call_ns = 0;
  int call_pool = 0;  // the pool of the call in progress
  RedisStoreConfig config;
  config.endpoint = std::get<RedisEndpoint>(parse_redis_url(url));
  config.script = options.script;
  config.before_attempt = [&](std::string_view, const core::Op&) { call_ns = steady_ns(); };
  config.after_attempt = [&](std::string_view pool, const core::Op& op, const core::StoreReply& reply) {
    sim::HistoryOp entry;
    entry.process = "w" + std::to_string(id);
    entry.call = call_ns - start_ns + 2;
    entry.pool = std::string(pool);
    entry.op = op;
    if (reply.decision) {
      entry.ret = steady_ns() - start_ns + 2;
      entry.out = *reply.decision;
    } else {
      phases.note_pending(call_pool);
    }
    report.history.push_back(std::move(entry));
  };
  RedisStore store(config);
  core::Rng rng(20261127 + static_cast<std::uint64_t>(id));
  const Ms start_ms = RedisStore::steady_ms();

  for (int n = 0; n < options.ops_per_worker; ++n) {
    // Paced so that the run spans seconds of faults and sessions age past
    // ttl and grace while it runs.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng.uniform(2, 18)));
    call_pool = phases.current();
    const std::string pool = pool_name(call_pool);
    core::Op op;
    op.client = "c" + std::to_string(rng.below(kClients));
    // The caller's clock: a wall clock of its own that starts at 1000000.
    op.now = 1000000 + RedisStore::steady_ms() - start_ms;
    const std::uint64_t kind = rng.below(10);
    if (kind < 5) {
      op.kind = core::OpKind::admit;
      op.episode = "tt" + std::to_string(rng.below(2)) + ":1:1";
      op.request = "w" + std::to_string(id) + "r" + std::to_string(n);
      op.issued_at = op.now - static_cast<Ms>(rng.below(5));
    } else {
      op.kind = kind < 9 ? core::OpKind::heartbeat : core::OpKind::release;
      const std::optional<core::Token> known = tokens.latest(pool + "/" + op.client);
      op.token = known && rng.chance(4, 5) ? *known : rng.below(20) + 1;
    }
    const Ms began_ms = RedisStore::steady_ms();
    const core::StoreReply reply = store.call(pool, op, kGate, rng);
    report.longest_call_ms = std::max(report.longest_call_ms, RedisStore::steady_ms() - began_ms);
    ++report.calls;
    if (!reply.decision) {
      ++report.failed_calls;
      if (reply.result.outcome_class == core::OutcomeClass::permanent) {
        ++report.permanent;
        report.violations.push_back("permanent failure: " + store.last_error());
      }
      continue;
    }
    if (reply.decision->held > kGate.capacity) {
      report.violations.push_back("held " + std::to_string(reply.decision->held) + " > capacity");
    }
    if (core::is_granted(reply.decision->outcome)) tokens.learn(pool + "/" + op.client, reply.decision->token);
  }
}

struct StressRun {
  std::vector<WorkerReport> workers;
  std::map<Fault, int> faults;
  int pools = 1;  // stress0 .. stress<pools - 1>
};

// Runs the workers while this thread injects the options' faults in turn,
// one every 80-200 ms, until the workers are done. Faults come from the calling thread
// because a restarted server dies with the thread that started it
// (tests/redis_server.h).
StressRun run_stress(testing::RedisServer& server, const StressOptions& options, std::int64_t start_ns) {
  StressRun run;
  run.workers.resize(kWorkers);
  TokenBook tokens;
  PoolPhases phases;
  std::atomic<int> running{kWorkers};
  std::vector<std::thread> workers;
  for (int id = 0; id < kWorkers; ++id) {
    workers.emplace_back([&, id] {
      run_worker(id, server.url(), options, start_ns, tokens, phases, run.workers[static_cast<std::size_t>(id)]);
      --running;
    });
  }
  core::Rng rng(7);
  for (std::size_t i = 0; running.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(rng.uniform(80, 200)));
    if (running.load() == 0 || options.faults.empty()) continue;
    const Fault fault = options.faults[i % options.faults.size()];
    testing::RedisClient admin(server.socket_path());
    switch (fault) {
      case Fault::pause:
        // Long enough, at times, for attempt 1 to time out (A = 300 ms).
        admin.text({"CLIENT", "PAUSE", std::to_string(rng.uniform(100, 450)), "ALL"});
        break;
      case Fault::sleep:
        admin.text({"DEBUG", "SLEEP", "0.35"});
        break;
      case Fault::flush:
        admin.text({"SCRIPT", "FLUSH"});
        break;
      case Fault::restart:
        server.restart();
        break;
    }
    ++run.faults[fault];
  }
  for (auto& worker : workers) worker.join();
  run.pools = phases.pools();
  return run;
}

// P1, P2, R1 over one run, whatever its faults: what went wrong, if anything.
std::vector<std::string> bounded_violations(const StressRun& run, testing::RedisServer& server,
                                            const StressOptions& options) {
  std::vector<std::string> violations;
  int calls = 0;
  int failed = 0;
  const Ms bound_ms = core::RetryConfig::store_defaults().budget_ms + kSchedulingSlackMs;
  for (const WorkerReport& report : run.workers) {
    violations.insert(violations.end(), report.violations.begin(), report.violations.end());
    if (report.longest_call_ms > bound_ms) {
      violations.push_back("a call took " + std::to_string(report.longest_call_ms) + " ms");
    }
    calls += report.calls;
    failed += report.failed_calls;
    std::cerr << "worker: " << report.calls << " calls, " << report.failed_calls << " failed, longest "
              << report.longest_call_ms << " ms\n";
  }
  if (calls != kWorkers * options.ops_per_worker) violations.push_back("calls went missing");
  if (failed * 2 >= calls) violations.push_back("the faults left too few answers to check");

  RedisStoreConfig config;
  config.endpoint = std::get<RedisEndpoint>(parse_redis_url(server.url()));
  RedisStore reader(config);
  for (int index = 0; index < run.pools; ++index) {
    auto state = reader.read_pool(pool_name(index), 5000);
    if (const auto* error = std::get_if<std::string>(&state)) {
      violations.push_back("reading pool " + pool_name(index) + ": " + *error);
      continue;
    }
    const core::PoolState& pool = std::get<core::PoolState>(state);
    if (static_cast<std::int64_t>(pool.sessions.size()) > kGate.capacity) {
      violations.push_back(std::to_string(pool.sessions.size()) + " sessions held at the end in " + pool_name(index));
    }
    std::set<std::string> clients;
    for (const core::Session& s : pool.sessions) {
      if (!clients.insert(s.client).second) violations.push_back("two sessions of " + s.client);
    }
  }
  return violations;
}

struct HistoryCheck {
  std::size_t attempts = 0;
  std::size_t pending = 0;
  std::size_t pools = 0;
  std::size_t most_pending = 0;  // in one pool
  // linearizable if every pool's part is; else the first pool's verdict that is not.
  sim::PoolVerdict verdict;
  std::string where;  // the stuck op's line, when not linearizable
};

// Writes the run's history (SPEC H: the config first, then every attempt of
// every worker) to `path`, reads it back and checks it (P14).
HistoryCheck check_history(const StressRun& run, const std::string& path) {
  HistoryCheck check;
  std::string text;
  for (int index = 0; index < run.pools; ++index) {
    sim::HistoryOp config_op;
    config_op.process = "setup";
    config_op.call = 0;
    config_op.ret = 1;
    config_op.pool = pool_name(index);
    config_op.op = kGate;
    sim::append_history_line(text, config_op);
  }
  for (const WorkerReport& report : run.workers) {
    for (const sim::HistoryOp& entry : report.history) {
      sim::append_history_line(text, entry);
      ++check.attempts;
      if (entry.pending()) ++check.pending;
    }
  }
  std::ofstream(path, std::ios::binary) << text;
  std::cerr << check.attempts << " attempts (" << check.pending << " pending) written to " << path << "\n";

  auto history = sim::read_history(text, path);
  if (const auto* error = std::get_if<sim::HistoryError>(&history)) {
    ADD_FAILURE() << error->message;
    return check;
  }
  const auto pools = sim::split_by_pool(std::get<std::vector<sim::HistoryOp>>(std::move(history)));
  check.pools = pools.size();
  if (pools.size() != static_cast<std::size_t>(run.pools)) {
    ADD_FAILURE() << pools.size() << " pools in the history, " << run.pools << " used";
    return check;
  }
  // A safety net for a slow machine: a pool's search with at most about
  // kMaxPendingPerPool + 2 * kWorkers pending attempts takes well under a second.
  const auto started = std::chrono::steady_clock::now();
  const auto give_up = started + std::chrono::seconds(60);
  sim::LincheckLimits limits;
  limits.max_search_bytes = std::size_t{1} << 30;
  limits.should_stop = [give_up] { return std::chrono::steady_clock::now() > give_up; };
  check.verdict.verdict = sim::LincheckVerdict::linearizable;
  std::uint64_t steps = 0;
  std::uint64_t states = 0;
  for (const sim::PoolHistory& pool : pools) {
    std::size_t pending = 0;
    for (const sim::HistoryOp& op : pool.ops) pending += op.pending() ? 1 : 0;
    check.most_pending = std::max(check.most_pending, pending);
    sim::PoolVerdict verdict = sim::check_pool(pool, limits);
    steps += verdict.steps;
    states += verdict.states;
    if (verdict.verdict == sim::LincheckVerdict::linearizable) continue;
    if (verdict.verdict == sim::LincheckVerdict::not_linearizable) {
      check.where = pool.pool + ": line " + std::to_string(pool.ops[verdict.stuck].line) + " of " + path;
    }
    check.verdict = std::move(verdict);
    break;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cerr << "lincheck over " << check.pools << " pools (at most " << check.most_pending
            << " pending attempts in one): " << sim::verdict_name(check.verdict.verdict) << " "
            << check.verdict.unknown_cause << " after " << steps << " steps, " << states << " states, " << seconds
            << " s " << check.where << "\n";
  return check;
}

TEST(RedisStress, P14_HistoryUnderPausesSleepsAndFlushesIsLinearizable) {
  testing::RedisServer server;
  ASSERT_EQ(server.error(), "");
  StressOptions options;
  // However many attempts time out, no pool collects more than about
  // kMaxPendingPerPool + 2 * kWorkers pending ones (PoolPhases), which keeps
  // each pool's search short.
  options.faults = {Fault::pause, Fault::flush, Fault::sleep};
  const StressRun run = run_stress(server, options, steady_ns());
  EXPECT_GE(run.faults.count(Fault::pause), 1u);
  EXPECT_GE(run.faults.count(Fault::sleep), 1u);
  EXPECT_GE(run.faults.count(Fault::flush), 1u);
  for (const std::string& violation : bounded_violations(run, server, options)) ADD_FAILURE() << violation;

  const HistoryCheck check = check_history(run, "redis_stress_history.jsonl");
  EXPECT_GT(check.pending, 0u) << "no attempt timed out: the faults did not bite";
  EXPECT_LE(check.most_pending, static_cast<std::size_t>(kMaxPendingPerPool + 2 * kWorkers));
  EXPECT_EQ(check.verdict.verdict, sim::LincheckVerdict::linearizable)
      << sim::verdict_name(check.verdict.verdict) << " " << check.verdict.unknown_cause << " " << check.where;
}

TEST(RedisStress, P1_RestartsNeverLetSlotsExceedCapacity) {
  // A restart loses the pool, so no order of G explains the history; what
  // must still hold is the bound on slots and on every call's duration.
  testing::RedisServer server;
  ASSERT_EQ(server.error(), "");
  StressOptions options;
  options.faults = {Fault::restart, Fault::pause, Fault::flush};
  const StressRun run = run_stress(server, options, steady_ns());
  EXPECT_GE(run.faults.count(Fault::restart), 1u);
  ASSERT_EQ(server.error(), "");
  for (const std::string& violation : bounded_violations(run, server, options)) ADD_FAILURE() << violation;
}

// gate.lua admitting past capacity (G8 off by one), or empty if the test it
// changes moved.
std::string script_admitting_past_capacity() {
  std::string broken(kGateLua);
  const std::string right = "if held >= capacity then";
  const auto at = broken.find(right);
  if (at == std::string::npos) return {};
  broken.replace(at, right.size(), "if held >= capacity + 1 then");
  return broken;
}

// The same checks against a script that admits past capacity: both the slot
// bound and the linearizability check must object.
TEST(RedisStress, FindsAScriptThatAdmitsPastCapacity) {
  const std::string broken = script_admitting_past_capacity();
  ASSERT_FALSE(broken.empty()) << "gate.lua's G7/G8 test moved; update this test";

  testing::RedisServer server;
  ASSERT_EQ(server.error(), "");
  StressOptions options;
  options.ops_per_worker = 80;
  options.script = broken;
  const StressRun run = run_stress(server, options, steady_ns());
  EXPECT_FALSE(bounded_violations(run, server, options).empty());
  EXPECT_EQ(check_history(run, "redis_stress_broken_history.jsonl").verdict.verdict,
            sim::LincheckVerdict::not_linearizable);
}

// The same under the faults of the P14 test, where the history is split over
// pools by PoolPhases and holds pending attempts: P14 must still object.
TEST(RedisStress, P14_FindsAScriptThatAdmitsPastCapacityUnderFaults) {
  const std::string broken = script_admitting_past_capacity();
  ASSERT_FALSE(broken.empty()) << "gate.lua's G7/G8 test moved; update this test";

  testing::RedisServer server;
  ASSERT_EQ(server.error(), "");
  StressOptions options;
  options.ops_per_worker = 120;
  options.script = broken;
  options.faults = {Fault::pause, Fault::flush, Fault::sleep};
  const StressRun run = run_stress(server, options, steady_ns());
  const HistoryCheck check = check_history(run, "redis_stress_broken_faults_history.jsonl");
  EXPECT_GT(check.pending, 0u) << "no attempt timed out: the faults did not bite";
  EXPECT_EQ(check.verdict.verdict, sim::LincheckVerdict::not_linearizable)
      << sim::verdict_name(check.verdict.verdict) << " " << check.verdict.unknown_cause;
}

}  // namespace
}  // namespace turnstile::adapters
