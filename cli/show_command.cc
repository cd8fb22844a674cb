#include "cli/show_command.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/file_io.h"
#include "core/outcome.h"
#include "core/response.h"
#include "sim/describe.h"

namespace turnstile::cli {
namespace {

using sim::Event;

// Inputs larger than this are refused: a trace of that size would take
// minutes to parse, and a window of it is what the page shows anyway.
constexpr std::size_t kMaxInputBytes = std::size_t{2} << 30;
// What lincheck may use while looking for the operation to highlight.
constexpr std::size_t kLincheckMemoryBytes = std::size_t{1} << 30;

// ------------------------------------------------------------------ columns

// Which events get a column of their own and which share a summary column:
// [lo, hi) in full, `before` summary columns for [0, lo) and `after` for
// [hi, total).
struct Plan {
  std::uint64_t total = 0;
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  std::uint64_t before = 0;
  std::uint64_t after = 0;

  std::size_t columns() const { return static_cast<std::size_t>(before + (hi - lo) + after); }
  bool full(std::uint64_t i) const { return i >= lo && i < hi; }
  std::size_t column_of(std::uint64_t i) const {
    if (i < lo) return static_cast<std::size_t>(i * before / lo);
    if (i < hi) return static_cast<std::size_t>(before + (i - lo));
    return static_cast<std::size_t>(before + (hi - lo) + (i - hi) * after / (total - hi));
  }
  // Whether an operation from event `from` to event `to` reaches the window.
  bool overlaps(std::uint64_t from, std::uint64_t to) const { return to >= lo && from < hi; }
};

Plan plan_columns(std::uint64_t total, std::optional<std::uint64_t> focus, const ShowLimits& limits) {
  Plan plan;
  plan.total = total;
  plan.hi = total;
  const std::uint64_t detail = std::max<std::uint64_t>(1, limits.detail);
  if (total <= detail) return plan;
  // More of the window before the focus than after it: a violation's cause
  // comes before it.
  const std::uint64_t f = std::min(total - 1, focus.value_or(0));
  const std::uint64_t lead = detail * 3 / 4;
  plan.lo = f > lead ? f - lead : 0;
  plan.hi = std::min(total, plan.lo + detail);
  plan.lo = plan.hi - detail;
  plan.before = std::min<std::uint64_t>(plan.lo, limits.buckets);
  plan.after = std::min<std::uint64_t>(total - plan.hi, limits.buckets);
  return plan;
}

// What a summary column counts.
struct Tally {
  std::map<std::string, std::uint64_t> kinds;
  std::map<std::string, std::uint64_t> faults;
  std::map<std::size_t, std::uint64_t> fault_lanes;  // lane -> faults on it
  std::int64_t first_at = 0;
  std::uint64_t first_step = 0;
  bool started = false;
};

// "3 events", "1 pool", "2 calls and returns".
std::string count_of(std::uint64_t count, std::string_view noun) {
  if (count == 1) return fmt::format("1 {}", noun);
  if (noun == "call or return") return fmt::format("{} calls and returns", count);
  return fmt::format("{} {}{}", count, noun, noun.ends_with('s') ? "es" : "s");
}

std::string join_counts(const std::map<std::string, std::uint64_t>& counts) {
  std::string text;
  for (const auto& [name, count] : counts) text += fmt::format("{}{} {}", text.empty() ? "" : ", ", name, count);
  return text;
}

// Starts or extends a column for event `index`.
void touch_column(ShowColumn& column, Tally& tally, std::uint64_t index, std::uint64_t step, std::int64_t at,
                  bool summary) {
  if (!tally.started) {
    tally.started = true;
    tally.first_at = at;
    tally.first_step = step;
    column.first = index;
    column.count = 0;
    column.summary = summary;
  }
  column.count += 1;
  column.at = at;
  column.step = step;
}

void finish_summaries(ShowModel& model, std::vector<Tally>& tallies, std::string_view noun,
                      std::string_view unit) {
  for (std::size_t c = 0; c < model.columns.size(); ++c) {
    ShowColumn& column = model.columns[c];
    if (!column.summary) continue;
    const Tally& tally = tallies[c];
    const std::string unit_text = unit.empty() ? "" : fmt::format(" {}", unit);
    column.text = fmt::format("{} summarised ({}..{}{}): {}", count_of(column.count, noun), tally.first_at,
                              column.at, unit_text, join_counts(tally.kinds));
    column.detail = fmt::format("{}, {} to {}, summarised\ntime {} to {}{}\nby kind: {}", count_of(column.count, noun),
                                column.first, column.first + column.count - 1, tally.first_at, column.at, unit_text,
                                join_counts(tally.kinds));
    if (!tally.faults.empty()) column.detail += fmt::format("\nfaults: {}", join_counts(tally.faults));
    for (const auto& [lane, count] : tally.fault_lanes) {
      ShowMark mark;
      mark.lane = lane;
      mark.column = c;
      mark.shape = MarkShape::fault;
      mark.tone = Tone::bad;
      mark.label = fmt::format("{} faults", count);
      mark.detail = fmt::format("{} in {} summarised: {}", count_of(count, "fault"), count_of(column.count, noun),
                                join_counts(tally.faults));
      model.marks.push_back(std::move(mark));
    }
  }
}

std::string summary_note(const Plan& plan, std::string_view noun, std::string_view focus) {
  if (plan.lo == 0 && plan.hi == plan.total) return {};
  return fmt::format(
      "{}: {} to {} drawn in full ({}), the {} before in {} summary columns and the {} after in {}; "
      "--detail N and --around E choose another window.",
      count_of(plan.total, noun), plan.lo, plan.hi - 1, focus, plan.lo, plan.before, plan.total - plan.hi, plan.after);
}

// ------------------------------------------------------------------ traces

std::string describe_response(const core::Response& response, core::Token token) {
  if (response.denied) return fmt::format("denied: {}", core::denial_text(response.reason));
  return fmt::format("granted, token {}, {} stream{}", token == core::kNoToken ? "none" : std::to_string(token),
                     response.streams.size(), response.streams.size() == 1 ? "" : "s");
}

Tone response_tone(const core::Response& response) {
  if (!response.denied) return Tone::good;
  switch (response.reason) {
    case core::DenialReason::capacity:
    case core::DenialReason::busy:
    case core::DenialReason::superseded:
      return Tone::warn;
    case core::DenialReason::policy:
    case core::DenialReason::unavailable:
    case core::DenialReason::resolve_failed:
      return Tone::bad;
  }
  return Tone::neutral;
}

// A decision's colour: granted, refused, or neither.
Tone outcome_tone(core::Outcome outcome) {
  switch (outcome) {
    case core::Outcome::admitted:
    case core::Outcome::resumed:
    case core::Outcome::switched:
    case core::Outcome::rotated:
    case core::Outcome::alive:
    case core::Outcome::released:
      return Tone::good;
    case core::Outcome::superseded:
    case core::Outcome::blocked_capacity:
      return Tone::warn;
    case core::Outcome::gone:
      return Tone::neutral;
  }
  return Tone::neutral;
}

Tone gate_tone(const sim::GateStep& step) {
  if (step.decision.held > step.config.capacity) return Tone::bad;
  return outcome_tone(step.decision.outcome);
}

std::string_view op_kind_name(core::OpKind kind) {
  switch (kind) {
    case core::OpKind::admit:
      return "admit";
    case core::OpKind::heartbeat:
      return "heartbeat";
    case core::OpKind::release:
      return "release";
  }
  return "op";
}

// An operation whose start was seen and whose end is awaited.
struct Open {
  std::uint64_t from = 0;
  std::size_t lane = 0;
  std::string label;
  std::string detail;
};

class TraceModelBuilder {
 public:
  TraceModelBuilder(const sim::Trace& trace, std::string_view source, const ShowLimits& limits)
      : trace_(trace), limits_(limits) {
    model_.source = std::string(source);
  }

