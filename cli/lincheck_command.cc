#include "cli/lincheck_command.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cli/file_io.h"
#include "core/response.h"

namespace turnstile::cli {
namespace {

using sim::HistoryOp;
using sim::LincheckVerdict;

constexpr int kMaxJobs = 256;
// The text timeline shows at most this many operations, the last ones called
// before the cut; the HTML one at most kMaxHtmlOps.
constexpr std::size_t kMaxTextRows = 40;
constexpr std::size_t kMaxHtmlOps = 400;
constexpr std::size_t kTextBarColumns = 48;

std::string op_summary(const HistoryOp& op) {
  if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
    return fmt::format("config capacity={} ttl={} grace={}", config->capacity, config->ttl_ms, config->grace_ms);
  }
  const auto& gate_op = std::get<core::Op>(op.op);
  switch (gate_op.kind) {
    case core::OpKind::admit:
      return fmt::format("admit {} {} {} issued_at={} now={}", gate_op.client, gate_op.episode, gate_op.request,
                         gate_op.issued_at, gate_op.now);
    case core::OpKind::heartbeat:
      return fmt::format("heartbeat {} token={} now={}", gate_op.client, gate_op.token, gate_op.now);
    case core::OpKind::release:
      return fmt::format("release {} token={} now={}", gate_op.client, gate_op.token, gate_op.now);
  }
  return {};
}

std::string answer_summary(const HistoryOp& op, const core::Decision& decision) {
  if (op.is_config()) return "configured";
  std::string text(core::outcome_name(decision.outcome));
  if (decision.token != core::kNoToken) text += fmt::format(" token={}", decision.token);
  if (!decision.victim.empty()) text += fmt::format(" victim={}", decision.victim);
  text += fmt::format(" held={}", decision.held);
  return text;
}

std::string recorded_summary(const HistoryOp& op) {
  if (op.pending()) return "pending";
  if (op.is_config()) return "configured";
  return answer_summary(op, *op.out);
}

std::string d_op(const HistoryOp& op) {
  std::string text;
  sim::append_d_op(text, op.pool, op.op);
  return text;
}

std::string d_out(const HistoryOp& op) {
  if (op.pending()) return "null";
  if (op.is_config()) return R"({"outcome":"configured"})";
  std::string text;
  sim::append_d_decision(text, *op.out);
  return text;
}

std::string d_model(const HistoryOp& op, const core::Decision& decision) {
  if (op.is_config()) return R"({"outcome":"configured"})";
  std::string text;
  sim::append_d_decision(text, decision);
  return text;
}

std::string ret_text(const HistoryOp& op) { return op.ret ? fmt::format("{}", *op.ret) : "null"; }

// What a failing pool's report draws: the operations called before the cut
// (the stuck operation's return), the last ones first kept, in call order.
struct Window {
  std::vector<std::size_t> ops;  // indices into the pool's ops, by call
  std::int64_t start = 0;
  std::int64_t end = 0;  // the cut
};

// Matches the checker's event order: time, then calls before returns, then file order.
bool returned_by_cut(const sim::PoolHistory& pool, std::size_t index, std::size_t stuck) {
  const HistoryOp& op = pool.ops[index];
  const std::int64_t cut = *pool.ops[stuck].ret;
  if (!op.ret) return false;
  return *op.ret < cut || (*op.ret == cut && index <= stuck);
}

std::vector<std::size_t> by_call(const sim::PoolHistory& pool) {
  std::vector<std::size_t> order(pool.ops.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return pool.ops[a].call < pool.ops[b].call; });
  return order;
}

Window failure_window(const PoolResult& result, std::size_t max_ops) {
  const sim::PoolHistory& pool = result.pool;
  const std::size_t stuck = result.verdict.stuck;
  Window window;
  window.end = *pool.ops[stuck].ret;
  for (std::size_t index : by_call(pool)) {
    if (pool.ops[index].call <= window.end) window.ops.push_back(index);
  }
  if (window.ops.size() > max_ops) {
    // Keep the stuck operation and the latest calls before the cut.
    std::vector<std::size_t> kept(window.ops.end() - static_cast<std::ptrdiff_t>(max_ops), window.ops.end());
    if (std::find(kept.begin(), kept.end(), stuck) == kept.end()) {
      kept.erase(kept.begin());
      kept.insert(std::upper_bound(kept.begin(), kept.end(), stuck,
                                   [&](std::size_t a, std::size_t b) { return pool.ops[a].call < pool.ops[b].call; }),
                  stuck);
    }
    window.ops = std::move(kept);
  }
  window.start = window.ops.empty() ? window.end : pool.ops[window.ops.front()].call;
  return window;
}

