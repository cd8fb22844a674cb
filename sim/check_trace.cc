#include "sim/check_trace.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <initializer_list>
#include <limits>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/assert.h"
#include "sim/describe.h"
#include "sim/fingerprint.h"

namespace turnstile::sim {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr std::array<CheckAction, 6> kActions = {CheckAction::tick,         CheckAction::admit,
                                                 CheckAction::admit_read,   CheckAction::admit_write,
                                                 CheckAction::heartbeat,    CheckAction::release};
constexpr std::array<CheckVerdict, 3> kVerdicts = {CheckVerdict::verified, CheckVerdict::violation,
                                                   CheckVerdict::incomplete};
// Strings in a check trace come from the model (c1, e1, r1, "p") or from a
// message; anything much longer than the model's is refused.
constexpr std::size_t kMaxName = 64;
constexpr std::size_t kMaxMessage = 4096;

// ---------------------------------------------------------------- writing

ordered_json config_json(const CheckConfig& config) {
  ordered_json j;
  j["gate"] = gate_mode_name(config.gate);
  j["clients"] = config.clients;
  j["capacity"] = config.capacity;
  j["rounds"] = config.rounds;
  j["ttl_ms"] = config.ttl_ms;
  j["grace_ms"] = config.grace_ms;
  j["max_ticks"] = config.max_ticks;
  j["max_states"] = config.max_states;
  j["symmetry"] = config.symmetry;
  return j;
}

ordered_json op_json(const core::Op& op) {
  std::string text;
  append_d_op(text, kCheckPool, op);
  return ordered_json::parse(text);
}

ordered_json decision_json(const core::Decision& decision) {
  std::string text;
  append_d_decision(text, decision);
  return ordered_json::parse(text);
}

ordered_json sessions_json(const core::PoolState& pool) {
  ordered_json sessions = ordered_json::array();
  for (const core::Session& session : pool.sessions) {
    ordered_json s;
    s["client"] = session.client;
    s["episode"] = session.episode;
    s["token"] = std::to_string(session.token);
    s["admitted_at"] = session.admitted_at;
    s["last_seen"] = session.last_seen;
    s["last_request"] = session.last_request;
    sessions.push_back(std::move(s));
  }
  return sessions;
}

std::string verdict_json(CheckVerdict verdict, const std::optional<CheckViolation>& violation, std::size_t steps,
                         std::uint64_t states, std::uint64_t transitions, std::uint32_t depth) {
  ordered_json j;
  j["verdict"] = verdict_name(verdict);
  j["rule"] = violation ? ordered_json(violation->rule) : ordered_json(nullptr);
  j["step"] = violation ? ordered_json(steps) : ordered_json(nullptr);
  j["message"] = violation ? ordered_json(violation->message) : ordered_json(nullptr);
  j["states"] = states;
  j["transitions"] = transitions;
  j["depth"] = depth;
  return j.dump();
}

// ---------------------------------------------------------------- reading

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

std::string join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

// Reads the fields of one line; the first error is kept and later reads do
// nothing, so each reader below is a straight list of fields.
class LineReader {
 public:
  LineReader(std::string_view source, std::size_t line) : source_(source), line_(line) {}

  bool failed() const { return error_.has_value(); }
  CheckTraceError error() const { return CheckTraceError{error_.value_or("")}; }

  void fail(std::string_view path, std::string_view expected) {
    if (!error_) error_ = fmt::format("{}:{}: field '{}': expected {}", source_, line_, path, expected);
  }
  void fail_line(std::string_view what) {
    if (!error_) error_ = fmt::format("{}:{}: {}", source_, line_, what);
  }

  // `value` must be an object with exactly `fields`.
  bool object(const json& value, std::string_view path, std::initializer_list<std::string_view> fields) {
    if (failed()) return false;
    if (!value.is_object()) return fail(path.empty() ? "(line)" : path, "an object"), false;
    for (const auto& item : value.items()) {
      if (std::find(fields.begin(), fields.end(), item.key()) != fields.end()) continue;
      std::string names;
      for (std::string_view field : fields) names += fmt::format("{}{}", names.empty() ? "" : ", ", field);
      error_ = fmt::format("{}:{}: field '{}': unknown field (known fields: {})", source_, line_,
                           join(path, quote_input(item.key())), names);
      return false;
    }
    for (std::string_view field : fields) {
      if (value.contains(field)) continue;
      error_ = fmt::format("{}:{}: field '{}': missing", source_, line_, join(path, field));
      return false;
    }
    return true;
  }

