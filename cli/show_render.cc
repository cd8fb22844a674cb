#include "cli/show_render.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>

#include <fmt/format.h>

#include "sim/checkers.h"

namespace turnstile::cli {
namespace {

// SPEC's text of the rules that the P rules cite, so that a violation
// shows what was promised and not only its name.
struct CitedRule {
  std::string_view rule;
  std::string_view text;
};

constexpr std::array<CitedRule, 9> kCitedRules = {{
    {"G2", "Prune: every gone session is removed (its token dies)."},
    {"G3",
     "Replay: if the client has a session whose last_request equals this request id, return last_decision "
     "unchanged; change nothing else."},
    {"G4",
     "Superseded: if the client has a session and (issued_at, request) < (last_issued, last_request), the request "
     "is older than the intent already applied: outcome superseded, no change."},
    {"G7",
     "Rotation: else, if any session is idle, the oldest idle one is removed and the newcomer is rotated in with a "
     "new token. Oldest = smallest last_seen, then smallest admitted_at, then smallest client id. Live sessions are "
     "never rotated."},
    {"G11",
     "heartbeat(client, token): if the client's session has that token, alive; else gone. A dead token never comes "
     "back."},
    {"G14",
     "Invariant after every operation: slots held <= max(C, slots held before the operation); at most one session "
     "per client; every session that is live at the operation's now still exists afterwards (possibly switched by "
     "its owner) unless G12 released it."},
    {"C6", "At quiescence (no request in progress) the flight table is empty."},
    {"F5",
     "A flight that newly admitted (admitted, rotated, switched) and whose broker resolve failed releases its token "
     "(G12) before answering."},
    {"F6",
     "Every request is answered exactly once, no later than store B + broker B + release B after it arrived."},
}};

std::string_view cited_text(std::string_view rule) {
  for (const CitedRule& cited : kCitedRules) {
    if (cited.rule == rule) return cited.text;
  }
  return {};
}

// ------------------------------------------------------------------ shared

// Escapes text for HTML. In attribute values (`quotes`) quotes are escaped
// too; text between tags needs only &, < and > escaped, which keeps the JSON
// in hover texts half the size. The "//" of a URL in the input (a stream URL,
// say) is written as ":&#47;/": it reads the same, and the page's source
// holds no address.
void append_html(std::string& out, std::string_view text, bool quotes) {
  char previous = 0;
  for (char c : text) {
    if (c == '/' && previous == ':') {
      out += "&#47;";
      previous = c;
      continue;
    }
    previous = c;
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += quotes ? "&quot;" : "\"";
        break;
      case '\'':
        out += quotes ? "&#39;" : "'";
        break;
      default:
        out += c;
    }
  }
}

void append_escaped(std::string& out, std::string_view text) { append_html(out, text, true); }
void append_text_escaped(std::string& out, std::string_view text) { append_html(out, text, false); }

std::string text_escaped(std::string_view text) {
  std::string out;
  append_text_escaped(out, text);
  return out;
}

std::string escaped(std::string_view text) {
  std::string out;
  append_escaped(out, text);
  return out;
}

// Cuts text to at most `max` bytes at a UTF-8 character boundary.
std::string_view cut(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string column_events(const ShowColumn& column) {
  if (column.count <= 1) return fmt::format("{}", column.first);
  return fmt::format("{}-{}", column.first, column.first + column.count - 1);
}

std::string held_text(const ShowHeld& held, bool summary) {
  if (!held.known) return "";
  std::string text = summary && held.peak != held.held ? fmt::format("{}-{}/{}", std::min(held.held, held.peak),
                                                                     held.peak, held.capacity)
                                                       : fmt::format("{}/{}", held.held, held.capacity);
  if (held.peak > held.capacity) text += '!';
  return text;
}

// Which sub-row of its lane each bar takes: the first row free at its first
// column, so that overlapping operations of one lane stack instead of
// hiding each other. Rows past kMaxRows share the last one.
constexpr std::size_t kMaxRows = 6;

struct Packing {
  std::vector<std::size_t> row_of_bar;
  std::vector<std::size_t> rows_of_lane;
};

Packing pack_bars(const ShowModel& model) {
  Packing packing;
  packing.row_of_bar.assign(model.bars.size(), 0);
  packing.rows_of_lane.assign(model.lanes.size(), 1);
  std::vector<std::size_t> order(model.bars.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return model.bars[a].from < model.bars[b].from; });
  // The last column each row of each lane is busy until (exclusive).
  std::vector<std::vector<std::size_t>> busy(model.lanes.size());
  for (std::size_t index : order) {
    const ShowBar& bar = model.bars[index];
    if (bar.lane >= busy.size()) continue;
    auto& rows = busy[bar.lane];
    std::size_t row = 0;
    while (row < rows.size() && rows[row] > bar.from) ++row;
    if (row == rows.size()) {
      if (rows.size() < kMaxRows) {
        rows.push_back(0);
      } else {
        row = kMaxRows - 1;
      }
    }
    rows[row] = std::max(rows[row], bar.to + 1);
    packing.row_of_bar[index] = row;
    packing.rows_of_lane[bar.lane] = std::max(packing.rows_of_lane[bar.lane], row + 1);
  }
  return packing;
}

// ------------------------------------------------------------------ HTML

constexpr double kFullWidth = 16;
constexpr double kMaxFullWidth = 120;
constexpr double kTargetWidth = 1000;
// Marks sit in a strip at the top of their lane, bars in rows below it.
constexpr double kMarkStrip = 16;
constexpr double kSummaryWidth = 44;
constexpr double kLabelWidth = 150;
constexpr double kRowHeight = 20;
constexpr double kLanePad = 5;
constexpr double kAxisHeight = 40;
constexpr double kChartHeight = 110;
constexpr double kChartGap = 16;
constexpr double kCharWidth = 6.2;
// Hover text longer than this is cut: a gate step carries the whole pool
// twice, and a few hundred of those would make the page heavy.
constexpr std::size_t kMaxDetailBytes = 1000;

struct Geometry {
  std::vector<double> x;  // each column's left edge
  std::vector<double> w;  // each column's width
  double width = 0;
  std::vector<double> lane_y;
  std::vector<double> lane_h;
  double lanes_bottom = 0;
  double chart_y = 0;
  double height = 0;
  Packing packing;
};

Geometry layout(const ShowModel& model) {
  Geometry g;
  g.x.reserve(model.columns.size());
  // A short timeline is stretched to a readable width; a long one scrolls.
  std::size_t full = 0;
  for (const ShowColumn& column : model.columns) full += column.summary ? 0 : 1;
  const double summaries = static_cast<double>(model.columns.size() - full) * kSummaryWidth;
  const double full_width =
      full == 0 ? kFullWidth
                : std::clamp((kTargetWidth - summaries) / static_cast<double>(full), kFullWidth, kMaxFullWidth);
  for (const ShowColumn& column : model.columns) {
    g.x.push_back(g.width);
    g.w.push_back(column.summary ? kSummaryWidth : full_width);
    g.width += g.w.back();
  }
  g.width = std::max(g.width, 200.0);
  g.packing = pack_bars(model);
  double y = kAxisHeight;
  for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
    g.lane_y.push_back(y);
    g.lane_h.push_back(kMarkStrip + static_cast<double>(g.packing.rows_of_lane[lane]) * kRowHeight + 2 * kLanePad);
    y += g.lane_h.back();
  }
  g.lanes_bottom = y;
  g.chart_y = y + kChartGap;
  g.height = model.held.empty() ? y + 8 : g.chart_y + kChartHeight + 24;
  return g;
}

