#include "adapters/server/config.h"

#include <charconv>
#include <cstdint>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "core/retry.h"

namespace turnstile::adapters {
namespace {

// The flags of one dependency's retry config (SPEC R), e.g. --store-budget-ms.
void add_retry_flags(CLI::App& app, const std::string& name, const std::string& env, core::RetryConfig& retry) {
  app.add_option("--" + name + "-attempt-ms", retry.attempt_timeout_ms, "R: " + name + " attempt timeout A (ms)")
      ->envname("TURNSTILE_" + env + "_ATTEMPT_MS")
      ->capture_default_str();
  app.add_option("--" + name + "-budget-ms", retry.budget_ms, "R: " + name + " budget B (ms), A <= B")
      ->envname("TURNSTILE_" + env + "_BUDGET_MS")
      ->capture_default_str();
  app.add_option("--" + name + "-jitter-min-ms", retry.jitter_min_ms, "R5: " + name + " retry delay, least (ms)")
      ->envname("TURNSTILE_" + env + "_JITTER_MIN_MS")
      ->capture_default_str();
  app.add_option("--" + name + "-jitter-max-ms", retry.jitter_max_ms, "R5: " + name + " retry delay, most (ms)")
      ->envname("TURNSTILE_" + env + "_JITTER_MAX_MS")
      ->capture_default_str();
  app.add_option("--" + name + "-min-attempt-ms", retry.min_attempt_ms,
                 "R6: the least time left worth a " + name + " retry (ms)")
      ->envname("TURNSTILE_" + env + "_MIN_ATTEMPT_MS")
      ->capture_default_str();
}

// check_retry_config's field, as the flag a person typed.
std::string retry_flag(const std::string& name, const std::string& field) {
  if (field == "attempt_timeout") return "--" + name + "-attempt-ms";
  if (field == "budget") return "--" + name + "-budget-ms";
  if (field == "jitter_min") return "--" + name + "-jitter-min-ms";
  if (field == "jitter_max") return "--" + name + "-jitter-max-ms";
  return "--" + name + "-min-attempt-ms";
}

ParsedArgs fail(std::string message) {
  ParsedArgs parsed;
  parsed.exit_code = 2;
  parsed.message = "turnstiled: " + std::move(message);
  return parsed;
}

}  // namespace

std::variant<std::pair<std::string, std::uint16_t>, std::string> parse_listen(std::string_view text) {
  const std::string expected = "expected host:port or [v6]:port, port 0-65535, got '" + std::string(text) + "'";
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return expected;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return expected;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // An unbracketed v6 address would be ambiguous.
    if (host.find(':') != std::string_view::npos) return expected;
  }
  if (host.empty() || port.empty() || port.size() > 5) return expected;
  unsigned value = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (error != std::errc() || end != port.data() + port.size() || value > 65535) return expected;
  return std::pair<std::string, std::uint16_t>(std::string(host), static_cast<std::uint16_t>(value));
}

