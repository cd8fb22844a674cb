// `turnstile run / explore / replay` end to end through the built binary
// (DESIGN.md "The command line", docs/simulator.md), and the variant
// mechanism of replay in-process.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/test_files.h"
#include "cli/sim_commands.h"
#include "core/gate.h"
#include "sim/sleep.h"
#include "sim/trace.h"

namespace turnstile::cli {
namespace {

namespace fs = std::filesystem;

using Result = turnstile::testing::CommandResult;
using turnstile::testing::slurp;
using turnstile::testing::spill;
using turnstile::testing::lines_of;

class SimCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("turnstile_sim_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `turnstile <args>` in the test's directory.
  Result turnstile(const std::string& args) {
    const fs::path out = dir_ / "stdout";
    const fs::path err = dir_ / "stderr";
    const std::string command = "cd '" + dir_.string() + "' && " + std::string(TURNSTILE_BINARY) + " " + args +
                                " > '" + out.string() + "' 2> '" + err.string() + "'";
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = slurp(out);
    result.err = slurp(err);
    return result;
  }

  static std::string fingerprint_line(const std::string& out) {
    const auto lines = lines_of(out);
    return lines.empty() ? std::string() : lines.back();
  }

  // A P1 trace found by exploring the legacy gate.
  fs::path legacy_p1_trace() {
    const Result explore = turnstile("explore --gate legacy --seeds 0..200 --stop-on-first --traces-dir found");
    EXPECT_EQ(explore.exit_code, 1) << explore.out << explore.err;
    for (const auto& entry : fs::directory_iterator(dir_ / "found")) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("P1-seed-", 0) == 0) return entry.path();
    }
    ADD_FAILURE() << "no P1 trace in " << (dir_ / "found") << "\n" << explore.out;
    return {};
  }

  fs::path dir_;
};

const std::regex kFingerprintLine("fingerprint: [0-9a-f]{16}");

TEST_F(SimCli, RunPrintsTheFingerprintLastAndExits0) {
  const Result run = turnstile("run --seed 1");
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_TRUE(std::regex_match(fingerprint_line(run.out), kFingerprintLine)) << run.out;
  EXPECT_NE(run.out.find("verdict: pass"), std::string::npos) << run.out;
  EXPECT_EQ(run.err, "");
}

TEST_F(SimCli, P3_SameSeedTwiceGivesTheSameFingerprint) {
  const Result first = turnstile("run --seed 7");
  const Result second = turnstile("run --seed 7");
  const Result other = turnstile("run --seed 8");
  ASSERT_TRUE(std::regex_match(fingerprint_line(first.out), kFingerprintLine)) << first.out;
  EXPECT_EQ(fingerprint_line(first.out), fingerprint_line(second.out));
  EXPECT_EQ(first.out, second.out);
  EXPECT_NE(fingerprint_line(first.out), fingerprint_line(other.out));
}

TEST_F(SimCli, RunJsonIsOneObjectWithTheFingerprint) {
  const Result run = turnstile("run --seed 1 --json");
  EXPECT_EQ(run.exit_code, 0);
  const auto summary = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << run.out;
  EXPECT_EQ(summary["verdict"], "pass");
  EXPECT_EQ("fingerprint: " + summary["fingerprint"].get<std::string>(),
            fingerprint_line(turnstile("run --seed 1").out));
}

TEST_F(SimCli, P1_LegacyGateExploreFindsACapacityViolationAndWritesItsTrace) {
  const fs::path trace = legacy_p1_trace();
  ASSERT_FALSE(trace.empty());
  auto parsed = sim::read_trace(slurp(trace), trace.string());
  ASSERT_TRUE(std::holds_alternative<sim::Trace>(parsed)) << std::get<sim::TraceError>(parsed).message;
  const sim::Trace& read = std::get<sim::Trace>(parsed);
  ASSERT_TRUE(read.violation);
  EXPECT_EQ(read.violation->rule, "P1");
  EXPECT_EQ(read.header.gate, sim::GateMode::legacy);
  EXPECT_EQ(trace.filename().string(), "P1-seed-" + std::to_string(read.header.seed) + ".trace.jsonl");
}