struct ToneColours {
  std::string_view fill;
  std::string_view stroke;
};

ToneColours colours(Tone tone) {
  switch (tone) {
    case Tone::good:
      return {"#8ddb8c", "#1a7f37"};
    case Tone::warn:
      return {"#f5d76e", "#9a6700"};
    case Tone::bad:
      return {"#ff8182", "#cf222e"};
    case Tone::neutral:
      break;
  }
  return {"#d0d7de", "#57606a"};
}

constexpr std::string_view kHead = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<script>
window.onerror = function (message, where, line) {
  var box = document.createElement('div');
  box.id = 'script-error';
  box.textContent = 'script error: ' + message + ' (' + where + ':' + line + ')';
  (document.body || document.documentElement).appendChild(box);
};
</script>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 20px;color:#1f2328;background:#fff}
h1{font-size:19px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 6px}
.facts{color:#57606a;margin:0 0 8px}
.violation{border:2px solid #cf222e;background:#ffebe9;border-radius:6px;padding:8px 12px;margin:8px 0}
.violation .rule{margin-top:4px} .violation .msg{font-family:ui-monospace,monospace;font-size:12px;margin-top:4px}
.pass{border:2px solid #1a7f37;background:#dafbe1;border-radius:6px;padding:8px 12px;margin:8px 0}
.note{color:#9a6700}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;border:1px solid #57606a}
.timeline{display:flex;border:1px solid #d0d7de;border-radius:6px;background:#fff}
.labels{flex:none;border-right:1px solid #d0d7de;background:#f6f8fa}
#scroller{overflow-x:auto;flex:1}
svg text{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.ev{cursor:pointer} .ev:hover rect.bar,.ev:hover .shape{stroke-width:2.5}
.violating rect.bar,.violating .shape{stroke:#cf222e;stroke-width:3}
#detail{border:1px solid #d0d7de;border-radius:6px;margin:10px 0;padding:6px 10px;background:#f6f8fa}
#detail pre{margin:4px 0 0;white-space:pre-wrap;word-break:break-all;font-size:12px;max-height:9em;overflow:auto}
table{border-collapse:collapse;font-size:12px} td,th{border-bottom:1px solid #eaeef2;padding:1px 8px;text-align:left}
td.n{text-align:right;font-family:ui-monospace,monospace} td.t{font-family:ui-monospace,monospace}
tr.summary td{color:#57606a;font-style:italic;background:#f6f8fa}
tr.violating td{background:#ffebe9;font-weight:600}
#script-error{background:#cf222e;color:#fff;padding:6px}
</style></head><body>
)";

void append_legend(std::string& out, const ShowModel& model) {
  out += R"(<p class="legend">)";
  auto swatch = [&](Tone tone, std::string_view text) {
    const ToneColours c = colours(tone);
    fmt::format_to(std::back_inserter(out), R"(<span><i class="sw" style="background:{}"></i>{}</span>)", c.fill,
                   text);
  };
  swatch(Tone::good, "granted, success");
  swatch(Tone::warn, "denied, transient, blocked");
  swatch(Tone::bad, "failed, fault");
  swatch(Tone::neutral, "other, pending (dashed: no end)");
  out += R"(<span>&#9670; gate step</span><span>&#9650; fault</span>)";
  out += R"(<span><i class="sw" style="background:#fbe3e4;border-color:#cf222e"></i>the violation</span>)";
  if (!model.summary_note.empty()) out += R"(<span><i class="sw" style="background:#eaeef2"></i>summarised</span>)";
  out += "</p>\n";
}

void append_header(std::string& out, const ShowModel& model) {
  fmt::format_to(std::back_inserter(out), "<h1>turnstile show: {}</h1>\n", escaped(model.source));
  out += R"(<p class="facts">)";
  append_escaped(out, model.kind);
  for (const std::string& fact : model.facts) {
    out += " &middot; ";
    append_escaped(out, fact);
  }
  out += "</p>\n";
  if (model.violation) {
    const ShowViolation& v = *model.violation;
    fmt::format_to(std::back_inserter(out),
                   R"(<div id="violation" class="violation"><b>{} violated</b> at {})"
                   R"(<div class="rule" id="rule-text"><b>rule {}:</b> {}</div>)"
                   R"(<div class="msg">{}</div></div>)",
                   escaped(v.rule), escaped(v.where), escaped(v.rule), escaped(v.rule_text), escaped(v.message));
    out += '\n';
  } else {
    fmt::format_to(std::back_inserter(out), R"(<div id="verdict" class="pass">{}</div>)", escaped(model.verdict));
    out += '\n';
  }
  if (!model.summary_note.empty()) {
    fmt::format_to(std::back_inserter(out), R"(<p class="note" id="summary-note">{}</p>)",
                   escaped(model.summary_note));
    out += '\n';
  }
}

// The lane names, in an SVG that does not scroll.
void append_labels(std::string& out, const ShowModel& model, const Geometry& g) {
  fmt::format_to(std::back_inserter(out),
                 R"(<div class="labels"><svg id="lane-labels" width="{}" height="{:.0f}">)",
                 kLabelWidth, g.height);
  out += '\n';
  fmt::format_to(std::back_inserter(out),
                 R"(<text x="6" y="15" font-size="11" fill="#57606a">time{}</text>)"
                 R"(<text x="6" y="32" font-size="11" fill="#57606a">{}</text>)",
                 model.time_unit.empty() ? "" : " " + model.time_unit, escaped(model.event_noun));
  out += '\n';
  for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
    const ShowLane& l = model.lanes[lane];
    const bool service = l.kind != LaneKind::client;
    fmt::format_to(std::back_inserter(out),
                   R"(<text class="lane-label" data-lane="{}" x="8" y="{:.1f}" font-size="12"{}>{}</text>)",
                   escaped(l.name), g.lane_y[lane] + kLanePad + kMarkStrip / 2 + 5, service ? R"( font-weight="bold")" : "",
                   escaped(std::string(cut(l.name, 20))));
    out += '\n';
  }
  if (!model.held.empty()) {
    fmt::format_to(std::back_inserter(out),
                   R"(<text x="6" y="{:.1f}" font-size="11" fill="#57606a">slots held</text>)"
                   R"(<text x="6" y="{:.1f}" font-size="11" fill="#57606a">vs capacity</text>)",
                   g.chart_y + 14, g.chart_y + 28);
    out += '\n';
  }
  out += "</svg></div>\n";
}

void append_axis(std::string& out, const ShowModel& model, const Geometry& g) {
  double time_free = -1;
  double index_free = -1;
  std::optional<std::int64_t> last_time;
  for (std::size_t c = 0; c < model.columns.size(); ++c) {
    const ShowColumn& column = model.columns[c];
    if (!last_time || *last_time != column.at) {
      const std::string label = fmt::format("{}", column.at);
      if (g.x[c] >= time_free) {
        fmt::format_to(std::back_inserter(out),
                       R"(<line x1="{0:.1f}" x2="{0:.1f}" y1="4" y2="{1:.1f}" stroke="#eaeef2"/>)"
                       R"(<text x="{2:.1f}" y="15" font-size="10" fill="#57606a">{3}</text>)",
                       g.x[c], g.lanes_bottom, g.x[c] + 2, label);
        out += '\n';
        time_free = g.x[c] + static_cast<double>(label.size()) * kCharWidth + 8;
      }
      last_time = column.at;
    }
    const bool round = column.summary || column.first % 10 == 0;
    if (round && g.x[c] >= index_free) {
      const std::string label = column.summary ? fmt::format("{}+", column.first) : fmt::format("{}", column.first);
      fmt::format_to(std::back_inserter(out), R"(<text x="{:.1f}" y="32" font-size="10" fill="#8c959f">{}</text>)",
                     g.x[c] + 1, label);
      index_free = g.x[c] + static_cast<double>(label.size()) * kCharWidth + 6;
    }
  }
  out += '\n';
}

void append_lane_backgrounds(std::string& out, const ShowModel& model, const Geometry& g) {
  for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
    fmt::format_to(std::back_inserter(out),
                   R"(<rect class="lane" data-lane="{}" x="0" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>)",
                   escaped(model.lanes[lane].name), g.lane_y[lane], g.width, g.lane_h[lane],
                   lane % 2 == 0 ? "#ffffff" : "#f6f8fa");
    out += '\n';
  }
  for (std::size_t c = 0; c < model.columns.size(); ++c) {
    const ShowColumn& column = model.columns[c];
    if (!column.summary) continue;
    const double top = kAxisHeight;
    fmt::format_to(std::back_inserter(out),
                   R"(<g class="ev summary"><title>{}</title><rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#eaeef2" stroke="#d0d7de"/>)"
                   R"x(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#57606a" transform="rotate(-90 {:.1f} {:.1f})">{} events</text></g>)x",
                   text_escaped(cut(column.detail, kMaxDetailBytes)), g.x[c] + 1, top, g.w[c] - 2, g.lanes_bottom - top,
                   g.x[c] + 26, g.lanes_bottom - 6, g.x[c] + 26, g.lanes_bottom - 6, column.count);
    out += '\n';
  }
}

void append_bars(std::string& out, const ShowModel& model, const Geometry& g) {
  for (std::size_t i = 0; i < model.bars.size(); ++i) {
    const ShowBar& bar = model.bars[i];
    if (bar.lane >= model.lanes.size() || bar.to >= model.columns.size() || bar.from > bar.to) continue;
    const double x1 = g.x[bar.from] + (bar.open_start ? 0.0 : 2.0);
    const double x2 = g.x[bar.to] + g.w[bar.to] - (bar.open_end ? 0.0 : 2.0);
    const double y =
        g.lane_y[bar.lane] + kLanePad + kMarkStrip + static_cast<double>(g.packing.row_of_bar[i]) * kRowHeight + 2;
    const ToneColours c = colours(bar.tone);
    fmt::format_to(std::back_inserter(out),
                   R"(<g class="ev bar{}" data-col="{}"><title>{}</title>)"
                   R"(<rect class="bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" rx="3" fill="{}" stroke="{}"{}/>)",
                   bar.violating ? " violating" : "", bar.from, text_escaped(cut(bar.detail, kMaxDetailBytes)), x1, y,
                   std::max(2.0, x2 - x1), kRowHeight - 4, c.fill, c.stroke,
                   bar.open_end ? R"( stroke-dasharray="4 2")" : "");
    const auto fits = static_cast<std::size_t>(std::max(0.0, (x2 - x1 - 4) / kCharWidth));
    if (fits >= 3 && !bar.label.empty()) {
      fmt::format_to(std::back_inserter(out), R"(<text x="{:.1f}" y="{:.1f}" font-size="10">{}</text>)", x1 + 3,
                     y + 12, escaped(cut(bar.label, fits)));
    }
    out += "</g>\n";
  }
}

void append_marks(std::string& out, const ShowModel& model, const Geometry& g) {
  for (const ShowMark& mark : model.marks) {
    if (mark.lane >= model.lanes.size() || mark.column >= model.columns.size()) continue;
    const double cx = g.x[mark.column] + g.w[mark.column] / 2;
    const double top = g.lane_y[mark.lane];
    const double cy = top + kLanePad + kMarkStrip / 2;
    const ToneColours c = colours(mark.tone);
    fmt::format_to(std::back_inserter(out), R"(<g class="ev mark{}" data-col="{}"><title>{}</title>)",
                   mark.violating ? " violating" : "", mark.column, text_escaped(cut(mark.detail, kMaxDetailBytes)));
    switch (mark.shape) {
      case MarkShape::tick:
        fmt::format_to(std::back_inserter(out),
                       R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="transparent"/>)"
                       R"(<line class="shape" x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="1.5"/>)",
                       g.x[mark.column], top, g.w[mark.column], g.lane_h[mark.lane], cx, cx, cy - 5, cy + 5,
                       c.stroke);
        break;
      case MarkShape::diamond:
        fmt::format_to(std::back_inserter(out),
                       R"(<path class="shape" d="M{:.1f} {:.1f}l6 6l-6 6l-6 -6z" fill="{}" stroke="{}"/>)", cx,
                       cy - 6, c.fill, c.stroke);
        break;
      case MarkShape::fault:
        fmt::format_to(std::back_inserter(out),
                       R"(<path class="shape" d="M{:.1f} {:.1f}l6.5 12h-13z" fill="#cf222e" stroke="#82071e"/>)"
                       R"(<text x="{:.1f}" y="{:.1f}" font-size="9" fill="#fff" text-anchor="middle">!</text>)",
                       cx, cy - 6, cx, cy + 5);
        break;
      case MarkShape::restart:
        fmt::format_to(std::back_inserter(out),
                       R"(<rect class="shape" x="{:.1f}" y="{:.1f}" width="12" height="12" fill="#82071e" stroke="#82071e"/>)"
                       R"(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#fff" text-anchor="middle">R</text>)",
                       cx - 6, cy - 6, cx, cy + 4);
        break;
      case MarkShape::heal:
        fmt::format_to(std::back_inserter(out),
                       R"(<rect x="{:.1f}" y="{}" width="{:.1f}" height="{:.1f}" fill="transparent"/>)"
                       R"(<line class="shape" x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{:.1f}" stroke="#1a7f37" stroke-width="2" stroke-dasharray="6 3"/>)"
                       R"(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#1a7f37">healed</text>)",
                       g.x[mark.column], kAxisHeight, g.w[mark.column], g.lanes_bottom - kAxisHeight, cx, cx,
                       kAxisHeight, g.lanes_bottom, cx + 3, kAxisHeight + 10);
        break;
    }
    out += "</g>\n";
  }
}

void append_chart(std::string& out, const ShowModel& model, const Geometry& g) {
  if (model.held.empty()) return;
  std::int64_t top = 1;
  for (const ShowHeld& held : model.held) {
    if (held.known) top = std::max({top, held.peak, held.held, held.capacity});
  }
  top += 1;
  const double y0 = g.chart_y + kChartHeight;
  auto y_of = [&](std::int64_t value) {
    return y0 - static_cast<double>(value) / static_cast<double>(top) * kChartHeight;
  };
  fmt::format_to(std::back_inserter(out),
                 R"(<g id="held-chart"><rect x="0" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#fbfcfd" stroke="#eaeef2"/>)",
                 g.chart_y, g.width, kChartHeight);
  out += '\n';
  const std::int64_t tick_every = std::max<std::int64_t>(1, top / 5);
  for (std::int64_t value = 0; value < top; value += tick_every) {
    fmt::format_to(std::back_inserter(out),
                   R"(<line x1="0" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#eaeef2"/><text x="2" y="{:.1f}" font-size="9" fill="#8c959f">{}</text>)",
                   g.width, y_of(value), y_of(value), y_of(value) - 2, value);
  }
  out += '\n';
  // Over capacity: the columns where more slots were held than allowed.
  for (std::size_t c = 0; c < model.held.size() && c < model.columns.size(); ++c) {
    const ShowHeld& held = model.held[c];
    if (!held.known || held.peak <= held.capacity) continue;
    fmt::format_to(std::back_inserter(out),
                   R"(<rect class="over" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#ff8182" opacity="0.6"/>)",
                   g.x[c], y_of(held.peak), g.w[c], y_of(held.capacity) - y_of(held.peak));
  }
  // The capacity and the slots held, as step lines; a summary column also
  // shows the most held within it.
  std::string capacity_path;
  std::string held_path;
  for (std::size_t c = 0; c < model.held.size() && c < model.columns.size(); ++c) {
    const ShowHeld& held = model.held[c];
    if (!held.known) continue;
    const char* move = capacity_path.empty() ? "M" : "L";
    fmt::format_to(std::back_inserter(capacity_path), "{}{:.1f} {:.1f}H{:.1f}", move, g.x[c], y_of(held.capacity),
                   g.x[c] + g.w[c]);
    fmt::format_to(std::back_inserter(held_path), "{}{:.1f} {:.1f}H{:.1f}", held_path.empty() ? "M" : "L", g.x[c],
                   y_of(held.held), g.x[c] + g.w[c]);
    if (model.columns[c].summary && held.peak > held.held) {
      fmt::format_to(std::back_inserter(out),
                     R"(<line x1="{0:.1f}" x2="{0:.1f}" y1="{1:.1f}" y2="{2:.1f}" stroke="#0969da" stroke-width="3" opacity="0.4"/>)",
                     g.x[c] + g.w[c] / 2, y_of(held.held), y_of(held.peak));
    }
  }
  fmt::format_to(std::back_inserter(out),
                 R"(<path id="capacity-line" d="{}" fill="none" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="5 3"/>)"
                 R"(<path id="held-line" d="{}" fill="none" stroke="#0969da" stroke-width="2"/>)",
                 capacity_path, held_path);
  fmt::format_to(std::back_inserter(out),
                 R"(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#57606a">{} (blue); capacity (red, dashed)</text></g>)",
                 4.0, y0 + 14, escaped(model.held_label));
  out += '\n';
}

