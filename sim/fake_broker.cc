#include "sim/fake_broker.h"

#include <array>
#include <utility>

#include "core/outcome.h"
#include "sim/sleep.h"

namespace turnstile::sim {
namespace {

// The transient statuses a broker answers under load, simplest first.
constexpr std::array<int, 6> kTransientStatuses = {408, 429, 500, 502, 503, 504};

core::BrokerReply failure(core::OutcomeClass outcome_class, std::optional<core::Ms> retry_after_ms = std::nullopt) {
  core::BrokerReply reply;
  reply.result.outcome_class = outcome_class;
  reply.result.retry_after_ms = retry_after_ms;
  return reply;
}

// One or two streams, by the episode's length: deterministic, and no draw.
std::vector<core::Stream> streams_for(const std::string& episode) {
  std::vector<core::Stream> streams;
  const std::size_t count = 1 + episode.size() % 2;
  for (std::size_t n = 1; n <= count; ++n) {
    streams.push_back(core::Stream{"stream " + std::to_string(n),
                                   "http://stream.local/" + episode + "/" + std::to_string(n)});
  }
  return streams;
}

}  // namespace

FakeBroker::FakeBroker(BrokerFaults faults, Draws& draws, EventSink sink)
    : faults_(faults), draws_(draws), sink_(std::move(sink)) {}

core::Ms FakeBroker::draw_latency() {
  if (healed_ || faults_.latency_max_ms <= 0) return 0;
  return draws_.uniform(DrawSite::broker_latency, 0, faults_.latency_max_ms);
}

std::optional<core::BrokerReply> FakeBroker::resolve(const std::string& episode) {
  // The fault is decided when the call goes out, in a fixed order of sites;
  // the first that fires wins. Healed, no site draws.
  std::optional<core::BrokerReply> faulted;
  bool hang = false;
  if (!healed_) {
    if (draws_.chance_permille(DrawSite::broker_fault, faults_.transient_permille)) {
      const int status = kTransientStatuses[draws_.below(DrawSite::broker_fault, kTransientStatuses.size())];
      std::optional<core::Ms> retry_after_ms;
      std::string detail = std::to_string(status);
      if (status == 429 || status == 503) {
        retry_after_ms = draws_.uniform(DrawSite::broker_fault, 0, kMaxRetryAfterMs);
        detail += " retry-after " + std::to_string(*retry_after_ms);
      }
      sink_(FaultFired{"broker.status", detail});
      faulted = failure(core::classify_http_status(status), retry_after_ms);
    } else if (draws_.chance_permille(DrawSite::broker_fault, faults_.status_501_permille)) {
      sink_(FaultFired{"broker.status", "501"});
      faulted = failure(core::classify_http_status(501));
    } else if (draws_.chance_permille(DrawSite::broker_fault, faults_.reset_permille)) {
      sink_(FaultFired{"broker.reset", "connection reset"});
      faulted = failure(core::OutcomeClass::transient);
    } else if (draws_.chance_permille(DrawSite::broker_fault, faults_.hang_permille)) {
      sink_(FaultFired{"broker.hang", "no reply"});
      hang = true;
    } else if (draws_.chance_permille(DrawSite::broker_fault, faults_.malformed_permille)) {
      sink_(FaultFired{"broker.malformed", "unreadable body"});
      faulted = failure(core::OutcomeClass::permanent);
    }
  }
  if (hang) return std::nullopt;
  if (const core::Ms latency_ms = draw_latency(); latency_ms > 0) sleep_until(now_ms() + latency_ms);
  if (faulted) return faulted;
  core::BrokerReply reply;
  reply.streams = streams_for(episode);
  return reply;
}

}  // namespace turnstile::sim
