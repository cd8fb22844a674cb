// Traces as JSON Lines (DESIGN.md "Traces", docs/simulator.md). The layout:
//
//   line 1    {"turnstile_trace":1,"version":..,"scenario":{..},"seed":"..",
//              "strategy":..,"gate":..,"variant":..}
//   then      every draw, in the order the run took them:
//              {"draw":"store_fault","bound":1000,"value":17}
//   then      every scheduler step, each followed by the history events
//             recorded during it (an event recorded before the first step
//             comes before it):
//              {"step":0,"fiber":3,"choice":[1,4],"now":0,"fp":"<16 hex>"}
//              {"event":{"index":0,"step":0,"at":0,"kind":"request",..}}
//   last      the verdict, with the number of lines of each kind above so a
//             line lost from the middle is noticed as well as a cut tail:
//              {"verdict":"violation","rule":"P1","step":..,"at":..,"event":..,
//               "message":..,"outcome":"stopped","fingerprint":"<16 hex>",
//               "steps":..,"draws":..,"events":..}
//              {"verdict":"pass","outcome":"finished","fingerprint":..,
//               "steps":..,"draws":..,"events":..}
//
// Draws carry no step (sim::Draw does not record one), so they form their
// own section; replay consumes them in order either way. A 64-bit value that
// a JSON reader would round (beyond 2^53 - 1) is written as a string: the
// seed and the draws' bound and value as decimal, fingerprints as 16 hex
// digits, tokens as decimal like SPEC D. The reader accepts exactly what the
// writer writes (every field present, no unknown one) and turns anything
// else into one line "<source>:<line>: field 'x': expected ...".

#include "sim/describe.h"
#include "sim/trace.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "core/outcome.h"
#include "core/response.h"
#include "sim/runtime.h"

namespace turnstile::sim {
namespace {

using nlohmann::json;

// Bounds on what a trace may hold beyond the scenario's own limits on steps
// and events: the draws of a run, and the lengths of its tables.
constexpr std::size_t kMaxTraceDraws = 50'000'000;
constexpr std::size_t kMaxStreams = 1024;
constexpr std::size_t kMaxSessions = static_cast<std::size_t>(core::kMaxCapacity);
constexpr std::size_t kMaxText = 4096;

constexpr std::int64_t kMaxJsonInteger = (std::int64_t{1} << 53) - 1;

constexpr std::array<core::OutcomeClass, 3> kOutcomeClasses = {
    core::OutcomeClass::success, core::OutcomeClass::transient, core::OutcomeClass::permanent};
constexpr std::array<core::DenialReason, 6> kDenialReasons = {
    core::DenialReason::capacity,    core::DenialReason::policy,     core::DenialReason::busy,
    core::DenialReason::unavailable, core::DenialReason::superseded, core::DenialReason::resolve_failed};
constexpr std::array<Outcome, 7> kRunOutcomes = {Outcome::finished,    Outcome::stuck,        Outcome::step_limit,
                                                 Outcome::time_limit,  Outcome::fiber_limit,  Outcome::fiber_failed,
                                                 Outcome::stopped};
constexpr std::array<core::Outcome, 9> kGateOutcomes = {
    core::Outcome::admitted,         core::Outcome::resumed, core::Outcome::switched,
    core::Outcome::rotated,          core::Outcome::superseded, core::Outcome::blocked_capacity,
    core::Outcome::alive,            core::Outcome::gone,    core::Outcome::released};
constexpr std::array<std::string_view, 2> kDependencies = {"store", "broker"};
// The kinds of history event, in EventBody's order; as history.h spells them.
constexpr std::array<std::string_view, 11> kEventKinds = {"request",   "response", "leave",    "flight_start",
                                                          "flight_end", "call",     "call_end", "gate",
                                                          "fault",      "store_restart", "faults_healed"};
static_assert(std::variant_size_v<EventBody> == kEventKinds.size(), "a kind of event without a name in traces");


std::string hex64(std::uint64_t value) { return fmt::format("{:016x}", value); }

// ---------------------------------------------------------------- writing

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void open() {
    out_ += '{';
    first_ = true;
  }
  void close() {
    out_ += '}';
    first_ = false;
  }
  void open_array() {
    out_ += '[';
    first_ = true;
  }
  void close_array() {
    out_ += ']';
    first_ = false;
  }
  // Before an array element.
  void element() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  void key(std::string_view name) {
    element();
    core::append_json_string(out_, name);
    out_ += ':';
    first_ = true;  // the value that follows needs no comma
  }
  template <typename T>
  void number(std::string_view name, T value) {
    key(name);
    fmt::format_to(std::back_inserter(out_), "{}", value);
    first_ = false;
  }
  void text(std::string_view name, std::string_view value) {
    key(name);
    core::append_json_string(out_, value);
    first_ = false;
  }
  void boolean(std::string_view name, bool value) {
    key(name);
    out_ += value ? "true" : "false";
    first_ = false;
  }
  // A value that is already JSON text.
  void raw(std::string_view name, std::string_view json_text) {
    key(name);
    out_ += json_text;
    first_ = false;
  }
  void null(std::string_view name) {
    key(name);
    out_ += "null";
    first_ = false;
  }
  // A u64 that may pass 2^53 - 1: a number while it is exact, else a string.
  void u64(std::string_view name, std::uint64_t value) {
    if (value <= static_cast<std::uint64_t>(kMaxJsonInteger)) {
      number(name, value);
    } else {
      text(name, std::to_string(value));
    }
  }
  void token(std::string_view name, core::Token value) {
    if (value == core::kNoToken) {
      null(name);
    } else {
      text(name, std::to_string(value));
    }
  }

