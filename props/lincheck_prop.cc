// P14 / SPEC H: on small generated histories (up to 8 operations), the
// checker's verdict equals a brute-force enumeration of every order.
//
// A history is made by running the real gate sequentially, then giving each
// operation a call/ret interval around its place in that sequence (so the
// history is linearizable), some of them pending, plus pending operations
// that never took effect. Half of the histories are then mutated: an answer
// or an interval changed, which may or may not leave them linearizable. The
// brute force below shares no code with sim/lincheck.cc: it tries every
// permutation of the operations.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/gate.h"
#include "sim/history_format.h"
#include "sim/lincheck.h"

namespace {

using namespace turnstile;

// ------------------------------------------------------------ generating

struct OpSpec {
  int kind = 0;  // 0 admit, 1 heartbeat, 2 release, 3 config
  int client = 0;
  int episode = 0;
  int request = 0;
  int token = 0;
  int now = 0;
  int capacity = 1;
  int call_before = 0;  // how far before its place in the sequence it was called
  int ret_after = 0;    // how far after its place it returned
  bool pending = false;
  bool ghost = false;  // pending, and never took effect
};

struct Mutation {
  int kind = 0;  // 0 none, 1 held, 2 outcome, 3 token, 4 interval
  int target = 0;
  int value = 0;
  int value2 = 0;
};

struct Spec {
  int capacity = 1;
  int ttl = 10;
  int grace = 5;
  std::vector<OpSpec> ops;
  Mutation mutation;
  int spacing = 10;  // between consecutive places in the sequence; less spacing, more overlap
  // Each op's `now` near its place in the sequence (as a store clock would
  // be), rather than anywhere in 0..60.
  bool clock_follows_order = false;
};

rc::Gen<OpSpec> gen_op() {
  return rc::gen::build<OpSpec>(
      rc::gen::set(&OpSpec::kind, rc::gen::weightedElement<int>({{5, 0}, {3, 1}, {2, 2}, {1, 3}})),
      rc::gen::set(&OpSpec::client, rc::gen::inRange(0, 3)), rc::gen::set(&OpSpec::episode, rc::gen::inRange(0, 2)),
      rc::gen::set(&OpSpec::request, rc::gen::inRange(0, 4)), rc::gen::set(&OpSpec::token, rc::gen::inRange(0, 5)),
      rc::gen::set(&OpSpec::now, rc::gen::inRange(0, 60)), rc::gen::set(&OpSpec::capacity, rc::gen::inRange(1, 4)),
      rc::gen::set(&OpSpec::call_before, rc::gen::inRange(0, 26)),
      rc::gen::set(&OpSpec::ret_after, rc::gen::inRange(0, 26)),
      rc::gen::set(&OpSpec::pending, rc::gen::weightedElement<bool>({{5, false}, {1, true}})),
      rc::gen::set(&OpSpec::ghost, rc::gen::weightedElement<bool>({{7, false}, {1, true}})));
}

// `none` in 4 + none: how often the history is left as the gate made it.
rc::Gen<Mutation> gen_mutation(std::size_t none) {
  return rc::gen::build<Mutation>(
      rc::gen::set(&Mutation::kind, rc::gen::weightedElement<int>({{none, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}})),
      rc::gen::set(&Mutation::target, rc::gen::inRange(0, 64)),
      rc::gen::set(&Mutation::value, rc::gen::inRange(0, 200)),
      rc::gen::set(&Mutation::value2, rc::gen::inRange(0, 200)));
}

// Longer histories, packed closer: for comparing the checker with itself.
rc::Gen<Spec> gen_medium_spec() {
  return rc::gen::build<Spec>(
      rc::gen::set(&Spec::capacity, rc::gen::inRange(1, 4)), rc::gen::set(&Spec::ttl, rc::gen::inRange(5, 60)),
      rc::gen::set(&Spec::grace, rc::gen::inRange(0, 30)),
      rc::gen::set(&Spec::ops, rc::gen::mapcat(rc::gen::inRange<std::size_t>(8, 21),
                                               [](std::size_t count) {
                                                 return rc::gen::container<std::vector<OpSpec>>(count, gen_op());
                                               })),
      rc::gen::set(&Spec::mutation, gen_mutation(1)), rc::gen::set(&Spec::spacing, rc::gen::inRange(3, 11)),
      rc::gen::set(&Spec::clock_follows_order, rc::gen::arbitrary<bool>()));
}

rc::Gen<Spec> gen_spec() {
  return rc::gen::build<Spec>(
      rc::gen::set(&Spec::capacity, rc::gen::inRange(1, 4)), rc::gen::set(&Spec::ttl, rc::gen::inRange(1, 30)),
      rc::gen::set(&Spec::grace, rc::gen::inRange(0, 15)),
      rc::gen::set(&Spec::ops, rc::gen::mapcat(rc::gen::inRange<std::size_t>(0, 8),
                                               [](std::size_t count) {
                                                 return rc::gen::container<std::vector<OpSpec>>(count, gen_op());
                                               })),
      rc::gen::set(&Spec::mutation, gen_mutation(4)));
}

core::Op make_op(const OpSpec& spec, core::Ms now) {
  core::Op op;
  op.client = "c" + std::to_string(spec.client);
  op.now = now;
  if (spec.kind == 0) {
    op.kind = core::OpKind::admit;
    op.episode = "e" + std::to_string(spec.episode);
    op.request = "r" + std::to_string(spec.request);
    op.issued_at = now;
  } else {
    op.kind = spec.kind == 1 ? core::OpKind::heartbeat : core::OpKind::release;
    op.token = static_cast<core::Token>(spec.token);
  }
  return op;
}

// The history, and whether it is linearizable by construction (no mutation).
struct Generated {
  sim::PoolHistory history;
  bool by_construction = true;
};

Generated build(const Spec& spec) {
  Generated generated;
  generated.history.pool = "p";
  std::vector<sim::HistoryOp>& ops = generated.history.ops;

  sim::HistoryOp setup;
  setup.process = "setup";
  setup.call = 0;
  setup.ret = 0;
  setup.pool = "p";
  setup.op = core::GateConfig{spec.capacity, spec.ttl, spec.grace};
  ops.push_back(setup);

  core::PoolState state;
  core::GateConfig config{spec.capacity, spec.ttl, spec.grace};
  std::int64_t place = spec.spacing;
  for (std::size_t i = 0; i < spec.ops.size(); ++i) {
    const OpSpec& op_spec = spec.ops[i];
    sim::HistoryOp entry;
    entry.process = "w" + std::to_string(i);
    entry.pool = "p";
    place += spec.spacing;
    entry.call = std::max<std::int64_t>(1, place - op_spec.call_before);
    if (op_spec.kind == 3) {
      core::GateConfig changed{op_spec.capacity, spec.ttl, spec.grace};
      entry.op = changed;
      if (!op_spec.ghost) config = changed;
    } else {
      const core::Ms now =
          spec.clock_follows_order ? std::max<core::Ms>(0, place + op_spec.now % 20 - 10) : op_spec.now;
      core::Op op = make_op(op_spec, now);
      entry.op = op;
      // A ghost never took effect: it is left out of the sequence.
      if (!op_spec.ghost) entry.out = core::apply(state, op, config);
    }
    if (op_spec.pending || op_spec.ghost) {
      entry.out.reset();
    } else {
      entry.ret = place + op_spec.ret_after;
      if (entry.is_config()) entry.out.reset();
    }
    ops.push_back(std::move(entry));
  }

  const Mutation& mutation = spec.mutation;
  if (mutation.kind != 0 && ops.size() > 1) {
    sim::HistoryOp& target = ops[1 + static_cast<std::size_t>(mutation.target) % (ops.size() - 1)];
    if (mutation.kind == 4) {
      target.call = mutation.value;
      if (target.ret) target.ret = target.call + mutation.value2 % 40;
      generated.by_construction = false;
    } else if (target.out) {
      core::Decision& out = *target.out;
      if (mutation.kind == 1) out.held = (out.held + 1 + mutation.value % 2) % 4;
      if (mutation.kind == 2) out.outcome = static_cast<core::Outcome>(mutation.value % 9);
      if (mutation.kind == 3) out.token = static_cast<core::Token>(mutation.value % 5);
      generated.by_construction = false;
    }
  }
  for (std::size_t i = 0; i < ops.size(); ++i) ops[i].line = i + 1;
  return generated;
}

// Counterexamples print as the history they make, one H line each.
void showValue(const Spec& spec, std::ostream& os) {
  const Generated generated = build(spec);
  os << "\n";
  for (const auto& op : generated.history.ops) os << sim::format_history_line(op);
}

// ------------------------------------------------------------ brute force

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

bool precedes(const sim::HistoryOp& a, const sim::HistoryOp& b) { return a.ret.value_or(kNever) < b.call; }

// Every permutation of the operations, each tried from the start: it
// explains the history if it respects real-time order and the gate gives
// every completed operation its recorded answer, up to the last completed
// operation (pending operations after that took effect too late to matter,
// or never). When position `i` of a permutation fails, every permutation
// with the same first i + 1 operations fails too and is skipped.
bool brute_force_linearizable(const std::vector<sim::HistoryOp>& ops) {
  const std::size_t n = ops.size();
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::size_t completed = 0;
  for (const auto& op : ops) completed += op.pending() ? 0 : 1;
  if (completed == 0) return true;
  while (true) {
    core::PoolState state;
    core::GateConfig config;
    std::size_t placed_completed = 0;
    std::size_t failed_at = n;
    for (std::size_t i = 0; i < n && placed_completed < completed; ++i) {
      const sim::HistoryOp& op = ops[order[i]];
      bool ok = true;
      for (std::size_t j = i + 1; j < n && ok; ++j) ok = !precedes(ops[order[j]], op);
      if (ok) {
        if (const auto* new_config = std::get_if<core::GateConfig>(&op.op)) {
          config = *new_config;
        } else {
          const core::Decision decision = core::apply(state, std::get<core::Op>(op.op), config);
          ok = op.pending() || decision == *op.out;
        }
      }
      if (!ok) {
        failed_at = i;
        break;
      }
      if (!op.pending()) ++placed_completed;
    }
    if (failed_at == n) return true;
    std::reverse(order.begin() + static_cast<std::ptrdiff_t>(failed_at) + 1, order.end());
    if (!std::next_permutation(order.begin(), order.end())) return false;
  }
}

// ------------------------------------------------------------ checkers

using Checker = std::function<sim::LincheckVerdict(const sim::PoolHistory&)>;

const Checker kRealChecker = [](const sim::PoolHistory& history) { return sim::check_pool(history, {}).verdict; };

// Broken: forgets real-time order (every operation overlaps every other).
const Checker kIgnoresRealTime = [](const sim::PoolHistory& history) {
  sim::PoolHistory copy = history;
  for (auto& op : copy.ops) {
    op.call = 0;
    if (op.ret) op.ret = 1'000'000;
  }
  return sim::check_pool(copy, {}).verdict;
};

// Broken: drops pending operations, as if none had taken effect.
const Checker kDropsPending = [](const sim::PoolHistory& history) {
  sim::PoolHistory copy = history;
  std::erase_if(copy.ops, [](const sim::HistoryOp& op) { return op.pending(); });
  return sim::check_pool(copy, {}).verdict;
};

void agrees_with_brute_force(const Checker& checker) {
  const Spec spec = *gen_spec();
  const Generated generated = build(spec);
  const bool expected = brute_force_linearizable(generated.history.ops);
  if (generated.by_construction) RC_ASSERT(expected);
  const sim::LincheckVerdict verdict = checker(generated.history);
  RC_CLASSIFY(expected, "linearizable");
  RC_CLASSIFY(!expected, "not linearizable");
  RC_ASSERT(verdict == (expected ? sim::LincheckVerdict::linearizable : sim::LincheckVerdict::not_linearizable));
}

// The search merges states that differ only in times the remaining
// operations cannot tell apart (sim/lincheck.cc). On histories too long for
// the brute force, it must reach the same verdict, and name the same stuck
// operation, as the search that compares times exactly.
void agrees_with_exact_times(const Checker& checker) {
  const Spec spec = *gen_medium_spec();
  const Generated generated = build(spec);
  sim::LincheckLimits exact;
  exact.exact_times = true;
  const sim::PoolVerdict expected = sim::check_pool(generated.history, exact);
  if (generated.by_construction) RC_ASSERT(expected.verdict == sim::LincheckVerdict::linearizable);
  RC_CLASSIFY(expected.verdict == sim::LincheckVerdict::linearizable, "linearizable");
  RC_CLASSIFY(expected.verdict == sim::LincheckVerdict::not_linearizable, "not linearizable");
  RC_CLASSIFY(sim::check_pool(generated.history, {}).states < expected.states, "some states merged");
  RC_ASSERT(checker(generated.history) == expected.verdict);
}

const Checker kWithStuckOp = [](const sim::PoolHistory& history) {
  // The same verdict as kRealChecker; a failure must also name the same
  // stuck operation as the exact search, which is checked here.
  const sim::PoolVerdict verdict = sim::check_pool(history, {});
  if (verdict.verdict == sim::LincheckVerdict::not_linearizable) {
    sim::LincheckLimits exact;
    exact.exact_times = true;
    const sim::PoolVerdict expected = sim::check_pool(history, exact);
    RC_ASSERT(verdict.stuck == expected.stuck);
    RC_ASSERT(verdict.prefix_ops == expected.prefix_ops);
  }
  return verdict.verdict;
};

RC_GTEST_PROP(LincheckProps, P14_VerdictEqualsBruteForceOverEveryOrder, ()) { agrees_with_brute_force(kRealChecker); }

RC_GTEST_PROP(LincheckProps, P14_MergingStatesByTimeFormKeepsTheVerdict, ()) { agrees_with_exact_times(kWithStuckOp); }

TEST(LincheckProps, P14_BrokenCheckerIgnoringRealTimeDiffersFromExact) {
  EXPECT_FALSE(rc::check("ignores real time", [] { agrees_with_exact_times(kIgnoresRealTime); }));
}

TEST(LincheckProps, P14_BrokenCheckerIgnoringRealTimeIsCaught) {
  EXPECT_FALSE(rc::check("ignores real time", [] { agrees_with_brute_force(kIgnoresRealTime); }));
}

TEST(LincheckProps, P14_BrokenCheckerDroppingPendingOpsIsCaught) {
  EXPECT_FALSE(rc::check("drops pending ops", [] { agrees_with_brute_force(kDropsPending); }));
}

}  // namespace
