#include "sim/lincheck.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "core/assert.h"
#include "core/rng.h"

namespace turnstile::sim {
namespace {

constexpr std::uint32_t kNil = std::numeric_limits<std::uint32_t>::max();

// What the search walks over: the pool's config (config ops are operations of
// the model) and its gate state.
struct ModelState {
  core::GateConfig config;
  core::PoolState pool;
};

std::uint64_t mix(std::uint64_t hash, std::uint64_t value) { return core::mix64(hash ^ value); }
std::uint64_t mix(std::uint64_t hash, std::int64_t value) { return mix(hash, static_cast<std::uint64_t>(value)); }

std::uint64_t mix(std::uint64_t hash, std::string_view text) {
  hash = mix(hash, static_cast<std::uint64_t>(text.size()));
  for (std::size_t at = 0; at < text.size(); at += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, text.data() + at, std::min<std::size_t>(8, text.size() - at));
    hash = mix(hash, word);
  }
  return hash;
}

std::uint64_t mix(std::uint64_t hash, const core::Decision& decision) {
  hash = mix(hash, static_cast<std::uint64_t>(decision.outcome));
  hash = mix(hash, decision.token);
  hash = mix(hash, std::string_view(decision.victim));
  return mix(hash, decision.held);
}

// When are two states the same for the search? The cache may merge two
// configurations (same linearized set, states A and B) only when every
// sequence of the remaining operations gives the same answers from A as from
// B. Equal states qualify, but orders that differ in time alone give states
// that are rarely equal: with G1, an operation taken after one with a later
// `now` records that later time as its session's last_seen or admitted_at.
// Those differences are invisible to the future unless a comparison can tell
// them apart, and the comparisons are few (SPEC G):
//
// - G1: the next effective now is max(last_now, op.now). last_now is the
//   largest `now` of the linearized set, the same for A and B; it is kept.
//   Every future effective now e is last_now or the `now` of a remaining
//   operation above it.
// - G2, G7, G11 ages: `e - last_seen` against ttl or ttl + grace. Every
//   threshold is the current config's or that of a remaining config op. So
//   what matters of last_seen is, for each (e, threshold) pair, whether
//   last_seen >= e - threshold: the count of pairs for which it holds (its
//   "class") says it, since the pairs are the same for A and B.
// - G7 order: (last_seen, admitted_at, client) between idle sessions. For two
//   sessions that exist now: the ranks of their times. Against a time written
//   later (an effective now, at least last_now): both times are at most
//   last_now, so only equality with last_now matters.
// - Nothing else reads a time of the state, and no decision depends on the
//   order of the sessions in the vector (core/gate.h).
//
// Sharper: a session's last_seen is read only until its client's next
// refresh. A remaining completed operation of that client whose recorded
// answer shows it refreshed the client's session (a heartbeat answered
// alive; an admit answered admitted, resumed, switched or rotated that
// cannot be a G3 replay, since no other admit of the client has its request
// id) takes effect before every operation called after its return; so until
// it does, effective nows come only from operations called by then. If
// last_seen is within the smallest ttl of the largest of those, the session
// stays live until the refresh, whatever the order: its class, rank and
// equality with last_now cannot matter ("always live"). Its admitted_at
// still can (G7 ties after the refresh), so admitted_at ranks are kept for
// every session.
//
// So the search compares states by: config, last_now, last_token, and per
// session (by client) every field but the two times; for admitted_at its
// rank and equality with last_now; for last_seen, unless the session is
// always live, its class, rank and equality with last_now. A finer
// comparison is always sound; this one is exact for the answers, and merges
// the orders of concurrent operations that only moved times around.

// The remaining operations' times, thresholds and refreshes, kept up to date
// as the search linearizes operations and undoes them.
class FutureTimes {
 public:
  // `ops` in call order; `completed` says which returned (within the problem).
  void init(const std::vector<const HistoryOp*>& ops, const std::vector<std::uint8_t>& completed) {
    const std::size_t n = ops.size();
    ops_ = &ops;
    remaining_.assign(n, 1);
    slot_.assign(n, kNil);
    nows_.clear();
    calls_.clear();
    refreshers_.clear();
    thresholds_.clear();
    ttls_.clear();
    // A G3 replay answers like the admit it replays but refreshes nothing. An
    // admit can be a replay only if another admit of its client carries the
    // same request id.
    std::map<std::pair<std::string_view, std::string_view>, int> admits;
    for (const HistoryOp* op : ops) {
      const auto* gate_op = std::get_if<core::Op>(&op->op);
      if (gate_op != nullptr && gate_op->kind == core::OpKind::admit) ++admits[{gate_op->client, gate_op->request}];
    }
    std::vector<std::pair<std::int64_t, std::uint32_t>> by_now;
    for (std::uint32_t i = 0; i < n; ++i) {
      const HistoryOp& op = *ops[i];
      calls_.push_back(op.call);
      if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
        add_config(*config, +1);
        continue;
      }
      const core::Op& gate_op = std::get<core::Op>(op.op);
      by_now.emplace_back(gate_op.now, i);
      if (completed[i] == 0) continue;
      const core::Outcome outcome = op.out->outcome;
      const bool refreshes = gate_op.kind == core::OpKind::heartbeat
                                 ? outcome == core::Outcome::alive
                                 : gate_op.kind == core::OpKind::admit && core::is_granted(outcome) &&
                                       admits[{gate_op.client, gate_op.request}] == 1;
      if (refreshes) refreshers_[gate_op.client].push_back(i);
    }
    std::sort(by_now.begin(), by_now.end());
    for (std::uint32_t at = 0; at < by_now.size(); ++at) {
      nows_.push_back(by_now[at].first);
      slot_[by_now[at].second] = at;
    }
    // A Fenwick tree of how many remaining operations sit at each slot of nows_.
    counts_.assign(nows_.size() + 1, 0);
    for (std::size_t at = 1; at <= nows_.size(); ++at) {
      counts_[at] += 1;
      const std::size_t parent = at + lowest_bit(at);
      if (parent <= nows_.size()) counts_[parent] += counts_[at];
    }
    // A segment tree of the largest remaining `now` over ranges of call order.
    leaves_ = 1;
    while (leaves_ < std::max<std::size_t>(n, 1)) leaves_ *= 2;
    max_now_.assign(2 * leaves_, kNoTime);
    for (std::uint32_t i = 0; i < n; ++i) max_now_[leaves_ + i] = now_of(i);
    for (std::size_t at = leaves_ - 1; at >= 1; --at) max_now_[at] = std::max(max_now_[2 * at], max_now_[2 * at + 1]);
  }

