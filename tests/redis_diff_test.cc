// The differential test of issue 6: RapidCheck-generated operation sequences
// go to the core (core::apply) and to gate.lua on a redis-server of the
// test's own; after every operation the decisions and the whole pool states
// (sessions in order, last_now, last_token) must be equal. SPEC G1-G13.
//
// The workloads lean on what a transliteration gets wrong: ties (many ops at
// one instant, equal last_seen and admitted_at), replays and late retries
// (G3, G4), clocks that run backwards (G1), capacity changes (G13), stale
// and random tokens (G11, G12), client and request ids whose bytewise order
// differs from a case-insensitive one, and times near 2^53 - 1.
//
// ctest runs it with a fixed seed and enough cases for at least 10,000
// operations. RC_PARAMS in the environment replaces those parameters (to
// reproduce a failure or to search longer); then the count is not checked.

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "adapters/redis/gate_lua.h"
#include "adapters/redis/redis_store.h"
#include "core/gate.h"
#include "tests/redis_server.h"

namespace turnstile::core {

void showValue(const Decision& d, std::ostream& os) {
  os << "{" << outcome_name(d.outcome) << ", token " << d.token << ", victim '" << d.victim << "', held " << d.held
     << "}";
}

}  // namespace turnstile::core

namespace turnstile::adapters {
namespace {

using core::Decision;
using core::GateConfig;
using core::Ms;
using core::Op;
using core::OpKind;
using core::PoolState;
using core::Token;

constexpr std::uint64_t kSeed = 20261127;
constexpr int kCases = 300;
constexpr int kMaxSteps = 80;
constexpr std::uint64_t kMinOps = 10000;

// Ids whose bytewise order is not their case-insensitive order ("B" < "a"),
// with punctuation that collating locales skip.
constexpr const char* kClients[] = {"a", "B", "b", "A-x", "a.x", "_z", "9", "Z"};
constexpr char kRequestPrefixes[] = {'a', 'b', 'B', '_'};

enum class StepKind { fresh, replay, late, heartbeat, release, config };
enum class TokenPick { current, stale, random, huge };

struct Step {
  StepKind kind = StepKind::fresh;
  int client = 0;
  int episode = 0;
  Ms dt_ms = 0;     // how the caller's clock moves first; may go back
  Ms delay_ms = 0;  // how far issued_at lags behind now (fresh) or the newest intent (late)
  int pick = 0;     // which earlier request (replay) or granted token (stale)
  TokenPick token_pick = TokenPick::current;
  Token random_token = 0;
  int request_prefix = 0;
  GateConfig config;
};

void showValue(const Step& s, std::ostream& os) {
  static constexpr const char* kKinds[] = {"fresh", "replay", "late", "heartbeat", "release", "config"};
  os << kKinds[static_cast<int>(s.kind)] << " client " << s.client << " e" << s.episode << " dt " << s.dt_ms
     << " delay " << s.delay_ms << " pick " << s.pick << " token_pick " << static_cast<int>(s.token_pick)
     << " random_token " << s.random_token << " config " << s.config.capacity << "/" << s.config.ttl_ms << "/"
     << s.config.grace_ms;
}

rc::Gen<GateConfig> config_gen() {
  return rc::gen::exec([] {
    GateConfig config;
    config.capacity = *rc::gen::inRange<std::int64_t>(1, 6);
    // Now and then a ttl or grace at the top of the range, where T + G passes 2^53.
    config.ttl_ms = *rc::gen::weightedOneOf<Ms>({{12, rc::gen::inRange<Ms>(1, 51)}, {1, rc::gen::just(core::kMaxTimeMs)}});
    config.grace_ms = *rc::gen::weightedOneOf<Ms>(
        {{3, rc::gen::just<Ms>(0)}, {9, rc::gen::inRange<Ms>(1, 51)}, {1, rc::gen::just(core::kMaxTimeMs)}});
    return config;
  });
}

rc::Gen<Step> step_gen() {
  return rc::gen::exec([] {
    Step s;
    s.kind = *rc::gen::weightedElement<StepKind>({{8, StepKind::fresh},
                                                  {3, StepKind::replay},
                                                  {2, StepKind::late},
                                                  {5, StepKind::heartbeat},
                                                  {2, StepKind::release},
                                                  {1, StepKind::config}});
    s.client = *rc::gen::inRange(0, 8);
    s.episode = *rc::gen::inRange(0, 3);
    // Many steps share an instant, some cross an age boundary, a few run the
    // caller's clock backwards.
    s.dt_ms = *rc::gen::weightedOneOf<Ms>({{4, rc::gen::just<Ms>(0)},
                                           {3, rc::gen::inRange<Ms>(1, 4)},
                                           {3, rc::gen::inRange<Ms>(4, 31)},
                                           {1, rc::gen::inRange<Ms>(31, 120)},
                                           {1, rc::gen::inRange<Ms>(-30, 0)}});
    s.delay_ms = *rc::gen::inRange<Ms>(0, 8);
    s.pick = *rc::gen::inRange(0, 64);
    s.token_pick = *rc::gen::weightedElement<TokenPick>(
        {{6, TokenPick::current}, {3, TokenPick::stale}, {2, TokenPick::random}, {1, TokenPick::huge}});
    s.random_token = *rc::gen::inRange<Token>(0, 16);
    s.request_prefix = *rc::gen::inRange(0, 4);
    s.config = *config_gen();
    return s;
  });
}

struct Scenario {
  int clients = 2;
  Ms start_ms = 0;
  GateConfig config;
  std::vector<Step> steps;
};

void showValue(const Scenario& sc, std::ostream& os) {
  os << sc.clients << " clients from " << sc.start_ms << " ms, config " << sc.config.capacity << "/"
     << sc.config.ttl_ms << "/" << sc.config.grace_ms << ", " << sc.steps.size() << " steps";
}

rc::Gen<Scenario> scenario_gen() {
  return rc::gen::exec([] {
    Scenario sc;
    // More clients than slots is where rotation happens.
    sc.clients = *rc::gen::weightedElement<int>({{1, 2}, {2, 3}, {2, 4}, {3, 5}, {2, 6}, {1, 8}});
    // A clock at zero, at a wall clock's epoch ms, or just below 2^53.
    sc.start_ms = *rc::gen::element<Ms>(0, 1795811870000, core::kMaxTimeMs - 3000);
    sc.config = *config_gen();
    sc.steps = *rc::gen::resize(kMaxSteps, rc::gen::container<std::vector<Step>>(step_gen()));
    return sc;
  });
}

std::string describe(const Op& op) {
  std::ostringstream os;
  static constexpr const char* kKinds[] = {"admit", "heartbeat", "release"};
  os << kKinds[static_cast<int>(op.kind)] << " " << op.client;
  if (op.kind == OpKind::admit) {
    os << " " << op.episode << " " << op.request << " issued " << op.issued_at;
  } else {
    os << " token " << op.token;
  }
  os << " now " << op.now;
  return os.str();
}

// What the clients know (requests sent, tokens granted), and how a step
// becomes an operation.
class Driver {
 public:
  Driver(int clients, Ms start_ms)
      : clients_(clients),
        wall_ms_(start_ms),
        sent_(static_cast<std::size_t>(clients)),
        granted_(static_cast<std::size_t>(clients)) {}

