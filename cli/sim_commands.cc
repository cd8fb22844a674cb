#include "cli/sim_commands.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/file_io.h"
#include "core/response.h"
#include "sim/check_trace.h"
#include "sim/describe.h"
#include "sim/gate_history.h"
#include "sim/checkers.h"
#include "sim/scenario.h"

namespace turnstile::cli {
namespace {

using nlohmann::ordered_json;
using WallClock = std::chrono::steady_clock;

// Bounds on what the commands read and run (TIGER_STYLE: a limit on
// everything). A larger exploration is split with --shard.
constexpr std::size_t kMaxScenarioBytes = 1 << 20;
constexpr std::size_t kMaxTraceBytes = std::size_t{1} << 30;
constexpr std::uint64_t kMaxExploreSeeds = 5'000'000;
constexpr int kMaxJobs = 256;
constexpr double kMaxTimeBudgetS = 7 * 24 * 3600.0;
constexpr auto kProgressPeriod = std::chrono::milliseconds(200);
// How much of an event a divergence message quotes.
constexpr std::size_t kMaxQuote = 400;

std::string hex64(std::uint64_t value) { return fmt::format("{:016x}", value); }

// What every simulating command starts from: the scenario, gate and strategy.
struct Setup {
  sim::Scenario scenario;
  sim::GateMode gate = sim::GateMode::atomic;
  sim::StrategySpec strategy;
};

std::variant<Setup, std::string> make_setup(const std::string& scenario_path, const std::string& gate,
                                            const std::string& strategy) {
  Setup setup;
  if (scenario_path.empty()) {
    setup.scenario = sim::default_scenario();
  } else {
    const FileText file = read_file(scenario_path, kMaxScenarioBytes);
    if (!file.text) return file.error;
    auto parsed = sim::parse_scenario(*file.text, scenario_path);
    if (auto* error = std::get_if<sim::ScenarioError>(&parsed)) return error->message;
    setup.scenario = std::get<sim::Scenario>(std::move(parsed));
  }
  auto mode = sim::gate_mode_from_name(gate);
  if (!mode) return fmt::format("--gate: expected atomic or legacy, got '{}'", sim::quote_input(gate));
  setup.gate = *mode;
  auto spec = sim::parse_strategy(strategy);
  if (!spec) return fmt::format("--strategy: expected random or pct:D with D >= 1, got '{}'", sim::quote_input(strategy));
  setup.strategy = std::move(*spec);
  return setup;
}

sim::RunSpec make_spec(const Setup& setup, std::uint64_t seed) {
  sim::RunSpec spec;
  spec.scenario = setup.scenario;
  spec.seed = seed;
  spec.strategy = setup.strategy;
  spec.gate = setup.gate;
  return spec;
}

sim::TraceHeader make_header(const Setup& setup, std::uint64_t seed) {
  sim::TraceHeader header;
  header.version = std::string(kTurnstileVersion);
  header.scenario = setup.scenario;
  header.seed = seed;
  header.strategy = sim::strategy_name(setup.strategy);
  header.gate = setup.gate;
  header.variant = "core";
  return header;
}

// A rule name as it may appear in a file name.
std::string file_safe(std::string_view rule) {
  std::string safe;
  for (char c : rule) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    safe += plain ? c : '_';
  }
  return safe.empty() ? "violation" : safe;
}

std::filesystem::path trace_path_in(const std::string& dir, std::string_view rule, std::uint64_t seed) {
  return std::filesystem::path(dir) / fmt::format("{}-seed-{}.trace.jsonl", file_safe(rule), seed);
}

std::string describe_violation(const sim::Violation& violation) {
  return fmt::format("violation of {} at step {}, {} ms (event {}): {}", violation.rule, violation.step,
                     violation.at_ms, violation.event_index, violation.message);
}

// P14's line: lincheck's verdict on the run's gate history. A not
// linearizable one is also the run's violation; an unknown one is not, but a
// reader must be able to see that P14 did not decide.
std::string describe_p14(const std::optional<sim::GateCheck>& p14) {
  if (!p14) return "p14: not checked (an earlier rule was violated)";
  std::string text = fmt::format("p14: {}, {} operations ({} pending), {} lincheck steps",
                                 sim::verdict_name(p14->verdict), p14->operations, p14->pending, p14->steps);
  if (p14->verdict == sim::LincheckVerdict::unknown) text += fmt::format(" ({}): {}", p14->unknown_cause, p14->message);
  return text;
}

ordered_json p14_json(const std::optional<sim::GateCheck>& p14) {
  if (!p14) return ordered_json(nullptr);
  ordered_json j;
  j["verdict"] = sim::verdict_name(p14->verdict);
  j["cause"] = p14->unknown_cause.empty() ? ordered_json(nullptr) : ordered_json(p14->unknown_cause);
  j["operations"] = p14->operations;
  j["pending"] = p14->pending;
  j["steps"] = p14->steps;
  j["message"] = p14->message.empty() ? ordered_json(nullptr) : ordered_json(p14->message);
  return j;
}

bool p14_unknown(const sim::RunReport& report) {
  return report.p14 && report.p14->verdict == sim::LincheckVerdict::unknown;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// ---------------------------------------------------------------- explore

// The seeds an exploration walks, in ascending order: those of [first, last]
// that fall in the shard. Index i is the i-th of them.
class SeedSequence {
 public:
  SeedSequence(SeedRange range, Shard shard) : count_(0), step_(shard.count) {
    const std::uint64_t target = shard.index - 1;
    const std::uint64_t delta = (target + shard.count - range.first % shard.count) % shard.count;
    if (range.first > std::numeric_limits<std::uint64_t>::max() - delta) return;
    first_ = range.first + delta;
    if (first_ > range.last) return;
    // The whole u64 range has 2^64 seeds, one more than a u64 holds; any
    // count that large is capped long before it matters.
    count_ = std::min((range.last - first_) / step_, std::numeric_limits<std::uint64_t>::max() - 1) + 1;
  }
  std::uint64_t count() const { return count_; }
  std::uint64_t seed(std::uint64_t index) const { return first_ + index * step_; }
  std::uint64_t index_of(std::uint64_t seed) const { return (seed - first_) / step_; }
  void cap(std::uint64_t most) { count_ = std::min(count_, most); }

 private:
  std::uint64_t first_ = 0;
  std::uint64_t count_;
  std::uint64_t step_;
};

// One seed's result, kept small: an exploration holds one per seed it ran.
struct SeedResult {
  std::uint64_t seed = 0;
  std::uint64_t fingerprint = 0;
  std::uint32_t requests = 0;  // saturates; only rates are made of it
  // The runtime's outcome, in a byte so that the whole result stays 32 bytes.
  std::uint8_t outcome_code = static_cast<std::uint8_t>(sim::Outcome::finished);
  // The violated rule ("P1" ... "P17"), empty for a pass. Checkers name rules
  // that short; a longer name is cut to fit.
  std::array<char, 8> rule{};
  // P14 ran out of its bound without deciding (no violation, but reported).
  bool p14_unknown = false;

  sim::Outcome outcome() const { return static_cast<sim::Outcome>(outcome_code); }
  bool violated() const { return rule[0] != '\0'; }
  std::string rule_name() const { return std::string(rule.data(), std::find(rule.begin(), rule.end(), '\0')); }
  void set_rule(std::string_view name) {
    rule.fill('\0');
    std::copy_n(name.begin(), std::min(name.size(), rule.size() - 1), rule.begin());
    if (name.empty()) rule[0] = '?';
  }
};

// docs/simulator.md promises 32 bytes a seed.
static_assert(sizeof(SeedResult) <= 32);

// What one worker did; merged after every worker has ended.
struct WorkerLog {
  std::vector<SeedResult> results;
  std::optional<std::string> failure;  // an exception out of a run
};

struct SharedState {
  std::atomic<std::uint64_t> next_index{0};
  // With --stop-on-first: the lowest index that violated so far. Workers take
  // no index above it, so the indices below it all run, whatever the jobs.
  std::atomic<std::uint64_t> stop_after{std::numeric_limits<std::uint64_t>::max()};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> violations{0};
  // Workers that have returned; the main thread waits on it.
  std::mutex mutex;
  std::condition_variable finished_changed;
  std::size_t finished = 0;
};

void explore_worker(const Setup& setup, const SeedSequence& seeds, bool stop_on_first, SharedState& shared,
                    WorkerLog& log) {
  for (;;) {
    if (shared.stop.load()) return;
    const std::uint64_t index = shared.next_index.fetch_add(1);
    if (index >= seeds.count() || index > shared.stop_after.load()) return;
    SeedResult result;
    result.seed = seeds.seed(index);
    try {
      const sim::RunReport report = sim::run_world(make_spec(setup, result.seed));
      result.fingerprint = report.fingerprint;
      result.requests = static_cast<std::uint32_t>(
          std::min<std::uint64_t>(report.requests, std::numeric_limits<std::uint32_t>::max()));
      result.outcome_code = static_cast<std::uint8_t>(report.runtime.outcome);
      result.p14_unknown = p14_unknown(report);
      if (report.violation) {
        result.set_rule(report.violation->rule);
        shared.violations.fetch_add(1);
        if (stop_on_first) {
          std::uint64_t seen = shared.stop_after.load();
          while (index < seen && !shared.stop_after.compare_exchange_weak(seen, index)) {
          }
        }
      }
    } catch (const std::exception& error) {
      log.failure = fmt::format("seed {}: the run failed: {}", result.seed, error.what());
      shared.stop.store(true);
      return;
    }
    log.results.push_back(std::move(result));
    shared.done.fetch_add(1);
  }
}

void print_progress(std::ostream& err, std::uint64_t done, std::uint64_t total, bool open_ended,
                    std::uint64_t violations, double elapsed_s) {
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  if (open_ended) {
    err << fmt::format("\rexplore: {} seeds, {} violations, {:.0f} seeds/s   ", done, violations, rate);
  } else {
    err << fmt::format("\rexplore: {}/{} seeds, {} violations, {:.0f} seeds/s   ", done, total, violations, rate);
  }
  err.flush();
}

// ---------------------------------------------------------------- replay

std::string quote(std::string text) {
  if (text.size() > kMaxQuote) {
    text.resize(kMaxQuote);
    text += "...";
  }
  return text;
}

std::string describe_step(const sim::StepRecord& record) {
  return fmt::format("fiber {} by choice [{},{}] at {} ms (fp {})", record.fiber, record.choice.index,
                     record.choice.ready, record.now_ms, hex64(record.fingerprint));
}

std::string describe_draw(const sim::Draw& draw) {
  return fmt::format("a {} draw below {} (value {})", sim::draw_site_name(draw.site), draw.bound, draw.value);
}

std::string describe_verdict(const std::optional<sim::Violation>& violation) {
  if (!violation) return "pass";
  return fmt::format("violation of {} at step {} (event {})", violation->rule, violation->step,
                     violation->event_index);
}

// The earliest step at which the replay differs from the recording, with
// what differed, among: the scheduler's own divergence mark, the step
// records, and the history events.
struct StepDivergence {
  std::uint64_t step = 0;
  std::string message;
};

void keep_earliest(std::optional<StepDivergence>& best, std::uint64_t step, std::string message) {
  if (!best || step < best->step) best = StepDivergence{step, std::move(message)};
}

std::optional<std::string> compare_runs(const sim::Trace& trace, const sim::RunReport& report) {
  const auto& expected_steps = trace.schedule;
  const auto& got_steps = report.runtime.schedule;
  std::optional<StepDivergence> first;

  if (report.schedule_divergence) {
    const std::uint64_t k = *report.schedule_divergence;
    const std::string expected =
        k < expected_steps.size()
            ? fmt::format("choice [{},{}]", expected_steps[k].choice.index, expected_steps[k].choice.ready)
            : std::string("the end of the recorded choices");
    const std::string got = k < got_steps.size()
                                ? fmt::format("choice [{},{}] (the recorded one is impossible here)",
                                              got_steps[k].choice.index, got_steps[k].choice.ready)
                                : std::string("another step");
    keep_earliest(first, k, fmt::format("expected {}, got {}", expected, got));
  }

  const std::size_t common_steps = std::min(expected_steps.size(), got_steps.size());
  for (std::size_t k = 0; k < common_steps; ++k) {
    if (expected_steps[k] != got_steps[k]) {
      keep_earliest(first, k,
                    fmt::format("expected {}, got {}", describe_step(expected_steps[k]), describe_step(got_steps[k])));
      break;
    }
  }
  if (expected_steps.size() != got_steps.size()) {
    const std::size_t k = common_steps;
    const std::string expected = k < expected_steps.size() ? describe_step(expected_steps[k])
                                                           : fmt::format("the run to end after {} steps", k);
    const std::string got =
        k < got_steps.size() ? describe_step(got_steps[k]) : fmt::format("the end of the run after {} steps", k);
    keep_earliest(first, k, fmt::format("expected {}, got {}", expected, got));
  }

  const auto& got_events = report.history.events();
  const std::size_t common_events = std::min(trace.events.size(), got_events.size());
  for (std::size_t i = 0; i < common_events; ++i) {
    const std::string expected = sim::event_to_json(trace.events[i]);
    const std::string got = sim::event_to_json(got_events[i]);
    if (expected != got) {
      keep_earliest(first, std::min(trace.events[i].step, got_events[i].step),
                    fmt::format("expected event {} {}, got {}", i, quote(expected), quote(got)));
      break;
    }
  }
  if (trace.events.size() != got_events.size()) {
    const std::size_t i = common_events;
    if (i < trace.events.size()) {
      keep_earliest(first, trace.events[i].step,
                    fmt::format("expected event {} {}, got no more events", i,
                                quote(sim::event_to_json(trace.events[i]))));
    } else {
      keep_earliest(first, got_events[i].step,
                    fmt::format("expected no more events, got event {} {}", i, quote(sim::event_to_json(got_events[i]))));
    }
  }
  if (first) return fmt::format("the run diverged at step {}: {}", first->step, first->message);

  if (report.draw_divergence) {
    const sim::DrawDivergence& d = *report.draw_divergence;
    return fmt::format("the run diverged at draw {}: expected {}, got a {} draw below {}", d.index,
                       d.expected ? describe_draw(*d.expected) : std::string("the end of the recorded draws"),
                       sim::draw_site_name(d.got.site), d.got.bound);
  }
  if (report.draws != trace.draws) {
    const std::size_t common = std::min(report.draws.size(), trace.draws.size());
    std::size_t i = 0;
    while (i < common && report.draws[i] == trace.draws[i]) ++i;
    return fmt::format("the run diverged at draw {}: expected {}, got {}", i,
                       i < trace.draws.size() ? describe_draw(trace.draws[i]) : std::string("no more draws"),
                       i < report.draws.size() ? describe_draw(report.draws[i]) : std::string("no more draws"));
  }
  if (report.violation != trace.violation) {
    return fmt::format("the run diverged at the verdict: expected {}, got {}", describe_verdict(trace.violation),
                       describe_verdict(report.violation));
  }
  if (std::string(sim::outcome_name(report.runtime.outcome)) != trace.outcome) {
    return fmt::format("the run diverged at the end: expected outcome {}, got {}", trace.outcome,
                       sim::outcome_name(report.runtime.outcome));
  }
  if (report.fingerprint != trace.fingerprint) {
    return fmt::format("the run diverged at the end: expected fingerprint {}, got {}", hex64(trace.fingerprint),
                       hex64(report.fingerprint));
  }
  return std::nullopt;
}

}  // namespace

std::variant<SeedRange, std::string> parse_seed_range(std::string_view text) {
  const std::string error = fmt::format("--seeds: expected A..B with A <= B (decimal), got '{}'", sim::quote_input(text));
  const std::size_t dots = text.find("..");
  if (dots == std::string_view::npos) return error;
  const auto first = parse_u64(text.substr(0, dots));
  const auto last = parse_u64(text.substr(dots + 2));
  if (!first || !last || *first > *last) return error;
  return SeedRange{*first, *last};
}

std::variant<Shard, std::string> parse_shard(std::string_view text) {
  const std::string error = fmt::format("--shard: expected K/N with 1 <= K <= N, got '{}'", sim::quote_input(text));
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return error;
  const auto index = parse_u64(text.substr(0, slash));
  const auto count = parse_u64(text.substr(slash + 1));
  if (!index || !count || *index < 1 || *index > *count) return error;
  return Shard{*index, *count};
}

int run_command(const RunOptions& options, std::ostream& out, std::ostream& err) {
  auto made = make_setup(options.scenario_path, options.gate, options.strategy);
  if (auto* error = std::get_if<std::string>(&made)) {
    err << *error << "\n";
    return 2;
  }
  const Setup& setup = std::get<Setup>(made);
  const auto seed = parse_u64(options.seed);
  if (!seed) {
    err << fmt::format("--seed: expected a decimal integer from 0 to 18446744073709551615, got '{}'", sim::quote_input(options.seed))
        << "\n";
    return 2;
  }
  const sim::RunReport report = sim::run_world(make_spec(setup, *seed));

  std::string trace_path = options.trace_out;
  if (trace_path.empty() && report.violation) {
    trace_path = trace_path_in(std::string(kDefaultTracesDir), report.violation->rule, *seed).string();
  }
  if (!trace_path.empty()) {
    if (auto error = write_file_creating_directory(trace_path, sim::write_trace(make_header(setup, *seed), report));
        !error.empty()) {
      err << error << "\n";
      return 2;
    }
  }
  if (!options.history_out.empty()) {
    if (auto error = write_file_creating_directory(options.history_out, sim::gate_history_text(report.gate_history)); !error.empty()) {
      err << error << "\n";
      return 2;
    }
  }

  if (options.json) {
    ordered_json summary;
    summary["seed"] = *seed;
    summary["scenario"] = setup.scenario.name;
    summary["gate"] = sim::gate_mode_name(setup.gate);
    summary["strategy"] = sim::strategy_name(setup.strategy);
    summary["outcome"] = sim::outcome_name(report.runtime.outcome);
    summary["steps"] = report.runtime.steps;
    summary["simulated_ms"] = report.runtime.end_ms;
    summary["requests"] = report.requests;
    summary["events"] = report.history.size();
    summary["verdict"] = report.violation ? "violation" : "pass";
    if (report.violation) {
      summary["rule"] = report.violation->rule;
      summary["step"] = report.violation->step;
      summary["at"] = report.violation->at_ms;
      summary["event"] = report.violation->event_index;
      summary["message"] = report.violation->message;
    }
    summary["p14"] = p14_json(report.p14);
    summary["trace"] = trace_path.empty() ? ordered_json(nullptr) : ordered_json(trace_path);
    summary["history"] = options.history_out.empty() ? ordered_json(nullptr) : ordered_json(options.history_out);
    summary["fingerprint"] = hex64(report.fingerprint);
    out << summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    out << fmt::format("run: seed {}, scenario {}, gate {}, strategy {}\n", *seed, setup.scenario.name,
                       sim::gate_mode_name(setup.gate), sim::strategy_name(setup.strategy));
    out << fmt::format("outcome: {} after {} steps, {} ms simulated, {} requests, {} events\n",
                       sim::outcome_name(report.runtime.outcome), report.runtime.steps, report.runtime.end_ms,
                       report.requests, report.history.size());
    if (report.runtime.failure) {
      out << fmt::format("fiber {} ({}) failed: {}\n", report.runtime.failure->fiber, report.runtime.failure->name,
                         report.runtime.failure->message);
    }
    if (report.violation) {
      out << "verdict: " << describe_violation(*report.violation) << "\n";
      out << fmt::format("rule {}: {}\n", report.violation->rule, sim::rule_text(report.violation->rule));
    } else {
      out << "verdict: pass\n";
    }
    out << describe_p14(report.p14) << "\n";
    if (!trace_path.empty()) out << "trace: " << trace_path << "\n";
    if (!options.history_out.empty()) out << "history: " << options.history_out << "\n";
    out << "fingerprint: " << hex64(report.fingerprint) << "\n";
  }
  return report.violation ? 1 : 0;
}

int explore_command(const ExploreOptions& options, std::ostream& out, std::ostream& err) {
  auto made = make_setup(options.scenario_path, options.gate, options.strategy);
  if (auto* error = std::get_if<std::string>(&made)) {
    err << *error << "\n";
    return 2;
  }
  const Setup& setup = std::get<Setup>(made);
  const bool open_ended = options.time_budget_s.has_value() && options.seeds.empty();

  SeedRange range{0, 999};
  if (!options.seeds.empty()) {
    auto parsed = parse_seed_range(options.seeds);
    if (auto* error = std::get_if<std::string>(&parsed)) {
      err << *error << "\n";
      return 2;
    }
    range = std::get<SeedRange>(parsed);
  } else if (open_ended) {
    range = SeedRange{0, std::numeric_limits<std::uint64_t>::max()};
  }
  if (options.time_budget_s && !(*options.time_budget_s > 0 && *options.time_budget_s <= kMaxTimeBudgetS)) {
    err << fmt::format("--time-budget: expected seconds, more than 0 and at most {:.0f}", kMaxTimeBudgetS) << "\n";
    return 2;
  }
  Shard shard;
  if (!options.shard.empty()) {
    auto parsed = parse_shard(options.shard);
    if (auto* error = std::get_if<std::string>(&parsed)) {
      err << *error << "\n";
      return 2;
    }
    shard = std::get<Shard>(parsed);
  }
  if (options.jobs < 1 || options.jobs > kMaxJobs) {
    err << fmt::format("--jobs: expected an integer from 1 to {}, got {}", kMaxJobs, options.jobs) << "\n";
    return 2;
  }
  if (options.check_determinism < 0) {
    err << "--check-determinism: expected a number of seeds, 0 or more\n";
    return 2;
  }
  SeedSequence seeds(range, shard);
  if (!open_ended && seeds.count() > kMaxExploreSeeds) {
    err << fmt::format("--seeds: at most {} seeds per explore, got {} (split the range with --shard)",
                       kMaxExploreSeeds, seeds.count())
        << "\n";
    return 2;
  }
  // An open-ended exploration ends at its time budget or at the same bound.
  seeds.cap(kMaxExploreSeeds);

  // The workers; this thread keeps time and shows progress.
  SharedState shared;
  std::vector<WorkerLog> logs(static_cast<std::size_t>(options.jobs));
  const auto started = WallClock::now();
  std::vector<std::thread> workers;
  workers.reserve(logs.size());
  for (WorkerLog& log : logs) {
    workers.emplace_back([&setup, &seeds, &options, &shared, &log] {
      explore_worker(setup, seeds, options.stop_on_first, shared, log);
      {
        const std::lock_guard<std::mutex> lock(shared.mutex);
        ++shared.finished;
      }
      shared.finished_changed.notify_all();
    });
  }
  {
    const auto budget_end =
        options.time_budget_s
            ? started + std::chrono::duration_cast<WallClock::duration>(std::chrono::duration<double>(*options.time_budget_s))
            : WallClock::time_point::max();
    std::unique_lock<std::mutex> lock(shared.mutex);
    while (shared.finished < logs.size()) {
      const auto now = WallClock::now();
      if (now >= budget_end) shared.stop.store(true);
      if (options.progress) {
        print_progress(err, shared.done.load(), seeds.count(), open_ended, shared.violations.load(),
                       std::chrono::duration<double>(now - started).count());
      }
      const auto tick = options.progress ? now + kProgressPeriod : WallClock::time_point::max();
      shared.finished_changed.wait_until(lock, std::min(tick, budget_end));
    }
  }
  for (std::thread& worker : workers) worker.join();
  const double wall_s = std::chrono::duration<double>(WallClock::now() - started).count();
  if (options.progress) err << "\r" << std::string(78, ' ') << "\r" << std::flush;

  for (const WorkerLog& log : logs) {
    if (log.failure) {
      err << *log.failure << "\n";
      return 2;
    }
  }

  // Every seed's result in seed order. With --stop-on-first only the seeds up
  // to the first violation count, so the outcome does not depend on --jobs.
  std::vector<SeedResult> results;
  for (WorkerLog& log : logs) {
    for (SeedResult& result : log.results) results.push_back(std::move(result));
  }
  std::sort(results.begin(), results.end(), [](const SeedResult& a, const SeedResult& b) { return a.seed < b.seed; });
  if (options.stop_on_first) {
    const std::uint64_t stop_after = shared.stop_after.load();
    std::erase_if(results, [&](const SeedResult& result) { return seeds.index_of(result.seed) > stop_after; });
  }

  struct RuleSummary {
    std::uint64_t count = 0;
    std::uint64_t first_seed = 0;
    std::uint64_t fingerprint = 0;
  };
  std::map<std::string, RuleSummary> rules;
  std::map<std::string, std::uint64_t> outcomes;
  std::uint64_t violations = 0;
  std::uint64_t requests = 0;
  std::uint64_t p14_unknowns = 0;
  std::optional<std::uint64_t> first_p14_unknown;
  for (const SeedResult& result : results) {
    ++outcomes[std::string(sim::outcome_name(result.outcome()))];
    requests += result.requests;
    if (result.p14_unknown) {
      ++p14_unknowns;
      if (!first_p14_unknown) first_p14_unknown = result.seed;
    }
    if (!result.violated()) continue;
    ++violations;
    RuleSummary& rule = rules[result.rule_name()];
    if (rule.count++ == 0) {
      rule.first_seed = result.seed;
      rule.fingerprint = result.fingerprint;
    }
  }

  // One trace per distinct violation: its rule's first seed, run again. The
  // rerun must give the same fingerprint, which checks determinism for free.
  struct WrittenTrace {
    std::string rule;
    std::uint64_t seed = 0;
    std::string path;
    sim::Violation violation;
  };
  std::vector<WrittenTrace> traces;
  std::vector<std::string> nondeterministic;
  for (const auto& [rule, summary] : rules) {
    const sim::RunReport report = sim::run_world(make_spec(setup, summary.first_seed));
    if (report.fingerprint != summary.fingerprint || !report.violation) {
      nondeterministic.push_back(fmt::format("seed {} gave fingerprint {}, then {}", summary.first_seed,
                                             hex64(summary.fingerprint), hex64(report.fingerprint)));
      continue;
    }
    const auto path = trace_path_in(options.traces_dir, rule, summary.first_seed);
    if (auto error = write_file_creating_directory(path, sim::write_trace(make_header(setup, summary.first_seed), report));
        !error.empty()) {
      err << error << "\n";
      return 2;
    }
    traces.push_back(WrittenTrace{rule, summary.first_seed, path.string(), *report.violation});
  }
  std::sort(traces.begin(), traces.end(), [](const WrittenTrace& a, const WrittenTrace& b) { return a.seed < b.seed; });

  // --check-determinism K: K seeds spread evenly over those run, run again.
  std::uint64_t rechecked = 0;
  if (options.check_determinism > 0 && !results.empty()) {
    const std::uint64_t n = results.size();
    const std::uint64_t k = std::min<std::uint64_t>(static_cast<std::uint64_t>(options.check_determinism), n);
    for (std::uint64_t j = 0; j < k; ++j) {
      const SeedResult& result = results[j * n / k];
      const sim::RunReport report = sim::run_world(make_spec(setup, result.seed));
      ++rechecked;
      if (report.fingerprint != result.fingerprint) {
        nondeterministic.push_back(fmt::format("seed {} gave fingerprint {}, then {}", result.seed,
                                               hex64(result.fingerprint), hex64(report.fingerprint)));
      }
    }
  }

  const double seeds_per_s = wall_s > 0 ? static_cast<double>(results.size()) / wall_s : 0.0;
  const double requests_per_s = wall_s > 0 ? static_cast<double>(requests) / wall_s : 0.0;
  const std::string seeds_text = open_ended ? fmt::format("from {} for {} s", range.first, *options.time_budget_s)
                                            : fmt::format("{}..{}", range.first, range.last);
  const std::string shard_text = fmt::format("{}/{}", shard.index, shard.count);
  if (options.json) {
    ordered_json summary;
    summary["scenario"] = setup.scenario.name;
    summary["gate"] = sim::gate_mode_name(setup.gate);
    summary["strategy"] = sim::strategy_name(setup.strategy);
    summary["seeds"] = seeds_text;
    summary["shard"] = shard_text;
    summary["jobs"] = options.jobs;
    summary["runs"] = results.size();
    summary["violations"] = violations;
    ordered_json by_rule = ordered_json::object();
    for (const auto& [rule, rule_summary] : rules) by_rule[rule] = rule_summary.count;
    summary["violations_by_rule"] = by_rule;
    ordered_json by_outcome = ordered_json::object();
    for (const auto& [name, count] : outcomes) by_outcome[name] = count;
    summary["outcomes"] = by_outcome;
    summary["p14_unknown"] = p14_unknowns;
    summary["requests"] = requests;
    summary["wall_s"] = wall_s;
    summary["seeds_per_s"] = seeds_per_s;
    summary["requests_per_s"] = requests_per_s;
    ordered_json written = ordered_json::array();
    for (const WrittenTrace& trace : traces) {
      written.push_back({{"rule", trace.rule}, {"seed", trace.seed}, {"path", trace.path}});
    }
    summary["traces"] = written;
    summary["determinism_rechecked"] = rechecked;
    summary["nondeterministic"] = nondeterministic;
    ordered_json per_seed = ordered_json::array();
    for (const SeedResult& result : results) {
      per_seed.push_back({{"seed", result.seed},
                          {"verdict", result.violated() ? "violation" : "pass"},
                          {"rule", result.violated() ? ordered_json(result.rule_name()) : ordered_json(nullptr)},
                          {"p14_unknown", result.p14_unknown},
                          {"fingerprint", hex64(result.fingerprint)}});
    }
    summary["results"] = per_seed;
    out << summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    out << fmt::format("explore: seeds {} (shard {}), scenario {}, gate {}, strategy {}, {} job{}\n", seeds_text,
                       shard_text, setup.scenario.name, sim::gate_mode_name(setup.gate),
                       sim::strategy_name(setup.strategy), options.jobs, options.jobs == 1 ? "" : "s");
    std::string by_rule;
    for (const auto& [rule, rule_summary] : rules) {
      by_rule += fmt::format("{}{} {}", by_rule.empty() ? "" : ", ", rule, rule_summary.count);
    }
    std::string by_outcome;
    for (const auto& [name, count] : outcomes) {
      by_outcome += fmt::format("{}{} {}", by_outcome.empty() ? "" : ", ", name, count);
    }
    out << fmt::format("runs: {}, violations: {}{}, outcomes: {}\n", results.size(), violations,
                       by_rule.empty() ? "" : " (" + by_rule + ")", by_outcome.empty() ? "none" : by_outcome);
    if (p14_unknowns > 0) {
      out << fmt::format("p14 unknown: {} seeds (lincheck reached its bound; first seed {}, see turnstile run --seed)\n",
                         p14_unknowns, *first_p14_unknown);
    }
    for (const WrittenTrace& trace : traces) {
      out << fmt::format("first {}: seed {}, {}\n", trace.rule, trace.seed, describe_violation(trace.violation));
      out << fmt::format("trace: {}\n", trace.path);
    }
    if (options.stop_on_first && violations > 0) {
      out << fmt::format("stopped at the first violation (seed {})\n", results.back().seed);
    }
    if (rechecked > 0 && nondeterministic.empty()) {
      out << fmt::format("determinism: {} seeds run again, same fingerprints\n", rechecked);
    }
    out << fmt::format("seeds/s: {:.1f}, simulated requests/s: {:.0f}, wall time: {:.3f} s\n", seeds_per_s,
                       requests_per_s, wall_s);
  }
  if (!nondeterministic.empty()) {
    err << "determinism check failed: " << nondeterministic.front() << "\n";
    return 1;
  }
  return violations > 0 ? 1 : 0;
}

namespace {

std::string write_history_ops(const std::string& path, const std::vector<sim::HistoryOp>& ops) {
  std::string text;
  for (const sim::HistoryOp& op : ops) sim::append_history_line(text, op);
  return write_file_creating_directory(path, text);
}

// `turnstile replay` of a check trace (sim/check_trace.h): its steps run
// again on the model's gate, or, for a verified or incomplete check, the
// whole check again.
int replay_check_command(const std::string& trace_path, const std::string& text, std::ostream& out,
                         std::ostream& err, const std::string& history_out) {
  auto parsed = sim::read_check_trace(text, trace_path);
  if (auto* error = std::get_if<sim::CheckTraceError>(&parsed)) {
    err << error->message << "\n";
    return 2;
  }
  const sim::CheckTrace& trace = std::get<sim::CheckTrace>(parsed);
  const sim::CheckTraceReplay replay = sim::replay_check_trace(trace);
  const std::vector<sim::CheckStep>& steps = replay.rerun ? replay.rerun->trace : replay.path.steps;
  if (!history_out.empty()) {
    if (auto error = write_history_ops(history_out, sim::check_path_history(trace.config, steps)); !error.empty()) {
      err << error << "\n";
      return 2;
    }
  }
  if (replay.divergence) {
    err << trace_path << ": " << *replay.divergence << "\n";
    return 2;
  }
  const sim::CheckConfig& config = trace.config;
  out << fmt::format("replay: {}: check trace, gate {}, {} client{}, capacity {}, {} round{}, ttl {}, grace {}, "
                     "max ticks {}\n",
                     trace_path, sim::gate_mode_name(config.gate), config.clients, config.clients == 1 ? "" : "s",
                     config.capacity, config.rounds, config.rounds == 1 ? "" : "s", config.ttl_ms, config.grace_ms,
                     config.max_ticks);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const sim::CheckStep& step = steps[i];
    const std::string who = step.client < 0 ? std::string("-") : sim::check_client_name(step.client);
    std::string what = step.op ? sim::describe_op(*step.op) : fmt::format("clock to {}", step.now);
    if (step.decision) what += " -> " + sim::describe_decision(*step.decision) + (step.wrote ? "" : " (planned)");
    out << fmt::format("  step {:>3}  {:<6}  {:<11}  {}\n", i + 1, who, sim::action_name(step.action), what);
  }
  int code = 0;
  if (const auto& violation = replay.path.violation) {
    out << fmt::format("verdict: violation of {} at step {}: {}\n", violation->rule, steps.size(), violation->message);
    if (const std::string_view text_of_rule = sim::rule_text(violation->rule); !text_of_rule.empty()) {
      out << fmt::format("rule {}: {}\n", violation->rule, text_of_rule);
    }
    out << "reproduced: every step and the verdict match the trace\n";
    code = 1;
  } else {
    const sim::CheckResult& rerun = *replay.rerun;
    out << fmt::format("verdict: {} ({} states, {} transitions, depth {})\n", sim::verdict_name(rerun.verdict),
                       rerun.states, rerun.transitions, rerun.depth);
    out << "reproduced: the check ran again and gave the trace's verdict and counts\n";
    // As `turnstile check`: only verified is a pass.
    code = rerun.verdict == sim::CheckVerdict::verified ? 0 : 1;
  }
  if (!history_out.empty()) out << "history: " << history_out << "\n";
  out << "fingerprint: " << hex64(replay.fingerprint) << "\n";
  return code;
}

}  // namespace

