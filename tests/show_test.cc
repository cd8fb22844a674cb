// `turnstile show` (docs/show.md): the timeline of a legacy race through the
// built binary, the renderings in-process on traces made here, and bad input.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <fmt/format.h>

#include "tests/test_files.h"
#include "cli/lincheck_command.h"
#include "cli/show_command.h"
#include "cli/show_render.h"
#include "sim/checkers.h"
#include "sim/history_format.h"
#include "sim/trace.h"

namespace turnstile::cli {
namespace {

namespace fs = std::filesystem;

using Result = turnstile::testing::CommandResult;
using turnstile::testing::slurp;
using turnstile::testing::spill;
using turnstile::testing::lines_of;

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// Anything a page could load from elsewhere: it must hold none of these.
void expect_self_contained(const std::string& html) {
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("//cdn"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find("<iframe"), std::string::npos);
}

class ShowCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("turnstile_show_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

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

  // The legacy gate's over-admission: seed 0 of the default scenario.
  fs::path legacy_trace() {
    const Result run = turnstile("run --seed 0 --gate legacy --trace-out legacy.trace.jsonl");
    EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
    return dir_ / "legacy.trace.jsonl";
  }

  fs::path dir_;
};

TEST_F(ShowCli, P1_LegacyRaceHtmlHasALanePerClientStoreAndBrokerAndTheRuleFromSpec) {
  legacy_trace();
  const Result show = turnstile("show legacy.trace.jsonl -o legacy.html");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(show.err, "");
  EXPECT_NE(show.out.find("legacy.html"), std::string::npos) << show.out;
  const std::string html = slurp(dir_ / "legacy.html");
  ASSERT_FALSE(html.empty());
  // The default scenario's storm group is c0, c1, c2; they race for two slots.
  for (const std::string lane : {"c0", "c1", "c2", "store", "broker"}) {
    EXPECT_NE(html.find(fmt::format(R"(class="lane-label" data-lane="{}")", lane)), std::string::npos) << lane;
  }
  EXPECT_EQ(count_of(html, R"(class="lane-label")"), 5u);
  // The violation, highlighted, with SPEC's text of P1 and of G14 that it cites.
  EXPECT_NE(html.find(R"(id="violation")"), std::string::npos);
  EXPECT_NE(html.find(R"(id="violation-band")"), std::string::npos);
  EXPECT_NE(html.find("<b>P1 violated</b>"), std::string::npos);
  EXPECT_NE(html.find(std::string(sim::rule_text("P1"))), std::string::npos);
  EXPECT_NE(html.find("G14: Invariant after every operation"), std::string::npos);
  EXPECT_NE(html.find("3 slots held, expected at most 2"), std::string::npos);
  EXPECT_GE(count_of(html, "ev mark violating"), 1u);
  // Hover text: the violating gate step's fields.
  EXPECT_NE(html.find(R"("kind":"gate")"), std::string::npos);
  EXPECT_NE(html.find("<title>"), std::string::npos);
  // Slots held against capacity, over it at the violation.
  EXPECT_NE(html.find(R"(id="held-chart")"), std::string::npos);
  EXPECT_NE(html.find(R"(class="over")"), std::string::npos);
  expect_self_contained(html);
}

TEST_F(ShowCli, PassingTraceWithStreamUrlsIsDrawnAndHoldsNoAddress) {
  // The atomic gate passes seed 0; its answers carry stream URLs, which the
  // hover texts quote without leaving an address in the page's source.
  const Result run = turnstile("run --seed 0 --trace-out atomic.trace.jsonl");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  ASSERT_NE(slurp(dir_ / "atomic.trace.jsonl").find("http://"), std::string::npos);
  const Result show = turnstile("show atomic.trace.jsonl -o atomic.html --text");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const std::string html = slurp(dir_ / "atomic.html");
  EXPECT_NE(html.find(R"(id="verdict" class="pass")"), std::string::npos);
  EXPECT_EQ(html.find(R"(id="violation")"), std::string::npos);
  EXPECT_NE(html.find("http:&#47;/stream.local"), std::string::npos);
  expect_self_contained(html);
  EXPECT_NE(show.out.find("verdict: pass"), std::string::npos);
  EXPECT_EQ(show.out.find(">>"), std::string::npos);
}

TEST_F(ShowCli, P1_TextTimelineHasOneLinePerEventAndMarksTheViolation) {
  legacy_trace();
  const Result show = turnstile("show legacy.trace.jsonl --text");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const std::vector<std::string> lines = lines_of(show.out);
  std::size_t header = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("c0 c1 c2 store broker") != std::string::npos) header = i;
  }
  ASSERT_LT(header, lines.size()) << show.out;
  // The trace has 18 events (0 to 17): one line each after the header.
  EXPECT_EQ(lines.size() - header - 1, 18u) << show.out;
  std::size_t marked = 0;
  for (std::size_t i = header + 1; i < lines.size(); ++i) {
    if (lines[i].rfind(">>", 0) == 0) {
      ++marked;
      EXPECT_NE(lines[i].find("<== P1 violated"), std::string::npos) << lines[i];
      EXPECT_NE(lines[i].find(" 15 "), std::string::npos) << lines[i];
      EXPECT_NE(lines[i].find("3/2!"), std::string::npos) << lines[i];
      EXPECT_NE(lines[i].find('#'), std::string::npos) << lines[i];
    }
  }
  EXPECT_EQ(marked, 1u);
  EXPECT_NE(show.out.find("verdict: violation of P1 at step 26"), std::string::npos);
  EXPECT_NE(show.out.find(fmt::format("rule P1: {}", sim::rule_text("P1"))), std::string::npos);
}

