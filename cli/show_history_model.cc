// history_model (cli/show_command.h): a history (SPEC H) and lincheck's
// verdicts on it as a timeline, a lane per process.

#include "cli/show_command.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "cli/show_columns.h"
#include "cli/show_ops.h"
#include "sim/describe.h"

namespace turnstile::cli {

using show_detail::count_of;
using show_detail::finish_summaries;
using core::op_kind_name;
using show_detail::outcome_tone;
using show_detail::Plan;
using show_detail::plan_columns;
using show_detail::summary_note;
using show_detail::Tally;
using show_detail::touch_column;

namespace {

struct OpRef {
  std::size_t pool = 0;
  std::size_t op = 0;
};

// A call or a return of one operation of a history.
struct Endpoint {
  std::int64_t at = 0;
  bool ret = false;
  std::size_t order = 0;  // across the whole history: pools in order, their ops in file order
  OpRef ref;
};

std::string short_op(const sim::HistoryOp& op) {
  if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
    return fmt::format("config capacity {}", config->capacity);
  }
  const auto& gate_op = std::get<core::Op>(op.op);
  return fmt::format("{} {}", op_kind_name(gate_op.kind), gate_op.client);
}

std::string long_op(const sim::HistoryOp& op) {
  if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
    return fmt::format("config of pool {}: capacity {}, ttl {}, grace {}", op.pool, config->capacity, config->ttl_ms,
                       config->grace_ms);
  }
  return fmt::format("{} on pool {}", sim::describe_op(std::get<core::Op>(op.op)), op.pool);
}

std::string answer_of(const sim::HistoryOp& op) {
  if (op.pending()) return "pending (outcome unknown)";
  if (op.is_config()) return "configured";
  return fmt::format("{}, {} held", sim::describe_decision(*op.out), op.out->held);
}

Tone history_tone(const sim::HistoryOp& op) {
  if (op.pending() || op.is_config()) return Tone::neutral;
  return outcome_tone(op.out->outcome);
}

std::string d_out(const sim::HistoryOp& op) {
  if (op.pending()) return "null";
  if (op.is_config()) return R"({"outcome":"configured"})";
  std::string text;
  sim::append_d_decision(text, *op.out);
  return text;
}

std::string d_model(const sim::HistoryOp& op, const core::Decision& decision) {
  if (op.is_config()) return R"({"outcome":"configured"})";
  std::string text;
  sim::append_d_decision(text, decision);
  return text;
}

}  // namespace