  // Operation i was linearized (delta -1: it no longer remains) or undone (+1).
  void change(std::uint32_t i, int delta) {
    const HistoryOp& op = *(*ops_)[i];
    remaining_[i] = delta > 0 ? 1 : 0;
    if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
      add_config(*config, delta);
      return;
    }
    for (std::size_t at = slot_[i] + 1; at <= nows_.size(); at += lowest_bit(at)) counts_[at] += delta;
    std::size_t at = leaves_ + i;
    max_now_[at] = delta > 0 ? now_of(i) : kNoTime;
    for (at /= 2; at >= 1; at /= 2) max_now_[at] = std::max(max_now_[2 * at], max_now_[2 * at + 1]);
  }

  // The class of a last_seen: the number of (e, threshold) pairs, e one of
  // the future effective nows, with last_seen >= e - threshold.
  std::int64_t seen_class(core::Ms seen, core::Ms last_now, const core::GateConfig& config) const {
    std::int64_t count =
        count_up_to(seen, last_now, config.ttl_ms) + count_up_to(seen, last_now, config.ttl_ms + config.grace_ms);
    for (const auto& [threshold, uses] : thresholds_) {
      if (uses > 0) count += count_up_to(seen, last_now, threshold);
    }
    return count;
  }

  // True when the session stays live until its client's next refresh (see
  // above). Every completed operation before `first_open` (in call order)
  // is linearized.
  bool always_live(const core::Session& session, core::Ms last_now, const core::GateConfig& config,
                   std::uint32_t first_open) const {
    auto it = refreshers_.find(session.client);
    if (it == refreshers_.end()) return false;
    // The first remaining refresher to return. Refreshers are in call order
    // and return after their call, so the scan stops at a call past the best.
    std::optional<std::int64_t> first_ret;
    const std::vector<std::uint32_t>& refreshers = it->second;
    for (auto at = std::lower_bound(refreshers.begin(), refreshers.end(), first_open); at != refreshers.end(); ++at) {
      const std::uint32_t i = *at;
      if (first_ret && calls_[i] > *first_ret) break;
      if (remaining_[i] != 0 && (!first_ret || *(*ops_)[i]->ret < *first_ret)) first_ret = *(*ops_)[i]->ret;
    }
    if (!first_ret) return false;
    const auto called_by =
        static_cast<std::size_t>(std::upper_bound(calls_.begin(), calls_.end(), *first_ret) - calls_.begin());
    const core::Ms latest = std::max(last_now, largest_now(called_by));
    core::Ms smallest_ttl = config.ttl_ms;
    for (const auto& [ttl, uses] : ttls_) {
      if (uses > 0) {
        smallest_ttl = std::min(smallest_ttl, ttl);
        break;
      }
    }
    return latest - session.last_seen <= smallest_ttl;
  }

 private:
  static constexpr core::Ms kNoTime = std::numeric_limits<core::Ms>::min();

  static std::size_t lowest_bit(std::size_t at) { return at & (~at + 1); }

  core::Ms now_of(std::uint32_t i) const {
    const HistoryOp& op = *(*ops_)[i];
    return op.is_config() ? kNoTime : std::get<core::Op>(op.op).now;
  }

  void add_config(const core::GateConfig& config, int delta) {
    thresholds_[config.ttl_ms] += delta;
    thresholds_[config.ttl_ms + config.grace_ms] += delta;
    ttls_[config.ttl_ms] += delta;
  }

  // The e among {last_now} and the remaining nows above it with e <= seen + threshold.
  std::int64_t count_up_to(core::Ms seen, core::Ms last_now, core::Ms threshold) const {
    const core::Ms limit = seen + threshold;  // times and thresholds are at most 2^53, no overflow
    if (limit < last_now) return 0;
    return 1 + prefix(upper(limit)) - prefix(upper(last_now));
  }

  std::size_t upper(core::Ms time) const {
    return static_cast<std::size_t>(std::upper_bound(nows_.begin(), nows_.end(), time) - nows_.begin());
  }

  std::int64_t prefix(std::size_t count) const {
    std::int64_t sum = 0;
    for (std::size_t at = count; at > 0; at -= lowest_bit(at)) sum += counts_[at];
    return sum;
  }

  // The largest `now` of the remaining operations among the first `count` in call order.
  core::Ms largest_now(std::size_t count) const {
    core::Ms best = kNoTime;
    std::size_t lo = leaves_;
    std::size_t hi = leaves_ + count;  // half-open
    while (lo < hi) {
      if (lo & 1) best = std::max(best, max_now_[lo++]);
      if (hi & 1) best = std::max(best, max_now_[--hi]);
      lo /= 2;
      hi /= 2;
    }
    return best;
  }

  const std::vector<const HistoryOp*>* ops_ = nullptr;
  std::vector<std::uint8_t> remaining_;
  std::vector<std::int64_t> calls_;  // in call order
  std::vector<std::uint32_t> slot_;  // op -> its place in nows_ (kNil for config ops)
  std::vector<core::Ms> nows_;       // every gate op's now, sorted
  std::vector<std::int64_t> counts_;
  std::size_t leaves_ = 1;
  std::vector<core::Ms> max_now_;
  std::map<std::string, std::vector<std::uint32_t>, std::less<>> refreshers_;  // by client, in call order
  std::map<core::Ms, int> thresholds_;                                         // of the remaining config ops
  std::map<core::Ms, int> ttls_;                                               // of the remaining config ops
};

