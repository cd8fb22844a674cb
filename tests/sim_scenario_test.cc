// Scenario files (docs/scenario.md): defaults, the canonical form and its
// round trip, and SPEC V4 for the reader: a malformed file is one line naming
// the file, the field and what was expected, never a crash or a half-read
// scenario.

#include <string>
#include <variant>

#include <gtest/gtest.h>

#include "sim/scenario.h"

namespace turnstile::sim {
namespace {

// Field by field, so that a field the writer forgets shows up here even
// though the canonical text would agree with itself.
void expect_same(const Scenario& a, const Scenario& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.pool, b.pool);
  EXPECT_EQ(a.gate.capacity, b.gate.capacity);
  EXPECT_EQ(a.gate.ttl_ms, b.gate.ttl_ms);
  EXPECT_EQ(a.gate.grace_ms, b.gate.grace_ms);
  for (const auto& [x, y] : {std::pair{a.flow.store, b.flow.store}, std::pair{a.flow.broker, b.flow.broker}}) {
    EXPECT_EQ(x.attempt_timeout_ms, y.attempt_timeout_ms);
    EXPECT_EQ(x.budget_ms, y.budget_ms);
    EXPECT_EQ(x.jitter_min_ms, y.jitter_min_ms);
    EXPECT_EQ(x.jitter_max_ms, y.jitter_max_ms);
    EXPECT_EQ(x.min_attempt_ms, y.min_attempt_ms);
  }
  EXPECT_EQ(a.flow.fail_policy, b.flow.fail_policy);
  EXPECT_EQ(a.coalesce.max_flights, b.coalesce.max_flights);
  EXPECT_EQ(a.coalesce.max_waiters, b.coalesce.max_waiters);
  EXPECT_EQ(a.instances, b.instances);
  ASSERT_EQ(a.clients.size(), b.clients.size());
  for (std::size_t i = 0; i < a.clients.size(); ++i) {
    const ClientGroup& x = a.clients[i];
    const ClientGroup& y = b.clients[i];
    EXPECT_EQ(x.behaviour, y.behaviour) << i;
    EXPECT_EQ(x.count, y.count) << i;
    EXPECT_EQ(x.start_ms, y.start_ms) << i;
    EXPECT_EQ(x.spread_ms, y.spread_ms) << i;
    EXPECT_EQ(x.watch_ms, y.watch_ms) << i;
    EXPECT_EQ(x.heartbeat_ms, y.heartbeat_ms) << i;
    EXPECT_EQ(x.think_ms, y.think_ms) << i;
    EXPECT_EQ(x.burst, y.burst) << i;
    EXPECT_EQ(x.switches, y.switches) << i;
    EXPECT_EQ(x.abandon_permille, y.abandon_permille) << i;
  }
  EXPECT_EQ(a.faults, b.faults);
  EXPECT_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.heal_ms, b.heal_ms);
  EXPECT_EQ(a.max_steps, b.max_steps);
  EXPECT_EQ(a.max_events, b.max_events);
}

Scenario parsed(const std::string& text) {
  auto result = parse_scenario(text, "s.json");
  if (auto* error = std::get_if<ScenarioError>(&result)) {
    ADD_FAILURE() << error->message;
    return {};
  }
  return std::get<Scenario>(result);
}

std::string error_of(const std::string& text) {
  auto result = parse_scenario(text, "s.json");
  if (std::holds_alternative<Scenario>(result)) return "(accepted)";
  return std::get<ScenarioError>(result).message;
}

