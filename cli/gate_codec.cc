#include "cli/gate_codec.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "core/response.h"
#include "sim/describe.h"

namespace turnstile::cli {
namespace {

using nlohmann::json;

// A line's fields are read through this, which remembers the first error so
// that every reader below can stay a straight sequence of lookups.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  std::string id(std::string_view field, core::IdKind kind) {
    const json* value = find(field, core::id_expectation(kind));
    if (value == nullptr) return {};
    if (!value->is_string()) return fail(field, core::id_expectation(kind)), std::string{};
    const auto& text = value->get_ref<const std::string&>();
    if (auto error = core::check_id(kind, field, text)) return fail(field, error->expected), std::string{};
    return text;
  }

  std::int64_t integer(std::string_view field, std::int64_t min, std::int64_t max, std::string_view unit) {
    // The phrase is built only on failure: this runs for every field of every line.
    auto expected = [&] { return fmt::format("an integer from {} to {}{}", min, max, unit); };
    auto it = object_.find(field);
    if (it == object_.end()) return missing(field, expected()), 0;
    const json& value = *it;
    const bool in_range =
        value.is_number_integer() &&
        !(value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) &&
        value.get<std::int64_t>() >= min && value.get<std::int64_t>() <= max;
    if (!in_range) return fail(field, expected()), 0;
    return value.get<std::int64_t>();
  }

  core::Ms time(std::string_view field) { return integer(field, 0, core::kMaxTimeMs, " (ms)"); }

  core::Token token(std::string_view field) {
    static constexpr std::string_view kExpected = "a decimal token string such as \"1\"";
    const json* value = find(field, kExpected);
    if (value == nullptr) return core::kNoToken;
    if (!value->is_string()) return fail(field, kExpected), core::kNoToken;
    const auto& text = value->get_ref<const std::string&>();
    core::Token token = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, token);
    if (text.empty() || ec != std::errc{} || ptr != end) return fail(field, kExpected), core::kNoToken;
    return token;
  }

  // Every key of the object must be one of `allowed` (a misspelt field is an
  // error, not a silently ignored one).
  void only(std::string_view op, std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, unused] : object_.items()) {
      bool known = false;
      for (auto name : allowed) known = known || key == name;
      if (!known) {
        std::string names;
        for (auto name : allowed) names += (names.empty() ? "" : ", ") + std::string(name);
        // The key is the input's: quoted so that a message stays one line.
        fail(sim::quote_input(key), fmt::format("no such field for op '{}' (fields: {})", op, names));
        return;
      }
    }
  }

  const std::optional<LineError>& error() const { return error_; }

 private:
  const json* find(std::string_view field, std::string_view expected) {
    auto it = object_.find(field);
    if (it == object_.end()) return missing(field, expected), nullptr;
    return &*it;
  }

  void missing(std::string_view field, std::string_view expected) {
    if (!error_) error_ = LineError{fmt::format("field '{}': missing, expected {}", field, expected)};
  }

  void fail(std::string_view field, std::string_view expected) {
    if (!error_) error_ = LineError{fmt::format("field '{}': expected {}", field, expected)};
  }

  const json& object_;
  std::optional<LineError> error_;
};

}  // namespace

std::variant<GateLine, LineError> parse_gate_line(std::string_view line) {
  json object = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded()) return LineError{"not valid JSON"};
  if (!object.is_object()) return LineError{"expected a JSON object"};

  auto op_it = object.find("op");
  if (op_it == object.end()) {
    return LineError{"field 'op': missing, expected one of admit, heartbeat, release, config"};
  }
  if (!op_it->is_string()) return LineError{"field 'op': expected one of admit, heartbeat, release, config"};
  const auto& op_name = op_it->get_ref<const std::string&>();

  FieldReader read(object);
  GateLine result;
  if (op_name == "admit") {
    GateOpLine line_op;
    line_op.op.kind = core::OpKind::admit;
    line_op.pool = read.id("pool", core::IdKind::pool);
    line_op.op.client = read.id("client", core::IdKind::client);
    line_op.op.episode = read.id("episode", core::IdKind::episode);
    line_op.op.request = read.id("request", core::IdKind::request);
    line_op.op.issued_at = read.time("issued_at");
    line_op.op.now = read.time("now");
    read.only(op_name, {"op", "pool", "client", "episode", "request", "issued_at", "now"});
    result = std::move(line_op);
  } else if (op_name == "heartbeat" || op_name == "release") {
    GateOpLine line_op;
    line_op.op.kind = op_name == "heartbeat" ? core::OpKind::heartbeat : core::OpKind::release;
    line_op.pool = read.id("pool", core::IdKind::pool);
    line_op.op.client = read.id("client", core::IdKind::client);
    line_op.op.token = read.token("token");
    line_op.op.now = read.time("now");
    read.only(op_name, {"op", "pool", "client", "token", "now"});
    result = std::move(line_op);
  } else if (op_name == "config") {
    GateConfigLine line_config;
    line_config.pool = read.id("pool", core::IdKind::pool);
    line_config.config.capacity = read.integer("capacity", 1, core::kMaxCapacity, "");
    line_config.config.ttl_ms = read.integer("ttl", 1, core::kMaxTimeMs, " (ms)");
    line_config.config.grace_ms = read.integer("grace", 0, core::kMaxTimeMs, " (ms)");
    read.only(op_name, {"op", "pool", "capacity", "ttl", "grace"});
    result = std::move(line_config);
  } else {
    return LineError{"field 'op': expected one of admit, heartbeat, release, config"};
  }
  if (read.error()) return *read.error();
  return result;
}

void append_decision(std::string& out, const core::Decision& decision) {
  out += R"({"outcome":")";
  out += core::outcome_name(decision.outcome);
  out += R"(","token":)";
  if (decision.token == core::kNoToken) {
    out += "null";
  } else {
    fmt::format_to(std::back_inserter(out), "\"{}\"", decision.token);
  }
  out += R"(,"victim":)";
  if (decision.victim.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, decision.victim);
  }
  fmt::format_to(std::back_inserter(out), ",\"held\":{}}}", decision.held);
}

std::string format_decision(const core::Decision& decision) {
  std::string out;
  append_decision(out, decision);
  return out;
}

}  // namespace turnstile::cli
