// Traces (DESIGN.md "Traces", docs/simulator.md): what write_trace writes,
// read_trace reads back field for field, and SPEC V4 for the reader: a
// truncated or corrupted trace is one line naming the file, the line and the
// field, never a crash.

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "sim/trace.h"

namespace turnstile::sim {
namespace {

constexpr std::uint64_t kBigSeed = (std::uint64_t{1} << 63) + 5;

core::Decision decision(core::Outcome outcome, core::Token token, std::string victim, std::int64_t held) {
  core::Decision d;
  d.outcome = outcome;
  d.token = token;
  d.victim = std::move(victim);
  d.held = held;
  return d;
}

core::Op admit_op() {
  core::Op op;
  op.kind = core::OpKind::admit;
  op.client = "c1";
  op.episode = "tt1:1:1";
  op.request = "r\"1\n";  // a string that needs escaping
  op.issued_at = 1000;
  op.now = 1001;
  return op;
}

// A report with every kind of event, draws whose values pass 2^53, steps,
// an event after the last step, and a violation.
RunReport hand_built_report() {
  RunReport report;
  report.history = History(100);
  const core::StreamRequest request{"p", "c1", "tt1:1:1", "r1", 1000};
  core::PoolState before;
  before.last_now = 900;
  before.last_token = 3;
  core::Session session;
  session.client = "c0";
  session.episode = "e0";
  session.token = 3;
  session.admitted_at = 100;
  session.last_seen = 800;
  session.last_request = "r0";
  session.last_issued = 99;
  session.last_decision = decision(core::Outcome::admitted, 3, "", 1);
  before.sessions.push_back(session);
  core::PoolState after = before;
  after.last_now = 1001;
  after.last_token = 4;
  session.client = "c1";
  session.token = 4;
  session.last_decision = decision(core::Outcome::rotated, 4, "c9", 2);
  after.sessions.push_back(session);

  auto& h = report.history;
  EXPECT_TRUE(h.append(0, 0, FaultsHealed{}));
  EXPECT_TRUE(h.append(1, 1000, RequestSent{1, 7, request}));
  EXPECT_TRUE(h.append(1, 1000, FlightStarted{1, 2, core::FlightKey{"p", "c1", "tt1:1:1"}}));
  CallStarted call;
  call.instance = 1;
  call.flight = 2;
  call.dependency = Dependency::store;
  call.call = 1;
  call.attempt = 1;
  call.op = admit_op();
  call.deadline = 1300;
  EXPECT_TRUE(h.append(1, 1000, call));
  EXPECT_TRUE(h.append(2, 1001,
                       GateStep{"p", admit_op(), decision(core::Outcome::rotated, 4, "c9", 2),
                                core::GateConfig{2, 3000, 1500}, before, after, true}));
  CallEnded ended;
  ended.instance = 1;
  ended.flight = 2;
  ended.dependency = Dependency::broker;
  ended.call = 2;
  ended.outcome_class = core::OutcomeClass::transient;
  ended.retry_after_ms = 400;
  ended.timed_out = true;
  EXPECT_TRUE(h.append(2, 1010, ended));
  ended.retry_after_ms.reset();
  ended.outcome_class = core::OutcomeClass::permanent;
  ended.timed_out = false;
  EXPECT_TRUE(h.append(2, 1011, ended));
  EXPECT_TRUE(h.append(2, 1012, FaultFired{"broker.status", "503 retry-after 400"}));
  EXPECT_TRUE(h.append(2, 1013, StoreRestarted{}));
  EXPECT_TRUE(h.append(2, 1014, ResponseReceived{1, 7,
                                                 core::Response::granted({core::Stream{"a", "http://x/a?session=4"},
                                                                          core::Stream{"b", "http://x/b"}}),
                                                 4}));
  EXPECT_TRUE(h.append(2, 1015, ResponseReceived{0, 8, core::Response::denial(core::DenialReason::resolve_failed),
                                                 core::kNoToken}));
  EXPECT_TRUE(h.append(2, 1016, WaiterLeft{0, 9}));
  EXPECT_TRUE(h.append(2, 1017, FlightEnded{1, 2}));
  EXPECT_TRUE(h.append(9, 1018, FaultsHealed{}));  // after the last recorded step

  report.draws = {Draw{DrawSite::swarm, 1000, 17}, Draw{DrawSite::jitter, std::numeric_limits<std::uint64_t>::max(), kBigSeed},
                  Draw{DrawSite::store_fault, 1, 0}};
  report.runtime.schedule = {
      StepRecord{0, 3, 0, Choice{1, 4}, 0xff},
      StepRecord{1, 0, 1000, Choice{0, 1}, 0x0123456789abcdefULL},
      StepRecord{2, 5, 1001, Choice{2, 3}, 0xfedcba9876543210ULL},
  };
  report.runtime.steps = 3;
  report.runtime.outcome = Outcome::stopped;
  report.violation = Violation{"P1", 4, 2, 1001, "slots held 3 > capacity 2 after admit of c1"};
  report.fingerprint = 0xdeadbeef00000001ULL;
  return report;
}

TraceHeader header() {
  TraceHeader h;
  h.version = "0.1.0";
  h.scenario = default_scenario();
  h.seed = kBigSeed;
  h.strategy = "pct:3";
  h.gate = GateMode::legacy;
  h.variant = "core";
  return h;
}

Trace read_ok(const std::string& text) {
  auto result = read_trace(text, "t.jsonl");
  if (auto* error = std::get_if<TraceError>(&result)) {
    ADD_FAILURE() << error->message;
    return {};
  }
  return std::get<Trace>(std::move(result));
}

std::string error_of(const std::string& text) {
  auto result = read_trace(text, "t.jsonl");
  if (std::holds_alternative<Trace>(result)) return "(accepted)";
  return std::get<TraceError>(result).message;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

TEST(Trace, RoundTripKeepsEveryField) {
  const RunReport report = hand_built_report();
  const std::string text = write_trace(header(), report);
  const Trace trace = read_ok(text);

  EXPECT_EQ(trace.header.format, kTraceFormat);
  EXPECT_EQ(trace.header.version, "0.1.0");
  EXPECT_EQ(scenario_to_json(trace.header.scenario), scenario_to_json(default_scenario()));
  EXPECT_EQ(trace.header.seed, kBigSeed);
  EXPECT_EQ(trace.header.strategy, "pct:3");
  EXPECT_EQ(trace.header.gate, GateMode::legacy);
  EXPECT_EQ(trace.header.variant, "core");
  EXPECT_EQ(trace.schedule, report.runtime.schedule);
  EXPECT_EQ(trace.draws, report.draws);
  ASSERT_EQ(trace.events.size(), report.history.size());
  for (std::size_t i = 0; i < trace.events.size(); ++i) {
    const Event& got = trace.events[i];
    const Event& want = report.history.events()[i];
    // event_hash covers every field of every kind, independently of the JSON.
    EXPECT_EQ(event_hash(got), event_hash(want)) << event_to_json(want);
    EXPECT_EQ(event_to_json(got), event_to_json(want));
  }
  EXPECT_EQ(trace.violation, report.violation);
  EXPECT_EQ(trace.outcome, "stopped");
  EXPECT_EQ(trace.fingerprint, report.fingerprint);
  // Written again, byte for byte the same.
  RunReport again;
  again.runtime.schedule = trace.schedule;
  again.runtime.outcome = Outcome::stopped;
  again.draws = trace.draws;
  again.history = History(100);
  for (const Event& event : trace.events) ASSERT_TRUE(again.history.append(event.step, event.at_ms, event.body));
  again.violation = trace.violation;
  again.fingerprint = trace.fingerprint;
  EXPECT_EQ(write_trace(trace.header, again), text);
}

TEST(Trace, LayoutHeaderDrawsStepsWithTheirEventsThenVerdict) {
  const std::vector<std::string> lines = lines_of(write_trace(header(), hand_built_report()));
  ASSERT_EQ(lines.size(), 1u + 3u + 3u + 14u + 1u);
  EXPECT_EQ(lines[0], R"({"turnstile_trace":1,"version":"0.1.0","scenario":)" + scenario_to_json(default_scenario()) +
                          R"(,"seed":"9223372036854775813","strategy":"pct:3","gate":"legacy","variant":"core"})");
  EXPECT_EQ(lines[1], R"({"draw":"swarm","bound":1000,"value":17})");
  EXPECT_EQ(lines[2], R"({"draw":"jitter","bound":"18446744073709551615","value":"9223372036854775813"})");
  EXPECT_EQ(lines[4], R"({"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"00000000000000ff"})");
  EXPECT_EQ(lines[5], R"({"event":{"index":0,"step":0,"at":0,"kind":"faults_healed"}})");
  EXPECT_EQ(lines[6], R"({"step":1,"fiber":0,"choice":[0,1],"now":1000,"fp":"0123456789abcdef"})");
  EXPECT_EQ(lines[7], R"({"event":{"index":1,"step":1,"at":1000,"kind":"request","instance":1,"waiter":7,)"
                      R"("request":{"pool":"p","client":"c1","episode":"tt1:1:1","request":"r1","issued_at":1000}}})");
  EXPECT_EQ(lines[10], R"({"step":2,"fiber":5,"choice":[2,3],"now":1001,"fp":"fedcba9876543210"})");
  EXPECT_EQ(lines[20], R"({"event":{"index":13,"step":9,"at":1018,"kind":"faults_healed"}})");
  EXPECT_EQ(lines[21], R"({"verdict":"violation","rule":"P1","step":2,"at":1001,"event":4,)"
                       R"("message":"slots held 3 > capacity 2 after admit of c1","outcome":"stopped",)"
                       R"("fingerprint":"deadbeef00000001","steps":3,"draws":3,"events":14})");
}

TEST(Trace, EventKindsAreSpelledAsHistorySpellsThem) {
  const RunReport report = hand_built_report();
  for (const Event& event : report.history.events()) {
    const std::string json = event_to_json(event);
    EXPECT_NE(json.find(std::string(R"("kind":")") + std::string(event_kind_name(event.body)) + "\""),
              std::string::npos)
        << json;
  }
}

TEST(Trace, PassVerdictRoundTrips) {
  RunReport report = hand_built_report();
  report.violation.reset();
  report.runtime.outcome = Outcome::finished;
  const std::string text = write_trace(header(), report);
  EXPECT_EQ(lines_of(text).back(),
            R"({"verdict":"pass","outcome":"finished","fingerprint":"deadbeef00000001","steps":3,"draws":3,"events":14})");
  const Trace trace = read_ok(text);
  EXPECT_FALSE(trace.violation);
  EXPECT_EQ(trace.outcome, "finished");
}

TEST(Trace, AnImpossibleChoiceIsReadSoReplayCanNameIt) {
  std::vector<std::string> lines = lines_of(write_trace(header(), hand_built_report()));
  lines[10] = R"({"step":2,"fiber":5,"choice":[7,3],"now":1001,"fp":"fedcba9876543210"})";
  const Trace trace = read_ok(join(lines));
  EXPECT_EQ(trace.schedule[2].choice, (Choice{7, 3}));
}

TEST(Trace, V4_EveryTruncationIsAnErrorOfOneLine) {
  const std::string text = write_trace(header(), hand_built_report());
  // Every cut short of the final newline is refused: a cut inside a line
  // leaves bad JSON, a cut between lines leaves no verdict. Cuts at and
  // around every line end, and every 11th byte in between (each read parses
  // the whole header, so every byte would make a slow test).
  for (std::size_t size = 0; size + 1 < text.size(); ++size) {
    const bool near_line_end = text[size] == '\n' || (size > 0 && text[size - 1] == '\n') ||
                               (size + 1 < text.size() && text[size + 1] == '\n');
    if (!near_line_end && size % 11 != 0) continue;
    const std::string message = error_of(text.substr(0, size));
    ASSERT_NE(message, "(accepted)") << size;
    ASSERT_EQ(message.rfind("t.jsonl:", 0), 0u) << message;
    ASSERT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_EQ(error_of(text.substr(0, text.size() - 1)), "(accepted)");
}

TEST(Trace, V4_TruncatedTraceNamesTheMissingVerdict) {
  std::vector<std::string> lines = lines_of(write_trace(header(), hand_built_report()));
  lines.pop_back();
  EXPECT_EQ(error_of(join(lines)), "t.jsonl:22: missing verdict line (the trace is truncated)");
  EXPECT_EQ(error_of(""), "t.jsonl:1: missing header line (the file is empty)");
}

TEST(Trace, V4_CorruptedLinesAreNamed) {
  const std::vector<std::string> good = lines_of(write_trace(header(), hand_built_report()));
  struct Case {
    std::size_t line;  // from 0
    std::string replacement;
    std::string message;
  };
  const std::vector<Case> cases = {
      {4, R"({"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"00000000000000ff")",
       "t.jsonl:5: not valid JSON"},
      {4, R"({"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"xyz"})",
       "t.jsonl:5: field 'fp': expected 16 lowercase hex digits"},
      {4, R"({"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"00000000000000FF"})",
       "t.jsonl:5: field 'fp': expected 16 lowercase hex digits"},
      {4, R"({"step":1,"fiber":3,"choice":[1,4],"now":0,"fp":"00000000000000ff"})",
       "t.jsonl:5: field 'step': expected 0 (steps are numbered in order from 0)"},
      {4, R"({"step":0,"fiber":3,"choice":[1],"now":0,"fp":"00000000000000ff"})",
       "t.jsonl:5: field 'choice': expected [index, ready]: two integers from 0 to 4294967295"},
      {4, R"({"step":0,"fiber":-3,"choice":[1,4],"now":0,"fp":"00000000000000ff"})",
       "t.jsonl:5: field 'fiber': expected an integer from 0 to 4294967295"},
      {4, R"({"step":0,"fiber":3,"choice":[1,4],"now":0})", "t.jsonl:5: field 'fp': missing"},
      {4, R"({"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"00000000000000ff","extra":1})",
       "t.jsonl:5: field 'extra': unknown field (known fields: step, fiber, choice, now, fp)"},
      {4, R"({"hello":1})", "t.jsonl:5: expected a step, draw, event or verdict line"},
      {4, R"({"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"00000000000000ff","a\nb":1})",
       "t.jsonl:5: field 'a\\nb': unknown field (known fields: step, fiber, choice, now, fp)"},
      {4, "", "t.jsonl:5: an empty line"},
      {1, R"({"draw":"weather","bound":1000,"value":17})",
       "t.jsonl:2: field 'draw': expected one of swarm, workload, instance, store_latency, store_fault, "
       "broker_latency, broker_fault, clock_skew, jitter"},
      {1, R"({"draw":"swarm","bound":10,"value":17})", "t.jsonl:2: field 'value': expected an integer below bound"},
      {1, R"({"draw":"swarm","bound":"01000","value":17})",
       "t.jsonl:2: field 'bound': expected a non-negative integer (a number, or a decimal string)"},
      {7, R"({"event":{"index":1,"step":1,"at":1000,"kind":"request","instance":1,"waiter":7,"request":{"pool":"p"}}})",
       "t.jsonl:8: field 'event.request.client': missing"},
      {7, R"({"event":{"index":1,"step":1,"at":1000,"kind":"teleport"}})",
       "t.jsonl:8: field 'event.kind': expected one of request, response, leave, flight_start, flight_end, call, "
       "call_end, gate, fault, store_restart, faults_healed"},
      {7, R"({"event":{"index":5,"step":1,"at":1000,"kind":"store_restart"}})",
       "t.jsonl:8: field 'event.index': expected 1 (events are numbered in order from 0)"},
      {21, R"({"verdict":"pass","outcome":"finished","fingerprint":"deadbeef00000001","steps":3,"draws":3,"events":15})",
       "t.jsonl:22: field 'events': expected 14, the number of event lines above (a line is missing or extra)"},
      {21, R"({"verdict":"maybe"})", "t.jsonl:22: field 'verdict': expected one of violation, pass"},
      {21, R"({"verdict":"pass","outcome":"exploded","fingerprint":"deadbeef00000001","steps":3,"draws":3,"events":14})",
       "t.jsonl:22: field 'outcome': expected one of finished, stuck, step_limit, time_limit, fiber_limit, "
       "fiber_failed, stopped"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> lines = good;
    lines[c.line] = c.replacement;
    EXPECT_EQ(error_of(join(lines)), c.message) << c.replacement;
  }
}