ShowModel history_model(const std::vector<PoolResult>& results, std::string_view source, const ShowLimits& limits) {
  ShowModel model;
  model.source = std::string(source);
  model.kind = "SPEC H history";
  model.event_noun = "call or return";

  // Every call and return, in the order lincheck reads them: by time, calls
  // before returns at equal times (equal times overlap), then file order.
  std::vector<Endpoint> endpoints;
  std::size_t operations = 0;
  std::size_t pending = 0;
  std::set<std::string> processes;
  for (std::size_t p = 0; p < results.size(); ++p) {
    for (std::size_t i = 0; i < results[p].pool.ops.size(); ++i) {
      const sim::HistoryOp& op = results[p].pool.ops[i];
      endpoints.push_back({op.call, false, operations, {p, i}});
      if (op.ret) endpoints.push_back({*op.ret, true, operations, {p, i}});
      if (op.pending()) ++pending;
      ++operations;
      processes.insert(op.process);
    }
  }
  std::sort(endpoints.begin(), endpoints.end(), [](const Endpoint& a, const Endpoint& b) {
    return std::tie(a.at, a.ret, a.order) < std::tie(b.at, b.ret, b.order);
  });
  std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> call_index;
  std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> ret_index;
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    const auto key = std::make_pair(endpoints[e].ref.pool, endpoints[e].ref.op);
    (endpoints[e].ret ? ret_index : call_index)[key] = e;
  }

  std::vector<std::string> names(processes.begin(), processes.end());
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  std::map<std::string, std::size_t> lane_of;
  for (std::size_t i = 0; i < names.size(); ++i) {
    lane_of[names[i]] = i;
    model.lanes.push_back({names[i], LaneKind::client});
  }

  // The pool whose verdict the page is about: the first that failed, else the first.
  std::optional<std::size_t> failed;
  std::string verdicts;
  for (std::size_t p = 0; p < results.size(); ++p) {
    const sim::PoolVerdict& verdict = results[p].verdict;
    if (!failed && verdict.verdict == sim::LincheckVerdict::not_linearizable) failed = p;
    std::string text = fmt::format("pool {} {}", results[p].pool.pool, sim::verdict_name(verdict.verdict));
    if (verdict.verdict == sim::LincheckVerdict::unknown) text += fmt::format(" ({})", verdict.unknown_cause);
    verdicts += (verdicts.empty() ? "" : "; ") + text;
  }
  const std::size_t chart_pool = failed.value_or(0);
  model.total = endpoints.size();
  model.facts = {count_of(operations, "operation"), fmt::format("{} pending", pending),
                 count_of(results.size(), "pool"), count_of(names.size(), "process"),
                 fmt::format("lincheck (P14): {}", verdicts.empty() ? "no operations" : verdicts)};
  model.verdict = failed ? std::string("not linearizable")
                         : fmt::format("P14: {}", verdicts.empty() ? "nothing to check" : verdicts);
  if (!results.empty()) {
    model.held_label = fmt::format("slots held in pool {} (each answer's held)", results[chart_pool].pool.pool);
  }

  std::optional<std::uint64_t> focus = limits.around;
  std::optional<std::uint64_t> violating_end;
  if (failed) {
    const auto key = std::make_pair(*failed, results[*failed].verdict.stuck);
    if (ret_index.count(key)) violating_end = ret_index[key];
    if (!focus) focus = violating_end;
  }
  const Plan plan = plan_columns(endpoints.size(), focus, limits);
  model.columns.assign(plan.columns(), ShowColumn{});
  model.held.assign(plan.columns(), ShowHeld{});
  std::vector<Tally> tallies(plan.columns());

  std::int64_t held = 0;
  std::int64_t capacity = core::GateConfig{}.capacity;
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    const Endpoint& end = endpoints[e];
    const sim::HistoryOp& op = results[end.ref.pool].pool.ops[end.ref.op];
    const std::size_t c = plan.column_of(e);
    const bool full = plan.full(e);
    touch_column(model.columns[c], tallies[c], e, 0, end.at, !full);
    tallies[c].kinds[end.ret ? "return" : "call"] += 1;
    if (end.ret && end.ref.pool == chart_pool) {
      if (const auto* config = std::get_if<core::GateConfig>(&op.op)) capacity = config->capacity;
      if (op.out) held = op.out->held;
    }
    ShowHeld& shown = model.held[c];
    shown.peak = shown.known ? std::max(shown.peak, held) : held;
    shown.known = true;
    shown.held = held;
    shown.capacity = capacity;
    if (!full) continue;
    ShowColumn& column = model.columns[c];
    column.lane = lane_of[op.process];
    column.text = end.ret ? fmt::format("{} returns from {}: {} (line {})", op.process, short_op(op), answer_of(op),
                                        op.line)
                          : fmt::format("{} calls {} (line {})", op.process, long_op(op), op.line);
    column.detail = fmt::format("{}\n{}", column.text, sim::format_history_line(op));
  }
  finish_summaries(model, tallies, "call or return", "");

  for (std::size_t p = 0; p < results.size(); ++p) {
    for (std::size_t i = 0; i < results[p].pool.ops.size(); ++i) {
      const sim::HistoryOp& op = results[p].pool.ops[i];
      const auto key = std::make_pair(p, i);
      const std::uint64_t from = call_index[key];
      const bool ended = ret_index.count(key) > 0;
      const std::uint64_t to = ended ? ret_index[key] : endpoints.size() - 1;
      if (!plan.overlaps(from, to)) continue;
      ShowBar bar;
      bar.lane = lane_of[op.process];
      bar.from = plan.column_of(from);
      bar.to = plan.column_of(to);
      bar.open_start = !plan.full(from);
      bar.open_end = !ended || !plan.full(to);
      bar.tone = history_tone(op);
      bar.violating = failed && *failed == p && results[p].verdict.stuck == i;
      if (bar.violating) bar.tone = Tone::bad;
      bar.label = fmt::format("{} {}", short_op(op),
                              op.pending() ? std::string("?")
                                           : (op.is_config() ? std::string("ok")
                                                             : std::string(core::outcome_name(op.out->outcome))));
      bar.detail = fmt::format("line {}: {} calls {} at {}, {}\nanswer: {}\n{}", op.line, op.process, long_op(op),
                               op.call, op.ret ? fmt::format("returns at {}", *op.ret) : std::string("never returns"),
                               answer_of(op), sim::format_history_line(op));
      model.bars.push_back(std::move(bar));
    }
  }

  if (failed && violating_end) {
    const sim::PoolVerdict& verdict = results[*failed].verdict;
    const sim::HistoryOp& stuck = results[*failed].pool.ops[verdict.stuck];
    ShowViolation shown;
    shown.rule = "P14";
    shown.rule_text = spec_rule_text("P14");
    shown.message = fmt::format(
        "pool {}: line {} ({} {}) recorded {}, but the gate answers {} after an order of the operations before it; "
        "no order explains the {} operations called before it returned{}",
        results[*failed].pool.pool, stuck.line, stuck.process, short_op(stuck), d_out(stuck),
        d_model(stuck, verdict.model_out), verdict.prefix_ops,
        verdict.minimized ? "" : " (a limit ran out before the shortest such prefix was found)");
    shown.where = fmt::format("line {}, returned at {}", stuck.line, stuck.ret.value_or(stuck.call));
    shown.column = plan.column_of(*violating_end);
    shown.lane = lane_of[stuck.process];
    model.violation = std::move(shown);
  }
  model.summary_note =
      summary_note(plan, "call or return",
                   limits.around ? fmt::format("around {}", *limits.around)
                                 : (failed ? std::string("around the operation lincheck got stuck on")
                                           : std::string("from the start")));
  return model;
}

}  // namespace turnstile::cli
