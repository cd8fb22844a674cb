// The `turnstile` command (DESIGN.md, "The command line"). Each verb is one
// small function that declares its flags; the work is in cli/*_command.

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/check_command.h"
#include "cli/gate_command.h"
#include "cli/gate_redis.h"
#include "cli/lincheck_command.h"
#include "cli/show_command.h"
#include "cli/shrink_command.h"
#include "cli/sim_commands.h"

namespace {

using Action = std::function<int()>;

Action add_gate(CLI::App& app) {
  auto* gate = app.add_subcommand("gate", "Apply gate operations (JSON Lines, SPEC D) and print one decision per line");
  auto ops_path = std::make_shared<std::string>();
  auto redis_url = std::make_shared<std::string>();
  gate->add_option("file", *ops_path, "Op file to read; standard input when omitted or '-'");
  gate->add_option("--redis", *redis_url,
                   "Apply the ops with gate.lua on this Redis (unix:/path/to/socket or redis://host:port)");
  return [gate, ops_path, redis_url] {
    if (!gate->parsed()) return -1;
    auto apply = [&](std::istream& in) {
      if (redis_url->empty()) return turnstile::cli::run_gate(in, std::cout, std::cerr);
      return turnstile::cli::run_gate_redis(in, std::cout, std::cerr, *redis_url);
    };
    if (ops_path->empty() || *ops_path == "-") return apply(std::cin);
    std::ifstream file(*ops_path, std::ios::binary);
    if (!file) {
      std::cerr << *ops_path << ": cannot open: " << std::strerror(errno) << "\n";
      return 2;
    }
    return apply(file);
  };
}

Action add_run(CLI::App& app) {
  auto* run = app.add_subcommand("run", "Simulate one seed and check every P rule; ends with 'fingerprint: <hex>'");
  auto options = std::make_shared<turnstile::cli::RunOptions>();
  run->add_option("--seed", options->seed, "The run's seed")->required();
  run->add_option("--scenario", options->scenario_path, "Scenario file (JSON); the built-in default when omitted");
  run->add_option("--gate", options->gate, "atomic (SPEC G) or legacy (the racy read-decide-write gate)");
  run->add_option("--strategy", options->strategy, "Scheduling strategy: random or pct:D");
  run->add_option("--trace-out", options->trace_out,
                  "Write the run's trace here (default: a violation's trace goes to traces-out/)");
  run->add_option("--history", options->history_out,
                  "Write the run's gate history (SPEC H, for turnstile lincheck) here");
  run->add_flag("--json", options->json, "Print a JSON summary instead of text");
  return [run, options] { return run->parsed() ? turnstile::cli::run_command(*options, std::cout, std::cerr) : -1; };
}

Action add_explore(CLI::App& app) {
  auto* explore = app.add_subcommand("explore", "Simulate many seeds; write one trace per violated rule");
  auto options = std::make_shared<turnstile::cli::ExploreOptions>();
  auto* seeds = explore->add_option("--seeds", options->seeds, "Seeds A..B, both included (default 0..999)");
  auto budget = std::make_shared<double>(0.0);
  auto* time_budget =
      explore->add_option("--time-budget", *budget, "Run seeds from 0 upward for this many seconds instead");
  seeds->excludes(time_budget);
  explore->add_option("--scenario", options->scenario_path, "Scenario file (JSON); the built-in default when omitted");
  explore->add_option("--gate", options->gate, "atomic or legacy");
  explore->add_option("--strategy", options->strategy, "Scheduling strategy: random or pct:D");
  explore->add_option("--jobs", options->jobs, "Threads running seeds (results do not depend on it)");
  explore->add_option("--shard", options->shard, "K/N: only the seeds with seed % N == K - 1");
  explore->add_flag("--stop-on-first", options->stop_on_first, "Stop at the first (lowest) violating seed");
  explore->add_option("--traces-dir", options->traces_dir, "Where violations' traces go (default traces-out)");
  explore->add_flag("--json", options->json, "Print a JSON summary, with every seed's result, instead of text");
  explore->add_option("--check-determinism", options->check_determinism,
                      "Run this many of the seeds again and fail if a fingerprint differs");
  return [explore, options, budget, time_budget] {
    if (!explore->parsed()) return -1;
    if (time_budget->count() > 0) options->time_budget_s = *budget;
    options->progress = ::isatty(STDERR_FILENO) == 1;
    return turnstile::cli::explore_command(*options, std::cout, std::cerr);
  };
}

Action add_replay(CLI::App& app) {
  auto* replay = app.add_subcommand("replay", "Run a trace again; name the first step where the run diverges");
  auto trace_path = std::make_shared<std::string>();
  auto history_out = std::make_shared<std::string>();
  replay->add_option("trace", *trace_path, "Trace file (JSON Lines): a run's, or turnstile check's")->required();
  replay->add_option("--history", *history_out,
                     "Write the replayed run's gate history (SPEC H, for turnstile lincheck) here");
  return [replay, trace_path, history_out] {
    if (!replay->parsed()) return -1;
    return turnstile::cli::replay_command(*trace_path, {}, std::cout, std::cerr, *history_out);
  };
}

Action add_lincheck(CLI::App& app) {
  auto* lincheck = app.add_subcommand("lincheck", "Decide whether a gate history (SPEC H) is linearizable");
  auto options = std::make_shared<turnstile::cli::LincheckOptions>();
  lincheck->add_option("history", options->history_path, "History file (JSON Lines, SPEC H); '-' for standard input")
      ->required();
  lincheck->add_option("--time-limit", options->time_limit_s, "Stop after S seconds with the verdict unknown (exit 1)");
  lincheck->add_option("--max-memory-mb", options->max_memory_mb,
                       "Memory for the searches, shared by the jobs (default 2048)");
  lincheck->add_option("--jobs", options->jobs, "Pools checked in parallel (the output does not depend on it)");
  lincheck->add_flag("--json", options->json, "Print the result as one JSON object instead of text");
  lincheck->add_option("--html", options->html_path, "Also write a self-contained HTML timeline to this file");
  return [lincheck, options] {
    return lincheck->parsed() ? turnstile::cli::run_lincheck_command(*options, std::cout, std::cerr) : -1;
  };
}

Action add_check(CLI::App& app) {
  auto* check = app.add_subcommand("check", "Explore every interleaving of a small gate configuration");
  auto options = std::make_shared<turnstile::cli::CheckOptions>();
  check->add_option("--gate", options->gate, "atomic or legacy")->required();
  check->add_option("--clients", options->clients, "Clients K, 1..6")->required();
  check->add_option("--capacity", options->capacity, "Capacity C, 1..6")->required();
  check->add_option("--rounds", options->rounds, "Rounds of admit/heartbeat/release per client, 1..9")->required();
  check->add_option("--ttl", options->ttl, "ttl in ticks, 1..16 (default 2)");
  check->add_option("--grace", options->grace, "grace in ticks, 0..16 (default 1)");
  check->add_option("--max-ticks", options->max_ticks, "Clock steps, 0..40 (default ttl + grace + 1)");
  check->add_option("--max-states", options->max_states, "Stop with `incomplete` after this many states");
  check->add_flag("--no-symmetry", options->no_symmetry, "Turn the client symmetry reduction off");
  check->add_option("--trace-out", options->trace_out, "Write the trace (docs/check.md) here, whatever the verdict");
  check->add_flag("--json", options->json, "Print one JSON summary line instead of text");
  return [check, options] {
    if (!check->parsed()) return -1;
    options->progress = ::isatty(STDERR_FILENO) == 1;
    return turnstile::cli::run_check_command(*options, std::cout, std::cerr);
  };
}

Action add_shrink(CLI::App& app) {
  auto* shrink = app.add_subcommand("shrink", "Shrink a failing trace to the smallest run with the same violation");
  auto options = std::make_shared<turnstile::cli::ShrinkCommandOptions>();
  shrink->add_option("trace", options->trace_path, "Trace file (JSON Lines) that records a violation")->required();
  shrink->add_option("-o,--out", options->out_path, "Write the shrunk trace here")->required();
  shrink->add_option("--max-runs", options->max_runs, "Simulator runs in all, 1..1000000 (default 3000)");
  return [shrink, options] {
    if (!shrink->parsed()) return -1;
    options->progress = ::isatty(STDERR_FILENO) == 1;
    return turnstile::cli::shrink_command(*options, {}, std::cout, std::cerr);
  };
}

Action add_show(CLI::App& app) {
  auto* show = app.add_subcommand("show", "Draw a trace or a history as a timeline: an HTML page or text");
  auto options = std::make_shared<turnstile::cli::ShowOptions>();
  show->add_option("input", options->input_path,
                   "A trace (turnstile run --trace-out) or a history (SPEC H); '-' for standard input")
      ->required();
  show->add_option("-o,--output", options->html_path, "Write a self-contained HTML page here");
  show->add_flag("--text", options->text, "Print the timeline for a terminal");
  show->add_option("--detail", options->detail,
                   "Draw at most this many events in full and summarise the rest (default 1000)");
  show->add_option("--around", options->around, "Centre the full window on this event (default: the violation)");
  return [show, options] {
    return show->parsed() ? turnstile::cli::run_show_command(*options, std::cout, std::cerr) : -1;
  };
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);

  CLI::App app{"turnstile: deterministic simulation and model checking of a stream endpoint's reliability controls"};
  app.require_subcommand(1);
  // Bad usage is one line (DESIGN.md, "Exit codes and output").
  app.failure_message([](const CLI::App*, const CLI::Error& error) {
    return std::string("turnstile: ") + error.what() + " (see --help)\n";
  });

  const Action actions[] = {add_gate(app),     add_run(app),      add_explore(app),
                           add_replay(app),   add_lincheck(app), add_check(app),
                           add_show(app),     add_shrink(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // CLI11 exits 0 for --help and 106+ for usage errors; DESIGN.md wants 2.
    const int code = app.exit(error);
    return code == 0 ? 0 : 2;
  }

  for (const Action& action : actions) {
    if (const int code = action(); code >= 0) return code;
  }
  return 2;
}
