#include "cli/check_command.h"

#include <chrono>
#include <ostream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/file_io.h"
#include "cli/sim_commands.h"
#include "sim/check_trace.h"
#include "sim/describe.h"

namespace turnstile::cli {
namespace {

using nlohmann::ordered_json;
using WallClock = std::chrono::steady_clock;

constexpr auto kProgressPeriod = std::chrono::milliseconds(200);

std::string_view on_off(bool value) { return value ? "on" : "off"; }

std::string client_label(const sim::CheckStep& step) {
  return step.client < 0 ? std::string("-") : sim::check_client_name(step.client);
}


std::string describe_operation(const sim::CheckStep& step) {
  if (!step.op) return fmt::format("now {}", step.now);
  const core::Op& op = *step.op;
  switch (op.kind) {
    case core::OpKind::admit:
      return fmt::format("admit {} {} at {}", op.episode, op.request, op.now);
    case core::OpKind::heartbeat:
      return fmt::format("heartbeat token {} at {}", op.token, op.now);
    case core::OpKind::release:
      return fmt::format("release token {} at {}", op.token, op.now);
  }
  return "";
}

std::string describe_result(const sim::CheckStep& step) {
  if (!step.decision) return "";
  std::string text = sim::describe_decision(*step.decision);
  if (!step.wrote) text += " (planned, not yet written)";
  return text;
}

std::string header_line(const sim::CheckConfig& config) {
  return fmt::format("check: gate {}, {} client{}, capacity {}, {} round{}, ttl {}, grace {}, max ticks {}, "
                     "symmetry {}",
                     sim::gate_mode_name(config.gate), config.clients, config.clients == 1 ? "" : "s",
                     config.capacity, config.rounds, config.rounds == 1 ? "" : "s", config.ttl_ms, config.grace_ms,
                     config.max_ticks, on_off(config.symmetry));
}

std::string counts_line(const sim::CheckResult& result) {
  return fmt::format("states {}, transitions {}, depth {}; fingerprint collision probability <= {:.1e}",
                     result.states, result.transitions, result.depth, result.collision_probability);
}

void write_text(const sim::CheckConfig& config, const sim::CheckResult& result, const std::string& trace_out,
                std::ostream& out) {
  out << header_line(config) << "\n";
  switch (result.verdict) {
    case sim::CheckVerdict::verified:
      out << fmt::format("verified: no violation of {} in the whole state space\n", sim::kCheckRules);
      break;
    case sim::CheckVerdict::incomplete:
      out << fmt::format("incomplete: stopped at --max-states {} at depth {}, no violation so far\n",
                         config.max_states, result.depth);
      break;
    case sim::CheckVerdict::violation: {
      out << fmt::format("violation of {} after {} steps (a shortest counterexample):\n", result.violation->rule,
                         result.trace.size());
      out << fmt::format("  {:>4}  {:<6}  {:<11}  {:<24}  {:<44}  {}\n", "step", "client", "action", "operation",
                         "decision", "held");
      for (std::size_t i = 0; i < result.trace.size(); ++i) {
        const sim::CheckStep& step = result.trace[i];
        out << fmt::format("  {:>4}  {:<6}  {:<11}  {:<24}  {:<44}  {}\n", i + 1, client_label(step),
                           sim::action_name(step.action), describe_operation(step), describe_result(step),
                           step.pool.sessions.size());
      }
      out << result.violation->rule << ": " << result.violation->message << "\n";
      break;
    }
  }
  out << counts_line(result) << "\n";
  if (!trace_out.empty()) out << "trace written to " << trace_out << "\n";
}

void write_json(const sim::CheckConfig& config, const sim::CheckResult& result, const std::string& trace_out,
                std::ostream& out) {
  ordered_json j;
  j["verdict"] = sim::verdict_name(result.verdict);
  const ordered_json settings = ordered_json::parse(sim::check_config_json(config));
  for (const auto& [key, value] : settings.items()) j[key] = value;
  j["states"] = result.states;
  j["transitions"] = result.transitions;
  j["depth"] = result.depth;
  j["collision_probability"] = result.collision_probability;
  j["rule"] = result.violation ? ordered_json(result.violation->rule) : ordered_json(nullptr);
  j["message"] = result.violation ? ordered_json(result.violation->message) : ordered_json(nullptr);
  j["steps"] = result.trace.size();
  j["trace_out"] = trace_out.empty() ? ordered_json(nullptr) : ordered_json(trace_out);
  out << j.dump() << "\n";
}

// A progress line on a terminal, at most every kProgressPeriod.
class ProgressLine {
 public:
  explicit ProgressLine(std::ostream& err) : err_(err), start_(WallClock::now()), last_(start_) {}

