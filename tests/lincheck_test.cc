// SPEC H and P14: the history reader and writer, the linearizability checker
// and `turnstile lincheck`, on hand-built histories whose verdict is argued
// in each test.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli/gate_codec.h"
#include "cli/lincheck_command.h"
#include "core/gate.h"
#include "sim/history_format.h"
#include "sim/lincheck.h"

namespace {

using namespace turnstile;

// ------------------------------------------------------------ building lines

std::string admit(std::string_view client, std::string_view request, std::int64_t now, std::string_view episode = "tt1",
                  std::string_view pool = "p") {
  return fmt::format(
      R"({{"op":"admit","pool":"{}","client":"{}","episode":"{}","request":"{}","issued_at":{},"now":{}}})", pool,
      client, episode, request, now, now);
}
std::string heartbeat(std::string_view client, std::uint64_t token, std::int64_t now, std::string_view pool = "p") {
  return fmt::format(R"({{"op":"heartbeat","pool":"{}","client":"{}","token":"{}","now":{}}})", pool, client, token,
                     now);
}
std::string release(std::string_view client, std::uint64_t token, std::int64_t now, std::string_view pool = "p") {
  return fmt::format(R"({{"op":"release","pool":"{}","client":"{}","token":"{}","now":{}}})", pool, client, token, now);
}
std::string config(std::int64_t capacity, std::string_view pool = "p", std::int64_t ttl = 30000,
                   std::int64_t grace = 15000) {
  return fmt::format(R"({{"op":"config","pool":"{}","capacity":{},"ttl":{},"grace":{}}})", pool, capacity, ttl, grace);
}
std::string out(std::string_view outcome, std::uint64_t token, std::int64_t held, std::string_view victim = "") {
  return fmt::format(R"({{"outcome":"{}","token":{},"victim":{},"held":{}}})", outcome,
                     token == 0 ? "null" : fmt::format("\"{}\"", token),
                     victim.empty() ? "null" : fmt::format("\"{}\"", victim), held);
}
const std::string kConfigured = R"({"outcome":"configured"})";

std::string line(std::string_view process, std::int64_t call, std::optional<std::int64_t> ret, const std::string& op,
                 const std::string& answer) {
  return fmt::format(R"({{"process":"{}","call":{},"ret":{},"op":{},"out":{}}})", process, call,
                     ret ? std::to_string(*ret) : "null", op, ret ? answer : "null") +
         "\n";
}

// The config of pool `pool` set before everything else happens.
std::string setup(std::int64_t capacity, std::string_view pool = "p") {
  return line("setup", 0, 0, config(capacity, pool), kConfigured);
}

std::vector<cli::PoolResult> check_text(const std::string& text, const sim::LincheckLimits& limits = {}) {
  auto parsed = sim::read_history(text, "h.jsonl");
  if (auto* error = std::get_if<sim::HistoryError>(&parsed)) {
    ADD_FAILURE() << error->message;
    return {};
  }
  return cli::check_pools(std::get<std::vector<sim::HistoryOp>>(parsed), limits, 1);
}

sim::LincheckVerdict verdict_of(const std::string& text) {
  auto results = check_text(text);
  EXPECT_EQ(results.size(), 1u);
  return results.empty() ? sim::LincheckVerdict::unknown : results[0].verdict.verdict;
}

bool same_op(const core::Op& a, const core::Op& b) {
  return a.kind == b.kind && a.client == b.client && a.episode == b.episode && a.request == b.request &&
         a.issued_at == b.issued_at && a.now == b.now && a.token == b.token;
}

bool same_config(const core::GateConfig& a, const core::GateConfig& b) {
  return a.capacity == b.capacity && a.ttl_ms == b.ttl_ms && a.grace_ms == b.grace_ms;
}

bool same_entry(const sim::HistoryOp& a, const sim::HistoryOp& b) {
  if (a.line != b.line || a.process != b.process || a.call != b.call || a.ret != b.ret || a.pool != b.pool ||
      a.out != b.out || a.is_config() != b.is_config()) {
    return false;
  }
  return a.is_config() ? same_config(std::get<core::GateConfig>(a.op), std::get<core::GateConfig>(b.op))
                       : same_op(std::get<core::Op>(a.op), std::get<core::Op>(b.op));
}

bool same_entries(const std::vector<sim::HistoryOp>& a, const std::vector<sim::HistoryOp>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same_entry(a[i], b[i])) return false;
  }
  return true;
}

// The file line of a failing pool's stuck operation.
std::size_t stuck_line(const cli::PoolResult& result) { return result.pool.ops[result.verdict.stuck].line; }