TEST(Trace, V4_ALostLineIsNoticedByTheCounts) {
  std::vector<std::string> lines = lines_of(write_trace(header(), hand_built_report()));
  lines.erase(lines.begin() + 2);  // a draw
  EXPECT_EQ(error_of(join(lines)),
            "t.jsonl:21: field 'draws': expected 2, the number of draw lines above (a line is missing or extra)");
  lines = lines_of(write_trace(header(), hand_built_report()));
  lines.erase(lines.begin() + 10);  // step 2
  EXPECT_EQ(error_of(join(lines)),
            "t.jsonl:21: field 'steps': expected 2, the number of step lines above (a line is missing or extra)");
}

TEST(Trace, V4_HeaderErrors) {
  const std::vector<std::string> good = lines_of(write_trace(header(), hand_built_report()));
  auto with_header = [&](const std::string& line) {
    std::vector<std::string> lines = good;
    lines[0] = line;
    return error_of(join(lines));
  };
  const std::string scenario = scenario_to_json(default_scenario());
  EXPECT_EQ(with_header(R"({"turnstile_trace":2,"version":"9.0.0"})"),
            "t.jsonl:1: field 'turnstile_trace': expected 1 (the trace format this turnstile reads)");
  EXPECT_EQ(with_header(R"({"op":"admit","pool":"p"})"),
            "t.jsonl:1: expected the trace header {\"turnstile_trace\":1,...} (is this a turnstile trace?)");
  EXPECT_EQ(with_header(R"({"turnstile_trace":1,"version":"0.1.0","scenario":)" + scenario +
                        R"(,"seed":"-1","strategy":"random","gate":"atomic","variant":"core"})"),
            "t.jsonl:1: field 'seed': expected a decimal string of an unsigned 64-bit integer, such as \"123\"");
  EXPECT_EQ(with_header(R"({"turnstile_trace":1,"version":"0.1.0","scenario":)" + scenario +
                        R"(,"seed":"18446744073709551616","strategy":"random","gate":"atomic","variant":"core"})"),
            "t.jsonl:1: field 'seed': expected a decimal string of an unsigned 64-bit integer, such as \"123\"");
  EXPECT_EQ(with_header(R"({"turnstile_trace":1,"version":"0.1.0","scenario":)" + scenario +
                        R"(,"seed":"1","strategy":"dfs","gate":"atomic","variant":"core"})"),
            "t.jsonl:1: field 'strategy': expected random or pct:D (D >= 1)");
  EXPECT_EQ(with_header(R"({"turnstile_trace":1,"version":"0.1.0","scenario":)" + scenario +
                        R"(,"seed":"1","strategy":"random","gate":"optimistic","variant":"core"})"),
            "t.jsonl:1: field 'gate': expected atomic or legacy");
  EXPECT_EQ(with_header(R"({"turnstile_trace":1,"version":"0.1.0","scenario":{"gate":{"capacity":0}},)"
                        R"("seed":"1","strategy":"random","gate":"atomic","variant":"core"})"),
            "t.jsonl:1: scenario: field 'gate.capacity': expected an integer from 1 to 100000");
  EXPECT_EQ(with_header(R"({"turnstile_trace":1,"version":"0.1.0","scenario":)" + scenario +
                        R"(,"seed":"1","strategy":"random","gate":"atomic"})"),
            "t.jsonl:1: field 'variant': missing");
}

