#include "sim/history_format.h"

#include <charconv>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/assert.h"
#include "core/ids.h"
#include "core/response.h"

namespace turnstile::sim {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxClock = std::numeric_limits<std::int64_t>::max();
constexpr std::string_view kOpNames = "one of admit, heartbeat, release, config";
constexpr std::string_view kTokenExpected = "a decimal token string such as \"1\"";

// A JSON integer that fits an int64; floats, strings and larger numbers do not.
std::optional<std::int64_t> as_int64(const json& value) {
  if (value.is_number_unsigned()) {
    const auto unsigned_value = value.get<std::uint64_t>();
    if (unsigned_value > static_cast<std::uint64_t>(kMaxClock)) return std::nullopt;
    return static_cast<std::int64_t>(unsigned_value);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  return std::nullopt;
}

// A key from the input, fit for a one-line message: control and non-ASCII
// bytes as \xNN, and at most 64 bytes of it.
std::string printable(std::string_view key) {
  constexpr std::size_t kMaxShown = 64;
  std::string shown;
  for (std::size_t i = 0; i < key.size() && i < kMaxShown; ++i) {
    const auto byte = static_cast<unsigned char>(key[i]);
    if (byte < 0x20 || byte >= 0x7f || byte == '\\' || byte == '\'') {
      fmt::format_to(std::back_inserter(shown), "\\x{:02x}", byte);
    } else {
      shown += static_cast<char>(byte);
    }
  }
  if (key.size() > kMaxShown) shown += "...";
  return shown;
}

// Reads the fields of one line. The first error is kept and every later read
// does nothing, so the readers below stay straight lists of fields.
class Reader {
 public:
  Reader(std::string_view source, std::size_t line) : source_(source), line_(line) {}

  bool failed() const { return error_.has_value(); }
  std::string take_error() { return std::move(*error_); }

  void fail_line(std::string_view what) {
    if (!error_) error_ = fmt::format("{}:{}: {}", source_, line_, what);
  }
  void fail(std::string_view path, std::string_view expected) {
    if (!error_) error_ = fmt::format("{}:{}: field '{}': expected {}", source_, line_, path, expected);
  }
  void missing(std::string_view path, std::string_view expected) {
    if (!error_) error_ = fmt::format("{}:{}: field '{}': missing, expected {}", source_, line_, path, expected);
  }

  // Every key of `object` must be one of `known`: a misspelt field is an
  // error, not a silently ignored one.
  void only(const json& object, std::string_view path, std::initializer_list<std::string_view> known) {
    if (failed()) return;
    for (const auto& item : object.items()) {
      bool found = false;
      for (std::string_view name : known) found = found || item.key() == name;
      if (found) continue;
      std::string names;
      for (std::string_view name : known) names += fmt::format("{}{}", names.empty() ? "" : ", ", name);
      if (!error_) {
        error_ = fmt::format("{}:{}: field '{}': unknown field (known fields: {})", source_, line_,
                             join(path, printable(item.key())), names);
      }
      return;
    }
  }

  // The value of `key`, or null (and a "missing" error) when absent.
  const json* get(const json& object, std::string_view path, std::string_view key, std::string_view expected) {
    if (failed()) return nullptr;
    auto it = object.find(key);
    if (it == object.end()) return missing(join(path, key), expected), nullptr;
    return &*it;
  }

  std::string id(const json& object, std::string_view path, std::string_view key, core::IdKind kind) {
    const json* value = get(object, path, key, core::id_expectation(kind));
    if (value == nullptr) return {};
    if (!value->is_string() || !core::is_valid_id(kind, value->get_ref<const std::string&>())) {
      return fail(join(path, key), core::id_expectation(kind)), std::string{};
    }
    return value->get<std::string>();
  }

  std::int64_t integer(const json& value, std::string_view field, std::int64_t min, std::int64_t max,
                       std::string_view unit) {
    if (failed()) return 0;
    const auto number = as_int64(value);
    if (!number || *number < min || *number > max) {
      fail(field, fmt::format("an integer from {} to {}{}", min, max, unit));
      return 0;
    }
    return *number;
  }

  std::int64_t integer(const json& object, std::string_view path, std::string_view key, std::int64_t min,
                       std::int64_t max, std::string_view unit) {
    if (failed()) return 0;
    // The phrase is built only on failure: this runs for several fields of every line.
    auto it = object.find(key);
    if (it == object.end())
      return missing(join(path, key), fmt::format("an integer from {} to {}{}", min, max, unit)), 0;
    return integer(*it, join(path, key), min, max, unit);
  }

  core::Ms time(const json& object, std::string_view path, std::string_view key) {
    return integer(object, path, key, 0, core::kMaxTimeMs, " (ms)");
  }

  // A D input token: any decimal string of an unsigned 64-bit integer, as
  // `turnstile gate` reads it ("0" names no session, so it never matches).
  core::Token token(const json& object, std::string_view path, std::string_view key) {
    const json* value = get(object, path, key, kTokenExpected);
    if (value == nullptr) return core::kNoToken;
    std::optional<core::Token> parsed;
    if (value->is_string()) parsed = decimal(value->get_ref<const std::string&>());
    if (!parsed) return fail(join(path, key), kTokenExpected), core::kNoToken;
    return *parsed;
  }

  static std::string join(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }

  static std::optional<std::uint64_t> decimal(const std::string& text) {
    std::uint64_t parsed = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, parsed);
    if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
    return parsed;
  }

 private:
  std::string_view source_;
  std::size_t line_;
  std::optional<std::string> error_;
};

// The D input object under "op" (SPEC D), validated as `turnstile gate` does.
void read_op(Reader& read, const json& value, HistoryOp& entry) {
  constexpr std::string_view kPath = "op";
  if (!value.is_object()) return read.fail(kPath, "a D input object such as {\"op\":\"admit\",\"pool\":\"p\",...}");
  const json* name_value = read.get(value, kPath, "op", kOpNames);
  if (name_value == nullptr) return;
  const std::string name = name_value->is_string() ? name_value->get<std::string>() : std::string{};
  if (name == "admit") {
    read.only(value, kPath, {"op", "pool", "client", "episode", "request", "issued_at", "now"});
    core::Op op;
    op.kind = core::OpKind::admit;
    entry.pool = read.id(value, kPath, "pool", core::IdKind::pool);
    op.client = read.id(value, kPath, "client", core::IdKind::client);
    op.episode = read.id(value, kPath, "episode", core::IdKind::episode);
    op.request = read.id(value, kPath, "request", core::IdKind::request);
    op.issued_at = read.time(value, kPath, "issued_at");
    op.now = read.time(value, kPath, "now");
    entry.op = std::move(op);
  } else if (name == "heartbeat" || name == "release") {
    read.only(value, kPath, {"op", "pool", "client", "token", "now"});
    core::Op op;
    op.kind = name == "heartbeat" ? core::OpKind::heartbeat : core::OpKind::release;
    entry.pool = read.id(value, kPath, "pool", core::IdKind::pool);
    op.client = read.id(value, kPath, "client", core::IdKind::client);
    op.token = read.token(value, kPath, "token");
    op.now = read.time(value, kPath, "now");
    entry.op = std::move(op);
  } else if (name == "config") {
    read.only(value, kPath, {"op", "pool", "capacity", "ttl", "grace"});
    core::GateConfig config;
    entry.pool = read.id(value, kPath, "pool", core::IdKind::pool);
    config.capacity = read.integer(value, kPath, "capacity", 1, core::kMaxCapacity, "");
    config.ttl_ms = read.integer(value, kPath, "ttl", 1, core::kMaxTimeMs, " (ms)");
    config.grace_ms = read.integer(value, kPath, "grace", 0, core::kMaxTimeMs, " (ms)");
    entry.op = config;
  } else {
    read.fail("op.op", kOpNames);
  }
}

// The D output object under "out" for a completed gate op.
core::Decision read_decision(Reader& read, const json& value) {
  constexpr std::string_view kPath = "out";
  core::Decision decision;
  if (!value.is_object()) {
    read.fail(kPath, "a D output object such as {\"outcome\":\"admitted\",\"token\":\"1\",\"victim\":null,\"held\":1}");
    return decision;
  }
  read.only(value, kPath, {"outcome", "token", "victim", "held"});

  static const std::string outcomes = [] {
    std::string names = "one of ";
    for (std::size_t i = 0; i <= static_cast<std::size_t>(core::Outcome::released); ++i) {
      names += fmt::format("{}{}", i == 0 ? "" : ", ", core::outcome_name(static_cast<core::Outcome>(i)));
    }
    return names;
  }();
  if (const json* outcome = read.get(value, kPath, "outcome", outcomes)) {
    std::optional<core::Outcome> parsed;
    if (outcome->is_string()) parsed = core::outcome_from_name(outcome->get_ref<const std::string&>());
    if (!parsed) return read.fail("out.outcome", outcomes), decision;
    decision.outcome = *parsed;
  }

  // D prints a token as a decimal string and no token as null; "0" is never issued.
  constexpr std::string_view kOutToken = "null or a decimal token string such as \"1\"";
  if (const json* token = read.get(value, kPath, "token", kOutToken)) {
    if (!token->is_null()) {
      std::optional<core::Token> parsed;
      if (token->is_string()) parsed = Reader::decimal(token->get_ref<const std::string&>());
      if (!parsed || *parsed == core::kNoToken) return read.fail("out.token", kOutToken), decision;
      decision.token = *parsed;
    }
  }

  static const std::string victim_expected = fmt::format("null or {}", core::id_expectation(core::IdKind::client));
  if (const json* victim = read.get(value, kPath, "victim", victim_expected)) {
    if (!victim->is_null()) {
      if (!victim->is_string() || !core::is_valid_id(core::IdKind::client, victim->get_ref<const std::string&>())) {
        return read.fail("out.victim", victim_expected), decision;
      }
      decision.victim = victim->get<std::string>();
    }
  }
  decision.held = read.integer(value, kPath, "held", 0, core::kMaxCapacity, "");
  return decision;
}

void read_config_out(Reader& read, const json& value) {
  constexpr std::string_view kExpected = "{\"outcome\":\"configured\"} for a config op";
  if (!value.is_object()) return read.fail("out", kExpected);
  read.only(value, "out", {"outcome"});
  const json* outcome = read.get(value, "out", "outcome", "\"configured\"");
  if (outcome == nullptr) return;
  if (!outcome->is_string() || outcome->get_ref<const std::string&>() != "configured") {
    read.fail("out.outcome", "\"configured\" for a config op");
  }
}

void append_token(std::string& out, core::Token token) { fmt::format_to(std::back_inserter(out), "\"{}\"", token); }

}  // namespace