  ShowModel build() {
    describe_header();
    make_lanes();
    const auto& events = trace_.events;
    std::optional<std::uint64_t> focus = limits_.around;
    if (!focus && trace_.violation) focus = trace_.violation->event_index;
    plan_ = plan_columns(events.size(), focus, limits_);
    model_.columns.assign(plan_.columns(), ShowColumn{});
    model_.held.assign(plan_.columns(), ShowHeld{});
    tallies_.assign(plan_.columns(), Tally{});
    violating_event_ = trace_.violation ? std::optional<std::uint64_t>(std::min<std::uint64_t>(
                                              trace_.violation->event_index, events.empty() ? 0 : events.size() - 1))
                                        : std::nullopt;
    capacity_ = trace_.header.scenario.gate.capacity;

    for (const Event& event : events) add_event(event);
    // Operations never answered: their bars run to the end.
    for (auto& [key, open] : open_requests_) close_bar(open, events.size() - 1, Tone::neutral, "no answer", "", true);
    for (auto& [key, open] : open_calls_) close_bar(open, events.size() - 1, Tone::neutral, "no result", "", true);
    finish_summaries(model_, tallies_, "event", "ms");

    if (trace_.violation && !events.empty()) {
      const sim::Violation& v = *trace_.violation;
      ShowViolation shown;
      shown.rule = v.rule;
      shown.rule_text = spec_rule_text(v.rule);
      shown.message = v.message;
      shown.where = fmt::format("step {}, {} ms (event {})", v.step, v.at_ms, v.event_index);
      shown.column = plan_.column_of(*violating_event_);
      shown.lane = violating_lane_;
      model_.violation = std::move(shown);
    }
    model_.summary_note =
        summary_note(plan_, "event",
                     limits_.around ? fmt::format("around event {}", *limits_.around)
                                    : (trace_.violation ? fmt::format("around the violation at event {}",
                                                                      trace_.violation->event_index)
                                                        : std::string("from the start")));
    return std::move(model_);
  }

 private:
  void describe_header() {
    const sim::TraceHeader& header = trace_.header;
    model_.kind = "simulator trace";
    model_.time_unit = "ms";
    model_.event_noun = "event";
    model_.has_steps = true;
    model_.total = trace_.events.size();
    model_.facts = {fmt::format("seed {}", header.seed),
                    fmt::format("scenario {}", header.scenario.name),
                    fmt::format("gate {}", sim::gate_mode_name(header.gate)),
                    fmt::format("strategy {}", header.strategy),
                    fmt::format("capacity {}", header.scenario.gate.capacity),
                    count_of(header.scenario.instances, "instance"),
                    fmt::format("{} steps", trace_.schedule.size()),
                    fmt::format("{} events", trace_.events.size()),
                    fmt::format("outcome {}", trace_.outcome),
                    fmt::format("fingerprint {:016x}", trace_.fingerprint)};
    if (header.variant != "core") model_.facts.push_back(fmt::format("variant {}", header.variant));
    model_.verdict = trace_.violation
                         ? fmt::format("violation of {} at step {}", trace_.violation->rule, trace_.violation->step)
                         : fmt::format("pass: no rule violated (outcome {})", trace_.outcome);
    model_.held_label = fmt::format("slots held in pool {}", header.scenario.pool);
  }

