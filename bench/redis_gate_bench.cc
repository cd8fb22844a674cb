// gate.lua's throughput against a trivial script through the same client
// (issue 6: gate.lua must reach at least 70% of a trivial EVALSHA at
// concurrency 16).
//
// The program starts its own redis-server (unix socket in a temporary
// directory, tests/redis_server.h), then runs rounds. In a round `threads`
// threads each open one RedisStore (one connection) per script and send gate
// operations through RedisStore::attempt: the same argument list, the same
// hiredis path and the same reply decoding for every script. The trivial
// script answers a constant decision, so that its reply takes the same
// decoding path as the gate's.
//
// The scripts share each round in time slices of `slice_ms` (20 ms by
// default), taken in turn: slice k belongs to script k % scripts. A shared
// VM's speed changes from one second to the next, so runs of one script after
// another saw different machines and their ratio was mostly noise (gate.lua
// against a copy of itself: 72.9% vs 66.4%). Slices of 20 ms expose every
// script to the same conditions: against the copy, the two ratios then agree
// within 0-2.4 points in every round (within 0.6-5.2 with 100 ms slices). A
// round lasts `seconds` rounded up to whole cycles through the scripts, so
// that each script gets as many slices. The main thread switches the slices
// and measures each one's real duration (its sleep may overrun); a script's
// rate is its operations over the sum of its slices. An operation that
// straddles a switch counts for the script it used.
//
// Workload: `pools` pools of `capacity` slots and `clients` clients each, per
// script: script i's pools are "s<i>-bench<p>", so that the scripts never
// touch each other's keys. The clients are dealt out to the threads. Per
// operation a thread picks one of the current script's clients: without a
// token it admits; otherwise `admits` in forty operations (10 by default) are
// admits (a resume, or about three in ten of those a switch to another
// episode), one in forty a release, the rest heartbeats. The caller's clock is
// steady_clock, with ttl 30 s and grace 15 s: sessions stay live.
//
// At each switch the main thread also reads INFO cpu and INFO commandstats
// and charges the differences to the slice's script: the server's CPU per
// operation, its microseconds per EVALSHA and the commands the script ran per
// operation.
//
//   build/bench/redis_gate_bench [--seconds S] [--runs N] [--threads T]
//                               [--pools P] [--capacity C] [--clients K]
//                               [--admits A] [--tcp 0|1] [--slice-ms MS]
//                               [--also OTHER_GATE.lua]...
//
// --tcp 1 has the workers reach the server over loopback TCP, as a
// deployment does, rather than over its unix socket.
//
// --also, which may be repeated, measures another script in each round (say,
// gate.lua as it was before a change) with its own rows.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "adapters/redis/gate_lua.h"
#include "adapters/redis/redis_store.h"
#include "core/gate.h"
#include "core/rng.h"
#include "tests/loopback_port.h"
#include "tests/redis_server.h"