TEST_F(ShowCli, V4_MalformedTraceExitsTwoWithOneLineNamingFileLineAndField) {
  const fs::path trace = legacy_trace();
  std::vector<std::string> lines = lines_of(slurp(trace));
  ASSERT_GT(lines.size(), 60u);
  // Line 60 is a step, draw or event; make its first field's value a string of the wrong kind.
  std::string& line = lines[59];
  const std::size_t colon = line.find(':');
  line = line.substr(0, colon + 1) + "\"x\"" + line.substr(line.find(',', colon));
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  spill(dir_ / "bad.jsonl", text);
  const Result show = turnstile("show bad.jsonl -o bad.html");
  EXPECT_EQ(show.exit_code, 2);
  EXPECT_EQ(count_of(show.err, "\n"), 1u) << show.err;
  EXPECT_EQ(show.err.rfind("bad.jsonl:60: field '", 0), 0u) << show.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad.html"));
}

TEST_F(ShowCli, V4_GarbageEmptyAndUnknownInputsExitTwoWithOneLine) {
  spill(dir_ / "garbage.jsonl", "this is not json\n");
  spill(dir_ / "empty.jsonl", "");
  spill(dir_ / "other.jsonl", "{\"hello\":1}\n");
  spill(dir_ / "history.jsonl",
        "{\"process\":\"w1\",\"call\":1,\"ret\":2,\"op\":{\"op\":\"admit\",\"pool\":\"p\",\"client\":\"c1\","
        "\"episode\":\"e\",\"request\":\"r1\",\"issued_at\":1,\"now\":1},\"out\":{\"outcome\":\"admitted\",\"token\":"
        "\"1\",\"victim\":null,\"held\":1}}\n{\"process\":\"w2\",\"call\":-5}\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage.jsonl", "garbage.jsonl:1: not valid JSON"},
      {"empty.jsonl", "empty.jsonl:1: "},
      {"other.jsonl", "other.jsonl:1: field 'turnstile_trace': expected"},
      {"history.jsonl", "history.jsonl:2: field '"},
      {"missing.jsonl", "missing.jsonl: cannot open"},
  };
  for (const auto& [file, prefix] : cases) {
    const Result show = turnstile("show " + file + " --text");
    EXPECT_EQ(show.exit_code, 2) << file;
    EXPECT_EQ(show.out, "") << file;
    EXPECT_EQ(count_of(show.err, "\n"), 1u) << file << ": " << show.err;
    EXPECT_EQ(show.err.rfind(prefix, 0), 0u) << file << ": " << show.err;
  }
}

