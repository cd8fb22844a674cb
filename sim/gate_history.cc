#include "sim/gate_history.h"

#include <algorithm>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"
#include "sim/describe.h"

namespace turnstile::sim {
namespace {

// SPEC V1: a pool name is at most this long.
constexpr std::size_t kMaxPoolBytes = 64;
// The process that sets each pool's config, first in every pool.
constexpr std::string_view kSetupProcess = "setup";

// H's clock: virtual time plus one, so the config op at 0 comes first.
std::int64_t h_time(core::Ms at_ms) { return static_cast<std::int64_t>(at_ms) + 1; }

bool in_epoch(const GateCommand& command, std::uint32_t epoch) {
  return command.first_epoch <= epoch && epoch <= command.last_epoch;
}

}  // namespace

GateHistoryRecorder::GateHistoryRecorder(core::GateConfig config, std::size_t max_commands)
    : max_commands_(max_commands) {
  history_.config = config;
}

GateHistoryRecorder::Handle GateHistoryRecorder::begin(std::string_view pool, const core::Op& op, core::Ms at_ms,
                                                       std::uint64_t step) {
  if (history_.commands.size() >= max_commands_) {
    history_.truncated = true;
    return kNotRecorded;
  }
  GateCommand command;
  command.pool = std::string(pool);
  command.op = op;
  command.call_ms = at_ms;
  command.call_step = step;
  command.first_epoch = history_.restarts;
  command.last_epoch = history_.restarts;
  history_.commands.push_back(std::move(command));
  return history_.commands.size() - 1;
}

void GateHistoryRecorder::restart() { ++history_.restarts; }

void GateHistoryRecorder::end(Handle handle, CommandEnd how) {
  if (handle == kNotRecorded) return;
  TS_ASSERT(handle < history_.commands.size());
  GateCommand& command = history_.commands[handle];
  TS_ASSERT(command.end == CommandEnd::open);
  command.end = how;
  command.last_epoch = history_.restarts;
}

void GateHistoryRecorder::answered(Handle handle, const core::Decision& decision, core::Ms at_ms,
                                   std::uint64_t step) {
  if (handle == kNotRecorded) return;
  end(handle, CommandEnd::answered);
  GateCommand& command = history_.commands[handle];
  command.out = decision;
  command.ret_ms = at_ms;
  command.ret_step = step;
}

void GateHistoryRecorder::no_reply(Handle handle) { end(handle, CommandEnd::no_reply); }

void GateHistoryRecorder::not_run(Handle handle) { end(handle, CommandEnd::not_run); }

GateHistory GateHistoryRecorder::history() const {
  GateHistory out = history_;
  // A command still in the store may take effect until the run's end.
  for (GateCommand& command : out.commands) {
    if (command.end == CommandEnd::open) command.last_epoch = out.restarts;
  }
  return out;
}

std::string epoch_pool_name(std::string_view pool, std::uint32_t epoch) {
  if (epoch == 0) return std::string(pool);
  const std::string suffix = fmt::format(".restart{}", epoch);
  const std::size_t keep = std::min(pool.size(), kMaxPoolBytes - suffix.size());
  return std::string(pool.substr(0, keep)) + suffix;
}

GateHistoryOps gate_history_ops(const GateHistory& history) {
  std::set<std::string, std::less<>> pools;
  for (const GateCommand& command : history.commands) {
    if (command.end != CommandEnd::not_run) pools.insert(command.pool);
  }

  GateHistoryOps out;
  const auto push = [&out](HistoryOp op, std::optional<std::size_t> command) {
    op.line = out.ops.size() + 1;
    out.ops.push_back(std::move(op));
    out.command_of.push_back(command);
  };
  for (const std::string& pool : pools) {
    for (std::uint32_t epoch = 0; epoch <= history.restarts; ++epoch) {
      const std::string name = epoch_pool_name(pool, epoch);
      bool configured = false;
      for (std::size_t i = 0; i < history.commands.size(); ++i) {
        const GateCommand& command = history.commands[i];
        if (command.pool != pool || command.end == CommandEnd::not_run || !in_epoch(command, epoch)) continue;
        if (!configured) {
          // The store creates each pool, in each epoch, with the run's config.
          HistoryOp config;
          config.process = std::string(kSetupProcess);
          config.call = 0;
          config.ret = 0;
          config.pool = name;
          config.op = history.config;
          push(std::move(config), std::nullopt);
          configured = true;
        }
        HistoryOp op;
        op.process = command.op.client;
        op.call = h_time(command.call_ms);
        op.pool = name;
        op.op = command.op;
        // Only an answer that came back in the epoch it was asked in is
        // held against the gate (the header says why).
        if (command.end == CommandEnd::answered && command.first_epoch == command.last_epoch) {
          op.ret = h_time(command.ret_ms);
          op.out = command.out;
        }
        push(std::move(op), i);
      }
    }
  }
  return out;
}

std::string gate_history_text(const GateHistory& history) {
  const GateHistoryOps ops = gate_history_ops(history);
  std::string text;
  for (const HistoryOp& op : ops.ops) append_history_line(text, op);
  return text;
}

GateCheck check_gate_history(const GateHistory& history, const GateCheckLimits& limits) {
  GateCheck result;
  if (history.truncated) {
    result.verdict = LincheckVerdict::unknown;
    result.unknown_cause = "history bound";
    result.message = fmt::format("the run sent more store commands than the {} recorded, so P14 could not check them",
                                 history.commands.size());
    return result;
  }
  GateHistoryOps ops = gate_history_ops(history);
  result.operations = ops.ops.size();
  // Each op keeps its line, which leads back to its command.
  const std::vector<PoolHistory> pools = split_by_pool(std::move(ops.ops));

  // One budget of steps for the whole history, spent pool by pool.
  const std::uint64_t max_polls = std::max<std::uint64_t>(1, limits.max_steps / kStopPollSteps);
  std::uint64_t polls = 0;
  LincheckLimits search;
  search.max_search_bytes = limits.max_search_bytes;
  search.should_stop = [&polls, max_polls] { return ++polls > max_polls; };

  for (const PoolHistory& pool : pools) {
    const PoolVerdict verdict = check_pool(pool, search);
    result.pending += verdict.pending;
    result.steps += verdict.steps;
    if (verdict.verdict == LincheckVerdict::linearizable) continue;
    // A pool that is not linearizable outranks an unknown one.
    if (result.verdict == LincheckVerdict::not_linearizable) continue;
    if (result.verdict == LincheckVerdict::unknown && verdict.verdict == LincheckVerdict::unknown) continue;

    result.verdict = verdict.verdict;
    result.pool = pool.pool;
    result.stuck.reset();
    const std::optional<std::size_t> at =
        verdict.verdict == LincheckVerdict::not_linearizable ? std::optional<std::size_t>(verdict.stuck)
                                                             : verdict.frontier;
    if (at) {
      const std::size_t line = pool.ops[*at].line;
      TS_ASSERT(line >= 1 && line <= ops.command_of.size());
      result.stuck = ops.command_of[line - 1];
    }
    if (verdict.verdict == LincheckVerdict::unknown) {
      result.unknown_cause = verdict.unknown_cause == "time limit" ? "step limit" : verdict.unknown_cause;
      result.message = fmt::format("lincheck reached its {} before deciding pool {}", result.unknown_cause, pool.pool);
      if (result.stuck) {
        const GateCommand& command = history.commands[*result.stuck];
        result.message += fmt::format(" (no order found so far gets past the {}, answered at {} ms)",
                                      describe_op(command.op), command.ret_ms);
      }
      continue;
    }
    result.model = verdict.model_out;
    result.prefix_ops = verdict.prefix_ops;
    TS_ASSERT(result.stuck.has_value());
    const GateCommand& command = history.commands[*result.stuck];
    result.message = fmt::format(
        "no sequential order of the gate explains the store's answers in pool {}: the {}, called at {} ms and "
        "answered at {} ms, got {}; no order of the {} operations called before that answer explains them all, and "
        "after the longest order that explains those before it the gate answers {}",
        pool.pool, describe_op(command.op), command.call_ms, command.ret_ms, describe_decision(command.out),
        verdict.prefix_ops, describe_decision(verdict.model_out));
  }
  if (result.verdict == LincheckVerdict::unknown && result.unknown_cause.empty()) result.unknown_cause = "step limit";
  return result;
}

}  // namespace turnstile::sim
