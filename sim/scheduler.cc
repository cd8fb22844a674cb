#include "sim/scheduler.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include <boost/fiber/operations.hpp>
#include <boost/fiber/type.hpp>

#include "core/assert.h"

namespace turnstile::sim {
namespace {

using boost::fibers::context;

// PCT's initial priorities are drawn from [depth, depth + kPriorityRange):
// wide enough that two fibers almost never draw the same value, and a tie is
// broken by the lower id, so priorities are distinct in every case.
constexpr std::uint64_t kPriorityRange = std::uint64_t{1} << 62;

// The most PCT depth we accept: change points are kept in a vector of
// depth - 1 entries, and depths past a handful are not useful (the paper's
// guarantee weakens by a factor k for each extra level).
constexpr std::uint32_t kMaxPctDepth = 64;

// PCT's k is a step count; capping it keeps the draws inside Rng::uniform's
// signed range. No run takes anywhere near 2^62 steps.
constexpr std::uint64_t kMaxStepsEstimate = std::uint64_t{1} << 62;

}  // namespace

std::optional<StrategySpec> parse_strategy(std::string_view text) {
  if (text == "random") return StrategySpec{};
  constexpr std::string_view kPct = "pct:";
  if (text.substr(0, kPct.size()) != kPct) return std::nullopt;
  const std::string_view digits = text.substr(kPct.size());
  std::uint32_t depth = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), depth);
  if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  if (depth < 1 || depth > kMaxPctDepth) return std::nullopt;
  StrategySpec spec;
  spec.kind = StrategyKind::pct;
  spec.pct_depth = depth;
  return spec;
}

std::string strategy_name(const StrategySpec& spec) {
  switch (spec.kind) {
    case StrategyKind::random:
      return "random";
    case StrategyKind::pct:
      return "pct:" + std::to_string(spec.pct_depth);
    case StrategyKind::replay:
      return "replay";
    case StrategyKind::guided:
      return "guided";
  }
  return "unknown";
}

Chooser::Chooser(StrategySpec spec, std::uint64_t seed, std::uint64_t steps_estimate)
    : spec_(std::move(spec)), rng_(seed) {
  if (spec_.kind != StrategyKind::pct) return;
  TS_ASSERT(spec_.pct_depth >= 1 && spec_.pct_depth <= kMaxPctDepth);
  const std::uint64_t estimate = spec_.pct_steps_estimate != 0 ? spec_.pct_steps_estimate : steps_estimate;
  const std::uint64_t k = std::clamp<std::uint64_t>(estimate, 1, kMaxStepsEstimate);
  const std::uint64_t wanted = std::min<std::uint64_t>(spec_.pct_depth - 1, k);
  // Floyd's sampling: `wanted` distinct steps out of 1..k in exactly `wanted`
  // draws, so the loop is bounded whatever k is.
  std::vector<std::uint64_t> steps;
  steps.reserve(wanted);
  for (std::uint64_t i = 0; i < wanted; ++i) {
    const std::uint64_t j = k - wanted + 1 + i;
    const auto t = static_cast<std::uint64_t>(rng_.uniform(1, static_cast<std::int64_t>(j)));
    steps.push_back(std::find(steps.begin(), steps.end(), t) == steps.end() ? t : j);
  }
  // The paper gives the i-th change point priority i, with the change points
  // in random order: shuffle which step gets which priority (Fisher-Yates).
  std::sort(steps.begin(), steps.end());
  std::vector<std::uint64_t> priorities;
  for (std::uint64_t i = 1; i <= wanted; ++i) priorities.push_back(i);
  for (std::size_t i = priorities.size(); i > 1; --i) std::swap(priorities[i - 1], priorities[rng_.below(i)]);
  for (std::size_t i = 0; i < steps.size(); ++i) change_points_.push_back(ChangePoint{steps[i], priorities[i]});
}

Choice Chooser::choose(std::span<const SimFiberId> ready) {
  TS_ASSERT(!ready.empty());
  const auto count = static_cast<std::uint32_t>(ready.size());
  std::size_t index = 0;
  switch (spec_.kind) {
    case StrategyKind::random:
      // One ready fiber is no choice: draw nothing, so a seed's stream is
      // spent only on real decisions.
      index = count == 1 ? 0 : static_cast<std::size_t>(rng_.below(count));
      break;
    case StrategyKind::pct:
      index = choose_pct(ready);
      break;
    case StrategyKind::replay:
      index = choose_replay(ready);
      break;
    case StrategyKind::guided:
      index = choose_guided(ready);
      break;
  }
  ++step_;
  TS_ASSERT(index < ready.size());
  return Choice{static_cast<std::uint32_t>(index), count};
}

std::size_t Chooser::choose_pct(std::span<const SimFiberId> ready) {
  // Fibers get their random initial priority the first time they are seen,
  // in id order, so spawning mid-run draws deterministically too.
  for (const SimFiberId id : ready) {
    if (id >= priority_.size()) priority_.resize(static_cast<std::size_t>(id) + 1, 0);
    if (priority_[id] == 0) priority_[id] = spec_.pct_depth + rng_.below(kPriorityRange);
  }
  std::size_t best = 0;
  for (std::size_t i = 1; i < ready.size(); ++i) {
    // Strictly greater: on a tie the earlier entry, the lower id, wins.
    if (priority_[ready[i]] > priority_[ready[best]]) best = i;
  }
  const std::uint64_t step = step_ + 1;
  if (next_change_ < change_points_.size() && change_points_[next_change_].step == step) {
    // The fiber that takes change point i drops to priority i after it.
    priority_[ready[best]] = change_points_[next_change_].priority;
    ++next_change_;
  }
  return best;
}