TEST_F(ShowCli, BadUsageExitsTwo) {
  legacy_trace();
  for (const std::string args : {"show legacy.trace.jsonl", "show legacy.trace.jsonl --text --detail 3",
                                 "show legacy.trace.jsonl --text --around 18", "show"}) {
    const Result show = turnstile(args);
    EXPECT_EQ(show.exit_code, 2) << args;
    EXPECT_EQ(count_of(show.err, "\n"), 1u) << args << ": " << show.err;
  }
}

TEST_F(ShowCli, P14_HistoryHighlightsTheOperationLincheckGotStuckOn) {
  // SPEC H: two admits into one slot, both admitted: not linearizable.
  spill(dir_ / "h.jsonl",
        "{\"process\":\"setup\",\"call\":0,\"ret\":10,\"op\":{\"op\":\"config\",\"pool\":\"p\",\"capacity\":1,"
        "\"ttl\":30000,\"grace\":15000},\"out\":{\"outcome\":\"configured\"}}\n"
        "{\"process\":\"w1\",\"call\":100,\"ret\":300,\"op\":{\"op\":\"admit\",\"pool\":\"p\",\"client\":\"c1\","
        "\"episode\":\"tt1\",\"request\":\"r1\",\"issued_at\":1000,\"now\":1000},\"out\":{\"outcome\":\"admitted\","
        "\"token\":\"1\",\"victim\":null,\"held\":1}}\n"
        "{\"process\":\"w2\",\"call\":150,\"ret\":350,\"op\":{\"op\":\"admit\",\"pool\":\"p\",\"client\":\"c2\","
        "\"episode\":\"tt1\",\"request\":\"r2\",\"issued_at\":1000,\"now\":1000},\"out\":{\"outcome\":\"admitted\","
        "\"token\":\"1\",\"victim\":null,\"held\":1}}\n");
  const Result html = turnstile("show h.jsonl -o h.html");
  ASSERT_EQ(html.exit_code, 0) << html.err;
  const std::string page = slurp(dir_ / "h.html");
  for (const std::string lane : {"setup", "w1", "w2"}) {
    EXPECT_NE(page.find(fmt::format(R"(data-lane="{}")", lane)), std::string::npos) << lane;
  }
  EXPECT_NE(page.find("<b>P14 violated</b> at line 3"), std::string::npos);
  EXPECT_NE(page.find(std::string(sim::rule_text("P14"))), std::string::npos);
  EXPECT_EQ(count_of(page, "ev bar violating"), 1u);
  expect_self_contained(page);

  const Result text = turnstile("show h.jsonl --text");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("<== P14 violated"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("w2 returns from admit c2"), std::string::npos) << text.out;
}

TEST_F(ShowCli, P1_CheckTraceShowsTheLegacyReadToWriteWindow) {
  const Result check = turnstile("check --gate legacy --clients 3 --capacity 2 --rounds 1 --trace-out check.jsonl");
  ASSERT_EQ(check.exit_code, 1) << check.out << check.err;
  const Result show = turnstile("show check.jsonl --text");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("model checker trace"), std::string::npos);
  EXPECT_NE(show.out.find("<== P1 violated"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("admit_read"), std::string::npos);
  EXPECT_NE(show.out.find("admit_write"), std::string::npos);
  const Result html = turnstile("show check.jsonl -o check.html");
  ASSERT_EQ(html.exit_code, 0) << html.err;
  const std::string page = slurp(dir_ / "check.html");
  // Each legacy admit is a bar from its read to its write on its client's lane.
  EXPECT_GE(count_of(page, "ev bar"), 3u);
  EXPECT_NE(page.find(R"(data-lane="c3")"), std::string::npos);
  expect_self_contained(page);
}

// ------------------------------------------------------------------ in-process