  Op op_for(const Step& step) {
    wall_ms_ = std::clamp<Ms>(wall_ms_ + step.dt_ms, 0, core::kMaxTimeMs);
    const auto c = static_cast<std::size_t>(step.client % clients_);
    Op op;
    op.client = kClients[c];
    op.now = wall_ms_;
    switch (step.kind) {
      case StepKind::replay:
        if (!sent_[c].empty()) {
          // Every attempt of a request carries its id, episode and issued_at.
          op = sent_[c][static_cast<std::size_t>(step.pick) % sent_[c].size()];
          op.now = wall_ms_;
          return op;
        }
        [[fallthrough]];
      case StepKind::fresh:
      case StepKind::late:
      case StepKind::config: {
        op.kind = OpKind::admit;
        op.episode = "tt" + std::to_string(step.episode) + ":1:" + std::to_string(step.episode);
        op.request = kRequestPrefixes[step.request_prefix] + std::to_string(next_request_++);
        Ms base = wall_ms_;
        if (step.kind == StepKind::late) {
          for (const Op& earlier : sent_[c]) base = std::max(base, earlier.issued_at);
        }
        op.issued_at = std::max<Ms>(0, base - step.delay_ms);
        sent_[c].push_back(op);
        return op;
      }
      case StepKind::heartbeat:
      case StepKind::release: {
        op.kind = step.kind == StepKind::heartbeat ? OpKind::heartbeat : OpKind::release;
        const std::vector<Token>& tokens = granted_[c];
        if (step.token_pick == TokenPick::huge) {
          op.token = std::numeric_limits<Token>::max() - step.random_token;
        } else if (step.token_pick == TokenPick::random || tokens.empty()) {
          op.token = step.random_token;
        } else if (step.token_pick == TokenPick::current) {
          op.token = tokens.back();
        } else {
          op.token = tokens[static_cast<std::size_t>(step.pick) % tokens.size()];
        }
        return op;
      }
    }
    return op;
  }

