// gate.lua and the Redis adapter on a redis-server of the test's own: the
// script against the core on hand-picked cases (SPEC G), and the adapter's
// classification of what a real server does to an attempt (SPEC R3, R3a).

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "adapters/redis/gate_lua.h"
#include "adapters/redis/redis_store.h"
#include "adapters/redis/sha1.h"
#include "core/gate.h"
#include "core/outcome.h"
#include "core/retry.h"
#include "core/rng.h"
#include "tests/loopback_port.h"
#include "tests/redis_server.h"

namespace turnstile::adapters {
namespace {

using core::Decision;
using core::Ms;
using core::Op;
using core::OpKind;
using core::Outcome;
using core::OutcomeClass;
using core::PoolState;
using testing::RedisClient;
using testing::RedisReplyPtr;
using testing::RedisServer;

Op admit(std::string client, std::string episode, std::string request, Ms issued_at, Ms now) {
  Op op;
  op.kind = OpKind::admit;
  op.client = std::move(client);
  op.episode = std::move(episode);
  op.request = std::move(request);
  op.issued_at = issued_at;
  op.now = now;
  return op;
}

Op with_token(OpKind kind, std::string client, core::Token token, Ms now) {
  Op op;
  op.kind = kind;
  op.client = std::move(client);
  op.token = token;
  op.now = now;
  return op;
}

RedisStoreConfig config_for(const RedisServer& server) {
  RedisStoreConfig config;
  config.endpoint = std::get<RedisEndpoint>(parse_redis_url(server.url()));
  return config;
}

// Applies `op` to the core's pool and, through one attempt, to gate.lua's;
// returns both decisions.
struct Both {
  Decision core;
  Decision lua;
};

class GateOnRedis : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(server_.error(), ""); }

  Both step(const Op& op, const core::GateConfig& config) {
    Both both;
    both.core = core::apply(core_pool_, op, config);
    core::StoreReply reply = store_.attempt(pool_, op, config, RedisStore::steady_ms() + 2000);
    EXPECT_EQ(reply.result.outcome_class, OutcomeClass::success) << store_.last_error();
    if (reply.decision) both.lua = *reply.decision;
    return both;
  }

  PoolState lua_state() {
    auto state = store_.read_pool(pool_);
    EXPECT_TRUE(std::holds_alternative<PoolState>(state)) << std::get<std::string>(state);
    return std::holds_alternative<PoolState>(state) ? std::get<PoolState>(state) : PoolState{};
  }

  // Runs every op through both and expects equal decisions and equal states
  // after each.
  void expect_same(const std::vector<Op>& ops, const core::GateConfig& config) {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const Both both = step(ops[i], config);
      EXPECT_EQ(both.lua, both.core) << "op " << i;
      EXPECT_EQ(lua_state(), core_pool_) << "after op " << i;
    }
  }

  RedisServer server_;
  RedisStore store_{config_for(server_)};
  std::string pool_ = "p";
  PoolState core_pool_;
};

TEST(Sha1, MatchesKnownVectors) {
  EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST(Sha1, MatchesScriptLoadAtEveryTailLength) {
  RedisServer server;
  ASSERT_EQ(server.error(), "");
  RedisClient client(server.socket_path());
  // Every length of the last block, both sides of the 56-byte boundary.
  for (std::size_t n = 0; n < 140; ++n) {
    const std::string script = "return '" + std::string(n, 'x') + "'";
    EXPECT_EQ(sha1_hex(script), client.text({"SCRIPT", "LOAD", script})) << "length " << script.size();
  }
  EXPECT_EQ(sha1_hex(kGateLua), client.text({"SCRIPT", "LOAD", kGateLua}));
}

TEST(RedisUrl, ParsesUnixAndTcp) {
  auto unix_socket = parse_redis_url("unix:/tmp/r.sock");
  ASSERT_TRUE(std::holds_alternative<RedisEndpoint>(unix_socket));
  EXPECT_EQ(std::get<RedisEndpoint>(unix_socket).unix_path, "/tmp/r.sock");

  auto tcp = parse_redis_url("redis://127.0.0.1:6380");
  ASSERT_TRUE(std::holds_alternative<RedisEndpoint>(tcp));
  EXPECT_EQ(std::get<RedisEndpoint>(tcp).host, "127.0.0.1");
  EXPECT_EQ(std::get<RedisEndpoint>(tcp).port, 6380);

  auto default_port = parse_redis_url("redis://localhost");
  ASSERT_TRUE(std::holds_alternative<RedisEndpoint>(default_port));
  EXPECT_EQ(std::get<RedisEndpoint>(default_port).port, 6379);

  for (const char* bad : {"", "unix:", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x", "http://h:1",
                          "redis://user@h:1", "/tmp/r.sock"}) {
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_redis_url(bad))) << bad;
  }
}