  std::int64_t integer(const json& object, std::string_view path, std::string_view key, std::int64_t min,
                       std::int64_t max) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    std::optional<std::int64_t> number;
    if (value.is_number_unsigned()) {
      const auto unsigned_value = value.get<std::uint64_t>();
      if (unsigned_value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
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

  std::uint64_t count(const json& object, std::string_view path, std::string_view key) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
      return static_cast<std::uint64_t>(value.get<std::int64_t>());
    }
    fail(join(path, key), "a non-negative integer");
    return 0;
  }

  bool boolean(const json& object, std::string_view path, std::string_view key) {
    if (failed()) return false;
    const json& value = object[std::string(key)];
    if (!value.is_boolean()) return fail(join(path, key), "true or false"), false;
    return value.get<bool>();
  }

  std::string text(const json& object, std::string_view path, std::string_view key, std::size_t max_bytes) {
    if (failed()) return {};
    const json& value = object[std::string(key)];
    if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
        value.get_ref<const std::string&>().size() > max_bytes) {
      fail(join(path, key), fmt::format("a string of 1 to {} bytes", max_bytes));
      return {};
    }
    return value.get<std::string>();
  }

  // A string that must be one of `choices`: its index.
  template <std::size_t N>
  std::size_t choice(const json& object, std::string_view path, std::string_view key,
                     const std::array<std::string_view, N>& choices) {
    if (failed()) return 0;
    const json& value = object[std::string(key)];
    if (value.is_string()) {
      const auto found = std::find(choices.begin(), choices.end(), value.get_ref<const std::string&>());
      if (found != choices.end()) return static_cast<std::size_t>(found - choices.begin());
    }
    std::string names;
    for (std::string_view name : choices) names += fmt::format("{}{}", names.empty() ? "" : ", ", name);
    fail(join(path, key), "one of " + names);
    return 0;
  }

  // A token as D writes it: a decimal string; `allow_null` for a decision's.
  core::Token token(const json& object, std::string_view path, std::string_view key, bool allow_null) {
    if (failed()) return core::kNoToken;
    const json& value = object[std::string(key)];
    if (allow_null && value.is_null()) return core::kNoToken;
    if (value.is_string()) {
      if (auto parsed = parse_decimal(value.get_ref<const std::string&>())) {
        if (!allow_null || *parsed != core::kNoToken) return *parsed;
      }
    }
    fail(join(path, key), allow_null ? "null or a decimal token string such as \"1\""
                                     : "a decimal token string such as \"1\"");
    return core::kNoToken;
  }

 private:
  std::string_view source_;
  std::size_t line_;
  std::optional<std::string> error_;
};

std::optional<CheckConfig> read_header(LineReader& read, const json& value) {
  if (!value.is_object() || !value.contains("turnstile_check_trace")) {
    read.fail_line("expected the check trace header {\"turnstile_check_trace\":1,...} (is this a check trace?)");
    return std::nullopt;
  }
  if (!read.object(value, "", {"turnstile_check_trace", "version", "gate", "clients", "capacity", "rounds", "ttl_ms",
                               "grace_ms", "max_ticks", "max_states", "symmetry", "pool"})) {
    return std::nullopt;
  }
  (void)read.integer(value, "", "turnstile_check_trace", kCheckTraceFormat, kCheckTraceFormat);
  (void)read.text(value, "", "version", kMaxName);
  CheckConfig config;
  static constexpr std::array<std::string_view, 2> kGates = {"atomic", "legacy"};
  config.gate = read.choice(value, "", "gate", kGates) == 0 ? GateMode::atomic : GateMode::legacy;
  config.clients = static_cast<int>(read.integer(value, "", "clients", 1, kMaxCheckClients));
  config.capacity = read.integer(value, "", "capacity", 1, kMaxCheckCapacity);
  config.rounds = static_cast<int>(read.integer(value, "", "rounds", 1, kMaxCheckRounds));
  config.ttl_ms = read.integer(value, "", "ttl_ms", 1, kMaxCheckTtlMs);
  config.grace_ms = read.integer(value, "", "grace_ms", 0, kMaxCheckGraceMs);
  config.max_ticks = static_cast<int>(read.integer(value, "", "max_ticks", 0, kMaxCheckTicks));
  config.max_states = static_cast<std::uint64_t>(
      read.integer(value, "", "max_states", 1, static_cast<std::int64_t>(kMaxCheckStates)));
  config.symmetry = read.boolean(value, "", "symmetry");
  static constexpr std::array<std::string_view, 1> kPools = {kCheckPool};
  (void)read.choice(value, "", "pool", kPools);
  if (read.failed()) return std::nullopt;
  return config;
}