TEST_F(SimCli, P1_ReplayInAnotherProcessReproducesTheViolationAndFingerprint) {
  const fs::path trace = legacy_p1_trace();
  ASSERT_FALSE(trace.empty());
  const auto parsed = sim::read_trace(slurp(trace), trace.string());
  ASSERT_TRUE(std::holds_alternative<sim::Trace>(parsed));
  const sim::Trace& read = std::get<sim::Trace>(parsed);

  const Result replay = turnstile("replay '" + trace.string() + "'");
  EXPECT_EQ(replay.exit_code, 1) << replay.out << replay.err;
  EXPECT_NE(replay.out.find("violation of P1"), std::string::npos) << replay.out;
  EXPECT_EQ(fingerprint_line(replay.out), fmt::format("fingerprint: {:016x}", read.fingerprint));
  // And `run` of the same seed agrees.
  const Result run = turnstile("run --gate legacy --seed " + std::to_string(read.header.seed) + " --trace-out again.jsonl");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(fingerprint_line(run.out), fingerprint_line(replay.out));
  EXPECT_EQ(slurp(dir_ / "again.jsonl"), slurp(trace));
}

TEST_F(SimCli, ReplayOfAPassingRunExits0WithTheSameFingerprint) {
  const Result run = turnstile("run --seed 2 --trace-out pass.jsonl");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const Result replay = turnstile("replay pass.jsonl");
  EXPECT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_EQ(fingerprint_line(replay.out), fingerprint_line(run.out));
}

TEST_F(SimCli, ReplayOfATraceWithAnImpossibleChoiceNamesTheDivergentStep) {
  const fs::path trace = legacy_p1_trace();
  ASSERT_FALSE(trace.empty());
  std::vector<std::string> lines = lines_of(slurp(trace));
  // The fourth step line: its choice index made larger than its ready count.
  const std::regex step_line(R"re(\{"step":(\d+),"fiber":(\d+),"choice":\[(\d+),(\d+)\],(.*))re");
  int seen = 0;
  std::string step;
  std::string expected;
  for (std::string& line : lines) {
    std::smatch m;
    if (!std::regex_match(line, m, step_line) || ++seen != 4) continue;
    step = m[1];
    const std::string impossible = std::to_string(std::stoul(m[4]) + 3);
    expected = "choice [" + impossible + "," + std::string(m[4]) + "]";
    line = "{\"step\":" + std::string(m[1]) + ",\"fiber\":" + std::string(m[2]) + ",\"choice\":[" + impossible + "," +
           std::string(m[4]) + "]," + std::string(m[5]);
    break;
  }
  ASSERT_FALSE(step.empty());
  std::string edited;
  for (const auto& line : lines) edited += line + "\n";
  spill(dir_ / "edited.jsonl", edited);

  const Result replay = turnstile("replay edited.jsonl");
  EXPECT_EQ(replay.exit_code, 2) << replay.out;
  EXPECT_EQ(replay.err.rfind("edited.jsonl: the run diverged at step " + step + ": expected " + expected + ", got ", 0),
            0u)
      << replay.err;
  EXPECT_EQ(lines_of(replay.err).size(), 1u) << replay.err;
}

TEST_F(SimCli, ExploreJobsDoNotChangePerSeedResults) {
  const Result one = turnstile("explore --seeds 0..40 --jobs 1 --json");
  const Result two = turnstile("explore --seeds 0..40 --jobs 2 --json");
  const auto a = nlohmann::json::parse(one.out, nullptr, false);
  const auto b = nlohmann::json::parse(two.out, nullptr, false);
  ASSERT_TRUE(a.is_object()) << one.out << one.err;
  ASSERT_TRUE(b.is_object()) << two.out << two.err;
  EXPECT_EQ(a["results"].size(), 41u);
  EXPECT_EQ(a["results"], b["results"]);
  EXPECT_EQ(a["violations_by_rule"], b["violations_by_rule"]);
  EXPECT_EQ(one.exit_code, two.exit_code);
}