  void make_lanes() {
    std::set<std::string> clients;
    for (const Event& event : trace_.events) {
      if (const auto* e = std::get_if<sim::RequestSent>(&event.body)) clients.insert(e->request.client);
      if (const auto* e = std::get_if<sim::FlightStarted>(&event.body)) clients.insert(e->key.client);
      if (const auto* e = std::get_if<sim::GateStep>(&event.body); e && !e->op.client.empty()) {
        clients.insert(e->op.client);
      }
    }
    std::vector<std::string> names(clients.begin(), clients.end());
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
    for (std::size_t i = 0; i < names.size(); ++i) {
      client_lane_[names[i]] = i;
      model_.lanes.push_back({names[i], LaneKind::client});
    }
    store_lane_ = model_.lanes.size();
    model_.lanes.push_back({"store", LaneKind::store});
    broker_lane_ = model_.lanes.size();
    model_.lanes.push_back({"broker", LaneKind::broker});
  }

  std::size_t client_lane(const std::string& client) const {
    const auto it = client_lane_.find(client);
    return it == client_lane_.end() ? store_lane_ : it->second;
  }

  std::string flight_client(sim::InstanceId instance, core::FlightId flight) const {
    const auto it = flights_.find({instance, flight});
    return it == flights_.end() ? std::string("?") : it->second.client;
  }

  void add_event(const Event& event) {
    const std::uint64_t i = event.index;
    const std::size_t c = plan_.column_of(i);
    const bool full = plan_.full(i);
    touch_column(model_.columns[c], tallies_[c], i, event.step, event.at_ms, !full);
    Tally& tally = tallies_[c];
    const std::string kind(sim::event_kind_name(event.body));
    tally.kinds[kind] += 1;

    std::size_t lane = store_lane_;
    std::string text;
    std::visit([&](const auto& body) { describe(event, body, lane, text); }, event.body);
    if (violating(i)) violating_lane_ = lane;
    if (const auto* fault = std::get_if<sim::FaultFired>(&event.body); fault && !full) {
      tally.faults[fault->site] += 1;
      tally.fault_lanes[lane] += 1;
    }

    // Slots held after this event, and the most within its column.
    if (const auto* step = std::get_if<sim::GateStep>(&event.body)) {
      held_ = step->decision.held;
      capacity_ = step->config.capacity;
    } else if (std::holds_alternative<sim::StoreRestarted>(event.body)) {
      held_ = 0;
    }
    ShowHeld& held = model_.held[c];
    held.peak = held.known ? std::max(held.peak, held_) : held_;
    held.known = true;
    held.held = held_;
    held.capacity = capacity_;

    if (full) {
      ShowColumn& column = model_.columns[c];
      column.lane = lane;
      column.text = text;
      column.detail = detail_of(event, text);
    }
  }

  std::string detail_of(const Event& event, const std::string& text) const {
    return fmt::format("{}\nevent {}, step {}, {} ms\n{}", text, event.index, event.step, event.at_ms,
                       sim::event_to_json(event));
  }

  bool violating(std::uint64_t index) const { return violating_event_ && *violating_event_ == index; }

  void add_mark(const Event& event, std::size_t lane, MarkShape shape, Tone tone, std::string label,
                const std::string& text) {
    if (!plan_.full(event.index)) return;
    ShowMark mark;
    mark.lane = lane;
    mark.column = plan_.column_of(event.index);
    mark.shape = shape;
    mark.tone = tone;
    mark.label = std::move(label);
    mark.detail = detail_of(event, text);
    mark.violating = violating(event.index);
    model_.marks.push_back(std::move(mark));
  }

  Open open_at(const Event& event, std::size_t lane, std::string label, const std::string& text) const {
    return Open{event.index, lane, std::move(label), detail_of(event, text)};
  }

  void close_bar(const Open& open, std::uint64_t to, Tone tone, std::string_view result, const std::string& end_detail,
                 bool never_ended) {
    if (!plan_.overlaps(open.from, to)) return;
    ShowBar bar;
    bar.lane = open.lane;
    bar.from = plan_.column_of(open.from);
    bar.to = plan_.column_of(to);
    bar.open_start = !plan_.full(open.from);
    bar.open_end = never_ended || !plan_.full(to);
    bar.tone = tone;
    bar.label = result.empty() ? open.label : fmt::format("{} {}", open.label, result);
    bar.detail = open.detail;
    if (!end_detail.empty()) bar.detail += "\n\n" + end_detail;
    if (never_ended) bar.detail += fmt::format("\n\n({} by the end of the trace)", result);
    bar.violating = violating(open.from) || (!never_ended && violating(to));
    model_.bars.push_back(std::move(bar));
  }

  void describe(const Event& event, const sim::RequestSent& e, std::size_t& lane, std::string& text) {
    lane = client_lane(e.request.client);
    text = fmt::format("{} requests {} (request {}, issued_at {}) at instance {}, waiter {}", e.request.client,
                       e.request.episode, e.request.request, e.request.issued_at, e.instance, e.waiter);
    waiters_[{e.instance, e.waiter}] = e.request.client;
    open_requests_[{e.instance, e.waiter}] = open_at(event, lane, e.request.request, text);
  }

  void describe(const Event& event, const sim::ResponseReceived& e, std::size_t& lane, std::string& text) {
    const auto waiter = waiters_.find({e.instance, e.waiter});
    const std::string client = waiter == waiters_.end() ? std::string("?") : waiter->second;
    lane = client_lane(client);
    const std::string answer = describe_response(e.response, e.token);
    text = fmt::format("{} is answered at instance {} (waiter {}): {}", client, e.instance, e.waiter, answer);
    close_request(event, e.instance, e.waiter, lane, response_tone(e.response),
                  e.response.denied ? std::string(core::denial_text(e.response.reason)) : "granted", text);
  }

  void describe(const Event& event, const sim::WaiterLeft& e, std::size_t& lane, std::string& text) {
    const auto waiter = waiters_.find({e.instance, e.waiter});
    const std::string client = waiter == waiters_.end() ? std::string("?") : waiter->second;
    lane = client_lane(client);
    text = fmt::format("{} goes away before its answer (waiter {} at instance {})", client, e.waiter, e.instance);
    close_request(event, e.instance, e.waiter, lane, Tone::neutral, "left", text);
  }

