#include "core/gate.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace turnstile::core {

// Counterexamples print decisions by name rather than as raw bytes.
void showValue(const Decision& d, std::ostream& os) {
  os << "{" << outcome_name(d.outcome) << ", token " << d.token << ", victim '" << d.victim << "', held " << d.held
     << "}";
}

namespace {

// Any implementation of SPEC G with apply()'s shape: the real one, or a broken
// one defined below to show that each property can fail.
using GateFn = std::function<Decision(PoolState&, const Op&, const GateConfig&)>;

// ---------------------------------------------------------------------------
// The oracle: a second, deliberately naive reading of SPEC G. It keeps its own
// records and its own vocabulary and shares no code with core/gate.cc, so a
// mistake would have to be made twice, independently, to go unnoticed.
// ---------------------------------------------------------------------------

enum class Verdict { admitted, resumed, switched, rotated, superseded, blocked, alive, gone, released };

struct Answer {
  Verdict verdict = Verdict::gone;
  std::uint64_t token = 0;
  std::string victim;
  long long held = 0;
};

// One client's seat in the pool.
struct Seat {
  std::string who;
  std::string show;
  std::uint64_t token = 0;
  long long since = 0;  // admitted_at
  long long seen = 0;   // last_seen
  std::string request;
  long long issued = 0;
  Answer answer;
};

struct Ledger {
  long long clock = 0;
  std::uint64_t minted = 0;
  std::vector<Seat> seats;
};

struct Rules {
  long long capacity = 0;
  long long ttl = 0;
  long long grace = 0;
};

enum class AskKind { admit, heartbeat, release };

struct Ask {
  AskKind kind = AskKind::admit;
  std::string who;
  std::string show;
  std::string request;
  long long issued = 0;
  long long now = 0;
  std::uint64_t token = 0;
};

// The ways a broken gate departs from the oracle. They live only in this test
// file, so the real gate never carries a bug switch.
enum class Flaw {
  none,
  rotate_newest,         // G7 picks the newest idle session
  no_replay,             // G3 missing
  no_supersede,          // G4 missing
  admit_over_capacity,   // G8 missing: a newcomer is admitted when full
  rotate_live,           // G7 may rotate a live session
  second_seat_on_switch, // G5's switch takes a second slot
  heartbeat_any_token,   // G11 ignores the token
};

bool seat_is_gone(const Seat& seat, long long clock, const Rules& rules) {
  return clock - seat.seen > rules.ttl + rules.grace;
}

bool seat_is_idle(const Seat& seat, long long clock, const Rules& rules) {
  const long long age = clock - seat.seen;
  return age > rules.ttl && age <= rules.ttl + rules.grace;
}

// G7's order, spelled out: seat a is rotated before seat b.
bool rotates_before(const Seat& a, const Seat& b) {
  if (a.seen != b.seen) return a.seen < b.seen;
  if (a.since != b.since) return a.since < b.since;
  return a.who < b.who;
}

Answer oracle_step(Ledger& ledger, const Ask& ask, const Rules& rules, Flaw flaw) {
  // G1.
  if (ask.now > ledger.clock) ledger.clock = ask.now;
  // G2.
  std::vector<Seat> kept;
  for (const Seat& seat : ledger.seats) {
    if (!seat_is_gone(seat, ledger.clock, rules)) kept.push_back(seat);
  }
  ledger.seats = kept;

  int mine = -1;
  for (std::size_t i = 0; i < ledger.seats.size(); ++i) {
    if (ledger.seats[i].who == ask.who) mine = static_cast<int>(i);
  }
  auto count = [&] { return static_cast<long long>(ledger.seats.size()); };

  if (ask.kind == AskKind::heartbeat) {
    if (mine >= 0 && (flaw == Flaw::heartbeat_any_token || ledger.seats[mine].token == ask.token)) {
      ledger.seats[mine].seen = ledger.clock;
      return Answer{Verdict::alive, 0, "", count()};
    }
    return Answer{Verdict::gone, 0, "", count()};
  }
  if (ask.kind == AskKind::release) {
    if (mine >= 0 && ledger.seats[mine].token == ask.token) {
      ledger.seats.erase(ledger.seats.begin() + mine);
      return Answer{Verdict::released, 0, "", count()};
    }
    return Answer{Verdict::gone, 0, "", count()};
  }

  if (mine >= 0) {
    Seat& seat = ledger.seats[mine];
    if (flaw != Flaw::no_replay && seat.request == ask.request) {
      Answer replay = seat.answer;
      replay.held = count();
      return replay;
    }
    const bool older = ask.issued < seat.issued || (ask.issued == seat.issued && ask.request < seat.request);
    if (flaw != Flaw::no_supersede && older) return Answer{Verdict::superseded, 0, "", count()};
    Answer answer;
    if (seat.show == ask.show) {
      answer = Answer{Verdict::resumed, seat.token, "", count()};
    } else if (flaw == Flaw::second_seat_on_switch) {
      ledger.minted += 1;
      Seat extra = seat;
      extra.show = ask.show;
      extra.token = ledger.minted;
      extra.since = ledger.clock;
      ledger.seats.push_back(extra);
      answer = Answer{Verdict::switched, ledger.minted, "", count()};
    } else {
      ledger.minted += 1;
      seat.token = ledger.minted;
      seat.show = ask.show;
      answer = Answer{Verdict::switched, seat.token, "", count()};
    }
    Seat& updated = ledger.seats[static_cast<std::size_t>(mine)];
    updated.request = ask.request;
    updated.issued = ask.issued;
    updated.seen = ledger.clock;
    updated.answer = answer;
    return answer;
  }

  std::string victim;
  if (count() >= rules.capacity) {
    int pick = -1;
    for (std::size_t i = 0; i < ledger.seats.size(); ++i) {
      const bool candidate = flaw == Flaw::rotate_live || seat_is_idle(ledger.seats[i], ledger.clock, rules);
      if (!candidate) continue;
      if (pick < 0) {
        pick = static_cast<int>(i);
        continue;
      }
      const Seat& best = ledger.seats[static_cast<std::size_t>(pick)];
      const bool better = flaw == Flaw::rotate_newest ? rotates_before(best, ledger.seats[i])
                                                      : rotates_before(ledger.seats[i], best);
      if (better) pick = static_cast<int>(i);
    }
    if (pick < 0 && flaw != Flaw::admit_over_capacity) return Answer{Verdict::blocked, 0, "", count()};
    if (pick >= 0) {
      victim = ledger.seats[static_cast<std::size_t>(pick)].who;
      ledger.seats.erase(ledger.seats.begin() + pick);
    }
  }
  ledger.minted += 1;
  Answer answer{victim.empty() ? Verdict::admitted : Verdict::rotated, ledger.minted, victim, count() + 1};
  ledger.seats.push_back(
      Seat{ask.who, ask.show, ledger.minted, ledger.clock, ledger.clock, ask.request, ask.issued, answer});
  return answer;
}

// ---- conversions between the oracle's vocabulary and the core's ----------

Outcome outcome_of(Verdict verdict) {
  switch (verdict) {
    case Verdict::admitted: return Outcome::admitted;
    case Verdict::resumed: return Outcome::resumed;
    case Verdict::switched: return Outcome::switched;
    case Verdict::rotated: return Outcome::rotated;
    case Verdict::superseded: return Outcome::superseded;
    case Verdict::blocked: return Outcome::blocked_capacity;
    case Verdict::alive: return Outcome::alive;
    case Verdict::gone: return Outcome::gone;
    case Verdict::released: return Outcome::released;
  }
  return Outcome::gone;
}

Verdict verdict_of(Outcome outcome) {
  switch (outcome) {
    case Outcome::admitted: return Verdict::admitted;
    case Outcome::resumed: return Verdict::resumed;
    case Outcome::switched: return Verdict::switched;
    case Outcome::rotated: return Verdict::rotated;
    case Outcome::superseded: return Verdict::superseded;
    case Outcome::blocked_capacity: return Verdict::blocked;
    case Outcome::alive: return Verdict::alive;
    case Outcome::gone: return Verdict::gone;
    case Outcome::released: return Verdict::released;
  }
  return Verdict::gone;
}

Decision decision_of(const Answer& a) { return Decision{outcome_of(a.verdict), a.token, a.victim, a.held}; }
Answer answer_of(const Decision& d) { return Answer{verdict_of(d.outcome), d.token, d.victim, d.held}; }

Rules rules_of(const GateConfig& config) { return Rules{config.capacity, config.ttl_ms, config.grace_ms}; }

Ask ask_of(const Op& op) {
  const AskKind kind = op.kind == OpKind::admit       ? AskKind::admit
                       : op.kind == OpKind::heartbeat ? AskKind::heartbeat
                                                      : AskKind::release;
  return Ask{kind, op.client, op.episode, op.request, op.issued_at, op.now, op.token};
}

Ledger ledger_of(const PoolState& pool) {
  Ledger ledger{pool.last_now, pool.last_token, {}};
  for (const Session& s : pool.sessions) {
    ledger.seats.push_back(Seat{s.client, s.episode, s.token, s.admitted_at, s.last_seen, s.last_request,
                                s.last_issued, answer_of(s.last_decision)});
  }
  return ledger;
}

PoolState pool_of(const Ledger& ledger) {
  PoolState pool{ledger.clock, ledger.minted, {}};
  for (const Seat& seat : ledger.seats) {
    pool.sessions.push_back(Session{seat.who, seat.show, seat.token, seat.since, seat.seen, seat.request,
                                    seat.issued, decision_of(seat.answer)});
  }
  return pool;
}

// A gate built from the oracle with one flaw, shaped like apply().
GateFn flawed_gate(Flaw flaw) {
  return [flaw](PoolState& pool, const Op& op, const GateConfig& config) {
    Ledger ledger = ledger_of(pool);
    const Answer answer = oracle_step(ledger, ask_of(op), rules_of(config), flaw);
    pool = pool_of(ledger);
    return decision_of(answer);
  };
}

const GateFn kRealGate = [](PoolState& pool, const Op& op, const GateConfig& config) {
  return apply(pool, op, config);
};

// A session as the comparison sees it, in an order-free form: everything
// SPEC G says a session holds (G10), in the core's types.
struct SessionView {
  std::string client;
  std::string episode;
  Token token = kNoToken;
  Ms admitted_at = 0;
  Ms last_seen = 0;
  std::string last_request;
  Ms last_issued = 0;
  Decision last_decision;