void append_violation_band(std::string& out, const ShowModel& model, const Geometry& g) {
  if (!model.violation || model.violation->column >= model.columns.size()) return;
  const std::size_t c = model.violation->column;
  fmt::format_to(std::back_inserter(out),
                 R"(<rect id="violation-band" x="{:.1f}" y="{}" width="{:.1f}" height="{:.1f}" fill="#cf222e" opacity="0.14"/>)"
                 R"(<text x="{:.1f}" y="{:.1f}" font-size="11" font-weight="bold" fill="#cf222e">{}</text>)",
                 g.x[c] - 2, kAxisHeight - 6, g.w[c] + 4, g.height - kAxisHeight + 6, g.x[c] + g.w[c] + 3,
                 kAxisHeight - 8, escaped(model.violation->rule));
  out += '\n';
}

void append_detail_panel(std::string& out, const ShowModel& model) {
  std::string initial = "Hover over (or click) a bar, a mark or a grey summary column for its event's every field.";
  if (model.violation && model.violation->column < model.columns.size()) {
    initial = model.columns[model.violation->column].detail;
  }
  fmt::format_to(std::back_inserter(out), R"(<div id="detail"><b>details</b><pre id="detail-text">{}</pre></div>)",
                 text_escaped(cut(initial, kMaxDetailBytes)));
  out += '\n';
}