// ------------------------------------------------------------ the checker

TEST(Lincheck, P14_OverlappingOpsMayTakeEffectInEitherOrder) {
  // c1 is called first, but c2's admit took effect first: it got token 1.
  // Their intervals overlap, so that order respects real time.
  const std::string history = setup(2) + line("w1", 100, 300, admit("c1", "r1", 1000), out("admitted", 2, 2)) +
                              line("w2", 150, 250, admit("c2", "r2", 1000), out("admitted", 1, 1)) +
                              line("w1", 400, 500, heartbeat("c1", 2, 2000), out("alive", 0, 2)) +
                              line("w2", 450, 550, release("c2", 1, 2000), out("released", 0, 1));
  auto results = check_text(history);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::linearizable);
  // The order found puts c2's admit (line 3) before c1's (line 2).
  ASSERT_EQ(results[0].verdict.order.size(), 5u);
  EXPECT_EQ(results[0].pool.ops[results[0].verdict.order[1].op].line, 3u);
  EXPECT_EQ(results[0].pool.ops[results[0].verdict.order[2].op].line, 2u);
}

TEST(Lincheck, P14_RealTimeOrderIsRespected) {
  // The same answers, but c1 returned before c2 was called: c1 must come
  // first, and then it would have token 1.
  const std::string history = setup(2) + line("w1", 100, 200, admit("c1", "r1", 1000), out("admitted", 2, 2)) +
                              line("w2", 250, 300, admit("c2", "r2", 1000), out("admitted", 1, 1));
  auto results = check_text(history);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::not_linearizable);
  EXPECT_EQ(stuck_line(results[0]), 2u);
}

TEST(Lincheck, P14_TwoConcurrentAdmitsBothAdmittedAtCapacityOneAreNotLinearizable) {
  // The non-atomic store's race: both read "0 held", both wrote a session.
  const std::string history = setup(1) + line("w1", 100, 300, admit("c1", "r1", 1000), out("admitted", 1, 1)) +
                              line("w2", 150, 350, admit("c2", "r2", 1000), out("admitted", 1, 1));
  auto results = check_text(history);
  ASSERT_EQ(results.size(), 1u);
  const sim::PoolVerdict& verdict = results[0].verdict;
  EXPECT_EQ(verdict.verdict, sim::LincheckVerdict::not_linearizable);
  // c1's return (300) ends the shortest unexplainable prefix? No: alone, c1's
  // admit is explained. Adding c2's return (350) is what no order explains.
  EXPECT_EQ(stuck_line(results[0]), 3u);
  EXPECT_EQ(verdict.prefix_ops, 3u);
  // The explaining order of the prefix before it: config, then c1 (c2 was
  // still pending there and need not take effect).
  ASSERT_EQ(verdict.order.size(), 2u);
  EXPECT_EQ(results[0].pool.ops[verdict.order[1].op].line, 2u);
  // After that order the gate would block c2.
  EXPECT_EQ(verdict.model_out.outcome, core::Outcome::blocked_capacity);
  EXPECT_EQ(verdict.model_out.held, 1);
}

TEST(Lincheck, P14_StuckOperationEndsTheShortestUnexplainablePrefix) {
  // The violation is at line 3; many later, correct operations must not move it.
  std::string history = setup(1) + line("w1", 10, 20, admit("c1", "r1", 1000), out("admitted", 1, 1)) +
                        line("w2", 30, 40, admit("c2", "r2", 1000), out("admitted", 2, 2));
  for (int i = 0; i < 20; ++i) {
    history += line("w1", 100 + 10 * i, 105 + 10 * i, heartbeat("c1", 1, 2000 + i), out("alive", 0, 2));
  }
  auto results = check_text(history);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::not_linearizable);
  EXPECT_TRUE(results[0].verdict.minimized);
  EXPECT_EQ(stuck_line(results[0]), 3u);
  EXPECT_EQ(results[0].verdict.prefix_ops, 3u);
}

TEST(Lincheck, H_PendingOpThatMustHaveHappened) {
  // c1's admit never answered; c2 was then blocked at capacity 1 with one
  // slot held, and c1's token 1 is alive: only c1's admit explains both.
  const std::string history = setup(1) + line("w1", 100, std::nullopt, admit("c1", "r1", 1000), "") +
                              line("w2", 200, 300, admit("c2", "r2", 1000), out("blocked_capacity", 0, 1)) +
                              line("w1", 400, 500, heartbeat("c1", 1, 1100), out("alive", 0, 1));
  EXPECT_EQ(verdict_of(history), sim::LincheckVerdict::linearizable);

  // Without the pending admit, nothing held the slot.
  const std::string without = setup(1) + line("w2", 200, 300, admit("c2", "r2", 1000), out("blocked_capacity", 0, 1)) +
                              line("w1", 400, 500, heartbeat("c1", 1, 1100), out("alive", 0, 1));
  EXPECT_EQ(verdict_of(without), sim::LincheckVerdict::not_linearizable);
}