namespace {

using turnstile::adapters::RedisStore;
using turnstile::adapters::RedisStoreConfig;
using turnstile::core::Ms;

constexpr std::string_view kTrivialScript = "return {'alive', '', '', 1}";

struct Options {
  double seconds = 3.0;
  int runs = 3;
  int threads = 16;
  int pools = 4;
  int capacity = 64;
  int clients = 64;  // per pool
  int admits = 10;   // admits per 40 operations of a client holding a token
  bool tcp = false;  // the workers reach the server over loopback TCP rather than its unix socket
  int slice_ms = 20;   // the length of one script's turn
  // More gate scripts to measure in each round, e.g. an older gate.lua: {path, text}.
  std::vector<std::pair<std::string, std::string>> also;
};

struct RunResult {
  double ops_per_s = 0;
  std::uint64_t ops = 0;
  std::uint64_t failures = 0;
  double usec_per_call = 0;                      // the server's, per EVALSHA
  double cpu_us_per_op = 0;                      // the server process's CPU (user + sys) per operation
  std::map<std::string, double> calls_per_op;    // commands the script ran, per EVALSHA
};

struct ClientState {
  std::string pool;
  std::string client;
  turnstile::core::Token token = turnstile::core::kNoToken;
  int episode = 0;
};

// Per command: (calls, usec).
using CommandStats = std::map<std::string, std::pair<double, double>>;

// The server's counters at one moment.
struct ServerSample {
  double cpu_s = 0;
  CommandStats commands;
};

// What one script's slices of a round add up to.
struct ScriptTally {
  double slice_s = 0;  // the real duration of its slices
  double cpu_s = 0;    // the server's CPU during them
  CommandStats commands;
};

Ms steady_ms() { return RedisStore::steady_ms(); }

// INFO commandstats (in `info`, the text of an INFO reply) as {command: (calls, usec)}.
CommandStats command_stats(std::string_view info) {
  CommandStats stats;
  std::size_t at = 0;
  while (at < info.size()) {
    std::size_t end = info.find("\r\n", at);
    if (end == std::string_view::npos) end = info.size();
    const std::string line(info.substr(at, end - at));
    at = end + 2;
    if (line.rfind("cmdstat_", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    const std::string name = line.substr(8, colon - 8);
    double calls = 0;
    double usec = 0;
    std::sscanf(line.c_str() + colon + 1, "calls=%lf,usec=%lf", &calls, &usec);
    stats[name] = {calls, usec};
  }
  return stats;
}

// The server's CPU time so far (INFO cpu, in `info`: user + sys, in seconds),
// from getrusage() inside the server: unlike a rate, it does not depend on how
// often the machine's scheduler lets the server or its clients run.
double server_cpu_s(std::string_view info) {
  double total = 0;
  for (std::string_view name : {std::string_view("used_cpu_sys:"), std::string_view("used_cpu_user:")}) {
    const std::size_t at = info.find(name);
    if (at != std::string_view::npos) total += std::atof(std::string(info.substr(at + name.size(), 32)).c_str());
  }
  return total;
}

// Both sections from one INFO call, so that they describe the same moment.
ServerSample server_sample(turnstile::testing::RedisClient& client) {
  const std::string info = client.text({"INFO", "cpu", "commandstats"});
  return {server_cpu_s(info), command_stats(info)};
}

// `seconds` in slices, rounded up to whole cycles through the scripts, so
// that every script gets as many slices.
int slices_per_round(const Options& options, std::size_t script_count) {
  const double cycle_ms = static_cast<double>(options.slice_ms) * static_cast<double>(script_count);
  // The small allowance keeps a round that is already whole cycles from one more.
  const int cycles = std::max(1, static_cast<int>(std::ceil(options.seconds * 1000 / cycle_ms - 1e-9)));
  return cycles * static_cast<int>(script_count);
}

// One round: every script in turn, `slice_ms` at a time, for about
// `seconds`. The results are in the order of `scripts`.
std::vector<RunResult> run_round(const turnstile::testing::RedisServer& server, const std::string& url,
                                 const std::vector<std::string_view>& scripts, const Options& options, int run) {
  // Every round starts from an empty store, so that what one round leaves
  // behind (its keys, their encoding) does not weigh on the next.
  turnstile::testing::RedisClient(server.socket_path()).text({"FLUSHALL"});
  const std::size_t script_count = scripts.size();
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::atomic<int> slice{0};
  // Per thread, per script; each thread writes its own row once, when it ends.
  std::vector<std::vector<std::uint64_t>> ops(static_cast<std::size_t>(options.threads));
  std::vector<std::vector<std::uint64_t>> failures(static_cast<std::size_t>(options.threads));
  const turnstile::core::GateConfig gate{options.capacity, 30000, 15000};

  std::vector<std::thread> threads;
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::unique_ptr<RedisStore>> stores;
      std::vector<std::vector<ClientState>> mine(script_count);
      for (std::size_t s = 0; s < script_count; ++s) {
        RedisStoreConfig config;
        config.endpoint = std::get<turnstile::adapters::RedisEndpoint>(turnstile::adapters::parse_redis_url(url));
        config.script = scripts[s];
        stores.push_back(std::make_unique<RedisStore>(config));
        for (int p = 0; p < options.pools; ++p) {
          for (int c = 0; c < options.clients; ++c) {
            if ((p * options.clients + c) % options.threads != t) continue;
            mine[s].push_back({"s" + std::to_string(s) + "-bench" + std::to_string(p), "c" + std::to_string(c),
                               turnstile::core::kNoToken, 0});
          }
        }
      }
      std::vector<std::uint64_t> my_ops(script_count, 0);
      std::vector<std::uint64_t> my_failures(script_count, 0);
      turnstile::core::Rng rng(turnstile::core::derive_seed(20261127, static_cast<std::uint64_t>(run * 1000 + t)));
      std::uint64_t request = 0;
      auto one_op = [&](std::size_t script, ClientState& s, bool count) {
        turnstile::core::Op op;
        op.client = s.client;
        op.now = steady_ms();
        const std::uint64_t roll = rng.below(40);
        if (s.token == turnstile::core::kNoToken || roll < static_cast<std::uint64_t>(options.admits)) {
          op.kind = turnstile::core::OpKind::admit;
          if (roll * 10 < static_cast<std::uint64_t>(options.admits) * 3) ++s.episode;
          op.episode = "tt0944947:1:" + std::to_string(s.episode % 10 + 1);
          op.request = "r" + std::to_string(run) + "-" + std::to_string(t) + "-" + std::to_string(++request);
          op.issued_at = op.now;
        } else if (roll == 39) {
          op.kind = turnstile::core::OpKind::release;
          op.token = s.token;
        } else {
          op.kind = turnstile::core::OpKind::heartbeat;
          op.token = s.token;
        }
        const turnstile::core::StoreReply reply = stores[script]->attempt(s.pool, op, gate, steady_ms() + 2000);
        if (!reply.decision) {
          if (count) ++my_failures[script];
          return;
        }
        if (count) ++my_ops[script];
        // The client's next operation follows from this one's kind, not from
        // the reply, so that every script sees the same mix (the trivial one
        // answers every operation with `alive` and no token).
        const turnstile::core::Outcome outcome = reply.decision->outcome;
        if (op.kind == turnstile::core::OpKind::admit) {
          s.token = reply.decision->token != turnstile::core::kNoToken ? reply.decision->token : 1;
        } else if (op.kind == turnstile::core::OpKind::release || outcome == turnstile::core::Outcome::gone) {
          s.token = turnstile::core::kNoToken;
        }
      };
      // Warm-up, not timed: every client of every script admitted, the
      // connections open.
      for (std::size_t s = 0; s < script_count; ++s) {
        for (ClientState& state : mine[s]) one_op(s, state, false);
      }
      ready.fetch_add(1);
      go.wait(false);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::size_t script = static_cast<std::size_t>(slice.load(std::memory_order_relaxed)) % script_count;
        one_op(script, mine[script][rng.below(mine[script].size())], true);
      }
      ops[static_cast<std::size_t>(t)] = my_ops;
      failures[static_cast<std::size_t>(t)] = my_failures;
    });
  }
  while (ready.load() < options.threads) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const int slices = slices_per_round(options, script_count);
  const std::chrono::milliseconds slice_length(options.slice_ms);
  std::vector<ScriptTally> tallies(script_count);
  turnstile::testing::RedisClient admin(server.socket_path());
  ServerSample before = server_sample(admin);
  const auto round_started = std::chrono::steady_clock::now();
  auto slice_started = round_started;
  go.store(true);
  go.notify_all();
  for (int k = 0; k < slices; ++k) {
    // Planned ends rather than fixed sleeps, so that a late wake-up shortens
    // the next slice instead of lengthening the round.
    std::this_thread::sleep_until(round_started + (k + 1) * slice_length);
    // The sample just before the switch: what the server did since the
    // previous one is the slice's (give or take the operations in flight).
    ServerSample after = server_sample(admin);
    const auto slice_ended = std::chrono::steady_clock::now();
    if (k + 1 < slices) {
      slice.store(k + 1, std::memory_order_relaxed);
    } else {
      stop.store(true);
    }
    ScriptTally& tally = tallies[static_cast<std::size_t>(k) % script_count];
    tally.slice_s += std::chrono::duration<double>(slice_ended - slice_started).count();
    tally.cpu_s += after.cpu_s - before.cpu_s;
    for (const auto& [name, value] : after.commands) {
      const auto previous = before.commands.find(name);
      const std::pair<double, double> was = previous != before.commands.end() ? previous->second : std::pair{0.0, 0.0};
      if (value.first == was.first) continue;
      std::pair<double, double>& sum = tally.commands[name];
      sum.first += value.first - was.first;
      sum.second += value.second - was.second;
    }
    before = std::move(after);
    slice_started = slice_ended;
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<RunResult> results(script_count);
  for (std::size_t s = 0; s < script_count; ++s) {
    RunResult& result = results[s];
    const ScriptTally& tally = tallies[s];
    for (const std::vector<std::uint64_t>& row : ops) result.ops += row[s];
    for (const std::vector<std::uint64_t>& row : failures) result.failures += row[s];
    if (tally.slice_s > 0) result.ops_per_s = static_cast<double>(result.ops) / tally.slice_s;
    if (result.ops > 0) result.cpu_us_per_op = 1e6 * tally.cpu_s / static_cast<double>(result.ops);
    auto evalsha = tally.commands.find("evalsha");
    if (evalsha != tally.commands.end() && evalsha->second.first > 0) {
      const double calls = evalsha->second.first;
      result.usec_per_call = evalsha->second.second / calls;
      for (const auto& [name, value] : tally.commands) {
        if (name == "evalsha" || name == "config" || name == "info") continue;
        result.calls_per_op[name] = value.first / calls;
      }
    }
  }
  return results;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

bool parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    const char* value = argv[++i];
    if (flag == "--seconds") {
      options.seconds = std::atof(value);
    } else if (flag == "--runs") {
      options.runs = std::atoi(value);
    } else if (flag == "--threads") {
      options.threads = std::atoi(value);
    } else if (flag == "--pools") {
      options.pools = std::atoi(value);
    } else if (flag == "--capacity") {
      options.capacity = std::atoi(value);
    } else if (flag == "--clients") {
      options.clients = std::atoi(value);
    } else if (flag == "--tcp") {
      options.tcp = std::string_view(value) == "1";
    } else if (flag == "--slice-ms") {
      options.slice_ms = std::atoi(value);
    } else if (flag == "--admits") {
      options.admits = std::atoi(value);
    } else if (flag == "--also") {
      std::ifstream in(value);
      std::ostringstream text;
      text << in.rdbuf();
      if (!in || text.str().empty()) return false;
      options.also.emplace_back(value, text.str());
    } else {
      return false;
    }
  }
  return options.seconds > 0 && options.runs >= 1 && options.admits >= 0 && options.admits <= 39 && options.threads >= 1 && options.pools >= 1 &&
         options.capacity >= 1 && options.clients >= 1 && options.pools * options.clients >= options.threads &&
         options.slice_ms >= 10 && options.slice_ms <= 10000;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: redis_gate_bench [--seconds S] [--runs N] [--threads T] [--pools P] [--capacity C] "
                 "[--clients K] [--admits A (0-39, per 40 ops)] [--tcp 0|1] [--slice-ms MS (10-10000)] "
                 "[--also OTHER_GATE.lua]...\n(pools x clients must be at least threads)\n");
    return 2;
  }
  turnstile::testing::RedisServer server;
  if (!server.error().empty()) {
    std::fprintf(stderr, "redis-server: %s\n", server.error().c_str());
    return 1;
  }
  // Over TCP the server also listens on a loopback port, one that was free a
  // moment ago (bound, read and closed here), set with CONFIG SET.
  std::string url = server.url();
  if (options.tcp) {
    const int port = turnstile::testing::unused_loopback_port();
    turnstile::testing::RedisClient admin(server.socket_path());
    if (port <= 0 || admin.text({"CONFIG", "SET", "port", std::to_string(port)}) != "OK") {
      std::fprintf(stderr, "could not open a TCP port on the server\n");
      return 1;
    }
    url = "redis://127.0.0.1:" + std::to_string(port);
  }
  struct Script {
    std::string name;
    std::string_view text;
    std::vector<double> rates, usec, cpu, rate_ratios, cpu_ratios;
  };
  std::vector<Script> scripts = {{"gate.lua", turnstile::adapters::kGateLua, {}, {}, {}, {}, {}},
                                 {"trivial", kTrivialScript, {}, {}, {}, {}, {}}};
  for (const auto& [path, text] : options.also) scripts.push_back({path.substr(path.rfind('/') + 1), text, {}, {}, {}, {}, {}});
  std::vector<std::string_view> texts;
  for (const Script& script : scripts) texts.push_back(script.text);
  std::printf("%d threads, %d pools x %d clients, capacity %d, %d admits per 40 ops, %d ms slices in turn, "
              "%.1f s per round, %d rounds, %s\n",
              options.threads, options.pools, options.clients, options.capacity, options.admits, options.slice_ms,
              slices_per_round(options, scripts.size()) * options.slice_ms / 1000.0, options.runs, url.c_str());
  std::printf("rate ratio: ops/s over the trivial script's in the same round; server ratio: the trivial script's\n"
              "server CPU per op over this script's (what one Redis could serve if it were the bottleneck)\n");
  std::printf("%-5s %-16s %10s %7s %10s %11s %7s\n", "round", "script", "ops/s", "rate", "us/EVALSHA", "cpu us/op",
              "server");
  RunResult last_gate;
  for (int run = 0; run < options.runs; ++run) {
    const std::vector<RunResult> results = run_round(server, url, texts, options, run);
    const RunResult& trivial = results[1];
    for (std::size_t i = 0; i < scripts.size(); ++i) {
      const RunResult& r = results[i];
      if (r.failures > 0) {
        std::fprintf(stderr, "round %d: %llu attempts of %s failed\n", run + 1,
                     static_cast<unsigned long long>(r.failures), scripts[i].name.c_str());
      }
      const double rate_ratio = r.ops_per_s / trivial.ops_per_s;
      const double cpu_ratio = trivial.cpu_us_per_op / r.cpu_us_per_op;
      std::printf("%-5d %-16.16s %10.0f %6.1f%% %10.2f %11.2f %6.1f%%\n", run + 1, scripts[i].name.c_str(), r.ops_per_s,
                  100 * rate_ratio, r.usec_per_call, r.cpu_us_per_op, 100 * cpu_ratio);
      scripts[i].rates.push_back(r.ops_per_s);
      scripts[i].usec.push_back(r.usec_per_call);
      scripts[i].cpu.push_back(r.cpu_us_per_op);
      scripts[i].rate_ratios.push_back(rate_ratio);
      scripts[i].cpu_ratios.push_back(cpu_ratio);
    }
    std::fflush(stdout);
    last_gate = results[0];
  }
  for (const Script& script : scripts) {
    std::printf("%-5s %-16.16s %10.0f %6.1f%% %10.2f %11.2f %6.1f%%\n", "med", script.name.c_str(),
                median(script.rates), 100 * median(script.rate_ratios), median(script.usec), median(script.cpu),
                100 * median(script.cpu_ratios));
  }
  std::printf("commands per gate.lua operation (last round):");
  for (const auto& [name, per_op] : last_gate.calls_per_op) std::printf(" %s %.2f", name.c_str(), per_op);
  std::printf("\n");
  return 0;
}
