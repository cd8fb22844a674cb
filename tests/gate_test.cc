#include "core/gate.h"

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

namespace turnstile::core {

// Readable failure messages: gtest finds these through argument-dependent
// lookup, so they live in the types' own namespace.
void PrintTo(const Decision& d, std::ostream* os) {
  *os << "{" << outcome_name(d.outcome) << ", token " << d.token << ", victim '" << d.victim << "', held "
      << d.held << "}";
}

void PrintTo(const Session& s, std::ostream* os) {
  *os << "{" << s.client << ", " << s.episode << ", token " << s.token << ", admitted_at " << s.admitted_at
      << ", last_seen " << s.last_seen << ", last_request " << s.last_request << ", last_issued " << s.last_issued
      << ", last_decision ";
  PrintTo(s.last_decision, os);
  *os << "}";
}

void PrintTo(const PoolState& p, std::ostream* os) {
  *os << "{last_now " << p.last_now << ", last_token " << p.last_token << ", sessions [";
  for (const Session& s : p.sessions) {
    PrintTo(s, os);
    *os << " ";
  }
  *os << "]}";
}

namespace {

// One pool and its config, with one call per kind of operation.
struct Pool {
  GateConfig config{2, 10, 5};
  PoolState state;

  Decision admit(const std::string& client, const std::string& episode, const std::string& request, Ms issued_at,
                 Ms now) {
    return apply(state, Op{OpKind::admit, client, episode, request, issued_at, now, kNoToken}, config);
  }
  // Most tests have the route receive the request at the store's time.
  Decision admit(const std::string& client, const std::string& episode, const std::string& request, Ms now) {
    return admit(client, episode, request, now, now);
  }
  Decision heartbeat(const std::string& client, Token token, Ms now) {
    return apply(state, Op{OpKind::heartbeat, client, {}, {}, 0, now, token}, config);
  }
  Decision release(const std::string& client, Token token, Ms now) {
    return apply(state, Op{OpKind::release, client, {}, {}, 0, now, token}, config);
  }
  const Session* session(const std::string& client) const { return find_session(state, client); }
  std::int64_t held() const { return static_cast<std::int64_t>(state.sessions.size()); }
};

Decision granted(Outcome outcome, Token token, std::int64_t held) { return Decision{outcome, token, "", held}; }
Decision rotated(Token token, const std::string& victim, std::int64_t held) {
  return Decision{Outcome::rotated, token, victim, held};
}
Decision plain(Outcome outcome, std::int64_t held) { return Decision{outcome, kNoToken, "", held}; }

// The state the pool should have after an operation that changes nothing
// beyond G1's clock.
PoolState with_clock(PoolState pool, Ms now) {
  pool.last_now = now;
  return pool;
}

// ---- check_config -------------------------------------------------------

TEST(Gate, CheckConfig_AcceptsDefaultsAndBounds) {
  EXPECT_FALSE(check_config(GateConfig{}).has_value());
  EXPECT_FALSE(check_config(GateConfig{1, 1, 0}).has_value());
  EXPECT_FALSE(check_config(GateConfig{kMaxCapacity, kMaxTimeMs, kMaxTimeMs}).has_value());
}

TEST(Gate, CheckConfig_RejectsCapacityOutsideOneToMax) {
  for (std::int64_t capacity : {std::int64_t{0}, std::int64_t{-1}, kMaxCapacity + 1}) {
    const auto error = check_config(GateConfig{capacity, 10, 5});
    ASSERT_TRUE(error.has_value()) << capacity;
    EXPECT_EQ(error->field, "capacity");
    EXPECT_FALSE(error->expected.empty());
  }
}

TEST(Gate, CheckConfig_RejectsTtlNotPositiveOrTooLarge) {
  for (Ms ttl_ms : {Ms{0}, Ms{-5}, kMaxTimeMs + 1}) {
    const auto error = check_config(GateConfig{4, ttl_ms, 5});
    ASSERT_TRUE(error.has_value()) << ttl_ms;
    EXPECT_EQ(error->field, "ttl");
    EXPECT_FALSE(error->expected.empty());
  }
}

TEST(Gate, CheckConfig_RejectsNegativeOrTooLargeGrace) {
  for (Ms grace_ms : {Ms{-1}, kMaxTimeMs + 1}) {
    const auto error = check_config(GateConfig{4, 10, grace_ms});
    ASSERT_TRUE(error.has_value()) << grace_ms;
    EXPECT_EQ(error->field, "grace");
    EXPECT_FALSE(error->expected.empty());
  }
}

TEST(Gate, CheckConfig_NamesTheFirstInvalidField) {
  EXPECT_EQ(check_config(GateConfig{0, 0, -1})->field, "capacity");
  EXPECT_EQ(check_config(GateConfig{1, 0, -1})->field, "ttl");
}

// ---- outcome names (SPEC D) ---------------------------------------------

TEST(Gate, OutcomeNames_AreTheSpecWordsAndRoundTrip) {
  const std::array<std::pair<Outcome, std::string_view>, 9> names = {{
      {Outcome::admitted, "admitted"},
      {Outcome::resumed, "resumed"},
      {Outcome::switched, "switched"},
      {Outcome::rotated, "rotated"},
      {Outcome::superseded, "superseded"},
      {Outcome::blocked_capacity, "blocked_capacity"},
      {Outcome::alive, "alive"},
      {Outcome::gone, "gone"},
      {Outcome::released, "released"},
  }};
  for (const auto& [outcome, name] : names) {
    EXPECT_EQ(outcome_name(outcome), name);
    EXPECT_EQ(outcome_from_name(name), outcome) << name;
  }
}

TEST(Gate, OutcomeFromName_RejectsAnythingElse) {
  for (std::string_view name : {"", "Admitted", "blocked", "admitted ", "capacity", "blocked_capacity\n"}) {
    EXPECT_EQ(outcome_from_name(name), std::nullopt) << name;
  }
}

TEST(Gate, IsGrantedAndIsNewToken_FollowG9) {
  EXPECT_TRUE(is_granted(Outcome::admitted));
  EXPECT_TRUE(is_granted(Outcome::resumed));
  EXPECT_TRUE(is_granted(Outcome::switched));
  EXPECT_TRUE(is_granted(Outcome::rotated));
  EXPECT_TRUE(is_new_token(Outcome::admitted));
  EXPECT_TRUE(is_new_token(Outcome::switched));
  EXPECT_TRUE(is_new_token(Outcome::rotated));
  EXPECT_FALSE(is_new_token(Outcome::resumed));
  for (Outcome other : {Outcome::superseded, Outcome::blocked_capacity, Outcome::alive, Outcome::gone,
                        Outcome::released}) {
    EXPECT_FALSE(is_granted(other)) << outcome_name(other);
    EXPECT_FALSE(is_new_token(other)) << outcome_name(other);
  }
}

// ---- ages ---------------------------------------------------------------

TEST(Gate, AgeOf_LiveUpToTtlIdleUpToTtlPlusGraceThenGone) {
  Session session;
  session.last_seen = 100;
  const GateConfig config{1, 10, 5};
  EXPECT_EQ(age_of(session, 100, config), Age::live);
  EXPECT_EQ(age_of(session, 110, config), Age::live);
  EXPECT_EQ(age_of(session, 111, config), Age::idle);
  EXPECT_EQ(age_of(session, 115, config), Age::idle);
  EXPECT_EQ(age_of(session, 116, config), Age::gone);
}

TEST(Gate, AgeOf_GraceZeroHasNoIdleAge) {
  Session session;
  session.last_seen = 100;
  const GateConfig config{1, 10, 0};
  EXPECT_EQ(age_of(session, 110, config), Age::live);
  EXPECT_EQ(age_of(session, 111, config), Age::gone);
}

TEST(Gate, AgeOf_HandlesTheLargestTimes) {
  Session session;
  session.last_seen = 0;
  const GateConfig config{1, kMaxTimeMs, kMaxTimeMs};
  EXPECT_EQ(age_of(session, kMaxTimeMs, config), Age::live);
  session.last_seen = kMaxTimeMs;
  EXPECT_EQ(age_of(session, kMaxTimeMs, GateConfig{1, 1, 0}), Age::live);
}

// ---- G1 -----------------------------------------------------------------

TEST(Gate, G1_ClockNeverRunsBackwards) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 1000), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 400, 500), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.state.last_now, 1000);
  ASSERT_NE(p.session("c2"), nullptr);
  EXPECT_EQ(p.session("c2")->admitted_at, 1000);
  EXPECT_EQ(p.session("c2")->last_seen, 1000);
  EXPECT_EQ(p.session("c2")->last_issued, 400);
}

