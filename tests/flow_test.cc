#include "core/flow.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace turnstile::core {
namespace {

constexpr Ms kStart = 1000;

StreamRequest request() { return StreamRequest{"p", "c1", "tt1:1:1", "r1", kStart}; }

FlowConfig closed() { return FlowConfig{}; }

FlowConfig open() {
  FlowConfig config;
  config.fail_policy = FailPolicy::fail_open;
  return config;
}

std::vector<FlowEffect> drain(Flow& flow) {
  std::vector<FlowEffect> effects;
  while (std::optional<FlowEffect> effect = flow.poll()) effects.push_back(std::move(*effect));
  return effects;
}

// The single effect an input produced; throws (failing the test) if it is of another kind.
template <class T>
T only(const std::vector<FlowEffect>& effects) {
  EXPECT_EQ(effects.size(), 1u);
  return std::get<T>(effects.at(0));
}

StoreReply decided(Outcome outcome, Token token = kNoToken) {
  return StoreReply{Decision{outcome, token, {}, 1}, AttemptResult{OutcomeClass::success, std::nullopt}};
}

StoreReply store_error(OutcomeClass outcome_class) {
  return StoreReply{std::nullopt, AttemptResult{outcome_class, std::nullopt}};
}

BrokerReply resolved(std::vector<Stream> streams) {
  return BrokerReply{AttemptResult{OutcomeClass::success, std::nullopt}, std::move(streams)};
}

BrokerReply broker_error(OutcomeClass outcome_class) {
  return BrokerReply{AttemptResult{outcome_class, std::nullopt}, {}};
}

std::vector<Stream> two_streams() { return {{"1080p", "http://cdn/a.mkv"}, {"720p", "http://cdn/b.mkv?q=1"}}; }

// Starts `flow` at kStart and returns the gate's first call, whose id its reply carries.
StoreCall start(Flow& flow) {
  flow.start(kStart);
  return only<StoreCall>(drain(flow));
}

// A flow whose gate granted `outcome` with `token` at kStart + 10, and the
// calls it emitted so far (all drained).
struct Granted {
  Flow flow;
  StoreCall admit;
  BrokerCall resolve;
};

Granted granted_flow(Rng& rng, Outcome outcome, Token token, const FlowConfig& config = closed()) {
  Flow flow(config, request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 10, admit.call, decided(outcome, token), rng);
  const BrokerCall resolve = only<BrokerCall>(drain(flow));
  return Granted{std::move(flow), admit, resolve};
}

// A flow whose broker failed after the gate newly admitted `token`: the
// release (F5) runs. Returns the release's first call.
StoreCall releasing(Granted& granted, Rng& rng) {
  granted.flow.on_broker_reply(kStart + 100, granted.resolve.call, broker_error(OutcomeClass::permanent), rng);
  return only<StoreCall>(drain(granted.flow));
}

TEST(Flow, F1_StoreCallComesFirst) {
  Flow flow(closed(), request());
  EXPECT_FALSE(flow.poll().has_value());
  flow.start(kStart);
  const StoreCall call = only<StoreCall>(drain(flow));
  EXPECT_EQ(call.call, 1u);  // call ids count from 1
  EXPECT_EQ(call.attempt, 1);
  EXPECT_EQ(call.op.kind, OpKind::admit);
  EXPECT_EQ(call.op.client, "c1");
  EXPECT_EQ(call.op.episode, "tt1:1:1");
  EXPECT_EQ(call.op.request, "r1");
  EXPECT_EQ(call.op.issued_at, kStart);
  EXPECT_EQ(call.op.now, kStart);
  EXPECT_EQ(call.deadline, kStart + 300);  // R2 with the store's A
  EXPECT_EQ(flow.next_deadline(), kStart + 300);
  EXPECT_FALSE(flow.done());
}

TEST(Flow, F1_IssuedAtComesFromTheRequest) {
  StreamRequest req = request();
  req.issued_at = 900;
  Flow flow(closed(), req);
  const StoreCall call = start(flow);
  EXPECT_EQ(call.op.issued_at, 900);
  EXPECT_EQ(call.op.now, kStart);
}

TEST(Flow, F1_BrokerOnlyAfterAGrantedDecision) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 20, admit.call, decided(Outcome::admitted, 7), rng);
  const BrokerCall call = only<BrokerCall>(drain(flow));
  EXPECT_EQ(call.call, admit.call + 1);  // the next id, whatever the kind
  EXPECT_EQ(call.attempt, 1);
  EXPECT_EQ(call.episode, "tt1:1:1");
  EXPECT_EQ(call.deadline, kStart + 20 + 2500);  // R2 with the broker's A, from the gate's end
  EXPECT_EQ(flow.next_deadline(), kStart + 20 + 2500);
}