int replay_command(const std::string& trace_path, const Variants& variants, std::ostream& out, std::ostream& err,
                   const std::string& history_out) {
  const FileText file = read_file(trace_path, kMaxTraceBytes);
  if (!file.text) {
    err << file.error << "\n";
    return 2;
  }
  if (sim::is_check_trace(*file.text)) return replay_check_command(trace_path, *file.text, out, err, history_out);
  auto parsed = sim::read_trace(*file.text, trace_path);
  if (auto* error = std::get_if<sim::TraceError>(&parsed)) {
    err << error->message << "\n";
    return 2;
  }
  const sim::Trace& trace = std::get<sim::Trace>(parsed);
  sim::WorldHooks hooks;
  if (trace.header.variant != "core") {
    const auto it = variants.find(trace.header.variant);
    if (it == variants.end()) {
      err << fmt::format("{}: trace needs variant {}, which only the test suite provides", trace_path,
                         trace.header.variant)
          << "\n";
      return 2;
    }
    hooks = it->second;
  }
  const ReplayResult result = replay_trace(trace, hooks);
  if (!history_out.empty()) {
    if (auto error = write_file_creating_directory(history_out, sim::gate_history_text(result.report.gate_history)); !error.empty()) {
      err << error << "\n";
      return 2;
    }
  }
  if (result.divergence) {
    err << trace_path << ": " << *result.divergence << "\n";
    return 2;
  }
  const sim::RunReport& report = result.report;
  out << fmt::format("replay: {}: seed {}, scenario {}, gate {}, recorded with strategy {}, variant {}\n", trace_path,
                     trace.header.seed, trace.header.scenario.name, sim::gate_mode_name(trace.header.gate),
                     trace.header.strategy, trace.header.variant);
  out << fmt::format("outcome: {} after {} steps, {} ms simulated\n", sim::outcome_name(report.runtime.outcome),
                     report.runtime.steps, report.runtime.end_ms);
  if (report.violation) {
    out << "verdict: " << describe_violation(*report.violation) << "\n";
  } else {
    out << "verdict: pass\n";
  }
  out << describe_p14(report.p14) << "\n";
  out << "reproduced: every step, draw and event, the verdict and the fingerprint match the trace\n";
  if (!history_out.empty()) out << "history: " << history_out << "\n";
  out << "fingerprint: " << hex64(report.fingerprint) << "\n";
  return report.violation ? 1 : 0;
}

ReplayResult replay_trace(const sim::Trace& trace, const sim::WorldHooks& hooks) {
  sim::RunSpec spec;
  spec.scenario = trace.header.scenario;
  spec.seed = trace.header.seed;
  spec.gate = trace.header.gate;
  spec.strategy.kind = sim::StrategyKind::replay;
  spec.strategy.replay.reserve(trace.schedule.size());
  for (const sim::StepRecord& record : trace.schedule) spec.strategy.replay.push_back(record.choice);
  spec.replay_draws = trace.draws;
  spec.hooks = hooks;
  ReplayResult result;
  result.report = sim::run_world(spec);
  result.divergence = compare_runs(trace, result.report);
  return result;
}

}  // namespace turnstile::cli
