// Every P rule of SPEC (but P14, which lincheck owns) as a RapidCheck
// property over whole simulated runs of the real core: RapidCheck generates
// the scenario, the draw plan (every fault, latency and workload decision)
// and the scheduler's choices together (props/sim_gen.h), and shrinks all
// three to the smallest run that still breaks the rule.
//
// A failing property writes its counterexample as a trace into
// $TURNSTILE_PROP_TRACES_DIR (default prop-traces/ under the working
// directory), named after the rule, and prints the path next to RapidCheck's
// reproduce string; `turnstile replay` then runs it again, and
// `turnstile show` draws it. The last failing case RapidCheck evaluates is
// the shrunk one, so the file is overwritten on every failure.
//
// Each property is also run against a deliberately broken implementation
// (tests/broken_variants.h) and must catch it: those TESTs report how many
// cases that took and the run's size before and after shrinking.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/sim_commands.h"
#include "props/sim_gen.h"
#include "sim/history.h"
#include "sim/shrink.h"
#include "sim/trace.h"
#include "sim/world.h"
#include "tests/broken_variants.h"

namespace turnstile::props {
namespace {

// What a property runs: the real core, or a broken variant.
struct Subject {
  std::string name = "core";            // for file names and messages
  std::string header_variant = "core";  // what a trace header says
  sim::GateMode gate = sim::GateMode::atomic;
  sim::WorldHooks hooks;
};

Subject real_core() { return Subject{}; }

Subject subject_of(const broken::Variant& variant) {
  Subject s;
  s.name = variant.name;
  // The legacy gate is a gate mode of the core, not injected code.
  s.header_variant = (variant.hooks.gate || variant.hooks.make_server) ? variant.name : "core";
  s.gate = variant.gate;
  s.hooks = variant.hooks;
  return s;
}

// One failing case, as a TEST reports it.
struct Failure {
  std::string rule;
  sim::RunSize size;
  std::string trace_path;
};

// What the property saw across one rc::check: how many cases it ran before
// the first failure, the first failure (RapidCheck's unshrunk case) and the
// last one (the shrunk case).
struct Catches {
  std::uint64_t cases = 0;
  std::uint64_t cases_before_first = 0;
  std::optional<Failure> first;
  std::optional<Failure> last;