  void close_request(const Event& event, sim::InstanceId instance, core::WaiterId waiter, std::size_t lane, Tone tone,
                     std::string_view result, const std::string& text) {
    const auto it = open_requests_.find({instance, waiter});
    if (it == open_requests_.end()) {
      add_mark(event, lane, MarkShape::tick, tone, std::string(result), text);
      return;
    }
    close_bar(it->second, event.index, tone, result, detail_of(event, text), false);
    open_requests_.erase(it);
    waiters_.erase({instance, waiter});
  }

  void describe(const Event& event, const sim::FlightStarted& e, std::size_t& lane, std::string& text) {
    lane = client_lane(e.key.client);
    flights_[{e.instance, e.flight}] = e.key;
    text = fmt::format("flight {} at instance {} starts: {} wants {}", e.flight, e.instance, e.key.client,
                       e.key.episode);
    add_mark(event, lane, MarkShape::tick, Tone::neutral, "flight", text);
  }

  void describe(const Event& event, const sim::FlightEnded& e, std::size_t& lane, std::string& text) {
    const std::string client = flight_client(e.instance, e.flight);
    lane = client_lane(client);
    text = fmt::format("flight {} at instance {} ends ({})", e.flight, e.instance, client);
    add_mark(event, lane, MarkShape::tick, Tone::neutral, "end", text);
    flights_.erase({e.instance, e.flight});
  }

  void describe(const Event& event, const sim::CallStarted& e, std::size_t& lane, std::string& text) {
    const std::string client = flight_client(e.instance, e.flight);
    std::string label;
    if (e.dependency == sim::Dependency::store) {
      lane = store_lane_;
      text = fmt::format("store call {} (attempt {}) of flight {} at instance {}: {}, deadline {} ms", e.call,
                         e.attempt, e.flight, e.instance, sim::describe_op(e.op), e.deadline);
      label = fmt::format("{} {}", op_kind_name(e.op.kind), e.op.client);
    } else {
      lane = broker_lane_;
      const auto flight = flights_.find({e.instance, e.flight});
      const std::string episode = flight == flights_.end() ? std::string("?") : flight->second.episode;
      text = fmt::format("broker call {} (attempt {}) of flight {} at instance {}: resolve {} for {}, deadline {} ms",
                         e.call, e.attempt, e.flight, e.instance, episode, client, e.deadline);
      label = fmt::format("resolve {}", client);
    }
    if (e.attempt > 1) label += fmt::format(" #{}", e.attempt);
    open_calls_[{e.instance, e.flight, e.dependency == sim::Dependency::store ? 0 : 1, e.call}] =
        open_at(event, lane, label, text);
  }

  void describe(const Event& event, const sim::CallEnded& e, std::size_t& lane, std::string& text) {
    const bool store = e.dependency == sim::Dependency::store;
    lane = store ? store_lane_ : broker_lane_;
    std::string result(core::outcome_class_name(e.outcome_class));
    if (e.timed_out) result += " (timed out)";
    if (e.retry_after_ms) result += fmt::format(" (retry-after {} ms)", *e.retry_after_ms);
    text = fmt::format("{} call {} of flight {} at instance {} ends: {}", store ? "store" : "broker", e.call,
                       e.flight, e.instance, result);
    const Tone tone = e.outcome_class == core::OutcomeClass::success
                          ? Tone::good
                          : (e.outcome_class == core::OutcomeClass::transient ? Tone::warn : Tone::bad);
    const auto key = std::make_tuple(e.instance, e.flight, store ? 0 : 1, e.call);
    const auto it = open_calls_.find(key);
    if (it == open_calls_.end()) {
      add_mark(event, lane, MarkShape::tick, tone, result, text);
      return;
    }
    close_bar(it->second, event.index, tone, e.timed_out ? "timeout" : core::outcome_class_name(e.outcome_class),
              detail_of(event, text), false);
    open_calls_.erase(it);
  }

  void describe(const Event& event, const sim::GateStep& e, std::size_t& lane, std::string& text) {
    lane = store_lane_;
    text = fmt::format("gate{} on pool {}: {} -> {}, {} held of capacity {}", e.legacy ? " (legacy write)" : "",
                       e.pool, sim::describe_op(e.op), sim::describe_decision(e.decision), e.decision.held,
                       e.config.capacity);
    add_mark(event, lane, MarkShape::diamond, gate_tone(e), std::string(core::outcome_name(e.decision.outcome)), text);
    // A client's own heartbeat or release goes to the store directly: show
    // it on the client's lane too.
    if (e.op.kind != core::OpKind::admit && plan_.full(event.index)) {
      ShowMark mark;
      mark.lane = client_lane(e.op.client);
      mark.column = plan_.column_of(event.index);
      mark.tone = gate_tone(e);
      mark.label = std::string(op_kind_name(e.op.kind));
      mark.detail = fmt::format("{}\nevent {}, step {}, {} ms (the store lane's mark has every field)", text,
                                event.index, event.step, event.at_ms);
      model_.marks.push_back(std::move(mark));
    }
  }

  void describe(const Event& event, const sim::FaultFired& e, std::size_t& lane, std::string& text) {
    lane = e.site.rfind("broker", 0) == 0 ? broker_lane_ : store_lane_;
    text = fmt::format("fault {}: {}", e.site, e.detail);
    add_mark(event, lane, MarkShape::fault, Tone::bad, e.site, text);
  }

  void describe(const Event& event, const sim::StoreRestarted&, std::size_t& lane, std::string& text) {
    lane = store_lane_;
    text = "the store restarts: all data lost";
    add_mark(event, lane, MarkShape::restart, Tone::bad, "restart", text);
  }