// A client of the model by name: "c1" .. "c<K>", as a 0-based index.
int read_client(LineReader& read, const json& object, std::string_view path, std::string_view key, int clients) {
  const std::string name = read.text(object, path, key, kMaxName);
  if (read.failed()) return 0;
  for (int i = 0; i < clients; ++i) {
    if (name == check_client_name(i)) return i;
  }
  read.fail(join(path, key), fmt::format("a client of the model, c1 to c{}", clients));
  return 0;
}

core::Op read_op(LineReader& read, const json& value, int clients) {
  constexpr std::string_view kPath = "op";
  core::Op op;
  if (read.failed()) return op;
  if (!value.is_object() || !value.contains("op")) {
    read.fail(kPath, "a D input object such as {\"op\":\"admit\",\"pool\":\"p\",...}");
    return op;
  }
  const std::size_t kind = read.choice(value, kPath, "op", core::kOpKindNames);
  if (read.failed()) return op;
  if (kind == 0) {
    if (!read.object(value, kPath, {"op", "pool", "client", "episode", "request", "issued_at", "now"})) return op;
    op.kind = core::OpKind::admit;
  } else {
    if (!read.object(value, kPath, {"op", "pool", "client", "token", "now"})) return op;
    op.kind = kind == 1 ? core::OpKind::heartbeat : core::OpKind::release;
  }
  static constexpr std::array<std::string_view, 1> kPools = {kCheckPool};
  (void)read.choice(value, kPath, "pool", kPools);
  op.client = check_client_name(read_client(read, value, kPath, "client", clients));
  if (op.kind == core::OpKind::admit) {
    op.episode = read.text(value, kPath, "episode", kMaxName);
    op.request = read.text(value, kPath, "request", kMaxName);
    op.issued_at = read.integer(value, kPath, "issued_at", 0, core::kMaxTimeMs);
  } else {
    op.token = read.token(value, kPath, "token", false);
  }
  op.now = read.integer(value, kPath, "now", 0, core::kMaxTimeMs);
  return op;
}

core::Decision read_decision(LineReader& read, const json& value) {
  constexpr std::string_view kPath = "decision";
  core::Decision decision;
  if (!read.object(value, kPath, {"outcome", "token", "victim", "held"})) return decision;
  const json& outcome = value["outcome"];
  std::optional<core::Outcome> parsed;
  if (outcome.is_string()) parsed = core::outcome_from_name(outcome.get_ref<const std::string&>());
  if (!parsed) {
    read.fail("decision.outcome", "a D outcome such as \"admitted\"");
    return decision;
  }
  decision.outcome = *parsed;
  decision.token = read.token(value, kPath, "token", true);
  if (!read.failed() && !value["victim"].is_null()) decision.victim = read.text(value, kPath, "victim", kMaxName);
  decision.held = read.integer(value, kPath, "held", 0, core::kMaxCapacity);
  return decision;
}

std::vector<core::Session> read_sessions(LineReader& read, const json& value, int clients) {
  std::vector<core::Session> sessions;
  if (read.failed()) return sessions;
  // A broken gate may leave more sessions than clients (P2 stops the path
  // after that step), never many more.
  const std::size_t most = 4 * static_cast<std::size_t>(clients);
  if (!value.is_array() || value.size() > most) {
    read.fail("sessions", fmt::format("an array of at most {} sessions", most));
    return sessions;
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string path = fmt::format("sessions[{}]", i);
    const json& s = value[i];
    if (!read.object(s, path,
                     {"client", "episode", "token", "admitted_at", "last_seen", "last_request"})) {
      return sessions;
    }
    core::Session session;
    session.client = check_client_name(read_client(read, s, path, "client", clients));
    session.episode = read.text(s, path, "episode", kMaxName);
    session.token = read.token(s, path, "token", false);
    session.admitted_at = read.integer(s, path, "admitted_at", 0, core::kMaxTimeMs);
    session.last_seen = read.integer(s, path, "last_seen", 0, core::kMaxTimeMs);
    session.last_request = read.text(s, path, "last_request", kMaxName);
    sessions.push_back(std::move(session));
  }
  return sessions;
}