// The form a state is compared by (see above), sessions ordered by client.
// With `exact_times`, the times themselves stand in for their class and ranks.
struct SessionForm {
  const core::Session* session = nullptr;
  bool always_live = false;
  std::int64_t seen_class = 0;
  std::int64_t seen_rank = 0;
  std::int64_t admitted_rank = 0;
  bool seen_is_last_now = false;
  bool admitted_is_last_now = false;
};

void state_form(const ModelState& state, const FutureTimes& future, std::uint32_t first_open, bool exact_times,
                std::vector<SessionForm>& form, std::vector<core::Ms>& scratch) {
  const core::PoolState& pool = state.pool;
  form.clear();
  for (const core::Session& session : pool.sessions) form.push_back(SessionForm{&session});
  std::sort(form.begin(), form.end(),
            [](const SessionForm& a, const SessionForm& b) { return a.session->client < b.session->client; });
  if (exact_times) {
    for (SessionForm& f : form) {
      f.seen_class = f.session->last_seen;
      f.admitted_rank = f.session->admitted_at;
    }
    return;
  }
  for (SessionForm& f : form) {
    f.admitted_is_last_now = f.session->admitted_at == pool.last_now;
    f.always_live = future.always_live(*f.session, pool.last_now, state.config, first_open);
    if (f.always_live) continue;
    f.seen_class = future.seen_class(f.session->last_seen, pool.last_now, state.config);
    f.seen_is_last_now = f.session->last_seen == pool.last_now;
  }
  scratch.clear();
  for (const SessionForm& f : form) scratch.push_back(f.session->admitted_at);
  std::sort(scratch.begin(), scratch.end());
  for (SessionForm& f : form) {
    f.admitted_rank = std::lower_bound(scratch.begin(), scratch.end(), f.session->admitted_at) - scratch.begin();
  }
  scratch.clear();
  for (const SessionForm& f : form) {
    if (!f.always_live) scratch.push_back(f.session->last_seen);
  }
  std::sort(scratch.begin(), scratch.end());
  for (SessionForm& f : form) {
    if (f.always_live) continue;
    f.seen_rank = std::lower_bound(scratch.begin(), scratch.end(), f.session->last_seen) - scratch.begin();
  }
}