TEST(RedisKeys, PoolKeysShareTheHashTag) {
  EXPECT_EQ(pool_key("tv.main"), "turnstile:{tv.main}");
  EXPECT_EQ(seen_key("tv.main"), "turnstile:{tv.main}:seen");
}

// gate.lua checks every argument before it writes anything: a malformed one
// is refused with one line naming it (the adapter never sends one; a person
// calling the script by hand might), and the store stays empty.
TEST(GateLuaArguments, AMalformedArgumentIsNamedAndNothingIsWritten) {
  RedisServer server;
  ASSERT_EQ(server.error(), "");
  RedisClient client(server.socket_path());
  const std::string pool = pool_key("p");
  const std::string seen = seen_key("p");
  const std::vector<std::string_view> admit = {"admit", "caller", "1000", "2", "30000", "15000", "c1", "e1", "r1", "1000"};
  const std::vector<std::string_view> heartbeat = {"heartbeat", "caller", "1000", "2", "30000", "15000", "c1", "1"};
  struct Case {
    std::vector<std::string_view> args;
    std::size_t at;  // the argument replaced (0-based), or args.size() to cut the list there
    std::string_view value;
    std::string_view message;
  };
  const std::vector<Case> cases = {
      {admit, 0, "bogus", "argument 1 must be admit, heartbeat, release or state"},
      {admit, 1, "wall", "argument 2 must be caller or redis"},
      {admit, 2, "12a", "arguments 3 to 6 must be decimal integers"},
      {admit, 2, "", "arguments 3 to 6 must be decimal integers"},
      {admit, 3, "", "arguments 3 to 6 must be decimal integers"},
      {admit, 4, "1e3", "arguments 3 to 6 must be decimal integers"},
      {heartbeat, 5, "-1", "arguments 3 to 6 must be decimal integers"},
      {admit, 2, "12345678901234567", "argument 3 must be at most 2^53 - 1"},
      {admit, 3, "0", "capacity and ttl must be at least 1"},
      {heartbeat, 4, "0", "capacity and ttl must be at least 1"},
      {admit, 3, "9007199254740992", "arguments 4 to 6 must be at most 2^53 - 1"},
      {admit, 6, "", "argument 7 must be a non-empty id"},
      {heartbeat, 6, "a|b", "argument 7 must be a non-empty id"},
      {admit, 7, "", "argument 8 must be a non-empty id"},
      {admit, 8, "r|1", "argument 9 must be a non-empty id"},
      {admit, 9, "x", "argument 10 must be a decimal integer"},
      {admit, 9, "9007199254740992", "argument 10 must be at most 2^53 - 1"},
      {admit, 9, "", "argument 10 must be a decimal integer"},
      {heartbeat, 7, "", "a step takes at least 8 arguments"},
  };
  for (const Case& c : cases) {
    std::vector<std::string_view> command = {"EVAL", kGateLua, "2", pool, seen};
    for (std::size_t i = 0; i < c.args.size(); ++i) {
      if (i == c.at && c.message == "a step takes at least 8 arguments") break;
      command.push_back(i == c.at ? c.value : c.args[i]);
    }
    RedisReplyPtr reply = client.command(command);
    ASSERT_TRUE(reply);
    const std::string label = std::string(c.args[0]) + " with argument " + std::to_string(c.at + 1) + " = \"" +
                              std::string(c.value) + "\"";
    ASSERT_EQ(reply->type, REDIS_REPLY_ERROR) << label;
    const std::string error(reply->str, reply->len);
    // Redis appends where the script failed: " script: <sha>, on @user_script:<line>."
    EXPECT_EQ(error.rfind("ERR turnstile gate.lua: " + std::string(c.message) + " script: ", 0), 0u)
        << label << ": " << error;
    EXPECT_EQ(client.text({"DBSIZE"}), "0") << label;
  }
  // The unchanged lists are accepted, so each case above failed on its one change.
  for (const auto& args : {admit, heartbeat}) {
    std::vector<std::string_view> command = {"EVAL", kGateLua, "2", pool, seen};
    command.insert(command.end(), args.begin(), args.end());
    RedisReplyPtr reply = client.command(command);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->type, REDIS_REPLY_ARRAY) << args[0];
  }
}