Window head_window(const sim::PoolHistory& pool, std::size_t max_ops) {
  Window window;
  for (std::size_t index : by_call(pool)) {
    if (window.ops.size() == max_ops) break;
    window.ops.push_back(index);
  }
  if (window.ops.empty()) return window;
  window.start = pool.ops[window.ops.front()].call;
  window.end = window.start;
  for (std::size_t index : window.ops) {
    const HistoryOp& op = pool.ops[index];
    window.end = std::max(window.end, op.ret.value_or(op.call));
  }
  return window;
}

std::map<std::size_t, std::size_t> order_positions(const sim::PoolVerdict& verdict) {
  std::map<std::size_t, std::size_t> positions;
  for (std::size_t i = 0; i < verdict.order.size(); ++i) positions[verdict.order[i].op] = i + 1;
  return positions;
}

// ------------------------------------------------------------------ text

void append_text_pool(std::string& out, const PoolResult& result) {
  const sim::PoolHistory& pool = result.pool;
  const sim::PoolVerdict& verdict = result.verdict;
  fmt::format_to(std::back_inserter(out), "pool {}: {} ({} operations, {} pending; {} states, {} steps)", pool.pool,
                 sim::verdict_name(verdict.verdict), verdict.operations, verdict.pending, verdict.states,
                 verdict.steps);
  if (verdict.verdict == LincheckVerdict::unknown) {
    fmt::format_to(std::back_inserter(out), ": the {} ran out\n", verdict.unknown_cause);
    if (verdict.frontier) {
      const HistoryOp& op = pool.ops[*verdict.frontier];
      fmt::format_to(std::back_inserter(out),
                     "  every operation that returned before line {} is explained; no order found yet that "
                     "explains line {}: {} {}, called {}, returned {}\n",
                     op.line, op.line, op.process, op_summary(op), op.call, ret_text(op));
    }
    return;
  }
  out += '\n';
  if (verdict.verdict != LincheckVerdict::not_linearizable) return;

  const HistoryOp& stuck = pool.ops[verdict.stuck];
  fmt::format_to(std::back_inserter(out), "  stuck on line {}: {} {}, called {}, returned {}\n", stuck.line,
                 stuck.process, op_summary(stuck), stuck.call, ret_text(stuck));
  fmt::format_to(std::back_inserter(out), "    recorded: {}\n", d_out(stuck));
  fmt::format_to(std::back_inserter(out), "    the gate: {} (after the order below)\n",
                 d_model(stuck, verdict.model_out));
  fmt::format_to(std::back_inserter(out),
                 "  no order explains the {} operations called before line {} returned (at {}){}\n", verdict.prefix_ops,
                 stuck.line, ret_text(stuck),
                 verdict.minimized ? "" : "; a limit ran out before the shortest such prefix was found");
  fmt::format_to(std::back_inserter(out),
                 "  the longest explainable prefix, in an order that explains it ({} operations):\n",
                 verdict.order.size());
  const std::size_t first = verdict.order.size() > kMaxTextRows ? verdict.order.size() - kMaxTextRows : 0;
  if (first > 0) fmt::format_to(std::back_inserter(out), "    ... {} earlier operations\n", first);
  for (std::size_t i = first; i < verdict.order.size(); ++i) {
    const sim::Placed& placed = verdict.order[i];
    const HistoryOp& op = pool.ops[placed.op];
    fmt::format_to(std::back_inserter(out), "    {:>5}. line {:<6} {:<10} {} -> {}{}\n", i + 1, op.line, op.process,
                   op_summary(op), answer_summary(op, placed.model),
                   returned_by_cut(pool, placed.op, verdict.stuck) ? "" : "  (still pending at the cut)");
  }

  // The timeline: one row per operation, a bar from call to return (or to
  // the cut for one still pending there).
  const Window window = failure_window(result, kMaxTextRows);
  const auto positions = order_positions(verdict);
  const double span = static_cast<double>(std::max<std::int64_t>(1, window.end - window.start));
  auto column = [&](std::int64_t time) {
    const double at = static_cast<double>(std::clamp(time, window.start, window.end) - window.start) / span;
    return std::min(kTextBarColumns - 1, static_cast<std::size_t>(at * static_cast<double>(kTextBarColumns - 1)));
  };
  fmt::format_to(std::back_inserter(out),
                 "  timeline from {} to the cut at {} (= returned, - still pending at the cut, # stuck):\n",
                 window.start, window.end);
  for (std::size_t index : window.ops) {
    const HistoryOp& op = pool.ops[index];
    const bool is_stuck = index == verdict.stuck;
    const bool returned = returned_by_cut(pool, index, verdict.stuck);
    std::string bar(kTextBarColumns, ' ');
    const std::size_t from = column(op.call);
    const std::size_t to = returned ? column(*op.ret) : kTextBarColumns - 1;
    for (std::size_t c = from; c <= to; ++c) bar[c] = is_stuck ? '#' : (returned ? '=' : '-');
    std::string place = is_stuck ? "STUCK" : "";
    if (auto it = positions.find(index); it != positions.end() && !is_stuck) place = fmt::format("#{}", it->second);
    fmt::format_to(std::back_inserter(out), "    line {:<6} {:<10} |{}| {:<6} {} -> {}\n", op.line, op.process, bar,
                   place, op_summary(op), recorded_summary(op));
  }
}