  void describe(const Event& event, const sim::FaultsHealed&, std::size_t& lane, std::string& text) {
    lane = store_lane_;
    text = "faults healed: the liveness phase begins, every answer owed must come";
    add_mark(event, lane, MarkShape::heal, Tone::good, "healed", text);
  }

  const sim::Trace& trace_;
  const ShowLimits& limits_;
  ShowModel model_;
  Plan plan_;
  std::vector<Tally> tallies_;
  std::map<std::string, std::size_t> client_lane_;
  std::size_t store_lane_ = 0;
  std::size_t broker_lane_ = 0;
  std::map<std::pair<sim::InstanceId, core::WaiterId>, std::string> waiters_;
  std::map<std::pair<sim::InstanceId, core::FlightId>, core::FlightKey> flights_;
  std::map<std::pair<sim::InstanceId, core::WaiterId>, Open> open_requests_;
  std::map<std::tuple<sim::InstanceId, core::FlightId, int, std::uint32_t>, Open> open_calls_;
  std::size_t violating_lane_ = kNoLane;
  std::optional<std::uint64_t> violating_event_;
  std::int64_t held_ = 0;
  std::int64_t capacity_ = 0;
};

// ------------------------------------------------------------------ histories

struct OpRef {
  std::size_t pool = 0;
  std::size_t op = 0;
};

// A call or a return of one operation of a history.
struct Endpoint {
  std::int64_t at = 0;
  bool ret = false;
  std::size_t order = 0;  // across the whole history: pools in order, their ops in file order
  OpRef ref;
};

std::string short_op(const sim::HistoryOp& op) {
  if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
    return fmt::format("config capacity {}", config->capacity);
  }
  const auto& gate_op = std::get<core::Op>(op.op);
  return fmt::format("{} {}", op_kind_name(gate_op.kind), gate_op.client);
}

std::string long_op(const sim::HistoryOp& op) {
  if (const auto* config = std::get_if<core::GateConfig>(&op.op)) {
    return fmt::format("config of pool {}: capacity {}, ttl {}, grace {}", op.pool, config->capacity, config->ttl_ms,
                       config->grace_ms);
  }
  return fmt::format("{} on pool {}", sim::describe_op(std::get<core::Op>(op.op)), op.pool);
}

std::string answer_of(const sim::HistoryOp& op) {
  if (op.pending()) return "pending (outcome unknown)";
  if (op.is_config()) return "configured";
  return fmt::format("{}, {} held", sim::describe_decision(*op.out), op.out->held);
}

Tone history_tone(const sim::HistoryOp& op) {
  if (op.pending() || op.is_config()) return Tone::neutral;
  return outcome_tone(op.out->outcome);
}

std::string d_out(const sim::HistoryOp& op) {
  if (op.pending()) return "null";
  if (op.is_config()) return R"({"outcome":"configured"})";
  std::string text;
  sim::append_d_decision(text, *op.out);
  return text;
}

std::string d_model(const sim::HistoryOp& op, const core::Decision& decision) {
  if (op.is_config()) return R"({"outcome":"configured"})";
  std::string text;
  sim::append_d_decision(text, decision);
  return text;
}

ShowModel build_history_model(const std::vector<PoolResult>& results, std::string_view source,
                              const ShowLimits& limits) {
  ShowModel model;
  model.source = std::string(source);
  model.kind = "SPEC H history";
  model.event_noun = "call or return";

  // Every call and return, in the order lincheck reads them: by time, calls
  // before returns at equal times (equal times overlap), then file order.
  std::vector<Endpoint> endpoints;
  std::size_t operations = 0;
  std::size_t pending = 0;
  std::set<std::string> processes;
  for (std::size_t p = 0; p < results.size(); ++p) {
    for (std::size_t i = 0; i < results[p].pool.ops.size(); ++i) {
      const sim::HistoryOp& op = results[p].pool.ops[i];
      endpoints.push_back({op.call, false, operations, {p, i}});
      if (op.ret) endpoints.push_back({*op.ret, true, operations, {p, i}});
      if (op.pending()) ++pending;
      ++operations;
      processes.insert(op.process);
    }
  }
  std::sort(endpoints.begin(), endpoints.end(), [](const Endpoint& a, const Endpoint& b) {
    return std::tie(a.at, a.ret, a.order) < std::tie(b.at, b.ret, b.order);
  });
  std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> call_index;
  std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> ret_index;
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    const auto key = std::make_pair(endpoints[e].ref.pool, endpoints[e].ref.op);
    (endpoints[e].ret ? ret_index : call_index)[key] = e;
  }

  std::vector<std::string> names(processes.begin(), processes.end());
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  std::map<std::string, std::size_t> lane_of;
  for (std::size_t i = 0; i < names.size(); ++i) {
    lane_of[names[i]] = i;
    model.lanes.push_back({names[i], LaneKind::client});
  }

  // The pool whose verdict the page is about: the first that failed, else the first.
  std::optional<std::size_t> failed;
  std::string verdicts;
  for (std::size_t p = 0; p < results.size(); ++p) {
    const sim::PoolVerdict& verdict = results[p].verdict;
    if (!failed && verdict.verdict == sim::LincheckVerdict::not_linearizable) failed = p;
    std::string text = fmt::format("pool {} {}", results[p].pool.pool, sim::verdict_name(verdict.verdict));
    if (verdict.verdict == sim::LincheckVerdict::unknown) text += fmt::format(" ({})", verdict.unknown_cause);
    verdicts += (verdicts.empty() ? "" : "; ") + text;
  }
  const std::size_t chart_pool = failed.value_or(0);
  model.total = endpoints.size();
  model.facts = {count_of(operations, "operation"), fmt::format("{} pending", pending),
                 count_of(results.size(), "pool"), count_of(names.size(), "process"),
                 fmt::format("lincheck (P14): {}", verdicts.empty() ? "no operations" : verdicts)};
  model.verdict = failed ? std::string("not linearizable")
                         : fmt::format("P14: {}", verdicts.empty() ? "nothing to check" : verdicts);
  if (!results.empty()) {
    model.held_label = fmt::format("slots held in pool {} (each answer's held)", results[chart_pool].pool.pool);
  }