TEST_F(GateOnRedis, G6_G8_G9_AdmitsUntilFullThenBlocks) {
  const core::GateConfig config{2, 100, 50};
  expect_same({admit("a", "e1", "r1", 0, 0), admit("b", "e1", "r2", 0, 1), admit("c", "e1", "r3", 0, 2)}, config);
  EXPECT_EQ(core_pool_.last_token, 2u);
}

TEST_F(GateOnRedis, G1_G2_BackwardClockAndPrune) {
  const core::GateConfig config{2, 10, 5};
  expect_same({admit("a", "e1", "r1", 0, 100), with_token(OpKind::heartbeat, "a", 1, 50),
               admit("b", "e1", "r2", 0, 40), with_token(OpKind::heartbeat, "a", 1, 116)},
              config);
  EXPECT_EQ(core_pool_.last_now, 116);
  EXPECT_TRUE(core_pool_.sessions.empty());
}

TEST_F(GateOnRedis, G3_G4_G5_ReplaySupersedeResumeSwitch) {
  const core::GateConfig config{1, 100, 50};
  expect_same({admit("a", "e1", "r5", 10, 10), admit("a", "e2", "r6", 20, 20), admit("a", "e1", "r5", 10, 30),
               admit("a", "e1", "r4", 20, 31), admit("a", "e2", "r7", 40, 40), admit("a", "e2", "r6", 20, 41)},
              config);
}

TEST_F(GateOnRedis, G7_RotatesOldestIdleWithBytewiseClientTieBreak) {
  const core::GateConfig config{3, 10, 100};
  // Equal last_seen and admitted_at: the smallest client id bytewise goes,
  // and "B" < "a" bytewise, whatever the server's locale collates.
  expect_same({admit("a", "e1", "r1", 0, 0), admit("B", "e1", "r2", 0, 0), admit("_", "e1", "r3", 0, 0),
               admit("newcomer", "e1", "r4", 20, 20), admit("later", "e1", "r5", 21, 21)},
              config);
  ASSERT_EQ(core_pool_.sessions.size(), 3u);
  // The rotated-in session takes its victim's place (the order is compared too).
  EXPECT_EQ(core_pool_.sessions[1].client, "newcomer");
}

TEST_F(GateOnRedis, G11_G12_HeartbeatAndReleaseNeedTheCurrentToken) {
  const core::GateConfig config{2, 100, 50};
  expect_same({admit("a", "e1", "r1", 0, 0), with_token(OpKind::heartbeat, "a", 2, 1),
               with_token(OpKind::heartbeat, "a", 1, 2), with_token(OpKind::release, "a", 0, 3),
               with_token(OpKind::release, "a", 18446744073709551615u, 3), with_token(OpKind::release, "a", 1, 4),
               with_token(OpKind::heartbeat, "a", 1, 5)},
              config);
}

TEST_F(GateOnRedis, G9_NumbersUpTo2Pow53SurviveTheScript) {
  const Ms top = core::kMaxTimeMs;
  const core::GateConfig config{2, top, top};
  expect_same({admit("a", "e1", "r1", top - 5, top - 5), admit("a", "e2", "r2", top, top),
               with_token(OpKind::heartbeat, "a", 2, top), admit("b", "e1", "r3", top, top - 1000)},
              config);
  EXPECT_EQ(core_pool_.last_now, top);
}

TEST_F(GateOnRedis, G13_LowerCapacityNeverEvictsLive) {
  expect_same({admit("a", "e1", "r1", 0, 0), admit("b", "e1", "r2", 0, 0), admit("c", "e1", "r3", 0, 0)},
              core::GateConfig{3, 10, 10});
  expect_same({admit("d", "e1", "r4", 1, 1), admit("e", "e1", "r5", 15, 15)}, core::GateConfig{1, 10, 10});
}