TEST(Gate, G1_BackwardsClockAgesSessionsFromTheKeptClock) {
  Pool p;  // C=2, T=10, G=5
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 110), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.heartbeat("c9", 7, 114), plain(Outcome::gone, 2));
  // At the caller's 20, c2 would be seen in the future; the pool's 114 counts.
  EXPECT_EQ(p.heartbeat("c2", 2, 20), plain(Outcome::alive, 2));
  EXPECT_EQ(p.session("c2")->last_seen, 114);
  // At 50 c1 would look live; at the kept 114 it is idle (age 14) and rotates.
  EXPECT_EQ(p.admit("c3", "e1", "r3", 50, 50), rotated(3, "c1", 2));
  EXPECT_EQ(p.session("c3")->admitted_at, 114);
  EXPECT_EQ(p.state.last_now, 114);
}

TEST(Gate, G1_BackwardsClockDoesNotReviveAPrunedSession) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.heartbeat("c9", 5, 116), plain(Outcome::gone, 0));
  EXPECT_EQ(p.heartbeat("c1", 1, 105), plain(Outcome::gone, 0));
  EXPECT_EQ(p.state.last_now, 116);
}

// ---- G2 -----------------------------------------------------------------

TEST(Gate, G2_LiveAtExactlyTtlIsNeitherPrunedNorRotated) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 110), plain(Outcome::blocked_capacity, 1));
  EXPECT_NE(p.session("c1"), nullptr);
  EXPECT_EQ(p.admit("c2", "e1", "r3", 111), rotated(2, "c1", 1));
}