  std::optional<std::uint64_t> focus = limits.around;
  std::optional<std::uint64_t> violating_end;
  if (failed) {
    const auto key = std::make_pair(*failed, results[*failed].verdict.stuck);
    if (ret_index.count(key)) violating_end = ret_index[key];
    if (!focus) focus = violating_end;
  }
  const Plan plan = plan_columns(endpoints.size(), focus, limits);
  model.columns.assign(plan.columns(), ShowColumn{});
  model.held.assign(plan.columns(), ShowHeld{});
  std::vector<Tally> tallies(plan.columns());

  std::int64_t held = 0;
  std::int64_t capacity = core::GateConfig{}.capacity;
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    const Endpoint& end = endpoints[e];
    const sim::HistoryOp& op = results[end.ref.pool].pool.ops[end.ref.op];
    const std::size_t c = plan.column_of(e);
    const bool full = plan.full(e);
    touch_column(model.columns[c], tallies[c], e, 0, end.at, !full);
    tallies[c].kinds[end.ret ? "return" : "call"] += 1;
    if (end.ret && end.ref.pool == chart_pool) {
      if (const auto* config = std::get_if<core::GateConfig>(&op.op)) capacity = config->capacity;
      if (op.out) held = op.out->held;
    }
    ShowHeld& shown = model.held[c];
    shown.peak = shown.known ? std::max(shown.peak, held) : held;
    shown.known = true;
    shown.held = held;
    shown.capacity = capacity;
    if (!full) continue;
    ShowColumn& column = model.columns[c];
    column.lane = lane_of[op.process];
    column.text = end.ret ? fmt::format("{} returns from {}: {} (line {})", op.process, short_op(op), answer_of(op),
                                        op.line)
                          : fmt::format("{} calls {} (line {})", op.process, long_op(op), op.line);
    column.detail = fmt::format("{}\n{}", column.text, sim::format_history_line(op));
  }
  finish_summaries(model, tallies, "call or return", "");

  for (std::size_t p = 0; p < results.size(); ++p) {
    for (std::size_t i = 0; i < results[p].pool.ops.size(); ++i) {
      const sim::HistoryOp& op = results[p].pool.ops[i];
      const auto key = std::make_pair(p, i);
      const std::uint64_t from = call_index[key];
      const bool ended = ret_index.count(key) > 0;
      const std::uint64_t to = ended ? ret_index[key] : endpoints.size() - 1;
      if (!plan.overlaps(from, to)) continue;
      ShowBar bar;
      bar.lane = lane_of[op.process];
      bar.from = plan.column_of(from);
      bar.to = plan.column_of(to);
      bar.open_start = !plan.full(from);
      bar.open_end = !ended || !plan.full(to);
      bar.tone = history_tone(op);
      bar.violating = failed && *failed == p && results[p].verdict.stuck == i;
      if (bar.violating) bar.tone = Tone::bad;
      bar.label = fmt::format("{} {}", short_op(op),
                              op.pending() ? std::string("?")
                                           : (op.is_config() ? std::string("ok")
                                                             : std::string(core::outcome_name(op.out->outcome))));
      bar.detail = fmt::format("line {}: {} calls {} at {}, {}\nanswer: {}\n{}", op.line, op.process, long_op(op),
                               op.call, op.ret ? fmt::format("returns at {}", *op.ret) : std::string("never returns"),
                               answer_of(op), sim::format_history_line(op));
      model.bars.push_back(std::move(bar));
    }
  }

  if (failed && violating_end) {
    const sim::PoolVerdict& verdict = results[*failed].verdict;
    const sim::HistoryOp& stuck = results[*failed].pool.ops[verdict.stuck];
    ShowViolation shown;
    shown.rule = "P14";
    shown.rule_text = spec_rule_text("P14");
    shown.message = fmt::format(
        "pool {}: line {} ({} {}) recorded {}, but the gate answers {} after an order of the operations before it; "
        "no order explains the {} operations called before it returned{}",
        results[*failed].pool.pool, stuck.line, stuck.process, short_op(stuck), d_out(stuck),
        d_model(stuck, verdict.model_out), verdict.prefix_ops,
        verdict.minimized ? "" : " (a limit ran out before the shortest such prefix was found)");
    shown.where = fmt::format("line {}, returned at {}", stuck.line, stuck.ret.value_or(stuck.call));
    shown.column = plan.column_of(*violating_end);
    shown.lane = lane_of[stuck.process];
    model.violation = std::move(shown);
  }
  model.summary_note =
      summary_note(plan, "call or return",
                   limits.around ? fmt::format("around {}", *limits.around)
                                 : (failed ? std::string("around the operation lincheck got stuck on")
                                           : std::string("from the start")));
  return model;
}

// ------------------------------------------------------------------ check traces

