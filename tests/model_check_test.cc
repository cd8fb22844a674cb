#include "sim/model_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/check_command.h"
#include "core/gate.h"
#include "sim/check_trace.h"
#include "sim/history_format.h"
#include "sim/lincheck.h"

namespace turnstile::sim {
namespace {

CheckConfig config_of(GateMode gate, int clients, std::int64_t capacity, int rounds) {
  CheckConfig config;
  config.gate = gate;
  config.clients = clients;
  config.capacity = capacity;
  config.rounds = rounds;
  config.max_ticks = default_max_ticks(config.ttl_ms, config.grace_ms);
  return config;
}

CheckResult check(const CheckConfig& config, GateFunction gate = {}, bool symmetry = true) {
  CheckConfig run = config;
  run.symmetry = symmetry;
  CheckHooks hooks;
  hooks.gate = std::move(gate);
  return run_check(run, hooks);
}

std::string rule_of(const CheckResult& result) { return result.violation ? result.violation->rule : "none"; }

std::uint64_t factorial(int n) {
  std::uint64_t f = 1;
  for (int i = 2; i <= n; ++i) f *= static_cast<std::uint64_t>(i);
  return f;
}

// ---------------------------------------------------------------------------
// Broken gates, each wrong in one way, for the checker to catch.

// Admits one client more than the capacity (breaks G6/G13, so P1).
core::Decision over_capacity_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::GateConfig roomier = config;
  roomier.capacity = config.capacity + 1;
  return core::apply(pool, op, roomier);
}

// Sees sessions as idle one tick early, so it rotates live ones (P4).
core::Decision impatient_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::GateConfig early = config;
  early.ttl_ms = config.ttl_ms - 1;
  early.grace_ms = config.grace_ms + 1;
  return core::apply(pool, op, early);
}

// Never prunes within the model's time (breaks G2, so P9).
core::Decision hoarding_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::GateConfig forever = config;
  forever.grace_ms = 1000;
  return core::apply(pool, op, forever);
}

// A release that frees every session in the pool, the owner's and others'
// (G14: live sessions of other clients are removed).
core::Decision careless_release_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::Decision decision = core::apply(pool, op, config);
  if (op.kind == core::OpKind::release && decision.outcome == core::Outcome::released) {
    pool.sessions.clear();
    decision.held = 0;
  }
  return decision;
}

// A heartbeat that copies the session it refreshes (P2).
core::Decision cloning_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::Decision decision = core::apply(pool, op, config);
  if (op.kind == core::OpKind::heartbeat && decision.outcome == core::Outcome::alive) {
    pool.sessions.push_back(*core::find_session(pool, op.client));
    decision.held = static_cast<std::int64_t>(pool.sessions.size());
  }
  return decision;
}

// Blocks every newcomer while any session is held (P6).
core::Decision exclusive_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::GateConfig single = config;
  single.capacity = 1;
  return core::apply(pool, op, single);
}

// G7's tie-break reversed: among equally old idle sessions the largest client
// id goes (P5). It runs the real gate on a pool whose client ids are mirrored
// (c1 <-> cK), which reverses their order and nothing else.
std::string mirrored(const std::string& client) {
  if (client.size() != 2) return client;
  return std::string("c") + static_cast<char>('0' + (kMaxCheckClients + 1 - (client[1] - '0')));
}

void mirror(core::PoolState& pool) {
  for (core::Session& session : pool.sessions) {
    session.client = mirrored(session.client);
    session.last_decision.victim = mirrored(session.last_decision.victim);
  }
}

core::Decision reversed_tie_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::Op mirrored_op = op;
  mirrored_op.client = mirrored(op.client);
  mirror(pool);
  core::Decision decision = core::apply(pool, mirrored_op, config);
  mirror(pool);
  decision.victim = mirrored(decision.victim);
  return decision;
}