TEST_F(SimCli, ExploreStopOnFirstDoesNotDependOnJobs) {
  const Result one = turnstile("explore --gate legacy --seeds 0..100 --stop-on-first --jobs 1 --json --traces-dir a");
  const Result two = turnstile("explore --gate legacy --seeds 0..100 --stop-on-first --jobs 2 --json --traces-dir b");
  const auto a = nlohmann::json::parse(one.out, nullptr, false);
  const auto b = nlohmann::json::parse(two.out, nullptr, false);
  ASSERT_TRUE(a.is_object() && b.is_object()) << one.out << two.out;
  EXPECT_EQ(one.exit_code, 1);
  EXPECT_EQ(a["results"], b["results"]);
  EXPECT_EQ(a["results"].back()["verdict"], "violation");
}

TEST_F(SimCli, ExploreShardTakesEveryNthSeed) {
  const Result run = turnstile("explore --seeds 0..9 --shard 2/3 --json");
  const auto summary = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << run.out << run.err;
  std::vector<std::uint64_t> seeds;
  for (const auto& result : summary["results"]) seeds.push_back(result["seed"].get<std::uint64_t>());
  EXPECT_EQ(seeds, (std::vector<std::uint64_t>{1, 4, 7}));
}

TEST_F(SimCli, P3_ExploreCheckDeterminismRerunsSeeds) {
  const Result run = turnstile("explore --seeds 0..20 --check-determinism 5");
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("determinism: 5 seeds run again, same fingerprints"), std::string::npos) << run.out;
}

TEST_F(SimCli, ExploreTimeBudgetStopsAndSummarises) {
  const Result run = turnstile("explore --gate legacy --time-budget 0.3 --traces-dir t");
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("seeds/s: "), std::string::npos) << run.out;
  EXPECT_TRUE(fs::exists(dir_ / "t" / "P1-seed-0.trace.jsonl")) << run.out;
  EXPECT_EQ(run.err, "") << "no progress line when stderr is not a terminal";
}

TEST_F(SimCli, ScenarioFileIsUsedAndAMalformedOneIsOneLine) {
  const Result example = turnstile(std::string("run --seed 1 --scenario ") + TURNSTILE_SOURCE_DIR "/examples/scenario.json");
  EXPECT_EQ(example.exit_code, 0) << example.err;
  EXPECT_NE(example.out.find("scenario example"), std::string::npos) << example.out;

  spill(dir_ / "bad.json", R"({"clients":[{"behaviour":"nap"}]})");
  const Result bad = turnstile("run --seed 1 --scenario bad.json");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "bad.json: field 'clients[0].behaviour': expected one of watch, blip, zap, burst, storm\n");
  EXPECT_EQ(bad.out, "");
}

TEST_F(SimCli, V4_BadInputExits2WithOneLine) {
  spill(dir_ / "garbage.jsonl", "not a trace\n");
  const std::vector<std::string> bad = {
      "run",
      "run --seed -1",
      "run --seed 1 --gate optimistic",
      "run --seed 1 --strategy dfs",
      "run --seed 1 --scenario missing.json",
      "explore --seeds 5..1",
      "explore --seeds 1-5",
      "explore --shard 3/2",
      "explore --shard 0/2",
      "explore --jobs 0",
      "explore --seeds 0..1 --time-budget 1",
      "explore --time-budget -1",
      "replay",
      "replay missing.jsonl",
      "replay garbage.jsonl",
      "explore --frobnicate",
  };
  for (const std::string& args : bad) {
    const Result result = turnstile(args);
    EXPECT_EQ(result.exit_code, 2) << args << "\n" << result.out << result.err;
    EXPECT_EQ(lines_of(result.err).size(), 1u) << args << "\n" << result.err;
  }
}

TEST_F(SimCli, ReplayRefusesAVariantOnlyTheTestSuiteProvides) {
  const Result run = turnstile("run --seed 2 --trace-out pass.jsonl");
  ASSERT_EQ(run.exit_code, 0);
  std::vector<std::string> lines = lines_of(slurp(dir_ / "pass.jsonl"));
  const std::string core = R"("variant":"core"})";
  ASSERT_TRUE(lines[0].ends_with(core));
  lines[0] = lines[0].substr(0, lines[0].size() - core.size()) + R"("variant":"over-admit"})";
  std::string edited;
  for (const auto& line : lines) edited += line + "\n";
  spill(dir_ / "variant.jsonl", edited);
  const Result replay = turnstile("replay variant.jsonl");
  EXPECT_EQ(replay.exit_code, 2);
  EXPECT_EQ(replay.err, "variant.jsonl: trace needs variant over-admit, which only the test suite provides\n");
}