// Our own hash over the form, so that it is the same with any standard
// library; equality is still checked in full on a hash hit.
std::uint64_t hash_form(const ModelState& state, const std::vector<SessionForm>& form) {
  std::uint64_t hash = 0x243f6a8885a308d3;
  hash = mix(hash, state.config.capacity);
  hash = mix(hash, state.config.ttl_ms);
  hash = mix(hash, state.config.grace_ms);
  hash = mix(hash, state.pool.last_now);
  hash = mix(hash, state.pool.last_token);
  hash = mix(hash, static_cast<std::uint64_t>(form.size()));
  for (const SessionForm& f : form) {
    const core::Session& session = *f.session;
    hash = mix(hash, std::string_view(session.client));
    hash = mix(hash, std::string_view(session.episode));
    hash = mix(hash, session.token);
    hash = mix(hash, std::string_view(session.last_request));
    hash = mix(hash, session.last_issued);
    hash = mix(hash, session.last_decision);
    hash = mix(hash, f.seen_class);
    hash = mix(hash, f.seen_rank);
    hash = mix(hash, f.admitted_rank);
    hash = mix(hash, static_cast<std::uint64_t>(f.always_live) << 2 |
                         static_cast<std::uint64_t>(f.seen_is_last_now) << 1 | (f.admitted_is_last_now ? 1 : 0));
  }
  return hash;
}

bool same_form(const ModelState& a, const std::vector<SessionForm>& form_a, const ModelState& b,
               const std::vector<SessionForm>& form_b) {
  if (a.config.capacity != b.config.capacity || a.config.ttl_ms != b.config.ttl_ms ||
      a.config.grace_ms != b.config.grace_ms || a.pool.last_now != b.pool.last_now ||
      a.pool.last_token != b.pool.last_token || form_a.size() != form_b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < form_a.size(); ++i) {
    const SessionForm& x = form_a[i];
    const SessionForm& y = form_b[i];
    const core::Session& s = *x.session;
    const core::Session& t = *y.session;
    if (s.client != t.client || s.episode != t.episode || s.token != t.token || s.last_request != t.last_request ||
        s.last_issued != t.last_issued || s.last_decision != t.last_decision || x.always_live != y.always_live ||
        x.seen_class != y.seen_class || x.seen_rank != y.seen_rank || x.admitted_rank != y.admitted_rank ||
        x.seen_is_last_now != y.seen_is_last_now || x.admitted_is_last_now != y.admitted_is_last_now) {
      return false;
    }
  }
  return true;
}

std::size_t heap_bytes(const std::string& text) {
  // libstdc++ keeps up to 15 bytes inside the string object.
  return text.capacity() > 15 ? text.capacity() + 1 : 0;
}

// An estimate of the memory a state holds, for the memory bound.
std::size_t state_bytes(const ModelState& state) {
  std::size_t bytes = sizeof(ModelState) + state.pool.sessions.capacity() * sizeof(core::Session);
  for (const core::Session& session : state.pool.sessions) {
    bytes += heap_bytes(session.client) + heap_bytes(session.episode) + heap_bytes(session.last_request) +
             heap_bytes(session.last_decision.victim);
  }
  return bytes;
}

// One step of the model. A completed operation must get exactly its recorded
// answer; a pending one may get any.
bool step(ModelState& state, const HistoryOp& op, bool completed, core::Decision* model = nullptr) {
  if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
    state.config = *config;
    return true;
  }
  core::Decision decision = core::apply(state.pool, std::get<core::Op>(op.op), state.config);
  const bool matches = !completed || decision == *op.out;
  if (model != nullptr) *model = std::move(decision);
  return matches;
}

// A pool's call and return events in time order. At equal times calls come
// first (overlap), then file order. Pending returns come after everything.
struct Event {
  bool pending_return = false;
  std::int64_t time = 0;
  bool is_return = false;
  std::uint32_t op = 0;  // index into PoolHistory::ops

  auto key() const { return std::tie(pending_return, time, is_return, op); }
};

struct Timeline {
  std::vector<Event> events;
  std::vector<std::size_t> completed_returns;  // positions in `events`, in order
};

Timeline make_timeline(const PoolHistory& pool) {
  TS_ASSERT(pool.ops.size() < kNil / 2);
  Timeline timeline;
  timeline.events.reserve(pool.ops.size() * 2);
  for (std::size_t i = 0; i < pool.ops.size(); ++i) {
    const HistoryOp& op = pool.ops[i];
    const auto index = static_cast<std::uint32_t>(i);
    timeline.events.push_back(Event{false, op.call, false, index});
    timeline.events.push_back(Event{op.pending(), op.ret.value_or(0), true, index});
  }
  std::sort(timeline.events.begin(), timeline.events.end(),
            [](const Event& a, const Event& b) { return a.key() < b.key(); });
  for (std::size_t at = 0; at < timeline.events.size(); ++at) {
    if (timeline.events[at].is_return && !timeline.events[at].pending_return) timeline.completed_returns.push_back(at);
  }
  return timeline;
}