// A trace made here: `requests` admits of clients c0..c7 through one
// instance, every tenth with a store fault, and the last admit over capacity
// (the violation P1), with one event per scheduler step.
sim::Trace made_trace(std::uint64_t requests) {
  sim::Trace trace;
  trace.header.scenario = sim::default_scenario();
  trace.header.scenario.max_events = 10'000'000;
  trace.header.scenario.max_steps = 10'000'000;
  trace.header.seed = 7;
  trace.header.strategy = "random";
  trace.header.gate = sim::GateMode::legacy;
  std::uint64_t index = 0;
  auto add = [&](core::Ms at, sim::EventBody body) {
    trace.events.push_back(sim::Event{index, index, at, std::move(body)});
    ++index;
  };
  for (std::uint64_t r = 0; r < requests; ++r) {
    const auto at = static_cast<core::Ms>(r * 10);
    const std::string client = fmt::format("c{}", r % 8);
    const core::WaiterId waiter = r + 1;
    const core::FlightId flight = r + 1;
    core::StreamRequest request{"p", client, "tt1:1:1", fmt::format("{}.r{}", client, r), at};
    add(at, sim::RequestSent{0, waiter, request});
    add(at, sim::FlightStarted{0, flight, core::FlightKey{"p", client, "tt1:1:1"}});
    core::Op op;
    op.client = client;
    op.episode = "tt1:1:1";
    op.request = request.request;
    op.issued_at = at;
    op.now = at;
    add(at, sim::CallStarted{0, flight, sim::Dependency::store, 1, 1, op, at + 300});
    if (r % 10 == 3) add(at, sim::FaultFired{"store.busy", "BUSY"});
    const bool last = r + 1 == requests;
    sim::GateStep step;
    step.pool = "p";
    step.op = op;
    step.config.capacity = 2;
    step.decision = core::Decision{core::Outcome::admitted, r + 1, "", last ? 3 : 1};
    step.legacy = true;
    add(at, step);
    if (last) {
      trace.violation = sim::Violation{"P1", index - 1, index - 1, at, "3 slots held, expected at most 2"};
      break;
    }
    add(at + 1, sim::CallEnded{0, flight, sim::Dependency::store, 1, core::OutcomeClass::success, std::nullopt, false});
    add(at + 2, sim::ResponseReceived{0, waiter, core::Response::denial(core::DenialReason::capacity), 0});
    add(at + 2, sim::FlightEnded{0, flight});
  }
  for (std::uint64_t s = 0; s < index; ++s) {
    trace.schedule.push_back(sim::StepRecord{s, 1, static_cast<core::Ms>(s), sim::Choice{0, 1}, s});
  }
  trace.outcome = "stopped";
  return trace;
}

