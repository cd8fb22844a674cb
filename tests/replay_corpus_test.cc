// The trace corpus (traces/, ctest label `replay`): every committed trace
// still replays bit for bit with the variant its header names and shows the
// violation its file name promises, and the same run (scenario, choices and
// draws) against the real core breaks no rule. A corrupted corpus trace is
// refused in one line.
//
// traces/<variant>.trace.jsonl is the minimal run showing a broken variant of
// tests/broken_variants.h (found and shrunk by props/sim_rules_prop.cc);
// traces/regression-<what>.trace.jsonl, if any, is a real core bug's run
// that must now pass. docs/testing.md says how to add one.

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_files.h"
#include "cli/sim_commands.h"
#include "sim/shrink.h"
#include "sim/trace.h"
#include "sim/world.h"
#include "tests/broken_variants.h"

namespace turnstile::sim {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSuffix = ".trace.jsonl";
// The variants the corpus must hold, each in at most kMaxSteps steps (small
// enough to read); the others show the rest of the properties failing.
constexpr std::string_view kRequired[] = {
    "legacy-gate",          "rotate-newest-idle", "ignore-request-ids",         "gate-without-g4",
    "retry-ignores-budget", "retry-on-404",       "leak-key-on-broker-failure", "keep-slot-after-failed-resolve"};
constexpr std::size_t kMaxSteps = 20;

bool required(std::string_view name) {
  return std::find(std::begin(kRequired), std::end(kRequired), name) != std::end(kRequired);
}

fs::path corpus_dir() { return fs::path(TURNSTILE_SOURCE_DIR) / "traces"; }

// The corpus's trace names (file names without the suffix), sorted.
std::vector<std::string> corpus() {
  std::vector<std::string> names;
  std::error_code code;
  for (const auto& entry : fs::directory_iterator(corpus_dir(), code)) {
    const std::string file = entry.path().filename().string();
    if (file.size() > kSuffix.size() && file.ends_with(kSuffix)) {
      names.push_back(file.substr(0, file.size() - kSuffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

using turnstile::testing::slurp;

fs::path path_of(const std::string& name) { return corpus_dir() / (name + std::string(kSuffix)); }

class Corpus : public ::testing::TestWithParam<std::string> {};

TEST_P(Corpus, ReplaysWithItsVariantAndShowsItsViolation) {
  const std::string name = GetParam();
  const broken::Variant* variant = broken::find_variant(name);
  ASSERT_TRUE(variant != nullptr || name.starts_with("regression-"))
      << name << ": a corpus trace is named after a variant of tests/broken_variants.h, or regression-<what>";
  std::ostringstream out;
  std::ostringstream err;
  const int code = cli::replay_command(path_of(name).string(), broken::replay_variants(), out, err);
  EXPECT_EQ(err.str(), "");
  EXPECT_NE(out.str().find("reproduced: every step, draw and event, the verdict and the fingerprint match the trace"),
            std::string::npos)
      << out.str();
  if (variant == nullptr) {
    EXPECT_EQ(code, 0) << "a regression trace records the fixed core's pass\n" << out.str();
    return;
  }
  EXPECT_EQ(code, 1) << out.str();
  EXPECT_NE(out.str().find("verdict: violation of " + variant->rule + " "), std::string::npos) << out.str();
}

TEST_P(Corpus, IsSmallAndRecordsTheExpectedVerdict) {
  const std::string name = GetParam();
  auto parsed = read_trace(slurp(path_of(name)), path_of(name).string());
  ASSERT_TRUE(std::holds_alternative<Trace>(parsed)) << std::get<TraceError>(parsed).message;
  const Trace& trace = std::get<Trace>(parsed);
  if (required(name) || name.starts_with("regression-")) {
    EXPECT_LE(trace.schedule.size(), kMaxSteps);
  }
  const broken::Variant* variant = broken::find_variant(name);
  if (variant == nullptr) return;
  ASSERT_TRUE(trace.violation.has_value());
  EXPECT_EQ(trace.violation->rule, variant->rule);
  EXPECT_EQ(trace.header.gate, variant->gate);
  const bool injected = variant->hooks.gate || variant->hooks.make_server;
  EXPECT_EQ(trace.header.variant, injected ? variant->name : "core");
}

TEST_P(Corpus, TheSameRunPassesWithTheRealCore) {
  // The real core changes the run from the first step it decides otherwise,
  // so an exact replay would diverge: run the trace's scenario, choices and
  // draws guided instead (sim/shrink.h), with the atomic gate and no hooks.
  const std::string name = GetParam();
  auto parsed = read_trace(slurp(path_of(name)), path_of(name).string());
  ASSERT_TRUE(std::holds_alternative<Trace>(parsed)) << std::get<TraceError>(parsed).message;
  ShrinkCase c = case_of_trace(std::get<Trace>(parsed));
  c.gate = GateMode::atomic;
  const RunReport report = run_world(guided_spec(c, {}));
  EXPECT_FALSE(report.violation.has_value()) << report.violation->rule << ": " << report.violation->message;
  EXPECT_EQ(report.runtime.outcome, Outcome::finished);
}

INSTANTIATE_TEST_SUITE_P(Traces, Corpus, ::testing::ValuesIn(corpus()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string id = param.param;
                           std::replace(id.begin(), id.end(), '-', '_');
                           return id;
                         });

TEST(CorpusContents, HoldsATraceForEveryVariantTheIssueNames) {
  const std::vector<std::string> names = corpus();
  const std::set<std::string> present(names.begin(), names.end());
  for (const std::string_view name : kRequired) {
    EXPECT_TRUE(present.contains(std::string(name))) << "traces/" << name << ".trace.jsonl is missing";
  }
}

TEST(CorpusContents, ACorruptedTraceIsRefusedInOneLine) {
  const std::vector<std::string> names = corpus();
  ASSERT_FALSE(names.empty());
  const std::string text = slurp(path_of(names.front()));
  const fs::path dir = fs::temp_directory_path() / ("turnstile_corpus_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Damage {
    std::string what;
    std::string text;
  };
  std::vector<Damage> damages;
  // A line lost from the middle, a cut tail, a flipped byte in a step.
  const std::size_t middle = text.find('\n', text.size() / 2);
  const std::size_t next = text.find('\n', middle + 1);
  damages.push_back({"lost line", text.substr(0, middle + 1) + text.substr(next + 1)});
  damages.push_back({"cut tail", text.substr(0, text.size() - 20)});
  std::string flipped = text;
  const std::size_t step = flipped.find("{\"step\":");
  ASSERT_NE(step, std::string::npos);
  flipped[step + 2] = 'X';
  damages.push_back({"flipped byte", flipped});
  for (const Damage& damage : damages) {
    const fs::path path = dir / (names.front() + ".trace.jsonl");
    std::ofstream(path, std::ios::binary) << damage.text;
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(cli::replay_command(path.string(), broken::replay_variants(), out, err), 2) << damage.what;
    const std::string message = err.str();
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << damage.what << ": " << message;
    EXPECT_EQ(message.rfind(path.string() + ":", 0), 0u) << damage.what << ": " << message;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace turnstile::sim