// Every field away from its default, within check_scenario's bounds.
Scenario unusual_scenario() {
  Scenario s = default_scenario();
  s.name = "unusual.one";
  s.pool = "pool-7";
  s.gate = {.capacity = 5, .ttl_ms = 2000, .grace_ms = 700};
  s.flow.store = {.attempt_timeout_ms = 111, .budget_ms = 333, .jitter_min_ms = 3, .jitter_max_ms = 9, .min_attempt_ms = 17};
  s.flow.broker = {.attempt_timeout_ms = 222, .budget_ms = 444, .jitter_min_ms = 4, .jitter_max_ms = 8, .min_attempt_ms = 19};
  s.flow.fail_policy = core::FailPolicy::fail_open;
  s.coalesce = {.max_flights = 77, .max_waiters = 5};
  s.instances = 3;
  s.clients = {
      ClientGroup{.behaviour = Behaviour::zap, .count = 2, .start_ms = 10, .spread_ms = 20, .watch_ms = 30,
                  .heartbeat_ms = 40, .think_ms = 50, .burst = 6, .switches = 7, .abandon_permille = 80},
      ClientGroup{.behaviour = Behaviour::storm, .count = 9, .start_ms = 0, .spread_ms = 0, .watch_ms = 1,
                  .heartbeat_ms = 1, .think_ms = 0, .burst = 1, .switches = 1, .abandon_permille = 1000},
  };
  s.faults = FaultRates{.store_latency_max_ms = 1,
                        .store_timeout_permille = 2,
                        .store_lost_reply_permille = 3,
                        .store_reset_permille = 4,
                        .store_busy_permille = 5,
                        .store_noscript_permille = 6,
                        .store_restart_permille = 7,
                        .clock_skew_max_ms = 8,
                        .clock_backwards_permille = 9,
                        .broker_latency_max_ms = 10,
                        .broker_transient_permille = 11,
                        .broker_501_permille = 12,
                        .broker_reset_permille = 13,
                        .broker_hang_permille = 14,
                        .broker_malformed_permille = 15};
  s.duration_ms = 4321;
  s.heal_ms = 9876;
  s.max_steps = 12345;
  s.max_events = 6789;
  return s;
}

TEST(ScenarioJson, EmptyObjectIsTheDefaultScenario) {
  expect_same(parsed("{}"), default_scenario());
}

TEST(ScenarioJson, EveryFieldIsOptionalAndKeepsItsDefault) {
  const Scenario s = parsed(R"({"gate":{"capacity":3},"flow":{"broker":{"budget":1000}},"faults":{"broker_hang_permille":0}})");
  Scenario expected = default_scenario();
  expected.gate.capacity = 3;
  expected.flow.broker.budget_ms = 1000;
  expected.faults.broker_hang_permille = 0;
  expect_same(s, expected);
}

TEST(ScenarioJson, ClientsReplaceTheDefaultList) {
  const Scenario s = parsed(R"({"clients":[{"behaviour":"burst","burst":4}]})");
  ASSERT_EQ(s.clients.size(), 1u);
  EXPECT_EQ(s.clients[0].behaviour, Behaviour::burst);
  EXPECT_EQ(s.clients[0].burst, 4u);
  // The group's other fields are ClientGroup's defaults.
  EXPECT_EQ(s.clients[0].count, ClientGroup{}.count);
  EXPECT_EQ(s.clients[0].watch_ms, ClientGroup{}.watch_ms);
}

TEST(ScenarioJson, RoundTripOfTheDefaultAndOfEveryFieldChanged) {
  for (const Scenario& s : {default_scenario(), unusual_scenario()}) {
    ASSERT_FALSE(check_scenario(s)) << check_scenario(s)->message;
    const std::string text = scenario_to_json(s);
    expect_same(parsed(text), s);
    EXPECT_EQ(scenario_to_json(parsed(text)), text);
  }
}

