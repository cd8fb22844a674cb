#include "sim/history.h"

#include <algorithm>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/assert.h"
#include "core/rng.h"
#include "sim/fingerprint.h"

namespace turnstile::sim {
namespace {

// Each kind's fields go into the hash in the order the struct declares them,
// after the kind's index, so two events of different kinds never hash alike
// by accident of their fields. Strings go in as their length, then their
// bytes eight at a time, least significant first: a fixed function of the
// bytes on every platform (never std::hash). Each word is folded in with
// SplitMix64's finaliser, a bijection, so one changed word always changes
// the state; it costs one multiply chain per word where FNV-1a costs eight.
class Hasher {
 public:
  std::uint64_t value() const { return state_; }

  void add(std::uint64_t value) { state_ = core::mix64(state_ ^ value) + kStep; }
  void add(std::int64_t value) { add(static_cast<std::uint64_t>(value)); }
  void add(std::uint32_t value) { add(static_cast<std::uint64_t>(value)); }
  void add(int value) { add(static_cast<std::uint64_t>(static_cast<std::int64_t>(value))); }
  void add(bool value) { add(std::uint64_t{value ? 1U : 0U}); }

  template <typename Enum>
    requires std::is_enum_v<Enum>
  void add(Enum value) {
    add(static_cast<std::uint64_t>(value));
  }

  void add(std::string_view text) {
    add(static_cast<std::uint64_t>(text.size()));
    for (std::size_t at = 0; at < text.size(); at += 8) {
      std::uint64_t word = 0;
      const std::size_t n = std::min<std::size_t>(8, text.size() - at);
      for (std::size_t i = 0; i < n; ++i) {
        word |= static_cast<std::uint64_t>(static_cast<unsigned char>(text[at + i])) << (8 * i);
      }
      add(word);
    }
  }
  void add(const std::string& text) { add(std::string_view(text)); }

  template <typename T>
  void add(const std::optional<T>& value) {
    add(value.has_value());
    if (value) add(*value);
  }

  void add(const core::StreamRequest& r) {
    add(r.pool);
    add(r.client);
    add(r.episode);
    add(r.request);
    add(r.issued_at);
  }
  void add(const core::Stream& s) {
    add(s.name);
    add(s.url);
  }
  void add(const core::Response& r) {
    add(r.denied);
    add(r.reason);
    add(static_cast<std::uint64_t>(r.streams.size()));
    for (const auto& stream : r.streams) add(stream);
  }
  void add(const core::FlightKey& k) {
    add(k.pool);
    add(k.client);
    add(k.episode);
  }
  void add(const core::Op& op) {
    add(op.kind);
    add(op.client);
    add(op.episode);
    add(op.request);
    add(op.issued_at);
    add(op.now);
    add(op.token);
  }
  void add(const core::Decision& d) {
    add(d.outcome);
    add(d.token);
    add(d.victim);
    add(d.held);
  }
  void add(const core::GateConfig& c) {
    add(c.capacity);
    add(c.ttl_ms);
    add(c.grace_ms);
  }
  void add(const core::Session& s) {
    add(s.client);
    add(s.episode);
    add(s.token);
    add(s.admitted_at);
    add(s.last_seen);
    add(s.last_request);
    add(s.last_issued);
    add(s.last_decision);
  }
  void add(const core::PoolState& p) {
    add(p.last_now);
    add(p.last_token);
    add(static_cast<std::uint64_t>(p.sessions.size()));
    for (const auto& session : p.sessions) add(session);
  }

  void add(const RequestSent& e) {
    add(e.instance);
    add(e.waiter);
    add(e.request);
  }
  void add(const ResponseReceived& e) {
    add(e.instance);
    add(e.waiter);
    add(e.response);
    add(e.token);
  }
  void add(const WaiterLeft& e) {
    add(e.instance);
    add(e.waiter);
  }
  void add(const FlightStarted& e) {
    add(e.instance);
    add(e.flight);
    add(e.key);
  }
  void add(const FlightEnded& e) {
    add(e.instance);
    add(e.flight);
  }
  void add(const CallStarted& e) {
    add(e.instance);
    add(e.flight);
    add(e.dependency);
    add(e.call);
    add(e.attempt);
    add(e.op);
    add(e.deadline);
  }
  void add(const CallEnded& e) {
    add(e.instance);
    add(e.flight);
    add(e.dependency);
    add(e.call);
    add(e.outcome_class);
    add(e.retry_after_ms);
    add(e.timed_out);
  }
  void add(const GateStep& e) {
    add(e.pool);
    add(e.op);
    add(e.decision);
    add(e.config);
    add(e.before);
    add(e.after);
    add(e.legacy);
  }
  void add(const FaultFired& e) {
    add(e.site);
    add(e.detail);
  }
  void add(const StoreRestarted&) {}
  void add(const FaultsHealed&) {}

 private:
  // The golden-ratio increment SplitMix64 steps by: keeps a run of zero words
  // from leaving the state where it was.
  static constexpr std::uint64_t kStep = 0x9e3779b97f4a7c15ULL;
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;  // any fixed start; these are digits of pi
};

// Fingerprint's own step (FNV-1a over the value's 8 bytes), continued from
// the history's running value.
std::uint64_t fnv_continue(std::uint64_t hash, std::uint64_t value) {
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  for (int byte = 0; byte < 8; ++byte) {
    hash ^= (value >> (8 * byte)) & 0xffU;
    hash *= kPrime;
  }
  return hash;
}

}  // namespace

std::string_view event_kind_name(const EventBody& body) {
  struct Name {
    std::string_view operator()(const RequestSent&) const { return "request"; }
    std::string_view operator()(const ResponseReceived&) const { return "response"; }
    std::string_view operator()(const WaiterLeft&) const { return "leave"; }
    std::string_view operator()(const FlightStarted&) const { return "flight_start"; }
    std::string_view operator()(const FlightEnded&) const { return "flight_end"; }
    std::string_view operator()(const CallStarted&) const { return "call"; }
    std::string_view operator()(const CallEnded&) const { return "call_end"; }
    std::string_view operator()(const GateStep&) const { return "gate"; }
    std::string_view operator()(const FaultFired&) const { return "fault"; }
    std::string_view operator()(const StoreRestarted&) const { return "store_restart"; }
    std::string_view operator()(const FaultsHealed&) const { return "faults_healed"; }
  };
  return std::visit(Name{}, body);
}

std::uint64_t event_hash(const Event& event) {
  Hasher hasher;
  hasher.add(event.index);
  hasher.add(event.step);
  hasher.add(event.at_ms);
  hasher.add(static_cast<std::uint64_t>(event.body.index()));
  std::visit([&hasher](const auto& body) { hasher.add(body); }, event.body);
  return hasher.value();
}

History::History(std::size_t max_events) : max_events_(max_events), fingerprint_(Fingerprint{}.value()) {
  // Room for a typical run up front; a longer one grows up to the bound.
  events_.reserve(std::min<std::size_t>(max_events_, 1024));
}

bool History::append(std::uint64_t step, core::Ms at_ms, EventBody body) {
  if (events_.size() >= max_events_) return false;
  Event& event = events_.emplace_back(Event{events_.size(), step, at_ms, std::move(body)});
  fingerprint_ = fnv_continue(fingerprint_, event_hash(event));
  return true;
}

}  // namespace turnstile::sim