std::variant<HistoryOp, HistoryError> parse_history_line(std::string_view text, std::string_view source,
                                                         std::size_t line) {
  Reader read(source, line);
  if (text.size() > kMaxHistoryLineBytes) {
    read.fail_line(fmt::format("longer than {} bytes", kMaxHistoryLineBytes));
    return HistoryError{read.take_error()};
  }
  if (text.find_first_not_of(" \t") == std::string_view::npos) {
    read.fail_line("empty line, expected a JSON object");
    return HistoryError{read.take_error()};
  }
  const json object = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded()) {
    read.fail_line("not valid JSON");
  } else if (!object.is_object()) {
    read.fail_line("expected a JSON object");
  }
  if (read.failed()) return HistoryError{read.take_error()};

  HistoryOp entry;
  entry.line = line;
  read.only(object, "", {"process", "call", "ret", "op", "out"});
  entry.process = read.id(object, "", "process", core::IdKind::client);
  entry.call = read.integer(object, "", "call", 0, kMaxClock, "");
  auto ret_expected = [&] { return fmt::format("null or an integer from {} to {}", entry.call, kMaxClock); };
  if (const json* ret = read.get(object, "", "ret", "null or an integer, at least call")) {
    if (!ret->is_null()) {
      const auto value = as_int64(*ret);
      if (!value || *value < entry.call) read.fail("ret", ret_expected());
      entry.ret = value.value_or(entry.call);
    }
  }
  if (const json* op = read.get(object, "", "op", "a D input object")) read_op(read, *op, entry);
  if (const json* out = read.get(object, "", "out", "a D output object, or null when ret is null")) {
    if (read.failed()) {
      // Nothing more to read.
    } else if (entry.pending()) {
      if (!out->is_null()) read.fail("out", "null, since ret is null (the operation's outcome is unknown)");
    } else if (out->is_null()) {
      read.fail("out", "a D output object, since ret is set (only a pending operation has out null)");
    } else if (entry.is_config()) {
      read_config_out(read, *out);
    } else {
      entry.out = read_decision(read, *out);
    }
  }
  if (read.failed()) return HistoryError{read.take_error()};
  return entry;
}