// One search: the prefix of a pool's history up to and including the event
// at `cut` (a completed return). Operations are renumbered by call order.
struct Problem {
  std::vector<std::uint32_t> ops;       // problem index -> PoolHistory::ops index
  std::vector<std::uint8_t> completed;  // returned within the prefix
  std::vector<std::uint32_t> list;      // events in list order: problem index * 2 + is_return
};

Problem make_problem(const Timeline& timeline, std::size_t pool_ops, std::size_t cut) {
  Problem problem;
  std::vector<std::uint32_t> index_of(pool_ops, kNil);
  for (std::size_t at = 0; at <= cut; ++at) {
    const Event& event = timeline.events[at];
    if (!event.is_return) {
      index_of[event.op] = static_cast<std::uint32_t>(problem.ops.size());
      problem.ops.push_back(event.op);
      problem.completed.push_back(0);
    } else {
      TS_ASSERT(index_of[event.op] != kNil);
      problem.completed[index_of[event.op]] = 1;
    }
    problem.list.push_back(index_of[event.op] * 2 + (event.is_return ? 1 : 0));
  }
  // Returns past the cut, and those of pending operations, go last.
  for (std::uint32_t i = 0; i < problem.ops.size(); ++i) {
    if (!problem.completed[i]) problem.list.push_back(i * 2 + 1);
  }
  return problem;
}

struct SearchResult {
  LincheckVerdict verdict = LincheckVerdict::unknown;
  std::string unknown_cause;
  std::vector<std::size_t> order;  // PoolHistory::ops indices
  std::uint64_t states = 0;
  // How many of the prefix's completed returns some configuration got past
  // (every operation returned by then linearized): that shorter prefix is
  // explained, whatever the verdict on this one.
  std::size_t reach = 0;
};

class Search {
 public:
  Search(const PoolHistory& pool, const Problem& problem, const LincheckLimits& limits, std::uint64_t& steps)
      : pool_(pool), problem_(problem), limits_(limits), steps_(steps), n_(problem.ops.size()) {}

  SearchResult run() {
    build_list();
    rank_candidates();
    ops_.clear();
    ops_.reserve(n_);
    for (std::uint32_t index : problem_.ops) ops_.push_back(&pool_.ops[index]);
    future_.init(ops_, problem_.completed);
    lin_.assign(n_, 0);
    completed_left_ = 0;
    for (std::uint8_t completed : problem_.completed) completed_left_ += completed;
    completed_total_ = completed_left_;
    return_ordinal_.assign(n_, 0);
    {
      std::size_t ordinal = 0;
      for (std::uint32_t node : problem_.list) {
        if (node % 2 == 1 && problem_.completed[node / 2] != 0) return_ordinal_[node / 2] = ordinal++;
      }
    }
    kc_ = first_unlinearized_completed(0);
    if (completed_left_ == 0) return finish(LincheckVerdict::linearizable);

    ModelState state;
    push_level();
    while (true) {
      Level& level = levels_.back();
      if (level.next == level.candidates.size()) {
        // Every candidate from this configuration was tried (or none could
        // be: the first event left is the return of an operation that is
        // not linearized). Undo the choice that led here.
        pop_level();
        if (levels_.empty()) return finish(LincheckVerdict::not_linearizable);
        const Level& parent = levels_.back();
        unmark(parent.chosen, parent.saved);
        unlift(parent.chosen);
        // The state before the parent's choice is the one its own parent reached.
        state = levels_.size() >= 2 ? entries_[levels_[levels_.size() - 2].entry].state : ModelState{};
        continue;
      }
      const std::uint32_t op = level.candidates[level.next++];
      ++steps_;
      if (steps_ % kStopPollSteps == 0 && limits_.should_stop && limits_.should_stop()) {
        return finish(LincheckVerdict::unknown, "time limit");
      }
      scratch_ = state;
      if (!step(scratch_, pool_.ops[problem_.ops[op]], problem_.completed[op] != 0)) continue;
      const Saved saved = mark(op);
      if (!remember(scratch_)) {
        unmark(op, saved);
        continue;
      }
      level.chosen = op;
      level.saved = saved;
      level.entry = static_cast<std::uint32_t>(entries_.size() - 1);
      std::swap(state, scratch_);
      lift(op);
      if (completed_left_ == 0) return finish(LincheckVerdict::linearizable);
      if (search_bytes_ > limits_.max_search_bytes) return finish(LincheckVerdict::unknown, "memory limit");
      push_level();
    }
  }

 private:
  // What mark() changes besides the bit, for unmark().
  struct Saved {
    std::uint32_t kc = 0;
    std::uint32_t hi = 0;
  };
  // One configuration on the search's path: the operations that may be
  // linearized next, in the order they are tried, and the one chosen. The
  // state the choice reached is in the cache (every step the search takes
  // adds a cache entry), so levels hold no states.
  struct Level {
    std::vector<std::uint32_t> candidates;
    std::size_t next = 0;
    std::uint32_t chosen = 0;
    Saved saved;
    std::uint32_t entry = 0;  // index into entries_
  };
  struct CacheEntry {
    std::uint64_t hash = 0;
    std::uint32_t kc = 0;
    std::size_t key_begin = 0;
    std::uint32_t key_size = 0;
    ModelState state;
  };