ParsedArgs parse_server_args(int argc, const char* const* argv) {
  ServerConfig config;
  std::string listen = "127.0.0.1:8080";
  std::string redis = "redis://127.0.0.1:6379";
  std::string store_clock = "redis";
  std::string fail_policy = "fail_closed";
  std::string log = "stdout";

  CLI::App app{"turnstiled: the stream route (SPEC F) over HTTP, gated by gate.lua on Redis"};
  app.add_option("--listen", listen, "Address to listen on, host:port (port 0: any free port)")
      ->envname("TURNSTILE_LISTEN")
      ->capture_default_str();
  app.add_option("--redis", redis, "Redis: unix:/path/to/socket or redis://host[:port]")
      ->envname("TURNSTILE_REDIS")
      ->capture_default_str();
  app.add_option("--store-clock", store_clock, "The gate's clock: redis (Redis TIME) or caller (this instance's)")
      ->envname("TURNSTILE_STORE_CLOCK")
      ->capture_default_str();
  app.add_option("--broker", config.broker_url, "Broker base URL, http://host:port (GET /resolve/{id})")
      ->envname("TURNSTILE_BROKER");
  app.add_option("--capacity", config.gate.capacity, "G: slots per pool (every pool)")
      ->envname("TURNSTILE_CAPACITY")
      ->capture_default_str();
  app.add_option("--ttl-ms", config.gate.ttl_ms, "G: a session is live this long after it was last seen (ms)")
      ->envname("TURNSTILE_TTL_MS")
      ->capture_default_str();
  app.add_option("--grace-ms", config.gate.grace_ms, "G: then idle (kept for its owner) this long (ms)")
      ->envname("TURNSTILE_GRACE_MS")
      ->capture_default_str();
  add_retry_flags(app, "store", "STORE", config.route.flow.store);
  add_retry_flags(app, "broker", "BROKER", config.route.flow.broker);
  app.add_option("--fail-policy", fail_policy, "F4: fail_closed or fail_open when the store fails")
      ->envname("TURNSTILE_FAIL_POLICY")
      ->capture_default_str();
  app.add_option("--max-flights", config.route.coalesce.max_flights, "C5: flights at once")
      ->envname("TURNSTILE_MAX_FLIGHTS")
      ->capture_default_str();
  app.add_option("--max-waiters", config.route.coalesce.max_waiters, "C5: waiters per flight")
      ->envname("TURNSTILE_MAX_WAITERS")
      ->capture_default_str();
  app.add_option("--workers", config.workers, "Threads for store calls, and as many for broker calls")
      ->envname("TURNSTILE_WORKERS")
      ->capture_default_str();
  app.add_option("--queue", config.queue_capacity, "Calls waiting for a worker, per kind, at most")
      ->envname("TURNSTILE_QUEUE")
      ->capture_default_str();
  app.add_option("--max-connections", config.max_connections, "Open connections at most; more are answered 503")
      ->envname("TURNSTILE_MAX_CONNECTIONS")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", config.idle_timeout_ms, "Close a connection silent for this long (ms)")
      ->envname("TURNSTILE_IDLE_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--log", log, "Request log: stdout (one JSON line per request) or off")
      ->envname("TURNSTILE_LOG")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    ParsedArgs parsed;
    parsed.message = app.help();
    return parsed;
  } catch (const CLI::ParseError& error) {
    // One line, exit 2 (DESIGN.md, "Exit codes and output").
    return fail(std::string(error.what()) + " (see --help)");
  }

  auto listen_parsed = parse_listen(listen);
  if (auto* error = std::get_if<std::string>(&listen_parsed)) return fail("--listen: " + *error);
  std::tie(config.listen_host, config.listen_port) = std::get<std::pair<std::string, std::uint16_t>>(listen_parsed);

  auto redis_parsed = parse_redis_url(redis);
  if (auto* error = std::get_if<std::string>(&redis_parsed)) return fail("--redis: " + *error);
  config.redis = std::get<RedisEndpoint>(redis_parsed);

  if (store_clock == "redis") {
    config.store_clock = StoreClock::redis;
  } else if (store_clock == "caller") {
    config.store_clock = StoreClock::caller;
  } else {
    return fail("--store-clock: expected redis or caller, got '" + store_clock + "'");
  }

  if (config.broker_url.empty()) return fail("--broker: required, e.g. --broker http://127.0.0.1:8081");
  if (!config.broker_url.starts_with("http://") && !config.broker_url.starts_with("https://")) {
    return fail("--broker: expected http://host:port, got '" + config.broker_url + "'");
  }
  while (config.broker_url.ends_with('/')) config.broker_url.pop_back();
  if (config.broker_url.find("://") + 3 == config.broker_url.size()) {
    return fail("--broker: expected http://host:port, got no host");
  }

  if (auto error = core::check_config(config.gate)) {
    const std::string flag = error->field == "capacity" ? "--capacity" : "--" + error->field + "-ms";
    return fail(flag + ": expected " + error->expected);
  }
  if (auto error = core::check_retry_config(config.route.flow.store)) {
    return fail(retry_flag("store", error->field) + ": expected " + error->expected);
  }
  if (auto error = core::check_retry_config(config.route.flow.broker)) {
    return fail(retry_flag("broker", error->field) + ": expected " + error->expected);
  }

  if (fail_policy == "fail_closed") {
    config.route.flow.fail_policy = core::FailPolicy::fail_closed;
  } else if (fail_policy == "fail_open") {
    config.route.flow.fail_policy = core::FailPolicy::fail_open;
  } else {
    return fail("--fail-policy: expected fail_closed or fail_open, got '" + fail_policy + "'");
  }

  if (config.route.coalesce.max_flights < 1 || config.route.coalesce.max_flights > 1000000) {
    return fail("--max-flights: expected an integer from 1 to 1000000");
  }
  if (config.route.coalesce.max_waiters < 1 || config.route.coalesce.max_waiters > 100000) {
    return fail("--max-waiters: expected an integer from 1 to 100000");
  }
  if (config.workers < 1 || config.workers > 256) return fail("--workers: expected an integer from 1 to 256");
  if (config.queue_capacity < 1 || config.queue_capacity > 1000000) {
    return fail("--queue: expected an integer from 1 to 1000000");
  }
  if (config.max_connections < 1 || config.max_connections > 100000) {
    return fail("--max-connections: expected an integer from 1 to 100000");
  }
  if (config.idle_timeout_ms < 1 || config.idle_timeout_ms > 3600000) {
    return fail("--idle-timeout-ms: expected an integer from 1 to 3600000");
  }

  if (log == "stdout") {
    config.log_requests = true;
  } else if (log == "off") {
    config.log_requests = false;
  } else {
    return fail("--log: expected stdout or off, got '" + log + "'");
  }

  ParsedArgs parsed;
  parsed.config = std::move(config);
  return parsed;
}

}  // namespace turnstile::adapters