TEST(Lincheck, H_PendingOpThatMustNotHaveHappened) {
  // c1's admit never answered and c2 got the only slot with token 1: c1's
  // admit did not take effect before c2's, so it took effect after or never.
  const std::string history = setup(1) + line("w1", 100, std::nullopt, admit("c1", "r1", 1000), "") +
                              line("w2", 200, 300, admit("c2", "r2", 1000), out("admitted", 1, 1)) +
                              line("w2", 400, 500, heartbeat("c2", 1, 1100), out("alive", 0, 1));
  EXPECT_EQ(verdict_of(history), sim::LincheckVerdict::linearizable);
}

TEST(Lincheck, H_PendingOpTakesEffectOnlyAfterItsCall) {
  // c2 was blocked (one slot held) before c1's pending admit was even
  // called, so that admit cannot be what held the slot.
  const std::string history = setup(1) + line("w2", 100, 200, admit("c2", "r2", 1000), out("blocked_capacity", 0, 1)) +
                              line("w1", 300, std::nullopt, admit("c1", "r1", 1000), "");
  auto results = check_text(history);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::not_linearizable);
  EXPECT_EQ(stuck_line(results[0]), 2u);
}

TEST(Lincheck, H_EqualTimesCountAsOverlapping) {
  // c1's return and c2's call carry the same clock reading: either order
  // may be the real one, so c2 may come first.
  const std::string history = setup(2) + line("w1", 100, 200, admit("c1", "r1", 1000), out("admitted", 2, 2)) +
                              line("w2", 200, 300, admit("c2", "r2", 1000), out("admitted", 1, 1));
  EXPECT_EQ(verdict_of(history), sim::LincheckVerdict::linearizable);
}

TEST(Lincheck, H_ConfigOpsAreOperationsOfTheModel) {
  // Capacity goes from 1 to 2 while c2's admit is in flight; c2 was admitted,
  // which only the config taking effect first explains.
  const std::string history = setup(1) + line("w1", 10, 20, admit("c1", "r1", 1000), out("admitted", 1, 1)) +
                              line("ops", 30, 60, config(2), kConfigured) +
                              line("w2", 40, 50, admit("c2", "r2", 1000), out("admitted", 2, 2));
  EXPECT_EQ(verdict_of(history), sim::LincheckVerdict::linearizable);
  // If the config returned before c2 was called, the same answer is fine; if
  // it was called after c2 returned, it is not.
  const std::string late = setup(1) + line("w1", 10, 20, admit("c1", "r1", 1000), out("admitted", 1, 1)) +
                           line("w2", 40, 50, admit("c2", "r2", 1000), out("admitted", 2, 2)) +
                           line("ops", 60, 70, config(2), kConfigured);
  EXPECT_EQ(verdict_of(late), sim::LincheckVerdict::not_linearizable);
  // Before any config op a pool has D's default config: capacity 4.
  std::string defaults;
  for (int i = 1; i <= 5; ++i) {
    defaults += line("w", 10 * i, 10 * i + 5, admit(fmt::format("c{}", i), "r", 1000),
                     i <= 4 ? out("admitted", static_cast<std::uint64_t>(i), i) : out("blocked_capacity", 0, 4));
  }
  EXPECT_EQ(verdict_of(defaults), sim::LincheckVerdict::linearizable);
}

TEST(Lincheck, H_PoolsAreCheckedIndependently) {
  // Each pool has capacity 1 and one admitted client; were they one pool,
  // the second admit would be blocked.
  const std::string history = setup(1, "q") + setup(1, "p") +
                              line("w1", 100, 300, admit("c1", "r1", 1000, "tt1", "q"), out("admitted", 1, 1)) +
                              line("w2", 150, 350, admit("c2", "r2", 1000, "tt1", "p"), out("admitted", 1, 1));
  auto results = check_text(history);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].pool.pool, "p");  // by name
  EXPECT_EQ(results[1].pool.pool, "q");
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::linearizable);
  EXPECT_EQ(results[1].verdict.verdict, sim::LincheckVerdict::linearizable);

  // A violation in q says nothing about p.
  const std::string broken = history + line("w3", 400, 500, admit("c3", "r3", 1000, "tt1", "q"), out("admitted", 2, 2));
  results = check_text(broken);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::linearizable);
  EXPECT_EQ(results[1].verdict.verdict, sim::LincheckVerdict::not_linearizable);
  EXPECT_EQ(stuck_line(results[1]), 5u);
}

