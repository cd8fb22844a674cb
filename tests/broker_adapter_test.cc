// The broker adapter (adapters/broker) against the in-process stub broker
// (tests/stub_broker.h) on loopback: every outcome class of R3 as a real HTTP
// exchange produces it, the attempt's deadline (R2), and whole calls through
// the retry machine (R1, R4-R6). The checks are functions that take the
// adapter's attempt or call, so that a broken variant defined here can be
// shown to fail them.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/broker/http_broker.h"
#include "core/outcome.h"
#include "core/retry.h"
#include "core/rng.h"
#include "tests/loopback_port.h"
#include "tests/stub_broker.h"

namespace turnstile::adapters {
namespace {

using core::BrokerReply;
using core::Ms;
using core::OutcomeClass;
using testing::StubBehaviour;
using testing::StubBroker;

constexpr std::string_view kEpisode = "tt0944947:1:2";
// The scheduler of this machine, shared with builds, is the only source of
// lateness; timing bounds allow this much of it.
constexpr Ms kSlackMs = 1000;

HttpBrokerConfig config_for(const StubBroker& stub) {
  HttpBrokerConfig config;
  config.base_url = stub.base_url();
  return config;
}

std::string describe(const BrokerReply& reply) {
  std::string text(core::outcome_class_name(reply.result.outcome_class));
  if (reply.result.retry_after_ms) text += " retry_after_ms=" + std::to_string(*reply.result.retry_after_ms);
  text += " streams=" + std::to_string(reply.streams.size());
  return text;
}

// One attempt of a broker, as the checks call it: the real one is
// HttpBroker::attempt; a test substitutes a broken one.
using AttemptFn = std::function<BrokerReply(HttpBroker&, std::string_view episode, Ms deadline_ms)>;

BrokerReply real_attempt(HttpBroker& broker, std::string_view episode, Ms deadline_ms) {
  return broker.attempt(episode, deadline_ms);
}

struct ClassCase {
  std::string name;
  std::optional<StubBehaviour> behaviour;  // none: the stub's default (200 with a resolve body)
  OutcomeClass expected;
  std::optional<Ms> retry_after_ms;
};

// R3 over real exchanges: each case's answer from the stub, one attempt with
// a 2 s deadline, and the class (and Retry-After) it must give. Returns one
// line per mismatch; empty when every case holds.
std::vector<std::string> check_r3_classes(const AttemptFn& attempt) {
  std::vector<std::string> mismatches;
  StubBroker stub;
  if (!stub.error().empty()) return {"stub: " + stub.error()};
  HttpBrokerConfig config = config_for(stub);
  config.max_body_bytes = 4096;
  HttpBroker broker(config);

  std::string long_body = "{\"streams\":[{\"name\":\"x\",\"url\":\"https://example.invalid/";
  long_body += std::string(8192, 'a') + "\"}]}";
  // Longer than max_body_bytes, but not a 2xx: its body is not read.
  StubBehaviour error_page = StubBehaviour::status(503);
  error_page.body = std::string(100000, 'e');
  const std::vector<ClassCase> cases = {
      {"200", std::nullopt, OutcomeClass::success, std::nullopt},
      {"200 with no streams", StubBehaviour::ok("{\"streams\":[]}"), OutcomeClass::success, std::nullopt},
      {"404", StubBehaviour::status(404), OutcomeClass::permanent, std::nullopt},
      {"400", StubBehaviour::status(400), OutcomeClass::permanent, std::nullopt},
      {"301", StubBehaviour::status(301), OutcomeClass::permanent, std::nullopt},
      {"408", StubBehaviour::status(408), OutcomeClass::transient, std::nullopt},
      {"429", StubBehaviour::status(429), OutcomeClass::transient, std::nullopt},
      {"429 Retry-After: 2", StubBehaviour::retry_after(429, "2"), OutcomeClass::transient, 2000},
      {"429 Retry-After: soon", StubBehaviour::retry_after(429, "soon"), OutcomeClass::transient, std::nullopt},
      {"500", StubBehaviour::status(500), OutcomeClass::transient, std::nullopt},
      {"500 Retry-After: 2 (ignored off 429/503)", StubBehaviour::retry_after(500, "2"), OutcomeClass::transient,
       std::nullopt},
      {"501", StubBehaviour::status(501), OutcomeClass::permanent, std::nullopt},
      {"502", StubBehaviour::status(502), OutcomeClass::transient, std::nullopt},
      {"503", StubBehaviour::status(503), OutcomeClass::transient, std::nullopt},
      {"503 Retry-After: 1", StubBehaviour::retry_after(503, "1"), OutcomeClass::transient, 1000},
      {"504", StubBehaviour::status(504), OutcomeClass::transient, std::nullopt},
      {"505", StubBehaviour::status(505), OutcomeClass::permanent, std::nullopt},
      {"503 with a long error page", error_page, OutcomeClass::transient, std::nullopt},
      {"malformed body", StubBehaviour::malformed(), OutcomeClass::permanent, std::nullopt},
      {"not a resolve body", StubBehaviour::ok("{\"streams\":{}}"), OutcomeClass::permanent, std::nullopt},
      {"oversized body", StubBehaviour::ok(long_body), OutcomeClass::permanent, std::nullopt},
      {"reset", StubBehaviour::reset(), OutcomeClass::transient, std::nullopt},
  };
  for (const ClassCase& c : cases) {
    if (c.behaviour) stub.push(*c.behaviour);
    const BrokerReply reply = attempt(broker, kEpisode, HttpBroker::steady_ms() + 2000);
    const bool streams_ok = reply.result.outcome_class != OutcomeClass::success || c.name != "200" ||
                            (reply.streams.size() == 1 &&
                             reply.streams[0].url == "https://example.invalid/" + std::string(kEpisode));
    if (reply.result.outcome_class != c.expected || reply.result.retry_after_ms != c.retry_after_ms || !streams_ok) {
      mismatches.push_back(c.name + ": got " + describe(reply) + " (" + broker.last_error() + "), expected " +
                           std::string(core::outcome_class_name(c.expected)));
    }
    stub.clear_queue();
  }

  // Refused: nothing listens on the port.
  HttpBrokerConfig refused_config = config;
  refused_config.base_url = "http://127.0.0.1:" + std::to_string(testing::unused_loopback_port());
  HttpBroker refused(refused_config);
  const BrokerReply refused_reply = attempt(refused, kEpisode, HttpBroker::steady_ms() + 2000);
  if (refused_reply.result.outcome_class != OutcomeClass::transient) {
    mismatches.push_back("refused: got " + describe(refused_reply) + ", expected transient");
  }

  // A hung broker: transient, at the deadline and not much later.
  stub.push(StubBehaviour::hang());
  const Ms started_ms = HttpBroker::steady_ms();
  const BrokerReply hung = attempt(broker, kEpisode, started_ms + 300);
  const Ms took_ms = HttpBroker::steady_ms() - started_ms;
  stub.release_hung();
  if (hung.result.outcome_class != OutcomeClass::transient || took_ms < 250 || took_ms > 300 + kSlackMs) {
    mismatches.push_back("hang: got " + describe(hung) + " after " + std::to_string(took_ms) +
                         " ms, expected transient at the 300 ms deadline");
  }
  return mismatches;
}

TEST(HttpBroker, R3_EveryOutcomeClassOverRealExchanges) {
  const std::vector<std::string> mismatches = check_r3_classes(real_attempt);
  for (const std::string& line : mismatches) ADD_FAILURE() << line;
  EXPECT_TRUE(mismatches.empty());
}

TEST(HttpBroker, R3_TheClassCheckCatchesABrokenClassifier) {
  // A classifier that calls 404 transient: the broker would be asked again
  // for an episode it does not have.
  const AttemptFn broken = [](HttpBroker& broker, std::string_view episode, Ms deadline_ms) {
    BrokerReply reply = broker.attempt(episode, deadline_ms);
    if (broker.last_error().ends_with("HTTP 404")) reply.result.outcome_class = OutcomeClass::transient;
    return reply;
  };
  const std::vector<std::string> mismatches = check_r3_classes(broken);
  ASSERT_EQ(mismatches.size(), 1u);
  EXPECT_TRUE(mismatches[0].starts_with("404:")) << mismatches[0];
}

TEST(HttpBroker, R2_AttemptNeverOutlivesItsDeadline) {
  StubBroker stub;
  HttpBroker broker(config_for(stub));
  // A slow answer that comes after the deadline is a timeout, not a success.
  stub.push(StubBehaviour::status(200).with_latency(1500));
  const Ms started_ms = HttpBroker::steady_ms();
  const BrokerReply reply = broker.attempt(kEpisode, started_ms + 400);
  const Ms took_ms = HttpBroker::steady_ms() - started_ms;
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient) << broker.last_error();
  EXPECT_GE(took_ms, 350);
  EXPECT_LT(took_ms, 1500);
  // A deadline already passed: no request is sent at all.
  const std::uint64_t before = stub.requests();
  EXPECT_EQ(broker.attempt(kEpisode, HttpBroker::steady_ms() - 1).result.outcome_class, OutcomeClass::transient);
  EXPECT_EQ(stub.requests(), before);
}

TEST(HttpBroker, R5_RetryAfterInSecondsBoundedMalformedIgnored) {
  EXPECT_EQ(parse_retry_after("2", 60000), 2000);
  EXPECT_EQ(parse_retry_after(" 0 ", 60000), 0);
  EXPECT_EQ(parse_retry_after("120", 60000), 60000);
  EXPECT_EQ(parse_retry_after("99999999999999999999999999", 60000), 60000);
  EXPECT_EQ(parse_retry_after("", 60000), std::nullopt);
  EXPECT_EQ(parse_retry_after("-1", 60000), std::nullopt);
  EXPECT_EQ(parse_retry_after("1.5", 60000), std::nullopt);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60000), std::nullopt);
}