TEST(ScenarioJson, CanonicalFormHasEveryFieldInAFixedOrderOnOneLine) {
  EXPECT_EQ(scenario_to_json(unusual_scenario()),
            R"({"name":"unusual.one","pool":"pool-7","gate":{"capacity":5,"ttl":2000,"grace":700},)"
            R"("flow":{"store":{"attempt_timeout":111,"budget":333,"jitter_min":3,"jitter_max":9,"min_attempt":17},)"
            R"("broker":{"attempt_timeout":222,"budget":444,"jitter_min":4,"jitter_max":8,"min_attempt":19},)"
            R"("fail_policy":"fail_open"},"coalesce":{"max_flights":77,"max_waiters":5},"instances":3,)"
            R"("clients":[{"behaviour":"zap","count":2,"start":10,"spread":20,"watch":30,"heartbeat":40,"think":50,)"
            R"("burst":6,"switches":7,"abandon_permille":80},)"
            R"({"behaviour":"storm","count":9,"start":0,"spread":0,"watch":1,"heartbeat":1,"think":0,"burst":1,)"
            R"("switches":1,"abandon_permille":1000}],)"
            R"("faults":{"store_latency_max_ms":1,"store_timeout_permille":2,"store_lost_reply_permille":3,)"
            R"("store_reset_permille":4,"store_busy_permille":5,"store_noscript_permille":6,"store_restart_permille":7,)"
            R"("clock_skew_max_ms":8,"clock_backwards_permille":9,"broker_latency_max_ms":10,)"
            R"("broker_transient_permille":11,"broker_501_permille":12,"broker_reset_permille":13,)"
            R"("broker_hang_permille":14,"broker_malformed_permille":15},)"
            R"("duration":4321,"heal":9876,"max_steps":12345,"max_events":6789})");
}

TEST(ScenarioJson, KeysInAnyOrderAndWhitespaceAreAccepted) {
  const Scenario s = parsed("{\n  \"instances\": 1,\n  \"name\": \"n\"\n}\n");
  EXPECT_EQ(s.instances, 1u);
  EXPECT_EQ(s.name, "n");
}

TEST(ScenarioJson, V4_BadJsonNamesTheLineAndColumn) {
  EXPECT_EQ(error_of("{\n  \"name\": \"x\",\n  oops\n}"), "s.json: not valid JSON (line 3, column 3)");
  EXPECT_EQ(error_of(""), "s.json: not valid JSON (line 1, column 1)");
  EXPECT_EQ(error_of("{\"name\":\"x\"} trailing"), "s.json: not valid JSON (line 1, column 16)");
}

TEST(ScenarioJson, V4_NotAnObject) {
  EXPECT_EQ(error_of("[1,2]"), "s.json: expected a JSON object");
  EXPECT_EQ(error_of("42"), "s.json: expected a JSON object");
}

TEST(ScenarioJson, V4_UnknownFieldIsAnErrorNamingIt) {
  EXPECT_EQ(error_of(R"({"gate":{"capcity":3}})"),
            "s.json: field 'gate.capcity': unknown field (known fields: capacity, ttl, grace)");
  EXPECT_EQ(error_of(R"({"seed":3})"),
            "s.json: field 'seed': unknown field (known fields: name, pool, gate, flow, coalesce, instances, clients, "
            "faults, duration, heal, max_steps, max_events)");
  EXPECT_EQ(error_of(R"({"clients":[{"count":1,"watch_ms":5}]})"),
            "s.json: field 'clients[0].watch_ms': unknown field (known fields: behaviour, count, start, spread, watch, "
            "heartbeat, think, burst, switches, abandon_permille)");
}

TEST(ScenarioJson, V4_WrongTypeNamesTheFieldAndWhatWasExpected) {
  EXPECT_EQ(error_of(R"({"instances":"2"})"), "s.json: field 'instances': expected an integer from 1 to 16");
  EXPECT_EQ(error_of(R"({"duration":1.5})"), "s.json: field 'duration': expected an integer from 1 to 86400000 (ms)");
  EXPECT_EQ(error_of(R"({"name":7})"), "s.json: field 'name': expected a string");
  EXPECT_EQ(error_of(R"({"gate":[]})"), "s.json: field 'gate': expected an object");
  EXPECT_EQ(error_of(R"({"clients":{}})"), "s.json: field 'clients': expected an array of 1 to 64 client groups");
  EXPECT_EQ(error_of(R"({"flow":{"fail_policy":"fail_sometimes"}})"),
            "s.json: field 'flow.fail_policy': expected one of fail_closed, fail_open");
}