  // Node 2i is op i's call, 2i + 1 its return; the head is node 2n.
  std::uint32_t head() const { return static_cast<std::uint32_t>(2 * n_); }

  void build_list() {
    next_.assign(2 * n_ + 1, kNil);
    prev_.assign(2 * n_ + 1, kNil);
    std::uint32_t last = head();
    for (std::uint32_t node : problem_.list) {
      next_[last] = node;
      prev_[node] = last;
      last = node;
    }
  }

  void unlink(std::uint32_t node) {
    next_[prev_[node]] = next_[node];
    if (next_[node] != kNil) prev_[next_[node]] = prev_[node];
  }
  // Dancing links: a node keeps its neighbours while out, so undoing the
  // removals in reverse order puts it back where it was.
  void relink(std::uint32_t node) {
    if (next_[node] != kNil) prev_[next_[node]] = node;
    next_[prev_[node]] = node;
  }
  void lift(std::uint32_t op) {
    unlink(op * 2);
    unlink(op * 2 + 1);
  }
  void unlift(std::uint32_t op) {
    relink(op * 2 + 1);
    relink(op * 2);
  }

  // The order in which candidates are tried. Any order finds the same
  // verdict; this one finds a linearization fast. Config ops first; then by
  // the op's `now`, since a store clock read inside the atomic step (or
  // close to it) orders operations as they took effect, and taking them out
  // of that order makes G1 clamp times, so states that differ only deep in
  // the future; pending operations last, as they may never have happened.
  void rank_candidates() {
    std::vector<std::uint32_t> order(n_);
    for (std::uint32_t i = 0; i < n_; ++i) order[i] = i;
    auto key = [&](std::uint32_t i) {
      const HistoryOp& op = pool_.ops[problem_.ops[i]];
      const std::int64_t now =
          op.is_config() ? std::numeric_limits<std::int64_t>::min() : std::get<core::Op>(op.op).now;
      return std::make_tuple(problem_.completed[i] == 0, now, i);
    };
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return key(a) < key(b); });
    rank_.assign(n_, 0);
    for (std::uint32_t r = 0; r < n_; ++r) rank_[order[r]] = r;
  }

  // The candidates: every operation whose call comes before the first
  // return still in the list (Lowe's minimal operations), best first.
  void push_level() {
    levels_.emplace_back();
    std::vector<std::uint32_t>& candidates = levels_.back().candidates;
    std::uint32_t node = next_[head()];
    for (; node != kNil && node % 2 == 0; node = next_[node]) candidates.push_back(node / 2);
    // The first return left is the earliest completed one not linearized:
    // every completed return before it has been got past.
    if (node != kNil && problem_.completed[node / 2] != 0) reach_ = std::max(reach_, return_ordinal_[node / 2]);
    std::sort(candidates.begin(), candidates.end(),
              [&](std::uint32_t a, std::uint32_t b) { return rank_[a] < rank_[b]; });
    search_bytes_ += sizeof(Level) + candidates.capacity() * sizeof(std::uint32_t);
  }

  void pop_level() {
    search_bytes_ -= sizeof(Level) + levels_.back().candidates.capacity() * sizeof(std::uint32_t);
    levels_.pop_back();
  }

  std::uint32_t first_unlinearized_completed(std::uint32_t from) const {
    std::uint32_t at = from;
    while (at < n_ && (lin_[at] != 0 || problem_.completed[at] == 0)) ++at;
    return at;
  }

  // The linearized set is kept as: every completed operation below kc_ (the
  // first completed one not linearized, in call order), plus the sorted list
  // of linearized operations that this does not imply. Every linearized
  // operation was called before kc_'s return, so the list stays about as
  // short as the history's concurrency (plus linearized pending operations).
  Saved mark(std::uint32_t op) {
    const Saved saved{kc_, hi_};
    lin_[op] = 1;
    future_.change(op, -1);
    if (problem_.completed[op] != 0) {
      --completed_left_;
    } else {
      lin_pending_.insert(std::lower_bound(lin_pending_.begin(), lin_pending_.end(), op), op);
    }
    if (op == kc_) kc_ = first_unlinearized_completed(op + 1);
    hi_ = std::max(hi_, op + 1);
    return saved;
  }

  void unmark(std::uint32_t op, const Saved& saved) {
    lin_[op] = 0;
    future_.change(op, +1);
    if (problem_.completed[op] != 0) {
      ++completed_left_;
    } else {
      lin_pending_.erase(std::lower_bound(lin_pending_.begin(), lin_pending_.end(), op));
    }
    kc_ = saved.kc;
    hi_ = saved.hi;
  }

  void build_key() {
    key_.clear();
    for (std::uint32_t op : lin_pending_) {
      if (op >= kc_) break;
      key_.push_back(op);
    }
    for (std::uint32_t op = kc_ + 1; op < hi_; ++op) {
      if (lin_[op] != 0) key_.push_back(op);
    }
  }

  bool same_key(const CacheEntry& entry) const {
    return entry.kc == kc_ && entry.key_size == key_.size() &&
           std::equal(key_.begin(), key_.end(), key_pool_.begin() + static_cast<std::ptrdiff_t>(entry.key_begin));
  }

  // Adds the current linearized set with `state` to the cache; false when it
  // was there already (that configuration has been explored).
  bool remember(const ModelState& state) {
    build_key();
    std::uint64_t hash = mix(0x13198a2e03707344, static_cast<std::uint64_t>(kc_));
    for (std::uint32_t op : key_) hash = mix(hash, static_cast<std::uint64_t>(op));
    state_form(state, future_, kc_, limits_.exact_times, form_, times_);
    hash = mix(hash, hash_form(state, form_));

    if (table_.empty() || (entries_.size() + 1) * 2 > table_.size()) grow();
    const std::size_t mask = table_.size() - 1;
    std::size_t slot = hash & mask;
    while (table_[slot] != kNil) {
      const CacheEntry& entry = entries_[table_[slot]];
      if (entry.hash == hash && same_key(entry)) {
        // Same linearized set, so the same remaining operations: the forms compare.
        state_form(entry.state, future_, kc_, limits_.exact_times, other_form_, times_);
        if (same_form(entry.state, other_form_, state, form_)) return false;
      }
      slot = (slot + 1) & mask;
    }
    TS_ASSERT(entries_.size() < kNil);
    table_[slot] = static_cast<std::uint32_t>(entries_.size());
    entries_.push_back(CacheEntry{hash, kc_, key_pool_.size(), static_cast<std::uint32_t>(key_.size()), state});
    key_pool_.insert(key_pool_.end(), key_.begin(), key_.end());
    search_bytes_ +=
        sizeof(CacheEntry) + 2 * sizeof(std::uint32_t) + key_.size() * sizeof(std::uint32_t) + state_bytes(state);
    return true;
  }

  void grow() {
    std::vector<std::uint32_t> table(table_.empty() ? 1024 : table_.size() * 2, kNil);
    const std::size_t mask = table.size() - 1;
    for (std::uint32_t index = 0; index < entries_.size(); ++index) {
      std::size_t slot = entries_[index].hash & mask;
      while (table[slot] != kNil) slot = (slot + 1) & mask;
      table[slot] = index;
    }
    table_ = std::move(table);
  }

  SearchResult finish(LincheckVerdict verdict, std::string cause = {}) {
    SearchResult result;
    result.verdict = verdict;
    result.unknown_cause = std::move(cause);
    result.states = entries_.size();
    result.reach = verdict == LincheckVerdict::linearizable ? completed_total_ : reach_;
    if (verdict == LincheckVerdict::linearizable) {
      for (const Level& level : levels_) result.order.push_back(problem_.ops[level.chosen]);
    }
    return result;
  }

  const PoolHistory& pool_;
  const Problem& problem_;
  const LincheckLimits& limits_;
  std::uint64_t& steps_;
  const std::size_t n_;

  std::vector<std::uint32_t> next_;
  std::vector<std::uint32_t> prev_;

  std::vector<std::uint8_t> lin_;
  std::vector<std::uint32_t> lin_pending_;  // linearized pending operations, sorted
  std::size_t completed_left_ = 0;
  std::size_t completed_total_ = 0;
  std::vector<std::size_t> return_ordinal_;  // completed op -> how many completed returns come before its own
  std::size_t reach_ = 0;
  std::uint32_t kc_ = 0;
  std::uint32_t hi_ = 0;  // one past the highest linearized operation
  std::vector<std::uint32_t> key_;

  std::vector<const HistoryOp*> ops_;  // problem index -> operation
  FutureTimes future_;
  std::vector<SessionForm> form_;
  std::vector<SessionForm> other_form_;
  std::vector<core::Ms> times_;
  std::vector<std::uint32_t> rank_;  // problem index -> place in the order candidates are tried
  std::vector<Level> levels_;
  ModelState scratch_;

  std::vector<CacheEntry> entries_;
  std::vector<std::uint32_t> key_pool_;
  std::vector<std::uint32_t> table_;  // open addressing over entries_, kNil for empty
  std::size_t search_bytes_ = 0;      // the cache's and the levels' estimate
};

