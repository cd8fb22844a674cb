#pragma once

// The fake broker: resolves an episode to stream URLs, behind the broker's
// fault sites. A call runs inside the calling simulated fiber; its latency is
// a sleep on the virtual clock. Every outcome is classified as SPEC R3 says
// (core::classify_http_status for statuses):
//   status     408, 429 (with Retry-After), 500, 502, 503 (with Retry-After),
//              504: transient; 501: permanent
//   reset      connection reset: transient
//   hang       never answers: the caller's deadline fires
//   malformed  a 200 whose body cannot be read: permanent
// A success carries one or two streams with URLs that depend only on the
// episode: http://stream.local/<episode>/<n>.

#include <cstdint>
#include <optional>
#include <string>

#include "core/flow.h"
#include "sim/draws.h"
#include "sim/fake_store.h"

namespace turnstile::sim {

// The broker's fault sites for one run, as the swarm drew them: a rate per
// call in permille (0: off) and the most latency a call may add.
struct BrokerFaults {
  core::Ms latency_max_ms = 0;
  std::uint32_t transient_permille = 0;
  std::uint32_t status_501_permille = 0;
  std::uint32_t reset_permille = 0;
  std::uint32_t hang_permille = 0;
  std::uint32_t malformed_permille = 0;
};

// The longest Retry-After a 429 or 503 carries.
inline constexpr core::Ms kMaxRetryAfterMs = 400;

class FakeBroker {
 public:
  FakeBroker(BrokerFaults faults, Draws& draws, EventSink sink);

  // One resolve attempt. Must be called from a simulated fiber. nullopt: no
  // reply will ever come (hang).
  std::optional<core::BrokerReply> resolve(const std::string& episode);

  // From now on no call draws or suffers a fault (the liveness phase).
  void heal() { healed_ = true; }

 private:
  core::Ms draw_latency();

  BrokerFaults faults_;
  Draws& draws_;
  EventSink sink_;
  bool healed_ = false;
};

}  // namespace turnstile::sim