TEST(Flow, F2_EveryStreamUrlCarriesTheToken) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::admitted, 42);
  Flow& flow = granted.flow;
  flow.on_broker_reply(kStart + 100, granted.resolve.call, resolved(two_streams()), rng);
  const Respond respond = only<Respond>(drain(flow));
  EXPECT_EQ(respond.response,
            Response::granted({{"1080p", "http://cdn/a.mkv?session=42"}, {"720p", "http://cdn/b.mkv?q=1&session=42"}}));
  EXPECT_EQ(render_body(respond.response),
            R"({"streams":[{"name":"1080p","url":"http://cdn/a.mkv?session=42"},)"
            R"({"name":"720p","url":"http://cdn/b.mkv?q=1&session=42"}]})");
  EXPECT_TRUE(flow.done());
  EXPECT_FALSE(flow.next_deadline().has_value());
}

TEST(Flow, F2_ResumedAndReplayedGrantsResolveWithTheirToken) {
  for (Outcome outcome : {Outcome::resumed, Outcome::switched, Outcome::rotated, Outcome::admitted}) {
    Rng rng(1);
    Granted granted = granted_flow(rng, outcome, 9);
    Flow& flow = granted.flow;
    flow.on_broker_reply(kStart + 100, granted.resolve.call, resolved({{"s", "http://x/s"}}), rng);
    EXPECT_EQ(only<Respond>(drain(flow)).response, Response::granted({{"s", "http://x/s?session=9"}}))
        << outcome_name(outcome);
  }
}

TEST(Flow, G4_SupersededIsDeniedWithoutTheBroker) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, decided(Outcome::superseded), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::superseded));
  EXPECT_TRUE(flow.done());
}

TEST(Flow, G8_BlockedIsDeniedCapacityWithoutTheBroker) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, decided(Outcome::blocked_capacity), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::capacity));
}

TEST(Flow, R3_AGrantWithoutATokenIsMalformed) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, decided(Outcome::admitted, kNoToken), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::unavailable));
}

TEST(Flow, R3_ANonAdmitOutcomeIsMalformed) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, decided(Outcome::alive), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::unavailable));
}

TEST(Flow, F4_FailClosedAnswersUnavailableWithoutTheBroker) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, store_error(OutcomeClass::permanent), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::unavailable));
}

TEST(Flow, F4_FailClosedAfterTwoTimeouts) {
  Rng rng(1);
  Flow flow(closed(), request());
  flow.start(kStart);
  std::vector<FlowEffect> all = drain(flow);
  for (int i = 0; i < 10 && !flow.done(); ++i) {
    flow.on_timer(*flow.next_deadline(), rng);
    for (FlowEffect& effect : drain(flow)) all.push_back(std::move(effect));
  }
  ASSERT_TRUE(flow.done());
  // StoreCall 1, Wake, StoreCall 2, Respond: never a BrokerCall.
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(std::get<StoreCall>(all[0]).attempt, 1);
  EXPECT_TRUE(std::holds_alternative<Wake>(all[1]));
  EXPECT_EQ(std::get<StoreCall>(all[2]).attempt, 2);
  EXPECT_EQ(std::get<Respond>(all[3]).response, Response::denial(DenialReason::unavailable));
}