TEST_F(GateOnRedis, G2_G7_LargePoolsAreReadAndPrunedInBatches) {
  // More tied idle sessions, and more gone ones at once, than the script's
  // batches of 1000 (Lua's stack bounds unpack()).
  const core::GateConfig config{1200, 10, 10};
  for (int i = 0; i < 1200; ++i) {
    const Op op = admit("c" + std::to_string(i), "e1", "r" + std::to_string(i), 0, 0);
    const Both both = step(op, config);
    ASSERT_EQ(both.lua, both.core) << "op " << i;
  }
  ASSERT_EQ(lua_state(), core_pool_);
  const Both rotated = step(admit("newcomer", "e1", "r-new", 15, 15), config);
  EXPECT_EQ(rotated.lua, rotated.core);
  EXPECT_EQ(rotated.core.victim, "c0");
  EXPECT_EQ(lua_state(), core_pool_);
  const Both pruned = step(with_token(OpKind::heartbeat, "newcomer", rotated.core.token, 21), config);
  EXPECT_EQ(pruned.lua, pruned.core);
  EXPECT_EQ(pruned.core.held, 1);
  EXPECT_EQ(lua_state(), core_pool_);
}

// A heartbeat or a resume writes last_seen to the hash only; the index keeps
// the older score. G7 must rotate by the real last_seen: "a" and "b" tie on
// score and admitted_at, and "a" < "b", but "a" was seen later.
TEST_F(GateOnRedis, G7_AStaleScoreIsNotTheLastSeen) {
  const core::GateConfig config{2, 10, 100};
  expect_same({admit("a", "e1", "r1", 0, 0), admit("b", "e1", "r2", 0, 0), with_token(OpKind::heartbeat, "a", 1, 5),
               admit("c", "e1", "r3", 20, 20)},
              config);
  ASSERT_EQ(core_pool_.sessions.size(), 2u);
  EXPECT_EQ(core_pool_.sessions[0].client, "a");
  EXPECT_EQ(core_pool_.sessions[1].client, "c");
}

// G2: a session whose score is below the gone bound but whose last_seen is
// not stays (its score is raised), and goes once its last_seen is gone.
TEST_F(GateOnRedis, G2_AStaleScoreIsNotPruned) {
  const core::GateConfig config{2, 10, 10};
  expect_same({admit("a", "e1", "r1", 0, 0), with_token(OpKind::heartbeat, "a", 1, 15),
               admit("a", "e1", "r2", 18, 18), with_token(OpKind::heartbeat, "a", 1, 25),
               with_token(OpKind::heartbeat, "a", 1, 36), admit("b", "e1", "r3", 40, 40),
               with_token(OpKind::heartbeat, "b", 2, 57)},
              config);
  ASSERT_EQ(core_pool_.sessions.size(), 1u);
  EXPECT_EQ(core_pool_.sessions[0].client, "b");
}

// G7 reads the index 16 entries at a time. Forty sessions tie on score 0;
// the first twenty by name were seen later, so the first batch is all stale,
// the second ends inside the run of exact scores, and the victim is the
// first of those by name.
TEST_F(GateOnRedis, G7_StaleScoresAcrossIndexBatches) {
  const core::GateConfig config{40, 10, 100};
  std::vector<Op> ops;
  auto name = [](int i) { return std::string(i < 10 ? "c0" : "c") + std::to_string(i); };
  for (int i = 0; i < 40; ++i) ops.push_back(admit(name(i), "e1", "r" + std::to_string(i), 0, 0));
  for (int i = 0; i < 20; ++i) ops.push_back(with_token(OpKind::heartbeat, name(i), static_cast<core::Token>(i + 1), 5));
  ops.push_back(admit("newcomer", "e1", "r-new", 20, 20));
  ops.push_back(admit("later", "e1", "r-later", 21, 21));
  expect_same(ops, config);
  EXPECT_EQ(core_pool_.sessions[20].client, "newcomer");
  EXPECT_EQ(core_pool_.sessions[21].client, "later");
}