  bool operator==(const SessionView&) const = default;
};

void showValue(const SessionView& v, std::ostream& os) {
  os << "{" << v.client << ", " << v.episode << ", token " << v.token << ", admitted_at " << v.admitted_at
     << ", last_seen " << v.last_seen << ", last_request " << v.last_request << ", last_issued " << v.last_issued
     << ", last_decision ";
  showValue(v.last_decision, os);
  os << "}";
}

std::vector<SessionView> sorted(std::vector<SessionView> views) {
  std::sort(views.begin(), views.end(), [](const SessionView& a, const SessionView& b) {
    return std::tie(a.client, a.token) < std::tie(b.client, b.token);
  });
  return views;
}

std::vector<SessionView> views_of(const PoolState& pool) {
  std::vector<SessionView> views;
  for (const Session& s : pool.sessions) {
    views.push_back(SessionView{s.client, s.episode, s.token, s.admitted_at, s.last_seen, s.last_request,
                                s.last_issued, s.last_decision});
  }
  return sorted(std::move(views));
}

std::vector<SessionView> views_of(const Ledger& ledger) {
  std::vector<SessionView> views;
  for (const Seat& seat : ledger.seats) {
    views.push_back(SessionView{seat.who, seat.show, seat.token, seat.since, seat.seen, seat.request, seat.issued,
                                decision_of(seat.answer)});
  }
  return sorted(std::move(views));
}

// ---------------------------------------------------------------------------
// Workloads: abstract steps, turned into concrete operations by a driver that
// knows only what the clients were told (requests sent, tokens granted).
// ---------------------------------------------------------------------------

enum class StepKind { fresh, replay, late, heartbeat, release, config };
enum class TokenPick { current, stale, random };

struct Step {
  StepKind kind = StepKind::fresh;
  int client = 0;
  int episode = 0;
  Ms dt_ms = 0;     // how the caller's clock moves before this step; may go back
  Ms delay_ms = 0;  // how far issued_at lags behind now (fresh) or the newest intent (late)
  int pick = 0;     // which earlier request (replay) or granted token (stale)
  TokenPick token_pick = TokenPick::current;
  Token random_token = 0;
  char request_prefix = 'a';
  GateConfig config;
};

void showValue(const Step& s, std::ostream& os) {
  static constexpr const char* kKinds[] = {"fresh", "replay", "late", "heartbeat", "release", "config"};
  os << kKinds[static_cast<int>(s.kind)] << " c" << s.client << " e" << s.episode << " dt " << s.dt_ms << " delay "
     << s.delay_ms << " pick " << s.pick << " token_pick " << static_cast<int>(s.token_pick) << " random_token "
     << s.random_token << " prefix " << s.request_prefix << " config " << s.config.capacity << "/"
     << s.config.ttl_ms << "/" << s.config.grace_ms;
}

rc::Gen<GateConfig> config_gen() {
  return rc::gen::exec([] {
    GateConfig config;
    config.capacity = *rc::gen::inRange<std::int64_t>(1, 5);
    config.ttl_ms = *rc::gen::inRange<Ms>(1, 51);
    config.grace_ms = *rc::gen::weightedOneOf<Ms>({{1, rc::gen::just<Ms>(0)}, {3, rc::gen::inRange<Ms>(1, 51)}});
    return config;
  });
}

rc::Gen<Step> step_gen() {
  return rc::gen::exec([] {
    Step s;
    s.kind = *rc::gen::weightedElement<StepKind>({{8, StepKind::fresh},
                                                  {3, StepKind::replay},
                                                  {2, StepKind::late},
                                                  {5, StepKind::heartbeat},
                                                  {2, StepKind::release},
                                                  {1, StepKind::config}});
    s.client = *rc::gen::inRange(0, 5);
    s.episode = *rc::gen::inRange(0, 3);
    // Many steps share an instant, some cross an age boundary, a few run the
    // caller's clock backwards.
    s.dt_ms = *rc::gen::weightedOneOf<Ms>({{4, rc::gen::just<Ms>(0)},
                                           {3, rc::gen::inRange<Ms>(1, 4)},
                                           {3, rc::gen::inRange<Ms>(4, 31)},
                                           {1, rc::gen::inRange<Ms>(-30, 0)}});
    s.delay_ms = *rc::gen::inRange<Ms>(0, 8);
    s.pick = *rc::gen::inRange(0, 64);
    s.token_pick = *rc::gen::element(TokenPick::current, TokenPick::stale, TokenPick::random);
    s.random_token = *rc::gen::inRange<Token>(0, 16);
    s.request_prefix = *rc::gen::element('a', 'b', 'c');
    s.config = *config_gen();
    return s;
  });
}

constexpr int kMaxSteps = 80;

struct Scenario {
  int clients = 2;
  GateConfig config;
  std::vector<Step> steps;
};

Scenario scenario() {
  Scenario sc;
  // More clients than slots is where rotation happens, so larger sets are
  // drawn more often.
  sc.clients = *rc::gen::weightedElement<int>({{1, 2}, {2, 3}, {2, 4}, {3, 5}});
  sc.config = *config_gen();
  // A fixed size, so that even the first cases are long enough to fill the
  // pool and age its sessions; shrinking still shortens them.
  sc.steps = *rc::gen::resize(kMaxSteps, rc::gen::container<std::vector<Step>>(step_gen()));
  return sc;
}

std::string describe(const Op& op, const GateConfig& config) {
  std::ostringstream os;
  static constexpr const char* kKinds[] = {"admit", "heartbeat", "release"};
  os << kKinds[static_cast<int>(op.kind)] << " " << op.client;
  if (op.kind == OpKind::admit) {
    os << " " << op.episode << " " << op.request << " issued " << op.issued_at;
  } else {
    os << " token " << op.token;
  }
  os << " now " << op.now << " (C " << config.capacity << " T " << config.ttl_ms << " G " << config.grace_ms << ")";
  return os.str();
}

// What the clients know, and how a step becomes an operation.
class Driver {
 public:
  explicit Driver(int clients)
      : clients_(clients), sent_(static_cast<std::size_t>(clients)), granted_(static_cast<std::size_t>(clients)) {}