TEST(Flow, F4_FailOpenResolvesWithoutAToken) {
  Rng rng(1);
  Flow flow(open(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, store_error(OutcomeClass::permanent), rng);
  const BrokerCall call = only<BrokerCall>(drain(flow));
  EXPECT_EQ(call.episode, "tt1:1:1");
  flow.on_broker_reply(kStart + 50, call.call, resolved(two_streams()), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::granted(two_streams()));
}

TEST(Flow, F4_FailOpenStillHonoursTheGatesDenials) {
  Rng rng(1);
  Flow flow(open(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, decided(Outcome::blocked_capacity), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::capacity));
}

TEST(Flow, F4_F5_FailOpenBrokerFailureReleasesNothing) {
  Rng rng(1);
  Flow flow(open(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, store_error(OutcomeClass::permanent), rng);
  const BrokerCall call = only<BrokerCall>(drain(flow));
  flow.on_broker_reply(kStart + 50, call.call, broker_error(OutcomeClass::permanent), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::resolve_failed));
}

TEST(Flow, R3a_StoreRetryReusesTheRequestId) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall first = start(flow);
  flow.on_store_reply(kStart + 40, first.call, store_error(OutcomeClass::transient), rng);
  const Wake wake = only<Wake>(drain(flow));
  EXPECT_GE(wake.at, kStart + 40 + 10);  // R5 with the store's J
  EXPECT_LE(wake.at, kStart + 40 + 50);
  EXPECT_EQ(flow.next_deadline(), wake.at);
  flow.on_timer(wake.at, rng);
  const StoreCall second = only<StoreCall>(drain(flow));
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(second.call, first.call + 1);  // a new call, though the same request
  EXPECT_EQ(second.op.request, first.op.request);
  EXPECT_EQ(second.op.issued_at, first.op.issued_at);
  EXPECT_EQ(second.op.episode, first.op.episode);
  EXPECT_EQ(second.op.now, wake.at);  // the attempt's own time
  EXPECT_EQ(second.deadline, std::min(wake.at + 300, kStart + 800));
  flow.on_store_reply(wake.at + 10, second.call, decided(Outcome::admitted, 3), rng);
  (void)only<BrokerCall>(drain(flow));
}

TEST(Flow, R4_StaleStoreReplyIsIgnored) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall first = start(flow);
  flow.on_timer(first.deadline, rng);  // attempt 1 timed out
  const Wake wake = only<Wake>(drain(flow));
  // Attempt 1's reply arrives while the retry waits: its attempt is over.
  flow.on_store_reply(wake.at - 1, first.call, decided(Outcome::admitted, 5), rng);
  EXPECT_TRUE(drain(flow).empty());
  flow.on_timer(wake.at, rng);
  const StoreCall second = only<StoreCall>(drain(flow));
  // And again while attempt 2 runs: it is not attempt 2's answer.
  flow.on_store_reply(wake.at + 1, first.call, decided(Outcome::admitted, 5), rng);
  EXPECT_TRUE(drain(flow).empty());
  EXPECT_FALSE(flow.done());
  flow.on_store_reply(wake.at + 2, second.call, decided(Outcome::superseded), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::superseded));
}