 private:
  std::string& out_;
  bool first_ = true;
};

void write_op(Writer& w, std::string_view name, const core::Op& op) {
  w.key(name);
  w.open();
  w.text("kind", core::op_kind_name(op.kind));
  w.text("client", op.client);
  w.text("episode", op.episode);
  w.text("request", op.request);
  w.number("issued_at", op.issued_at);
  w.number("now", op.now);
  w.token("token", op.token);
  w.close();
}

void write_decision_fields(Writer& w, const core::Decision& decision) {
  w.text("outcome", core::outcome_name(decision.outcome));
  w.token("token", decision.token);
  if (decision.victim.empty()) {
    w.null("victim");
  } else {
    w.text("victim", decision.victim);
  }
  w.number("held", decision.held);
}

void write_pool(Writer& w, std::string_view name, const core::PoolState& pool) {
  w.key(name);
  w.open();
  w.number("last_now", pool.last_now);
  w.token("last_token", pool.last_token);
  w.key("sessions");
  w.open_array();
  for (const core::Session& session : pool.sessions) {
    w.element();
    w.open();
    w.text("client", session.client);
    w.text("episode", session.episode);
    w.token("token", session.token);
    w.number("admitted_at", session.admitted_at);
    w.number("last_seen", session.last_seen);
    w.text("last_request", session.last_request);
    w.number("last_issued", session.last_issued);
    w.key("last_decision");
    w.open();
    write_decision_fields(w, session.last_decision);
    w.close();
    w.close();
  }
  w.close_array();
  w.close();
}

void write_response(Writer& w, const core::Response& response) {
  w.key("response");
  w.open();
  w.boolean("denied", response.denied);
  w.text("reason", core::denial_text(response.reason));
  w.key("streams");
  w.open_array();
  for (const core::Stream& stream : response.streams) {
    w.element();
    w.open();
    w.text("name", stream.name);
    w.text("url", stream.url);
    w.close();
  }
  w.close_array();
  w.close();
}

void write_body(Writer& w, const RequestSent& e) {
  w.number("instance", e.instance);
  w.u64("waiter", e.waiter);
  w.key("request");
  w.open();
  w.text("pool", e.request.pool);
  w.text("client", e.request.client);
  w.text("episode", e.request.episode);
  w.text("request", e.request.request);
  w.number("issued_at", e.request.issued_at);
  w.close();
}
void write_body(Writer& w, const ResponseReceived& e) {
  w.number("instance", e.instance);
  w.u64("waiter", e.waiter);
  write_response(w, e.response);
  w.token("token", e.token);
}
void write_body(Writer& w, const WaiterLeft& e) {
  w.number("instance", e.instance);
  w.u64("waiter", e.waiter);
}
void write_body(Writer& w, const FlightStarted& e) {
  w.number("instance", e.instance);
  w.u64("flight", e.flight);
  w.key("key");
  w.open();
  w.text("pool", e.key.pool);
  w.text("client", e.key.client);
  w.text("episode", e.key.episode);
  w.close();
}
void write_body(Writer& w, const FlightEnded& e) {
  w.number("instance", e.instance);
  w.u64("flight", e.flight);
}
void write_body(Writer& w, const CallStarted& e) {
  w.number("instance", e.instance);
  w.u64("flight", e.flight);
  w.text("dependency", kDependencies[static_cast<std::size_t>(e.dependency)]);
  w.number("call", e.call);
  w.number("attempt", e.attempt);
  write_op(w, "op", e.op);
  w.number("deadline", e.deadline);
}
void write_body(Writer& w, const CallEnded& e) {
  w.number("instance", e.instance);
  w.u64("flight", e.flight);
  w.text("dependency", kDependencies[static_cast<std::size_t>(e.dependency)]);
  w.number("call", e.call);
  w.text("outcome_class", core::outcome_class_name(e.outcome_class));
  if (e.retry_after_ms) {
    w.number("retry_after", *e.retry_after_ms);
  } else {
    w.null("retry_after");
  }
  w.boolean("timed_out", e.timed_out);
}
void write_body(Writer& w, const GateStep& e) {
  w.text("pool", e.pool);
  write_op(w, "op", e.op);
  w.key("decision");
  w.open();
  write_decision_fields(w, e.decision);
  w.close();
  w.key("config");
  w.open();
  w.number("capacity", e.config.capacity);
  w.number("ttl", e.config.ttl_ms);
  w.number("grace", e.config.grace_ms);
  w.close();
  write_pool(w, "before", e.before);
  write_pool(w, "after", e.after);
  w.boolean("legacy", e.legacy);
}
void write_body(Writer& w, const FaultFired& e) {
  w.text("site", e.site);
  w.text("detail", e.detail);
}
void write_body(Writer&, const StoreRestarted&) {}
void write_body(Writer&, const FaultsHealed&) {}

void append_event(std::string& out, const Event& event) {
  Writer w(out);
  w.open();
  w.u64("index", event.index);
  w.u64("step", event.step);
  w.number("at", event.at_ms);
  w.text("kind", kEventKinds[event.body.index()]);
  std::visit([&](const auto& body) { write_body(w, body); }, event.body);
  w.close();
}

void append_step(std::string& out, const StepRecord& record) {
  fmt::format_to(std::back_inserter(out), R"({{"step":{},"fiber":{},"choice":[{},{}],"now":{},"fp":"{}"}})",
                 record.step, record.fiber, record.choice.index, record.choice.ready, record.now_ms,
                 hex64(record.fingerprint));
  out += '\n';
}

// ---------------------------------------------------------------- reading

// Reads the fields of one line. The first error is kept and every later read
// does nothing, so the readers below are straight lists of fields.
class LineReader {
 public:
  LineReader(std::string_view source, std::size_t line) : source_(source), line_(line) {}