TEST(RedisClock, G1_RedisTimeIsUsedAndNeverRunsBackwards) {
  RedisServer server;
  ASSERT_EQ(server.error(), "");
  RedisStoreConfig config = config_for(server);
  RedisStore caller_clock(config);
  config.clock = StoreClock::redis;
  RedisStore redis_clock(config);
  const core::GateConfig gate{2, core::kMaxTimeMs, 0};

  RedisClient client(server.socket_path());
  const auto before = client.command({"TIME"});
  ASSERT_TRUE(before && before->type == REDIS_REPLY_ARRAY);
  const Ms server_ms = std::stoll(before->element[0]->str) * 1000;

  // op.now is ignored under the redis clock.
  auto reply = redis_clock.attempt("p", admit("a", "e1", "r1", 0, 0), gate, RedisStore::steady_ms() + 2000);
  ASSERT_EQ(reply.result.outcome_class, OutcomeClass::success) << redis_clock.last_error();
  auto state = std::get<PoolState>(redis_clock.read_pool("p"));
  EXPECT_GE(state.last_now, server_ms);
  EXPECT_LE(state.last_now, server_ms + 10000);

  // A caller's clock far ahead moves the pool; the server's TIME, now
  // behind, does not move it back (G1).
  const Ms ahead = core::kMaxTimeMs - 7;
  ASSERT_TRUE(caller_clock.attempt("p", admit("a", "e1", "r2", 0, ahead), gate, RedisStore::steady_ms() + 2000)
                  .decision.has_value());
  reply = redis_clock.attempt("p", admit("b", "e1", "r3", 0, 0), gate, RedisStore::steady_ms() + 2000);
  ASSERT_TRUE(reply.decision.has_value()) << redis_clock.last_error();
  state = std::get<PoolState>(redis_clock.read_pool("p"));
  EXPECT_EQ(state.last_now, ahead);
  ASSERT_EQ(state.sessions.size(), 2u);
  EXPECT_EQ(state.sessions[1].admitted_at, ahead);
}

// ---- R3: how a real server's answers and faults are classified -----------

class StoreFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(server_.error(), "");
    ASSERT_TRUE(admin_.ok());
  }

  core::StoreReply attempt_ms(RedisStore& store, const Op& op, Ms timeout_ms) {
    return store.attempt("p", op, gate_, RedisStore::steady_ms() + timeout_ms);
  }

  RedisServer server_;
  RedisClient admin_{server_.socket_path()};
  RedisStore store_{config_for(server_)};
  core::GateConfig gate_{2, 30000, 15000};
  core::Rng rng_{20261127};
};

TEST_F(StoreFaults, R3_NoscriptFallsBackToEvalWithinOneAttempt) {
  // A fresh server has never seen the script: EVALSHA, NOSCRIPT, EVAL.
  core::StoreReply first = store_.call("p", admit("a", "e1", "r1", 0, 0), gate_, rng_);
  ASSERT_EQ(first.result.outcome_class, OutcomeClass::success) << store_.last_error();
  EXPECT_EQ(store_.stats().attempts, 1u);
  EXPECT_EQ(store_.stats().eval_fallbacks, 1u);

  // Cached now: EVALSHA alone.
  ASSERT_TRUE(store_.call("p", admit("b", "e1", "r2", 0, 0), gate_, rng_).decision.has_value());
  EXPECT_EQ(store_.stats().attempts, 2u);
  EXPECT_EQ(store_.stats().eval_fallbacks, 1u);

  ASSERT_EQ(admin_.text({"SCRIPT", "FLUSH"}), "OK");
  core::StoreReply after_flush = store_.call("p", admit("a", "e2", "r3", 1, 1), gate_, rng_);
  ASSERT_EQ(after_flush.result.outcome_class, OutcomeClass::success) << store_.last_error();
  EXPECT_EQ(after_flush.decision->outcome, Outcome::switched);
  EXPECT_EQ(store_.stats().attempts, 3u);  // one attempt, not a retry
  EXPECT_EQ(store_.stats().eval_fallbacks, 2u);
  auto exists = admin_.command({"SCRIPT", "EXISTS", store_.script_sha()});
  ASSERT_TRUE(exists && exists->type == REDIS_REPLY_ARRAY && exists->elements == 1);
  EXPECT_EQ(exists->element[0]->integer, 1);  // EVAL cached it again
}