TEST(Gate, G2_IdleAtExactlyTtlPlusGraceIsKept) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.heartbeat("c2", 9, 115), plain(Outcome::gone, 1));
  ASSERT_NE(p.session("c1"), nullptr);
  EXPECT_EQ(p.heartbeat("c1", 1, 115), plain(Outcome::alive, 1));
}

TEST(Gate, G2_GoneAtTtlPlusGracePlusOneIsPruned) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.heartbeat("c2", 9, 116), plain(Outcome::gone, 0));
  EXPECT_EQ(p.state, (PoolState{116, 1, {}}));
  EXPECT_EQ(p.heartbeat("c1", 1, 116), plain(Outcome::gone, 0));
}

TEST(Gate, G2_PrunedSessionFreesItsSlotWithoutRotation) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 116), granted(Outcome::admitted, 2, 1));
  EXPECT_EQ(p.session("c1"), nullptr);
}

TEST(Gate, G2_GraceZeroGoesFromLiveStraightToGone) {
  Pool p;
  p.config = GateConfig{1, 10, 0};
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 110), plain(Outcome::blocked_capacity, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r3", 111), granted(Outcome::admitted, 2, 1));
  EXPECT_EQ(p.session("c1"), nullptr);
}

TEST(Gate, G2_PrunedOwnerIsAdmittedAfreshNotResumed) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 116), granted(Outcome::admitted, 2, 1));
  EXPECT_EQ(p.session("c1")->admitted_at, 116);
}

// ---- G3 -----------------------------------------------------------------