// Wrong only behind a G7 tie-break: when the id order picked, between two
// equally old idle sessions, a first-round one over a second-round one, it
// keeps the victim too (P1). A symmetry reduction that renamed the tied
// clients freely would explore only one side of such ties and could miss it.
core::Decision tie_hiding_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  const core::PoolState before = pool;
  core::Decision decision = core::apply(pool, op, config);
  if (decision.outcome != core::Outcome::rotated) return decision;
  const core::Ms now = pool.last_now;
  const core::Session* victim = core::find_session(before, decision.victim);
  for (const core::Session& other : before.sessions) {
    const bool tied = other.client != victim->client && other.last_seen == victim->last_seen &&
                      other.admitted_at == victim->admitted_at &&
                      core::age_of(other, now, config) == core::Age::idle;
    if (tied && victim->last_request == "r1" && other.last_request == "r2") {
      pool.sessions.push_back(*victim);
      decision.held = static_cast<std::int64_t>(pool.sessions.size());
      break;
    }
  }
  return decision;
}

// ---------------------------------------------------------------------------
// The legacy gate and the atomic gate.

TEST(ModelCheck, P1_LegacyGateOverAdmitsWithAShortestCounterexample) {
  const CheckResult result = check(config_of(GateMode::legacy, 3, 2, 1));
  ASSERT_EQ(result.verdict, CheckVerdict::violation);
  EXPECT_EQ(rule_of(result), "P1");
  // Three reads that each see a free slot, then three writes: nothing shorter
  // can put a third session in two slots.
  ASSERT_EQ(result.trace.size(), 6u);
  EXPECT_EQ(std::count_if(result.trace.begin(), result.trace.end(),
                          [](const CheckStep& s) { return s.action == CheckAction::admit_read; }),
            3);
  EXPECT_EQ(result.trace.back().action, CheckAction::admit_write);
  EXPECT_EQ(result.trace.back().pool.sessions.size(), 3u);
  EXPECT_EQ(result.depth, 6u);
}

TEST(ModelCheck, P1_LegacyGateOverAdmitsOneSlotInFourSteps) {
  const CheckResult result = check(config_of(GateMode::legacy, 2, 1, 1));
  ASSERT_EQ(result.verdict, CheckVerdict::violation);
  EXPECT_EQ(rule_of(result), "P1");
  EXPECT_EQ(result.trace.size(), 4u);
}

TEST(ModelCheck, P1_LegacyGateIsVerifiedWhenEveryClientHasASlot) {
  // The race needs more clients than slots: with K <= C no write can overfill.
  EXPECT_EQ(check(config_of(GateMode::legacy, 2, 2, 2)).verdict, CheckVerdict::verified);
}

TEST(ModelCheck, G14_AtomicGateIsVerifiedForSmallConfigs) {
  for (int clients = 1; clients <= 3; ++clients) {
    for (std::int64_t capacity = 1; capacity <= 2; ++capacity) {
      for (int rounds = 1; rounds <= 2; ++rounds) {
        const CheckResult result = check(config_of(GateMode::atomic, clients, capacity, rounds));
        EXPECT_EQ(result.verdict, CheckVerdict::verified)
            << "K=" << clients << " C=" << capacity << " R=" << rounds << ": " << rule_of(result) << " "
            << (result.violation ? result.violation->message : "");
        EXPECT_GT(result.states, 1u);
        EXPECT_TRUE(result.trace.empty());
      }
    }
  }
}

TEST(ModelCheck, G14_AtomicGateStatesCoverEveryClientsWholeProgram) {
  // One client, one round: admit, heartbeat, release, each at any of the
  // clock's 5 values, so the space holds well more states than one path.
  const CheckResult result = check(config_of(GateMode::atomic, 1, 1, 1));
  EXPECT_EQ(result.verdict, CheckVerdict::verified);
  // The longest path: 3 operations and 4 ticks.
  EXPECT_EQ(result.depth, 7u);
  EXPECT_GT(result.states, 20u);
}

// ---------------------------------------------------------------------------
// Broken gates are caught, with and without symmetry, by the same shortest path.

struct BrokenCase {
  const char* name;
  GateFunction gate;
  CheckConfig config;
  const char* rule;
};

std::vector<BrokenCase> broken_cases() {
  return {
      {"over_capacity", over_capacity_gate, config_of(GateMode::atomic, 3, 2, 1), "P1"},
      {"impatient", impatient_gate, config_of(GateMode::atomic, 2, 1, 1), "P4"},
      {"hoarding", hoarding_gate, config_of(GateMode::atomic, 2, 2, 1), "P9"},
      {"careless_release", careless_release_gate, config_of(GateMode::atomic, 2, 2, 1), "G14"},
      {"cloning", cloning_gate, config_of(GateMode::atomic, 1, 2, 1), "P2"},
      {"exclusive", exclusive_gate, config_of(GateMode::atomic, 2, 2, 1), "P6"},
      {"reversed_tie", reversed_tie_gate, config_of(GateMode::atomic, 3, 2, 1), "P5"},
      {"tie_hiding", tie_hiding_gate, config_of(GateMode::atomic, 3, 2, 2), "P1"},
  };
}