// A history of `count` operations by 4 processes from the real gate, one
// after another in time. Long enough that the search polls its limits.
std::string long_history(int count) {
  core::PoolState state;
  core::GateConfig gate_config;
  gate_config.capacity = 2;
  std::string history = line("setup", 0, 0, config(2), kConfigured);
  for (int i = 0; i < count; ++i) {
    core::Op op;
    op.kind = core::OpKind::admit;
    op.client = fmt::format("c{}", i % 4);
    op.episode = "tt1";
    op.request = fmt::format("r{}", i);
    op.issued_at = op.now = 1000 + i;
    const core::Decision decision = core::apply(state, op, gate_config);
    std::string answer;
    sim::append_d_decision(answer, decision);
    history += line(fmt::format("w{}", i % 4), 10 + 10 * i, 15 + 10 * i, admit(op.client, op.request, op.now), answer);
  }
  return history;
}

TEST(Lincheck, H_TimeLimitGivesUnknown) {
  sim::LincheckLimits limits;
  limits.should_stop = [] { return true; };
  auto results = check_text(long_history(3000), limits);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::unknown);
  EXPECT_EQ(results[0].verdict.unknown_cause, "time limit");
  // The search stopped at its kStopPollSteps-th step, before trying it; every
  // earlier step linearized one more line, so lines 1 to 1023 are explained.
  ASSERT_TRUE(results[0].verdict.frontier.has_value());
  EXPECT_EQ(results[0].pool.ops[*results[0].verdict.frontier].line, sim::kStopPollSteps);
  EXPECT_EQ(cli::exit_code_of(results), 1);
  EXPECT_NE(cli::format_text_report(results).find("unknown: a limit ran out for pool p (time limit)"),
            std::string::npos);
  // Without the limit the same history is linearizable.
  EXPECT_EQ(verdict_of(long_history(3000)), sim::LincheckVerdict::linearizable);
}

TEST(Lincheck, H_MemoryLimitGivesUnknown) {
  sim::LincheckLimits limits;
  limits.max_search_bytes = 64 * 1024;
  auto results = check_text(long_history(3000), limits);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::unknown);
  EXPECT_EQ(results[0].verdict.unknown_cause, "memory limit");
}

// ------------------------------------------------------------ a non-atomic gate

// The racy gate of the simulator's legacy mode, run by hand: each process
// reads the pool, decides on its copy, and later writes its copy back (last
// writer wins). Steps of different processes interleave as `schedule` says.
struct ReadDecideWrite {
  struct Pending {
    std::string process;
    std::int64_t call = 0;
    core::Op op;
    core::PoolState copy;
    core::Decision decision;
  };
  core::PoolState pool;
  core::GateConfig gate_config;
  std::vector<Pending> in_flight;
  std::string history;
  std::int64_t clock = 0;

  void read(const std::string& process, const core::Op& op) {
    Pending pending{process, ++clock, op, pool, {}};
    pending.decision = core::apply(pending.copy, op, gate_config);
    in_flight.push_back(std::move(pending));
  }
  void write(const std::string& process) {
    for (auto it = in_flight.begin(); it != in_flight.end(); ++it) {
      if (it->process != process) continue;
      pool = it->copy;
      std::string answer;
      sim::append_d_decision(answer, it->decision);
      std::string op_text;
      sim::append_d_op(op_text, "p", it->op);
      history += line(process, it->call, ++clock, op_text, answer);
      in_flight.erase(it);
      return;
    }
  }
};

core::Op admit_op(const std::string& client, const std::string& request, core::Ms now) {
  core::Op op;
  op.kind = core::OpKind::admit;
  op.client = client;
  op.episode = "tt1";
  op.request = request;
  op.issued_at = op.now = now;
  return op;
}