TEST(Gate, G3_ReplayReturnsTheRecordedDecisionAndChangesNothing) {
  Pool p;
  p.config.capacity = 4;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 101), granted(Outcome::admitted, 2, 2));
  const PoolState before = p.state;
  // Outcome and token as recorded; held is the pool's after this operation.
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 103), granted(Outcome::admitted, 1, 2));
  EXPECT_EQ(p.state, with_clock(before, 103));
  EXPECT_EQ(p.session("c1")->last_decision, granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.session("c1")->last_seen, 100);
}

TEST(Gate, G3_ReplayMatchesOnRequestIdAlone) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  const PoolState before = p.state;
  EXPECT_EQ(p.admit("c1", "e2", "r1", 50, 104), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.state, with_clock(before, 104));
}

TEST(Gate, G3_ReplayAfterHeartbeatsReturnsTheSameToken) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 105), plain(Outcome::alive, 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 112), plain(Outcome::alive, 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 120), plain(Outcome::alive, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 126), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.session("c1")->last_seen, 120);
  EXPECT_EQ(p.state.last_token, 1u);
}

TEST(Gate, G3_ReplayOfResumedAndSwitchedReturnsThem) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 101), granted(Outcome::resumed, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 102), granted(Outcome::resumed, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r3", 103), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r3", 104), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(p.state.last_token, 2u);
  EXPECT_EQ(p.session("c1")->last_seen, 103);
}

TEST(Gate, G3_ReplayOfRotationNamesTheSameVictimAndRotatesNoOther) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 112), rotated(2, "c1", 1));
  const PoolState before = p.state;
  EXPECT_EQ(p.admit("c2", "e1", "r2", 112, 113), rotated(2, "c1", 1));
  EXPECT_EQ(p.state, with_clock(before, 113));
}

TEST(Gate, G3_ReplayAfterRotatedOutIsANewRequest) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 112), rotated(2, "c1", 1));
  // c2 is live: the replayed r1 is a newcomer at capacity and is blocked.
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 113), plain(Outcome::blocked_capacity, 1));
  // c2 idle (age 13): the same replay now rotates it out.
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 125), rotated(3, "c2", 1));
  const Session expected{"c1", "e1", 3, 125, 125, "r1", 100, rotated(3, "c2", 1)};
  ASSERT_NE(p.session("c1"), nullptr);
  EXPECT_EQ(*p.session("c1"), expected);
}

TEST(Gate, G3_ReplayAfterReleaseOrPruneIsAdmittedAfresh) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.release("c1", 1, 101), plain(Outcome::released, 0));
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 102), granted(Outcome::admitted, 2, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 118), granted(Outcome::admitted, 3, 1));
  EXPECT_EQ(p.session("c1")->admitted_at, 118);
}

TEST(Gate, G3_ReplayAfterASwitchByANewerRequestIsSuperseded) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r2", 105), granted(Outcome::switched, 2, 1));
  const PoolState before = p.state;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100, 106), plain(Outcome::superseded, 1));
  EXPECT_EQ(p.state, with_clock(before, 106));
  EXPECT_EQ(p.session("c1")->episode, "e2");
}

// ---- G4 -----------------------------------------------------------------

TEST(Gate, G4_LateRetryIsSupersededAndChangesNothing) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e2", "r2", 200, 200), granted(Outcome::admitted, 1, 1));
  const PoolState before = p.state;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 150, 201), plain(Outcome::superseded, 1));
  EXPECT_EQ(p.state, with_clock(before, 201));
  // Same episode, still older: superseded too, and last_seen is not refreshed.
  EXPECT_EQ(p.admit("c1", "e2", "r0", 199, 202), plain(Outcome::superseded, 1));
  EXPECT_EQ(p.session("c1")->last_seen, 200);
}

TEST(Gate, G4_EqualIssuedAtIsDecidedByRequestIdBytewise) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r5", 200, 200), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r4", 200, 201), plain(Outcome::superseded, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r6", 200, 202), granted(Outcome::switched, 2, 1));
  // "r10" < "r6" byte by byte.
  EXPECT_EQ(p.admit("c1", "e1", "r10", 200, 203), plain(Outcome::superseded, 1));
  EXPECT_EQ(p.session("c1")->episode, "e2");
  EXPECT_EQ(p.session("c1")->last_request, "r6");
}