// ------------------------------------------------------------------ JSON

void append_op_json(std::string& out, const HistoryOp& op) {
  fmt::format_to(std::back_inserter(out), R"({{"line":{},"process":)", op.line);
  core::append_json_string(out, op.process);
  fmt::format_to(std::back_inserter(out), R"(,"call":{},"ret":{},"op":{},"out":{})", op.call, ret_text(op), d_op(op),
                 d_out(op));
}

void append_json_pool(std::string& out, const PoolResult& result) {
  const sim::PoolHistory& pool = result.pool;
  const sim::PoolVerdict& verdict = result.verdict;
  out += R"({"pool":)";
  core::append_json_string(out, pool.pool);
  fmt::format_to(std::back_inserter(out), R"(,"verdict":"{}","operations":{},"pending":{},"states":{},"steps":{})",
                 sim::verdict_name(verdict.verdict), verdict.operations, verdict.pending, verdict.states,
                 verdict.steps);
  if (verdict.verdict == LincheckVerdict::unknown) {
    out += R"(,"cause":)";
    core::append_json_string(out, verdict.unknown_cause);
    if (verdict.frontier) {
      out += R"(,"frontier":)";
      append_op_json(out, pool.ops[*verdict.frontier]);
      out += '}';
    }
  }
  if (verdict.verdict == LincheckVerdict::not_linearizable) {
    const HistoryOp& stuck = pool.ops[verdict.stuck];
    out += R"(,"stuck":)";
    append_op_json(out, stuck);
    fmt::format_to(std::back_inserter(out), R"(,"model":{}}})", d_model(stuck, verdict.model_out));
    fmt::format_to(std::back_inserter(out), R"(,"prefix":{{"operations":{},"end":{},"minimized":{}}})",
                   verdict.prefix_ops, ret_text(stuck), verdict.minimized ? "true" : "false");
    out += R"(,"order":[)";
    for (std::size_t i = 0; i < verdict.order.size(); ++i) {
      const sim::Placed& placed = verdict.order[i];
      const HistoryOp& op = pool.ops[placed.op];
      if (i > 0) out += ',';
      append_op_json(out, op);
      fmt::format_to(std::back_inserter(out), R"(,"model":{},"returned_by_cut":{}}})", d_model(op, placed.model),
                     returned_by_cut(pool, placed.op, verdict.stuck) ? "true" : "false");
    }
    out += ']';
  }
  out += '}';
}