  void note(Failure failure) {
    if (!first) {
      first = failure;
      cases_before_first = cases;
    }
    last = std::move(failure);
  }
};

std::filesystem::path traces_dir() {
  const char* dir = std::getenv("TURNSTILE_PROP_TRACES_DIR");
  return (dir != nullptr && *dir != '\0') ? std::filesystem::path(dir) : std::filesystem::path("prop-traces");
}

// The name a property's counterexample is filed under.
std::string stem_of(std::string_view rule, const Subject& subject) {
  return subject.name == "core" ? std::string(rule) : fmt::format("{}-{}", rule, subject.name);
}

// Writes the run as a trace; returns its path, or why it could not.
std::string write_counterexample(std::string_view property, const Subject& subject, const sim::Scenario& scenario,
                                 const sim::RunReport& report) {
  sim::TraceHeader header;
  header.version = std::string(cli::kTurnstileVersion);
  header.scenario = scenario;
  header.seed = 0;
  header.strategy = "guided";
  header.gate = subject.gate;
  header.variant = subject.header_variant;
  std::error_code code;
  // Absolute, so the path printed works from any directory (ctest runs a
  // property in build/props).
  const std::filesystem::path dir = std::filesystem::absolute(traces_dir(), code);
  const std::filesystem::path path = dir / (std::string(property) + ".trace.jsonl");
  std::filesystem::create_directories(dir, code);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << sim::write_trace(header, report);
  file.close();
  if (code || !file) return fmt::format("(could not write {})", path.string());
  return path.string();
}

void log_trace(const std::string& path, const Subject& subject) {
  RC_LOG() << "trace: " << path << "\n";
  if (subject.header_variant == "core") {
    RC_LOG() << "replay it: " << TURNSTILE_BINARY << " replay " << path << "\n";
  } else {
    RC_LOG() << "variant " << subject.header_variant << " is the test suite's (tests/broken_variants.h)\n";
  }
}

// The last failing case of the running test, kept for the shrink that
// follows RapidCheck's (see PostShrink). The last failure RapidCheck
// evaluates is its shrunk counterexample.
struct Pending {
  std::string property;  // the file name's stem: "P5", "P5-rotate-newest-idle"
  std::string rule;
  Subject subject;
  sim::ShrinkCase c;
  sim::RunSize size;
};

std::optional<Pending>& pending() {
  static std::optional<Pending> last;
  return last;
}

// Runs of the second shrink, `turnstile shrink`'s algorithm (sim/shrink.h),
// and the least capacity it may lower a pool to: the generator's.
constexpr std::uint64_t kPostShrinkRuns = 2000;
constexpr std::int64_t kLeastCapacity = 2;

// Shrinks RapidCheck's counterexample further with sim::shrink, which can
// also drop single choices and draws RapidCheck's shrinking of a whole case
// cannot reach, and overwrites its trace. Returns the final failure.
std::optional<Failure> post_shrink(const Pending& p) {
  sim::ShrinkOptions options;
  options.max_runs = kPostShrinkRuns;
  options.min_capacity = kLeastCapacity;
  const std::optional<sim::ShrinkResult> result = sim::shrink(p.c, p.rule, p.subject.hooks, options);
  if (!result) return std::nullopt;
  const std::string path = write_counterexample(p.property, p.subject, result->shrunk.scenario, result->report);
  return Failure{p.rule, result->after, path};
}

// After each test of this file: if a property failed, shrink its
// counterexample further and say where the trace is, after RapidCheck's
// own report and reproduce string.
class PostShrink final : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& /*info*/) override {
    std::optional<Pending> p = std::exchange(pending(), std::nullopt);
    if (!p) return;
    const std::optional<Failure> final = post_shrink(*p);
    if (!final) return;
    std::cout << fmt::format("shrunk further (turnstile shrink's algorithm): from {} to {}\ntrace: {}\n",
                             sim::describe_size(p->size), sim::describe_size(final->size), final->trace_path);
    if (p->subject.header_variant == "core") {
      std::cout << "replay it: " << TURNSTILE_BINARY << " replay " << final->trace_path << "\n";
      std::cout << "read it:   " << TURNSTILE_BINARY << " show " << final->trace_path << " --text\n";
    }
  }
};

const bool kPostShrinkInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new PostShrink);
  return true;
}();

// The body of every rule's property: a generated run must not break `rule`.
// A run that breaks another rule first says nothing about this one (that
// rule's own property owns it), so the case is discarded; a run that could
// not end normally (rule RUN: stuck, a limit, a failed fiber) fails every
// property, since it proves nothing.
void rule_holds(std::string_view rule, const Focus& focus, const Subject& subject, Catches* catches) {
  const SimCase c = *gen_case(focus);
  if (catches != nullptr) ++catches->cases;
  const sim::RunReport report = sim::run_world(run_spec(c, subject.gate, subject.hooks));
  if (!report.violation) return;
  const sim::Violation& v = *report.violation;
  if (v.rule != rule && v.rule != "RUN") RC_DISCARD("the run broke " + v.rule + " first; its own property checks it");
  const std::string stem = stem_of(rule, subject);
  const std::string path = write_counterexample(stem, subject, c.scenario, report);
  const sim::RunSize size = sim::run_size(c.scenario, report);
  if (catches != nullptr) catches->note(Failure{v.rule, size, path});
  pending() = Pending{stem, v.rule, subject, sim::case_of_run(c.scenario, subject.gate, report), size};
  log_trace(path, subject);
  RC_FAIL(fmt::format("violation of {} at step {}, {} ms (event {}): {}", v.rule, v.step, v.at_ms, v.event_index,
                      v.message));
}

// The first event at which two histories differ, or their common length.
std::size_t first_difference(const sim::History& a, const sim::History& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (sim::event_hash(a.events()[i]) != sim::event_hash(b.events()[i])) return i;
  }
  return n;
}