TEST(Gate, G4_LaterIssuedAtWinsWhateverTheRequestId) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r5", 200, 200), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "a", 201, 201), granted(Outcome::resumed, 1, 1));
  EXPECT_EQ(p.session("c1")->last_request, "a");
  EXPECT_EQ(p.session("c1")->last_issued, 201);
}

TEST(Gate, G4_ComparesOnlyWithTheClientsOwnSession) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r9", 500, 500), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 10, 501), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.release("c1", 1, 502), plain(Outcome::released, 1));
  // Without a session there is no applied intent to compare with.
  EXPECT_EQ(p.admit("c1", "e2", "r1", 10, 503), granted(Outcome::admitted, 3, 2));
}

TEST(Gate, G4_SupersededOwnerAtCapacityRotatesNobody) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r2", 100, 100), granted(Outcome::admitted, 1, 1));
  const PoolState before = p.state;
  EXPECT_EQ(p.admit("c1", "e2", "r1", 90, 113), plain(Outcome::superseded, 1));
  EXPECT_EQ(p.state, with_clock(before, 113));
}

// ---- G5 -----------------------------------------------------------------

TEST(Gate, G5_SameEpisodeResumesWithTheSameToken) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 107, 108), granted(Outcome::resumed, 1, 1));
  const Session expected{"c1", "e1", 1, 100, 108, "r2", 107, granted(Outcome::resumed, 1, 1)};
  EXPECT_EQ(*p.session("c1"), expected);
  EXPECT_EQ(p.state.last_token, 1u);
}

TEST(Gate, G5_OtherEpisodeSwitchesWithANewTokenKeepingSlotAndAdmittedAt) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 101), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c1", "e2", "r3", 104, 105), granted(Outcome::switched, 3, 2));
  const Session expected{"c1", "e2", 3, 100, 105, "r3", 104, granted(Outcome::switched, 3, 2)};
  ASSERT_EQ(p.state.sessions.size(), 2u);
  EXPECT_EQ(p.state.sessions[0], expected);
  EXPECT_EQ(p.state.sessions[1].client, "c2");
}

TEST(Gate, G5_IdleOwnerIsNeverBlockedWhenFull) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 113), granted(Outcome::resumed, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r3", 128), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(p.session("c1")->admitted_at, 100);
  EXPECT_EQ(p.session("c1")->last_seen, 128);
}

TEST(Gate, G5_OwnerIsNeverBlockedWhenCapacityWasLoweredBelowHeld) {
  Pool p;
  p.config.capacity = 3;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r2", 100), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c3", "e1", "r3", 100), granted(Outcome::admitted, 3, 3));
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c2", "e1", "r4", 101), granted(Outcome::resumed, 2, 3));
  EXPECT_EQ(p.admit("c3", "e2", "r5", 102), granted(Outcome::switched, 4, 3));
}

// ---- G6 -----------------------------------------------------------------

TEST(Gate, G6_FreeSlotAdmitsWithANewToken) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e2", "r1", 100), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c3", "e1", "r1", 100), plain(Outcome::blocked_capacity, 2));
}

// ---- G7 -----------------------------------------------------------------

TEST(Gate, G7_RotatesOldestIdle) {
  Pool p;
  p.config.capacity = 3;
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 102), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c", "e1", "r1", 104), granted(Outcome::admitted, 3, 3));
  // At 114: a is idle (14), b idle (12), c live at exactly T.
  EXPECT_EQ(p.admit("d", "e1", "r1", 114), rotated(4, "a", 3));
  EXPECT_EQ(p.admit("e", "e1", "r1", 114), rotated(5, "b", 3));
  EXPECT_EQ(p.admit("f", "e1", "r1", 114), plain(Outcome::blocked_capacity, 3));
  EXPECT_NE(p.session("c"), nullptr);
}

