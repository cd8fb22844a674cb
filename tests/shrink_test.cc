// Shrinking (sim/shrink.h) and `turnstile shrink` (cli/shrink_command.h,
// docs/shrink.md): a failing trace shrinks to one that still breaks the
// same rule, is no larger, and that `turnstile replay` reproduces bit for
// bit; the algorithm is deterministic and bounded; bad input is refused in
// one line with exit code 2.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_files.h"
#include "cli/shrink_command.h"
#include "cli/sim_commands.h"
#include "sim/draws.h"
#include "sim/scheduler.h"
#include "sim/shrink.h"
#include "sim/trace.h"
#include "sim/world.h"
#include "tests/broken_variants.h"

namespace turnstile::sim {
namespace {

namespace fs = std::filesystem;

using Result = turnstile::testing::CommandResult;
using turnstile::testing::slurp;
using turnstile::testing::spill;

std::size_t line_count(const std::string& text) {
  std::size_t lines = 0;
  for (const char c : text) lines += c == '\n' ? 1 : 0;
  return lines;
}

Trace read_ok(const fs::path& path) {
  auto parsed = read_trace(slurp(path), path.string());
  if (auto* error = std::get_if<TraceError>(&parsed)) {
    ADD_FAILURE() << error->message;
    return Trace{};
  }
  return std::get<Trace>(std::move(parsed));
}

// The legacy gate's over-admission as `turnstile run` records it: seed 0 of
// the default scenario (docs/simulator.md shows it).
RunSpec legacy_spec(std::uint64_t seed = 0) {
  RunSpec spec;
  spec.seed = seed;
  spec.gate = GateMode::legacy;
  return spec;
}

TraceHeader header_for(const RunSpec& spec, std::string variant = "core") {
  TraceHeader header;
  header.version = std::string(cli::kTurnstileVersion);
  header.scenario = spec.scenario;
  header.seed = spec.seed;
  header.strategy = strategy_name(spec.strategy);
  header.gate = spec.gate;
  header.variant = std::move(variant);
  return header;
}

class ShrinkCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("turnstile_shrink_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result turnstile(const std::string& args) {
    const fs::path out = dir_ / "stdout";
    const fs::path err = dir_ / "stderr";
    const std::string command = "cd '" + dir_.string() + "' && " + std::string(TURNSTILE_BINARY) + " " + args + " > '" +
                                out.string() + "' 2> '" + err.string() + "'";
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = slurp(out);
    result.err = slurp(err);
    return result;
  }