void append_table(std::string& out, const ShowModel& model, const std::vector<ShowHeld>& held) {
  fmt::format_to(std::back_inserter(out),
                 "<h2>Every {} shown</h2>\n<table id=\"events\"><tr><th>{}</th><th>{}</th><th>time</th>"
                 "<th>held</th><th>lane</th><th>what</th></tr>\n",
                 escaped(model.event_noun), escaped(model.event_noun), model.has_steps ? "step" : "");
  for (std::size_t c = 0; c < model.columns.size(); ++c) {
    const ShowColumn& column = model.columns[c];
    const bool violating = model.violation && model.violation->column == c;
    const char* css = violating ? R"( class="violating")" : (column.summary ? R"( class="summary")" : "");
    const std::string lane =
        column.lane < model.lanes.size() ? escaped(model.lanes[column.lane].name) : std::string{};
    fmt::format_to(std::back_inserter(out),
                   R"(<tr{} data-col="{}"><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td>)"
                   R"(<td class="n">{}</td><td>{}</td><td class="t">{}{}</td></tr>)",
                   css, c, column_events(column), model.has_steps ? fmt::format("{}", column.step) : std::string{},
                   column.at,
                   c < held.size() ? held_text(held[c], column.summary) : "", lane, escaped(column.text),
                   violating ? " &larr; " + escaped(model.violation->rule) : "");
    out += '\n';
  }
  out += "</table>\n";
}

