// SPEC D on gate.lua: `turnstile gate --redis URL` (run_gate_redis) prints
// exactly what `turnstile gate` (run_gate, the core) prints for the same op
// file, against a redis-server of the test's own.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <variant>
#include <vector>
#include <sstream>
#include <string>

#include "cli/gate_codec.h"
#include "cli/gate_command.h"
#include "cli/gate_redis.h"
#include "core/rng.h"
#include "tests/redis_server.h"

namespace turnstile::cli {
namespace {

struct GateRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

GateRun core_gate(const std::string& input) {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  GateRun run;
  run.exit_code = run_gate(in, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

GateRun redis_gate(const std::string& input, const std::string& url) {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  GateRun run;
  run.exit_code = run_gate_redis(in, out, err, url);
  run.out = out.str();
  run.err = err.str();
  return run;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A long op file over three pools: config changes, admits with replays and
// late retries, heartbeats and releases with current, stale and random
// tokens, and a clock that sometimes steps back. The core's book follows the
// file as it is written, so that clients use the tokens they were given.
std::string generated_ops(std::uint64_t seed, int lines) {
  core::Rng rng(seed);
  GateBook book;
  std::map<std::string, std::vector<core::Token>> granted;  // by pool/client
  std::string ops;
  std::int64_t now = 1000;
  int request = 0;
  for (int i = 0; i < lines; ++i) {
    const std::string pool = "pool" + std::to_string(rng.below(3));
    const std::string client = "c" + std::to_string(rng.below(6));
    std::vector<core::Token>& tokens = granted[pool + "/" + client];
    now = std::max<std::int64_t>(0, now + rng.uniform(-20, 120));
    const std::uint64_t kind = rng.below(20);
    std::ostringstream line;
    if (kind == 0) {
      line << R"({"op":"config","pool":")" << pool << R"(","capacity":)" << rng.uniform(1, 4) << R"(,"ttl":)"
           << rng.uniform(50, 400) << R"(,"grace":)" << rng.uniform(0, 200) << "}";
    } else if (kind < 12) {
      // Requests repeat now and then: the same id from the same client is a replay.
      const int id = rng.chance(1, 4) && request > 0 ? static_cast<int>(rng.below(static_cast<std::uint64_t>(request)))
                                                     : request++;
      line << R"({"op":"admit","pool":")" << pool << R"(","client":")" << client << R"(","episode":"tt)"
           << rng.below(3) << R"(:1:1","request":"r)" << id << R"(","issued_at":)"
           << std::max<std::int64_t>(0, now - rng.uniform(0, 30)) << R"(,"now":)" << now << "}";
    } else {
      core::Token token = static_cast<core::Token>(rng.uniform(0, 40));
      if (!tokens.empty() && rng.chance(2, 3)) {
        token = rng.chance(3, 4) ? tokens.back() : tokens[rng.below(tokens.size())];
      }
      line << R"({"op":")" << (kind < 17 ? "heartbeat" : "release") << R"(","pool":")" << pool
           << R"(","client":")" << client << R"(","token":")" << token << R"(","now":)" << now << "}";
    }
    auto parsed = parse_gate_line(line.str());
    EXPECT_TRUE(std::holds_alternative<GateLine>(parsed)) << line.str();
    if (!std::holds_alternative<GateLine>(parsed)) return ops;
    auto applied = book.apply(std::get<GateLine>(parsed));
    if (const auto* decision = std::get_if<core::Decision>(&applied)) {
      if (core::is_granted(decision->outcome)) tokens.push_back(decision->token);
    }
    ops += line.str();
    ops += '\n';
  }
  return ops;
}

class GateRedisCli : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(server_.error(), ""); }
  testing::RedisServer server_;
};

TEST_F(GateRedisCli, D_TheWorkedExamplePrintsItsExpectedDecisions) {
  const std::string ops = read_file(std::string(TURNSTILE_SOURCE_DIR) + "/examples/ops.jsonl");
  const std::string expected = read_file(std::string(TURNSTILE_SOURCE_DIR) + "/examples/ops.expected.jsonl");
  ASSERT_FALSE(ops.empty());
  const GateRun run = redis_gate(ops, server_.url());
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, expected);
}

TEST_F(GateRedisCli, D_AGeneratedOpFilePrintsWhatTheCorePrints) {
  const std::string ops = generated_ops(20261127, 3000);
  const GateRun want = core_gate(ops);
  ASSERT_EQ(want.exit_code, 0) << want.err;
  const GateRun got = redis_gate(ops, server_.url());
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.err, "");
  EXPECT_EQ(got.out, want.out);
  // The file reaches the interesting outcomes, so the equality says something.
  for (const char* outcome : {"rotated", "switched", "superseded", "blocked_capacity", "released", "alive"}) {
    EXPECT_NE(want.out.find(outcome), std::string::npos) << outcome;
  }
}

TEST_F(GateRedisCli, V4_AMalformedLineEndsTheRunLikeTheCore) {
  const std::string ops =
      R"({"op":"admit","pool":"p","client":"c1","episode":"tt1:1:1","request":"r1","issued_at":1000,"now":1000})"
      "\n"
      R"({"op":"config","pool":"p","capacity":2,"ttl":30000,"grace":15000})"
      "\n"
      R"({"op":"heartbeat","pool":"p","client":"c1","tokn":"1","now":2000})"
      "\n"
      R"({"op":"release","pool":"p","client":"c1","token":"1","now":3000})"
      "\n";
  const GateRun want = core_gate(ops);
  const GateRun got = redis_gate(ops, server_.url());
  EXPECT_EQ(got.exit_code, 2);
  EXPECT_EQ(got.out, want.out);
  EXPECT_EQ(got.err, want.err);
  EXPECT_EQ(got.err.rfind("line 3: ", 0), 0u) << got.err;
}

TEST(GateRedisCliUrl, D_ABadUrlExits2) {
  const GateRun run = redis_gate("", "http://localhost:6379");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err.rfind("--redis: expected unix:/path/to/socket or redis://host[:port]", 0), 0u) << run.err;
}

TEST(GateRedisCliUrl, R3_AnUnreachableServerExits2NamingTheLine) {
  const GateRun run = redis_gate(
      R"({"op":"config","pool":"p","capacity":2,"ttl":30000,"grace":15000})"
      "\n"
      R"({"op":"admit","pool":"p","client":"c1","episode":"tt1:1:1","request":"r1","issued_at":1000,"now":1000})"
      "\n",
      "unix:/nonexistent/turnstile/redis.sock");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.out, "{\"outcome\":\"configured\"}\n");
  EXPECT_EQ(run.err.rfind("line 2: redis unix:/nonexistent/turnstile/redis.sock: the store call failed (transient)", 0),
            0u)
      << run.err;
}

}  // namespace
}  // namespace turnstile::cli
