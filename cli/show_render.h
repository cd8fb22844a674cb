#pragma once

// The pictures `turnstile show` draws (docs/show.md): a timeline model and
// two renderings of it, a self-contained HTML page and a terminal listing.
// Both are pure functions from the model to a string; cli/show_command
// builds the model from a trace or a history. Nothing here reads a file.
//
// The horizontal axis is the order of events, one column per event, not
// virtual time: a race happens between events at the same instant (the
// legacy gate's over-admission is three admits at 0 ms), so a time axis
// would draw it as one line. Each column carries its time as a label.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace turnstile::cli {

inline constexpr std::size_t kNoLane = static_cast<std::size_t>(-1);

enum class LaneKind : std::uint8_t { client, store, broker };

struct ShowLane {
  std::string name;  // a client id or process name, "store", "broker"
  LaneKind kind = LaneKind::client;
};

// One column: one event in full, or a run of events summarised.
struct ShowColumn {
  std::int64_t at = 0;        // the time at its (last) event
  std::uint64_t step = 0;     // the scheduler step of its (last) event; traces only
  std::uint64_t first = 0;    // the index of its (first) event in the input
  std::uint64_t count = 1;    // how many events it stands for
  bool summary = false;       // true: `count` events aggregated
  std::size_t lane = kNoLane; // the lane its event belongs to (full columns)
  std::string text;           // one line: the event, or what the summary holds
  std::string detail;         // the event's every field, or the summary's breakdown
};

// How a bar or mark is coloured.
enum class Tone : std::uint8_t { neutral, good, warn, bad };

// An operation from its call to its return: a request to its answer, a
// dependency call to its result, a history operation.
struct ShowBar {
  std::size_t lane = 0;
  std::size_t from = 0;     // its first column
  std::size_t to = 0;       // its last column (>= from)
  bool open_start = false;  // began before the first column drawn in full
  bool open_end = false;    // still running at the end (pending), or ends in a summary
  Tone tone = Tone::neutral;
  std::string label;        // short text drawn on the bar
  std::string detail;       // both ends' every field
  bool violating = false;   // an end of it is the violating event
};

enum class MarkShape : std::uint8_t {
  tick,     // a small event on a lane (a flight starting, a waiter leaving)
  diamond,  // a gate step applied by the store
  fault,    // a fault site fired
  restart,  // the store lost its data
  heal,     // faults healed: drawn across every lane
};

struct ShowMark {
  std::size_t lane = 0;
  std::size_t column = 0;
  MarkShape shape = MarkShape::tick;
  Tone tone = Tone::neutral;
  std::string label;
  std::string detail;
  bool violating = false;
};

// Slots held after a column's events, and the most held during them.
struct ShowHeld {
  bool known = false;
  std::int64_t held = 0;
  std::int64_t peak = 0;
  std::int64_t capacity = 0;
};

struct ShowViolation {
  std::string rule;        // "P1", "P14", "G14"
  std::string rule_text;   // SPEC's text of the rule (spec_rule_text)
  std::string message;     // what was expected and what happened
  std::string where;       // "step 26, 0 ms, event 15"
  std::size_t column = 0;
  std::size_t lane = kNoLane;
};

struct ShowModel {
  std::string source;              // the file drawn
  std::string kind;                // "simulator trace", "history (SPEC H)", "check trace"
  std::vector<std::string> facts;  // "seed 0", "gate legacy", ...
  std::string verdict;             // one line
  std::string time_unit;           // "ms", or empty for a history's own clock
  std::string event_noun;          // "event", "call or return", "step"
  bool has_steps = false;          // columns carry a scheduler step (simulator traces)
  std::uint64_t total = 0;         // events in the input
  std::string summary_note;        // empty when every event is drawn in full
  std::vector<ShowLane> lanes;
  std::vector<ShowColumn> columns;
  std::vector<ShowBar> bars;
  std::vector<ShowMark> marks;
  std::vector<ShowHeld> held;      // one per column, or empty: no slots chart
  std::string held_label;          // "slots held in pool p"
  std::optional<ShowViolation> violation;
};

// The page: one HTML file with its style and its small script inline, no
// reference to anything outside it.
std::string render_html(const ShowModel& model);

// The same timeline for a terminal: one line per column, the lanes as
// columns of glyphs when there are few enough, the violation marked.
std::string render_text(const ShowModel& model);

// SPEC's text of a rule (sim::rule_text), followed by the text of the G, C
// or F rule it cites, if any: "capacity (G14). G14: Invariant after every
// operation: ...". Empty for an unknown rule.
std::string spec_rule_text(std::string_view rule);

// Orders names as a person counts: "c2" before "c10".
bool natural_less(std::string_view a, std::string_view b);

}  // namespace turnstile::cli
