#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/gate.h"
#include "core/outcome.h"
#include "core/response.h"
#include "core/retry.h"
#include "core/rng.h"
#include "core/time.h"

namespace turnstile::core {

// SPEC F4: what a store that failed after R means for the request.
enum class FailPolicy { fail_closed, fail_open };

struct FlowConfig {
  RetryConfig store = RetryConfig::store_defaults();
  RetryConfig broker = RetryConfig::broker_defaults();
  FailPolicy fail_policy = FailPolicy::fail_closed;
};

// One stream request as the route sees it after parsing (F1).
struct StreamRequest {
  std::string pool;
  std::string client;
  std::string episode;  // the `{id}` of the path, e.g. tt0944947:1:2
  std::string request;  // V3: every attempt of one request carries the same id
  Ms issued_at = 0;     // when the route received it (the instance's clock)
};

// The store's answer to one attempt: a gate decision, or an error of a class.
struct StoreReply {
  std::optional<Decision> decision;  // set on success
  AttemptResult result;              // outcome_class success when decision is set
};

// The broker's answer to one attempt.
struct BrokerReply {
  AttemptResult result;
  std::vector<Stream> streams;  // on success
};

// Effects of one flight, drained with poll() in the order they were produced.
//
// Every StoreCall and BrokerCall carries `call`, an id unique within its flow:
// a counter from 1, incremented for every call the flow emits in any phase
// and never reused. The driver hands it back with the reply. Attempt numbers
// cannot correlate replies: the gate and the release (F5) both number their
// store attempts 1 and 2, so a late reply of the gate's would pass for the
// release's own.
struct StoreCall {
  std::uint32_t call = 0;
  int attempt = 1;
  Op op;            // admit or release; op.now is the flow's clock, a store may use its own (SPEC G)
  Ms deadline = 0;  // abandon the attempt (report a timeout) at this time
};
struct BrokerCall {
  std::uint32_t call = 0;  // see StoreCall
  int attempt = 1;
  std::string episode;
  Ms deadline = 0;
};
struct Wake {
  Ms at = 0;
};
struct Respond {
  Response response;
};
using FlowEffect = std::variant<StoreCall, BrokerCall, Wake, Respond>;

// One flight's intent path (F1, F4, F5): gate through the store's retry
// machine, then (if a session was granted, or fail_open) the broker resolve
// through the broker's retry machine, then one response. A flight that newly
// admitted and failed to resolve releases its token before answering (F5).
// Each phase is bounded by its retry budget, so the response comes no later
// than store B + broker B + release B after start (F6).
//
// At most one call is outstanding at a time: the latest one emitted, until it
// is answered or its attempt times out. Only its reply moves the flow; every
// other reply (of a call that timed out, of an earlier phase, a duplicate, an
// id never emitted, or of the other kind) is stale and ignored.
class Flow {
 public:
  Flow(const FlowConfig& config, StreamRequest request);

  void start(Ms now);
  // The reply to the StoreCall whose id is `call`.
  void on_store_reply(Ms now, std::uint32_t call, const StoreReply& reply, Rng& rng);
  // The reply to the BrokerCall whose id is `call`.
  void on_broker_reply(Ms now, std::uint32_t call, const BrokerReply& reply, Rng& rng);
  void on_timer(Ms now, Rng& rng);

  [[nodiscard]] std::optional<FlowEffect> poll();
  std::optional<Ms> next_deadline() const;
  bool done() const;  // the response was emitted

 private:
  enum class Phase { idle, gate, resolve, release, done };
  enum class CallKind { store, broker };
  // The call whose reply the current retry machine waits for.
  struct Outstanding {
    CallKind kind = CallKind::store;
    std::uint32_t call = 0;
    int attempt = 0;  // the retry machine's number for it
  };
  // Drains the current retry machine's effects into this flow's effects.
  void drive(Ms now);
  // The attempt number of `call` if it is the outstanding call of `kind`.
  std::optional<int> outstanding_attempt(CallKind kind, std::uint32_t call) const;
  void on_retry_done(Ms now, OutcomeClass outcome_class);
  void begin_resolve(Ms now);
  void begin_release(Ms now);
  void respond(Ms now, Response response);
  void emit(FlowEffect effect);
  // Records how late an input came after next_deadline(), for the F6 check.
  void note_input(Ms now);
  // The store op of the current phase (admit or release) for an attempt started at `now`.
  Op store_op(Ms now) const;

  FlowConfig config_;
  StreamRequest request_;
  Phase phase_ = Phase::idle;
  std::optional<Retry> retry_;
  std::optional<Outstanding> outstanding_;  // none between attempts and once done
  std::uint32_t calls_emitted_ = 0;         // the last call id given out
  std::optional<Decision> decision_;        // the gate's, once it answered
  std::vector<Stream> streams_;             // the broker's, once it answered
  std::vector<FlowEffect> effects_;         // at most a few; drained by poll()
  std::size_t next_effect_ = 0;
  Ms started_at_ = 0;  // F6: the response is bounded from here
  Ms late_ms_ = 0;     // F6: how much later than next_deadline() the driver's inputs came, in total
};

}  // namespace turnstile::core