SearchResult search_prefix(const PoolHistory& pool, const Timeline& timeline, std::size_t completed_count,
                           const LincheckLimits& limits, std::uint64_t& steps) {
  if (completed_count == 0) return SearchResult{LincheckVerdict::linearizable, {}, {}, 0};
  const Problem problem = make_problem(timeline, pool.ops.size(), timeline.completed_returns[completed_count - 1]);
  Search search(pool, problem, limits, steps);
  return search.run();
}

// Replays an order from the start, recording the gate's answer at each place.
std::vector<Placed> place(const PoolHistory& pool, const std::vector<std::size_t>& order, ModelState& state) {
  std::vector<Placed> placed;
  placed.reserve(order.size());
  for (std::size_t index : order) {
    Placed entry{index, {}};
    step(state, pool.ops[index], false, &entry.model);
    placed.push_back(std::move(entry));
  }
  return placed;
}

}  // namespace

std::string_view verdict_name(LincheckVerdict verdict) {
  switch (verdict) {
    case LincheckVerdict::linearizable:
      return "linearizable";
    case LincheckVerdict::not_linearizable:
      return "not linearizable";
    case LincheckVerdict::unknown:
      return "unknown";
  }
  return "unknown";
}

std::vector<PoolHistory> split_by_pool(std::vector<HistoryOp> ops) {
  std::map<std::string, PoolHistory, std::less<>> pools;
  for (HistoryOp& op : ops) {
    auto it = pools.find(op.pool);
    if (it == pools.end()) it = pools.emplace(op.pool, PoolHistory{op.pool, {}}).first;
    it->second.ops.push_back(std::move(op));
  }
  std::vector<PoolHistory> result;
  result.reserve(pools.size());
  for (auto& [name, pool] : pools) result.push_back(std::move(pool));
  return result;
}

