#include "sim/clients.h"

#include <memory>
#include <utility>

#include "core/assert.h"
#include "sim/sleep.h"

namespace turnstile::sim {
namespace {

// A burst member that leaves does so within this long of sending (often at
// once, which races the answer at the same instant).
constexpr core::Ms kMaxBurstLeaveMs = 50;
// The chance that a burst member (other than the first) leaves before its answer.
constexpr std::uint32_t kBurstLeavePermille = 500;
// How often a viewer asks before it gives up.
constexpr int kMaxTries = 4;

// One client: its identity, its group's settings, and the steps every
// behaviour is made of. Its fiber (and a burst's member fibers) share it.
class Client {
 public:
  Client(std::string id, const ClientGroup& group, const ClientSetup& setup, ClientWorld& world, Draws& draws)
      : id_(std::move(id)), group_(group), setup_(setup), world_(world), draws_(draws) {}

  void run(const std::shared_ptr<Client>& self) {
    switch (group_.behaviour) {
      case Behaviour::watch:
      case Behaviour::storm:
        watch();
        return;
      case Behaviour::blip:
        blip();
        return;
      case Behaviour::zap:
        zap();
        return;
      case Behaviour::burst:
        burst(self);
        return;
    }
  }

 private:
  // A session the client holds: the instance it talks to and its token.
  struct Held {
    InstanceId instance = 0;
    core::Token token = core::kNoToken;
  };

  // Waits for the client's first request. False if that falls after the fault
  // phase: the client then never starts.
  bool arrive() {
    core::Ms start_ms = group_.start_ms;
    // A storm's clients all arrive at the same instant; the others spread out.
    if (group_.behaviour != Behaviour::storm && group_.spread_ms > 0) {
      start_ms += draws_.uniform(DrawSite::workload, 0, group_.spread_ms);
    }
    if (start_ms >= setup_.duration_ms) return false;
    sleep_until(start_ms);
    return true;
  }

  std::string episode(std::uint32_t n) const { return "tt0944947:1:" + std::to_string(n); }

  std::string next_request_id() { return id_ + ".r" + std::to_string(++requests_); }

  InstanceId pick_instance() {
    const std::uint32_t count = world_.instance_count();
    return count == 1 ? 0 : static_cast<InstanceId>(draws_.below(DrawSite::instance, count));
  }

  core::StreamRequest request(const std::string& episode_id, const std::string& request_id) const {
    core::StreamRequest r;
    r.pool = setup_.pool;
    r.client = id_;
    r.episode = episode_id;
    r.request = request_id;
    return r;
  }

  // Sends one request and waits for its answer. A client that hears nothing
  // past the answer timeout goes away (for a sound route this never happens:
  // F6 bounds every answer).
  std::optional<Answer> ask_once(InstanceId instance, const core::StreamRequest& r) {
    const core::WaiterId waiter = world_.send(instance, r);
    std::optional<Answer> answer = world_.await_answer(waiter, now_ms() + setup_.answer_timeout_ms);
    if (!answer) world_.leave(waiter);
    return answer;
  }

  // A new request for `episode_id`; the session it granted, if any.
  std::optional<Held> ask(const std::string& episode_id) {
    const InstanceId instance = pick_instance();
    const std::optional<Answer> answer = ask_once(instance, request(episode_id, next_request_id()));
    if (!answer || answer->token == core::kNoToken) return std::nullopt;
    return Held{instance, answer->token};
  }

  // A viewer who is turned away (capacity, or a failure) tries again a while
  // later, up to kMaxTries times, while the fault phase lasts: later arrivals
  // meet idle and abandoned sessions, which is when rotation (G7) happens.
  std::optional<Held> ask_until_granted(const std::string& episode_id) {
    for (int attempt = 0; attempt < kMaxTries; ++attempt) {
      if (attempt > 0) {
        sleep_until(now_ms() + draws_.uniform(DrawSite::workload, 0, setup_.away_max_ms));
        if (now_ms() >= setup_.duration_ms) break;
      }
      if (std::optional<Held> held = ask(episode_id)) return held;
    }
    return std::nullopt;
  }

  core::Op session_op(core::OpKind kind, const Held& held) const {
    core::Op op;
    op.kind = kind;
    op.client = id_;
    op.token = held.token;
    return op;
  }

  // Heartbeats every heartbeat_ms until until_ms. False as soon as the store
  // says the session is gone (rotated out, switched away, pruned): the watch
  // is over. A heartbeat that failed says nothing; the next one tries again.
  bool keep_alive(const Held& held, core::Ms until_ms) {
    // The scenario bounds watch_ms / heartbeat_ms (check_scenario).
    for (;;) {
      const core::Ms next_ms = now_ms() + group_.heartbeat_ms;
      if (next_ms > until_ms) break;
      sleep_until(next_ms);
      const std::optional<core::StoreReply> reply = world_.store(held.instance, session_op(core::OpKind::heartbeat, held));
      if (reply && reply->decision && reply->decision->outcome == core::Outcome::gone) return false;
    }
    sleep_until(until_ms);
    return true;
  }