  void learn(const Op& op, const Decision& decision) {
    if (!core::is_granted(decision.outcome)) return;
    for (std::size_t c = 0; c < granted_.size(); ++c) {
      if (op.client != kClients[c]) continue;
      if (granted_[c].empty() || granted_[c].back() != decision.token) granted_[c].push_back(decision.token);
    }
  }

 private:
  int clients_;
  Ms wall_ms_;
  int next_request_ = 0;
  std::vector<std::vector<Op>> sent_;
  std::vector<std::vector<Token>> granted_;
};

// The property body: one generated workload through the core and through
// `store` (whose script is the implementation under test). Each case uses a
// pool of its own, so cases (and shrinking's reruns) never share state.
void core_and_script_agree(RedisStore& store, std::uint64_t& pools, std::uint64_t& ops) {
  const Scenario sc = *scenario_gen();
  const std::string pool = "diff" + std::to_string(++pools);
  Driver driver(sc.clients, sc.start_ms);
  GateConfig config = sc.config;
  PoolState core_pool;
  for (const Step& step : sc.steps) {
    if (step.kind == StepKind::config) {
      // G13: the config may change between operations.
      config = step.config;
      RC_LOG() << "config C " << config.capacity << " T " << config.ttl_ms << " G " << config.grace_ms << "\n";
      continue;
    }
    const Op op = driver.op_for(step);
    const Decision want = core::apply(core_pool, op, config);
    const core::StoreReply got = store.attempt(pool, op, config, RedisStore::steady_ms() + 5000);
    RC_LOG() << describe(op) << " -> core " << core::outcome_name(want.outcome) << " " << want.token << " '"
             << want.victim << "' " << want.held << "\n";
    if (!got.decision) RC_FAIL("the script failed: " + store.last_error());
    RC_ASSERT(*got.decision == want);
    auto state = store.read_pool(pool);
    if (auto* error = std::get_if<std::string>(&state)) RC_FAIL("reading the pool failed: " + *error);
    RC_ASSERT(std::get<PoolState>(state) == core_pool);
    ++ops;
    driver.learn(op, want);
  }
}

// Runs the property with the fixed CI parameters, or with RC_PARAMS when the
// environment sets it. Returns whether it held and whether the CI parameters
// were used.
struct CheckResult {
  bool held = false;
  bool fixed_parameters = false;
};

CheckResult check(const std::string& name, bool shrink, const std::function<void()>& body) {
  if (std::getenv("RC_PARAMS") != nullptr) return {rc::check(name, body), false};
  rc::detail::TestParams params;
  params.seed = kSeed;
  params.maxSuccess = kCases;
  params.maxSize = 100;
  params.disableShrinking = !shrink;
  const rc::detail::TestMetadata metadata{name, name};
  const auto result = rc::detail::checkTestable(body, metadata, params);
  rc::detail::printResultMessage(result, std::cerr);
  std::cerr << "\n";
  return {result.is<rc::detail::SuccessResult>(), true};
}

RedisStoreConfig config_for(const testing::RedisServer& server, std::string_view script) {
  RedisStoreConfig config;
  config.endpoint = std::get<RedisEndpoint>(parse_redis_url(server.url()));
  config.script = script;
  return config;
}

TEST(RedisDiff, G1_G13_CoreAndGateLuaAgreeAfterEveryOp) {
  testing::RedisServer server;
  ASSERT_EQ(server.error(), "");
  RedisStore store(config_for(server, kGateLua));
  std::uint64_t pools = 0;
  std::uint64_t ops = 0;
  const CheckResult result =
      check("core and gate.lua agree", /*shrink=*/true, [&] { core_and_script_agree(store, pools, ops); });
  EXPECT_TRUE(result.held);
  std::cerr << ops << " operations compared over " << pools << " pools\n";
  if (result.fixed_parameters) {
    EXPECT_GE(ops, kMinOps);
  }
}

// gate.lua with one text replaced, for the tests below that show the
// differential test can fail. Empty if `right` is no longer in the script.
std::string broken_script(const std::string& right, const std::string& wrong) {
  std::string script(kGateLua);
  const auto at = script.find(right);
  if (at == std::string::npos) return {};
  script.replace(at, right.size(), wrong);
  return script;
}

// Runs the property body against `script`; true if a mismatch was found.
bool finds_mismatch(const std::string& name, const std::string& script) {
  testing::RedisServer server;
  EXPECT_EQ(server.error(), "");
  RedisStore store(config_for(server, script));
  std::uint64_t pools = 0;
  std::uint64_t ops = 0;
  return !check(name, /*shrink=*/false, [&] { core_and_script_agree(store, pools, ops); }).held;
}

// G7 reversed: the newest session, when it is idle, is rotated out instead
// of the oldest idle one.
TEST(RedisDiff, FindsAScriptThatRotatesTheNewest) {
  const std::string script = broken_script("redis.call('ZRANGE', seen_key, 0, G7_BATCH - 1, 'WITHSCORES')",
                                           "redis.call('ZREVRANGE', seen_key, 0, G7_BATCH - 1, 'WITHSCORES')");
  ASSERT_FALSE(script.empty()) << "gate.lua's G7 lookup moved; update this test";
  EXPECT_TRUE(finds_mismatch("a script rotating the newest", script));
}

// G7's tie-break reversed: among idle sessions last seen at the same instant,
// the one admitted last is rotated out.
TEST(RedisDiff, FindsAScriptThatBreaksTiesByNewestAdmission) {
  const std::string script =
      broken_script("if a.admitted_at ~= b.admitted_at then return a.admitted_at < b.admitted_at end",
                    "if a.admitted_at ~= b.admitted_at then return a.admitted_at > b.admitted_at end");
  ASSERT_FALSE(script.empty()) << "gate.lua's G7 order moved; update this test";
  EXPECT_TRUE(finds_mismatch("a script breaking ties by newest admission", script));
}

// G2 and G7 read the index G7_BATCH entries at a time; the generated pools
// are smaller than one batch, so the same workloads run again with batches
// of one and two entries, where a batch ends inside a run of tied or stale
// scores.
TEST(RedisDiff, G2_G7_SmallIndexBatchesAgreeToo) {
  for (const char* batch : {"1", "2"}) {
    const std::string script =
        broken_script("local G7_BATCH = 16", std::string("local G7_BATCH = ") + batch);
    ASSERT_FALSE(script.empty()) << "gate.lua's G7 batch size moved; update this test";
    testing::RedisServer server;
    ASSERT_EQ(server.error(), "");
    RedisStore store(config_for(server, script));
    std::uint64_t pools = 0;
    std::uint64_t ops = 0;
    const CheckResult result = check(std::string("core and gate.lua with G7 batches of ") + batch,
                                     /*shrink=*/true, [&] { core_and_script_agree(store, pools, ops); });
    EXPECT_TRUE(result.held) << "batch " << batch;
    if (result.fixed_parameters) {
      EXPECT_GE(ops, kMinOps);
    }
  }
}

// G7 trusting the index: a score left behind by a heartbeat is taken for
// the session's last_seen, so a session that was seen later can be rotated.
TEST(RedisDiff, FindsAScriptThatTrustsStaleScoresInG7) {
  const std::string script = broken_script("local last_seen = tonumber(text or score)",
                                           "local last_seen = tonumber(score)");
  ASSERT_FALSE(script.empty()) << "gate.lua's G7 read moved; update this test";
  EXPECT_TRUE(finds_mismatch("a script trusting stale scores in G7", script));
}

// G2 trusting the index: every session whose score is below the gone bound
// is pruned, however recently it was seen.
TEST(RedisDiff, FindsAScriptThatTrustsStaleScoresInG2) {
  const std::string script =
      broken_script("if text and tonumber(text) >= gone_before then", "if false then");
  ASSERT_FALSE(script.empty()) << "gate.lua's G2 search moved; update this test";
  EXPECT_TRUE(finds_mismatch("a script trusting stale scores in G2", script));
}

}  // namespace
}  // namespace turnstile::adapters
