#include "cli/show_columns.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace turnstile::cli::show_detail {
namespace {

std::string join_counts(const std::map<std::string, std::uint64_t>& counts) {
  std::string text;
  for (const auto& [name, count] : counts) text += fmt::format("{}{} {}", text.empty() ? "" : ", ", name, count);
  return text;
}

}  // namespace

Plan plan_columns(std::uint64_t total, std::optional<std::uint64_t> focus, const ShowLimits& limits) {
  Plan plan;
  plan.total = total;
  plan.hi = total;
  const std::uint64_t detail = std::max<std::uint64_t>(1, limits.detail);
  if (total <= detail) return plan;
  // More of the window before the focus than after it: a violation's cause
  // comes before it.
  const std::uint64_t f = std::min(total - 1, focus.value_or(0));
  const std::uint64_t lead = detail * 3 / 4;
  plan.lo = f > lead ? f - lead : 0;
  plan.hi = std::min(total, plan.lo + detail);
  plan.lo = plan.hi - detail;
  plan.before = std::min<std::uint64_t>(plan.lo, limits.buckets);
  plan.after = std::min<std::uint64_t>(total - plan.hi, limits.buckets);
  return plan;
}

std::string count_of(std::uint64_t count, std::string_view noun) {
  if (count == 1) return fmt::format("1 {}", noun);
  if (noun == "call or return") return fmt::format("{} calls and returns", count);
  return fmt::format("{} {}{}", count, noun, noun.ends_with('s') ? "es" : "s");
}

void touch_column(ShowColumn& column, Tally& tally, std::uint64_t index, std::uint64_t step, std::int64_t at,
                  bool summary) {
  if (!tally.started) {
    tally.started = true;
    tally.first_at = at;
    tally.first_step = step;
    column.first = index;
    column.count = 0;
    column.summary = summary;
  }
  column.count += 1;
  column.at = at;
  column.step = step;
}

void finish_summaries(ShowModel& model, std::vector<Tally>& tallies, std::string_view noun,
                      std::string_view unit) {
  for (std::size_t c = 0; c < model.columns.size(); ++c) {
    ShowColumn& column = model.columns[c];
    if (!column.summary) continue;
    const Tally& tally = tallies[c];
    const std::string unit_text = unit.empty() ? "" : fmt::format(" {}", unit);
    column.text = fmt::format("{} summarised ({}..{}{}): {}", count_of(column.count, noun), tally.first_at,
                              column.at, unit_text, join_counts(tally.kinds));
    column.detail = fmt::format("{}, {} to {}, summarised\ntime {} to {}{}\nby kind: {}", count_of(column.count, noun),
                                column.first, column.first + column.count - 1, tally.first_at, column.at, unit_text,
                                join_counts(tally.kinds));
    if (!tally.faults.empty()) column.detail += fmt::format("\nfaults: {}", join_counts(tally.faults));
    for (const auto& [lane, count] : tally.fault_lanes) {
      ShowMark mark;
      mark.lane = lane;
      mark.column = c;
      mark.shape = MarkShape::fault;
      mark.tone = Tone::bad;
      mark.label = fmt::format("{} faults", count);
      mark.detail = fmt::format("{} in {} summarised: {}", count_of(count, "fault"), count_of(column.count, noun),
                                join_counts(tally.faults));
      model.marks.push_back(std::move(mark));
    }
  }
}

std::string summary_note(const Plan& plan, std::string_view noun, std::string_view focus) {
  if (plan.lo == 0 && plan.hi == plan.total) return {};
  return fmt::format(
      "{}: {} to {} drawn in full ({}), the {} before in {} summary columns and the {} after in {}; "
      "--detail N and --around E choose another window.",
      count_of(plan.total, noun), plan.lo, plan.hi - 1, focus, plan.lo, plan.before, plan.total - plan.hi, plan.after);
}

}  // namespace turnstile::cli::show_detail