  // The end of a watch: release the slot, or abandon it (its slot then ages
  // out: G2 frees it within T + G).
  void finish(const Held& held) {
    if (draws_.chance_permille(DrawSite::workload, group_.abandon_permille)) return;
    (void)world_.store(held.instance, session_op(core::OpKind::release, held));
  }

  void watch() {
    if (!arrive()) return;
    const std::optional<Held> held = ask_until_granted(episode(1));
    if (!held) return;
    if (keep_alive(*held, now_ms() + group_.watch_ms)) finish(*held);
  }

  // Watches for a while, misses heartbeats for up to T + G (the session goes
  // idle, maybe gone), then reconnects with a new request for the same
  // episode, even if the fault phase has ended meanwhile.
  void blip() {
    if (!arrive()) return;
    const std::optional<Held> held = ask_until_granted(episode(1));
    if (!held) return;
    const core::Ms watched_ms = draws_.uniform(DrawSite::workload, 0, group_.watch_ms);
    if (!keep_alive(*held, now_ms() + watched_ms)) return;
    sleep_until(now_ms() + draws_.uniform(DrawSite::workload, 0, setup_.away_max_ms));
    const std::optional<Held> again = ask(episode(1));
    if (!again) return;
    if (keep_alive(*again, now_ms() + (group_.watch_ms - watched_ms))) finish(*again);
  }

  // Switches episodes fast, think_ms apart, then watches the last one granted.
  void zap() {
    if (!arrive()) return;
    std::optional<Held> last;
    for (std::uint32_t n = 1; n <= group_.switches; ++n) {
      if (n > 1) {
        sleep_until(now_ms() + group_.think_ms);
        if (now_ms() >= setup_.duration_ms) break;
      }
      if (std::optional<Held> held = ask(episode(n))) last = held;
    }
    if (!last) return;
    if (keep_alive(*last, now_ms() + group_.watch_ms)) finish(*last);
  }

  // `burst` identical requests (one request id) at the same instant, each to
  // a drawn instance. The first watches what it gets; each other member may
  // leave before its answer (C4: the flight goes on for the others).
  void burst(const std::shared_ptr<Client>& self) {
    if (!arrive()) return;
    const core::StreamRequest r = request(episode(1), next_request_id());
    for (std::uint32_t member = 1; member < group_.burst; ++member) {
      const bool spawned = world_.spawn(id_ + ".m" + std::to_string(member), [self, r] { self->burst_member(r); });
      if (!spawned) return;  // the run is ending
    }
    const InstanceId instance = pick_instance();
    const std::optional<Answer> answer = ask_once(instance, r);
    if (!answer || answer->token == core::kNoToken) return;
    const Held held{instance, answer->token};
    if (keep_alive(held, now_ms() + group_.watch_ms)) finish(held);
  }

  void burst_member(const core::StreamRequest& r) {
    const InstanceId instance = pick_instance();
    if (!draws_.chance_permille(DrawSite::workload, kBurstLeavePermille)) {
      (void)ask_once(instance, r);
      return;
    }
    const core::Ms leave_ms = now_ms() + draws_.uniform(DrawSite::workload, 0, kMaxBurstLeaveMs);
    const core::WaiterId waiter = world_.send(instance, r);
    if (!world_.await_answer(waiter, leave_ms)) world_.leave(waiter);
  }

  std::string id_;
  ClientGroup group_;
  ClientSetup setup_;
  ClientWorld& world_;
  Draws& draws_;
  std::uint32_t requests_ = 0;
};

}  // namespace

std::vector<ClientFiber> make_clients(const Scenario& scenario, const ClientSetup& setup, ClientWorld& world,
                                      Draws& draws) {
  std::vector<ClientFiber> fibers;
  std::uint32_t next = 0;
  for (const ClientGroup& group : scenario.clients) {
    for (std::uint32_t k = 0; k < group.count; ++k) {
      std::string id = "c" + std::to_string(next++);
      auto client = std::make_shared<Client>(id, group, setup, world, draws);
      fibers.push_back(ClientFiber{std::move(id), [client] { client->run(client); }});
    }
  }
  return fibers;
}

core::Token token_of(const core::Response& response) {
  if (response.denied) return core::kNoToken;
  for (const core::Stream& stream : response.streams) {
    const std::size_t at = stream.url.find("session=");
    if (at == std::string::npos) continue;
    core::Token token = 0;
    bool digits = false;
    for (std::size_t i = at + 8; i < stream.url.size() && stream.url[i] >= '0' && stream.url[i] <= '9'; ++i) {
      const auto digit = static_cast<core::Token>(stream.url[i] - '0');
      if (token > (~core::Token{0} - digit) / 10) return core::kNoToken;  // not a token the gate could issue
      token = token * 10 + digit;
      digits = true;
    }
    if (digits) return token;
  }
  return core::kNoToken;
}

}  // namespace turnstile::sim