ShowModel build_check_model(const sim::CheckTrace& trace, std::string_view source, const ShowLimits& limits) {
  const sim::CheckConfig& config = trace.config;
  ShowModel model;
  model.source = std::string(source);
  model.kind = "model checker trace";
  model.time_unit = "ms";
  model.event_noun = "step";
  model.total = trace.steps.size();
  model.facts = {fmt::format("gate {}", sim::gate_mode_name(config.gate)),
                 count_of(static_cast<std::uint64_t>(config.clients), "client"),
                 fmt::format("capacity {}", config.capacity),
                 count_of(static_cast<std::uint64_t>(config.rounds), "round"),
                 fmt::format("ttl {} ms", config.ttl_ms),
                 fmt::format("grace {} ms", config.grace_ms),
                 fmt::format("max {} ticks", config.max_ticks),
                 fmt::format("{} states", trace.states),
                 fmt::format("{} transitions", trace.transitions),
                 fmt::format("depth {}", trace.depth)};
  model.verdict = std::string(sim::verdict_name(trace.verdict));
  if (trace.verdict == sim::CheckVerdict::verified) {
    model.verdict = fmt::format("verified: no violation of {} in the whole state space", sim::kCheckRules);
  }
  model.held_label = fmt::format("slots held in pool {}", sim::kCheckPool);
  for (int i = 0; i < config.clients; ++i) model.lanes.push_back({sim::check_client_name(i), LaneKind::client});
  const std::size_t store = model.lanes.size();
  model.lanes.push_back({"store", LaneKind::store});

  // The counterexample is shortest: its last step is the one that broke the rule.
  std::optional<std::uint64_t> focus = limits.around;
  const bool violated = trace.violation && !trace.steps.empty();
  if (!focus && violated) focus = trace.steps.size() - 1;
  const Plan plan = plan_columns(trace.steps.size(), focus, limits);
  model.columns.assign(plan.columns(), ShowColumn{});
  model.held.assign(plan.columns(), ShowHeld{});
  std::vector<Tally> tallies(plan.columns());

  std::map<int, Open> reads;  // a legacy admit's read, until its write
  std::int64_t held = 0;
  for (std::size_t i = 0; i < trace.steps.size(); ++i) {
    const sim::CheckStep& step = trace.steps[i];
    const std::size_t c = plan.column_of(i);
    const bool full = plan.full(i);
    const bool violating = violated && i + 1 == trace.steps.size();
    touch_column(model.columns[c], tallies[c], i + 1, 0, step.now, !full);
    model.columns[c].step = i + 1;
    const std::string action(sim::action_name(step.action));
    tallies[c].kinds[action] += 1;

    const std::size_t lane =
        step.client >= 0 && static_cast<std::size_t>(step.client) < store ? static_cast<std::size_t>(step.client) : store;
    std::string text;
    if (step.action == sim::CheckAction::tick) {
      text = fmt::format("tick: the clock is now {} ms", step.now);
    } else {
      text = fmt::format("{} {}: {}", model.lanes[lane].name, action,
                         step.op ? sim::describe_op(*step.op) : std::string("(no op)"));
      if (step.decision) {
        text += fmt::format(" -> {}{}", sim::describe_decision(*step.decision),
                            step.wrote ? fmt::format(", {} held", step.decision->held)
                                       : std::string(" (the route's local decision; nothing written yet)"));
      }
    }
    const std::string detail =
        fmt::format("{}\nstep {}, {} ms\n{}", text, i + 1, step.now, sim::check_step_json(i + 1, step));
    if (step.wrote && step.decision) held = step.decision->held;
    ShowHeld& shown = model.held[c];
    shown.peak = shown.known ? std::max(shown.peak, held) : held;
    shown.known = true;
    shown.held = held;
    shown.capacity = config.capacity;
    if (full) {
      model.columns[c].lane = step.action == sim::CheckAction::tick ? store : lane;
      model.columns[c].text = text;
      model.columns[c].detail = detail;
    }

    auto mark = [&](std::size_t on, MarkShape shape, Tone tone, std::string label, bool is_violating) {
      if (!full) return;
      model.marks.push_back({on, c, shape, tone, std::move(label), detail, is_violating});
    };
    const Tone tone = step.decision && step.wrote && step.decision->held > config.capacity ? Tone::bad : Tone::good;
    switch (step.action) {
      case sim::CheckAction::tick:
        mark(store, MarkShape::tick, Tone::neutral, "tick", violating);
        break;
      case sim::CheckAction::admit_read:
        if (!step.wrote) {
          reads[step.client] = Open{i, lane, "admit", detail};
          mark(store, MarkShape::tick, Tone::neutral, "read", false);
          break;
        }
        [[fallthrough]];
      case sim::CheckAction::admit:
      case sim::CheckAction::heartbeat:
      case sim::CheckAction::release:
        mark(lane, MarkShape::tick, tone, action, false);
        mark(store, MarkShape::diamond, tone, action, violating);
        break;
      case sim::CheckAction::admit_write: {
        mark(store, MarkShape::diamond, tone, "write", violating);
        const auto read = reads.find(step.client);
        if (read == reads.end()) break;
        if (plan.overlaps(read->second.from, i)) {
          ShowBar bar;
          bar.lane = lane;
          bar.from = plan.column_of(read->second.from);
          bar.to = c;
          bar.open_start = !plan.full(read->second.from);
          bar.tone = tone;
          bar.label = step.decision ? fmt::format("admit {}", core::outcome_name(step.decision->outcome)) : "admit";
          bar.detail = read->second.detail + "\n\n" + detail;
          bar.violating = violating;
          model.bars.push_back(std::move(bar));
        }
        reads.erase(read);
        break;
      }
    }
  }
  for (const auto& [client, read] : reads) {
    if (!plan.overlaps(read.from, trace.steps.size() - 1)) continue;
    ShowBar bar;
    bar.lane = read.lane;
    bar.from = plan.column_of(read.from);
    bar.to = plan.columns() - 1;
    bar.open_end = true;
    bar.label = "admit (not written)";
    bar.detail = read.detail + "\n\n(its write had not run when the trace ends)";
    model.bars.push_back(std::move(bar));
  }
  finish_summaries(model, tallies, "step", "ms");

  if (violated) {
    ShowViolation shown;
    shown.rule = trace.violation->rule;
    shown.rule_text = spec_rule_text(trace.violation->rule);
    shown.message = trace.violation->message;
    shown.where = fmt::format("step {}, {} ms", trace.steps.size(), trace.steps.back().now);
    shown.column = plan.column_of(trace.steps.size() - 1);
    shown.lane = store;
    model.violation = std::move(shown);
  }
  model.summary_note = summary_note(plan, "step", "around the violation");
  return model;
}