TEST(ShowRender, P1_LargeTraceSummarisesAroundTheViolationAndStaysSmall) {
  // About 100,000 events and steps.
  const sim::Trace trace = made_trace(14'300);
  ASSERT_GE(trace.events.size(), 100'000u);
  const ShowModel model = trace_model(trace, "made.jsonl", ShowLimits{});
  ASSERT_TRUE(model.violation.has_value());
  // The window is drawn in full, the rest summarised in at most 60 columns a side.
  EXPECT_LE(model.columns.size(), kDefaultShowDetail + 120);
  EXPECT_FALSE(model.summary_note.empty());
  const ShowColumn& violating = model.columns[model.violation->column];
  EXPECT_FALSE(violating.summary);
  EXPECT_EQ(violating.first, trace.violation->event_index);
  std::uint64_t counted = 0;
  for (const ShowColumn& column : model.columns) counted += column.count;
  EXPECT_EQ(counted, trace.events.size());
  // Summaries mark the faults they hold.
  bool summarised_fault = false;
  for (const ShowMark& mark : model.marks) {
    summarised_fault = summarised_fault || (mark.shape == MarkShape::fault && model.columns[mark.column].summary);
  }
  EXPECT_TRUE(summarised_fault);

  const std::string html = render_html(model);
  EXPECT_LT(html.size(), 10u * 1000 * 1000);
  EXPECT_NE(html.find(R"(id="violation")"), std::string::npos);
  EXPECT_NE(html.find(R"(id="summary-note")"), std::string::npos);
  expect_self_contained(html);
  const std::string text = render_text(model);
  EXPECT_LT(text.size(), 2u * 1000 * 1000);
  EXPECT_NE(text.find("<== P1 violated"), std::string::npos);
}

TEST(ShowRender, AroundMovesTheWindow) {
  const sim::Trace trace = made_trace(2'000);
  ShowLimits limits;
  limits.detail = 100;
  limits.around = 50;
  const ShowModel model = trace_model(trace, "made.jsonl", limits);
  // Events 0..99 in full (the window is clamped at the start), the rest after.
  EXPECT_FALSE(model.columns.front().summary);
  EXPECT_EQ(model.columns.front().first, 0u);
  EXPECT_TRUE(model.columns.back().summary);
  EXPECT_TRUE(model.violation.has_value());
  EXPECT_TRUE(model.columns[model.violation->column].summary);
}

TEST(ShowRender, SameModelGivesTheSameBytes) {
  const sim::Trace trace = made_trace(300);
  const ShowModel a = trace_model(trace, "made.jsonl", ShowLimits{});
  const ShowModel b = trace_model(trace, "made.jsonl", ShowLimits{});
  EXPECT_EQ(render_html(a), render_html(b));
  EXPECT_EQ(render_text(a), render_text(b));
}

TEST(ShowRender, HtmlEscapesEverythingTakenFromTheInput) {
  ShowModel model;
  model.source = "<script>alert(1)</script>.jsonl";
  model.kind = "simulator trace";
  model.lanes = {{"c<1>", LaneKind::client}, {"store", LaneKind::store}};
  ShowColumn column;
  column.text = "a <b> & \"c\"";
  column.detail = "</title><script>bad()</script>";
  model.columns = {column};
  model.marks = {{0, 0, MarkShape::tick, Tone::neutral, "x", "</title><script>bad()</script>", false}};
  const std::string html = render_html(model);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<script>bad"), std::string::npos);
  EXPECT_EQ(html.find("</title><script>"), std::string::npos);
  EXPECT_NE(html.find("c&lt;1&gt;"), std::string::npos);
}

TEST(ShowRender, RuleTextQuotesSpecAndTheRuleItCites) {
  EXPECT_EQ(spec_rule_text("P1").rfind(std::string(sim::rule_text("P1")), 0), 0u);
  EXPECT_NE(spec_rule_text("P1").find("G14: Invariant after every operation"), std::string::npos);
  EXPECT_NE(spec_rule_text("P5").find("G7: Rotation"), std::string::npos);
  EXPECT_NE(spec_rule_text("G14").find("Invariant after every operation"), std::string::npos);
  EXPECT_EQ(spec_rule_text("P99"), "");
}

TEST(ShowRender, LanesAreInTheOrderAPersonCounts) {
  EXPECT_TRUE(natural_less("c2", "c10"));
  EXPECT_FALSE(natural_less("c10", "c2"));
  EXPECT_TRUE(natural_less("c0", "c1"));
  EXPECT_TRUE(natural_less("a", "b"));
  EXPECT_FALSE(natural_less("c1", "c1"));
  EXPECT_TRUE(natural_less("c1", "c1x"));
  EXPECT_TRUE(natural_less("w9.a", "w10"));
}

TEST(ShowRender, DetectsTheKindOfInputFromItsFirstLine) {
  EXPECT_EQ(std::get<ShowInput>(detect_input(R"({"turnstile_trace":1})", "t")), ShowInput::trace);
  EXPECT_EQ(std::get<ShowInput>(detect_input(R"({"turnstile_check_trace":1})", "t")), ShowInput::check_trace);
  EXPECT_EQ(std::get<ShowInput>(detect_input(R"({"process":"w1"})", "t")), ShowInput::history);
  EXPECT_EQ(std::get<std::string>(detect_input("[1]", "t")), "t:1: expected a JSON object");
}

}  // namespace
}  // namespace turnstile::cli