TEST(ModelCheck, P1_P2_P4_P5_P6_P9_G14_BrokenGatesAreCaught) {
  for (const BrokenCase& c : broken_cases()) {
    const CheckResult result = check(c.config, c.gate);
    ASSERT_EQ(result.verdict, CheckVerdict::violation) << c.name;
    EXPECT_EQ(rule_of(result), c.rule) << c.name << ": " << result.violation->message;
    EXPECT_FALSE(result.trace.empty()) << c.name;
  }
}

TEST(ModelCheck, P5_ReversedTieBreakIsFoundOnlyThroughATie) {
  // Two sessions admitted and last seen at the same instant, idle together,
  // then a newcomer: 2 admits, 3 ticks, 1 admit. The symmetry reduction keeps
  // the id order of clients that may tie, so it must find the same path.
  for (bool symmetry : {true, false}) {
    const CheckResult result = check(config_of(GateMode::atomic, 3, 2, 1), reversed_tie_gate, symmetry);
    ASSERT_EQ(result.verdict, CheckVerdict::violation);
    EXPECT_EQ(rule_of(result), "P5");
    ASSERT_EQ(result.trace.size(), 6u);
    EXPECT_EQ(result.trace.back().decision->outcome, core::Outcome::rotated);
  }
}

// ---------------------------------------------------------------------------
// Symmetry reduction.

TEST(ModelCheck, SymmetryOnAndOffGiveTheSameVerdicts) {
  std::vector<BrokenCase> runs;
  for (GateMode gate : {GateMode::atomic, GateMode::legacy}) {
    for (int clients = 2; clients <= 3; ++clients) {
      for (std::int64_t capacity = 1; capacity <= 2; ++capacity) {
        runs.push_back({"core", {}, config_of(gate, clients, capacity, 1), ""});
      }
    }
    runs.push_back({"core", {}, config_of(gate, 3, 2, 2), ""});
  }
  for (const BrokenCase& c : broken_cases()) runs.push_back(c);

  for (const auto& [name, gate, config, rule] : runs) {
    const CheckResult on = check(config, gate, true);
    const CheckResult off = check(config, gate, false);
    const std::string where = std::string(name) + " gate, " + std::string(gate_mode_name(config.gate)) +
                              " K=" + std::to_string(config.clients) + " C=" + std::to_string(config.capacity) +
                              " R=" + std::to_string(config.rounds);
    EXPECT_EQ(on.verdict, off.verdict) << where;
    EXPECT_EQ(rule_of(on), rule_of(off)) << where;
    // A reduction preserves path lengths: the shortest counterexample too.
    EXPECT_EQ(on.trace.size(), off.trace.size()) << where;
    if (on.verdict == CheckVerdict::verified) {
      // Renaming merges at most K! states into one, and never splits one.
      EXPECT_LE(on.states, off.states) << where;
      EXPECT_GE(on.states * factorial(config.clients), off.states) << where;
      EXPECT_EQ(on.depth, off.depth) << where;
    }
  }
}

TEST(ModelCheck, SymmetryKeepsTheIdOrderOfClientsThatMayTie) {
  // The bug shows only when c1 (first round) and c2 (second round) tie and
  // the id order picks c1: c1 admits at 0; c2 runs its first round and admits
  // its second at 0; three ticks; c3 admits. Renaming c1 and c2 freely would
  // fold this state into its mirror image, where the tie picks the
  // second-round session, and report `verified`.
  for (bool symmetry : {true, false}) {
    const CheckResult result = check(config_of(GateMode::atomic, 3, 2, 2), tie_hiding_gate, symmetry);
    ASSERT_EQ(result.verdict, CheckVerdict::violation) << "symmetry " << symmetry;
    EXPECT_EQ(rule_of(result), "P1");
    EXPECT_EQ(result.trace.size(), 9u);
  }
}