TEST(HttpBroker, R3_ResolveBodyShape) {
  auto streams = parse_resolve_body(R"({"streams":[{"name":"a","url":"https://x/1","extra":1},{"name":"","url":"u"}],"more":true})", 64);
  ASSERT_TRUE(streams.has_value());
  ASSERT_EQ(streams->size(), 2u);
  EXPECT_EQ((*streams)[0], (core::Stream{"a", "https://x/1"}));
  EXPECT_EQ((*streams)[1], (core::Stream{"", "u"}));
  EXPECT_TRUE(parse_resolve_body(R"({"streams":[]})", 64).has_value());
  for (std::string_view bad : {"", "null", "[]", "{}", R"({"streams":null})", R"({"streams":[1]})",
                               R"({"streams":[{"name":"a"}]})", R"({"streams":[{"name":1,"url":"u"}]})",
                               R"({"streams":[{"name":"a","url":""}]})", R"({"streams":[{"name":"a","url":"u"}])",
                               "{\"streams\":[{\"name\":\"\xff\",\"url\":\"u\"}]}"}) {
    EXPECT_FALSE(parse_resolve_body(bad, 64).has_value()) << bad;
  }
  EXPECT_FALSE(parse_resolve_body(R"({"streams":[{"name":"a","url":"u"},{"name":"b","url":"v"}]})", 1).has_value());
}

// Whole calls through the retry machine (R1, R4, R6). A small config keeps
// the test short: A = 400, B = 2500, J = [10, 20], M = 50.
core::RetryConfig small_retry() { return {400, 2500, 10, 20, 50}; }

using CallFn = std::function<BrokerReply(HttpBroker&, std::string_view episode, core::Rng&)>;

BrokerReply real_call(HttpBroker& broker, std::string_view episode, core::Rng& rng) {
  return broker.call(episode, rng);
}

// R4: a permanent outcome is never retried, a transient one once, never a
// third attempt; R7: the caller sees one outcome. Returns one line per
// violation.
std::vector<std::string> check_r4_calls(const CallFn& call) {
  std::vector<std::string> violations;
  StubBroker stub;
  HttpBrokerConfig config = config_for(stub);
  config.retry = small_retry();
  HttpBroker broker(config);
  core::Rng rng(20261127);
  struct Case {
    std::string name;
    std::vector<StubBehaviour> answers;
    OutcomeClass expected;
    std::uint64_t requests;
  };
  const std::vector<Case> cases = {
      {"404", {StubBehaviour::status(404)}, OutcomeClass::permanent, 1},
      {"501", {StubBehaviour::status(501)}, OutcomeClass::permanent, 1},
      {"malformed", {StubBehaviour::malformed()}, OutcomeClass::permanent, 1},
      {"200", {}, OutcomeClass::success, 1},
      {"500 then 200", {StubBehaviour::status(500)}, OutcomeClass::success, 2},
      {"reset then 200", {StubBehaviour::reset()}, OutcomeClass::success, 2},
      {"503 then 404", {StubBehaviour::status(503), StubBehaviour::status(404)}, OutcomeClass::permanent, 2},
      {"500 three times",
       {StubBehaviour::status(500), StubBehaviour::status(500), StubBehaviour::status(500)},
       OutcomeClass::transient,
       2},
  };
  for (const Case& c : cases) {
    stub.clear_queue();
    stub.reset_counts();
    for (const StubBehaviour& answer : c.answers) stub.push(answer);
    const BrokerReply reply = call(broker, kEpisode, rng);
    const bool streams_ok = (reply.result.outcome_class == OutcomeClass::success) == !reply.streams.empty();
    if (reply.result.outcome_class != c.expected || stub.requests() != c.requests || !streams_ok) {
      violations.push_back(c.name + ": got " + describe(reply) + " after " + std::to_string(stub.requests()) +
                           " requests, expected " + std::string(core::outcome_class_name(c.expected)) + " after " +
                           std::to_string(c.requests));
    }
  }
  return violations;
}

TEST(HttpBroker, R4_AtMostTwoAttemptsAndOnlyAfterTransient) {
  const std::vector<std::string> violations = check_r4_calls(real_call);
  for (const std::string& line : violations) ADD_FAILURE() << line;
  EXPECT_TRUE(violations.empty());
}

TEST(HttpBroker, R4_TheCallCheckCatchesARetryOfPermanentOutcomes) {
  // A caller that asks again after a permanent failure.
  const CallFn broken = [](HttpBroker& broker, std::string_view episode, core::Rng& rng) {
    BrokerReply reply = broker.call(episode, rng);
    if (reply.result.outcome_class == OutcomeClass::permanent) reply = broker.call(episode, rng);
    return reply;
  };
  const std::vector<std::string> violations = check_r4_calls(broken);
  EXPECT_GE(violations.size(), 3u);
  for (const std::string& line : violations) EXPECT_FALSE(line.starts_with("200")) << line;
}

TEST(HttpBroker, R5_RetryAfterDelaysTheRetry) {
  StubBroker stub;
  HttpBrokerConfig config = config_for(stub);
  config.retry = small_retry();
  HttpBroker broker(config);
  core::Rng rng(1);
  std::vector<Ms> arrivals_ms;
  std::mutex mutex;
  stub.set_handler([&](const testing::StubRequest& request) {
    std::lock_guard lock(mutex);
    arrivals_ms.push_back(HttpBroker::steady_ms());
    if (request.index == 1) return StubBehaviour::retry_after(429, "1");
    return StubBroker::default_behaviour(request);
  });
  const BrokerReply reply = broker.call(kEpisode, rng);
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::success) << broker.last_error();
  std::lock_guard lock(mutex);
  ASSERT_EQ(arrivals_ms.size(), 2u);
  // d = max(jitter, 1000): the retry starts no sooner than a second after
  // attempt 1 failed, which is after it arrived.
  EXPECT_GE(arrivals_ms[1] - arrivals_ms[0], 1000);
}