TEST(Lincheck, P14_NonAtomicStoreHistoryIsNotLinearizable) {
  ReadDecideWrite store;
  store.gate_config.capacity = 2;
  store.history = setup(2);
  // Sequential steps first: c1 and c2 fill both slots, c1 releases.
  store.read("w1", admit_op("c1", "r1", 1000));
  store.write("w1");
  store.read("w2", admit_op("c2", "r2", 1000));
  store.write("w2");
  core::Op release_op;
  release_op.kind = core::OpKind::release;
  release_op.client = "c1";
  release_op.token = 1;
  release_op.now = 1001;
  store.read("w1", release_op);
  store.write("w1");
  // Then the race: c3 and c4 both read one free slot, both decide admitted.
  store.read("w3", admit_op("c3", "r3", 1002));
  store.read("w4", admit_op("c4", "r4", 1002));
  store.write("w3");
  store.write("w4");
  ASSERT_EQ(store.pool.sessions.size(), 2u);  // c4's write dropped c3's session

  auto results = check_text(store.history);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict.verdict, sim::LincheckVerdict::not_linearizable);
  // c4's admit, whose return ends the race, is the stuck operation.
  const sim::HistoryOp& stuck = results[0].pool.ops[results[0].verdict.stuck];
  EXPECT_EQ(stuck.process, "w4");
  EXPECT_EQ(stuck.line, 6u);
  const std::string text = cli::format_text_report(results);
  EXPECT_NE(text.find("stuck on line 6: w4 admit c4 tt1 r4"), std::string::npos) << text;

  // The same steps without interleaving are linearizable.
  ReadDecideWrite serial;
  serial.gate_config.capacity = 2;
  serial.history = setup(2);
  for (int i = 1; i <= 4; ++i) {
    serial.read(fmt::format("w{}", i), admit_op(fmt::format("c{}", i), fmt::format("r{}", i), 1000));
    serial.write(fmt::format("w{}", i));
  }
  EXPECT_EQ(verdict_of(serial.history), sim::LincheckVerdict::linearizable);
}

// ------------------------------------------------------------ the command

struct CommandResult {
  int code = 0;
  std::string out;
  std::string err;
};

CommandResult run(const std::string& text, cli::LincheckOptions options = {}) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = cli::run_lincheck(text, "h.jsonl", options, out, err);
  return {code, out.str(), err.str()};
}

const std::string kRace = setup(1) + line("w1", 100, 300, admit("c1", "r1", 1000), out("admitted", 1, 1)) +
                          line("w2", 150, 350, admit("c2", "r2", 1000), out("admitted", 1, 1));

TEST(LincheckCommand, H_ExitCodes) {
  const std::string fine = setup(1) + line("w1", 100, 300, admit("c1", "r1", 1000), out("admitted", 1, 1));
  CommandResult result = run(fine);
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out,
            "pool p: linearizable (2 operations, 0 pending; 2 states, 2 steps)\n"
            "linearizable: 1 pools, 2 operations\n");
  EXPECT_EQ(result.err, "");

  result = run(kRace);
  EXPECT_EQ(result.code, 1);
  EXPECT_NE(result.out.find("stuck on line 3: w2 admit c2 tt1 r2"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("not linearizable: pool p (of 1 pools)"), std::string::npos) << result.out;

  cli::LincheckOptions bad_jobs;
  bad_jobs.jobs = 0;
  result = run(fine, bad_jobs);
  EXPECT_EQ(result.code, 2);
  EXPECT_EQ(result.err, "--jobs: expected an integer from 1 to 256\n");

  cli::LincheckOptions missing;
  missing.history_path = "/nonexistent/history.jsonl";
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(cli::run_lincheck_command(missing, out, err), 2);
  EXPECT_EQ(err.str(), "/nonexistent/history.jsonl: cannot open: No such file or directory\n");
}

TEST(LincheckCommand, H_JsonReportNamesTheStuckOperationAndTheOrder) {
  cli::LincheckOptions options;
  options.json = true;
  const CommandResult result = run(kRace, options);
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(
      result.out,
      R"({"verdict":"not linearizable","operations":3,"pools":[{"pool":"p","verdict":"not linearizable",)"
      R"("operations":3,"pending":0,"states":3,"steps":7,)"
      R"("stuck":{"line":3,"process":"w2","call":150,"ret":350,)"
      R"("op":{"op":"admit","pool":"p","client":"c2","episode":"tt1","request":"r2","issued_at":1000,"now":1000},)"
      R"("out":{"outcome":"admitted","token":"1","victim":null,"held":1},)"
      R"("model":{"outcome":"blocked_capacity","token":null,"victim":null,"held":1}},)"
      R"("prefix":{"operations":3,"end":350,"minimized":true},)"
      R"("order":[{"line":1,"process":"setup","call":0,"ret":0,)"
      R"("op":{"op":"config","pool":"p","capacity":1,"ttl":30000,"grace":15000},"out":{"outcome":"configured"},)"
      R"("model":{"outcome":"configured"},"returned_by_cut":true},)"
      R"({"line":2,"process":"w1","call":100,"ret":300,)"
      R"("op":{"op":"admit","pool":"p","client":"c1","episode":"tt1","request":"r1","issued_at":1000,"now":1000},)"
      R"("out":{"outcome":"admitted","token":"1","victim":null,"held":1},)"
      R"("model":{"outcome":"admitted","token":"1","victim":null,"held":1},"returned_by_cut":true}]}]})"
      "\n");
}