std::optional<CheckStep> read_step(LineReader& read, const json& value, std::size_t number, int clients) {
  if (!read.object(value, "", {"step", "client", "action", "now", "op", "decision", "wrote", "sessions"})) {
    return std::nullopt;
  }
  CheckStep step;
  if (read.count(value, "", "step") != number && !read.failed()) {
    read.fail("step", fmt::format("{} (steps are numbered in order from 1)", number));
  }
  std::array<std::string_view, kActions.size()> names{};
  for (std::size_t i = 0; i < kActions.size(); ++i) names[i] = action_name(kActions[i]);
  step.action = kActions[read.choice(value, "", "action", names)];
  const bool tick = step.action == CheckAction::tick;
  if (!read.failed()) {
    if (tick != value["client"].is_null()) {
      read.fail("client", tick ? "null for a tick" : fmt::format("a client of the model, c1 to c{}", clients));
    } else if (!tick) {
      step.client = read_client(read, value, "", "client", clients);
    }
  }
  step.now = read.integer(value, "", "now", 0, kMaxCheckTicks);
  if (!read.failed()) {
    if (tick) {
      if (!value["op"].is_null()) read.fail("op", "null for a tick");
      if (!value["decision"].is_null()) read.fail("decision", "null for a tick");
    } else {
      step.op = read_op(read, value["op"], clients);
      if (!read.failed() && step.op->client != check_client_name(step.client)) {
        read.fail("op.client", fmt::format("{}, the step's client", check_client_name(step.client)));
      }
      if (!read.failed() && value["decision"].is_null()) {
        read.fail("decision", "a D output object such as {\"outcome\":\"admitted\",...}");
      }
      step.decision = read_decision(read, value["decision"]);
    }
  }
  step.wrote = read.boolean(value, "", "wrote");
  step.pool.sessions = read_sessions(read, value["sessions"], clients);
  if (read.failed()) return std::nullopt;
  return step;
}

struct VerdictLine {
  CheckVerdict verdict = CheckVerdict::verified;
  std::optional<CheckViolation> violation;
  std::uint64_t states = 0;
  std::uint64_t transitions = 0;
  std::uint32_t depth = 0;
};

std::optional<VerdictLine> read_verdict(LineReader& read, const json& value, std::size_t steps) {
  if (!read.object(value, "", {"verdict", "rule", "step", "message", "states", "transitions", "depth"})) {
    return std::nullopt;
  }
  VerdictLine v;
  std::array<std::string_view, kVerdicts.size()> names{};
  for (std::size_t i = 0; i < kVerdicts.size(); ++i) names[i] = verdict_name(kVerdicts[i]);
  v.verdict = kVerdicts[read.choice(value, "", "verdict", names)];
  if (read.failed()) return std::nullopt;
  if (v.verdict == CheckVerdict::violation) {
    CheckViolation violation;
    violation.rule = read.text(value, "", "rule", kMaxName);
    if (!read.failed() && read.count(value, "", "step") != steps) {
      read.fail("step", fmt::format("{}, the number of step lines above (a line is missing or extra)", steps));
    }
    if (!read.failed() && steps == 0) read.fail_line("a violation needs at least one step line above");
    violation.message = read.text(value, "", "message", kMaxMessage);
    v.violation = std::move(violation);
  } else {
    for (std::string_view key : {"rule", "step", "message"}) {
      if (!read.failed() && !value[std::string(key)].is_null()) read.fail(key, "null unless the verdict is violation");
    }
    if (!read.failed() && steps != 0) read.fail_line("only a violation has step lines");
  }
  v.states = read.count(value, "", "states");
  v.transitions = read.count(value, "", "transitions");
  v.depth = static_cast<std::uint32_t>(read.integer(value, "", "depth", 0, std::numeric_limits<std::uint32_t>::max()));
  if (read.failed()) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------- replaying

std::string describe_verdict(CheckVerdict verdict, const std::optional<CheckViolation>& violation,
                             std::size_t steps) {
  if (violation) return fmt::format("violation of {} at step {}", violation->rule, steps);
  return std::string(verdict_name(verdict));
}

std::uint64_t hash_text(std::string_view text) {
  Fingerprint hash;
  for (char c : text) hash.add(static_cast<unsigned char>(c));
  return hash.value();
}

}  // namespace

std::string check_step_json(std::size_t number, const CheckStep& step) {
  ordered_json line;
  line["step"] = number;
  line["client"] = step.client < 0 ? ordered_json(nullptr) : ordered_json(check_client_name(step.client));
  line["action"] = action_name(step.action);
  line["now"] = step.now;
  line["op"] = step.op ? op_json(*step.op) : ordered_json(nullptr);
  line["decision"] = step.decision ? decision_json(*step.decision) : ordered_json(nullptr);
  line["wrote"] = step.wrote;
  line["sessions"] = sessions_json(step.pool);
  return line.dump();
}