TEST(HttpBroker, R6_RetryAfterPastTheBudgetFailsAtOnce) {
  StubBroker stub;
  HttpBrokerConfig config = config_for(stub);
  config.retry = small_retry();
  HttpBroker broker(config);
  core::Rng rng(1);
  stub.push(StubBehaviour::retry_after(503, "30"));
  const Ms started_ms = HttpBroker::steady_ms();
  const BrokerReply reply = broker.call(kEpisode, rng);
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
  EXPECT_EQ(stub.requests(), 1u);
  EXPECT_LT(HttpBroker::steady_ms() - started_ms, 2000);
}

TEST(HttpBroker, R1_HungBrokerCallEndsWithinTheBudget) {
  StubBroker stub;
  HttpBrokerConfig config = config_for(stub);
  config.retry = {400, 700, 10, 20, 50};
  HttpBroker broker(config);
  core::Rng rng(1);
  stub.set_handler([](const testing::StubRequest&) { return StubBehaviour::hang(); });
  const Ms started_ms = HttpBroker::steady_ms();
  const BrokerReply reply = broker.call(kEpisode, rng);
  const Ms took_ms = HttpBroker::steady_ms() - started_ms;
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
  EXPECT_TRUE(reply.streams.empty());
  // Attempt 1 times out at 400 ms, the retry starts 10-20 ms later and is cut
  // at t0 + B = 700 ms. (On a machine so loaded that attempt 1 came back
  // after 700 ms, the retry starts past its deadline and sends nothing.)
  EXPECT_EQ(broker.stats().attempts, 2u);
  EXPECT_GE(stub.requests(), 1u);
  EXPECT_LE(stub.requests(), 2u);
  EXPECT_GE(took_ms, 650);
  EXPECT_LE(took_ms, 700 + kSlackMs);
}