constexpr std::string_view kScript = R"(<script>
(function () {
  var panel = document.getElementById('detail-text');
  var scroller = document.getElementById('scroller');
  function show(element) {
    var title = element.querySelector('title');
    if (title) panel.textContent = title.textContent;
  }
  var items = document.querySelectorAll('.ev');
  for (var i = 0; i < items.length; i++) {
    (function (element) {
      element.addEventListener('mouseenter', function () { show(element); });
      element.addEventListener('click', function () { show(element); });
    })(items[i]);
  }
  var rows = document.querySelectorAll('#events tr[data-col]');
  var columnX = {};
  var bars = document.querySelectorAll('[data-col]');
  for (var j = 0; j < bars.length; j++) {
    var shape = bars[j].querySelector('rect');
    if (shape && !(bars[j].getAttribute('data-col') in columnX)) columnX[bars[j].getAttribute('data-col')] = shape.x.baseVal.value;
  }
  for (var k = 0; k < rows.length; k++) {
    rows[k].addEventListener('click', function () {
      var x = columnX[this.getAttribute('data-col')];
      if (x !== undefined) scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 2);
    });
  }
  var band = document.getElementById('violation-band');
  // Scroll to the violation only when the first screen does not show it.
  if (band && scroller && band.x.baseVal.value + band.width.baseVal.value + 30 > scroller.clientWidth) {
    scroller.scrollLeft = Math.max(0, band.x.baseVal.value - scroller.clientWidth * 0.6);
  }
  // What the first screen shows, for a test that takes its picture.
  function inView(element, box, whole) {
    var r = element.getBoundingClientRect();
    var bottom = whole ? r.bottom : r.top + 1;
    return r.width > 0 && r.left >= Math.max(0, box.left) && r.right <= Math.min(window.innerWidth, box.right) &&
        r.top >= 0 && bottom <= window.innerHeight;
  }
  var page = { left: 0, right: window.innerWidth };
  var labels = document.querySelectorAll('.lane-label');
  var shown = 0;
  for (var m = 0; m < labels.length; m++) if (inView(labels[m], page, true)) shown++;
  document.body.setAttribute('data-lanes-in-view', String(shown));
  if (band && scroller) {
    document.body.setAttribute('data-violation-in-view', inView(band, scroller.getBoundingClientRect(), false) ? '1' : '0');
  }
  document.body.setAttribute('data-ready', '1');
})();
</script>
)";