  bool failed() const { return error_.has_value(); }
  const std::optional<std::string>& error() const { return error_; }

  void fail(std::string_view path, std::string_view expected) {
    if (!error_) error_ = fmt::format("{}:{}: field '{}': expected {}", source_, line_, path, expected);
  }
  void fail_line(std::string_view what) {
    if (!error_) error_ = fmt::format("{}:{}: {}", source_, line_, what);
  }
  // A message that already names the source and line.
  void set_error(std::string message) {
    if (!error_) error_ = std::move(message);
  }

  // `value` must be an object with exactly `fields`: each present, no other.
  const json* object(const json& value, const std::string& path, std::span<const std::string_view> fields) {
    if (failed()) return nullptr;
    if (!value.is_object()) return fail(path, "an object"), nullptr;
    for (const auto& item : value.items()) {
      bool known = false;
      for (std::string_view field : fields) known = known || item.key() == field;
      if (!known) {
        std::string names;
        for (std::string_view field : fields) names += fmt::format("{}{}", names.empty() ? "" : ", ", field);
        if (!error_) {
          error_ = fmt::format("{}:{}: field '{}': unknown field (known fields: {})", source_, line_,
                               join(path, quote_input(item.key())), names);
        }
        return nullptr;
      }
    }
    for (std::string_view field : fields) {
      if (!value.contains(field)) {
        if (!error_) error_ = fmt::format("{}:{}: field '{}': missing", source_, line_, join(path, field));
        return nullptr;
      }
    }
    return &value;
  }
  const json* object(const json& value, const std::string& path, std::initializer_list<std::string_view> fields) {
    return object(value, path, std::span<const std::string_view>(fields.begin(), fields.size()));
  }

  std::int64_t integer(const json& object, const std::string& path, std::string_view key, std::int64_t min,
                       std::int64_t max) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    std::optional<std::int64_t> number;
    if (value.is_number_unsigned()) {
      const auto unsigned_value = value.get<std::uint64_t>();
      if (max >= 0 && unsigned_value <= static_cast<std::uint64_t>(max)) {
        number = static_cast<std::int64_t>(unsigned_value);
      }
    } else if (value.is_number_integer()) {
      number = value.get<std::int64_t>();
    }
    if (!number || *number < min || *number > max) {
      fail(join(path, key), fmt::format("an integer from {} to {}", min, max));
      return 0;
    }
    return *number;
  }

  std::int64_t time(const json& object, const std::string& path, std::string_view key) {
    return integer(object, path, key, std::numeric_limits<std::int64_t>::min(),
                   std::numeric_limits<std::int64_t>::max());
  }

  std::uint32_t u32(const json& object, const std::string& path, std::string_view key) {
    return static_cast<std::uint32_t>(integer(object, path, key, 0, std::numeric_limits<std::uint32_t>::max()));
  }