PoolVerdict check_pool(const PoolHistory& pool, const LincheckLimits& limits) {
  PoolVerdict verdict;
  verdict.operations = pool.ops.size();
  for (const HistoryOp& op : pool.ops) {
    TS_ASSERT(op.pool == pool.pool);
    TS_ASSERT(op.pending() || op.is_config() || op.out.has_value());
    if (op.pending()) ++verdict.pending;
  }
  const Timeline timeline = make_timeline(pool);
  const std::size_t completed = timeline.completed_returns.size();

  // Operations called after the last completed return can all take effect
  // after it (or never), so that prefix decides the whole history.
  SearchResult whole = search_prefix(pool, timeline, completed, limits, verdict.steps);
  verdict.verdict = whole.verdict;
  verdict.states = whole.states;
  if (whole.verdict != LincheckVerdict::not_linearizable) {
    verdict.unknown_cause = std::move(whole.unknown_cause);
    if (whole.verdict == LincheckVerdict::unknown && whole.reach < completed) {
      verdict.frontier = timeline.events[timeline.completed_returns[whole.reach]].op;
    }
    ModelState state;
    verdict.order = place(pool, whole.order, state);
    return verdict;
  }

  // The shortest prefix that cannot be explained. A prefix is explained only
  // if every shorter one is (drop the operations called later; those that
  // return later become pending), so a search over the number of completed
  // returns finds it: `low` completed returns are explained, `high` are not.
  // Every search also reports how far it got, a lower bound that is usually
  // just short of the answer, so the probes gallop up from it before they
  // bisect: probes that fail cost as much as the whole search did.
  std::size_t low = whole.reach;
  std::size_t high = completed;
  std::vector<std::size_t> low_order;
  bool low_order_known = low == 0;
  bool galloping = true;
  std::size_t stride = 1;
  while (high - low > 1) {
    const std::size_t probe = galloping ? std::min(low + stride, high - 1) : low + (high - low) / 2;
    SearchResult part = search_prefix(pool, timeline, probe, limits, verdict.steps);
    if (part.verdict == LincheckVerdict::linearizable) {
      low = probe;
      low_order = std::move(part.order);
      low_order_known = true;
      stride *= 2;
    } else if (part.verdict == LincheckVerdict::not_linearizable) {
      high = probe;
      galloping = false;
      if (part.reach > low) {
        low = part.reach;
        low_order_known = false;
      }
    } else {
      verdict.minimized = false;
      break;
    }
  }
  if (!low_order_known) {
    // Explained (some search got past it), and fast to explain again.
    SearchResult part = search_prefix(pool, timeline, low, limits, verdict.steps);
    if (part.verdict == LincheckVerdict::linearizable) low_order = std::move(part.order);
  }
  const std::size_t cut = timeline.completed_returns[high - 1];
  verdict.stuck = timeline.events[cut].op;
  for (std::size_t at = 0; at < cut; ++at) {
    if (!timeline.events[at].is_return) ++verdict.prefix_ops;
  }

  ModelState state;
  verdict.order = place(pool, low_order, state);
  auto placed_stuck =
      std::find_if(verdict.order.begin(), verdict.order.end(), [&](const Placed& p) { return p.op == verdict.stuck; });
  if (placed_stuck != verdict.order.end()) {
    verdict.model_out = placed_stuck->model;
  } else {
    step(state, pool.ops[verdict.stuck], false, &verdict.model_out);
  }
  return verdict;
}

}  // namespace turnstile::sim