TEST(ScenarioJson, V4_OutOfRangeNamesTheBounds) {
  EXPECT_EQ(error_of(R"({"gate":{"capacity":0}})"), "s.json: field 'gate.capacity': expected an integer from 1 to 100000");
  EXPECT_EQ(error_of(R"({"faults":{"store_busy_permille":1001}})"),
            "s.json: field 'faults.store_busy_permille': expected an integer from 0 to 1000 (permille)");
  EXPECT_EQ(error_of(R"({"faults":{"clock_skew_max_ms":-1}})"),
            "s.json: field 'faults.clock_skew_max_ms': expected an integer from 0 to 60000 (ms)");
  EXPECT_EQ(error_of(R"({"max_steps":18446744073709551615})"),
            "s.json: field 'max_steps': expected an integer from 1 to 100000000");
  EXPECT_EQ(error_of(R"({"max_steps":1e300})"), "s.json: field 'max_steps': expected an integer from 1 to 100000000");
  EXPECT_EQ(error_of(R"({"clients":[{"count":65}]})"), "s.json: field 'clients[0].count': expected an integer from 1 to 64");
  EXPECT_EQ(error_of(R"({"clients":[]})"), "s.json: field 'clients': expected an array of 1 to 64 client groups");
}

TEST(ScenarioJson, V4_BadBehaviourNameListsTheNames) {
  EXPECT_EQ(error_of(R"({"clients":[{},{"behaviour":"zap"},{"behaviour":"nap"}]})"),
            "s.json: field 'clients[2].behaviour': expected one of watch, blip, zap, burst, storm");
}

TEST(ScenarioJson, V4_CrossFieldRulesUseTheFilesFieldNames) {
  // check_scenario: a group starts within the fault phase; the liveness
  // phase outlasts T + G and the F6 bound.
  EXPECT_EQ(error_of(R"({"duration":1000,"clients":[{"start":5000}]})"),
            "s.json: field 'clients[0].start': expected an integer from 0 to 1000 (ms)");
  const std::string heal = error_of(R"({"gate":{"ttl":100000}})");
  EXPECT_EQ(heal.rfind("s.json: field 'heal': expected more than ttl + grace", 0), 0u) << heal;
  EXPECT_EQ(error_of(R"({"flow":{"store":{"attempt_timeout":900,"budget":800}}})"),
            "s.json: field 'flow.store.budget': expected an integer from attempt_timeout to 9007199254740991 (ms)");
}

TEST(ScenarioJson, V4_AFieldNameIsQuotedOnOneLine) {
  EXPECT_EQ(error_of("{\"cli\\nts\":[]}"),
            "s.json: field 'cli\\nts': unknown field (known fields: name, pool, gate, flow, coalesce, instances, "
            "clients, faults, duration, heal, max_steps, max_events)");
  const std::string long_key(100, 'k');
  EXPECT_EQ(error_of("{\"gate\":{\"" + long_key + "\":1}}"),
            "s.json: field 'gate." + std::string(64, 'k') + "...': unknown field (known fields: capacity, ttl, grace)");
}

TEST(ScenarioJson, V4_EveryErrorIsOneLine) {
  for (const char* text : {"{", "{\"a\":1}", "{\"clients\":[{\"behaviour\":1}]}", "{\"pool\":\"a b\"}",
                           "{\"gate\":{\"ttl\":0}}", "{\"name\":\"\"}", "\xff", "{\"name\":\"\\ud800\"}",
                           "{\"cli\\nts\":[]}"}) {
    const std::string message = error_of(text);
    EXPECT_NE(message, "(accepted)") << text;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.rfind("s.json: ", 0), 0u) << message;
  }
}

}  // namespace
}  // namespace turnstile::sim