TEST(Flow, R4_LateBrokerReplyOfAttemptOneIsIgnored) {
  const std::vector<BrokerReply> late_replies = {resolved(two_streams()), broker_error(OutcomeClass::transient),
                                                 broker_error(OutcomeClass::permanent)};
  for (std::size_t i = 0; i < late_replies.size(); ++i) {
    Rng rng(1);
    Granted granted = granted_flow(rng, Outcome::admitted, 2);
    Flow& flow = granted.flow;
    flow.on_timer(granted.resolve.deadline, rng);  // broker attempt 1 timed out
    const Wake wake = only<Wake>(drain(flow));
    flow.on_timer(wake.at, rng);
    const BrokerCall second = only<BrokerCall>(drain(flow));
    ASSERT_EQ(second.attempt, 2);
    // Attempt 1 answers at last, while attempt 2 runs: nothing moves.
    flow.on_broker_reply(wake.at + 1, granted.resolve.call, late_replies[i], rng);
    EXPECT_TRUE(drain(flow).empty()) << "late reply " << i;
    EXPECT_FALSE(flow.done());
    EXPECT_EQ(flow.next_deadline(), second.deadline);
    // Attempt 2's own reply decides, with its own streams.
    flow.on_broker_reply(wake.at + 2, second.call, resolved({{"s", "http://x/s"}}), rng);
    EXPECT_EQ(only<Respond>(drain(flow)).response, Response::granted({{"s", "http://x/s?session=2"}}))
        << "late reply " << i;
  }
}

TEST(Flow, F1_RepliesForAPhaseThatIsOverAreIgnored) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::resumed, 4);
  Flow& flow = granted.flow;
  // A duplicate store reply while resolving.
  flow.on_store_reply(kStart + 20, granted.admit.call, decided(Outcome::blocked_capacity), rng);
  EXPECT_TRUE(drain(flow).empty());
  flow.on_broker_reply(kStart + 30, granted.resolve.call, resolved({{"s", "http://x/s"}}), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::granted({{"s", "http://x/s?session=4"}}));
}

TEST(Flow, F1_RepliesOfTheOtherKindOrAnUnknownCallAreIgnored) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  // The store call's id on a broker reply, and ids never emitted.
  flow.on_broker_reply(kStart + 1, admit.call, resolved(two_streams()), rng);
  flow.on_store_reply(kStart + 2, admit.call + 1, decided(Outcome::superseded), rng);
  flow.on_store_reply(kStart + 3, 0, decided(Outcome::superseded), rng);
  EXPECT_TRUE(drain(flow).empty());
  flow.on_store_reply(kStart + 4, admit.call, decided(Outcome::admitted, 5), rng);
  const BrokerCall resolve = only<BrokerCall>(drain(flow));
  // The broker call's id on a store reply.
  flow.on_store_reply(kStart + 5, resolve.call, decided(Outcome::blocked_capacity), rng);
  EXPECT_TRUE(drain(flow).empty());
  EXPECT_FALSE(flow.done());
  flow.on_broker_reply(kStart + 6, resolve.call, resolved({{"s", "http://x/s"}}), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::granted({{"s", "http://x/s?session=5"}}));
}

TEST(Flow, F6_ADoneFlowAcceptsNothing) {
  Rng rng(1);
  Flow flow(closed(), request());
  const StoreCall admit = start(flow);
  flow.on_store_reply(kStart + 5, admit.call, decided(Outcome::superseded), rng);
  (void)only<Respond>(drain(flow));
  flow.on_store_reply(kStart + 6, admit.call, decided(Outcome::admitted, 1), rng);
  flow.on_store_reply(kStart + 6, admit.call + 1, decided(Outcome::admitted, 1), rng);
  flow.on_broker_reply(kStart + 7, admit.call + 1, resolved(two_streams()), rng);
  flow.on_timer(kStart + 100000, rng);
  EXPECT_TRUE(drain(flow).empty());
  EXPECT_TRUE(flow.done());
  EXPECT_FALSE(flow.next_deadline().has_value());
}