std::variant<std::vector<HistoryOp>, HistoryError> read_history(std::string_view text, std::string_view source) {
  std::vector<HistoryOp> ops;
  std::size_t line = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    ++line;
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view current = text.substr(start, end - start);
    if (!current.empty() && current.back() == '\r') current.remove_suffix(1);
    start = end + 1;
    if (ops.size() >= kMaxHistoryOps) {
      return HistoryError{fmt::format("{}:{}: more than {} operations in one history", source, line, kMaxHistoryOps)};
    }
    auto parsed = parse_history_line(current, source, line);
    if (auto* error = std::get_if<HistoryError>(&parsed)) return std::move(*error);
    ops.push_back(std::move(std::get<HistoryOp>(parsed)));
  }
  return ops;
}

void append_d_op(std::string& out, std::string_view pool, const std::variant<core::Op, core::GateConfig>& op) {
  if (const auto* config = std::get_if<core::GateConfig>(&op)) {
    out += R"({"op":"config","pool":)";
    core::append_json_string(out, pool);
    fmt::format_to(std::back_inserter(out), R"(,"capacity":{},"ttl":{},"grace":{}}})", config->capacity, config->ttl_ms,
                   config->grace_ms);
    return;
  }
  const auto& gate_op = std::get<core::Op>(op);
  switch (gate_op.kind) {
    case core::OpKind::admit:
      out += R"({"op":"admit","pool":)";
      core::append_json_string(out, pool);
      out += R"(,"client":)";
      core::append_json_string(out, gate_op.client);
      out += R"(,"episode":)";
      core::append_json_string(out, gate_op.episode);
      out += R"(,"request":)";
      core::append_json_string(out, gate_op.request);
      fmt::format_to(std::back_inserter(out), R"(,"issued_at":{},"now":{}}})", gate_op.issued_at, gate_op.now);
      return;
    case core::OpKind::heartbeat:
    case core::OpKind::release:
      out += gate_op.kind == core::OpKind::heartbeat ? R"({"op":"heartbeat","pool":)" : R"({"op":"release","pool":)";
      core::append_json_string(out, pool);
      out += R"(,"client":)";
      core::append_json_string(out, gate_op.client);
      out += R"(,"token":)";
      append_token(out, gate_op.token);
      fmt::format_to(std::back_inserter(out), R"(,"now":{}}})", gate_op.now);
      return;
  }
}