  std::string name(int client) const { return "c" + std::to_string(client % clients_); }

  Op op_for(const Step& step) {
    wall_ms_ = std::max<Ms>(0, wall_ms_ + step.dt_ms);
    const auto c = static_cast<std::size_t>(step.client % clients_);
    Op op;
    op.client = name(step.client);
    op.now = wall_ms_;
    switch (step.kind) {
      case StepKind::replay:
        if (!sent_[c].empty()) {
          // Every attempt of a request carries its id, episode and issued_at.
          op = sent_[c][static_cast<std::size_t>(step.pick) % sent_[c].size()];
          op.now = wall_ms_;
          return op;
        }
        [[fallthrough]];
      case StepKind::fresh:
      case StepKind::late:
      case StepKind::config: {
        op.kind = OpKind::admit;
        op.episode = "e" + std::to_string(step.episode);
        op.request = step.request_prefix + std::to_string(next_request_++);
        Ms base = wall_ms_;
        if (step.kind == StepKind::late) {
          for (const Op& earlier : sent_[c]) base = std::max(base, earlier.issued_at);
        }
        op.issued_at = std::max<Ms>(0, base - step.delay_ms);
        sent_[c].push_back(op);
        return op;
      }
      case StepKind::heartbeat:
      case StepKind::release: {
        op.kind = step.kind == StepKind::heartbeat ? OpKind::heartbeat : OpKind::release;
        const std::vector<Token>& tokens = granted_[c];
        if (step.token_pick == TokenPick::random || tokens.empty()) {
          op.token = step.random_token;
        } else if (step.token_pick == TokenPick::current) {
          op.token = tokens.back();
        } else {
          op.token = tokens[static_cast<std::size_t>(step.pick) % tokens.size()];
        }
        return op;
      }
    }
    return op;
  }

