#pragma once

// turnstiled's configuration: flags, each with an environment variable that
// a flag overrides (docs/turnstiled.md has the table).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "adapters/redis/redis_store.h"
#include "core/gate.h"
#include "core/route.h"
#include "core/time.h"

namespace turnstile::adapters {

struct ServerConfig {
  // Where to listen. Port 0 asks the kernel for a free port; the chosen one
  // is printed on start.
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;

  RedisEndpoint redis = RedisEndpoint{"", "127.0.0.1", 6379};
  // SPEC G: Redis TIME by default; `caller` sends the instance's clock.
  StoreClock store_clock = StoreClock::redis;
  std::string broker_url;  // http://host:port, no trailing slash

  // One gate config serves every pool: a pool is named by the path, and all
  // pools of one instance share capacity, ttl and grace.
  core::GateConfig gate;
  // Retry budgets (R), fail policy (F4) and coalescing bounds (C5).
  core::RouteConfig route;

  // Threads that perform store calls, and as many again for broker calls, so
  // that a hung broker never delays a gate decision.
  int workers = 8;
  // At most this many jobs wait in each worker queue; a call that finds its
  // queue full fails at once as transient (R3), like a refused connection.
  std::size_t queue_capacity = 4096;
  // Connections beyond this are answered 503 and closed.
  std::size_t max_connections = 1024;
  // Requests are small GETs: larger headers or any body beyond this are 400.
  std::uint32_t header_limit_bytes = 8192;
  std::uint64_t body_limit_bytes = 1024;
  // A connection that sends nothing for this long (between requests, or in
  // the middle of one) is closed.
  core::Ms idle_timeout_ms = 30000;

  bool log_requests = true;  // one JSON line per request on stdout
};

// What parse_server_args decided: run with a config, or exit with a code
// after printing `message` (help text on stdout for code 0, one line on
// stderr otherwise).
struct ParsedArgs {
  std::optional<ServerConfig> config;
  int exit_code = 0;
  std::string message;
};

// Flags win over the environment (TURNSTILE_LISTEN, TURNSTILE_REDIS, ...).
// Any bad value gives exit code 2 and one line naming the flag.
ParsedArgs parse_server_args(int argc, const char* const* argv);

// "host:port" or "[v6]:port"; the error says what was expected.
std::variant<std::pair<std::string, std::uint16_t>, std::string> parse_listen(std::string_view text);

}  // namespace turnstile::adapters