  // A u64 written by Writer::u64: a non-negative integer, or a decimal string.
  std::uint64_t u64(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
      return static_cast<std::uint64_t>(value.get<std::int64_t>());
    }
    if (value.is_string()) {
      if (auto parsed = parse_decimal(value.get_ref<const std::string&>())) return *parsed;
    }
    fail(join(path, key), "a non-negative integer (a number, or a decimal string)");
    return 0;
  }

  std::uint64_t decimal(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    if (value.is_string()) {
      if (auto parsed = parse_decimal(value.get_ref<const std::string&>())) return *parsed;
    }
    fail(join(path, key), "a decimal string of an unsigned 64-bit integer, such as \"123\"");
    return 0;
  }

  std::uint64_t hex(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    if (value.is_string()) {
      const auto& text = value.get_ref<const std::string&>();
      std::uint64_t parsed = 0;
      const char* end = text.data() + text.size();
      const auto [ptr, ec] = std::from_chars(text.data(), end, parsed, 16);
      bool digits_only = text.size() == 16;
      for (char c : text) digits_only = digits_only && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
      if (digits_only && ec == std::errc{} && ptr == end) return parsed;
    }
    fail(join(path, key), "16 lowercase hex digits");
    return 0;
  }

  core::Token token(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return core::kNoToken;
    const json& value = object[std::string(key)];
    if (value.is_null()) return core::kNoToken;
    if (value.is_string()) {
      auto parsed = parse_decimal(value.get_ref<const std::string&>());
      if (parsed && *parsed != core::kNoToken) return *parsed;
    }
    fail(join(path, key), "null or a decimal token string such as \"1\"");
    return core::kNoToken;
  }

  std::string text(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return {};
    const json& value = object[std::string(key)];
    if (!value.is_string() || value.get_ref<const std::string&>().size() > kMaxText) {
      fail(join(path, key), fmt::format("a string of at most {} bytes", kMaxText));
      return {};
    }
    return value.get<std::string>();
  }

  // A string, or null for the empty one.
  std::string optional_text(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return {};
    if (object[std::string(key)].is_null()) return {};
    return text(object, path, key);
  }

  bool boolean(const json& object, const std::string& path, std::string_view key) {
    if (failed()) return false;
    const json& value = object[std::string(key)];
    if (!value.is_boolean()) return fail(join(path, key), "true or false"), false;
    return value.get<bool>();
  }

  // A string that must be one of `names`; returns its index.
  std::size_t choice(const json& object, const std::string& path, std::string_view key,
                     std::span<const std::string_view> names) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    if (value.is_string()) {
      const auto& text = value.get_ref<const std::string&>();
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (text == names[i]) return i;
      }
    }
    std::string list;
    for (std::string_view name : names) list += fmt::format("{}{}", list.empty() ? "" : ", ", name);
    fail(join(path, key), "one of " + list);
    return 0;
  }

  // An array of at most `max` elements, or null after an error.
  const json* array(const json& object, const std::string& path, std::string_view key, std::size_t max) {
    if (failed()) return nullptr;
    const json& value = object[std::string(key)];
    if (!value.is_array() || value.size() > max) {
      fail(join(path, key), fmt::format("an array of at most {} elements", max));
      return nullptr;
    }
    return &value;
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  static std::optional<std::uint64_t> parse_decimal(const std::string& text) {
    std::uint64_t parsed = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, parsed);
    // One canonical spelling: digits only, no leading zero but for "0".
    if (text.empty() || ec != std::errc{} || ptr != end || (text.size() > 1 && text[0] == '0')) return std::nullopt;
    return parsed;
  }

 private:
  std::string_view source_;
  std::size_t line_;
  std::optional<std::string> error_;
};

core::Op read_op(LineReader& read, const json& value, const std::string& path) {
  core::Op op;
  if (!read.object(value, path, {"kind", "client", "episode", "request", "issued_at", "now", "token"})) return op;
  op.kind = static_cast<core::OpKind>(read.choice(value, path, "kind", core::kOpKindNames));
  op.client = read.text(value, path, "client");
  op.episode = read.text(value, path, "episode");
  op.request = read.text(value, path, "request");
  op.issued_at = read.time(value, path, "issued_at");
  op.now = read.time(value, path, "now");
  op.token = read.token(value, path, "token");
  return op;
}

core::Decision read_decision(LineReader& read, const json& value, const std::string& path) {
  core::Decision decision;
  if (!read.object(value, path, {"outcome", "token", "victim", "held"})) return decision;
  std::array<std::string_view, kGateOutcomes.size()> names{};
  for (std::size_t i = 0; i < kGateOutcomes.size(); ++i) names[i] = core::outcome_name(kGateOutcomes[i]);
  decision.outcome = kGateOutcomes[read.choice(value, path, "outcome", names)];
  decision.token = read.token(value, path, "token");
  decision.victim = read.optional_text(value, path, "victim");
  decision.held = read.integer(value, path, "held", 0, core::kMaxCapacity);
  return decision;
}