TEST(LincheckCommand, H_HtmlTimelineIsSelfContained) {
  const auto path = std::filesystem::temp_directory_path() / fmt::format("lincheck_test_{}.html", ::getpid());
  cli::LincheckOptions options;
  options.html_path = path.string();
  const CommandResult result = run(kRace, options);
  EXPECT_EQ(result.code, 1);
  std::ifstream file(path);
  std::stringstream html;
  html << file.rdbuf();
  std::filesystem::remove(path);
  const std::string page = html.str();
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find(">STUCK admit</text>"), std::string::npos);  // the stuck bar is labelled
  EXPECT_NE(page.find("#ff8182"), std::string::npos);              // and highlighted
  EXPECT_NE(page.find("Stuck on <b>line 3</b>"), std::string::npos);
  // No network: no scripts, no external style sheets, images or fonts.
  for (const char* banned : {"<script", "<link", "src=", "url(", "@import", "href="}) {
    EXPECT_EQ(page.find(banned), std::string::npos) << banned;
  }
}

TEST(LincheckCommand, H_OutputDoesNotDependOnJobs) {
  std::string history;
  for (int pool = 0; pool < 6; ++pool) {
    const std::string name = fmt::format("pool{}", 5 - pool);
    history += setup(1, name) + line("w1", 100, 300, admit("c1", "r1", 1000, "tt1", name), out("admitted", 1, 1)) +
               line("w2", 150, 350, admit("c2", "r2", 1000, "tt1", name),
                    pool % 2 == 0 ? out("blocked_capacity", 0, 1) : out("admitted", 2, 2));
  }
  cli::LincheckOptions one;
  one.json = true;
  cli::LincheckOptions four = one;
  four.jobs = 4;
  const CommandResult serial = run(history, one);
  const CommandResult parallel = run(history, four);
  EXPECT_EQ(serial.code, 1);
  EXPECT_EQ(parallel.code, 1);
  EXPECT_EQ(serial.out, parallel.out);
  EXPECT_LT(serial.out.find(R"("pool":"pool0")"), serial.out.find(R"("pool":"pool5")"));
}

// ------------------------------------------------------------ the reader