// P3: the same case, run twice, gives the same run: schedule, draws, every
// event and the fingerprint.
void same_inputs_same_run(const Focus& focus, const Subject& subject, Catches* catches) {
  const SimCase c = *gen_case(focus);
  if (catches != nullptr) ++catches->cases;
  const sim::RunSpec spec = run_spec(c, subject.gate, subject.hooks);
  const sim::RunReport a = sim::run_world(spec);
  const sim::RunReport b = sim::run_world(spec);
  const std::size_t differ = first_difference(a.history, b.history);
  if (a.fingerprint == b.fingerprint && a.runtime.schedule == b.runtime.schedule && a.draws == b.draws &&
      differ == a.history.size() && a.history.size() == b.history.size()) {
    return;
  }
  const std::string path = write_counterexample(stem_of("P3", subject), subject, c.scenario, a);
  if (catches != nullptr) catches->note(Failure{"P3", sim::run_size(c.scenario, a), path});
  log_trace(path, subject);
  RC_FAIL(
      fmt::format("the same inputs ran twice gave fingerprints {:016x} and {:016x}; the histories first differ "
                  "at event {} ({} and {} events)",
                  a.fingerprint, b.fingerprint, differ, a.history.size(), b.history.size()));
}

// What the generator favours. Every focus keeps every behaviour and fault
// family possible; a focus only weighs them.
Focus any_run() { return Focus{}; }

// Coalescing needs identical requests at once: bursts, weighed double.
Focus bursts() {
  Focus f;
  f.behaviours = {sim::Behaviour::burst, sim::Behaviour::burst, sim::Behaviour::watch, sim::Behaviour::storm,
                  sim::Behaviour::zap};
  return f;
}

// ---------------------------------------------------------------------------
// The properties, over the real core.