TEST(Flow, F5_FailedResolveReleasesANewToken) {
  for (Outcome outcome : {Outcome::admitted, Outcome::rotated, Outcome::switched}) {
    Rng rng(1);
    Granted granted = granted_flow(rng, outcome, 11);
    Flow& flow = granted.flow;
    flow.on_broker_reply(kStart + 100, granted.resolve.call, broker_error(OutcomeClass::permanent), rng);
    const StoreCall release = only<StoreCall>(drain(flow));
    EXPECT_EQ(release.call, granted.resolve.call + 1);
    EXPECT_EQ(release.attempt, 1);
    EXPECT_EQ(release.op.kind, OpKind::release) << outcome_name(outcome);
    EXPECT_EQ(release.op.client, "c1");
    EXPECT_EQ(release.op.token, 11u);
    EXPECT_EQ(release.op.now, kStart + 100);
    EXPECT_EQ(release.deadline, kStart + 100 + 300);
    EXPECT_FALSE(flow.done());  // F5: released before answering
    flow.on_store_reply(kStart + 110, release.call, decided(Outcome::released), rng);
    EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::resolve_failed));
  }
}

TEST(Flow, F5_FailedResolveAfterResumedReleasesNothing) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::resumed, 11);
  Flow& flow = granted.flow;
  flow.on_broker_reply(kStart + 100, granted.resolve.call, broker_error(OutcomeClass::permanent), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::resolve_failed));
}

TEST(Flow, F5_ReleaseGoneStillAnswers) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::admitted, 11);
  const StoreCall release = releasing(granted, rng);
  granted.flow.on_store_reply(kStart + 110, release.call, decided(Outcome::gone), rng);
  EXPECT_EQ(only<Respond>(drain(granted.flow)).response, Response::denial(DenialReason::resolve_failed));
}

TEST(Flow, F5_ReleaseFailureStillAnswers) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::admitted, 11);
  const StoreCall release = releasing(granted, rng);
  granted.flow.on_store_reply(kStart + 110, release.call, store_error(OutcomeClass::permanent), rng);
  EXPECT_EQ(only<Respond>(drain(granted.flow)).response, Response::denial(DenialReason::resolve_failed));
}

TEST(Flow, F5_ReleaseIgnoresALateAdmitAnswer) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::admitted, 11);
  Flow& flow = granted.flow;
  const StoreCall release = releasing(granted, rng);
  // The admit's call answers again: an earlier phase's call, not the release's.
  flow.on_store_reply(kStart + 110, granted.admit.call, decided(Outcome::admitted, 11), rng);
  EXPECT_TRUE(drain(flow).empty());
  EXPECT_FALSE(flow.done());
  flow.on_store_reply(kStart + 120, release.call, decided(Outcome::released), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::resolve_failed));
}

TEST(Flow, R3_AMalformedReleaseAnswerIsPermanent) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::admitted, 11);
  Flow& flow = granted.flow;
  const StoreCall release = releasing(granted, rng);
  // The release's own call answers with an admit's outcome: permanent, so no retry.
  flow.on_store_reply(kStart + 110, release.call, decided(Outcome::admitted, 11), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::resolve_failed));
  EXPECT_TRUE(flow.done());
}

TEST(Flow, F5_LateGateFailureDuringReleaseIsIgnored) {
  for (OutcomeClass late : {OutcomeClass::transient, OutcomeClass::permanent}) {
    Rng rng(1);
    Flow flow(closed(), request());
    const StoreCall admit1 = start(flow);
    flow.on_timer(admit1.deadline, rng);  // gate attempt 1 timed out
    const Wake wake = only<Wake>(drain(flow));
    flow.on_timer(wake.at, rng);
    const StoreCall admit2 = only<StoreCall>(drain(flow));
    flow.on_store_reply(wake.at + 10, admit2.call, decided(Outcome::admitted, 11), rng);
    const BrokerCall resolve = only<BrokerCall>(drain(flow));
    flow.on_broker_reply(wake.at + 20, resolve.call, broker_error(OutcomeClass::permanent), rng);
    const StoreCall release = only<StoreCall>(drain(flow));
    ASSERT_EQ(release.op.kind, OpKind::release);
    ASSERT_EQ(release.attempt, admit1.attempt);  // the very ambiguity call ids remove

    // The gate's timed-out attempt 1 fails at last, during the release.
    flow.on_store_reply(wake.at + 30, admit1.call, store_error(late), rng);
    EXPECT_TRUE(drain(flow).empty()) << outcome_class_name(late);
    EXPECT_FALSE(flow.done());
    EXPECT_EQ(flow.next_deadline(), release.deadline);

    // The release still ends by its own deadline: it times out and is retried.
    flow.on_timer(release.deadline, rng);
    const Wake retry = only<Wake>(drain(flow));
    flow.on_timer(retry.at, rng);
    const StoreCall release2 = only<StoreCall>(drain(flow));
    EXPECT_EQ(release2.op.kind, OpKind::release);
    EXPECT_EQ(release2.attempt, 2);
    // Every earlier call, of any phase, stays stale.
    for (std::uint32_t stale = admit1.call; stale < release2.call; ++stale) {
      flow.on_store_reply(retry.at + 1, stale, store_error(late), rng);
    }
    EXPECT_TRUE(drain(flow).empty()) << outcome_class_name(late);
    flow.on_store_reply(retry.at + 5, release2.call, decided(Outcome::released), rng);
    EXPECT_EQ(only<Respond>(drain(flow)).response, Response::denial(DenialReason::resolve_failed));
  }
}

