// trace_model (cli/show_command.h): a simulator trace (sim/trace.h) as a
// timeline, a lane per client and one each for the store and the broker.

#include "cli/show_command.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "cli/show_columns.h"
#include "cli/show_ops.h"
#include "core/outcome.h"
#include "core/response.h"
#include "sim/describe.h"

namespace turnstile::cli {

using show_detail::count_of;
using show_detail::finish_summaries;
using show_detail::Open;
using core::op_kind_name;
using show_detail::outcome_tone;
using show_detail::Plan;
using show_detail::plan_columns;
using show_detail::summary_note;
using show_detail::Tally;
using show_detail::touch_column;

namespace {

using sim::Event;

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

Tone gate_tone(const sim::GateStep& step) {
  if (step.decision.held > step.config.capacity) return Tone::bad;
  return outcome_tone(step.decision.outcome);
}

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

}  // namespace

ShowModel trace_model(const sim::Trace& trace, std::string_view source, const ShowLimits& limits) {
  return TraceModelBuilder(trace, source, limits).build();
}

}  // namespace turnstile::cli