RC_GTEST_PROP(SimRules, P1_SlotsHeldNeverExceedCapacity, ()) { rule_holds("P1", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P2_AtMostOneSessionPerClient, ()) { rule_holds("P2", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P3_SameInputsGiveTheSameRun, ()) { same_inputs_same_run(any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P4_LiveSessionsAreNeverRotated, ()) { rule_holds("P4", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P5_TheVictimIsTheOldestIdle, ()) { rule_holds("P5", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P6_BlockedOnlyWhenFullWithNoIdleSession, ()) {
  rule_holds("P6", any_run(), real_core(), nullptr);
}
RC_GTEST_PROP(SimRules, P7_AnOwnerIsNeverBlocked, ()) { rule_holds("P7", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P8_AReplayedRequestGetsItsDecision, ()) { rule_holds("P8", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P9_GoneSessionsArePruned, ()) { rule_holds("P9", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P10_DeadTokensStayDead, ()) { rule_holds("P10", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P11_RetriesKeepR1ToR6, ()) { rule_holds("P11", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P12_CoalescingKeepsC1ToC3, ()) { rule_holds("P12", bursts(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P13_NoFlightLeaks, ()) { rule_holds("P13", bursts(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P15_AFailedResolveReleases, ()) { rule_holds("P15", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P16_EveryRequestAnsweredOnceInTime, ()) { rule_holds("P16", any_run(), real_core(), nullptr); }
RC_GTEST_PROP(SimRules, P17_TheLastIntentWins, ()) { rule_holds("P17", any_run(), real_core(), nullptr); }

// ---------------------------------------------------------------------------
// Each property catches a broken implementation, and shrinks what it found.

// The most scheduler steps a shrunk counterexample may take (the issue's
// acceptance: small enough to read).
constexpr std::uint64_t kMaxShrunkSteps = 20;

void report_catch(const std::string& name, const std::string& rule, const Catches& catches, const Failure& final) {
  if (!catches.first || !catches.last) return;
  std::cout << fmt::format(
      "[ caught   ] {} ({}): failed at case {}\n  found:            {}\n  RapidCheck shrunk: {}\n  "
      "shrunk further:    {}\n  rule {}, trace {}\n",
      name, rule, catches.cases_before_first, sim::describe_size(catches.first->size),
      sim::describe_size(catches.last->size), sim::describe_size(final.size), final.rule, final.trace_path);
}

// Whether the acceptance (at most kMaxShrunkSteps steps) applies:
// it names the legacy gate, the gate rotating the newest idle session, the
// gate ignoring request ids, the gate without G4, the retry ignoring the
// budget, the retry on a 404, the coalescer leaking its key and the flow
// keeping its slot. The other variants only show their property can fail.
enum class Size { small, any };

void expect_caught(std::string_view variant_name, const Focus& focus, Size required = Size::any) {
  const broken::Variant* variant = broken::find_variant(variant_name);
  ASSERT_NE(variant, nullptr) << variant_name;
  const Subject subject = subject_of(*variant);
  Catches catches;
  const std::string rule = variant->rule;
  const bool held =
      rc::check(fmt::format("{} with {}", rule, variant->name), [&] { rule_holds(rule, focus, subject, &catches); });
  EXPECT_FALSE(held) << rule << " did not catch " << variant->name;
  ASSERT_TRUE(catches.last.has_value());
  const std::optional<Pending> p = std::exchange(pending(), std::nullopt);
  ASSERT_TRUE(p.has_value());
  const std::optional<Failure> final = post_shrink(*p);
  ASSERT_TRUE(final.has_value());
  report_catch(variant->name, rule, catches, *final);
  EXPECT_EQ(final->rule, rule);
  if (required == Size::small) {
    EXPECT_LE(final->size.steps, kMaxShrunkSteps) << final->trace_path;
  }
  // RapidCheck shrinks by its own measure (which may keep a run as long);
  // the second shrink never makes one longer.
  EXPECT_LE(final->size.steps, catches.last->size.steps);
}

TEST(SimRulesCatch, P1_LegacyGate) { expect_caught("legacy-gate", any_run(), Size::small); }
TEST(SimRulesCatch, P2_SecondSession) { expect_caught("second-session", any_run()); }
TEST(SimRulesCatch, P3_GateWithAHiddenClock) {
  Subject subject;
  subject.name = "gate-hidden-clock";
  subject.header_variant = "gate-hidden-clock";
  subject.hooks.gate = broken::gate_with_hidden_clock();
  Catches catches;
  const bool held = rc::check("P3 with a gate that keeps a clock across runs",
                              [&] { same_inputs_same_run(any_run(), subject, &catches); });
  EXPECT_FALSE(held);
  ASSERT_TRUE(catches.last.has_value());
  std::cout << fmt::format("[ caught   ] {} (P3): failed at case {}; trace {}\n", subject.name,
                           catches.cases_before_first, catches.last->trace_path);
}
TEST(SimRulesCatch, P4_RotateLive) { expect_caught("rotate-live", any_run()); }
TEST(SimRulesCatch, P5_RotateNewestIdle) { expect_caught("rotate-newest-idle", any_run(), Size::small); }
TEST(SimRulesCatch, P6_NeverRotate) { expect_caught("never-rotate", any_run()); }
TEST(SimRulesCatch, P7_BlockOwner) { expect_caught("block-owner", any_run()); }
TEST(SimRulesCatch, P8_IgnoreRequestIds) { expect_caught("ignore-request-ids", any_run(), Size::small); }
TEST(SimRulesCatch, P9_NoPrune) { expect_caught("no-prune", any_run()); }
TEST(SimRulesCatch, P10_TokenCounterReset) { expect_caught("token-counter-reset", any_run()); }
TEST(SimRulesCatch, P11_RetryIgnoresBudget) { expect_caught("retry-ignores-budget", any_run(), Size::small); }
TEST(SimRulesCatch, P11_RetryOn404) { expect_caught("retry-on-404", any_run(), Size::small); }
TEST(SimRulesCatch, P12_SplitAnswers) { expect_caught("split-answers", bursts()); }
TEST(SimRulesCatch, P12_LeakKeyOnBrokerFailure) { expect_caught("leak-key-on-broker-failure", any_run(), Size::small); }
TEST(SimRulesCatch, P13_LeakFlightWithoutWaiters) { expect_caught("leak-flight-without-waiters", bursts()); }
TEST(SimRulesCatch, P15_KeepSlotAfterFailedResolve) {
  expect_caught("keep-slot-after-failed-resolve", any_run(), Size::small);
}
TEST(SimRulesCatch, P16_AnswersTwice) { expect_caught("answers-twice", any_run()); }
TEST(SimRulesCatch, P17_GateWithoutG4) { expect_caught("gate-without-g4", any_run(), Size::small); }

}  // namespace
}  // namespace turnstile::props