TEST(Flow, F5_BrokerTransientThenSuccessNeedsNoRelease) {
  Rng rng(1);
  Granted granted = granted_flow(rng, Outcome::admitted, 2);
  Flow& flow = granted.flow;
  flow.on_broker_reply(kStart + 100, granted.resolve.call, broker_error(OutcomeClass::transient), rng);
  const Wake wake = only<Wake>(drain(flow));
  EXPECT_GE(wake.at, kStart + 100 + 50);  // R5 with the broker's J
  EXPECT_LE(wake.at, kStart + 100 + 250);
  flow.on_timer(wake.at, rng);
  const BrokerCall second = only<BrokerCall>(drain(flow));
  EXPECT_EQ(second.attempt, 2);
  flow.on_broker_reply(wake.at + 5, second.call, resolved({{"s", "http://x/s"}}), rng);
  EXPECT_EQ(only<Respond>(drain(flow)).response, Response::granted({{"s", "http://x/s?session=2"}}));
}

struct HungRun {
  Ms respond_at = -1;
  Response response;
  int store_calls = 0;
  int broker_calls = 0;
  std::vector<std::uint32_t> call_ids;  // of every StoreCall and BrokerCall, in emission order
};

// Every call hangs until its deadline, except that the admit's attempt
// `admit_answered_on` answers `admitted` at the very end of its deadline. Time
// advances only to next_deadline(), as a punctual driver would.
HungRun run_hung(const FlowConfig& config, int admit_answered_on, std::uint64_t seed) {
  Rng rng(seed);
  Flow flow(config, request());
  HungRun run;
  flow.start(kStart);
  Ms now = kStart;
  for (int step = 0; step < 50; ++step) {
    std::optional<StoreCall> to_answer;
    for (FlowEffect& effect : drain(flow)) {
      if (auto* call = std::get_if<StoreCall>(&effect)) {
        ++run.store_calls;
        run.call_ids.push_back(call->call);
        if (call->op.kind == OpKind::admit && call->attempt == admit_answered_on) to_answer = *call;
      } else if (auto* broker = std::get_if<BrokerCall>(&effect)) {
        ++run.broker_calls;
        run.call_ids.push_back(broker->call);
      } else if (auto* respond = std::get_if<Respond>(&effect)) {
        run.respond_at = now;
        run.response = respond->response;
        return run;
      }
    }
    if (to_answer) {
      now = to_answer->deadline;
      flow.on_store_reply(now, to_answer->call, decided(Outcome::admitted, 1), rng);
    } else {
      now = flow.next_deadline().value();
      flow.on_timer(now, rng);
    }
  }
  return run;
}