void append_d_decision(std::string& out, const core::Decision& decision) {
  out += R"({"outcome":")";
  out += core::outcome_name(decision.outcome);
  out += R"(","token":)";
  if (decision.token == core::kNoToken) {
    out += "null";
  } else {
    append_token(out, decision.token);
  }
  out += R"(,"victim":)";
  if (decision.victim.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, decision.victim);
  }
  fmt::format_to(std::back_inserter(out), ",\"held\":{}}}", decision.held);
}

void append_history_line(std::string& out, const HistoryOp& op) {
  out += R"({"process":)";
  core::append_json_string(out, op.process);
  fmt::format_to(std::back_inserter(out), R"(,"call":{},"ret":)", op.call);
  if (op.ret) {
    fmt::format_to(std::back_inserter(out), "{}", *op.ret);
  } else {
    out += "null";
  }
  out += R"(,"op":)";
  append_d_op(out, op.pool, op.op);
  out += R"(,"out":)";
  if (op.pending()) {
    out += "null";
  } else if (op.is_config()) {
    out += R"({"outcome":"configured"})";
  } else {
    // A completed gate op always has its answer: writing null would make a
    // line the reader refuses.
    TS_ASSERT(op.out.has_value());
    append_d_decision(out, *op.out);
  }
  out += "}\n";
}

std::string format_history_line(const HistoryOp& op) {
  std::string out;
  append_history_line(out, op);
  return out;
}

}  // namespace turnstile::sim
