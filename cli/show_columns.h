#pragma once

// Internal to `turnstile show`, not public API (that is cli/show_command.h):
// which events of an input get a column of their own and which share a
// summary column, and what a summary column counts. The three models, of a
// simulator trace, of a check trace and of a history, plan their columns
// with these.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/show_command.h"
#include "cli/show_render.h"

namespace turnstile::cli::show_detail {

// Which events get a column of their own and which share a summary column:
// [lo, hi) in full, `before` summary columns for [0, lo) and `after` for
// [hi, total).
struct Plan {
  std::uint64_t total = 0;
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  std::uint64_t before = 0;
  std::uint64_t after = 0;

  std::size_t columns() const { return static_cast<std::size_t>(before + (hi - lo) + after); }
  bool full(std::uint64_t i) const { return i >= lo && i < hi; }
  std::size_t column_of(std::uint64_t i) const {
    if (i < lo) return static_cast<std::size_t>(i * before / lo);
    if (i < hi) return static_cast<std::size_t>(before + (i - lo));
    return static_cast<std::size_t>(before + (hi - lo) + (i - hi) * after / (total - hi));
  }
  // Whether an operation from event `from` to event `to` reaches the window.
  bool overlaps(std::uint64_t from, std::uint64_t to) const { return to >= lo && from < hi; }
};

// The plan for `total` events: every one in full when they fit in
// `limits.detail`, else a window of that many around `focus`.
Plan plan_columns(std::uint64_t total, std::optional<std::uint64_t> focus, const ShowLimits& limits);

// What a summary column counts.
struct Tally {
  std::map<std::string, std::uint64_t> kinds;
  std::map<std::string, std::uint64_t> faults;
  std::map<std::size_t, std::uint64_t> fault_lanes;  // lane -> faults on it
  std::int64_t first_at = 0;
  std::uint64_t first_step = 0;
  bool started = false;
};

// "3 events", "1 pool", "2 calls and returns".
std::string count_of(std::uint64_t count, std::string_view noun);

// Starts or extends a column for event `index`.
void touch_column(ShowColumn& column, Tally& tally, std::uint64_t index, std::uint64_t step, std::int64_t at,
                  bool summary);

// Writes each summary column's text and detail from its tally, and a fault
// mark on every lane that had faults in it; `unit` is the time's, or empty.
void finish_summaries(ShowModel& model, std::vector<Tally>& tallies, std::string_view noun,
                      std::string_view unit);

// The model's summary_note: empty when every event is drawn in full, else
// which are and where the rest went; `focus` says what the window is around.
std::string summary_note(const Plan& plan, std::string_view noun, std::string_view focus);

}  // namespace turnstile::cli::show_detail