TEST(Gate, G7_LastSeenDecidesBeforeAdmittedAt) {
  Pool p;
  p.config = GateConfig{2, 10, 10};
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 102), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.heartbeat("a", 1, 104), plain(Outcome::alive, 2));
  // At 115 both are idle; b was seen last at 102, a at 104.
  EXPECT_EQ(p.admit("c", "e1", "r1", 115), rotated(3, "b", 2));
}

TEST(Gate, G7_TieOnLastSeenIsDecidedByAdmittedAt) {
  Pool p;
  EXPECT_EQ(p.admit("b", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("a", "e1", "r1", 102), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.heartbeat("a", 2, 104), plain(Outcome::alive, 2));
  EXPECT_EQ(p.heartbeat("b", 1, 104), plain(Outcome::alive, 2));
  // Both seen at 104 and idle at 116: b was admitted first, whatever its id.
  EXPECT_EQ(p.admit("c", "e1", "r1", 116), rotated(3, "b", 2));
}

TEST(Gate, G7_TieOnLastSeenAndAdmittedAtIsDecidedByClientId) {
  Pool p;
  EXPECT_EQ(p.admit("b", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 2, 2));
  // b was created first, but "a" < "b" decides.
  EXPECT_EQ(p.admit("c", "e3", "r7", 111, 112), rotated(3, "a", 2));
  const Session expected{"c", "e3", 3, 112, 112, "r7", 111, rotated(3, "a", 2)};
  EXPECT_EQ(*p.session("c"), expected);
  EXPECT_EQ(p.session("a"), nullptr);
  EXPECT_NE(p.session("b"), nullptr);
}

TEST(Gate, G7_LiveSessionIsNotRotatedEvenIfAdmittedFirst) {
  Pool p;
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 102), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.heartbeat("a", 1, 110), plain(Outcome::alive, 2));
  EXPECT_EQ(p.admit("c", "e1", "r1", 113), rotated(3, "b", 2));
  EXPECT_EQ(p.admit("d", "e1", "r1", 113), plain(Outcome::blocked_capacity, 2));
}

TEST(Gate, G7_VictimsTokenDies) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 111), rotated(2, "a", 1));
  EXPECT_EQ(p.heartbeat("a", 1, 111), plain(Outcome::gone, 1));
  EXPECT_EQ(p.release("a", 1, 111), plain(Outcome::gone, 1));
  EXPECT_EQ(p.heartbeat("b", 2, 111), plain(Outcome::alive, 1));
}

// ---- G8 -----------------------------------------------------------------

TEST(Gate, G8_BlockedChangesNothingButTheClockAndPrune) {
  Pool p;
  p.config.capacity = 3;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 10), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 20), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c3", "e1", "r1", 20), granted(Outcome::admitted, 3, 3));
  p.config.capacity = 2;
  PoolState expected = with_clock(p.state, 26);
  expected.sessions.erase(expected.sessions.begin());  // c1 is gone at 26
  EXPECT_EQ(p.admit("c4", "e1", "r1", 26), plain(Outcome::blocked_capacity, 2));
  EXPECT_EQ(p.state, expected);
  EXPECT_EQ(p.admit("c4", "e1", "r2", 27), plain(Outcome::blocked_capacity, 2));
  EXPECT_EQ(p.state, with_clock(expected, 27));
}

// ---- G9 -----------------------------------------------------------------

TEST(Gate, G9_TokensCountUpAcrossAdmitSwitchRotateAndAreNeverReused) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 101), granted(Outcome::resumed, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r3", 102), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 114), rotated(3, "c1", 1));
  EXPECT_EQ(p.state.last_token, 3u);
  EXPECT_EQ(p.release("c2", 3, 115), plain(Outcome::released, 0));
  EXPECT_EQ(p.admit("c3", "e1", "r1", 116), granted(Outcome::admitted, 4, 1));
  EXPECT_EQ(p.admit("c3", "e2", "r2", 140), granted(Outcome::admitted, 5, 1));
}

// ---- G10 ----------------------------------------------------------------