TEST(HistoryFormat, H_MalformedLinesExitTwoWithOneLine) {
  const std::string ok = line("w1", 1, 2, admit("c1", "r1", 1000), out("admitted", 1, 1));
  const std::string a = admit("c1", "r1", 1000);
  const std::string o = out("admitted", 1, 1);
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{\n", "h.jsonl:1: not valid JSON"},
      {"[1]\n", "h.jsonl:1: expected a JSON object"},
      {"\n", "h.jsonl:1: empty line, expected a JSON object"},
      {ok + "\n" + ok, "h.jsonl:2: empty line, expected a JSON object"},
      {R"({"call":1,"ret":2,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'process': missing, expected 1-64 bytes of [A-Za-z0-9._-]"},
      {R"({"process":"w 1","call":1,"ret":2,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'process': expected 1-64 bytes of [A-Za-z0-9._-]"},
      {R"({"process":"w1","call":-1,"ret":2,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'call': expected an integer from 0 to 9223372036854775807"},
      {R"({"process":"w1","call":1.5,"ret":2,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'call': expected an integer from 0 to 9223372036854775807"},
      {R"({"process":"w1","call":5,"ret":2,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'ret': expected null or an integer from 5 to 9223372036854775807"},
      {R"({"process":"w1","call":1,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'ret': missing, expected null or an integer, at least call"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a + R"(,"out":)" + o + R"(,"extra":1})",
       "h.jsonl:1: field 'extra': unknown field (known fields: process, call, ret, op, out)"},
      {R"({"process":"w1","call":1,"ret":2,"op":{"op":"admit"},"out":)" + o + "}",
       "h.jsonl:1: field 'op.pool': missing, expected 1-64 bytes of [A-Za-z0-9._-]"},
      {R"({"process":"w1","call":1,"ret":2,"op":{"op":"grab","pool":"p"},"out":)" + o + "}",
       "h.jsonl:1: field 'op.op': expected one of admit, heartbeat, release, config"},
      {R"({"process":"w1","call":1,"ret":2,"op":{"op":"heartbeat","pool":"p","client":"c1","token":1,"now":5},"out":)" +
           o + "}",
       "h.jsonl:1: field 'op.token': expected a decimal token string such as \"1\""},
      {R"({"process":"w1","call":1,"ret":2,"op":{"op":"admit","pool":"p","client":"c1","episode":"e","request":"r","issued_at":1,"now":1,"token":"1"},"out":)" +
           o + "}",
       "h.jsonl:1: field 'op.token': unknown field (known fields: op, pool, client, episode, request, issued_at, now)"},
      {R"({"process":"w1","call":1,"ret":2,"op":{"op":"config","pool":"p","capacity":0,"ttl":1,"grace":0},"out":{"outcome":"configured"}})",
       "h.jsonl:1: field 'op.capacity': expected an integer from 1 to 100000"},
      {R"({"process":"w1","call":1,"ret":null,"op":)" + a + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'out': expected null, since ret is null (the operation's outcome is unknown)"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a + R"(,"out":null})",
       "h.jsonl:1: field 'out': expected a D output object, since ret is set (only a pending operation has out null)"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a +
           R"(,"out":{"outcome":"won","token":null,"victim":null,"held":1}})",
       "h.jsonl:1: field 'out.outcome': expected one of admitted, resumed, switched, rotated, superseded, "
       "blocked_capacity, alive, gone, released"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a +
           R"(,"out":{"outcome":"admitted","token":"0","victim":null,"held":1}})",
       "h.jsonl:1: field 'out.token': expected null or a decimal token string such as \"1\""},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a + R"(,"out":{"outcome":"admitted","token":"1","victim":null}})",
       "h.jsonl:1: field 'out.held': missing, expected an integer from 0 to 100000"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a +
           R"(,"out":{"outcome":"rotated","token":"1","victim":"c 2","held":1}})",
       "h.jsonl:1: field 'out.victim': expected null or 1-64 bytes of [A-Za-z0-9._-]"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + config(1) + R"(,"out":)" + o + "}",
       "h.jsonl:1: field 'out.held': unknown field (known fields: outcome)"},
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a + R"(,"out":{"outcome":"configured"}})",
       "h.jsonl:1: field 'out.outcome': expected one of admitted, resumed, switched, rotated, superseded, "
       "blocked_capacity, alive, gone, released"},
      {ok + std::string(sim::kMaxHistoryLineBytes + 1, ' '), "h.jsonl:2: longer than 65536 bytes"},
      // A key from the input is shown escaped, so the message stays one line.
      {R"({"process":"w1","call":1,"ret":2,"op":)" + a +
           R"(,"out":{"outcome":"admitted","tok\n":"1","victim":null,"held":1}})",
       "h.jsonl:1: field 'out.tok\\x0a': unknown field (known fields: outcome, token, victim, held)"},
  };
  for (const Case& c : cases) {
    const CommandResult result = run(c.text);
    EXPECT_EQ(result.code, 2) << c.text;
    EXPECT_EQ(result.err, c.message + "\n") << c.text;
    EXPECT_EQ(result.out, "") << c.text;
  }
}

TEST(HistoryFormat, H_WriterAndReaderRoundTrip) {
  std::vector<sim::HistoryOp> ops;
  sim::HistoryOp a;
  a.line = 1;
  a.process = "w3";
  a.call = 1200;
  a.ret = 1450;
  a.pool = "p";
  a.op = admit_op("c1", "r1", 1000);
  a.out = core::Decision{core::Outcome::rotated, 7, "c9", 3};
  ops.push_back(a);
  sim::HistoryOp b;
  b.line = 2;
  b.process = "w5";
  b.call = 1300;
  b.pool = "pool.2";
  core::Op hb;
  hb.kind = core::OpKind::heartbeat;
  hb.client = "c2";
  hb.token = 12;
  hb.now = 99;
  b.op = hb;
  ops.push_back(b);
  sim::HistoryOp c;
  c.line = 3;
  c.process = "setup";
  c.call = 0;
  c.ret = 0;
  c.pool = "p";
  c.op = core::GateConfig{2, 100, 0};
  ops.push_back(c);

  std::string text;
  for (const auto& op : ops) sim::append_history_line(text, op);
  EXPECT_EQ(
      sim::format_history_line(a),
      R"({"process":"w3","call":1200,"ret":1450,"op":{"op":"admit","pool":"p","client":"c1","episode":"tt1",)"
      R"("request":"r1","issued_at":1000,"now":1000},"out":{"outcome":"rotated","token":"7","victim":"c9","held":3}})"
      "\n");
  EXPECT_EQ(
      sim::format_history_line(b),
      R"({"process":"w5","call":1300,"ret":null,"op":{"op":"heartbeat","pool":"pool.2","client":"c2","token":"12",)"
      R"("now":99},"out":null})"
      "\n");
  auto parsed = sim::read_history(text, "x");
  ASSERT_TRUE(std::holds_alternative<std::vector<sim::HistoryOp>>(parsed));
  EXPECT_TRUE(same_entries(std::get<std::vector<sim::HistoryOp>>(parsed), ops));
  // CRLF line ends and a missing final newline read the same.
  std::string crlf;
  for (char ch : text) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
  crlf.pop_back();
  crlf.pop_back();
  parsed = sim::read_history(crlf, "x");
  ASSERT_TRUE(std::holds_alternative<std::vector<sim::HistoryOp>>(parsed));
  EXPECT_TRUE(same_entries(std::get<std::vector<sim::HistoryOp>>(parsed), ops));
}