// A gate that admits one past capacity: the broken implementation a variant
// names, registered the way the test suite registers variants.
core::Decision over_admitting_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  core::GateConfig loose = config;
  loose.capacity = config.capacity + 1;
  return core::apply(pool, op, loose);
}

TEST_F(SimCli, ReplayRunsATracesVariantWithTheHooksItIsGiven) {
  sim::WorldHooks hooks;
  hooks.gate = over_admitting_gate;
  // The first seed on which the over-admitting gate breaks a rule.
  std::optional<sim::RunReport> found;
  sim::RunSpec spec;
  spec.hooks = hooks;
  for (std::uint64_t seed = 0; seed < 50 && !found; ++seed) {
    spec.seed = seed;
    sim::RunReport report = sim::run_world(spec);
    if (report.violation) found = std::move(report);
  }
  ASSERT_TRUE(found) << "the over-admitting gate broke no rule in 50 seeds";
  sim::TraceHeader header;
  header.version = std::string(kTurnstileVersion);
  header.scenario = spec.scenario;
  header.seed = spec.seed;
  header.strategy = "random";
  header.variant = "over-admit";
  const fs::path path = dir_ / "variant.jsonl";
  spill(path, sim::write_trace(header, *found));

  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(replay_command(path.string(), Variants{{"over-admit", hooks}}, out, err), 1) << err.str();
  EXPECT_EQ(fingerprint_line(out.str()), fmt::format("fingerprint: {:016x}", found->fingerprint));
  // Without the variant's hooks the real gate runs, and the replay diverges
  // or refuses: it never claims to reproduce the violation.
  std::ostringstream out2;
  std::ostringstream err2;
  EXPECT_EQ(replay_command(path.string(), Variants{{"over-admit", sim::WorldHooks{}}}, out2, err2), 2) << out2.str();
  EXPECT_NE(err2.str().find("the run diverged at "), std::string::npos) << err2.str();
}

// ---------------------------------------------------------------------------
// --history: the run's gate history (SPEC H), which `turnstile lincheck` reads.

TEST_F(SimCli, P14_RunHistoryIsReadByLincheck) {
  const Result run = turnstile("run --seed 4 --history h.jsonl");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("p14: linearizable"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("history: h.jsonl"), std::string::npos) << run.out;
  EXPECT_TRUE(std::regex_match(fingerprint_line(run.out), kFingerprintLine)) << run.out;
  const std::string history = slurp(dir_ / "h.jsonl");
  ASSERT_FALSE(history.empty());
  EXPECT_TRUE(history.starts_with(R"({"process":"setup","call":0,"ret":0,"op":{"op":"config","pool":"p",)")) << history;
  const Result lincheck = turnstile("lincheck h.jsonl");
  EXPECT_EQ(lincheck.exit_code, 0) << lincheck.out << lincheck.err;
  EXPECT_NE(lincheck.out.find("linearizable"), std::string::npos) << lincheck.out;
}

TEST_F(SimCli, P14_RunJsonReportsP14) {
  const Result run = turnstile("run --seed 4 --json");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto summary = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << run.out;
  ASSERT_TRUE(summary["p14"].is_object()) << run.out;
  EXPECT_EQ(summary["p14"]["verdict"], "linearizable");
  EXPECT_TRUE(summary["p14"]["cause"].is_null());
  EXPECT_GT(summary["p14"]["operations"].get<int>(), 1);
}

TEST_F(SimCli, P14_ReplayWritesTheSameHistoryAsTheRun) {
  const Result run = turnstile("run --seed 9 --trace-out t.jsonl --history run.jsonl");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const Result replay = turnstile("replay t.jsonl --history replay.jsonl");
  ASSERT_EQ(replay.exit_code, 0) << replay.out << replay.err;
  EXPECT_EQ(fingerprint_line(replay.out), fingerprint_line(run.out));
  EXPECT_NE(replay.out.find("p14: linearizable"), std::string::npos) << replay.out;
  EXPECT_EQ(slurp(dir_ / "replay.jsonl"), slurp(dir_ / "run.jsonl"));
}