std::size_t Chooser::choose_replay(std::span<const SimFiberId> ready) {
  const auto count = static_cast<std::uint32_t>(ready.size());
  if (step_ >= spec_.replay.size()) {
    if (!diverged_at_) diverged_at_ = step_;
    return 0;
  }
  const Choice recorded = spec_.replay[step_];
  const std::uint32_t index = recorded.index % count;
  if (!diverged_at_ && !(recorded == Choice{index, count})) diverged_at_ = step_;
  return index;
}

std::size_t Chooser::choose_guided(std::span<const SimFiberId> ready) const {
  if (step_ >= spec_.guided.size()) return 0;
  return spec_.guided[step_] % ready.size();
}

FiberAlgorithm& FiberAlgorithm::for_this_thread() {
  // Boost's scheduler owns the instance and deletes it when the thread ends;
  // the destructor clears this pointer.
  thread_local FiberAlgorithm* installed = nullptr;
  if (installed == nullptr) {
    TS_ASSERT(context::active()->is_context(boost::fibers::type::main_context));
    boost::fibers::use_scheduling_algorithm<FiberAlgorithm>(&installed);
    TS_ASSERT(installed != nullptr);
  }
  return *installed;
}

FiberAlgorithm::FiberAlgorithm(FiberAlgorithm** registry) : registry_(registry) { *registry_ = this; }

FiberAlgorithm::~FiberAlgorithm() { *registry_ = nullptr; }

void FiberAlgorithm::bind(Picker* picker, std::size_t capacity) {
  TS_ASSERT(picker_ == nullptr && picker != nullptr);
  TS_ASSERT(ready_ids_.empty());
  picker_ = picker;
  capacity_ = capacity;
  ready_ids_.reserve(capacity);
  ready_contexts_.reserve(capacity);
}

void FiberAlgorithm::unbind() {
  TS_ASSERT(ready_ids_.empty());
  picker_ = nullptr;
  capacity_ = 0;
}

SimFiberId FiberAlgorithm::current_id() {
  const auto* props = context::active()->get_properties();
  if (props == nullptr) return kNoFiber;
  return static_cast<const SimFiberProps*>(props)->id();
}

void FiberAlgorithm::awakened(context* ctx, SimFiberProps& props) noexcept {
  if (ctx->is_context(boost::fibers::type::main_context)) {
    TS_ASSERT(main_ready_ == nullptr);
    main_ready_ = ctx;
    return;
  }
  if (ctx->is_context(boost::fibers::type::dispatcher_context)) {
    TS_ASSERT(dispatcher_ready_ == nullptr);
    dispatcher_ready_ = ctx;
    return;
  }
  // Only a Runtime's own fibers may run on a simulating thread.
  TS_ASSERT(picker_ != nullptr && props.id() != kNoFiber);
  TS_ASSERT(ready_ids_.size() < capacity_);
  const auto at = std::lower_bound(ready_ids_.begin(), ready_ids_.end(), props.id());
  TS_ASSERT(at == ready_ids_.end() || *at != props.id());
  const auto offset = at - ready_ids_.begin();
  ready_ids_.insert(at, props.id());
  ready_contexts_.insert(ready_contexts_.begin() + offset, ctx);
}

context* FiberAlgorithm::pick_next() noexcept {
  if (main_ready_ != nullptr) return std::exchange(main_ready_, nullptr);
  if (!ready_ids_.empty()) {
    // Only the driver's yield gets here with fibers ready (see the class
    // comment); a simulated fiber switching straight to another would be a
    // step the driver never saw.
    TS_ASSERT(context::active()->is_context(boost::fibers::type::main_context));
    TS_ASSERT(picker_ != nullptr);
    const std::size_t index = picker_->pick(ready_ids_);
    TS_ASSERT(index < ready_ids_.size());
    context* chosen = ready_contexts_[index];
    const auto offset = static_cast<std::ptrdiff_t>(index);
    ready_ids_.erase(ready_ids_.begin() + offset);
    ready_contexts_.erase(ready_contexts_.begin() + offset);
    return chosen;
  }
  return std::exchange(dispatcher_ready_, nullptr);
}

bool FiberAlgorithm::has_ready_fibers() const noexcept {
  return main_ready_ != nullptr || !ready_ids_.empty() || dispatcher_ready_ != nullptr;
}

void FiberAlgorithm::suspend_until(std::chrono::steady_clock::time_point const& /*until*/) noexcept {  // sim-purity: signature only, never read
  // Boost's dispatcher asks to sleep only when no context at all is ready,
  // the driver included. The driver never blocks, so this is a deadlock the
  // simulator cannot get out of: stop rather than hang.
  TS_ASSERT(false && "every fiber on the simulating thread is blocked, the driver included");
}

void FiberAlgorithm::notify() noexcept {
  // Nothing to wake: simulated fibers are never made ready from another thread.
}

boost::fibers::fiber_properties* FiberAlgorithm::new_properties(context* ctx) {
  const bool boost_own = ctx->is_context(boost::fibers::type::main_context) || ctx->is_context(boost::fibers::type::dispatcher_context);
  TS_ASSERT(boost_own || next_spawn_id_ != kNoFiber);
  return new SimFiberProps(ctx, boost_own ? kNoFiber : next_spawn_id_);
}

}  // namespace turnstile::sim