  void update(const sim::CheckProgress& progress) {
    const auto now = WallClock::now();
    if (now - last_ < kProgressPeriod) return;
    last_ = now;
    err_ << fmt::format("\rcheck: {} states, {:.0f} states/s, depth {}   ", progress.states,
                        rate(progress.states, now), progress.depth)
         << std::flush;
    shown_ = true;
  }

  void finish(std::uint64_t states) {
    const auto now = WallClock::now();
    if (shown_) err_ << "\n";
    err_ << fmt::format("check: {} states in {:.3f} s, {:.0f} states/s\n", states, seconds(now), rate(states, now));
  }

 private:
  double seconds(WallClock::time_point now) const { return std::chrono::duration<double>(now - start_).count(); }
  double rate(std::uint64_t states, WallClock::time_point now) const {
    const double s = seconds(now);
    return s > 0 ? static_cast<double>(states) / s : 0.0;
  }

  std::ostream& err_;
  WallClock::time_point start_;
  WallClock::time_point last_;
  bool shown_ = false;
};

}  // namespace

CheckSetup check_setup(const CheckOptions& options) {
  CheckSetup setup;
  const auto mode = sim::gate_mode_from_name(options.gate);
  if (!mode) {
    setup.error = "turnstile check: --gate: expected atomic or legacy";
    return setup;
  }
  sim::CheckConfig& config = setup.config;
  config.gate = *mode;
  config.clients = options.clients;
  config.capacity = options.capacity;
  config.rounds = options.rounds;
  config.ttl_ms = options.ttl;
  config.grace_ms = options.grace;
  config.max_states = options.max_states;
  config.symmetry = !options.no_symmetry;
  // The default tick bound needs a valid ttl and grace; check_config_error
  // names them first when they are not.
  const bool times_valid = options.ttl >= 1 && options.ttl <= sim::kMaxCheckTtlMs && options.grace >= 0 &&
                           options.grace <= sim::kMaxCheckGraceMs;
  if (options.max_ticks != -1) {
    config.max_ticks = options.max_ticks;
  } else {
    config.max_ticks = times_valid ? sim::default_max_ticks(options.ttl, options.grace) : 0;
  }
  if (auto error = sim::check_config_error(config)) setup.error = "turnstile check: --" + *error;
  return setup;
}

std::string check_trace_text(const sim::CheckConfig& config, const sim::CheckResult& result) {
  return sim::write_check_trace(config, result, kTurnstileVersion);
}

int run_check_command(const CheckOptions& options, std::ostream& out, std::ostream& err) {
  return run_check_command(options, sim::CheckHooks{}, out, err);
}

int run_check_command(const CheckOptions& options, const sim::CheckHooks& hooks, std::ostream& out,
                      std::ostream& err) {
  const CheckSetup setup = check_setup(options);
  if (!setup.error.empty()) {
    err << setup.error << "\n";
    return 2;
  }

  sim::CheckHooks run_hooks = hooks;
  std::optional<ProgressLine> progress;
  if (options.progress) {
    progress.emplace(err);
    run_hooks.progress = [&progress](const sim::CheckProgress& p) { progress->update(p); };
    run_hooks.progress_every = 1 << 14;
  }
  const sim::CheckResult result = sim::run_check(setup.config, run_hooks);
  if (progress) progress->finish(result.states);

  if (!options.trace_out.empty()) {
    if (std::string error = write_file(options.trace_out, check_trace_text(setup.config, result)); !error.empty()) {
      err << "turnstile check: " << error << "\n";
      return 2;
    }
  }
  if (options.json) {
    write_json(setup.config, result, options.trace_out, out);
  } else {
    write_text(setup.config, result, options.trace_out, out);
  }
  switch (result.verdict) {
    case sim::CheckVerdict::verified: return 0;
    case sim::CheckVerdict::violation: return 1;
    // Not verified is not a pass: like lincheck's `unknown`, an unfinished
    // search exits 1 (DESIGN.md's codes are 0, 1 and 2); the output says which.
    case sim::CheckVerdict::incomplete: return 1;
  }
  return 1;
}

}  // namespace turnstile::cli