std::string check_config_json(const CheckConfig& config) { return config_json(config).dump(); }

std::string write_check_trace(const CheckConfig& config, const CheckResult& result, std::string_view version) {
  std::string text;
  ordered_json header;
  header["turnstile_check_trace"] = kCheckTraceFormat;
  header["version"] = version;
  const ordered_json settings = config_json(config);
  for (const auto& [key, value] : settings.items()) header[key] = value;
  header["pool"] = kCheckPool;
  text += header.dump() + "\n";
  for (std::size_t i = 0; i < result.trace.size(); ++i) text += check_step_json(i + 1, result.trace[i]) + "\n";
  text += verdict_json(result.verdict, result.violation, result.trace.size(), result.states, result.transitions,
                       result.depth) +
          "\n";
  return text;
}

bool is_check_trace(std::string_view text) {
  const std::size_t newline = text.find('\n');
  const std::string_view first = text.substr(0, newline);
  const json value = json::parse(first.begin(), first.end(), nullptr, /*allow_exceptions=*/false);
  return value.is_object() && value.contains("turnstile_check_trace");
}

std::variant<CheckTrace, CheckTraceError> read_check_trace(std::string_view text, std::string_view source) {
  CheckTrace trace;
  bool have_header = false;
  bool have_verdict = false;
  std::size_t line_number = 0;
  std::size_t position = 0;
  while (position < text.size()) {
    ++line_number;
    const std::size_t newline = text.find('\n', position);
    std::string_view line =
        text.substr(position, newline == std::string_view::npos ? text.size() - position : newline - position);
    position = newline == std::string_view::npos ? text.size() : newline + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    if (have_verdict) return CheckTraceError{fmt::format("{}:{}: nothing may follow the verdict line", source, line_number)};
    if (line.empty()) return CheckTraceError{fmt::format("{}:{}: an empty line", source, line_number)};
    const json value = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return CheckTraceError{fmt::format("{}:{}: not valid JSON", source, line_number)};
    LineReader read(source, line_number);

    if (!have_header) {
      auto config = read_header(read, value);
      if (!config) return read.error();
      trace.version = value["version"].get<std::string>();
      trace.config = *config;
      have_header = true;
      continue;
    }
    if (!value.is_object()) return CheckTraceError{fmt::format("{}:{}: expected a JSON object", source, line_number)};
    if (value.contains("verdict")) {
      auto verdict = read_verdict(read, value, trace.steps.size());
      if (!verdict) return read.error();
      trace.verdict = verdict->verdict;
      trace.violation = std::move(verdict->violation);
      trace.states = verdict->states;
      trace.transitions = verdict->transitions;
      trace.depth = verdict->depth;
      have_verdict = true;
    } else if (value.contains("step")) {
      if (trace.steps.size() >= kMaxCheckTraceSteps) {
        return CheckTraceError{fmt::format("{}:{}: more than {} steps", source, line_number, kMaxCheckTraceSteps)};
      }
      auto step = read_step(read, value, trace.steps.size() + 1, trace.config.clients);
      if (!step) return read.error();
      trace.steps.push_back(std::move(*step));
    } else {
      return CheckTraceError{fmt::format("{}:{}: expected a step or verdict line", source, line_number)};
    }
  }
  if (!have_header) return CheckTraceError{fmt::format("{}:1: missing header line (the file is empty)", source)};
  if (!have_verdict) {
    return CheckTraceError{
        fmt::format("{}:{}: missing verdict line (the trace is truncated)", source, line_number + 1)};
  }
  return trace;
}

