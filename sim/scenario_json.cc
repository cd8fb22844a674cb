// Scenarios as JSON (docs/scenario.md): a strict reader that names the first
// bad field, and a canonical writer whose output the reader turns back into
// the same scenario. The reader never throws: nlohmann::json parses with
// exceptions off and every value's type and range is checked here before it
// is read.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/response.h"
#include "sim/describe.h"
#include "sim/scenario.h"

namespace turnstile::sim {
namespace {

using nlohmann::json;

// The same bounds as check_scenario's (sim/scenario.cc), so that a value out
// of range gets the same message whichever of the two sees it first, and
// every scenario check_scenario accepts can be read back (the round trip).
constexpr std::size_t kMaxClientGroups = 64;
constexpr std::int64_t kMaxGroupClients = 64;
constexpr std::int64_t kMaxBurst = 64;
constexpr std::int64_t kMaxSwitches = 16;
constexpr std::int64_t kMaxInstances = 16;
constexpr std::int64_t kMaxCoalesceBound = 100'000;
constexpr std::int64_t kMaxSteps = 100'000'000;
constexpr std::int64_t kMaxEvents = 10'000'000;
constexpr core::Ms kMaxPhaseMs = 24LL * 60 * 60 * 1000;
constexpr core::Ms kMaxFaultMs = 60'000;
constexpr std::int64_t kPermille = 1000;

constexpr std::array<Behaviour, 5> kBehaviours = {Behaviour::watch, Behaviour::blip, Behaviour::zap,
                                                  Behaviour::burst, Behaviour::storm};

std::string behaviour_choices() {
  std::string names;
  for (Behaviour behaviour : kBehaviours) {
    if (!names.empty()) names += ", ";
    names += behaviour_name(behaviour);
  }
  return names;
}

// Where a JSON text stopped being valid, as "line L, column C", for the one
// line a reader prints. nlohmann reports the byte offset through its SAX
// interface without throwing when the handler returns false.
class ErrorPosition final : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) override {
    position_ = position;
    return false;
  }

  std::size_t position() const { return position_; }

 private:
  std::size_t position_ = 0;
};


std::string invalid_json_message(std::string_view text) {
  ErrorPosition sax;
  json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json, /*strict=*/true);
  // nlohmann counts the offending character itself, so a position of n means
  // the n-th byte (from 1) is where parsing failed.
  const std::size_t at = sax.position() == 0 ? 0 : sax.position() - 1;
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < at && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("not valid JSON (line {}, column {})", line, column);
}

std::string time_expectation(core::Ms min, core::Ms max) { return fmt::format("an integer from {} to {} (ms)", min, max); }