// ------------------------------------------------------------------ the command

int fail(std::ostream& err, std::string_view message) {
  err << message << "\n";
  return 2;
}

std::string first_line(std::string_view text) {
  const std::size_t newline = text.find('\n');
  std::string_view line = text.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return std::string(line);
}

}  // namespace

std::variant<ShowInput, std::string> detect_input(std::string_view text, std::string_view source) {
  if (text.empty()) {
    return fmt::format("{}:1: an empty file: expected a trace (turnstile run --trace-out) or a history (SPEC H)",
                       source);
  }
  const std::string line = first_line(text);
  const nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return fmt::format("{}:1: not valid JSON", source);
  if (!value.is_object()) return fmt::format("{}:1: expected a JSON object", source);
  if (value.contains("turnstile_trace")) return ShowInput::trace;
  if (value.contains("turnstile_check_trace")) return ShowInput::check_trace;
  if (value.contains("process")) return ShowInput::history;
  return fmt::format(
      "{}:1: field 'turnstile_trace': expected a trace header (turnstile run --trace-out), a check trace header "
      "('turnstile_check_trace') or a history line (SPEC H, with 'process')",
      source);
}

ShowModel trace_model(const sim::Trace& trace, std::string_view source, const ShowLimits& limits) {
  return TraceModelBuilder(trace, source, limits).build();
}

ShowModel check_trace_model(const sim::CheckTrace& trace, std::string_view source, const ShowLimits& limits) {
  return build_check_model(trace, source, limits);
}

ShowModel history_model(const std::vector<PoolResult>& results, std::string_view source, const ShowLimits& limits) {
  return build_history_model(results, source, limits);
}

int run_show(std::string_view text, std::string_view source, const ShowOptions& options, std::ostream& out,
             std::ostream& err) {
  if (options.html_path.empty() && !options.text) return fail(err, "show: expected -o OUT.html or --text");
  if (options.detail < kMinShowDetail || options.detail > kMaxShowDetail) {
    return fail(err, fmt::format("--detail: expected an integer from {} to {}", kMinShowDetail, kMaxShowDetail));
  }
  if (options.lincheck_time_limit_s < 0) return fail(err, "lincheck time limit: expected 0 or more seconds");

  const auto kind = detect_input(text, source);
  if (const auto* error = std::get_if<std::string>(&kind)) return fail(err, *error);
  ShowLimits limits;
  limits.detail = options.detail;
  limits.around = options.around;

  ShowModel model;
  switch (std::get<ShowInput>(kind)) {
    case ShowInput::trace: {
      auto parsed = sim::read_trace(text, source);
      if (const auto* error = std::get_if<sim::TraceError>(&parsed)) return fail(err, error->message);
      const auto& trace = std::get<sim::Trace>(parsed);
      if (options.around && *options.around >= trace.events.size()) {
        return fail(err, fmt::format("--around: expected an event index below {}, the trace's events",
                                     trace.events.size()));
      }
      model = trace_model(trace, source, limits);
      break;
    }
    case ShowInput::history: {
      auto parsed = sim::read_history(text, source);
      if (const auto* error = std::get_if<sim::HistoryError>(&parsed)) return fail(err, error->message);
      auto& ops = std::get<std::vector<sim::HistoryOp>>(parsed);
      std::size_t endpoints = 0;
      for (const sim::HistoryOp& op : ops) endpoints += op.pending() ? 1 : 2;
      if (options.around && *options.around >= endpoints) {
        return fail(err, fmt::format("--around: expected an index below {}, the history's calls and returns",
                                     endpoints));
      }
      sim::LincheckLimits lincheck;
      lincheck.max_search_bytes = kLincheckMemoryBytes;
      if (options.lincheck_time_limit_s > 0) {
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(options.lincheck_time_limit_s));
        lincheck.should_stop = [deadline] { return std::chrono::steady_clock::now() >= deadline; };
      }
      model = history_model(check_pools(std::move(ops), lincheck, 1), source, limits);
      break;
    }
    case ShowInput::check_trace: {
      auto parsed = sim::read_check_trace(text, source);
      if (const auto* error = std::get_if<sim::CheckTraceError>(&parsed)) return fail(err, error->message);
      const auto& trace = std::get<sim::CheckTrace>(parsed);
      if (options.around && *options.around >= trace.steps.size()) {
        return fail(err, fmt::format("--around: expected a step index below {}, the trace's steps",
                                     trace.steps.size()));
      }
      model = check_trace_model(trace, source, limits);
      break;
    }
  }

  if (options.text) out << render_text(model);
  if (!options.html_path.empty()) {
    const std::string html = render_html(model);
    if (std::string error = write_file(options.html_path, html); !error.empty()) return fail(err, error);
    if (!options.text) {
      std::size_t full = 0;
      for (const ShowColumn& column : model.columns) full += column.summary ? 0 : 1;
      out << fmt::format("show: wrote {} ({} bytes): {} lanes, {} of {} in full{}\n", options.html_path,
                         html.size(), model.lanes.size(), full, count_of(model.total, model.event_noun),
                         model.violation ? fmt::format(", {} highlighted at {}", model.violation->rule,
                                                       model.violation->where)
                                         : std::string{});
    }
  }
  out.flush();
  return 0;
}

int run_show_command(const ShowOptions& options, std::ostream& out, std::ostream& err) {
  if (options.input_path.empty() || options.input_path == "-") {
    std::string text(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>{});
    if (std::cin.bad()) return fail(err, "<stdin>: read error");
    return run_show(text, "<stdin>", options, out, err);
  }
  const FileText file = read_file(options.input_path, kMaxInputBytes);
  if (!file.text) return fail(err, file.error);
  return run_show(*file.text, options.input_path, options, out, err);
}

}  // namespace turnstile::cli