TEST(Flow, F6_HungStoreBrokerAndReleaseAnswerWithinTheSumOfBudgets) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const HungRun run = run_hung(closed(), 2, seed);
    ASSERT_GE(run.respond_at, 0) << "seed " << seed;
    EXPECT_EQ(run.response, Response::denial(DenialReason::resolve_failed));
    EXPECT_EQ(run.store_calls, 4);  // two admits, two releases
    EXPECT_EQ(run.broker_calls, 2);
    EXPECT_LE(run.respond_at, kStart + 800 + 6000 + 800) << "seed " << seed;
    // Two timed-out attempts per phase, each with at least the smallest delay between.
    EXPECT_GE(run.respond_at, kStart + (300 + 10 + 300) + (2500 + 50 + 2500) + (300 + 10 + 300));
  }
}

TEST(Flow, F1_CallIdsIncreaseAcrossPhasesAndAreNeverReused) {
  // Two admits, two resolves, two releases: one id each, in order, none twice.
  const HungRun run = run_hung(closed(), 2, 5);
  EXPECT_EQ(run.call_ids, (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6}));
  // One attempt per phase: the ids still run on from phase to phase.
  FlowConfig whole_budget;
  whole_budget.store = RetryConfig{800, 800, 10, 50, 50};
  whole_budget.broker = RetryConfig{6000, 6000, 50, 250, 250};
  EXPECT_EQ(run_hung(whole_budget, 1, 5).call_ids, (std::vector<std::uint32_t>{1, 2, 3}));
}

TEST(Flow, F6_WholeBudgetAttemptsAnswerAtExactlyTheSumOfBudgets) {
  FlowConfig config;
  config.store = RetryConfig{800, 800, 10, 50, 50};
  config.broker = RetryConfig{6000, 6000, 50, 250, 250};
  const HungRun run = run_hung(config, 1, 7);
  EXPECT_EQ(run.store_calls, 2);  // one admit, one release: no time for a retry
  EXPECT_EQ(run.broker_calls, 1);
  EXPECT_EQ(run.response, Response::denial(DenialReason::resolve_failed));
  EXPECT_EQ(run.respond_at, kStart + 800 + 6000 + 800);
}

TEST(Flow, F6_FailOpenHungStoreAndBrokerAnswerInTime) {
  Rng rng(3);
  Flow flow(open(), request());
  flow.start(kStart);
  Ms now = kStart;
  int broker_calls = 0;
  std::optional<Response> response;
  for (int step = 0; step < 50 && !response; ++step) {
    for (FlowEffect& effect : drain(flow)) {
      if (std::holds_alternative<BrokerCall>(effect)) ++broker_calls;
      if (auto* respond = std::get_if<Respond>(&effect)) response = respond->response;
    }
    if (!response) {
      now = *flow.next_deadline();
      flow.on_timer(now, rng);
    }
  }
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(*response, Response::denial(DenialReason::resolve_failed));
  EXPECT_EQ(broker_calls, 2);
  EXPECT_LE(now, kStart + 800 + 6000);
}

TEST(Flow, F6_ALateDriverStillGetsOneAnswer) {
  Rng rng(1);
  Flow flow(closed(), request());
  flow.start(kStart);
  (void)drain(flow);
  // The driver sleeps far past every deadline; each late timer moves the flow on.
  std::optional<Response> response;
  for (int step = 0; step < 10 && !response; ++step) {
    flow.on_timer(kStart + 100000, rng);
    for (FlowEffect& effect : drain(flow)) {
      if (auto* respond = std::get_if<Respond>(&effect)) response = respond->response;
    }
  }
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(*response, Response::denial(DenialReason::unavailable));
}

TEST(Flow, R8_SameSeedSameEffects) {
  const HungRun a = run_hung(closed(), 2, 99);
  const HungRun b = run_hung(closed(), 2, 99);
  EXPECT_EQ(a.respond_at, b.respond_at);
  EXPECT_EQ(a.response, b.response);
  EXPECT_EQ(a.call_ids, b.call_ids);
}

}  // namespace
}  // namespace turnstile::core