TEST(HttpBroker, KeepsOneConnectionAlive) {
  StubBroker stub;
  HttpBroker broker(config_for(stub));
  core::Rng rng(1);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(broker.call(kEpisode, rng).result.outcome_class, OutcomeClass::success) << broker.last_error();
  }
  EXPECT_EQ(stub.requests("/resolve/" + std::string(kEpisode)), 5u);
  EXPECT_EQ(stub.connections(), 1u);
  EXPECT_EQ(broker.stats().connects, 1u);
}

TEST(StubBroker, StopReleasesHungRequestsAndJoinsEveryThread) {
  auto stub = std::make_unique<StubBroker>();
  HttpBrokerConfig config = config_for(*stub);
  stub->set_handler([](const testing::StubRequest&) { return StubBehaviour::hang(); });
  std::vector<std::thread> callers;
  std::vector<OutcomeClass> classes(3, OutcomeClass::success);
  for (std::size_t i = 0; i < classes.size(); ++i) {
    callers.emplace_back([&, i] {
      HttpBroker broker(config);
      classes[i] = broker.attempt(kEpisode, HttpBroker::steady_ms() + 10000).result.outcome_class;
    });
  }
  ASSERT_TRUE(stub->wait_for_requests(3, std::chrono::seconds(5)));
  const Ms started_ms = HttpBroker::steady_ms();
  stub.reset();  // the destructor closes the hung connections and joins
  for (std::thread& caller : callers) caller.join();
  EXPECT_LT(HttpBroker::steady_ms() - started_ms, 5000);
  for (OutcomeClass c : classes) EXPECT_EQ(c, OutcomeClass::transient);
}

}  // namespace
}  // namespace turnstile::adapters
