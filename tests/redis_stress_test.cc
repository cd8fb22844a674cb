// Real concurrency on a real server (issue 6, item 4): worker threads, each
// with its own connection, run gate operations through RedisStore::call (the
// retry machine with the store config) against one pool on a redis-server
// of the test's own, with the caller's clock, while a fault thread pauses,
// sleeps and flushes the server's script cache, or restarts it.
//
// Every attempt is recorded in SPEC H format (a timed-out attempt is pending:
// it may or may not have taken effect), the history is written to a file,
// read back, and checked for linearizability against SPEC G (P14). Slots held
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
const std::string kPool = "stress";

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
                TokenBook& tokens, WorkerReport& report) {
  std::int64_t call_ns = 0;
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
      const std::optional<core::Token> known = tokens.latest(op.client);
      op.token = known && rng.chance(4, 5) ? *known : rng.below(20) + 1;
    }
    const Ms began_ms = RedisStore::steady_ms();
    const core::StoreReply reply = store.call(kPool, op, kGate, rng);
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
    if (core::is_granted(reply.decision->outcome)) tokens.learn(op.client, reply.decision->token);
  }
}

struct StressRun {
  std::vector<WorkerReport> workers;
  std::map<Fault, int> faults;
};

// Runs the workers while this thread injects the options' faults in turn,
// one every 80-200 ms, until the workers are done. Faults come from the calling thread
// because a restarted server dies with the thread that started it
// (tests/redis_server.h).
StressRun run_stress(testing::RedisServer& server, const StressOptions& options, std::int64_t start_ns) {
  StressRun run;
  run.workers.resize(kWorkers);
  TokenBook tokens;
  std::atomic<int> running{kWorkers};
  std::vector<std::thread> workers;
  for (int id = 0; id < kWorkers; ++id) {
    workers.emplace_back([&, id] {
      run_worker(id, server.url(), options, start_ns, tokens, run.workers[static_cast<std::size_t>(id)]);
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
  auto state = reader.read_pool(kPool, 5000);
  if (const auto* error = std::get_if<std::string>(&state)) {
    violations.push_back("reading the pool: " + *error);
    return violations;
  }
  const core::PoolState& pool = std::get<core::PoolState>(state);
  if (static_cast<std::int64_t>(pool.sessions.size()) > kGate.capacity) {
    violations.push_back(std::to_string(pool.sessions.size()) + " sessions held at the end");
  }
  std::set<std::string> clients;
  for (const core::Session& s : pool.sessions) {
    if (!clients.insert(s.client).second) violations.push_back("two sessions of " + s.client);
  }
  return violations;
}

struct HistoryCheck {
  std::size_t attempts = 0;
  std::size_t pending = 0;
  sim::PoolVerdict verdict;
  std::string where;  // the stuck op's line, when not linearizable
};

// Writes the run's history (SPEC H: the config first, then every attempt of
// every worker) to `path`, reads it back and checks it (P14).
HistoryCheck check_history(const StressRun& run, const std::string& path) {
  HistoryCheck check;
  sim::HistoryOp config_op;
  config_op.process = "setup";
  config_op.call = 0;
  config_op.ret = 1;
  config_op.pool = kPool;
  config_op.op = kGate;
  std::string text;
  sim::append_history_line(text, config_op);
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
  if (pools.size() != 1) {
    ADD_FAILURE() << pools.size() << " pools in the history";
    return check;
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  sim::LincheckLimits limits;
  limits.max_search_bytes = std::size_t{4} << 30;
  limits.should_stop = [give_up] { return std::chrono::steady_clock::now() > give_up; };
  check.verdict = sim::check_pool(pools[0], limits);
  if (check.verdict.verdict == sim::LincheckVerdict::not_linearizable) {
    check.where = "line " + std::to_string(pools[0].ops[check.verdict.stuck].line) + " of " + path;
  }
  std::cerr << "lincheck: " << sim::verdict_name(check.verdict.verdict) << " " << check.verdict.unknown_cause
            << " after " << check.verdict.steps << " steps, " << check.verdict.states << " states " << check.where
            << "\n";
  return check;
}

TEST(RedisStress, P14_HistoryUnderPausesSleepsAndFlushesIsLinearizable) {
  testing::RedisServer server;
  ASSERT_EQ(server.error(), "");
  StressOptions options;
  // Every timed-out attempt stays pending to the end of the history and may
  // be placed anywhere after its call, so the search grows with the number of
  // pending attempts: one fault of each kind keeps it to about fifteen.
  options.ops_per_worker = 120;
  options.faults = {Fault::pause, Fault::flush, Fault::sleep};
  const StressRun run = run_stress(server, options, steady_ns());
  EXPECT_GE(run.faults.count(Fault::pause), 1u);
  EXPECT_GE(run.faults.count(Fault::sleep), 1u);
  EXPECT_GE(run.faults.count(Fault::flush), 1u);
  for (const std::string& violation : bounded_violations(run, server, options)) ADD_FAILURE() << violation;

  const HistoryCheck check = check_history(run, "redis_stress_history.jsonl");
  EXPECT_GT(check.pending, 0u) << "no attempt timed out: the faults did not bite";
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

// The same checks against a script that admits past capacity (G8 off by
// one): both the slot bound and the linearizability check must object.
TEST(RedisStress, FindsAScriptThatAdmitsPastCapacity) {
  std::string broken(kGateLua);
  const std::string right = "if held >= capacity then";
  const auto at = broken.find(right);
  ASSERT_NE(at, std::string::npos) << "gate.lua's G7/G8 test moved; update this test";
  broken.replace(at, right.size(), "if held >= capacity + 1 then");

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

}  // namespace
}  // namespace turnstile::adapters