  fs::path dir_;
};

TEST_F(ShrinkCli, P1_LegacyViolationShrinksToATraceReplayReproducesBitForBit) {
  const Result run = turnstile("run --seed 0 --gate legacy --trace-out in.jsonl");
  ASSERT_EQ(run.exit_code, 1) << run.out << run.err;
  const Result shrunk = turnstile("shrink in.jsonl -o out.jsonl");
  ASSERT_EQ(shrunk.exit_code, 0) << shrunk.out << shrunk.err;
  EXPECT_NE(shrunk.out.find("before: "), std::string::npos) << shrunk.out;
  EXPECT_NE(shrunk.out.find("after:  "), std::string::npos) << shrunk.out;
  EXPECT_NE(shrunk.out.find("verdict: violation of P1"), std::string::npos) << shrunk.out;

  const Result replayed = turnstile("replay out.jsonl");
  EXPECT_EQ(replayed.exit_code, 1) << replayed.out << replayed.err;  // the violation, reproduced
  EXPECT_NE(replayed.out.find("reproduced: every step, draw and event, the verdict and the fingerprint match"),
            std::string::npos)
      << replayed.out;
  EXPECT_NE(replayed.out.find("verdict: violation of P1"), std::string::npos) << replayed.out;

  const Trace before = read_ok(dir_ / "in.jsonl");
  const Trace after = read_ok(dir_ / "out.jsonl");
  ASSERT_TRUE(after.violation.has_value());
  EXPECT_EQ(after.violation->rule, "P1");
  EXPECT_EQ(after.header.gate, GateMode::legacy);
  EXPECT_EQ(after.header.strategy, "guided");
  EXPECT_LE(after.schedule.size(), before.schedule.size());
  EXPECT_LE(after.events.size(), before.events.size());
  EXPECT_LE(after.draws.size(), before.draws.size());
  EXPECT_LE(trace_size(after).clients, trace_size(before).clients);
  // The gate's config is the system under test: it stays.
  EXPECT_EQ(after.header.scenario.gate.capacity, before.header.scenario.gate.capacity);
  // Smaller in fact, not only no larger: the default scenario has eight clients.
  EXPECT_LT(trace_size(after).clients, trace_size(before).clients);
}

TEST_F(ShrinkCli, ShrinkingTwiceGivesTheSameTrace) {
  ASSERT_EQ(turnstile("run --seed 3 --gate legacy --trace-out in.jsonl").exit_code, 1);
  ASSERT_EQ(turnstile("shrink in.jsonl -o a.jsonl").exit_code, 0);
  ASSERT_EQ(turnstile("shrink in.jsonl -o b.jsonl").exit_code, 0);
  EXPECT_EQ(slurp(dir_ / "a.jsonl"), slurp(dir_ / "b.jsonl"));
  // A shrunk trace is a fixed point, or close to one: shrinking it again
  // keeps the rule and never grows it.
  ASSERT_EQ(turnstile("shrink a.jsonl -o c.jsonl").exit_code, 0);
  EXPECT_LE(read_ok(dir_ / "c.jsonl").schedule.size(), read_ok(dir_ / "a.jsonl").schedule.size());
}

TEST_F(ShrinkCli, RefusesATraceThatRecordsNoViolation) {
  ASSERT_EQ(turnstile("run --seed 1 --trace-out pass.jsonl").exit_code, 0);
  const Result r = turnstile("shrink pass.jsonl -o out.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "pass.jsonl: the trace records no violation (verdict pass): nothing to shrink\n");
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(fs::exists(dir_ / "out.jsonl"));
}

TEST_F(ShrinkCli, RefusesAnUnreadableOrCorruptedTrace) {
  Result r = turnstile("shrink missing.jsonl -o out.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("missing.jsonl: cannot open"), std::string::npos) << r.err;

  ASSERT_EQ(turnstile("run --seed 0 --gate legacy --trace-out in.jsonl").exit_code, 1);
  std::string text = slurp(dir_ / "in.jsonl");
  text.resize(text.size() / 2);  // a cut tail
  spill(dir_ / "cut.jsonl", text);
  r = turnstile("shrink cut.jsonl -o out.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("cut.jsonl:", 0), 0u) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out.jsonl"));
}

TEST_F(ShrinkCli, RefusesAVariantOnlyTheTestsKnow) {
  RunSpec spec;
  spec.hooks.gate = broken::rotate_newest_idle;
  spill(dir_ / "variant.jsonl", write_trace(header_for(spec, "rotate-newest-idle"), run_world(spec)));
  const Result r = turnstile("shrink variant.jsonl -o out.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "variant.jsonl: trace needs variant rotate-newest-idle, which only the test suite provides\n");
}

TEST_F(ShrinkCli, RefusesATraceThatNoLongerReplays) {
  ASSERT_EQ(turnstile("run --seed 0 --gate legacy --trace-out in.jsonl").exit_code, 1);
  // Claim the run was made with the atomic gate: the recorded choices and
  // events no longer fit what the code does.
  std::string text = slurp(dir_ / "in.jsonl");
  const std::size_t at = text.find("\"gate\":\"legacy\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 15, "\"gate\":\"atomic\"");
  spill(dir_ / "edited.jsonl", text);
  const Result r = turnstile("shrink edited.jsonl -o out.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("edited.jsonl: the trace does not replay, so it cannot be shrunk: the run diverged"),
            std::string::npos)
      << r.err;
}

TEST_F(ShrinkCli, RefusesBadUsage) {
  Result r = turnstile("shrink in.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  r = turnstile("shrink in.jsonl -o out.jsonl --max-runs 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "--max-runs: expected an integer from 1 to 1000000, got 0\n");
}

// In-process: what shrinking stands on, then the algorithm itself.

TEST(Shrink, ADrawPlanTakesEachValueModuloItsBoundAndZeroPastItsEnd) {
  DrawPlan plan;
  plan.values[static_cast<std::size_t>(DrawSite::store_fault)] = {1999, 7};
  plan.values[static_cast<std::size_t>(DrawSite::workload)] = {5};
  Draws draws(plan);
  EXPECT_EQ(draws.below(DrawSite::store_fault, 1000), 999u);
  // Another site's list is its own: workload's first value is 5 whatever
  // store_fault took before it.
  EXPECT_EQ(draws.below(DrawSite::workload, 3), 2u);
  EXPECT_EQ(draws.below(DrawSite::store_fault, 5), 2u);
  EXPECT_EQ(draws.below(DrawSite::store_fault, 1000), 0u);  // past the end: the simplest
  EXPECT_EQ(draws.below(DrawSite::broker_fault, 1000), 0u);  // an empty list
  EXPECT_FALSE(draws.divergence().has_value());
  // The log holds the values used, so a trace of the run replays exactly.
  const std::vector<Draw> expected = {{DrawSite::store_fault, 1000, 999},
                                      {DrawSite::workload, 3, 2},
                                      {DrawSite::store_fault, 5, 2},
                                      {DrawSite::store_fault, 1000, 0},
                                      {DrawSite::broker_fault, 1000, 0}};
  EXPECT_EQ(draws.log(), expected);
}

TEST(Shrink, TheGuidedStrategyWrapsChoicesAndTakesTheFirstPastItsEnd) {
  StrategySpec spec;
  spec.kind = StrategyKind::guided;
  spec.guided = {1, 7, 2};
  Chooser chooser(spec, 0, 0);
  const std::vector<SimFiberId> three = {2, 5, 9};
  EXPECT_EQ(chooser.choose(three), (Choice{1, 3}));
  EXPECT_EQ(chooser.choose(three), (Choice{1, 3}));  // 7 % 3
  const std::vector<SimFiberId> one = {4};
  EXPECT_EQ(chooser.choose(one), (Choice{0, 1}));  // 2 % 1
  EXPECT_EQ(chooser.choose(three), (Choice{0, 3}));  // past the end
  // Nothing a guided run does is a divergence.
  EXPECT_FALSE(chooser.replay_diverged_at().has_value());
  EXPECT_EQ(strategy_name(spec), "guided");
}


TEST(Shrink, TheCaseOfARecordedRunIsTheSameRunGuided) {
  for (const std::uint64_t seed : {0u, 5u, 11u}) {
    const RunSpec spec = legacy_spec(seed);
    const RunReport recorded = run_world(spec);
    const ShrinkCase c = case_of_run(spec.scenario, spec.gate, recorded);
    const RunReport guided = run_world(guided_spec(c, {}));
    EXPECT_EQ(guided.fingerprint, recorded.fingerprint) << "seed " << seed;
    EXPECT_EQ(guided.draws, recorded.draws) << "seed " << seed;
    EXPECT_EQ(guided.runtime.schedule, recorded.runtime.schedule) << "seed " << seed;
  }
}

TEST(Shrink, KeepsTheRuleAndNeverGrows) {
  const RunSpec spec = legacy_spec(0);
  const RunReport recorded = run_world(spec);
  ASSERT_TRUE(recorded.violation.has_value());
  const std::optional<ShrinkResult> result =
      shrink(case_of_run(spec.scenario, spec.gate, recorded), recorded.violation->rule, {}, ShrinkOptions{});
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->report.violation.has_value());
  EXPECT_EQ(result->report.violation->rule, recorded.violation->rule);
  EXPECT_EQ(result->before, run_size(spec.scenario, recorded));
  EXPECT_LE(result->after.steps, result->before.steps);
  EXPECT_LE(result->after.events, result->before.events);
  EXPECT_LE(result->after.clients, result->before.clients);
  EXPECT_EQ(result->after, run_size(result->shrunk.scenario, result->report));
  // Running the shrunk case again gives the shrunk run.
  EXPECT_EQ(run_world(guided_spec(result->shrunk, {})).fingerprint, result->report.fingerprint);
}

TEST(Shrink, StaysWithinItsRunBudget) {
  const RunSpec spec = legacy_spec(0);
  const RunReport recorded = run_world(spec);
  ASSERT_TRUE(recorded.violation.has_value());
  ShrinkOptions options;
  options.max_runs = 7;
  std::uint64_t calls = 0;
  options.progress = [&calls](const ShrinkProgress& p) {
    ++calls;
    EXPECT_LE(p.runs, p.max_runs);
  };
  const std::optional<ShrinkResult> result = shrink(case_of_run(spec.scenario, spec.gate, recorded), "P1", {}, options);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->runs, 7u);
  EXPECT_EQ(calls, 7u);
  EXPECT_TRUE(result->budget_exhausted);
  EXPECT_LE(result->after.steps, result->before.steps);
}

TEST(Shrink, NothingToShrinkWhenTheRuleDoesNotBreak) {
  RunSpec spec;
  spec.seed = 1;
  const RunReport passed = run_world(spec);
  ASSERT_FALSE(passed.violation.has_value());
  EXPECT_FALSE(shrink(case_of_run(spec.scenario, spec.gate, passed), "P1", {}, ShrinkOptions{}).has_value());
  // A violation of another rule is not this rule's.
  const RunSpec legacy = legacy_spec(0);
  const RunReport p1 = run_world(legacy);
  ASSERT_EQ(p1.violation->rule, "P1");
  EXPECT_FALSE(shrink(case_of_run(legacy.scenario, legacy.gate, p1), "P5", {}, ShrinkOptions{}).has_value());
}

TEST(Shrink, AVariantTraceShrinksInProcessAndReplaysWithItsVariant) {
  // What the corpus tests do: the command with the tests' variants.
  RunSpec spec;
  spec.hooks.make_server = [](const core::RouteConfig& config) {
    return std::make_unique<broken::AnswersTwice>(config);
  };
  const RunReport recorded = run_world(spec);
  ASSERT_TRUE(recorded.violation.has_value());
  ASSERT_EQ(recorded.violation->rule, "P16");
  const fs::path dir = fs::temp_directory_path() / ("turnstile_shrink_variant_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  spill(dir / "in.jsonl", write_trace(header_for(spec, "answers-twice"), recorded));
  cli::ShrinkCommandOptions options;
  options.trace_path = (dir / "in.jsonl").string();
  options.out_path = (dir / "out.jsonl").string();
  std::ostringstream out;
  std::ostringstream err;
  const cli::Variants variants = broken::replay_variants();
  ASSERT_EQ(cli::shrink_command(options, variants, out, err), 0) << err.str();
  std::ostringstream replay_out;
  std::ostringstream replay_err;
  EXPECT_EQ(cli::replay_command(options.out_path, variants, replay_out, replay_err), 1) << replay_err.str();
  EXPECT_NE(replay_out.str().find("verdict: violation of P16"), std::string::npos) << replay_out.str();
  EXPECT_LE(read_ok(dir / "out.jsonl").schedule.size(), recorded.runtime.schedule.size());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace turnstile::sim