TEST(ModelCheck, SymmetryMergesStatesThatDifferOnlyByWhichClientWentFirst) {
  // Four clients, one round, one slot: which client holds the slot is the
  // main difference between states, and renaming folds it away.
  const CheckConfig config = config_of(GateMode::atomic, 4, 1, 1);
  const CheckResult on = check(config, {}, true);
  const CheckResult off = check(config, {}, false);
  ASSERT_EQ(on.verdict, CheckVerdict::verified);
  EXPECT_LT(on.states * 4, off.states);
}

// ---------------------------------------------------------------------------
// Bounds and determinism.

TEST(ModelCheck, MaxStatesEndsIncomplete) {
  CheckConfig config = config_of(GateMode::atomic, 3, 2, 2);
  config.max_states = 100;
  const CheckResult result = check(config);
  EXPECT_EQ(result.verdict, CheckVerdict::incomplete);
  EXPECT_EQ(result.states, 100u);
  EXPECT_FALSE(result.violation.has_value());

  // The whole space fits in its own size: verified, not incomplete.
  CheckConfig exact = config_of(GateMode::atomic, 2, 1, 1);
  const std::uint64_t size = check(exact).states;
  exact.max_states = size;
  EXPECT_EQ(check(exact).verdict, CheckVerdict::verified);
  exact.max_states = size - 1;
  EXPECT_EQ(check(exact).verdict, CheckVerdict::incomplete);
}

TEST(ModelCheck, ZeroTicksStillExploresEveryInterleaving) {
  CheckConfig config = config_of(GateMode::legacy, 3, 2, 1);
  config.max_ticks = 0;
  const CheckResult result = check(config);
  EXPECT_EQ(rule_of(result), "P1");
  EXPECT_EQ(result.trace.size(), 6u);
}

TEST(ModelCheck, CollisionBoundIsTheBirthdayBound) {
  EXPECT_DOUBLE_EQ(collision_bound(0), 0.0);
  EXPECT_DOUBLE_EQ(collision_bound(std::uint64_t{1} << 32), 0.5);  // 2^64 / 2^65
  const CheckResult result = check(config_of(GateMode::atomic, 2, 1, 1));
  EXPECT_DOUBLE_EQ(result.collision_probability, collision_bound(result.states));
}

TEST(ModelCheck, ProgressIsReportedWithoutAClock) {
  std::vector<CheckProgress> seen;
  CheckHooks hooks;
  hooks.progress = [&](const CheckProgress& p) { seen.push_back(p); };
  hooks.progress_every = 64;
  const CheckResult result = run_check(config_of(GateMode::atomic, 3, 2, 1), hooks);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().states, result.states);
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].states, seen[i - 1].states);
}

}  // namespace
}  // namespace turnstile::sim

namespace turnstile::cli {
namespace {

std::string read_all(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

CheckOptions options_of(std::string gate, int clients, int capacity, int rounds) {
  CheckOptions options;
  options.gate = std::move(gate);
  options.clients = clients;
  options.capacity = capacity;
  options.rounds = rounds;
  return options;
}

struct CommandRun {
  int code = 0;
  std::string out;
  std::string err;
};

CommandRun run(const CheckOptions& options) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = run_check_command(options, out, err);
  return CommandRun{code, out.str(), err.str()};
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::path(::testing::TempDir()) / name;
}

TEST(CheckCommand, P1_LegacyExitsOneAndPrintsTheCounterexample) {
  const CommandRun r = run(options_of("legacy", 3, 2, 1));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("violation of P1 after 6 steps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("admit_write"), std::string::npos);
  EXPECT_NE(r.out.find("P1: after the admit of client"), std::string::npos);
  EXPECT_NE(r.out.find("collision probability"), std::string::npos);
  EXPECT_EQ(r.err, "");
}

TEST(CheckCommand, G14_AtomicExitsZero) {
  const CommandRun r = run(options_of("atomic", 3, 2, 1));
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("verified: no violation of P1 P2 P4 G14 P5 P6 P7 P9"), std::string::npos) << r.out;
}

TEST(CheckCommand, MaxStatesIsIncompleteAndNotAPass) {
  CheckOptions options = options_of("atomic", 3, 2, 2);
  options.max_states = 50;
  const CommandRun r = run(options);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("incomplete: stopped at --max-states 50"), std::string::npos) << r.out;
}

TEST(CheckCommand, BadUsageExitsTwoWithOneLine) {
  const std::vector<std::pair<CheckOptions, std::string>> cases = {
      {options_of("racy", 3, 2, 1), "turnstile check: --gate: expected atomic or legacy\n"},
      {options_of("atomic", 0, 2, 1), "turnstile check: --clients: expected an integer from 1 to 6\n"},
      {options_of("atomic", 7, 2, 1), "turnstile check: --clients: expected an integer from 1 to 6\n"},
      {options_of("atomic", 3, 0, 1), "turnstile check: --capacity: expected an integer from 1 to 6\n"},
      {options_of("atomic", 3, 2, 10), "turnstile check: --rounds: expected an integer from 1 to 9\n"},
  };
  for (const auto& [options, expected] : cases) {
    const CommandRun r = run(options);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, expected);
    EXPECT_EQ(r.out, "");
  }
  CheckOptions ttl = options_of("atomic", 3, 2, 1);
  ttl.ttl = 0;
  EXPECT_EQ(run(ttl).err, "turnstile check: --ttl: expected an integer from 1 to 16 (ticks)\n");
  CheckOptions states = options_of("atomic", 3, 2, 1);
  states.max_states = 0;
  EXPECT_EQ(run(states).code, 2);
}

