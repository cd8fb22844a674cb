#include "adapters/redis/redis_store.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "adapters/redis/sha1.h"
#include "core/assert.h"
#include "core/ids.h"
#include "core/outcome.h"

namespace turnstile::adapters {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Fields per session in the `state` reply (see gate.lua).
constexpr std::size_t kStateFields = 11;

timeval to_timeval(core::Ms ms) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms % 1000) * 1000);
  return tv;
}

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  });
}

std::string_view text_of(const redisReply& reply) { return {reply.str, reply.len}; }

bool is_text(const redisReply& reply) {
  return reply.type == REDIS_REPLY_STRING || reply.type == REDIS_REPLY_STATUS;
}

template <typename Int>
std::optional<Int> parse_int(std::string_view text) {
  Int value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

std::optional<core::Ms> parse_time(std::string_view text) {
  auto value = parse_int<core::Ms>(text);
  if (!value || *value < 0 || *value > core::kMaxTimeMs) return std::nullopt;
  return value;
}

// A decision as gate.lua answers it: {outcome, token or "", victim or "", held}.
std::optional<core::Decision> decode_decision(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 4) return std::nullopt;
  const redisReply& outcome = *reply.element[0];
  const redisReply& token = *reply.element[1];
  const redisReply& victim = *reply.element[2];
  const redisReply& held = *reply.element[3];
  if (!is_text(outcome) || !is_text(token) || !is_text(victim) || held.type != REDIS_REPLY_INTEGER) {
    return std::nullopt;
  }
  core::Decision decision;
  auto name = core::outcome_from_name(text_of(outcome));
  if (!name) return std::nullopt;
  decision.outcome = *name;
  if (token.len > 0) {
    auto value = parse_int<core::Token>(text_of(token));
    if (!value || *value == core::kNoToken) return std::nullopt;
    decision.token = *value;
  }
  decision.victim = std::string(text_of(victim));
  if (held.integer < 0) return std::nullopt;
  decision.held = held.integer;
  return decision;
}

std::optional<core::PoolState> decode_state(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 2 || (reply.elements - 2) % kStateFields != 0) {
    return std::nullopt;
  }
  std::vector<std::string_view> f;
  f.reserve(reply.elements);
  for (std::size_t i = 0; i < reply.elements; ++i) {
    if (!is_text(*reply.element[i])) return std::nullopt;
    f.push_back(text_of(*reply.element[i]));
  }
  core::PoolState pool;
  auto last_now = parse_time(f[0]);
  auto last_token = parse_int<core::Token>(f[1]);
  if (!last_now || !last_token) return std::nullopt;
  pool.last_now = *last_now;
  pool.last_token = *last_token;
  for (std::size_t i = 2; i < f.size(); i += kStateFields) {
    core::Session s;
    s.client = std::string(f[i]);
    s.episode = std::string(f[i + 1]);
    auto token = parse_int<core::Token>(f[i + 2]);
    auto admitted_at = parse_time(f[i + 3]);
    auto last_seen = parse_time(f[i + 4]);
    s.last_request = std::string(f[i + 5]);
    auto last_issued = parse_time(f[i + 6]);
    auto outcome = core::outcome_from_name(f[i + 7]);
    std::optional<core::Token> decision_token = core::kNoToken;
    if (!f[i + 8].empty()) decision_token = parse_int<core::Token>(f[i + 8]);
    auto held = parse_int<std::int64_t>(f[i + 10]);
    if (!token || !admitted_at || !last_seen || !last_issued || !outcome || !decision_token || !held) {
      return std::nullopt;
    }
    s.token = *token;
    s.admitted_at = *admitted_at;
    s.last_seen = *last_seen;
    s.last_issued = *last_issued;
    s.last_decision = core::Decision{*outcome, *decision_token, std::string(f[i + 9]), *held};
    pool.sessions.push_back(std::move(s));
  }
  return pool;
}


}  // namespace

// One command's result: a reply (possibly an error reply), or a failure of
// the given class with last_error_ saying why.
struct RedisStore::CommandResult {
  ReplyPtr reply;
  core::OutcomeClass failure = core::OutcomeClass::success;
};

std::string RedisEndpoint::url() const {
  if (!unix_path.empty()) return "unix:" + unix_path;
  return fmt::format("redis://{}:{}", host, port);
}

std::variant<RedisEndpoint, std::string> parse_redis_url(std::string_view url) {
  static constexpr std::string_view kExpected = "expected unix:/path/to/socket or redis://host[:port]";
  RedisEndpoint endpoint;
  if (url.starts_with("unix:")) {
    endpoint.unix_path = std::string(url.substr(5));
    if (endpoint.unix_path.empty()) return std::string(kExpected);
    return endpoint;
  }
  if (!url.starts_with("redis://")) return std::string(kExpected);
  std::string_view rest = url.substr(8);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const auto colon = rest.rfind(':');
  std::string_view host = rest;
  if (colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    auto port = parse_int<int>(rest.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535) return std::string(kExpected) + " (port 1-65535)";
    endpoint.port = *port;
  }
  if (host.empty() || host.find_first_of("/@") != std::string_view::npos) return std::string(kExpected);
  endpoint.host = std::string(host);
  return endpoint;
}