LincheckVerdict overall(const std::vector<PoolResult>& results) {
  LincheckVerdict verdict = LincheckVerdict::linearizable;
  for (const PoolResult& result : results) {
    if (result.verdict.verdict == LincheckVerdict::not_linearizable) return LincheckVerdict::not_linearizable;
    if (result.verdict.verdict == LincheckVerdict::unknown) verdict = LincheckVerdict::unknown;
  }
  return verdict;
}

// ------------------------------------------------------------------ HTML

void append_html_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
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
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

std::string escaped(std::string_view text) {
  std::string out;
  append_html_escaped(out, text);
  return out;
}

constexpr std::string_view kHtmlHead = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>turnstile lincheck</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
.linearizable{color:#1a7f37} .not{color:#cf222e} .unknown{color:#9a6700}
code,pre,td.mono{font-family:ui-monospace,monospace;font-size:12px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
tr.stuck td{background:#ffebe9}
svg{border:1px solid #ddd;background:#fafafa}
.legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
</style></head><body>
)";

void append_html_timeline(std::string& out, const PoolResult& result, const Window& window) {
  const sim::PoolHistory& pool = result.pool;
  const sim::PoolVerdict& verdict = result.verdict;
  const bool failed = verdict.verdict == LincheckVerdict::not_linearizable;
  const auto positions = order_positions(verdict);

  std::vector<std::string> processes;
  for (std::size_t index : window.ops) processes.push_back(pool.ops[index].process);
  std::sort(processes.begin(), processes.end());
  processes.erase(std::unique(processes.begin(), processes.end()), processes.end());

  constexpr double kLabel = 110;
  constexpr double kWidth = 1000;
  constexpr double kLane = 30;
  const double height = kLane * static_cast<double>(processes.size()) + 30;
  const double span = static_cast<double>(std::max<std::int64_t>(1, window.end - window.start));
  auto x = [&](std::int64_t time) {
    return kLabel + static_cast<double>(std::clamp(time, window.start, window.end) - window.start) / span * kWidth;
  };

  fmt::format_to(std::back_inserter(out), R"(<svg width="{}" height="{}" xmlns="http://www.w3.org/2000/svg">)",
                 kLabel + kWidth + 20, height);
  out += '\n';
  for (std::size_t lane = 0; lane < processes.size(); ++lane) {
    const double y = 20 + kLane * static_cast<double>(lane);
    fmt::format_to(
        std::back_inserter(out),
        R"(<text x="4" y="{:.1f}" font-size="12">{}</text><line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="#eee"/>)",
        y + 15, escaped(processes[lane]), kLabel, kLabel + kWidth, y + 11, y + 11);
    out += '\n';
  }
  if (failed) {
    fmt::format_to(std::back_inserter(out),
                   R"(<line x1="{0:.1f}" x2="{0:.1f}" y1="8" y2="{1:.1f}" stroke="#cf222e" stroke-dasharray="4 3"/>)"
                   R"(<text x="{0:.1f}" y="10" font-size="11" fill="#cf222e" text-anchor="end">cut </text>)",
                   x(window.end), height - 4);
    out += '\n';
  }
  for (std::size_t index : window.ops) {
    const HistoryOp& op = pool.ops[index];
    const auto lane =
        static_cast<std::size_t>(std::lower_bound(processes.begin(), processes.end(), op.process) - processes.begin());
    const double y = 20 + kLane * static_cast<double>(lane);
    const bool is_stuck = failed && index == verdict.stuck;
    const bool returned = failed ? returned_by_cut(pool, index, verdict.stuck) : !op.pending();
    const double x1 = x(op.call);
    const double x2 = std::max(x1 + 3, returned ? x(*op.ret) : kLabel + kWidth);
    const auto position = positions.find(index);
    std::string fill = "#d0d7de";
    if (is_stuck)
      fill = "#ff8182";
    else if (position != positions.end())
      fill = "#8ddb8c";
    const std::string stroke =
        is_stuck ? R"( stroke="#cf222e" stroke-width="2")"
                 : (returned ? R"( stroke="#57606a")" : R"( stroke="#57606a" stroke-dasharray="4 2")");
    std::string title = fmt::format("line {} · {} · call {} · ret {}\nop: {}\nout: {}", op.line, op.process, op.call,
                                    ret_text(op), d_op(op), d_out(op));
    if (position != positions.end()) {
      title += fmt::format("\norder #{}: the gate answers {}", position->second,
                           d_model(op, verdict.order[position->second - 1].model));
    }
    if (is_stuck) title += fmt::format("\nSTUCK: the gate answers {}", d_model(op, verdict.model_out));
    fmt::format_to(std::back_inserter(out),
                   R"(<g><title>{}</title><rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="22" rx="3" fill="{}"{}/>)",
                   escaped(title), x1, y, x2 - x1, fill, stroke);
    std::string label = is_stuck ? "STUCK" : (position != positions.end() ? fmt::format("#{}", position->second) : "");
    if (!label.empty()) label += ' ';
    label += op.is_config() ? "config" : std::string(op_summary(op).substr(0, op_summary(op).find(' ')));
    fmt::format_to(std::back_inserter(out), R"(<text x="{:.1f}" y="{:.1f}" font-size="10">{}</text></g>)", x1 + 3,
                   y + 15, escaped(label));
    out += '\n';
  }
  out += "</svg>\n";
}

void append_html_pool(std::string& out, const PoolResult& result) {
  const sim::PoolHistory& pool = result.pool;
  const sim::PoolVerdict& verdict = result.verdict;
  const char* css = verdict.verdict == LincheckVerdict::linearizable
                        ? "linearizable"
                        : (verdict.verdict == LincheckVerdict::unknown ? "unknown" : "not");
  fmt::format_to(std::back_inserter(out), R"(<h2>pool {}: <span class="{}">{}</span></h2>)", escaped(pool.pool), css,
                 sim::verdict_name(verdict.verdict));
  fmt::format_to(std::back_inserter(out), "<p>{} operations, {} pending; {} states, {} steps{}</p>\n",
                 verdict.operations, verdict.pending, verdict.states, verdict.steps,
                 verdict.verdict == LincheckVerdict::unknown ? fmt::format("; the {} ran out", verdict.unknown_cause)
                                                             : std::string{});
  if (verdict.verdict == LincheckVerdict::unknown && verdict.frontier) {
    const HistoryOp& op = pool.ops[*verdict.frontier];
    fmt::format_to(std::back_inserter(out),
                   "<p>Every operation that returned before line {} is explained; no order was found yet that "
                   "explains line {} ({}, called {}, returned {}): <code>{}</code> answered <code>{}</code>.</p>\n",
                   op.line, op.line, escaped(op.process), op.call, ret_text(op), escaped(d_op(op)), escaped(d_out(op)));
  }
  if (verdict.verdict != LincheckVerdict::not_linearizable) {
    const Window window = head_window(pool, kMaxHtmlOps);
    if (window.ops.empty()) return;
    fmt::format_to(std::back_inserter(out), "<p>The first {} operations by call:</p>\n", window.ops.size());
    append_html_timeline(out, result, window);
    return;
  }

  const HistoryOp& stuck = pool.ops[verdict.stuck];
  fmt::format_to(std::back_inserter(out),
                 "<p>Stuck on <b>line {}</b> ({}, called {}, returned {}): <code>{}</code><br>recorded "
                 "<code>{}</code>, but the gate answers <code>{}</code> after the order below.</p>\n",
                 stuck.line, escaped(stuck.process), stuck.call, ret_text(stuck), escaped(d_op(stuck)),
                 escaped(d_out(stuck)), escaped(d_model(stuck, verdict.model_out)));
  fmt::format_to(std::back_inserter(out),
                 "<p>No order explains the {} operations called before line {} returned (the cut, at {}).{}</p>\n",
                 verdict.prefix_ops, stuck.line, ret_text(stuck),
                 verdict.minimized ? "" : " A limit ran out before the shortest such prefix was found.");
  const Window window = failure_window(result, kMaxHtmlOps);
  out += R"(<p class="legend"><span><i class="sw" style="background:#8ddb8c"></i>in the explaining order (#n)</span>)"
         R"(<span><i class="sw" style="background:#d0d7de"></i>not placed</span>)"
         R"(<span><i class="sw" style="background:#ff8182"></i>stuck</span>)"
         R"(<span>dashed: still pending at the cut</span></p>)";
  out += '\n';
  if (window.ops.size() < verdict.prefix_ops) {
    fmt::format_to(std::back_inserter(out), "<p>The last {} operations called before the cut:</p>\n",
                   window.ops.size());
  }
  append_html_timeline(out, result, window);

  fmt::format_to(std::back_inserter(out),
                 "<h3>An order that explains the longest explainable prefix ({} operations)</h3>\n<table>"
                 "<tr><th>#</th><th>line</th><th>process</th><th>call</th><th>ret</th><th>op</th><th>the gate "
                 "answers</th></tr>\n",
                 verdict.order.size());
  const std::size_t first = verdict.order.size() > kMaxHtmlOps ? verdict.order.size() - kMaxHtmlOps : 0;
  for (std::size_t i = first; i < verdict.order.size(); ++i) {
    const sim::Placed& placed = verdict.order[i];
    const HistoryOp& op = pool.ops[placed.op];
    fmt::format_to(
        std::back_inserter(out),
        R"(<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{}</td></tr>)",
        i + 1, op.line, escaped(op.process), op.call, ret_text(op), escaped(d_op(op)),
        escaped(d_model(op, placed.model)));
    out += '\n';
  }
  fmt::format_to(
      std::back_inserter(out),
      R"(<tr class="stuck"><td>stuck</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{} (recorded {})</td></tr>)",
      stuck.line, escaped(stuck.process), stuck.call, ret_text(stuck), escaped(d_op(stuck)),
      escaped(d_model(stuck, verdict.model_out)), escaped(d_out(stuck)));
  out += "\n</table>\n";
}

int fail_usage(std::ostream& err, std::string_view message) {
  err << message << "\n";
  return 2;
}

}  // namespace

std::vector<PoolResult> check_pools(std::vector<sim::HistoryOp> ops, const sim::LincheckLimits& limits, int jobs) {
  std::vector<sim::PoolHistory> pools = sim::split_by_pool(std::move(ops));
  std::vector<PoolResult> results(pools.size());
  for (std::size_t i = 0; i < pools.size(); ++i) results[i].pool = std::move(pools[i]);

  // Each worker takes the next pool; results land in their pool's place, so
  // the output is the same for any number of jobs.
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < results.size(); i = next++) {
      results[i].verdict = sim::check_pool(results[i].pool, limits);
    }
  };
  const auto workers = std::min<std::size_t>(static_cast<std::size_t>(std::max(1, jobs)), results.size());
  if (workers <= 1) {
    work();
    return results;
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < workers; ++i) threads.emplace_back(work);
  for (std::thread& thread : threads) thread.join();
  return results;
}

std::string format_text_report(const std::vector<PoolResult>& results) {
  std::string out;
  std::size_t operations = 0;
  std::vector<std::string> failing;
  std::vector<std::string> unknown;
  for (const PoolResult& result : results) {
    append_text_pool(out, result);
    operations += result.verdict.operations;
    if (result.verdict.verdict == LincheckVerdict::not_linearizable) failing.push_back(result.pool.pool);
    if (result.verdict.verdict == LincheckVerdict::unknown) {
      unknown.push_back(fmt::format("{} ({})", result.pool.pool, result.verdict.unknown_cause));
    }
  }
  auto join = [](const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
    return text;
  };
  switch (overall(results)) {
    case LincheckVerdict::linearizable:
      fmt::format_to(std::back_inserter(out), "linearizable: {} pools, {} operations\n", results.size(), operations);
      break;
    case LincheckVerdict::not_linearizable:
      fmt::format_to(std::back_inserter(out), "not linearizable: pool {} (of {} pools)\n", join(failing),
                     results.size());
      break;
    case LincheckVerdict::unknown:
      fmt::format_to(std::back_inserter(out), "unknown: a limit ran out for pool {} (of {} pools)\n", join(unknown),
                     results.size());
      break;
  }
  return out;
}

std::string format_json_report(const std::vector<PoolResult>& results) {
  std::size_t operations = 0;
  for (const PoolResult& result : results) operations += result.verdict.operations;
  std::string out =
      fmt::format(R"({{"verdict":"{}","operations":{},"pools":[)", sim::verdict_name(overall(results)), operations);
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i > 0) out += ',';
    append_json_pool(out, results[i]);
  }
  out += "]}\n";
  return out;
}