TEST(CheckCommand, DefaultTicksLetASessionBecomeGone) {
  CheckOptions options = options_of("atomic", 2, 1, 1);
  options.ttl = 3;
  options.grace = 2;
  const CheckSetup setup = check_setup(options);
  ASSERT_EQ(setup.error, "");
  EXPECT_EQ(setup.config.max_ticks, 6);
  options.max_ticks = 1;
  EXPECT_EQ(check_setup(options).config.max_ticks, 1);
}

TEST(CheckCommand, P3_SameConfigGivesTheSameBytes) {
  const std::filesystem::path trace = temp_path("check_determinism.trace.jsonl");
  for (bool json : {false, true}) {
    CheckOptions options = options_of("legacy", 3, 2, 1);
    options.trace_out = trace.string();
    options.json = json;
    const CommandRun first = run(options);
    const std::string first_trace = read_all(trace);
    const CommandRun second = run(options);
    const std::string second_trace = read_all(trace);
    EXPECT_EQ(first.code, 1);
    EXPECT_EQ(first.out, second.out);
    EXPECT_EQ(first_trace, second_trace);
    EXPECT_FALSE(first_trace.empty());
  }
  // A verified run too, with symmetry on and off.
  for (bool no_symmetry : {false, true}) {
    CheckOptions options = options_of("atomic", 3, 2, 1);
    options.no_symmetry = no_symmetry;
    EXPECT_EQ(run(options).out, run(options).out);
  }
}

TEST(CheckCommand, TraceHasAHeaderOneLinePerStepAndTheVerdict) {
  const std::filesystem::path trace = temp_path("check_legacy.trace.jsonl");
  CheckOptions options = options_of("legacy", 3, 2, 1);
  options.trace_out = trace.string();
  ASSERT_EQ(run(options).code, 1);

  std::istringstream text(read_all(trace));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(text, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 8u);  // header, 6 steps, verdict
  EXPECT_EQ(lines[0]["turnstile_check_trace"], 1);
  EXPECT_EQ(lines[0]["gate"], "legacy");
  EXPECT_EQ(lines[0]["clients"], 3);
  EXPECT_EQ(lines[0]["capacity"], 2);
  EXPECT_EQ(lines[0]["rounds"], 1);
  for (std::size_t i = 1; i <= 6; ++i) {
    EXPECT_EQ(lines[i]["step"], i);
    EXPECT_EQ(lines[i]["op"]["op"], "admit");
    EXPECT_EQ(lines[i]["op"]["pool"], "p");
    EXPECT_TRUE(lines[i]["action"] == "admit_read" || lines[i]["action"] == "admit_write");
    EXPECT_EQ(lines[i]["decision"]["outcome"], "admitted");
  }
  EXPECT_EQ(lines[6]["sessions"].size(), 3u);
  EXPECT_EQ(lines[7]["verdict"], "violation");
  EXPECT_EQ(lines[7]["rule"], "P1");
  EXPECT_EQ(lines[7]["step"], 6);
}

