#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "adapters/redis/gate_lua.h"
#include "core/flow.h"
#include "core/gate.h"
#include "core/retry.h"
#include "core/rng.h"
#include "core/time.h"

struct redisContext;

namespace turnstile::adapters {

// Where a Redis server listens: a unix socket, or a TCP host and port.
struct RedisEndpoint {
  std::string unix_path;  // set for unix:/path
  std::string host;       // set for redis://host[:port]
  int port = 6379;

  std::string url() const;
};

// Parses `unix:/path/to/socket` or `redis://host[:port]`. The error says
// what was expected, for a "--redis: ..." message.
std::variant<RedisEndpoint, std::string> parse_redis_url(std::string_view url);

// SPEC G: `now` is the caller's (op.now), or Redis TIME inside the script.
// Managed Redis services may forbid TIME in scripts; G1 keeps a pool's clock
// monotonic either way.
enum class StoreClock { caller, redis };

struct RedisStoreConfig {
  RedisEndpoint endpoint;
  core::RetryConfig retry = core::RetryConfig::store_defaults();
  core::Ms connect_timeout_ms = 300;  // never past the attempt's deadline
  StoreClock clock = StoreClock::caller;
  // The gate script. Tests substitute a broken one to show that the
  // differential test can fail. The text must outlive the store.
  std::string_view script = kGateLua;
  // Called just before each attempt starts and just after it ends, e.g. to
  // record a history (SPEC H) on the caller's own clock. Either may be empty.
  std::function<void(std::string_view pool, const core::Op&)> before_attempt;
  std::function<void(std::string_view pool, const core::Op&, const core::StoreReply&)> after_attempt;
};

// What the store did, for tests and logs.
struct RedisStats {
  std::uint64_t attempts = 0;        // store attempts started: one or two per call (R4)
  std::uint64_t eval_fallbacks = 0;  // EVALSHA answered NOSCRIPT and EVAL followed (R3)
  std::uint64_t connects = 0;        // connections opened
};

// A pool's two Redis keys: its hash (counters and sessions) and its
// last_seen index (a sorted set). The braces are the cluster hash tag, so
// both live in one slot and one script may touch them (SPEC G).
std::string pool_key(std::string_view pool);
std::string seen_key(std::string_view pool);

// The gate (gate.lua) on one Redis server over one connection, opened on
// first use and dropped after any error that may leave a reply in flight
// (a timeout, a reset), so that no stale reply is ever read as a later
// command's. Not thread-safe: one store per thread.
//
// hiredis writes with write(2), which raises SIGPIPE on a connection the
// server closed; the constructor sets SIGPIPE to SIG_IGN unless the process
// already handles it.
class RedisStore {
 public:
  explicit RedisStore(RedisStoreConfig config);
  ~RedisStore();
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // One attempt at `op` on `pool` that ends by `deadline_ms` (steady_ms()'s
  // clock): EVALSHA, and on NOSCRIPT exactly one EVAL of the whole script
  // inside the same attempt. A failed attempt is classified per R3: BUSY,
  // LOADING, TRYAGAIN, timeouts and connection errors are transient; other
  // error replies and malformed replies are permanent.
  core::StoreReply attempt(std::string_view pool, const core::Op& op, const core::GateConfig& gate,
                           core::Ms deadline_ms);

  // One whole store operation (R1-R7): attempts driven by core::Retry with
  // config.retry, its time read from steady_clock and its retry delay drawn
  // from `rng`. The retry sends the same op, request id included (R3a), so a
  // first attempt whose reply was lost is answered by G3 rather than applied
  // twice. The op's `now` is sent unchanged by both attempts.
  core::StoreReply call(std::string_view pool, const core::Op& op, const core::GateConfig& gate, core::Rng& rng);

  // The pool's whole state, read by the script's `state` op (which changes
  // nothing), in the core's session order. For tests and debugging.
  std::variant<core::PoolState, std::string> read_pool(std::string_view pool, core::Ms timeout_ms = 1000);

  // Why the last failed attempt failed, for messages.
  const std::string& last_error() const { return last_error_; }
  const RedisStats& stats() const { return stats_; }
  // The script's SHA-1, the name EVALSHA calls it by.
  const std::string& script_sha() const { return script_sha_; }

  // std::chrono::steady_clock in milliseconds: the clock of every deadline here.
  static core::Ms steady_ms();

 private:
  struct CommandResult;

  bool connect(core::Ms deadline_ms);
  void disconnect();
  CommandResult command(const std::vector<std::string_view>& argv, core::Ms deadline_ms);
  CommandResult run_script(std::string_view pool, const std::vector<std::string>& args, core::Ms deadline_ms);
  core::StoreReply attempt_once(std::string_view pool, const core::Op& op, const core::GateConfig& gate,
                                core::Ms deadline_ms);
  core::StoreReply fail(core::OutcomeClass outcome_class, std::string why);

  RedisStoreConfig config_;
  std::string script_sha_;
  redisContext* context_ = nullptr;
  std::string last_error_;
  RedisStats stats_;
};

}  // namespace turnstile::adapters