// The H reader has its own parser for D objects (sim/ cannot call cli/); it
// must agree with `turnstile gate`'s on what is valid and what it means.
TEST(HistoryFormat, H_OpObjectsAgreeWithTheGateCodec) {
  const std::vector<std::string> d_lines = {
      admit("c1", "r1", 1000),
      heartbeat("c1", 1, 5),
      release("c1", 0, 5),
      config(3, "p", 10, 0),
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"007","now":5})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"18446744073709551615","now":5})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"18446744073709551616","now":5})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"-1","now":5})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"","now":5})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"1","now":9007199254740991})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"1","now":9007199254740992})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"1","now":-1})",
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"1","now":1.0})",
      R"({"op":"admit","pool":"p","client":"c1","episode":"tt1:1:2","request":"r.1-x_y","issued_at":0,"now":0})",
      R"({"op":"admit","pool":"p","client":"c1","episode":"tt1:1:2","request":"r:1","issued_at":0,"now":0})",
      R"({"op":"admit","pool":"","client":"c1","episode":"e","request":"r","issued_at":0,"now":0})",
      R"({"op":"admit","pool":"p","client":"c1","episode":"e","request":"r","issued_at":0})",
      R"({"op":"admit","pool":"p","client":"c1","episode":"e","request":"r","issued_at":0,"now":0,"x":1})",
      R"({"op":"config","pool":"p","capacity":100001,"ttl":1,"grace":0})",
      R"({"op":"config","pool":"p","capacity":1,"ttl":0,"grace":0})",
      R"({"op":"config","pool":"p","capacity":1,"ttl":1,"grace":-1})",
      R"({"op":"ADMIT","pool":"p"})",
      R"({"op":7})",
      R"({"pool":"p"})",
  };
  for (const std::string& d : d_lines) {
    const auto gate = cli::parse_gate_line(d);
    const auto history =
        sim::parse_history_line(fmt::format(R"({{"process":"w","call":1,"ret":null,"op":{},"out":null}})", d), "x", 1);
    ASSERT_EQ(std::holds_alternative<cli::LineError>(gate), std::holds_alternative<sim::HistoryError>(history)) << d;
    if (std::holds_alternative<cli::LineError>(gate)) continue;
    const auto& entry = std::get<sim::HistoryOp>(history);
    if (const auto* op_line = std::get_if<cli::GateOpLine>(&std::get<cli::GateLine>(gate))) {
      EXPECT_EQ(entry.pool, op_line->pool) << d;
      ASSERT_FALSE(entry.is_config()) << d;
      const core::Op& op = std::get<core::Op>(entry.op);
      EXPECT_TRUE(same_op(op, op_line->op)) << d;
    } else {
      const auto& config_line = std::get<cli::GateConfigLine>(std::get<cli::GateLine>(gate));
      EXPECT_EQ(entry.pool, config_line.pool) << d;
      ASSERT_TRUE(entry.is_config()) << d;
      EXPECT_TRUE(same_config(std::get<core::GateConfig>(entry.op), config_line.config)) << d;
    }
  }
  // And the output objects are printed the same.
  for (const core::Decision& decision :
       {core::Decision{core::Outcome::admitted, 1, "", 1}, core::Decision{core::Outcome::rotated, 99, "c.7", 4},
        core::Decision{core::Outcome::blocked_capacity, 0, "", 100000}}) {
    std::string text;
    sim::append_d_decision(text, decision);
    EXPECT_EQ(text, cli::format_decision(decision));
  }
}

}  // namespace