// Reads the fields of nested objects. The first error is kept and every later
// read does nothing, so each reader below is a straight list of fields.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  bool failed() const { return error_.has_value(); }
  const std::optional<std::string>& error() const { return error_; }

  void fail(const std::string& path, std::string_view expected) {
    if (!error_) error_ = fmt::format("{}: field '{}': expected {}", source_, path, expected);
  }

  // `value` must be an object whose keys are all in `fields`.
  bool object(const json& value, const std::string& path, std::initializer_list<std::string_view> fields) {
    if (failed()) return false;
    if (!value.is_object()) {
      fail(path, "an object");
      return false;
    }
    for (const auto& item : value.items()) {
      bool known = false;
      for (std::string_view field : fields) known = known || item.key() == field;
      if (known) continue;
      std::string names;
      for (std::string_view field : fields) names += fmt::format("{}{}", names.empty() ? "" : ", ", field);
      if (!error_) {
        error_ = fmt::format("{}: field '{}': unknown field (known fields: {})", source_, join(path, quote_input(item.key())),
                             names);
      }
      return false;
    }
    return true;
  }

  // Sets `out` from object[key] when the key is present and holds an integer
  // in [min, max]; `expected` says so in the message otherwise.
  template <typename T>
  void integer(const json& object, const std::string& path, std::string_view key, T& out, std::int64_t min,
               std::int64_t max, const std::string& expected) {
    if (failed()) return;
    const auto it = object.find(key);
    if (it == object.end()) return;
    const json& value = *it;
    std::optional<std::int64_t> number;
    if (value.is_number_unsigned()) {
      const auto unsigned_value = value.get<std::uint64_t>();
      if (unsigned_value <= static_cast<std::uint64_t>(max)) number = static_cast<std::int64_t>(unsigned_value);
    } else if (value.is_number_integer()) {
      number = value.get<std::int64_t>();
    }
    if (!number || *number < min || *number > max) {
      fail(join(path, key), expected);
      return;
    }
    out = static_cast<T>(*number);
  }

  template <typename T>
  void integer(const json& object, const std::string& path, std::string_view key, T& out, std::int64_t min,
               std::int64_t max) {
    integer(object, path, key, out, min, max, fmt::format("an integer from {} to {}", min, max));
  }

  void time(const json& object, const std::string& path, std::string_view key, core::Ms& out, core::Ms min,
            core::Ms max = core::kMaxTimeMs) {
    integer(object, path, key, out, min, max, time_expectation(min, max));
  }

  void permille(const json& object, const std::string& path, std::string_view key, std::uint32_t& out) {
    integer(object, path, key, out, 0, kPermille, "an integer from 0 to 1000 (permille)");
  }

  // A string; check_scenario decides what it may hold.
  void text(const json& object, const std::string& path, std::string_view key, std::string& out) {
    if (failed()) return;
    const auto it = object.find(key);
    if (it == object.end()) return;
    if (!it->is_string()) {
      fail(join(path, key), "a string");
      return;
    }
    out = it->get<std::string>();
  }

  // A string that must be one of `names`; returns its index.
  std::optional<std::size_t> choice(const json& object, const std::string& path, std::string_view key,
                                    std::span<const std::string_view> names) {
    if (failed()) return std::nullopt;
    const auto it = object.find(key);
    if (it == object.end()) return std::nullopt;
    if (it->is_string()) {
      const auto& text = it->get_ref<const std::string&>();
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (text == names[i]) return i;
      }
    }
    std::string list;
    for (std::string_view name : names) list += fmt::format("{}{}", list.empty() ? "" : ", ", name);
    fail(join(path, key), "one of " + list);
    return std::nullopt;
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

 private:
  std::string_view source_;
  std::optional<std::string> error_;
};

void read_retry(Reader& read, const json& value, const std::string& path, core::RetryConfig& config) {
  if (!read.object(value, path, {"attempt_timeout", "budget", "jitter_min", "jitter_max", "min_attempt"})) return;
  read.time(value, path, "attempt_timeout", config.attempt_timeout_ms, 1);
  read.time(value, path, "budget", config.budget_ms, 0);
  read.time(value, path, "jitter_min", config.jitter_min_ms, 0);
  read.time(value, path, "jitter_max", config.jitter_max_ms, 0);
  read.time(value, path, "min_attempt", config.min_attempt_ms, 0);
}

void read_flow(Reader& read, const json& value, core::FlowConfig& flow) {
  static constexpr std::array<std::string_view, 2> kPolicies = {"fail_closed", "fail_open"};
  const std::string path = "flow";
  if (!read.object(value, path, {"store", "broker", "fail_policy"})) return;
  if (const auto it = value.find("store"); it != value.end()) read_retry(read, *it, "flow.store", flow.store);
  if (const auto it = value.find("broker"); it != value.end()) read_retry(read, *it, "flow.broker", flow.broker);
  if (const auto index = read.choice(value, path, "fail_policy", kPolicies)) {
    flow.fail_policy = *index == 0 ? core::FailPolicy::fail_closed : core::FailPolicy::fail_open;
  }
}

