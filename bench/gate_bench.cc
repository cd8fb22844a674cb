// Gate decisions per second (SPEC G) on pools of 4, 64 and 1024 sessions.
// The goal is at least 1,000,000 admit decisions per second on a 64-session
// pool on one core in the optimised build (preset `default`).

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/gate.h"

namespace {

using turnstile::core::apply;
using turnstile::core::Decision;
using turnstile::core::GateConfig;
using turnstile::core::kNoToken;
using turnstile::core::Ms;
using turnstile::core::Op;
using turnstile::core::OpKind;
using turnstile::core::Outcome;
using turnstile::core::PoolState;
using turnstile::core::Token;

// Long enough that no session ages out while a benchmark runs.
constexpr Ms kLongTtlMs = 1'000'000'000'000;

Op admit_op(const std::string& client, const std::string& request, Ms now) {
  return Op{OpKind::admit, client, "tt0944947:1:2", request, now, now, kNoToken};
}

std::string client_name(const char* prefix, std::size_t i) { return prefix + std::to_string(i); }

// Visits every index of [0, n) once per round, in a scattered order, so a
// benchmark does not always find its client at the front of the scan.
std::vector<std::size_t> scattered_order(std::size_t n) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = (i * 40503u + 17u) % n;
  std::vector<bool> seen(n, false);
  for (std::size_t& i : order) {
    while (seen[i]) i = (i + 1) % n;
    seen[i] = true;
  }
  return order;
}

// A pool of `n` live sessions, clients "c0".."c{n-1}", at capacity.
PoolState full_pool(std::size_t n, const GateConfig& config, Ms now) {
  PoolState pool;
  for (std::size_t i = 0; i < n; ++i) {
    const Decision d = apply(pool, admit_op(client_name("c", i), "r0", now), config);
    if (d.outcome != Outcome::admitted) std::abort();
  }
  return pool;
}

void expect(const Decision& decision, Outcome outcome, benchmark::State& state) {
  if (decision.outcome != outcome) state.SkipWithError("unexpected outcome");
}

// G5: an owner resumes its session with a new request.
void BM_AdmitOwnerResumes(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const GateConfig config{static_cast<std::int64_t>(n), kLongTtlMs, 0};
  Ms now = 1;
  PoolState pool = full_pool(n, config, now);
  // Two requests per client, used in turn; issued_at grows so G4 never applies.
  std::vector<Op> ops;
  for (std::size_t i = 0; i < n; ++i) {
    ops.push_back(admit_op(client_name("c", i), "ra", now));
    ops.push_back(admit_op(client_name("c", i), "rb", now));
  }
  const std::vector<std::size_t> order = scattered_order(n);
  std::size_t k = 0;
  for (auto _ : state) {
    const std::size_t client = order[k % n];
    Op& op = ops[2 * client + (k / n) % 2];
    op.now = op.issued_at = ++now;
    const Decision decision = apply(pool, op, config);
    benchmark::DoNotOptimize(decision);
    expect(decision, Outcome::resumed, state);
    ++k;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// G8: a newcomer at capacity with every session live is blocked.
void BM_AdmitNewcomerBlocked(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const GateConfig config{static_cast<std::int64_t>(n), kLongTtlMs, 0};
  Ms now = 1;
  PoolState pool = full_pool(n, config, now);
  std::vector<Op> ops;
  for (std::size_t i = 0; i < n; ++i) ops.push_back(admit_op(client_name("n", i), "r1", now));
  std::size_t k = 0;
  for (auto _ : state) {
    Op& op = ops[k % n];
    op.now = op.issued_at = ++now;
    const Decision decision = apply(pool, op, config);
    benchmark::DoNotOptimize(decision);
    expect(decision, Outcome::blocked_capacity, state);
    ++k;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// G7: a newcomer at capacity rotates the oldest idle session out. With T = 1
// and the clock moving 2 ms per decision, every session is idle, and the
// victim is always the one admitted n decisions ago.
void BM_AdmitNewcomerRotates(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const GateConfig config{static_cast<std::int64_t>(n), 1, kLongTtlMs};
  Ms now = 1;
  PoolState pool;
  for (std::size_t i = 0; i < n; ++i) apply(pool, admit_op(client_name("c", i), "r0", ++now), config);
  // 2n newcomer names: the one used now left the pool n decisions ago.
  std::vector<Op> ops;
  for (std::size_t i = 0; i < 2 * n; ++i) ops.push_back(admit_op(client_name("n", i), "r1", now));
  std::size_t k = 0;
  for (auto _ : state) {
    Op& op = ops[k % (2 * n)];
    now += 2;
    op.now = op.issued_at = now;
    const Decision decision = apply(pool, op, config);
    benchmark::DoNotOptimize(decision);
    expect(decision, Outcome::rotated, state);
    ++k;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// G11: an owner's heartbeat with its current token.
void BM_HeartbeatAlive(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const GateConfig config{static_cast<std::int64_t>(n), kLongTtlMs, 0};
  Ms now = 1;
  PoolState pool = full_pool(n, config, now);
  std::vector<Op> ops;
  for (std::size_t i = 0; i < n; ++i) {
    const Token token = pool.sessions[i].token;
    ops.push_back(Op{OpKind::heartbeat, pool.sessions[i].client, {}, {}, 0, now, token});
  }
  const std::vector<std::size_t> order = scattered_order(n);
  std::size_t k = 0;
  for (auto _ : state) {
    Op& op = ops[order[k % n]];
    op.now = ++now;
    const Decision decision = apply(pool, op, config);
    benchmark::DoNotOptimize(decision);
    expect(decision, Outcome::alive, state);
    ++k;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_AdmitOwnerResumes)->Arg(4)->Arg(64)->Arg(1024);
BENCHMARK(BM_AdmitNewcomerBlocked)->Arg(4)->Arg(64)->Arg(1024);
BENCHMARK(BM_AdmitNewcomerRotates)->Arg(4)->Arg(64)->Arg(1024);
BENCHMARK(BM_HeartbeatAlive)->Arg(4)->Arg(64)->Arg(1024);

}  // namespace