std::string pool_key(std::string_view pool) { return fmt::format("turnstile:{{{}}}", pool); }

std::string seen_key(std::string_view pool) { return fmt::format("turnstile:{{{}}}:seen", pool); }

RedisStore::RedisStore(RedisStoreConfig config) : config_(std::move(config)), script_sha_(sha1_hex(config_.script)) {
  TS_ASSERT(!core::check_retry_config(config_.retry));
  TS_ASSERT(config_.connect_timeout_ms >= 1);
  ignore_sigpipe_once();
}

RedisStore::~RedisStore() { disconnect(); }

core::Ms RedisStore::steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool RedisStore::connect(core::Ms deadline_ms) {
  if (context_ != nullptr) return true;
  const core::Ms left_ms = deadline_ms - steady_ms();
  if (left_ms <= 0) {
    last_error_ = "connect: the attempt's deadline passed";
    return false;
  }
  // Debian's hiredis is 0.14, which has no redisConnectWithOptions; these
  // take the same connect timeout.
  const timeval timeout = to_timeval(std::min(left_ms, config_.connect_timeout_ms));
  const RedisEndpoint& at = config_.endpoint;
  redisContext* context = at.unix_path.empty() ? redisConnectWithTimeout(at.host.c_str(), at.port, timeout)
                                               : redisConnectUnixWithTimeout(at.unix_path.c_str(), timeout);
  if (context == nullptr) {
    last_error_ = "connect: out of memory";
    return false;
  }
  if (context->err != 0) {
    last_error_ = fmt::format("connect to {}: {}", at.url(), context->errstr);
    redisFree(context);
    return false;
  }
  context_ = context;
  ++stats_.connects;
  return true;
}

void RedisStore::disconnect() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