void read_client(Reader& read, const json& value, const std::string& path, ClientGroup& group) {
  if (!read.object(value, path,
                   {"behaviour", "count", "start", "spread", "watch", "heartbeat", "think", "burst", "switches",
                    "abandon_permille"})) {
    return;
  }
  if (const auto it = value.find("behaviour"); it != value.end()) {
    bool known = false;
    if (it->is_string()) {
      for (Behaviour behaviour : kBehaviours) {
        if (it->get_ref<const std::string&>() == behaviour_name(behaviour)) {
          group.behaviour = behaviour;
          known = true;
        }
      }
    }
    if (!known) read.fail(path + ".behaviour", "one of " + behaviour_choices());
  }
  read.integer(value, path, "count", group.count, 1, kMaxGroupClients);
  read.time(value, path, "start", group.start_ms, 0);
  read.time(value, path, "spread", group.spread_ms, 0, kMaxPhaseMs);
  read.time(value, path, "watch", group.watch_ms, 1, kMaxPhaseMs);
  read.time(value, path, "heartbeat", group.heartbeat_ms, 1, kMaxPhaseMs);
  read.time(value, path, "think", group.think_ms, 0, kMaxPhaseMs);
  read.integer(value, path, "burst", group.burst, 1, kMaxBurst);
  read.integer(value, path, "switches", group.switches, 1, kMaxSwitches);
  read.permille(value, path, "abandon_permille", group.abandon_permille);
}

void read_clients(Reader& read, const json& value, std::vector<ClientGroup>& clients) {
  if (read.failed()) return;
  if (!value.is_array() || value.empty() || value.size() > kMaxClientGroups) {
    read.fail("clients", fmt::format("an array of 1 to {} client groups", kMaxClientGroups));
    return;
  }
  clients.clear();
  for (std::size_t i = 0; i < value.size(); ++i) {
    ClientGroup group;
    read_client(read, value[i], fmt::format("clients[{}]", i), group);
    clients.push_back(group);
  }
}

void read_faults(Reader& read, const json& value, FaultRates& faults) {
  const std::string path = "faults";
  if (!read.object(value, path,
                   {"store_latency_max_ms", "store_timeout_permille", "store_lost_reply_permille",
                    "store_reset_permille", "store_busy_permille", "store_noscript_permille",
                    "store_restart_permille", "clock_skew_max_ms", "clock_backwards_permille",
                    "broker_latency_max_ms", "broker_transient_permille", "broker_501_permille",
                    "broker_reset_permille", "broker_hang_permille", "broker_malformed_permille"})) {
    return;
  }
  read.time(value, path, "store_latency_max_ms", faults.store_latency_max_ms, 0, kMaxFaultMs);
  read.permille(value, path, "store_timeout_permille", faults.store_timeout_permille);
  read.permille(value, path, "store_lost_reply_permille", faults.store_lost_reply_permille);
  read.permille(value, path, "store_reset_permille", faults.store_reset_permille);
  read.permille(value, path, "store_busy_permille", faults.store_busy_permille);
  read.permille(value, path, "store_noscript_permille", faults.store_noscript_permille);
  read.permille(value, path, "store_restart_permille", faults.store_restart_permille);
  read.time(value, path, "clock_skew_max_ms", faults.clock_skew_max_ms, 0, kMaxFaultMs);
  read.permille(value, path, "clock_backwards_permille", faults.clock_backwards_permille);
  read.time(value, path, "broker_latency_max_ms", faults.broker_latency_max_ms, 0, kMaxFaultMs);
  read.permille(value, path, "broker_transient_permille", faults.broker_transient_permille);
  read.permille(value, path, "broker_501_permille", faults.broker_501_permille);
  read.permille(value, path, "broker_reset_permille", faults.broker_reset_permille);
  read.permille(value, path, "broker_hang_permille", faults.broker_hang_permille);
  read.permille(value, path, "broker_malformed_permille", faults.broker_malformed_permille);
}