TEST(Gate, G10_EverySessionWrittenRecordsTheIntent) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 95, 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(*p.session("c1"), (Session{"c1", "e1", 1, 100, 100, "r1", 95, granted(Outcome::admitted, 1, 1)}));
  EXPECT_EQ(p.admit("c1", "e1", "r2", 96, 104), granted(Outcome::resumed, 1, 1));
  EXPECT_EQ(*p.session("c1"), (Session{"c1", "e1", 1, 100, 104, "r2", 96, granted(Outcome::resumed, 1, 1)}));
  EXPECT_EQ(p.admit("c1", "e2", "r3", 97, 106), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(*p.session("c1"), (Session{"c1", "e2", 2, 100, 106, "r3", 97, granted(Outcome::switched, 2, 1)}));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 110, 117), rotated(3, "c1", 1));
  EXPECT_EQ(p.state.sessions,
            (std::vector<Session>{Session{"c2", "e1", 3, 117, 117, "r1", 110, rotated(3, "c1", 1)}}));
}

// ---- G11 ----------------------------------------------------------------

TEST(Gate, G11_HeartbeatWithTheCurrentTokenIsAliveAndRefreshesLastSeen) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  PoolState expected = with_clock(p.state, 108);
  expected.sessions[0].last_seen = 108;
  EXPECT_EQ(p.heartbeat("c1", 1, 108), plain(Outcome::alive, 1));
  EXPECT_EQ(p.state, expected);
}

TEST(Gate, G11_HeartbeatKeepsAnIdleSession) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 113), plain(Outcome::alive, 1));
  // Age 12 from 113 (idle), though 25 from the admission (gone).
  EXPECT_EQ(p.heartbeat("c1", 1, 125), plain(Outcome::alive, 1));
}

TEST(Gate, G11_StaleTokenAfterSwitchIsGoneAndChangesNothing) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r2", 101), granted(Outcome::switched, 2, 1));
  const PoolState before = p.state;
  EXPECT_EQ(p.heartbeat("c1", 1, 105), plain(Outcome::gone, 1));
  EXPECT_EQ(p.state, with_clock(before, 105));
}

TEST(Gate, G11_TokenAfterRotationPruneOrReleaseIsGone) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 111), rotated(2, "c1", 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 111), plain(Outcome::gone, 1));  // rotated out
  EXPECT_EQ(p.heartbeat("c2", 2, 127), plain(Outcome::gone, 0));  // pruned (age 16)
  EXPECT_EQ(p.admit("c3", "e1", "r1", 127), granted(Outcome::admitted, 3, 1));
  EXPECT_EQ(p.release("c3", 3, 128), plain(Outcome::released, 0));
  EXPECT_EQ(p.heartbeat("c3", 3, 128), plain(Outcome::gone, 0));  // released
}

TEST(Gate, G11_TokenOfAnotherClientOrNoTokenIsGone) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 100), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.heartbeat("c1", 2, 101), plain(Outcome::gone, 2));
  EXPECT_EQ(p.heartbeat("c1", kNoToken, 101), plain(Outcome::gone, 2));
  EXPECT_EQ(p.heartbeat("c1", 3, 101), plain(Outcome::gone, 2));
  EXPECT_EQ(p.session("c1")->last_seen, 100);
}

TEST(Gate, G11_DeadTokenNeverComesBack) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r2", 101), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 102), plain(Outcome::gone, 1));
  // Switching back to the first episode issues a fresh token, not token 1.
  EXPECT_EQ(p.admit("c1", "e1", "r3", 103), granted(Outcome::switched, 3, 1));
  EXPECT_EQ(p.heartbeat("c1", 1, 104), plain(Outcome::gone, 1));
  EXPECT_EQ(p.heartbeat("c1", 2, 104), plain(Outcome::gone, 1));
  EXPECT_EQ(p.heartbeat("c1", 3, 104), plain(Outcome::alive, 1));
}

// ---- G12 ----------------------------------------------------------------

TEST(Gate, G12_ReleaseWithTheCurrentTokenFreesTheSlot) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.release("c1", 1, 101), plain(Outcome::released, 0));
  EXPECT_EQ(p.state, (PoolState{101, 1, {}}));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 101), granted(Outcome::admitted, 2, 1));
}