core::PoolState read_pool(LineReader& read, const json& value, const std::string& path) {
  core::PoolState pool;
  if (!read.object(value, path, {"last_now", "last_token", "sessions"})) return pool;
  pool.last_now = read.time(value, path, "last_now");
  pool.last_token = read.token(value, path, "last_token");
  const json* sessions = read.array(value, path, "sessions", kMaxSessions);
  if (sessions == nullptr) return pool;
  for (std::size_t i = 0; i < sessions->size() && !read.failed(); ++i) {
    const std::string at = fmt::format("{}.sessions[{}]", path, i);
    const json& item = (*sessions)[i];
    if (!read.object(item, at,
                     {"client", "episode", "token", "admitted_at", "last_seen", "last_request", "last_issued",
                      "last_decision"})) {
      break;
    }
    core::Session session;
    session.client = read.text(item, at, "client");
    session.episode = read.text(item, at, "episode");
    session.token = read.token(item, at, "token");
    session.admitted_at = read.time(item, at, "admitted_at");
    session.last_seen = read.time(item, at, "last_seen");
    session.last_request = read.text(item, at, "last_request");
    session.last_issued = read.time(item, at, "last_issued");
    session.last_decision = read_decision(read, item["last_decision"], at + ".last_decision");
    pool.sessions.push_back(std::move(session));
  }
  return pool;
}

core::Response read_response(LineReader& read, const json& value, const std::string& path) {
  core::Response response;
  if (!read.object(value, path, {"denied", "reason", "streams"})) return response;
  response.denied = read.boolean(value, path, "denied");
  std::array<std::string_view, kDenialReasons.size()> names{};
  for (std::size_t i = 0; i < kDenialReasons.size(); ++i) names[i] = core::denial_text(kDenialReasons[i]);
  response.reason = kDenialReasons[read.choice(value, path, "reason", names)];
  const json* streams = read.array(value, path, "streams", kMaxStreams);
  if (streams == nullptr) return response;
  for (std::size_t i = 0; i < streams->size() && !read.failed(); ++i) {
    const std::string at = fmt::format("{}.streams[{}]", path, i);
    const json& item = (*streams)[i];
    if (!read.object(item, at, {"name", "url"})) break;
    core::Stream stream;
    stream.name = read.text(item, at, "name");
    stream.url = read.text(item, at, "url");
    response.streams.push_back(std::move(stream));
  }
  return response;
}

// The fields each kind of event has besides index, step, at and kind.
std::vector<std::string_view> body_fields(std::size_t kind) {
  switch (kind) {
    case 0: return {"instance", "waiter", "request"};
    case 1: return {"instance", "waiter", "response", "token"};
    case 2: return {"instance", "waiter"};
    case 3: return {"instance", "flight", "key"};
    case 4: return {"instance", "flight"};
    case 5: return {"instance", "flight", "dependency", "call", "attempt", "op", "deadline"};
    case 6: return {"instance", "flight", "dependency", "call", "outcome_class", "retry_after", "timed_out"};
    case 7: return {"pool", "op", "decision", "config", "before", "after", "legacy"};
    case 8: return {"site", "detail"};
    default: return {};
  }
}