void read_scenario(Reader& read, const json& root, Scenario& scenario) {
  const std::string path;
  if (!read.object(root, path,
                   {"name", "pool", "gate", "flow", "coalesce", "instances", "clients", "faults", "duration", "heal",
                    "max_steps", "max_events"})) {
    return;
  }
  read.text(root, path, "name", scenario.name);
  read.text(root, path, "pool", scenario.pool);
  if (const auto it = root.find("gate"); it != root.end() && read.object(*it, "gate", {"capacity", "ttl", "grace"})) {
    read.integer(*it, "gate", "capacity", scenario.gate.capacity, 1, core::kMaxCapacity);
    read.time(*it, "gate", "ttl", scenario.gate.ttl_ms, 1);
    read.time(*it, "gate", "grace", scenario.gate.grace_ms, 0);
  }
  if (const auto it = root.find("flow"); it != root.end()) read_flow(read, *it, scenario.flow);
  if (const auto it = root.find("coalesce");
      it != root.end() && read.object(*it, "coalesce", {"max_flights", "max_waiters"})) {
    read.integer(*it, "coalesce", "max_flights", scenario.coalesce.max_flights, 1, kMaxCoalesceBound);
    read.integer(*it, "coalesce", "max_waiters", scenario.coalesce.max_waiters, 1, kMaxCoalesceBound);
  }
  read.integer(root, path, "instances", scenario.instances, 1, kMaxInstances);
  if (const auto it = root.find("clients"); it != root.end()) read_clients(read, *it, scenario.clients);
  if (const auto it = root.find("faults"); it != root.end()) read_faults(read, *it, scenario.faults);
  read.time(root, path, "duration", scenario.duration_ms, 1, kMaxPhaseMs);
  read.time(root, path, "heal", scenario.heal_ms, 0, kMaxPhaseMs);
  read.integer(root, path, "max_steps", scenario.max_steps, 1, kMaxSteps);
  read.integer(root, path, "max_events", scenario.max_events, 1, kMaxEvents);
}

// Appends "key":value pairs with the commas between them.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  void key(std::string_view name) {
    if (!first_) out_ += ',';
    first_ = false;
    core::append_json_string(out_, name);
    out_ += ':';
  }
  template <typename T>
  void number(std::string_view name, T value) {
    key(name);
    fmt::format_to(std::back_inserter(out_), "{}", value);
  }
  void text(std::string_view name, std::string_view value) {
    key(name);
    core::append_json_string(out_, value);
  }
  void end() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

void write_retry(std::string& out, const core::RetryConfig& config) {
  ObjectWriter w(out);
  w.number("attempt_timeout", config.attempt_timeout_ms);
  w.number("budget", config.budget_ms);
  w.number("jitter_min", config.jitter_min_ms);
  w.number("jitter_max", config.jitter_max_ms);
  w.number("min_attempt", config.min_attempt_ms);
  w.end();
}

void write_client(std::string& out, const ClientGroup& group) {
  ObjectWriter w(out);
  w.text("behaviour", behaviour_name(group.behaviour));
  w.number("count", group.count);
  w.number("start", group.start_ms);
  w.number("spread", group.spread_ms);
  w.number("watch", group.watch_ms);
  w.number("heartbeat", group.heartbeat_ms);
  w.number("think", group.think_ms);
  w.number("burst", group.burst);
  w.number("switches", group.switches);
  w.number("abandon_permille", group.abandon_permille);
  w.end();
}

void write_faults(std::string& out, const FaultRates& faults) {
  ObjectWriter w(out);
  w.number("store_latency_max_ms", faults.store_latency_max_ms);
  w.number("store_timeout_permille", faults.store_timeout_permille);
  w.number("store_lost_reply_permille", faults.store_lost_reply_permille);
  w.number("store_reset_permille", faults.store_reset_permille);
  w.number("store_busy_permille", faults.store_busy_permille);
  w.number("store_noscript_permille", faults.store_noscript_permille);
  w.number("store_restart_permille", faults.store_restart_permille);
  w.number("clock_skew_max_ms", faults.clock_skew_max_ms);
  w.number("clock_backwards_permille", faults.clock_backwards_permille);
  w.number("broker_latency_max_ms", faults.broker_latency_max_ms);
  w.number("broker_transient_permille", faults.broker_transient_permille);
  w.number("broker_501_permille", faults.broker_501_permille);
  w.number("broker_reset_permille", faults.broker_reset_permille);
  w.number("broker_hang_permille", faults.broker_hang_permille);
  w.number("broker_malformed_permille", faults.broker_malformed_permille);
  w.end();
}