TEST(Trace, V4_NothingMayFollowTheVerdict) {
  std::string text = write_trace(header(), hand_built_report());
  text += R"({"step":3,"fiber":0,"choice":[0,1],"now":5,"fp":"0000000000000000"})" "\n";
  EXPECT_EQ(error_of(text), "t.jsonl:23: nothing may follow the verdict line");
}

TEST(Trace, CarriageReturnsAreTolerated) {
  std::string text;
  for (const auto& line : lines_of(write_trace(header(), hand_built_report()))) text += line + "\r\n";
  EXPECT_EQ(read_ok(text).events.size(), 14u);
}

TEST(Trace, RealRunRoundTrips) {
  RunSpec spec;
  spec.seed = 3;
  const RunReport report = run_world(spec);
  ASSERT_FALSE(report.runtime.schedule.empty());
  TraceHeader h;
  h.version = "0.1.0";
  h.scenario = spec.scenario;
  h.seed = spec.seed;
  h.strategy = "random";
  const std::string text = write_trace(h, report);
  const Trace trace = read_ok(text);
  EXPECT_EQ(trace.schedule, report.runtime.schedule);
  EXPECT_EQ(trace.draws, report.draws);
  ASSERT_EQ(trace.events.size(), report.history.size());
  for (std::size_t i = 0; i < trace.events.size(); ++i) {
    ASSERT_EQ(event_hash(trace.events[i]), event_hash(report.history.events()[i])) << i;
  }
  EXPECT_EQ(trace.fingerprint, report.fingerprint);
}

}  // namespace
}  // namespace turnstile::sim