  // A client holds the token of its latest granted decision.
  void learn(const Op& op, const Decision& decision) {
    if (!is_granted(decision.outcome)) return;
    std::vector<Token>& tokens = granted_[static_cast<std::size_t>(std::stoi(op.client.substr(1)))];
    if (tokens.empty() || tokens.back() != decision.token) tokens.push_back(decision.token);
  }

  bool was_granted(const std::string& client, Token token) const {
    const std::vector<Token>& tokens = granted_[static_cast<std::size_t>(std::stoi(client.substr(1)))];
    return std::find(tokens.begin(), tokens.end(), token) != tokens.end();
  }

 private:
  int clients_;
  Ms wall_ms_ = 0;
  int next_request_ = 0;
  std::vector<std::vector<Op>> sent_;
  std::vector<std::vector<Token>> granted_;
};

// Runs one generated workload through `gate`, calling `check` after each
// operation with the pool before and after it.
void run_workload(const GateFn& gate,
                  const std::function<void(const PoolState& before, const Op&, const GateConfig&, const Decision&,
                                           const PoolState& after, const Driver&)>& check) {
  const Scenario sc = scenario();
  Driver driver(sc.clients);
  GateConfig config = sc.config;
  PoolState pool;
  for (const Step& step : sc.steps) {
    if (step.kind == StepKind::config) {
      // G13: the config may change between operations.
      config = step.config;
      RC_LOG() << "config C " << config.capacity << " T " << config.ttl_ms << " G " << config.grace_ms << "\n";
      continue;
    }
    const Op op = driver.op_for(step);
    const PoolState before = pool;
    const Decision decision = gate(pool, op, config);
    RC_LOG() << describe(op, config) << " -> " << outcome_name(decision.outcome) << " " << decision.token << " "
             << decision.victim << " " << decision.held << "\n";
    check(before, op, config, decision, pool, driver);
    driver.learn(op, decision);
  }
}

// ---------------------------------------------------------------------------
// Property bodies, each taking the gate under test.
// ---------------------------------------------------------------------------

// G1-G13: every decision and every session equals the oracle's.
void matches_oracle(const GateFn& gate) {
  Ledger ledger;
  run_workload(gate, [&](const PoolState&, const Op& op, const GateConfig& config, const Decision& decision,
                         const PoolState& after, const Driver&) {
    const Answer want = oracle_step(ledger, ask_of(op), rules_of(config), Flaw::none);
    RC_ASSERT(decision == decision_of(want));
    RC_ASSERT(views_of(after) == views_of(ledger));
    RC_ASSERT(after.last_now == static_cast<Ms>(ledger.clock));
    RC_ASSERT(after.last_token == ledger.minted);
  });
}

// G14 (and G2): slots held never grow past max(C, held before); one session
// per client; a session live at the operation's now survives it unless its
// owner released it; nothing gone is left behind.
void holds_g14(const GateFn& gate) {
  run_workload(gate, [](const PoolState& before, const Op& op, const GateConfig& config, const Decision& decision,
                        const PoolState& after, const Driver&) {
    const Ms now = std::max(before.last_now, op.now);
    long long held_before = 0;
    std::vector<std::pair<std::string, Ms>> live_before;
    for (const Session& s : before.sessions) {
      if (before.last_now - s.last_seen <= config.ttl_ms + config.grace_ms) ++held_before;
      if (now - s.last_seen <= config.ttl_ms) live_before.emplace_back(s.client, s.admitted_at);
    }
    const auto held_after = static_cast<long long>(after.sessions.size());
    RC_ASSERT(decision.held == held_after);
    RC_ASSERT(held_after <= std::max<long long>(config.capacity, held_before));

    std::set<std::string> clients;
    for (const Session& s : after.sessions) {
      RC_ASSERT(clients.insert(s.client).second);
      RC_ASSERT(after.last_now - s.last_seen <= config.ttl_ms + config.grace_ms);
    }
    for (const auto& [client, admitted_at] : live_before) {
      if (op.kind == OpKind::release && op.client == client && decision.outcome == Outcome::released) continue;
      const bool survived = std::any_of(after.sessions.begin(), after.sessions.end(), [&](const Session& s) {
        return s.client == client && s.admitted_at == admitted_at;
      });
      RC_ASSERT(survived);
    }
  });
}

// P10 (G11): a token once granted to a client and then reported gone is never
// alive, released or granted to that client again.
void dead_tokens_stay_dead(const GateFn& gate) {
  std::set<std::pair<std::string, Token>> dead;
  run_workload(gate, [&](const PoolState&, const Op& op, const GateConfig&, const Decision& decision,
                         const PoolState&, const Driver& driver) {
    if (op.kind == OpKind::admit) {
      if (is_granted(decision.outcome)) RC_ASSERT(dead.count({op.client, decision.token}) == 0u);
      return;
    }
    if (decision.outcome == Outcome::gone) {
      if (driver.was_granted(op.client, op.token)) dead.insert({op.client, op.token});
      return;
    }
    RC_ASSERT(dead.count({op.client, op.token}) == 0u);
  });
}

// P17 (G4): a session never holds an intent older than one the gate already
// applied to it. An intent is applied when its decision grants a session; a
// session's history starts when it is created and ends when it disappears.
void last_intent_wins(const GateFn& gate) {
  struct Intent {
    Ms issued_at = 0;
    std::string request;
    std::string episode;
  };
  std::map<std::string, Intent> applied;
  run_workload(gate, [&](const PoolState&, const Op& op, const GateConfig&, const Decision& decision,
                         const PoolState& after, const Driver&) {
    if (op.kind == OpKind::admit && is_granted(decision.outcome)) {
      const Intent intent{op.issued_at, op.request, op.episode};
      auto it = applied.find(op.client);
      const bool new_session = decision.outcome == Outcome::admitted || decision.outcome == Outcome::rotated;
      if (it == applied.end() || new_session ||
          std::tie(it->second.issued_at, it->second.request) < std::tie(intent.issued_at, intent.request)) {
        applied[op.client] = intent;
      }
    }
    for (auto it = applied.begin(); it != applied.end();) {
      const bool holds = std::any_of(after.sessions.begin(), after.sessions.end(),
                                     [&](const Session& s) { return s.client == it->first; });
      it = holds ? std::next(it) : applied.erase(it);
    }
    for (const Session& s : after.sessions) {
      const auto it = applied.find(s.client);
      RC_ASSERT(it != applied.end());
      RC_ASSERT(s.last_issued == it->second.issued_at);
      RC_ASSERT(s.last_request == it->second.request);
      RC_ASSERT(s.episode == it->second.episode);
    }
  });
}

// ---- the properties, on the real gate -----------------------------------

RC_GTEST_PROP(GateProps, G1_G13_DecisionsAndSessionsMatchTheNaiveOracle, ()) { matches_oracle(kRealGate); }

RC_GTEST_PROP(GateProps, G14_HeldBoundedOneSessionPerClientLiveSessionsSurvive, ()) { holds_g14(kRealGate); }

RC_GTEST_PROP(GateProps, P10_DeadTokensStayDead, ()) { dead_tokens_stay_dead(kRealGate); }

RC_GTEST_PROP(GateProps, P17_NoSessionHoldsAnOlderIntentThanOneApplied, ()) { last_intent_wins(kRealGate); }

// ---- each property can fail: broken gates are caught ---------------------

TEST(GateProps, Oracle_WithoutAFlawAgreesWithItself) {
  EXPECT_TRUE(rc::check("the flawless oracle as a gate", [] { matches_oracle(flawed_gate(Flaw::none)); }));
}

TEST(GateProps, G7_BrokenGateRotatingTheNewestIdleIsCaught) {
  EXPECT_FALSE(rc::check("rotate newest idle", [] { matches_oracle(flawed_gate(Flaw::rotate_newest)); }));
}

TEST(GateProps, G3_BrokenGateIgnoringRequestIdsIsCaught) {
  EXPECT_FALSE(rc::check("no replay", [] { matches_oracle(flawed_gate(Flaw::no_replay)); }));
}

TEST(GateProps, G4_BrokenGateWithoutSupersedeIsCaught) {
  EXPECT_FALSE(rc::check("no supersede", [] { matches_oracle(flawed_gate(Flaw::no_supersede)); }));
}

TEST(GateProps, G14_BrokenGateAdmittingOverCapacityIsCaught) {
  EXPECT_FALSE(rc::check("admit over capacity", [] { holds_g14(flawed_gate(Flaw::admit_over_capacity)); }));
}

TEST(GateProps, G14_BrokenGateRotatingALiveSessionIsCaught) {
  EXPECT_FALSE(rc::check("rotate live", [] { holds_g14(flawed_gate(Flaw::rotate_live)); }));
}

TEST(GateProps, G14_BrokenGateGivingASecondSlotOnSwitchIsCaught) {
  EXPECT_FALSE(rc::check("second seat on switch", [] { holds_g14(flawed_gate(Flaw::second_seat_on_switch)); }));
}

TEST(GateProps, P10_BrokenGateIgnoringHeartbeatTokensIsCaught) {
  EXPECT_FALSE(rc::check("heartbeat any token", [] { dead_tokens_stay_dead(flawed_gate(Flaw::heartbeat_any_token)); }));
}

TEST(GateProps, P17_BrokenGateWithoutSupersedeIsCaught) {
  EXPECT_FALSE(rc::check("no supersede", [] { last_intent_wins(flawed_gate(Flaw::no_supersede)); }));
}

}  // namespace
}  // namespace turnstile::core