TEST(Gate, G12_ReleaseOfAnIdleSession) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.release("c1", 1, 114), plain(Outcome::released, 0));
}

TEST(Gate, G12_ReleaseWithAStaleOrForeignTokenIsGoneAndChangesNothing) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("c1", "e2", "r2", 101), granted(Outcome::switched, 2, 1));
  EXPECT_EQ(p.admit("c2", "e1", "r1", 101), granted(Outcome::admitted, 3, 2));
  const PoolState before = p.state;
  EXPECT_EQ(p.release("c1", 1, 102), plain(Outcome::gone, 2));
  EXPECT_EQ(p.release("c1", 3, 102), plain(Outcome::gone, 2));
  EXPECT_EQ(p.release("c1", kNoToken, 102), plain(Outcome::gone, 2));
  EXPECT_EQ(p.release("c9", 2, 102), plain(Outcome::gone, 2));
  EXPECT_EQ(p.state, with_clock(before, 102));
}

TEST(Gate, G12_SecondReleaseIsGone) {
  Pool p;
  EXPECT_EQ(p.admit("c1", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.release("c1", 1, 101), plain(Outcome::released, 0));
  EXPECT_EQ(p.release("c1", 1, 101), plain(Outcome::gone, 0));
  EXPECT_EQ(p.heartbeat("c1", 1, 101), plain(Outcome::gone, 0));
}

// ---- G13 ----------------------------------------------------------------

TEST(Gate, G13_LoweringCapacityEvictsNobody) {
  Pool p;
  p.config.capacity = 3;
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 100), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c", "e1", "r1", 100), granted(Outcome::admitted, 3, 3));
  p.config.capacity = 1;
  EXPECT_EQ(p.heartbeat("a", 1, 105), plain(Outcome::alive, 3));
  EXPECT_EQ(p.admit("d", "e1", "r1", 105), plain(Outcome::blocked_capacity, 3));
  EXPECT_EQ(p.admit("b", "e1", "r2", 105), granted(Outcome::resumed, 2, 3));
  EXPECT_EQ(p.held(), 3);
}

TEST(Gate, G13_NewcomersEnterOnlyByRotationAndHeldNeverGrows) {
  Pool p;
  p.config.capacity = 3;
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 100), granted(Outcome::admitted, 2, 2));
  EXPECT_EQ(p.admit("c", "e1", "r1", 100), granted(Outcome::admitted, 3, 3));
  p.config.capacity = 1;
  // All three idle at 112: each newcomer takes one idle slot, held stays 3.
  EXPECT_EQ(p.admit("d", "e1", "r1", 112), rotated(4, "a", 3));
  EXPECT_EQ(p.admit("e", "e1", "r1", 112), rotated(5, "b", 3));
  // At 116 c is pruned; d and e are live: held 2 is still at least C.
  EXPECT_EQ(p.admit("f", "e1", "r1", 116), plain(Outcome::blocked_capacity, 2));
  EXPECT_EQ(p.admit("f", "e1", "r2", 124), rotated(6, "d", 2));
  // At 128 e is gone, f is live, held 1 = C.
  EXPECT_EQ(p.admit("g", "e1", "r1", 128), plain(Outcome::blocked_capacity, 1));
  EXPECT_EQ(p.release("f", 6, 128), plain(Outcome::released, 0));
  EXPECT_EQ(p.admit("g", "e1", "r2", 128), granted(Outcome::admitted, 7, 1));
}

TEST(Gate, G13_RaisingCapacityAdmitsAgain) {
  Pool p;
  p.config.capacity = 1;
  EXPECT_EQ(p.admit("a", "e1", "r1", 100), granted(Outcome::admitted, 1, 1));
  EXPECT_EQ(p.admit("b", "e1", "r1", 100), plain(Outcome::blocked_capacity, 1));
  p.config.capacity = 2;
  EXPECT_EQ(p.admit("b", "e1", "r2", 100), granted(Outcome::admitted, 2, 2));
}

}  // namespace
}  // namespace turnstile::core