// check_scenario names fields as the C++ struct does ("clients[0].start_ms");
// the file spells times without the unit ("clients[0].start"), except inside
// `faults`. This turns the one into the other in its message.
std::string json_field_names(std::string message) {
  constexpr std::string_view kOpen = "field '";
  const std::size_t open = message.find(kOpen);
  if (open == std::string::npos) return message;
  const std::size_t begin = open + kOpen.size();
  const std::size_t end = message.find('\'', begin);
  if (end == std::string::npos) return message;
  std::string field = message.substr(begin, end - begin);
  if (field.starts_with("faults.")) return message;
  std::string renamed;
  std::size_t start = 0;
  while (start <= field.size()) {
    std::size_t dot = field.find('.', start);
    if (dot == std::string::npos) dot = field.size();
    std::string_view part(field.data() + start, dot - start);
    if (part.ends_with("_ms")) part.remove_suffix(3);
    if (!renamed.empty()) renamed += '.';
    renamed += part;
    start = dot + 1;
  }
  return message.substr(0, begin) + renamed + message.substr(end);
}

}  // namespace

std::variant<Scenario, ScenarioError> parse_scenario(std::string_view json_text, std::string_view source) {
  const json root = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return ScenarioError{fmt::format("{}: {}", source, invalid_json_message(json_text))};
  if (!root.is_object()) return ScenarioError{fmt::format("{}: expected a JSON object", source)};

  Scenario scenario = default_scenario();
  Reader read(source);
  read_scenario(read, root, scenario);
  if (read.error()) return ScenarioError{*read.error()};
  if (auto problem = check_scenario(scenario)) {
    return ScenarioError{fmt::format("{}: {}", source, json_field_names(problem->message))};
  }
  return scenario;
}

std::string scenario_to_json(const Scenario& scenario) {
  std::string out;
  ObjectWriter w(out);
  w.text("name", scenario.name);
  w.text("pool", scenario.pool);
  w.key("gate");
  {
    ObjectWriter gate(out);
    gate.number("capacity", scenario.gate.capacity);
    gate.number("ttl", scenario.gate.ttl_ms);
    gate.number("grace", scenario.gate.grace_ms);
    gate.end();
  }
  w.key("flow");
  {
    ObjectWriter flow(out);
    flow.key("store");
    write_retry(out, scenario.flow.store);
    flow.key("broker");
    write_retry(out, scenario.flow.broker);
    flow.text("fail_policy", scenario.flow.fail_policy == core::FailPolicy::fail_closed ? "fail_closed" : "fail_open");
    flow.end();
  }
  w.key("coalesce");
  {
    ObjectWriter coalesce(out);
    coalesce.number("max_flights", scenario.coalesce.max_flights);
    coalesce.number("max_waiters", scenario.coalesce.max_waiters);
    coalesce.end();
  }
  w.number("instances", scenario.instances);
  w.key("clients");
  out += '[';
  for (std::size_t i = 0; i < scenario.clients.size(); ++i) {
    if (i > 0) out += ',';
    write_client(out, scenario.clients[i]);
  }
  out += ']';
  w.key("faults");
  write_faults(out, scenario.faults);
  w.number("duration", scenario.duration_ms);
  w.number("heal", scenario.heal_ms);
  w.number("max_steps", scenario.max_steps);
  w.number("max_events", scenario.max_events);
  w.end();
  return out;
}

}  // namespace turnstile::sim
