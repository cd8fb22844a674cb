#include "cli/gate_redis.h"

#include <functional>
#include <istream>
#include <map>
#include <ostream>
#include <string_view>
#include <variant>

#include <fmt/format.h>

#include "adapters/redis/redis_store.h"
#include "cli/gate_codec.h"
#include "cli/gate_command.h"
#include "core/outcome.h"
#include "core/rng.h"

namespace turnstile::cli {
namespace {

// Retry delays are drawn from a fixed seed: the command's output never
// depends on them, only its timing under faults.
constexpr std::uint64_t kRetrySeed = 1;

}  // namespace

int run_gate_redis(std::istream& in, std::ostream& out, std::ostream& err, const std::string& url) {
  auto endpoint = adapters::parse_redis_url(url);
  if (const auto* error = std::get_if<std::string>(&endpoint)) {
    err << fmt::format("--redis: {}, got '{}'\n", *error, url);
    return 2;
  }
  adapters::RedisStoreConfig store_config;
  store_config.endpoint = std::get<adapters::RedisEndpoint>(endpoint);
  adapters::RedisStore store(store_config);
  core::Rng rng(kRetrySeed);
  // Pools with a config line; every other pool has the default config.
  std::map<std::string, core::GateConfig, std::less<>> configs;

  return run_gate_lines(in, out, err, [&](const GateLine& gate_line) -> LineResult {
    if (const auto* config_line = std::get_if<GateConfigLine>(&gate_line)) {
      if (!configs.contains(config_line->pool) && configs.size() >= GateBook::kMaxPools) {
        return LineError{fmt::format("field 'pool': expected at most {} distinct pools in one run", GateBook::kMaxPools)};
      }
      configs[config_line->pool] = config_line->config;
      return std::monostate{};
    }
    const auto& op_line = std::get<GateOpLine>(gate_line);
    const auto config = configs.find(op_line.pool);
    const core::StoreReply reply =
        store.call(op_line.pool, op_line.op, config == configs.end() ? core::GateConfig{} : config->second, rng);
    if (!reply.decision) {
      return LineError{fmt::format("redis {}: the store call failed ({}): {}", url,
                                   core::outcome_class_name(reply.result.outcome_class), store.last_error())};
    }
    return *reply.decision;
  });
}

}  // namespace turnstile::cli