std::string format_html_report(const std::vector<PoolResult>& results, std::string_view source) {
  std::string out(kHtmlHead);
  const LincheckVerdict verdict = overall(results);
  const char* css = verdict == LincheckVerdict::linearizable
                        ? "linearizable"
                        : (verdict == LincheckVerdict::unknown ? "unknown" : "not");
  fmt::format_to(std::back_inserter(out), R"(<h1>turnstile lincheck {}: <span class="{}">{}</span></h1>)",
                 escaped(source), css, sim::verdict_name(verdict));
  out +=
      "\n<p>Each lane is a process; a bar runs from an operation's call to its return. Hover a bar for its "
      "operation and answers.</p>\n";
  for (const PoolResult& result : results) append_html_pool(out, result);
  out += "</body></html>\n";
  return out;
}

int exit_code_of(const std::vector<PoolResult>& results) {
  return overall(results) == LincheckVerdict::linearizable ? 0 : 1;
}

int run_lincheck(std::string_view text, std::string_view source, const LincheckOptions& options, std::ostream& out,
                 std::ostream& err) {
  if (options.time_limit_s < 0) return fail_usage(err, "--time-limit: expected a number of seconds, 0 for none");
  if (options.max_memory_mb < 1) return fail_usage(err, "--max-memory-mb: expected an integer of at least 1");
  if (options.jobs < 1 || options.jobs > kMaxJobs) {
    return fail_usage(err, fmt::format("--jobs: expected an integer from 1 to {}", kMaxJobs));
  }

  auto parsed = sim::read_history(text, source);
  if (auto* error = std::get_if<sim::HistoryError>(&parsed)) return fail_usage(err, error->message);
  auto& ops = std::get<std::vector<HistoryOp>>(parsed);

  // The pools checked at one time share the memory bound.
  std::size_t pools = 0;
  {
    std::vector<std::string_view> names;
    for (const HistoryOp& op : ops) names.push_back(op.pool);
    std::sort(names.begin(), names.end());
    pools = static_cast<std::size_t>(std::unique(names.begin(), names.end()) - names.begin());
  }
  const std::size_t concurrent =
      std::max<std::size_t>(1, std::min<std::size_t>(pools, static_cast<std::size_t>(options.jobs)));
  sim::LincheckLimits limits;
  limits.max_search_bytes = static_cast<std::size_t>(options.max_memory_mb) * 1024 * 1024 / concurrent;
  if (options.time_limit_s > 0) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                               std::chrono::duration<double>(options.time_limit_s));
    limits.should_stop = [deadline] { return std::chrono::steady_clock::now() >= deadline; };
  }

  const std::vector<PoolResult> results = check_pools(std::move(ops), limits, options.jobs);
  if (!options.html_path.empty()) {
    if (std::string error = write_file(options.html_path, format_html_report(results, source)); !error.empty()) {
      return fail_usage(err, error);
    }
  }
  out << (options.json ? format_json_report(results) : format_text_report(results));
  out.flush();
  return exit_code_of(results);
}

int run_lincheck_command(const LincheckOptions& options, std::ostream& out, std::ostream& err) {
  std::string text;
  if (options.history_path.empty() || options.history_path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return fail_usage(err, "<stdin>: read error");
    return run_lincheck(text, "<stdin>", options, out, err);
  }
  std::ifstream file(options.history_path, std::ios::binary);
  if (!file) return fail_usage(err, fmt::format("{}: cannot open: {}", options.history_path, std::strerror(errno)));
  std::ostringstream buffer;
  buffer << file.rdbuf();
  if (file.bad()) return fail_usage(err, fmt::format("{}: read error", options.history_path));
  return run_lincheck(buffer.str(), options.history_path, options, out, err);
}

}  // namespace turnstile::cli