TEST_F(StoreFaults, R3_FallbackEvalThatFailsIsOneAttemptAndPermanent) {
  // A script that does not compile: EVALSHA says NOSCRIPT, the one EVAL
  // fails with ERR, and the call ends there (permanent, never retried).
  RedisStoreConfig config = config_for(server_);
  const std::string broken = "this is not lua";
  config.script = broken;
  RedisStore store(config);
  core::StoreReply reply = store.call("p", admit("a", "e1", "r1", 0, 0), gate_, rng_);
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::permanent);
  EXPECT_FALSE(reply.decision.has_value());
  EXPECT_EQ(store.stats().attempts, 1u);
  EXPECT_EQ(store.stats().eval_fallbacks, 1u);
  EXPECT_NE(store.last_error().find("ERR"), std::string::npos) << store.last_error();
}

TEST_F(StoreFaults, R3_ClientPauseTimesOutAsTransientAtTheDeadline) {
  ASSERT_TRUE(attempt_ms(store_, admit("a", "e1", "r1", 0, 0), 2000).decision.has_value());
  ASSERT_EQ(admin_.text({"CLIENT", "PAUSE", "700", "ALL"}), "OK");
  const Ms start = RedisStore::steady_ms();
  core::StoreReply reply = attempt_ms(store_, admit("b", "e1", "r2", 0, 0), 100);
  const Ms elapsed = RedisStore::steady_ms() - start;
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
  EXPECT_FALSE(reply.decision.has_value());
  EXPECT_GE(elapsed, 90);
  EXPECT_LE(elapsed, 300);
  // The timed-out connection is dropped; the next attempt opens a new one.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  reply = attempt_ms(store_, admit("c", "e1", "r3", 0, 0), 2000);
  ASSERT_TRUE(reply.decision.has_value()) << store_.last_error();
  EXPECT_EQ(store_.stats().connects, 2u);
}