RedisStore::CommandResult RedisStore::command(const std::vector<std::string_view>& argv, core::Ms deadline_ms) {
  // Connection errors are transient (R3), whatever caused them.
  if (!connect(deadline_ms)) return {nullptr, core::OutcomeClass::transient};
  const core::Ms left_ms = deadline_ms - steady_ms();
  if (left_ms <= 0) {
    last_error_ = "the attempt's deadline passed";
    return {nullptr, core::OutcomeClass::transient};
  }
  // The socket's send and receive timeouts end the command at the attempt's
  // deadline (each read and write is bounded by what is left).
  redisSetTimeout(context_, to_timeval(left_ms));

  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (std::string_view arg : argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  void* raw = redisCommandArgv(context_, static_cast<int>(args.size()), args.data(), lengths.data());
  if (raw == nullptr) {
    // A protocol error means the server said something that is not RESP: no
    // retry will read it better. Timeouts (EAGAIN), resets and EOF are
    // transient. Either way the connection may hold a late reply: drop it.
    const bool garbled = context_->err == REDIS_ERR_PROTOCOL;
    last_error_ = fmt::format("{}: {}", config_.endpoint.url(), context_->errstr);
    disconnect();
    return {nullptr, garbled ? core::OutcomeClass::permanent : core::OutcomeClass::transient};
  }
  return {ReplyPtr(static_cast<redisReply*>(raw)), core::OutcomeClass::success};
}

RedisStore::CommandResult RedisStore::run_script(std::string_view pool, const std::vector<std::string>& args,
                                                 core::Ms deadline_ms) {
  const std::string keys[] = {pool_key(pool), seen_key(pool)};
  std::vector<std::string_view> argv = {"EVALSHA", script_sha_, "2", keys[0], keys[1]};
  for (const std::string& arg : args) argv.push_back(arg);
  CommandResult result = command(argv, deadline_ms);
  if (result.reply && result.reply->type == REDIS_REPLY_ERROR && text_of(*result.reply).starts_with("NOSCRIPT")) {
    // R3: NOSCRIPT is not an attempt outcome. The server lost its script
    // cache (a restart, SCRIPT FLUSH, a failover): send the script itself,
    // once, inside the same attempt. EVAL also caches it again.
    ++stats_.eval_fallbacks;
    argv[0] = "EVAL";
    argv[1] = config_.script;
    result = command(argv, deadline_ms);
  }
  return result;
}

core::StoreReply RedisStore::fail(core::OutcomeClass outcome_class, std::string why) {
  if (!why.empty()) last_error_ = std::move(why);
  return core::StoreReply{std::nullopt, core::AttemptResult{outcome_class, std::nullopt}};
}

core::StoreReply RedisStore::attempt(std::string_view pool, const core::Op& op, const core::GateConfig& gate,
                                     core::Ms deadline_ms) {
  if (config_.before_attempt) config_.before_attempt(pool, op);
  core::StoreReply reply = attempt_once(pool, op, gate, deadline_ms);
  if (config_.after_attempt) config_.after_attempt(pool, op, reply);
  return reply;
}

core::StoreReply RedisStore::attempt_once(std::string_view pool, const core::Op& op, const core::GateConfig& gate,
                                          core::Ms deadline_ms) {
  // The same contract as core::apply: the caller validated the op (SPEC V)
  // and the config. gate.lua could not tell a time past 2^53 - 1 from its
  // rounded neighbour, and an id with a '|' would break its encoding.
  TS_ASSERT(!core::check_config(gate));
  TS_ASSERT(core::is_valid_id(core::IdKind::pool, pool));
  TS_ASSERT(core::is_valid_id(core::IdKind::client, op.client));
  TS_ASSERT(op.now >= 0 && op.now <= core::kMaxTimeMs);
  if (op.kind == core::OpKind::admit) {
    TS_ASSERT(core::is_valid_id(core::IdKind::episode, op.episode));
    TS_ASSERT(core::is_valid_id(core::IdKind::request, op.request));
    TS_ASSERT(op.issued_at >= 0 && op.issued_at <= core::kMaxTimeMs);
  }
  ++stats_.attempts;
  std::vector<std::string> args = {
      std::string(core::op_kind_name(op.kind)),
      config_.clock == StoreClock::caller ? "caller" : "redis",
      std::to_string(op.now),
      std::to_string(gate.capacity),
      std::to_string(gate.ttl_ms),
      std::to_string(gate.grace_ms),
      op.client,
  };
  if (op.kind == core::OpKind::admit) {
    args.push_back(op.episode);
    args.push_back(op.request);
    args.push_back(std::to_string(op.issued_at));
  } else {
    // Canonical decimal, as the script compares tokens as strings.
    args.push_back(std::to_string(op.token));
  }

  CommandResult result = run_script(pool, args, deadline_ms);
  if (!result.reply) return fail(result.failure, {});
  const redisReply& reply = *result.reply;
  if (reply.type == REDIS_REPLY_ERROR) {
    // BUSY, LOADING, TRYAGAIN: transient; ERR, WRONGTYPE, NOSCRIPT again, ...: permanent.
    return fail(core::classify_store_error(text_of(reply)), std::string(text_of(reply)));
  }
  auto decision = decode_decision(reply);
  if (!decision) return fail(core::OutcomeClass::permanent, "malformed reply from the gate script");
  return core::StoreReply{std::move(decision), core::AttemptResult{core::OutcomeClass::success, std::nullopt}};
}

core::StoreReply RedisStore::call(std::string_view pool, const core::Op& op, const core::GateConfig& gate,
                                  core::Rng& rng) {
  core::Retry retry(config_.retry, steady_ms());
  retry.start();
  std::optional<core::Decision> decision;
  // R4: at most two attempts and one wait, each one effect, then the end.
  // The bound only guards against a machine that stopped emitting.
  for (int step = 0; step < 8; ++step) {
    std::optional<core::RetryEffect> effect = retry.poll();
    if (!effect) break;
    if (const auto* start = std::get_if<core::StartAttempt>(&*effect)) {
      core::StoreReply reply = attempt(pool, op, gate, start->deadline);
      decision = reply.decision;
      // A reply after the deadline counts as the attempt's timeout (R1):
      // the retry machine decides that, not this loop.
      retry.on_result(steady_ms(), start->attempt, reply.result, rng);
    } else if (const auto* wake = std::get_if<core::RetryWake>(&*effect)) {
      std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::milliseconds(wake->at)));
      retry.on_timer(std::max(steady_ms(), wake->at), rng);
    } else {
      const auto& done = std::get<core::RetryDone>(*effect);
      if (done.outcome_class != core::OutcomeClass::success) decision.reset();
      return core::StoreReply{done.outcome_class == core::OutcomeClass::success ? decision : std::nullopt,
                              core::AttemptResult{done.outcome_class, std::nullopt}};
    }
  }
  return fail(core::OutcomeClass::permanent, "the retry machine stopped without an outcome");
}

std::variant<core::PoolState, std::string> RedisStore::read_pool(std::string_view pool, core::Ms timeout_ms) {
  CommandResult result = run_script(pool, {"state"}, steady_ms() + timeout_ms);
  if (!result.reply) return last_error_;
  if (result.reply->type == REDIS_REPLY_ERROR) return std::string(text_of(*result.reply));
  auto state = decode_state(*result.reply);
  if (!state) return std::string("malformed state reply from the gate script");
  return *std::move(state);
}

}  // namespace turnstile::adapters
