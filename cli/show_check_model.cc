// check_trace_model (cli/show_command.h): a model checker's counterexample
// (sim/check_trace.h) as a timeline, a lane per client and one for the store.

#include "cli/show_command.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/show_columns.h"
#include "cli/show_ops.h"
#include "sim/describe.h"

namespace turnstile::cli {

using show_detail::count_of;
using show_detail::finish_summaries;
using show_detail::Open;
using show_detail::Plan;
using show_detail::plan_columns;
using show_detail::summary_note;
using show_detail::Tally;
using show_detail::touch_column;

ShowModel check_trace_model(const sim::CheckTrace& trace, std::string_view source, const ShowLimits& limits) {
  const sim::CheckConfig& config = trace.config;
  ShowModel model;
  model.source = std::string(source);
  model.kind = "model checker trace";
  model.time_unit = "ms";
  model.event_noun = "step";
  model.total = trace.steps.size();
  model.facts = {fmt::format("gate {}", sim::gate_mode_name(config.gate)),
                 count_of(static_cast<std::uint64_t>(config.clients), "client"),
                 fmt::format("capacity {}", config.capacity),
                 count_of(static_cast<std::uint64_t>(config.rounds), "round"),
                 fmt::format("ttl {} ms", config.ttl_ms),
                 fmt::format("grace {} ms", config.grace_ms),
                 fmt::format("max {} ticks", config.max_ticks),
                 fmt::format("{} states", trace.states),
                 fmt::format("{} transitions", trace.transitions),
                 fmt::format("depth {}", trace.depth)};
  model.verdict = std::string(sim::verdict_name(trace.verdict));
  if (trace.verdict == sim::CheckVerdict::verified) {
    model.verdict = fmt::format("verified: no violation of {} in the whole state space", sim::kCheckRules);
  }
  model.held_label = fmt::format("slots held in pool {}", sim::kCheckPool);
  for (int i = 0; i < config.clients; ++i) model.lanes.push_back({sim::check_client_name(i), LaneKind::client});
  const std::size_t store = model.lanes.size();
  model.lanes.push_back({"store", LaneKind::store});

  // The counterexample is shortest: its last step is the one that broke the rule.
  std::optional<std::uint64_t> focus = limits.around;
  const bool violated = trace.violation && !trace.steps.empty();
  if (!focus && violated) focus = trace.steps.size() - 1;
  const Plan plan = plan_columns(trace.steps.size(), focus, limits);
  model.columns.assign(plan.columns(), ShowColumn{});
  model.held.assign(plan.columns(), ShowHeld{});
  std::vector<Tally> tallies(plan.columns());

  std::map<int, Open> reads;  // a legacy admit's read, until its write
  std::int64_t held = 0;
  for (std::size_t i = 0; i < trace.steps.size(); ++i) {
    const sim::CheckStep& step = trace.steps[i];
    const std::size_t c = plan.column_of(i);
    const bool full = plan.full(i);
    const bool violating = violated && i + 1 == trace.steps.size();
    touch_column(model.columns[c], tallies[c], i + 1, 0, step.now, !full);
    model.columns[c].step = i + 1;
    const std::string action(sim::action_name(step.action));
    tallies[c].kinds[action] += 1;

    const std::size_t lane =
        step.client >= 0 && static_cast<std::size_t>(step.client) < store ? static_cast<std::size_t>(step.client) : store;
    std::string text;
    if (step.action == sim::CheckAction::tick) {
      text = fmt::format("tick: the clock is now {} ms", step.now);
    } else {
      text = fmt::format("{} {}: {}", model.lanes[lane].name, action,
                         step.op ? sim::describe_op(*step.op) : std::string("(no op)"));
      if (step.decision) {
        text += fmt::format(" -> {}{}", sim::describe_decision(*step.decision),
                            step.wrote ? fmt::format(", {} held", step.decision->held)
                                       : std::string(" (the route's local decision; nothing written yet)"));
      }
    }
    const std::string detail =
        fmt::format("{}\nstep {}, {} ms\n{}", text, i + 1, step.now, sim::check_step_json(i + 1, step));
    if (step.wrote && step.decision) held = step.decision->held;
    ShowHeld& shown = model.held[c];
    shown.peak = shown.known ? std::max(shown.peak, held) : held;
    shown.known = true;
    shown.held = held;
    shown.capacity = config.capacity;
    if (full) {
      model.columns[c].lane = step.action == sim::CheckAction::tick ? store : lane;
      model.columns[c].text = text;
      model.columns[c].detail = detail;
    }

    auto mark = [&](std::size_t on, MarkShape shape, Tone tone, std::string label, bool is_violating) {
      if (!full) return;
      model.marks.push_back({on, c, shape, tone, std::move(label), detail, is_violating});
    };
    const Tone tone = step.decision && step.wrote && step.decision->held > config.capacity ? Tone::bad : Tone::good;
    switch (step.action) {
      case sim::CheckAction::tick:
        mark(store, MarkShape::tick, Tone::neutral, "tick", violating);
        break;
      case sim::CheckAction::admit_read:
        if (!step.wrote) {
          reads[step.client] = Open{i, lane, "admit", detail};
          mark(store, MarkShape::tick, Tone::neutral, "read", false);
          break;
        }
        [[fallthrough]];
      case sim::CheckAction::admit:
      case sim::CheckAction::heartbeat:
      case sim::CheckAction::release:
        mark(lane, MarkShape::tick, tone, action, false);
        mark(store, MarkShape::diamond, tone, action, violating);
        break;
      case sim::CheckAction::admit_write: {
        mark(store, MarkShape::diamond, tone, "write", violating);
        const auto read = reads.find(step.client);
        if (read == reads.end()) break;
        if (plan.overlaps(read->second.from, i)) {
          ShowBar bar;
          bar.lane = lane;
          bar.from = plan.column_of(read->second.from);
          bar.to = c;
          bar.open_start = !plan.full(read->second.from);
          bar.tone = tone;
          bar.label = step.decision ? fmt::format("admit {}", core::outcome_name(step.decision->outcome)) : "admit";
          bar.detail = read->second.detail + "\n\n" + detail;
          bar.violating = violating;
          model.bars.push_back(std::move(bar));
        }
        reads.erase(read);
        break;
      }
    }
  }
  for (const auto& [client, read] : reads) {
    if (!plan.overlaps(read.from, trace.steps.size() - 1)) continue;
    ShowBar bar;
    bar.lane = read.lane;
    bar.from = plan.column_of(read.from);
    bar.to = plan.columns() - 1;
    bar.open_end = true;
    bar.label = "admit (not written)";
    bar.detail = read.detail + "\n\n(its write had not run when the trace ends)";
    model.bars.push_back(std::move(bar));
  }
  finish_summaries(model, tallies, "step", "ms");

  if (violated) {
    ShowViolation shown;
    shown.rule = trace.violation->rule;
    shown.rule_text = spec_rule_text(trace.violation->rule);
    shown.message = trace.violation->message;
    shown.where = fmt::format("step {}, {} ms", trace.steps.size(), trace.steps.back().now);
    shown.column = plan.column_of(trace.steps.size() - 1);
    shown.lane = store;
    model.violation = std::move(shown);
  }
  model.summary_note = summary_note(plan, "step", "around the violation");
  return model;
}

}  // namespace turnstile::cli