TEST_F(SimCli, P14_ExploreSummaryCountsUnknownVerdicts) {
  const Result explore = turnstile("explore --seeds 0..9 --json");
  ASSERT_EQ(explore.exit_code, 0) << explore.out << explore.err;
  const auto summary = nlohmann::json::parse(explore.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << explore.out;
  EXPECT_EQ(summary["p14_unknown"], 0);
  EXPECT_EQ(summary["results"][0]["p14_unknown"], false);
}

// A store that is not atomic: it reads the token counter, lets another
// command run, then issues from what it read (tests/sim_p14_test.cc has the
// same one). Only P14 sees some of its duplicate tokens.
core::Decision token_race_gate(core::PoolState& pool, const core::Op& op, const core::GateConfig& config) {
  const core::Token read = pool.last_token;
  sim::yield_point();
  pool.last_token = read;
  return core::apply(pool, op, config);
}

TEST_F(SimCli, P14_AViolationOfP14IsWrittenAsATraceThatReplays) {
  sim::WorldHooks hooks;
  hooks.gate = token_race_gate;
  sim::RunSpec spec;
  spec.hooks = hooks;
  // The gate holds its pool across a scheduling point, which a restart would destroy.
  spec.scenario.faults.store_restart_permille = 0;
  std::optional<sim::RunReport> found;
  for (std::uint64_t seed = 0; seed < 100 && !found; ++seed) {
    spec.seed = seed;
    sim::RunReport report = sim::run_world(spec);
    if (report.violation && report.violation->rule == "P14") found = std::move(report);
  }
  ASSERT_TRUE(found) << "the token race broke no rule as P14 alone in 100 seeds";
  sim::TraceHeader header;
  header.version = std::string(kTurnstileVersion);
  header.scenario = spec.scenario;
  header.seed = spec.seed;
  header.strategy = "random";
  header.variant = "token-race";
  const fs::path path = dir_ / "p14.jsonl";
  spill(path, sim::write_trace(header, *found));

  std::ostringstream out;
  std::ostringstream err;
  const fs::path history = dir_ / "h.jsonl";
  EXPECT_EQ(replay_command(path.string(), Variants{{"token-race", hooks}}, out, err, history.string()), 1) << err.str();
  EXPECT_NE(out.str().find("verdict: violation of P14 at step " + std::to_string(found->violation->step)),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("p14: not linearizable"), std::string::npos) << out.str();
  EXPECT_EQ(fingerprint_line(out.str()), fmt::format("fingerprint: {:016x}", found->fingerprint));
  // The history it wrote is what P14 found not linearizable.
  const Result lincheck = turnstile("lincheck h.jsonl");
  EXPECT_EQ(lincheck.exit_code, 1) << lincheck.out << lincheck.err;
  EXPECT_NE(lincheck.out.find("not linearizable"), std::string::npos) << lincheck.out;
}

// ---------------------------------------------------------------------------
// Check traces: `turnstile check --trace-out` writes what `replay` runs.

TEST_F(SimCli, P1_ACheckTraceReplaysToItsViolation) {
  const Result check = turnstile("check --gate legacy --clients 3 --capacity 2 --rounds 1 --trace-out x.jsonl");
  ASSERT_EQ(check.exit_code, 1) << check.out << check.err;
  const Result replay = turnstile("replay x.jsonl");
  EXPECT_EQ(replay.exit_code, 1) << replay.out << replay.err;
  EXPECT_EQ(replay.err, "");
  EXPECT_NE(replay.out.find("verdict: violation of P1 at step 6"), std::string::npos) << replay.out;
  EXPECT_NE(replay.out.find("reproduced"), std::string::npos) << replay.out;
  EXPECT_TRUE(std::regex_match(fingerprint_line(replay.out), kFingerprintLine)) << replay.out;
  // The same trace replays to the same fingerprint.
  EXPECT_EQ(turnstile("replay x.jsonl").out, replay.out);
}

TEST_F(SimCli, P14_ACheckCounterexamplesHistoryIsNotLinearizable) {
  ASSERT_EQ(turnstile("check --gate legacy --clients 3 --capacity 2 --rounds 1 --trace-out x.jsonl").exit_code, 1);
  const Result replay = turnstile("replay x.jsonl --history h.jsonl");
  ASSERT_EQ(replay.exit_code, 1) << replay.out << replay.err;
  const Result lincheck = turnstile("lincheck h.jsonl");
  EXPECT_EQ(lincheck.exit_code, 1) << lincheck.out << lincheck.err;
  EXPECT_NE(lincheck.out.find("not linearizable"), std::string::npos) << lincheck.out;
}

TEST_F(SimCli, ACheckTraceOfAVerifiedCheckReplaysTo0) {
  ASSERT_EQ(turnstile("check --gate atomic --clients 2 --capacity 1 --rounds 1 --trace-out v.jsonl").exit_code, 0);
  const Result replay = turnstile("replay v.jsonl");
  EXPECT_EQ(replay.exit_code, 0) << replay.out << replay.err;
  EXPECT_NE(replay.out.find("verdict: verified"), std::string::npos) << replay.out;
  EXPECT_TRUE(std::regex_match(fingerprint_line(replay.out), kFingerprintLine)) << replay.out;
}

TEST_F(SimCli, ACorruptedCheckTraceExits2WithOneLine) {
  ASSERT_EQ(turnstile("check --gate legacy --clients 3 --capacity 2 --rounds 1 --trace-out x.jsonl").exit_code, 1);
  const std::vector<std::string> lines = lines_of(slurp(dir_ / "x.jsonl"));
  ASSERT_EQ(lines.size(), 8u);
  const auto write = [&](const std::string& name, std::vector<std::string> edited) {
    std::string text;
    for (const auto& line : edited) text += line + "\n";
    spill(dir_ / name, text);
  };
  struct Damage {
    std::string name;
    std::vector<std::string> lines;
    std::string expected;  // what the one line on stderr starts with
  };
  std::vector<Damage> damages;
  {
    auto cut = lines;
    cut.pop_back();
    damages.push_back({"cut.jsonl", cut, "cut.jsonl:8: missing verdict line"});
  }
  {
    auto bad = lines;
    bad[3] = "{not json";
    damages.push_back({"json.jsonl", bad, "json.jsonl:4: not valid JSON"});
  }
  {
    auto bad = lines;
    const std::size_t at = bad[2].find(R"("client":"c)");
    ASSERT_NE(at, std::string::npos) << bad[2];
    bad[2].replace(at, 13, R"("client":"c9")");
    damages.push_back({"client.jsonl", bad, "client.jsonl:3: field 'client': expected a client of the model"});
  }
  {
    auto bad = lines;
    const std::size_t at = bad[1].find(R"("step":1)");
    ASSERT_NE(at, std::string::npos);
    bad[1].replace(at, 8, R"("step":2)");
    damages.push_back({"order.jsonl", bad, "order.jsonl:2: field 'step': expected 1"});
  }
  {
    // A decision that the gate does not give: the replay names the step.
    auto bad = lines;
    const std::size_t at = bad[6].find(R"("held":)");
    ASSERT_NE(at, std::string::npos) << bad[6];
    bad[6].replace(at, 8, R"("held":5)");
    damages.push_back({"edited.jsonl", bad, "edited.jsonl: the run diverged at step 6: expected "});
  }
  for (const Damage& damage : damages) {
    write(damage.name, damage.lines);
    const Result replay = turnstile("replay " + damage.name);
    EXPECT_EQ(replay.exit_code, 2) << damage.name << "\n" << replay.out << replay.err;
    EXPECT_EQ(lines_of(replay.err).size(), 1u) << damage.name << "\n" << replay.err;
    EXPECT_TRUE(replay.err.starts_with(damage.expected)) << damage.name << "\n" << replay.err;
    EXPECT_EQ(replay.out, "") << damage.name;
  }
}

}  // namespace
}  // namespace turnstile::cli