// ------------------------------------------------------------------ text

constexpr std::size_t kMaxGridLanes = 16;

char bar_glyph(const ShowBar& bar, std::size_t column) {
  if (bar.from == bar.to) return 'I';
  if (column == bar.from) return bar.open_start ? '=' : '[';
  if (column == bar.to) return bar.open_end ? '~' : ']';
  return '=';
}

char mark_glyph(MarkShape shape) {
  switch (shape) {
    case MarkShape::tick:
      return '*';
    case MarkShape::diamond:
      return 'o';
    case MarkShape::fault:
      return '!';
    case MarkShape::restart:
      return 'R';
    case MarkShape::heal:
      return 'H';
  }
  return '*';
}

}  // namespace

bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ie = i;
      std::size_t je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      // Compare the numbers by value: strip leading zeros, then the longer is larger.
      std::string_view na = a.substr(i, ie - i);
      std::string_view nb = b.substr(j, je - j);
      while (na.size() > 1 && na.front() == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb.front() == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
  return a < b;
}

std::string spec_rule_text(std::string_view rule) {
  std::string text(sim::rule_text(rule));
  if (text.empty()) {
    // A G rule checked directly (the model checker checks G14 itself).
    const std::string_view own = cited_text(rule);
    return std::string(own);
  }
  // The rules a P rule's text cites, in parentheses: "(G14)", "(G7)".
  const std::size_t open = text.rfind('(');
  const std::size_t close = text.rfind(')');
  if (open != std::string::npos && close != std::string::npos && close > open + 1) {
    const std::string cited = text.substr(open + 1, close - open - 1);
    if (const std::string_view more = cited_text(cited); !more.empty()) {
      text += fmt::format(". {}: {}", cited, more);
    }
  }
  return text;
}