TEST_F(StoreFaults, R3_DebugSleepTimesOutAsTransient) {
  ASSERT_TRUE(attempt_ms(store_, admit("a", "e1", "r1", 0, 0), 2000).decision.has_value());
  std::thread sleeper([&] {
    RedisClient other(server_.socket_path());
    other.text({"DEBUG", "SLEEP", "0.6"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const Ms start = RedisStore::steady_ms();
  core::StoreReply reply = attempt_ms(store_, admit("b", "e1", "r2", 0, 0), 150);
  const Ms elapsed = RedisStore::steady_ms() - start;
  sleeper.join();
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
  EXPECT_GE(elapsed, 140);
  EXPECT_LE(elapsed, 350);
}

TEST_F(StoreFaults, R3_BusyScriptIsTransient) {
  ASSERT_EQ(admin_.text({"CONFIG", "SET", "busy-reply-threshold", "20"}), "OK");
  ASSERT_TRUE(attempt_ms(store_, admit("a", "e1", "r1", 0, 0), 2000).decision.has_value());
  std::thread spinner([&] {
    RedisClient other(server_.socket_path());
    other.text({"EVAL", "while true do end", "0"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  core::StoreReply reply = attempt_ms(store_, admit("b", "e1", "r2", 0, 0), 1000);
  const std::string error = store_.last_error();
  RedisClient killer(server_.socket_path());
  EXPECT_EQ(killer.text({"SCRIPT", "KILL"}), "OK");
  spinner.join();
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
  EXPECT_EQ(error.rfind("BUSY", 0), 0u) << error;
}

TEST_F(StoreFaults, R3_WrongTypeIsPermanentAndNotRetried) {
  ASSERT_EQ(admin_.text({"SET", pool_key("p"), "not a hash"}), "OK");
  core::StoreReply reply = store_.call("p", admit("a", "e1", "r1", 0, 0), gate_, rng_);
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::permanent);
  EXPECT_EQ(store_.stats().attempts, 1u);
  EXPECT_EQ(store_.last_error().rfind("WRONGTYPE", 0), 0u) << store_.last_error();
}

TEST_F(StoreFaults, R3_MalformedSessionIsPermanent) {
  ASSERT_EQ(admin_.text({"HSET", pool_key("p"), "s:a", "garbage"}), "1");
  core::StoreReply reply = store_.call("p", admit("a", "e1", "r1", 0, 0), gate_, rng_);
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::permanent);
  EXPECT_NE(store_.last_error().find("malformed session"), std::string::npos) << store_.last_error();
}

TEST(StoreConnection, R3_ConnectionRefusedIsTransient_R1_R4_RetriedOnceWithinBudget) {
  const int port = testing::unused_loopback_port();
  ASSERT_GT(port, 0);
  RedisStoreConfig config;
  config.endpoint = std::get<RedisEndpoint>(parse_redis_url("redis://127.0.0.1:" + std::to_string(port)));
  RedisStore store(config);
  core::Rng rng(1);
  const Ms start = RedisStore::steady_ms();
  core::StoreReply reply = store.call("p", admit("a", "e1", "r1", 0, 0), core::GateConfig{}, rng);
  const Ms elapsed = RedisStore::steady_ms() - start;
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
  EXPECT_FALSE(reply.decision.has_value());
  EXPECT_EQ(store.stats().attempts, 2u);
  EXPECT_NE(store.last_error().find("refused"), std::string::npos) << store.last_error();
  EXPECT_LE(elapsed, core::RetryConfig::store_defaults().budget_ms + 50);
}

TEST(StoreConnection, R3_MissingUnixSocketIsTransient) {
  RedisStoreConfig config;
  config.endpoint.unix_path = "/nonexistent/turnstile/redis.sock";
  RedisStore store(config);
  core::StoreReply reply =
      store.attempt("p", admit("a", "e1", "r1", 0, 0), core::GateConfig{}, RedisStore::steady_ms() + 100);
  EXPECT_EQ(reply.result.outcome_class, OutcomeClass::transient);
}

TEST_F(StoreFaults, R3a_RetryAfterAPauseReusesTheRequestAndTakesOneSlot) {
  ASSERT_TRUE(attempt_ms(store_, admit("a", "e1", "r0", 0, 0), 2000).decision.has_value());
  // Attempt 1 times out at 300 ms inside the pause; attempt 2 starts 10-50 ms
  // later and is answered when the pause ends at 450 ms, within B = 800.
  ASSERT_EQ(admin_.text({"CLIENT", "PAUSE", "450", "ALL"}), "OK");
  const Ms start = RedisStore::steady_ms();
  core::StoreReply reply = store_.call("p", admit("b", "e1", "r1", 0, 0), gate_, rng_);
  const Ms elapsed = RedisStore::steady_ms() - start;
  ASSERT_EQ(reply.result.outcome_class, OutcomeClass::success) << store_.last_error();
  EXPECT_EQ(store_.stats().attempts, 3u);  // the setup's one, then two
  EXPECT_LE(elapsed, 800 + 50);
  // Whether or not the server ran attempt 1's command when the pause ended,
  // the client holds one slot and the pool issued one token for it.
  EXPECT_EQ(reply.decision->outcome, Outcome::admitted);
  EXPECT_EQ(reply.decision->token, 2u);
  auto state = std::get<PoolState>(store_.read_pool("p"));
  EXPECT_EQ(state.sessions.size(), 2u);
  EXPECT_EQ(state.last_token, 2u);
}

TEST_F(StoreFaults, R3a_ALostReplyIsAnsweredByReplayNotASecondSlot) {
  // Attempt 1 is applied but its reply is "lost"; the retry carries the same
  // request id, so G3 answers it with the first decision and nothing moves.
  const Op op = admit("a", "e1", "r1", 0, 0);
  core::StoreReply lost = attempt_ms(store_, op, 2000);
  ASSERT_TRUE(lost.decision.has_value());
  const PoolState before = std::get<PoolState>(store_.read_pool("p"));
  core::StoreReply retried = attempt_ms(store_, op, 2000);
  ASSERT_TRUE(retried.decision.has_value());
  EXPECT_EQ(*retried.decision, *lost.decision);
  EXPECT_EQ(std::get<PoolState>(store_.read_pool("p")), before);
}

TEST_F(StoreFaults, RestartLosesThePoolAndTheScriptCache) {
  ASSERT_TRUE(store_.call("p", admit("a", "e1", "r1", 0, 0), gate_, rng_).decision.has_value());
  ASSERT_TRUE(server_.restart()) << server_.error();
  // The old connection is dead: the attempt that finds out is transient and
  // the retry reconnects, meets NOSCRIPT and falls back to EVAL.
  core::StoreReply reply = store_.call("p", admit("b", "e1", "r2", 0, 0), gate_, rng_);
  ASSERT_EQ(reply.result.outcome_class, OutcomeClass::success) << store_.last_error();
  EXPECT_EQ(reply.decision->token, 1u);  // a lost pool starts its tokens again
  EXPECT_EQ(store_.stats().eval_fallbacks, 2u);
}

}  // namespace
}  // namespace turnstile::adapters