TEST(CheckCommand, TraceOfAVerifiedRunHasNoSteps) {
  const std::filesystem::path trace = temp_path("check_atomic.trace.jsonl");
  CheckOptions options = options_of("atomic", 2, 1, 1);
  options.trace_out = trace.string();
  ASSERT_EQ(run(options).code, 0);
  std::istringstream text(read_all(trace));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(text, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["verdict"], "verified");
  EXPECT_TRUE(lines[1]["rule"].is_null());
}

TEST(CheckCommand, JsonSummaryIsOneLine) {
  CheckOptions options = options_of("legacy", 2, 1, 1);
  options.json = true;
  const CommandRun r = run(options);
  EXPECT_EQ(r.code, 1);
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["verdict"], "violation");
  EXPECT_EQ(j["rule"], "P1");
  EXPECT_EQ(j["steps"], 4);
  EXPECT_GT(j["states"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(j["trace_out"].is_null());
}

TEST(CheckCommand, UnwritableTraceExitsTwo) {
  CheckOptions options = options_of("legacy", 2, 1, 1);
  options.trace_out = (temp_path("no-such-dir") / "x" / "t.jsonl").string();
  const CommandRun r = run(options);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot write"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace turnstile::cli

// ---------------------------------------------------------------------------
// Check traces (sim/check_trace.h): read back, replayed step by step, and
// turned into a SPEC H history.

namespace turnstile::sim {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

CheckTrace read_back(const std::string& text) {
  auto parsed = read_check_trace(text, "t.jsonl");
  EXPECT_TRUE(std::holds_alternative<CheckTrace>(parsed)) << std::get<CheckTraceError>(parsed).message;
  return std::holds_alternative<CheckTrace>(parsed) ? std::get<CheckTrace>(parsed) : CheckTrace{};
}

TEST(CheckTrace, ReadsBackEveryStepAndTheVerdictItWrote) {
  const CheckConfig config = config_of(GateMode::legacy, 3, 2, 1);
  const CheckResult result = check(config);
  const std::string text = write_check_trace(config, result, "0.1.0");
  EXPECT_EQ(text, cli::check_trace_text(config, result));
  EXPECT_TRUE(is_check_trace(text));
  const CheckTrace trace = read_back(text);
  EXPECT_EQ(trace.version, "0.1.0");
  EXPECT_EQ(trace.config.gate, GateMode::legacy);
  EXPECT_EQ(trace.config.clients, 3);
  EXPECT_EQ(trace.config.max_ticks, config.max_ticks);
  ASSERT_EQ(trace.steps.size(), result.trace.size());
  const std::vector<std::string> lines = lines_of(text);
  for (std::size_t i = 0; i < trace.steps.size(); ++i) {
    EXPECT_EQ(trace.steps[i].client, result.trace[i].client);
    EXPECT_EQ(trace.steps[i].action, result.trace[i].action);
    EXPECT_EQ(trace.steps[i].now, result.trace[i].now);
    EXPECT_EQ(trace.steps[i].decision, result.trace[i].decision);
    // Every recorded field, exactly as written.
    EXPECT_EQ(check_step_json(i + 1, trace.steps[i]), lines[i + 1]);
  }
  EXPECT_EQ(trace.verdict, CheckVerdict::violation);
  ASSERT_TRUE(trace.violation.has_value());
  EXPECT_EQ(trace.violation->rule, "P1");
  EXPECT_EQ(trace.violation->message, result.violation->message);
  EXPECT_EQ(trace.states, result.states);
}

TEST(CheckTrace, ARunTraceIsNotACheckTrace) {
  EXPECT_FALSE(is_check_trace(R"({"turnstile_trace":1,"version":"0.1.0"})"
                              "\n"));
  EXPECT_FALSE(is_check_trace(""));
  EXPECT_FALSE(is_check_trace("not json\n"));
}

TEST(CheckTrace, P1_ReplayReproducesTheViolationOfEveryBrokenGateAndTheLegacyGate) {
  std::vector<std::pair<CheckConfig, GateFunction>> cases = {{config_of(GateMode::legacy, 3, 2, 1), {}},
                                                             {config_of(GateMode::legacy, 4, 3, 2), {}}};
  for (const BrokenCase& c : broken_cases()) cases.emplace_back(c.config, c.gate);
  for (const auto& [config, gate] : cases) {
    const CheckResult result = check(config, gate);
    ASSERT_EQ(result.verdict, CheckVerdict::violation);
    const CheckTrace trace = read_back(write_check_trace(config, result, "0.1.0"));
    CheckHooks hooks;
    hooks.gate = gate;
    const CheckTraceReplay replay = replay_check_trace(trace, hooks);
    EXPECT_FALSE(replay.divergence.has_value()) << *replay.divergence;
    ASSERT_TRUE(replay.path.violation.has_value());
    EXPECT_EQ(replay.path.violation->rule, result.violation->rule);
    EXPECT_EQ(replay.path.steps.size(), result.trace.size());
    EXPECT_EQ(replay.fingerprint, replay_check_trace(trace, hooks).fingerprint);
  }
}

TEST(CheckTrace, ReplayOnAnotherGateNamesTheFirstDivergentStep) {
  const CheckConfig config = config_of(GateMode::legacy, 3, 2, 1);
  CheckTrace trace = read_back(write_check_trace(config, check(config), "0.1.0"));
  // The atomic gate admits in one step where the legacy one read first.
  trace.config.gate = GateMode::atomic;
  const CheckTraceReplay replay = replay_check_trace(trace);
  ASSERT_TRUE(replay.divergence.has_value());
  EXPECT_TRUE(replay.divergence->starts_with("the run diverged at step 1: expected {\"step\":1,\"client\":\"c1\","
                                             "\"action\":\"admit_read\""))
      << *replay.divergence;

  // A gate fixed so that the recorded violation no longer happens.
  CheckTrace fixed = read_back(write_check_trace(config, check(config), "0.1.0"));
  CheckHooks hooks;
  hooks.gate = [](core::PoolState& pool, const core::Op& op, const core::GateConfig& gate_config) {
    core::GateConfig tighter = gate_config;
    tighter.capacity = 1;
    return core::apply(pool, op, tighter);
  };
  const CheckTraceReplay diverged = replay_check_trace(fixed, hooks);
  ASSERT_TRUE(diverged.divergence.has_value());
  EXPECT_TRUE(diverged.divergence->starts_with("the run diverged at step 3: expected ")) << *diverged.divergence;
}

TEST(CheckTrace, AVerifiedTraceReplaysByRunningTheCheckAgain) {
  const CheckConfig config = config_of(GateMode::atomic, 2, 1, 1);
  const CheckResult result = check(config);
  ASSERT_EQ(result.verdict, CheckVerdict::verified);
  const CheckTrace trace = read_back(write_check_trace(config, result, "0.1.0"));
  const CheckTraceReplay replay = replay_check_trace(trace);
  EXPECT_FALSE(replay.divergence.has_value()) << *replay.divergence;
  ASSERT_TRUE(replay.rerun.has_value());
  EXPECT_EQ(replay.rerun->states, result.states);
  // A broken gate is not verified: the replay says so.
  CheckHooks hooks;
  hooks.gate = over_capacity_gate;
  const CheckTraceReplay broken = replay_check_trace(read_back(write_check_trace(config_of(GateMode::atomic, 2, 1, 1),
                                                                                 result, "0.1.0")),
                                                     hooks);
  ASSERT_TRUE(broken.divergence.has_value());
  EXPECT_TRUE(broken.divergence->starts_with("the run diverged at the verdict: expected verified")) << *broken.divergence;
}

TEST(CheckTrace, MalformedTracesAreRefusedWithOneLine) {
  const CheckConfig config = config_of(GateMode::legacy, 3, 2, 1);
  const std::vector<std::string> good = lines_of(write_check_trace(config, check(config), "0.1.0"));
  struct Case {
    std::vector<std::string> lines;
    std::string expected;
  };
  std::vector<Case> cases;
  const auto edit = [&](std::size_t line, std::string_view from, std::string_view to) {
    std::vector<std::string> lines = good;
    const std::size_t at = lines[line].find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) lines[line].replace(at, from.size(), to);
    return lines;
  };
  cases.push_back({{}, "t.jsonl:1: missing header line"});
  cases.push_back({{good[1]}, "t.jsonl:1: expected the check trace header"});
  cases.push_back({edit(0, R"("clients":3)", R"("clients":7)"), "t.jsonl:1: field 'clients': expected an integer from 1 to 6"});
  cases.push_back({edit(0, R"("pool":"p")", R"("pool":"q")"), "t.jsonl:1: field 'pool': expected one of p"});
  cases.push_back({edit(1, R"("wrote":false)", R"("wrote":false,"extra":1)"),
                   "t.jsonl:2: field 'extra': unknown field"});
  cases.push_back({edit(1, R"("action":"admit_read")", R"("action":"jump")"), "t.jsonl:2: field 'action': expected one of"});
  cases.push_back({edit(1, R"("action":"admit_read")", R"("action":"tick")"), "t.jsonl:2: field 'client': expected null for a tick"});
  cases.push_back({edit(1, R"("token":"1")", R"("token":"x")"), "t.jsonl:2: field 'decision.token'"});
  cases.push_back({edit(2, R"("client":"c1","episode")", R"("client":"c2","episode")"),
                   "t.jsonl:3: field 'op.client': expected c1, the step's client"});
  cases.push_back({edit(7, R"("step":6)", R"("step":5)"), "t.jsonl:8: field 'step': expected 6, the number of step lines"});
  {
    std::vector<std::string> lines = good;
    lines.erase(lines.begin() + 3);
    cases.push_back({lines, "t.jsonl:4: field 'step': expected 3"});
  }
  {
    std::vector<std::string> lines = good;
    lines.pop_back();
    cases.push_back({lines, "t.jsonl:8: missing verdict line"});
  }
  {
    std::vector<std::string> lines = good;
    lines.push_back(good[1]);
    cases.push_back({lines, "t.jsonl:9: nothing may follow the verdict line"});
  }
  for (const Case& c : cases) {
    auto parsed = read_check_trace(joined(c.lines), "t.jsonl");
    ASSERT_TRUE(std::holds_alternative<CheckTraceError>(parsed)) << c.expected;
    const std::string& message = std::get<CheckTraceError>(parsed).message;
    EXPECT_TRUE(message.starts_with(c.expected)) << message << "\n expected: " << c.expected;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(CheckTrace, RunCheckPathStopsAtALabelThatCannotMove) {
  const CheckConfig config = config_of(GateMode::atomic, 1, 1, 1);
  // c1: admit, heartbeat, release; then it is done.
  const CheckPathResult path = run_check_path(config, {0, 0, 0, 0});
  EXPECT_EQ(path.steps.size(), 3u);
  EXPECT_EQ(path.impossible, 3u);
  EXPECT_FALSE(path.violation.has_value());
  EXPECT_EQ(run_check_path(config, {1}).impossible, 0u);  // no client c2
  EXPECT_EQ(run_check_path(config, {-1, -1, -1, -1, -1}).impossible, 4u);  // max ticks 4
}

TEST(CheckTrace, P14_ALegacyCounterexampleIsNotLinearizableAndAnAtomicPathIs) {
  const CheckConfig legacy = config_of(GateMode::legacy, 3, 2, 1);
  const CheckResult result = check(legacy);
  const std::vector<HistoryOp> ops = check_path_history(legacy, result.trace);
  ASSERT_EQ(ops.size(), 4u);  // the config op and three admits, each from its read to its write
  EXPECT_EQ(ops[1].call, 1);
  EXPECT_EQ(ops[1].ret, 2);
  std::string text;
  for (const HistoryOp& op : ops) append_history_line(text, op);
  auto parsed = read_history(text, "h.jsonl");
  ASSERT_TRUE(std::holds_alternative<std::vector<HistoryOp>>(parsed)) << std::get<HistoryError>(parsed).message;
  const std::vector<PoolHistory> pools = split_by_pool(std::get<std::vector<HistoryOp>>(parsed));
  ASSERT_EQ(pools.size(), 1u);
  EXPECT_EQ(check_pool(pools[0], LincheckLimits{}).verdict, LincheckVerdict::not_linearizable);

  // Every client's whole program on the atomic gate, interleaved with ticks.
  const CheckConfig atomic = config_of(GateMode::atomic, 2, 1, 2);
  const CheckPathResult path = run_check_path(atomic, {0, 1, -1, 0, 1, -1, 0, 1, 0, 1, 0, 1});
  EXPECT_FALSE(path.violation.has_value());
  const std::vector<PoolHistory> atomic_pools = split_by_pool(check_path_history(atomic, path.steps));
  ASSERT_EQ(atomic_pools.size(), 1u);
  EXPECT_EQ(check_pool(atomic_pools[0], LincheckLimits{}).verdict, LincheckVerdict::linearizable);
}

}  // namespace
}  // namespace turnstile::sim