std::string render_html(const ShowModel& model) {
  const Geometry g = layout(model);
  std::string out;
  out.reserve(64 * 1024 + model.columns.size() * 600 + model.bars.size() * 500);
  const std::string title = escaped(fmt::format("turnstile show: {}", model.source));
  const std::size_t at = kHead.find("{title}");
  out.append(kHead.substr(0, at));
  out += title;
  out.append(kHead.substr(at + 7));

  append_header(out, model);
  append_legend(out, model);
  out += R"(<div class="timeline">)";
  out += '\n';
  append_labels(out, model, g);
  fmt::format_to(std::back_inserter(out),
                 R"(<div id="scroller"><svg id="timeline" width="{:.0f}" height="{:.0f}">)",
                 g.width + 30, g.height);
  out += '\n';
  append_lane_backgrounds(out, model, g);
  append_axis(out, model, g);
  append_violation_band(out, model, g);
  append_bars(out, model, g);
  append_marks(out, model, g);
  append_chart(out, model, g);
  out += "</svg></div></div>\n";
  append_detail_panel(out, model);
  append_table(out, model, model.held);
  out += kScript;
  out += "</body></html>\n";
  return out;
}

std::string render_text(const ShowModel& model) {
  std::string out;
  fmt::format_to(std::back_inserter(out), "turnstile show: {} ({})\n", model.source, model.kind);
  if (!model.facts.empty()) {
    std::string facts;
    for (const std::string& fact : model.facts) facts += (facts.empty() ? "" : ", ") + fact;
    fmt::format_to(std::back_inserter(out), "{}\n", facts);
  }
  if (model.violation) {
    const ShowViolation& v = *model.violation;
    fmt::format_to(std::back_inserter(out), "verdict: violation of {} at {}\n", v.rule, v.where);
    fmt::format_to(std::back_inserter(out), "rule {}: {}\n", v.rule, v.rule_text);
    fmt::format_to(std::back_inserter(out), "  {}\n", v.message);
  } else {
    fmt::format_to(std::back_inserter(out), "verdict: {}\n", model.verdict);
  }
  if (!model.summary_note.empty()) fmt::format_to(std::back_inserter(out), "{}\n", model.summary_note);

  const bool grid = !model.lanes.empty() && model.lanes.size() <= kMaxGridLanes;
  std::vector<std::size_t> lane_width(model.lanes.size(), 0);
  std::vector<std::string> cells;  // [lane * columns + column]
  const std::size_t columns = model.columns.size();
  if (grid) {
    for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
      lane_width[lane] = std::max<std::size_t>(2, std::min<std::size_t>(8, model.lanes[lane].name.size())) + 1;
    }
    cells.assign(model.lanes.size() * columns, std::string(1, '.'));
    auto cell = [&](std::size_t lane, std::size_t column) -> std::string& { return cells[lane * columns + column]; };
    // Where two bars of one lane overlap, an end shows over the other's middle.
    auto rank = [](char glyph) { return glyph == '.' ? 0 : (glyph == '=' || glyph == '~' ? 1 : 2); };
    for (const ShowBar& bar : model.bars) {
      if (bar.lane >= model.lanes.size() || bar.to >= columns) continue;
      for (std::size_t c = bar.from; c <= bar.to; ++c) {
        const char glyph = bar_glyph(bar, c);
        std::string& here = cell(bar.lane, c);
        if (rank(glyph) >= rank(here[0])) here = std::string(1, glyph);
      }
    }
    for (const ShowMark& mark : model.marks) {
      if (mark.lane >= model.lanes.size() || mark.column >= columns) continue;
      cell(mark.lane, mark.column) = std::string(1, mark_glyph(mark.shape));
    }
    for (std::size_t c = 0; c < columns; ++c) {
      if (!model.columns[c].summary) continue;
      for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
        if (cell(lane, c) == ".") cell(lane, c) = ":";
      }
    }
    if (model.violation && model.violation->column < columns && model.violation->lane < model.lanes.size()) {
      cell(model.violation->lane, model.violation->column) = "#";
    }
    out +=
        "glyphs: [ a call or request, ] its return, I both at once, = in progress, ~ no end, * an event, o a gate "
        "step, ! a fault, R a store restart, H faults healed, : summarised, # the violation\n";
  }

  std::size_t lane_name_width = 5;
  for (const ShowLane& lane : model.lanes) lane_name_width = std::max(lane_name_width, std::min<std::size_t>(16, lane.name.size()));
  const std::string time_header = model.time_unit.empty() ? "time" : "time " + model.time_unit;
  std::string header = fmt::format("   {:>13} {:>8} {:>10} {:>8}  ", model.event_noun, model.has_steps ? "step" : "",
                                   time_header, "held");
  if (grid) {
    for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
      header += fmt::format("{:<{}}", cut(model.lanes[lane].name, lane_width[lane] - 1), lane_width[lane]);
    }
    header += ' ';
  }
  header += fmt::format("{:<{}} what", "lane", lane_name_width);
  while (!header.empty() && header.back() == ' ') header.pop_back();
  out += header;
  out += '\n';

  for (std::size_t c = 0; c < columns; ++c) {
    const ShowColumn& column = model.columns[c];
    const bool violating = model.violation && model.violation->column == c;
    const std::string held = c < model.held.size() ? held_text(model.held[c], column.summary) : "";
    std::string line =
        fmt::format("{} {:>13} {:>8} {:>10} {:>8}  ", violating ? ">>" : "  ", column_events(column),
                    model.has_steps ? fmt::format("{}", column.step) : std::string{}, column.at, held);
    if (grid) {
      for (std::size_t lane = 0; lane < model.lanes.size(); ++lane) {
        line += fmt::format("{:<{}}", cells[lane * columns + c], lane_width[lane]);
      }
      line += ' ';
    }
    const std::string lane = column.lane < model.lanes.size() ? model.lanes[column.lane].name : "";
    line += fmt::format("{:<{}} {}", cut(lane, 16), lane_name_width, column.text);
    if (violating) line += fmt::format("   <== {} violated", model.violation->rule);
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace turnstile::cli
