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

// The same bounds as run_gate's.
constexpr std::size_t kMaxLineBytes = 64 * 1024;
constexpr std::size_t kFlushBytes = 64 * 1024;
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

  std::string line;
  std::string buffer;
  buffer.reserve(kFlushBytes + 256);
  std::size_t line_number = 0;

  auto fail = [&](std::string_view message) {
    out << buffer;
    out.flush();
    err << fmt::format("line {}: {}\n", line_number, message);
    return 2;
  };

  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > kMaxLineBytes) return fail(fmt::format("longer than {} bytes", kMaxLineBytes));
    if (line.find_first_not_of(" \t") == std::string::npos) return fail("empty line, expected a JSON object");

    auto parsed = parse_gate_line(line);
    if (auto* error = std::get_if<LineError>(&parsed)) return fail(error->message);
    const GateLine& gate_line = std::get<GateLine>(parsed);

    if (const auto* config_line = std::get_if<GateConfigLine>(&gate_line)) {
      if (!configs.contains(config_line->pool) && configs.size() >= GateBook::kMaxPools) {
        return fail(fmt::format("field 'pool': expected at most {} distinct pools in one run", GateBook::kMaxPools));
      }
      configs[config_line->pool] = config_line->config;
      buffer += kConfiguredLine;
    } else {
      const auto& op_line = std::get<GateOpLine>(gate_line);
      const auto config = configs.find(op_line.pool);
      const core::StoreReply reply =
          store.call(op_line.pool, op_line.op, config == configs.end() ? core::GateConfig{} : config->second, rng);
      if (!reply.decision) {
        return fail(fmt::format("redis {}: the store call failed ({}): {}", url,
                                core::outcome_class_name(reply.result.outcome_class), store.last_error()));
      }
      append_decision(buffer, *reply.decision);
    }
    buffer += '\n';
    if (buffer.size() >= kFlushBytes) {
      out << buffer;
      buffer.clear();
    }
  }
  out << buffer;
  out.flush();
  if (in.bad()) {
    err << fmt::format("line {}: read error\n", line_number + 1);
    return 2;
  }
  return 0;
}

}  // namespace turnstile::cli