CheckTraceReplay replay_check_trace(const CheckTrace& trace, const CheckHooks& hooks) {
  CheckTraceReplay replay;
  Fingerprint fingerprint;
  if (trace.verdict != CheckVerdict::violation) {
    // No path to run: the verdict is about the whole space, so run it again.
    CheckHooks quiet = hooks;
    quiet.progress = nullptr;
    CheckResult rerun = run_check(trace.config, quiet);
    const std::string expected = fmt::format("{} ({} states, {} transitions, depth {})", verdict_name(trace.verdict),
                                             trace.states, trace.transitions, trace.depth);
    const std::string got =
        fmt::format("{} ({} states, {} transitions, depth {})",
                    describe_verdict(rerun.verdict, rerun.violation, rerun.trace.size()), rerun.states,
                    rerun.transitions, rerun.depth);
    if (expected != got) replay.divergence = fmt::format("the run diverged at the verdict: expected {}, got {}", expected, got);
    fingerprint.add(hash_text(verdict_json(rerun.verdict, rerun.violation, rerun.trace.size(), rerun.states,
                                           rerun.transitions, rerun.depth)));
    replay.fingerprint = fingerprint.value();
    replay.rerun = std::move(rerun);
    return replay;
  }

  std::vector<int> labels;
  labels.reserve(trace.steps.size());
  for (const CheckStep& step : trace.steps) labels.push_back(step.client);
  replay.path = run_check_path(trace.config, labels, hooks);
  const std::vector<CheckStep>& got = replay.path.steps;
  for (std::size_t i = 0; i < got.size(); ++i) fingerprint.add(hash_text(check_step_json(i + 1, got[i])));

  for (std::size_t i = 0; i < trace.steps.size() && !replay.divergence; ++i) {
    const std::string expected = check_step_json(i + 1, trace.steps[i]);
    if (i >= got.size()) {
      if (replay.path.impossible == i) {
        const CheckStep& step = trace.steps[i];
        const std::string why = step.client < 0
                                    ? fmt::format("the clock cannot advance past max ticks {}", trace.config.max_ticks)
                                    : fmt::format("client {} has finished its rounds", check_client_name(step.client));
        replay.divergence = fmt::format("the run diverged at step {}: expected {}, got no such step: {}", i + 1,
                                        expected, why);
      } else {
        // The path stopped early at a violation of its own.
        TS_ASSERT(replay.path.violation.has_value());
        replay.divergence =
            fmt::format("the run diverged at step {}: expected {}, got no such step: step {} already broke {}: {}",
                        i + 1, expected, got.size(), replay.path.violation->rule, replay.path.violation->message);
      }
      break;
    }
    const std::string actual = check_step_json(i + 1, got[i]);
    if (expected != actual) {
      replay.divergence = fmt::format("the run diverged at step {}: expected {}, got {}", i + 1, expected, actual);
    }
  }
  const std::string verdict = verdict_json(replay.path.violation ? CheckVerdict::violation : CheckVerdict::verified,
                                           replay.path.violation, got.size(), 0, 0, 0);
  fingerprint.add(hash_text(verdict));
  replay.fingerprint = fingerprint.value();
  if (replay.divergence) return replay;

  const std::optional<CheckViolation>& found = replay.path.violation;
  const bool same = found && trace.violation && found->rule == trace.violation->rule &&
                    found->message == trace.violation->message && got.size() == trace.steps.size();
  if (!same) {
    replay.divergence = fmt::format(
        "the run diverged at the verdict: expected {}, got {}",
        describe_verdict(trace.verdict, trace.violation, trace.steps.size()),
        found ? describe_verdict(CheckVerdict::violation, found, got.size())
              : fmt::format("no violation after {} steps", got.size()));
  }
  return replay;
}

std::vector<HistoryOp> check_path_history(const CheckConfig& config, const std::vector<CheckStep>& steps) {
  std::vector<HistoryOp> ops;
  HistoryOp setup;
  setup.process = "setup";
  setup.call = 0;
  setup.ret = 0;
  setup.pool = std::string(kCheckPool);
  setup.op = core::GateConfig{config.capacity, config.ttl_ms, config.grace_ms};
  ops.push_back(std::move(setup));
  // A legacy admit's op, from its read, until its write returns it.
  std::map<int, std::size_t> open;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const CheckStep& step = steps[i];
    if (step.action == CheckAction::tick || !step.op || !step.decision) continue;
    const auto number = static_cast<std::int64_t>(i + 1);
    if (step.action == CheckAction::admit_write) {
      const auto found = open.find(step.client);
      if (found == open.end()) continue;
      HistoryOp& op = ops[found->second];
      op.ret = number;
      op.out = *step.decision;
      open.erase(found);
      continue;
    }
    HistoryOp op;
    op.process = check_client_name(step.client);
    op.call = number;
    op.pool = std::string(kCheckPool);
    op.op = *step.op;
    if (step.action == CheckAction::admit_read && !step.wrote) {
      open[step.client] = ops.size();
    } else {
      op.ret = number;
      op.out = *step.decision;
    }
    ops.push_back(std::move(op));
  }
  for (std::size_t i = 0; i < ops.size(); ++i) ops[i].line = i + 1;
  return ops;
}

}  // namespace turnstile::sim