EventBody read_body(LineReader& read, const json& v, const std::string& p, std::size_t kind) {
  switch (kind) {
    case 0: {
      RequestSent e;
      e.instance = read.u32(v, p, "instance");
      e.waiter = read.u64(v, p, "waiter");
      const std::string at = p + ".request";
      const json& r = v["request"];
      if (read.object(r, at, {"pool", "client", "episode", "request", "issued_at"})) {
        e.request.pool = read.text(r, at, "pool");
        e.request.client = read.text(r, at, "client");
        e.request.episode = read.text(r, at, "episode");
        e.request.request = read.text(r, at, "request");
        e.request.issued_at = read.time(r, at, "issued_at");
      }
      return e;
    }
    case 1: {
      ResponseReceived e;
      e.instance = read.u32(v, p, "instance");
      e.waiter = read.u64(v, p, "waiter");
      e.response = read_response(read, v["response"], p + ".response");
      e.token = read.token(v, p, "token");
      return e;
    }
    case 2: {
      WaiterLeft e;
      e.instance = read.u32(v, p, "instance");
      e.waiter = read.u64(v, p, "waiter");
      return e;
    }
    case 3: {
      FlightStarted e;
      e.instance = read.u32(v, p, "instance");
      e.flight = read.u64(v, p, "flight");
      const std::string at = p + ".key";
      const json& k = v["key"];
      if (read.object(k, at, {"pool", "client", "episode"})) {
        e.key.pool = read.text(k, at, "pool");
        e.key.client = read.text(k, at, "client");
        e.key.episode = read.text(k, at, "episode");
      }
      return e;
    }
    case 4: {
      FlightEnded e;
      e.instance = read.u32(v, p, "instance");
      e.flight = read.u64(v, p, "flight");
      return e;
    }
    case 5: {
      CallStarted e;
      e.instance = read.u32(v, p, "instance");
      e.flight = read.u64(v, p, "flight");
      e.dependency = static_cast<Dependency>(read.choice(v, p, "dependency", kDependencies));
      e.call = read.u32(v, p, "call");
      e.attempt = static_cast<int>(
          read.integer(v, p, "attempt", std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
      e.op = read_op(read, v["op"], p + ".op");
      e.deadline = read.time(v, p, "deadline");
      return e;
    }
    case 6: {
      CallEnded e;
      e.instance = read.u32(v, p, "instance");
      e.flight = read.u64(v, p, "flight");
      e.dependency = static_cast<Dependency>(read.choice(v, p, "dependency", kDependencies));
      e.call = read.u32(v, p, "call");
      std::array<std::string_view, kOutcomeClasses.size()> names{};
      for (std::size_t i = 0; i < kOutcomeClasses.size(); ++i) names[i] = core::outcome_class_name(kOutcomeClasses[i]);
      e.outcome_class = kOutcomeClasses[read.choice(v, p, "outcome_class", names)];
      if (!read.failed() && !v["retry_after"].is_null()) e.retry_after_ms = read.time(v, p, "retry_after");
      e.timed_out = read.boolean(v, p, "timed_out");
      return e;
    }
    case 7: {
      GateStep e;
      e.pool = read.text(v, p, "pool");
      e.op = read_op(read, v["op"], p + ".op");
      e.decision = read_decision(read, v["decision"], p + ".decision");
      const std::string at = p + ".config";
      const json& c = v["config"];
      if (read.object(c, at, {"capacity", "ttl", "grace"})) {
        e.config.capacity = read.integer(c, at, "capacity", 1, core::kMaxCapacity);
        e.config.ttl_ms = read.integer(c, at, "ttl", 1, core::kMaxTimeMs);
        e.config.grace_ms = read.integer(c, at, "grace", 0, core::kMaxTimeMs);
      }
      e.before = read_pool(read, v["before"], p + ".before");
      e.after = read_pool(read, v["after"], p + ".after");
      e.legacy = read.boolean(v, p, "legacy");
      return e;
    }
    case 8: {
      FaultFired e;
      e.site = read.text(v, p, "site");
      e.detail = read.text(v, p, "detail");
      return e;
    }
    case 9:
      return StoreRestarted{};
    default:
      return FaultsHealed{};
  }
}

std::optional<Event> read_event(LineReader& read, const json& value, const std::string& path) {
  if (read.failed()) return std::nullopt;
  if (!value.is_object()) return read.fail(path, "an object"), std::nullopt;
  if (!value.contains("kind")) {
    std::string names;
    for (std::string_view name : kEventKinds) names += fmt::format("{}{}", names.empty() ? "" : ", ", name);
    read.fail(path + ".kind", "one of " + names);
    return std::nullopt;
  }
  const std::size_t kind = read.choice(value, path, "kind", kEventKinds);
  if (read.failed()) return std::nullopt;
  std::vector<std::string_view> fields = {"index", "step", "at", "kind"};
  for (std::string_view field : body_fields(kind)) fields.push_back(field);
  if (!read.object(value, path, fields)) return std::nullopt;
  Event event;
  event.index = read.u64(value, path, "index");
  event.step = read.u64(value, path, "step");
  event.at_ms = read.time(value, path, "at");
  event.body = read_body(read, value, path, kind);
  if (read.failed()) return std::nullopt;
  return event;
}

struct Verdict {
  std::optional<Violation> violation;
  std::string outcome;
  std::uint64_t fingerprint = 0;
  std::uint64_t steps = 0;
  std::uint64_t draws = 0;
  std::uint64_t events = 0;
};

std::optional<TraceHeader> read_header(LineReader& read, const json& line, std::string_view source,
                                       std::size_t line_number) {
  if (!line.is_object() || !line.contains("turnstile_trace")) {
    read.fail_line("expected the trace header {\"turnstile_trace\":1,...} (is this a turnstile trace?)");
    return std::nullopt;
  }
  const json& format = line["turnstile_trace"];
  if (!format.is_number_integer() || format.get<std::int64_t>() != kTraceFormat) {
    read.fail("turnstile_trace", fmt::format("{} (the trace format this turnstile reads)", kTraceFormat));
    return std::nullopt;
  }
  if (!read.object(line, "", {"turnstile_trace", "version", "scenario", "seed", "strategy", "gate", "variant"})) {
    return std::nullopt;
  }
  TraceHeader header;
  header.version = read.text(line, "", "version");
  if (read.failed()) return std::nullopt;
  if (!line["scenario"].is_object()) return read.fail("scenario", "an object"), std::nullopt;
  // The scenario reader names the bad field inside the scenario.
  auto scenario = parse_scenario(line["scenario"].dump(), fmt::format("{}:{}: scenario", source, line_number));
  if (auto* error = std::get_if<ScenarioError>(&scenario)) {
    read.set_error(error->message);
    return std::nullopt;
  }
  header.scenario = std::get<Scenario>(std::move(scenario));
  header.seed = read.decimal(line, "", "seed");
  header.strategy = read.text(line, "", "strategy");
  // "guided": generated choices (a property's counterexample, a shrunk trace).
  if (!read.failed() && !parse_strategy(header.strategy) && header.strategy != "guided") {
    read.fail("strategy", "random or pct:D (D >= 1)");
  }
  const std::string gate = read.text(line, "", "gate");
  if (!read.failed()) {
    if (auto mode = gate_mode_from_name(gate)) {
      header.gate = *mode;
    } else {
      read.fail("gate", "atomic or legacy");
    }
  }
  header.variant = read.text(line, "", "variant");
  if (!read.failed() && !core::is_valid_id(core::IdKind::pool, header.variant)) {
    read.fail("variant", core::id_expectation(core::IdKind::pool));
  }
  if (read.failed()) return std::nullopt;
  return header;
}

}  // namespace

std::string event_to_json(const Event& event) {
  std::string out;
  append_event(out, event);
  return out;
}

std::string write_trace(const TraceHeader& header, const RunReport& report) {
  std::string out;
  {
    Writer w(out);
    w.open();
    w.number("turnstile_trace", header.format);
    w.text("version", header.version);
    w.raw("scenario", scenario_to_json(header.scenario));
    w.text("seed", std::to_string(header.seed));
    w.text("strategy", header.strategy);
    w.text("gate", gate_mode_name(header.gate));
    w.text("variant", header.variant);
    w.close();
    out += '\n';
  }
  for (const Draw& draw : report.draws) {
    Writer w(out);
    w.open();
    w.text("draw", draw_site_name(draw.site));
    w.u64("bound", draw.bound);
    w.u64("value", draw.value);
    w.close();
    out += '\n';
  }
  const auto& events = report.history.events();
  std::size_t next_event = 0;
  auto events_until = [&](auto&& before) {
    while (next_event < events.size() && before(events[next_event].step)) {
      out += R"({"event":)";
      append_event(out, events[next_event]);
      out += "}\n";
      ++next_event;
    }
  };
  for (const StepRecord& record : report.runtime.schedule) {
    events_until([&](std::uint64_t step) { return step < record.step; });
    append_step(out, record);
    events_until([&](std::uint64_t step) { return step == record.step; });
  }
  events_until([](std::uint64_t) { return true; });
  {
    Writer w(out);
    w.open();
    if (report.violation) {
      const Violation& v = *report.violation;
      w.text("verdict", "violation");
      w.text("rule", v.rule);
      w.u64("step", v.step);
      w.number("at", v.at_ms);
      w.u64("event", v.event_index);
      w.text("message", v.message);
    } else {
      w.text("verdict", "pass");
    }
    w.text("outcome", outcome_name(report.runtime.outcome));
    w.text("fingerprint", hex64(report.fingerprint));
    w.u64("steps", report.runtime.schedule.size());
    w.u64("draws", report.draws.size());
    w.u64("events", events.size());
    w.close();
    out += '\n';
  }
  return out;
}

std::variant<Trace, TraceError> read_trace(std::string_view text, std::string_view source) {
  Trace trace;
  std::optional<Verdict> verdict;
  std::size_t line_number = 0;
  std::size_t position = 0;
  bool have_header = false;
  while (position < text.size()) {
    ++line_number;
    const std::size_t newline = text.find('\n', position);
    std::string_view line = text.substr(position, newline == std::string_view::npos ? text.size() - position
                                                                                   : newline - position);
    position = newline == std::string_view::npos ? text.size() : newline + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    LineReader read(source, line_number);
    if (verdict) return TraceError{fmt::format("{}:{}: nothing may follow the verdict line", source, line_number)};
    if (line.empty()) return TraceError{fmt::format("{}:{}: an empty line", source, line_number)};
    const json value = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return TraceError{fmt::format("{}:{}: not valid JSON", source, line_number)};

    if (!have_header) {
      auto header = read_header(read, value, source, line_number);
      if (!header) return TraceError{*read.error()};
      trace.header = std::move(*header);
      have_header = true;
      continue;
    }
    if (!value.is_object()) return TraceError{fmt::format("{}:{}: expected a JSON object", source, line_number)};
    const Scenario& scenario = trace.header.scenario;

    if (value.contains("verdict")) {
      static constexpr std::array<std::string_view, 2> kVerdicts = {"violation", "pass"};
      const bool violation = read.choice(value, "", "verdict", kVerdicts) == 0;
      if (read.failed()) return TraceError{*read.error()};
      static constexpr std::array<std::string_view, 11> kViolationFields = {
          "verdict", "rule", "step", "at", "event", "message", "outcome", "fingerprint", "steps", "draws", "events"};
      static constexpr std::array<std::string_view, 6> kPassFields = {"verdict", "outcome", "fingerprint",
                                                                     "steps",   "draws",   "events"};
      if (!read.object(value, "", violation ? std::span<const std::string_view>(kViolationFields)
                                            : std::span<const std::string_view>(kPassFields))) {
        return TraceError{*read.error()};
      }
      Verdict v;
      if (violation) {
        Violation found;
        found.rule = read.text(value, "", "rule");
        found.step = read.u64(value, "", "step");
        found.at_ms = read.time(value, "", "at");
        found.event_index = read.u64(value, "", "event");
        found.message = read.text(value, "", "message");
        v.violation = std::move(found);
      }
      std::array<std::string_view, kRunOutcomes.size()> names{};
      for (std::size_t i = 0; i < kRunOutcomes.size(); ++i) names[i] = outcome_name(kRunOutcomes[i]);
      v.outcome = std::string(names[read.choice(value, "", "outcome", names)]);
      v.fingerprint = read.hex(value, "", "fingerprint");
      v.steps = read.u64(value, "", "steps");
      v.draws = read.u64(value, "", "draws");
      v.events = read.u64(value, "", "events");
      if (!read.failed() && v.steps != trace.schedule.size()) {
        read.fail("steps", fmt::format("{}, the number of step lines above (a line is missing or extra)",
                                       trace.schedule.size()));
      }
      if (!read.failed() && v.draws != trace.draws.size()) {
        read.fail("draws", fmt::format("{}, the number of draw lines above (a line is missing or extra)",
                                       trace.draws.size()));
      }
      if (!read.failed() && v.events != trace.events.size()) {
        read.fail("events", fmt::format("{}, the number of event lines above (a line is missing or extra)",
                                        trace.events.size()));
      }
      if (read.failed()) return TraceError{*read.error()};
      verdict = std::move(v);
    } else if (value.contains("draw")) {
      if (!read.object(value, "", {"draw", "bound", "value"})) return TraceError{*read.error()};
      if (trace.draws.size() >= kMaxTraceDraws) {
        return TraceError{fmt::format("{}:{}: more than {} draws", source, line_number, kMaxTraceDraws)};
      }
      Draw draw;
      const std::string site = read.text(value, "", "draw");
      if (auto parsed = draw_site_from_name(site); parsed && !read.failed()) {
        draw.site = *parsed;
      } else if (!read.failed()) {
        std::string names;
        for (std::size_t i = 0; i < kDrawSiteCount; ++i) {
          names += fmt::format("{}{}", i == 0 ? "" : ", ", draw_site_name(static_cast<DrawSite>(i)));
        }
        read.fail("draw", "one of " + names);
      }
      draw.bound = read.u64(value, "", "bound");
      draw.value = read.u64(value, "", "value");
      if (!read.failed() && draw.bound == 0) read.fail("bound", "an integer of at least 1");
      if (!read.failed() && draw.value >= draw.bound) read.fail("value", "an integer below bound");
      if (read.failed()) return TraceError{*read.error()};
      trace.draws.push_back(draw);
    } else if (value.contains("event")) {
      if (!read.object(value, "", {"event"})) return TraceError{*read.error()};
      if (trace.events.size() >= scenario.max_events) {
        return TraceError{fmt::format("{}:{}: more events than the scenario's max_events ({})", source, line_number,
                                      scenario.max_events)};
      }
      auto event = read_event(read, value["event"], "event");
      if (!event) return TraceError{*read.error()};
      if (event->index != trace.events.size()) {
        read.fail("event.index", fmt::format("{} (events are numbered in order from 0)", trace.events.size()));
        return TraceError{*read.error()};
      }
      trace.events.push_back(std::move(*event));
    } else if (value.contains("step")) {
      if (!read.object(value, "", {"step", "fiber", "choice", "now", "fp"})) return TraceError{*read.error()};
      if (trace.schedule.size() >= scenario.max_steps) {
        return TraceError{fmt::format("{}:{}: more steps than the scenario's max_steps ({})", source, line_number,
                                      scenario.max_steps)};
      }
      StepRecord record;
      record.step = read.u64(value, "", "step");
      if (!read.failed() && record.step != trace.schedule.size()) {
        read.fail("step", fmt::format("{} (steps are numbered in order from 0)", trace.schedule.size()));
      }
      record.fiber = read.u32(value, "", "fiber");
      const json& choice = value["choice"];
      if (!read.failed()) {
        const bool pair = choice.is_array() && choice.size() == 2;
        const auto in_range = [](const json& n) {
          return n.is_number_unsigned() && n.get<std::uint64_t>() <= std::numeric_limits<std::uint32_t>::max();
        };
        if (!pair || !in_range(choice[0]) || !in_range(choice[1])) {
          read.fail("choice", "[index, ready]: two integers from 0 to 4294967295");
        } else {
          record.choice.index = choice[0].get<std::uint32_t>();
          record.choice.ready = choice[1].get<std::uint32_t>();
        }
      }
      record.now_ms = read.time(value, "", "now");
      record.fingerprint = read.hex(value, "", "fp");
      if (read.failed()) return TraceError{*read.error()};
      trace.schedule.push_back(record);
    } else {
      return TraceError{fmt::format("{}:{}: expected a step, draw, event or verdict line", source, line_number)};
    }
  }
  if (!have_header) return TraceError{fmt::format("{}:1: missing header line (the file is empty)", source)};
  if (!verdict) {
    return TraceError{fmt::format("{}:{}: missing verdict line (the trace is truncated)", source, line_number + 1)};
  }
  trace.violation = std::move(verdict->violation);
  trace.outcome = std::move(verdict->outcome);
  trace.fingerprint = verdict->fingerprint;
  return trace;
}

}  // namespace turnstile::sim
