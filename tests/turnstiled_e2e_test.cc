// End-to-end tests of turnstiled (ctest label `e2e`): the server (in this
// process, or the binary spawned), its own redis-server on a unix socket,
// and a programmable stub broker, all on loopback. The HTTP client here is a
// few lines of POSIX sockets, so that what goes over the wire is exactly
// what the test wrote (malformed requests included).
//
// Timing: nothing is asserted about speed except F6's bound, with a
// generous allowance for a loaded machine.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "adapters/redis/redis_store.h"
#include "adapters/server/config.h"
#include "adapters/server/server.h"
#include "core/gate.h"
#include "core/rng.h"
#include "tests/loopback_port.h"
#include "tests/redis_server.h"
#include "tests/stub_broker.h"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using turnstile::adapters::ServerConfig;
using turnstile::adapters::ServerStats;
using turnstile::testing::RedisClient;
using turnstile::testing::RedisServer;
using turnstile::testing::StubBehaviour;
using turnstile::testing::StubBroker;
using turnstile::testing::StubRequest;
using Clock = std::chrono::steady_clock;

// F3, byte for byte.
std::string denial_body(std::string_view why) {
  return R"({"streams":[{"name":"turnstile","description":")" + std::string(why) + R"("}],"cacheMaxAge":0})";
}

// ---------------------------------------------------------------- HTTP client

struct HttpReply {
  int status = 0;  // 0: no answer (closed, reset or timed out)
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  bool closed_after = false;  // the server closed the connection after this answer

  std::string header(const std::string& name) const {
    auto found = headers.find(name);
    return found == headers.end() ? std::string() : found->second;
  }
};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}


bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads one response from `fd` (keeping bytes past it in `pending`), or
// gives up at `deadline`.
HttpReply read_reply(int fd, std::string& pending, Clock::time_point deadline) {
  HttpReply reply;
  auto fill = [&]() -> bool {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd poll_fd{fd, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[8192];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    pending.append(chunk, static_cast<std::size_t>(n));
    return true;
  };
  std::size_t head_end;
  while ((head_end = pending.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return reply;
  }
  std::istringstream head(pending.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  if (line.size() < 12 || line.rfind("HTTP/1.", 0) != 0) return reply;
  const int status = std::atoi(line.c_str() + 9);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    reply.headers[lower(line.substr(0, colon))] = value;
  }
  pending.erase(0, head_end + 4);
  const std::string length_text = reply.header("content-length");
  const std::size_t length = length_text.empty() ? 0 : std::stoul(length_text);
  while (pending.size() < length) {
    if (!fill()) return reply;
  }
  reply.body = pending.substr(0, length);
  pending.erase(0, length);
  reply.status = status;
  reply.closed_after = lower(reply.header("connection")) == "close";
  return reply;
}

// Sends `raw` on a new connection and reads one answer.
HttpReply round_trip(int port, std::string_view raw, std::chrono::milliseconds timeout = 15s) {
  const int fd = turnstile::testing::connect_to_loopback(port);
  if (fd < 0) return {};
  HttpReply reply;
  if (send_all(fd, raw)) {
    std::string pending;
    reply = read_reply(fd, pending, Clock::now() + timeout);
  }
  ::close(fd);
  return reply;
}

std::string get_request(std::string_view target, std::optional<std::string_view> client = std::nullopt,
                        std::string_view extra_headers = "", bool close = true) {
  std::string raw = "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (close) raw += "Connection: close\r\n";
  if (client) raw += "X-Client-Id: " + std::string(*client) + "\r\n";
  raw += extra_headers;
  raw += "\r\n";
  return raw;
}

HttpReply get(int port, std::string_view target, std::optional<std::string_view> client = std::nullopt) {
  return round_trip(port, get_request(target, client));
}

// ------------------------------------------------------------ the server

// A Server in this process, serving from its own thread; its log lines are kept.
class InProcess {
 public:
  explicit InProcess(ServerConfig config)
      : server_(std::move(config), [this](std::string_view line) {
          std::lock_guard lock(mutex_);
          lines_.emplace_back(line);
        }) {
    error_ = server_.listen();
    if (error_.empty()) thread_ = std::thread([this] { exit_code_ = server_.run(false); });
  }
  ~InProcess() { stop(); }
  InProcess(const InProcess&) = delete;
  InProcess& operator=(const InProcess&) = delete;

  // Graceful shutdown; returns run()'s exit code.
  int stop() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
    return exit_code_;
  }

  const std::string& error() const { return error_; }
  int port() const { return server_.port(); }
  ServerStats stats() const { return server_.stats(); }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  turnstile::adapters::Server server_;
  std::string error_;
  std::thread thread_;
  int exit_code_ = -1;
};

// Waits until `done` holds, polling; false after `timeout`.
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds timeout = 10s) {
  const auto give_up = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A switch the stub broker's handler waits on, so that a test decides when
// the broker answers (and so how long a flight lasts).
class Hold {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  // Waits until open, at most `timeout`.
  void wait(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

std::int64_t command_calls(RedisClient& client, std::string_view command) {
  const std::string info = client.text({"INFO", "commandstats"});
  const std::string key = "cmdstat_" + std::string(command) + ":calls=";
  const std::size_t at = info.find(key);
  if (at == std::string::npos) return 0;
  return std::stoll(info.substr(at + key.size()));
}

class turnstiled : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(redis_.error(), "");
    ASSERT_EQ(broker_.error(), "");
  }

  ServerConfig config() const {
    ServerConfig config;
    config.listen_host = "127.0.0.1";
    config.listen_port = 0;
    config.redis = std::get<turnstile::adapters::RedisEndpoint>(turnstile::adapters::parse_redis_url(redis_.url()));
    config.broker_url = broker_.base_url();
    config.workers = 4;
    return config;
  }

  turnstile::core::PoolState pool(std::string_view name) {
    turnstile::adapters::RedisStoreConfig store_config;
    store_config.endpoint = std::get<turnstile::adapters::RedisEndpoint>(turnstile::adapters::parse_redis_url(redis_.url()));
    turnstile::adapters::RedisStore store(store_config);
    auto state = store.read_pool(name);
    if (auto* error = std::get_if<std::string>(&state)) {
      ADD_FAILURE() << "read_pool: " << *error;
      return {};
    }
    return std::get<turnstile::core::PoolState>(state);
  }

  static void expect_cors(const HttpReply& reply, std::string_view what) {
    EXPECT_EQ(reply.header("access-control-allow-origin"), "*") << what << " (status " << reply.status << ")";
  }

  RedisServer redis_;
  StubBroker broker_;
};

// ------------------------------------------------------------------- tests

TEST_F(turnstiled, F7_ManifestAndPreflightCarryCors) {
  InProcess server(config());
  ASSERT_EQ(server.error(), "");
  const HttpReply manifest = get(server.port(), "/main/manifest.json");
  ASSERT_EQ(manifest.status, 200);
  expect_cors(manifest, "manifest");
  const nlohmann::json body = nlohmann::json::parse(manifest.body);
  EXPECT_EQ(body["id"], "org.turnstile.main");
  EXPECT_EQ(body["resources"], nlohmann::json::array({"stream"}));
  for (const char* field : {"version", "name", "description", "types", "catalogs"}) {
    EXPECT_TRUE(body.contains(field)) << field;
  }

  const HttpReply preflight = round_trip(server.port(),
                                       "OPTIONS /main/stream/movie/tt1.json HTTP/1.1\r\nHost: x\r\nOrigin: "
                                       "https://web.stremio.com\r\nAccess-Control-Request-Method: GET\r\n"
                                       "Access-Control-Request-Headers: x-client-id\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(preflight.status, 204);
  expect_cors(preflight, "preflight");
  EXPECT_NE(preflight.header("access-control-allow-headers").find("X-Client-Id"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-methods").find("GET"), std::string::npos);
}

TEST_F(turnstiled, F2_GrantedStreamsCarryTheSessionToken) {
  InProcess server(config());
  ASSERT_EQ(server.error(), "");
  // A percent-encoded id is decoded before the route sees it.
  const HttpReply reply = get(server.port(), "/main/stream/series/tt0944947%3A1%3A2.json", "alice");
  ASSERT_EQ(reply.status, 200);
  expect_cors(reply, "granted");
  EXPECT_EQ(reply.body, R"({"streams":[{"name":"stub","url":"https://example.invalid/tt0944947:1:2?session=1"}]})");
  EXPECT_EQ(broker_.requests("/resolve/tt0944947:1:2"), 1u);
  const turnstile::core::PoolState state = pool("main");
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].client, "alice");
  EXPECT_EQ(state.sessions[0].episode, "tt0944947:1:2");
}

// G14/P1 through HTTP: many clients at once, never more sessions than capacity.
TEST_F(turnstiled, G14_ConcurrentAdmissionsNeverExceedCapacity) {
  ServerConfig cfg = config();
  cfg.gate.capacity = 5;
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  constexpr int kClients = 40;

  auto wave = [&](std::vector<HttpReply>& replies) {
    replies.assign(kClients, {});
    std::latch start(kClients);
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        replies[static_cast<std::size_t>(i)] =
            get(server.port(), "/main/stream/movie/tt0111161.json", "client-" + std::to_string(i));
      });
    }
    for (std::thread& thread : threads) thread.join();
  };

  std::vector<HttpReply> first;
  wave(first);
  std::set<std::string> holders;
  for (int i = 0; i < kClients; ++i) {
    const HttpReply& reply = first[static_cast<std::size_t>(i)];
    ASSERT_EQ(reply.status, 200) << i;
    expect_cors(reply, "admission");
    if (reply.body == denial_body("capacity")) continue;
    EXPECT_NE(reply.body.find("session="), std::string::npos) << reply.body;
    holders.insert("client-" + std::to_string(i));
  }
  // A fresh pool with no idle session: exactly C are admitted (G6), the rest blocked (G8).
  EXPECT_EQ(holders.size(), 5u);
  turnstile::core::PoolState state = pool("main");
  ASSERT_EQ(state.sessions.size(), 5u);
  for (const auto& session : state.sessions) EXPECT_TRUE(holders.contains(session.client)) << session.client;

  // Again, all at once: the holders resume (G5), everyone else is still blocked.
  std::vector<HttpReply> second;
  wave(second);
  for (int i = 0; i < kClients; ++i) {
    const std::string client = "client-" + std::to_string(i);
    const HttpReply& reply = second[static_cast<std::size_t>(i)];
    ASSERT_EQ(reply.status, 200);
    if (holders.contains(client)) {
      EXPECT_NE(reply.body.find("session="), std::string::npos) << client << ": " << reply.body;
    } else {
      EXPECT_EQ(reply.body, denial_body("capacity")) << client;
    }
  }
  state = pool("main");
  EXPECT_EQ(state.sessions.size(), 5u);
  EXPECT_EQ(server.stats().flights_now, 0u);  // C6
}

// G5, G7, G2 over real time, with the gate on Redis TIME.
TEST_F(turnstiled, G7_RotationAndGraceOverRealTime) {
  ServerConfig cfg = config();
  cfg.gate.capacity = 1;
  cfg.gate.ttl_ms = 300;
  cfg.gate.grace_ms = 1000;
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  const std::string target = "/main/stream/movie/tt0111161.json";
  auto token_of = [](const HttpReply& reply) {
    const std::size_t at = reply.body.find("session=");
    return at == std::string::npos ? std::string() : reply.body.substr(at + 8, reply.body.find('"', at) - at - 8);
  };

  const HttpReply alice = get(server.port(), target, "alice");
  ASSERT_EQ(token_of(alice), "1");
  EXPECT_EQ(get(server.port(), target, "bob").body, denial_body("capacity"));  // alice is live

  // Idle (ttl < age <= ttl + grace): the owner still has her slot (G5).
  std::this_thread::sleep_for(450ms);
  EXPECT_EQ(token_of(get(server.port(), target, "alice")), "1");
  EXPECT_EQ(get(server.port(), target, "bob").body, denial_body("capacity"));

  // Idle again: a newcomer rotates her out (G7).
  std::this_thread::sleep_for(450ms);
  const HttpReply bob = get(server.port(), target, "bob");
  EXPECT_EQ(token_of(bob), "2");
  turnstile::core::PoolState state = pool("main");
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].client, "bob");
  EXPECT_EQ(state.sessions[0].last_decision.victim, "alice");
  EXPECT_EQ(get(server.port(), target, "alice").body, denial_body("capacity"));

  // Gone (age > ttl + grace): pruned (G2), so alice is admitted afresh.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(token_of(get(server.port(), target, "alice")), "3");
  state = pool("main");
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].client, "alice");
}

// C1-C3: a burst of 50 identical requests is one gate call and one broker call.
TEST_F(turnstiled, C1_BurstOfFiftyIdenticalRequestsIsOneGateAndOneBrokerCall) {
  auto release = std::make_shared<Hold>();
  broker_.set_handler([release](const StubRequest&) {
    release->wait();
    return StubBehaviour::status(200);
  });
  InProcess server(config());
  ASSERT_EQ(server.error(), "");
  RedisClient redis(redis_.socket_path());
  ASSERT_TRUE(redis.ok());
  const std::int64_t evalsha_before = command_calls(redis, "evalsha");

  constexpr int kBurst = 50;
  std::vector<HttpReply> replies(kBurst);
  std::vector<std::thread> threads;
  for (int i = 0; i < kBurst; ++i) {
    threads.emplace_back([&, i] {
      replies[static_cast<std::size_t>(i)] = get(server.port(), "/main/stream/series/tt0944947:1:2.json", "viewer");
    });
  }
  // Every request has reached the route before the broker answers.
  const bool all_in = eventually([&] {
    const ServerStats stats = server.stats();
    return stats.flights_started + stats.flights_joined == kBurst;
  });
  release->open();
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(all_in);

  for (const HttpReply& reply : replies) {
    ASSERT_EQ(reply.status, 200);
    expect_cors(reply, "burst");
    EXPECT_EQ(reply.body, replies[0].body);  // C2
  }
  EXPECT_NE(replies[0].body.find("session=1"), std::string::npos) << replies[0].body;
  const ServerStats stats = server.stats();
  EXPECT_EQ(stats.flights_started, 1u);
  EXPECT_EQ(stats.flights_joined, 49u);
  EXPECT_EQ(stats.store_calls, 1u);
  EXPECT_EQ(stats.broker_calls, 1u);
  EXPECT_EQ(broker_.requests("/resolve/tt0944947:1:2"), 1u);
  EXPECT_EQ(command_calls(redis, "evalsha") - evalsha_before, 1);  // one gate call reached Redis
  EXPECT_EQ(stats.flights_now, 0u);  // C3, C6

  // C3: the flight has ended, so the next request starts a new one.
  EXPECT_EQ(get(server.port(), "/main/stream/series/tt0944947:1:2.json", "viewer").body, replies[0].body);
  EXPECT_EQ(server.stats().flights_started, 2u);
  EXPECT_EQ(broker_.requests("/resolve/tt0944947:1:2"), 2u);
}

// F6, F5: a broker that never answers costs at most store B + broker B + release B.
TEST_F(turnstiled, F6_HungBrokerIsAnsweredWithinTheBound) {
  broker_.set_handler([](const StubRequest&) { return StubBehaviour::hang(); });
  ServerConfig cfg = config();
  cfg.route.flow.store = {100, 200, 5, 10, 20};
  cfg.route.flow.broker = {150, 300, 5, 10, 20};
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  constexpr auto kBound = 200ms + 300ms + 200ms;

  const auto start = Clock::now();
  const HttpReply reply = get(server.port(), "/main/stream/movie/tt0111161.json", "alice");
  const auto elapsed = Clock::now() - start;
  ASSERT_EQ(reply.status, 200);
  expect_cors(reply, "resolve-failed");
  EXPECT_EQ(reply.body, denial_body("resolve-failed"));
  // The bound, with a second of allowance for a loaded machine.
  EXPECT_LT(elapsed, kBound + 1000ms);
  EXPECT_EQ(broker_.requests("/resolve/tt0111161"), 2u);  // R4: one retry after the timeout
  // F5: the token this flight took was released before the answer.
  EXPECT_TRUE(pool("main").sessions.empty());
  EXPECT_EQ(server.stats().flights_now, 0u);
  broker_.release_hung();
}

// F3: every denial is HTTP 200 with F3's exact body, and CORS.
TEST_F(turnstiled, F3_EveryDenialIsHttp200WithItsExactBody) {
  auto release = std::make_shared<Hold>();
  broker_.set_handler([release](const StubRequest& request) {
    if (request.episode() == "tt-slow") release->wait();
    if (request.episode() == "tt-broken") return StubBehaviour::status(404);
    return StubBehaviour::status(200);
  });
  ServerConfig cfg = config();
  cfg.gate.capacity = 1;
  cfg.route.coalesce.max_waiters = 1;
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  const int port = server.port();

  // busy (C5): a flight already has its one waiter.
  std::thread slow([&] {
    const HttpReply reply = get(port, "/main/stream/movie/tt-slow.json", "alice");
    EXPECT_EQ(reply.status, 200);
    EXPECT_NE(reply.body.find("session="), std::string::npos) << reply.body;
  });
  ASSERT_TRUE(eventually([&] { return server.stats().flights_started == 1; }));
  const HttpReply busy = get(port, "/main/stream/movie/tt-slow.json", "alice");
  release->open();
  slow.join();
  EXPECT_EQ(busy.status, 200);
  EXPECT_EQ(busy.body, denial_body("busy"));
  expect_cors(busy, "busy");

  // capacity (G8): alice holds the only slot.
  const HttpReply capacity = get(port, "/main/stream/movie/tt0111161.json", "bob");
  EXPECT_EQ(capacity.status, 200);
  EXPECT_EQ(capacity.body, denial_body("capacity"));
  expect_cors(capacity, "capacity");

  // resolve-failed (R3: 404 is permanent), and F5 releases what was taken.
  const HttpReply failed = get(port, "/other/stream/movie/tt-broken.json", "carol");
  EXPECT_EQ(failed.status, 200);
  EXPECT_EQ(failed.body, denial_body("resolve-failed"));
  expect_cors(failed, "resolve-failed");
  EXPECT_TRUE(pool("other").sessions.empty());

  // unavailable (F4, fail_closed): the store cannot be reached.
  ServerConfig down = config();
  down.redis = std::get<turnstile::adapters::RedisEndpoint>(
      turnstile::adapters::parse_redis_url("unix:/nonexistent/turnstile-e2e.sock"));
  down.route.flow.store = {50, 200, 5, 10, 20};
  InProcess no_store(down);
  ASSERT_EQ(no_store.error(), "");
  const HttpReply unavailable = get(no_store.port(), "/main/stream/movie/tt0111161.json", "dave");
  EXPECT_EQ(unavailable.status, 200);
  EXPECT_EQ(unavailable.body, denial_body("unavailable"));
  expect_cors(unavailable, "unavailable");

  // fail_open resolves without a session: the stream carries no token.
  down.route.flow.fail_policy = turnstile::core::FailPolicy::fail_open;
  InProcess open_store(down);
  ASSERT_EQ(open_store.error(), "");
  const HttpReply open = get(open_store.port(), "/main/stream/movie/tt0111161.json", "dave");
  EXPECT_EQ(open.status, 200);
  EXPECT_EQ(open.body, R"({"streams":[{"name":"stub","url":"https://example.invalid/tt0111161"}]})");
}

// F7, V: malformed requests are 400, unknown routes 404, other methods 405,
// all with CORS, and the server goes on serving.
TEST_F(turnstiled, F7_MalformedRequestsAre400AndTheServerKeepsServing) {
  ServerConfig cfg = config();
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  const int port = server.port();

  struct Case {
    std::string name;
    std::string raw;
    int status;
  };
  const std::string long_id(129, 'a');
  const std::string long_client(65, 'c');
  const std::vector<Case> cases = {
      {"bad percent-encoding", get_request("/main/stream/movie/tt%zz.json", "alice"), 400},
      {"truncated percent-encoding", get_request("/main/stream/movie/tt1%3.json", "alice"), 400},
      {"pool outside V1", get_request("/ma!n/stream/movie/tt1.json", "alice"), 400},
      {"pool too long", get_request("/" + std::string(65, 'p') + "/manifest.json"), 400},
      {"empty pool", get_request("//manifest.json"), 400},
      {"empty id", get_request("/main/stream/movie/.json", "alice"), 400},
      {"id over 128 bytes", get_request("/main/stream/movie/" + long_id + ".json", "alice"), 400},
      {"id with a slash", get_request("/main/stream/movie/tt1%2F2.json", "alice"), 400},
      {"type outside the alphabet", get_request("/main/stream/mo%20vie/tt1.json", "alice"), 400},
      {"missing X-Client-Id", get_request("/main/stream/movie/tt1.json"), 400},
      {"client over 64 bytes", get_request("/main/stream/movie/tt1.json", long_client), 400},
      {"client outside V1", get_request("/main/stream/movie/tt1.json", "al:ce"), 400},
      {"empty client", get_request("/main/stream/movie/tt1.json", ""), 400},
      {"request id outside V3", get_request("/main/stream/movie/tt1.json", "alice", "X-Request-Id: a|b\r\n"), 400},
      {"oversized headers", get_request("/main/manifest.json", std::nullopt, "X-Big: " + std::string(9000, 'x') + "\r\n"),
       400},
      {"oversized body", "GET /main/manifest.json HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 400},
      {"not HTTP", "HELLO THERE\r\n\r\n", 400},
      {"bad version", "GET /main/manifest.json HTTP/9.9\r\nHost: x\r\n\r\n", 400},
      {"target not a path", "GET main/manifest.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400},
      {"root", get_request("/"), 404},
      {"unknown file", get_request("/main/catalog.json"), 404},
      {"stream without .json", get_request("/main/stream/movie/tt1", "alice"), 404},
      {"too many segments", get_request("/main/stream/movie/tt1/x.json", "alice"), 404},
      {"POST", "POST /main/manifest.json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405},
      {"DELETE", "DELETE /main/stream/movie/tt1.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405},
  };
  for (const Case& c : cases) {
    const HttpReply reply = round_trip(port, c.raw);
    EXPECT_EQ(reply.status, c.status) << c.name;
    expect_cors(reply, c.name);
    EXPECT_TRUE(nlohmann::json::accept(reply.body)) << c.name << ": " << reply.body;
  }

  // Random bytes: each gets a 400 or a close, never a crash.
  turnstile::core::Rng rng(20261127);
  for (int i = 0; i < 60; ++i) {
    std::string raw;
    const auto length = rng.uniform(1, 300);
    for (std::int64_t j = 0; j < length; ++j) raw += static_cast<char>(rng.uniform(0, 255));
    raw += "\r\n\r\n";
    const HttpReply reply = round_trip(port, raw, 3s);
    if (reply.status != 0) {
      EXPECT_EQ(reply.status, 400) << i;
      expect_cors(reply, "random bytes");
    }
  }

  // Still serving, and nothing reached the route.
  EXPECT_EQ(get(port, "/main/manifest.json").status, 200);
  const HttpReply granted = get(port, "/main/stream/movie/tt1.json", "alice");
  EXPECT_EQ(granted.status, 200);
  EXPECT_NE(granted.body.find("session=1"), std::string::npos) << granted.body;
  EXPECT_EQ(server.stats().flights_started, 1u);
}

// Keep-alive: several requests on one connection, each answered in order.
TEST_F(turnstiled, F7_KeepAliveConnectionServesRequestsInTurn) {
  InProcess server(config());
  ASSERT_EQ(server.error(), "");
  const int fd = turnstile::testing::connect_to_loopback(server.port());
  ASSERT_GE(fd, 0);
  std::string pending;
  for (int i = 0; i < 5; ++i) {
    const std::string raw = "GET /main/stream/movie/tt" + std::to_string(i) +
                            ".json HTTP/1.1\r\nHost: x\r\nX-Client-Id: alice\r\n\r\n";
    ASSERT_TRUE(send_all(fd, raw));
    const HttpReply reply = read_reply(fd, pending, Clock::now() + 10s);
    ASSERT_EQ(reply.status, 200) << i;
    EXPECT_FALSE(reply.closed_after);
    // G5: the same client switching episodes keeps one slot with a new token.
    EXPECT_NE(reply.body.find("tt" + std::to_string(i) + "?session=" + std::to_string(i + 1)), std::string::npos)
        << reply.body;
  }
  ::close(fd);
  EXPECT_EQ(pool("main").sessions.size(), 1u);
}

// C4: a waiter that goes away leaves its flight running to its end for the others.
TEST_F(turnstiled, C4_AClientThatLeavesDoesNotCancelTheFlight) {
  auto release = std::make_shared<Hold>();
  broker_.set_handler([release](const StubRequest&) {
    release->wait();
    return StubBehaviour::status(200);
  });
  InProcess server(config());
  ASSERT_EQ(server.error(), "");
  const int port = server.port();

  // One waiter stays, one goes away before the answer.
  const int leaver = turnstile::testing::connect_to_loopback(port);
  ASSERT_GE(leaver, 0);
  ASSERT_TRUE(send_all(leaver, get_request("/main/stream/movie/tt1.json", "alice")));
  ASSERT_TRUE(eventually([&] { return server.stats().flights_started == 1; }));
  HttpReply stayer;
  std::thread stay([&] { stayer = get(port, "/main/stream/movie/tt1.json", "alice"); });
  ASSERT_TRUE(eventually([&] { return server.stats().flights_joined == 1; }));
  ::close(leaver);
  std::this_thread::sleep_for(50ms);
  release->open();
  stay.join();
  EXPECT_EQ(stayer.status, 200);
  EXPECT_NE(stayer.body.find("session=1"), std::string::npos) << stayer.body;

  // The last waiter leaving does not cancel either: the flight ends, no leak (C6).
  auto hold = std::make_shared<Hold>();
  broker_.set_handler([hold](const StubRequest&) {
    hold->wait();
    return StubBehaviour::status(200);
  });
  const int alone = turnstile::testing::connect_to_loopback(port);
  ASSERT_GE(alone, 0);
  ASSERT_TRUE(send_all(alone, get_request("/main/stream/movie/tt2.json", "bob")));
  ASSERT_TRUE(eventually([&] { return broker_.requests("/resolve/tt2") == 1; }));
  ::close(alone);
  std::this_thread::sleep_for(50ms);
  hold->open();
  ASSERT_TRUE(eventually([&] { return server.stats().flights_now == 0; }));
  // bob's flight admitted him even though nobody was left to hear it.
  bool bob_holds = false;
  for (const auto& session : pool("main").sessions) bob_holds = bob_holds || session.client == "bob";
  EXPECT_TRUE(bob_holds);
  EXPECT_EQ(get(port, "/main/manifest.json").status, 200);
}

// Bounded queues: a broker call that finds its worker queue full fails at
// once as transient (R3), so the flight ends within its budget instead of
// queueing; the flights ahead of it are untouched.
TEST_F(turnstiled, R3_AFullWorkerQueueFailsTheCallAtOnce) {
  auto release = std::make_shared<Hold>();
  broker_.set_handler([release](const StubRequest&) {
    release->wait();
    return StubBehaviour::status(200);
  });
  ServerConfig cfg = config();
  cfg.workers = 1;
  cfg.queue_capacity = 1;
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  const int port = server.port();

  HttpReply first;
  HttpReply second;
  std::thread a([&] { first = get(port, "/main/stream/movie/tt1.json", "a"); });
  ASSERT_TRUE(eventually([&] { return broker_.requests() == 1; }));  // the one worker is busy
  std::thread b([&] { second = get(port, "/main/stream/movie/tt2.json", "b"); });
  ASSERT_TRUE(eventually([&] { return server.stats().broker_calls == 2; }));  // queued

  const HttpReply third = get(port, "/main/stream/movie/tt3.json", "c");
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(third.body, denial_body("resolve-failed"));
  EXPECT_GE(server.stats().calls_rejected, 2u);  // both attempts (R4)
  release->open();
  a.join();
  b.join();
  EXPECT_NE(first.body.find("session="), std::string::npos) << first.body;
  EXPECT_NE(second.body.find("session="), std::string::npos) << second.body;
  // F5: c's slot was released; a and b hold theirs.
  std::set<std::string> holders;
  for (const auto& session : pool("main").sessions) holders.insert(session.client);
  EXPECT_EQ(holders, (std::set<std::string>{"a", "b"}));
}

// Over max_connections: 503 with CORS, and the server serves again once a
// connection closes.
TEST_F(turnstiled, F7_ConnectionsOverTheBoundAre503) {
  ServerConfig cfg = config();
  cfg.max_connections = 1;
  InProcess server(cfg);
  ASSERT_EQ(server.error(), "");
  const int held = turnstile::testing::connect_to_loopback(server.port());
  ASSERT_GE(held, 0);
  ASSERT_TRUE(send_all(held, "GET /main/manifest.json HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string pending;
  ASSERT_EQ(read_reply(held, pending, Clock::now() + 10s).status, 200);

  const HttpReply over = get(server.port(), "/main/manifest.json");
  EXPECT_EQ(over.status, 503);
  expect_cors(over, "503");
  EXPECT_TRUE(over.closed_after);
  EXPECT_EQ(server.stats().connections_rejected, 1u);

  ::close(held);
  EXPECT_TRUE(eventually([&] { return get(server.port(), "/main/manifest.json").status == 200; }));
}

// The request log: one JSON line per request with the fields the docs name.
TEST_F(turnstiled, LogIsOneJsonLinePerRequest) {
  InProcess server(config());
  ASSERT_EQ(server.error(), "");
  EXPECT_EQ(get(server.port(), "/main/stream/movie/tt1.json", "alice").status, 200);
  EXPECT_EQ(get(server.port(), "/main/nothing").status, 404);
  EXPECT_EQ(server.stop(), 0);

  std::vector<nlohmann::json> requests;
  std::vector<std::string> events;
  for (const std::string& line : server.lines()) {
    nlohmann::json entry;
    ASSERT_NO_THROW(entry = nlohmann::json::parse(line)) << line;
    ASSERT_TRUE(entry.contains("time")) << line;
    if (entry.contains("event")) {
      events.push_back(entry["event"]);
    } else {
      requests.push_back(entry);
    }
  }
  EXPECT_EQ(events, (std::vector<std::string>{"listening", "draining", "stopped"}));
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0]["method"], "GET");
  EXPECT_EQ(requests[0]["path"], "/main/stream/movie/tt1.json");
  EXPECT_EQ(requests[0]["status"], 200);
  EXPECT_EQ(requests[0]["client"], "alice");
  EXPECT_EQ(requests[0]["outcome"], "granted");
  EXPECT_TRUE(requests[0]["reason"].is_null());
  EXPECT_TRUE(requests[0]["latency_ms"].is_number_integer());
  EXPECT_EQ(requests[0]["flight"], "started");
  EXPECT_EQ(requests[1]["status"], 404);
  EXPECT_EQ(requests[1]["outcome"], "error");
  EXPECT_TRUE(requests[1]["client"].is_null());
  EXPECT_TRUE(requests[1]["flight"].is_null());
}

// ------------------------------------------------------- the binary itself

// A spawned turnstiled with stdout and stderr in files.
class Spawned {
 public:
  Spawned(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
    dir_ = std::filesystem::temp_directory_path() / ("turnstiled-e2e-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    out_ = (dir_ / "stdout").string();
    err_ = (dir_ / "stderr").string();
    // Built before fork: the child only calls async-signal-safe functions.
    std::vector<std::string> argv_text = {TURNSTILED_BINARY};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_text) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      if (entry.rfind("TURNSTILE_", 0) != 0) env_text.push_back(entry);
    }
    env_text.insert(env_text.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (std::string& entry : env_text) envp.push_back(entry.data());
    envp.push_back(nullptr);
    const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out);
    ::close(err);
  }

  ~Spawned() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // The port from the "listening" line, or 0 if none came.
  int wait_listening(std::chrono::milliseconds timeout = 10s) {
    int port = 0;
    eventually(
        [&] {
          for (const std::string& line : stdout_lines()) {
            const nlohmann::json entry = nlohmann::json::parse(line, nullptr, false);
            if (entry.is_object() && entry.value("event", "") == "listening") {
              const std::string address = entry.value("address", "");
              port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
              return true;
            }
          }
          return exited(0ms).has_value();
        },
        timeout);
    return port;
  }

  void signal(int number) { ::kill(pid_, number); }

  // The exit code once the process ended within `timeout`; -signal if killed.
  std::optional<int> exited(std::chrono::milliseconds timeout) {
    if (exit_status_) return exit_status_;
    const auto give_up = Clock::now() + timeout;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        return exit_status_;
      }
      if (Clock::now() >= give_up) return std::nullopt;
      std::this_thread::sleep_for(5ms);
    }
  }

  std::vector<std::string> stdout_lines() const { return lines_of(out_); }
  std::vector<std::string> stderr_lines() const { return lines_of(err_); }

 private:
  static std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  }

  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::string out_;
  std::string err_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

TEST_F(turnstiled, BadValuesExit2WithOneLineAndFlagsWinOverEnvironment) {
  {
    Spawned bad({"--broker", broker_.base_url(), "--redis", redis_.url(), "--capacity", "0"}, {});
    EXPECT_EQ(bad.exited(10s), 2);
    const std::vector<std::string> lines = bad.stderr_lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].rfind("turnstiled: --capacity", 0), 0u) << lines[0];
  }
  {
    // The environment is read when no flag is given...
    Spawned bad({"--broker", broker_.base_url(), "--redis", redis_.url()}, {"TURNSTILE_FAIL_POLICY=sometimes"});
    EXPECT_EQ(bad.exited(10s), 2);
    const std::vector<std::string> lines = bad.stderr_lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].rfind("turnstiled: --fail-policy", 0), 0u) << lines[0];
  }
  {
    Spawned bad({"--redis", "mysql://x", "--broker", broker_.base_url()}, {});
    EXPECT_EQ(bad.exited(10s), 2);
    EXPECT_EQ(bad.stderr_lines().size(), 1u);
  }
  {
    // ...and a flag wins over it: capacity 1 from the flag, not 0 from the environment.
    Spawned good({"--listen", "127.0.0.1:0", "--redis", redis_.url(), "--capacity", "1"},
                 {"TURNSTILE_CAPACITY=0", "TURNSTILE_BROKER=" + broker_.base_url()});
    const int port = good.wait_listening();
    ASSERT_GT(port, 0) << (good.stderr_lines().empty() ? "" : good.stderr_lines()[0]);
    EXPECT_NE(get(port, "/main/stream/movie/tt1.json", "alice").body.find("session=1"), std::string::npos);
    EXPECT_EQ(get(port, "/main/stream/movie/tt1.json", "bob").body, denial_body("capacity"));
    good.signal(SIGINT);
    EXPECT_EQ(good.exited(10s), 0);
  }
}

// SIGTERM: stop accepting, answer every request in flight, close idle
// connections, exit 0.
TEST_F(turnstiled, SigtermAnswersEveryRequestInFlightThenExits0) {
  auto release = std::make_shared<Hold>();
  broker_.set_handler([release](const StubRequest&) {
    release->wait();
    return StubBehaviour::status(200);
  });
  Spawned server({"--listen", "127.0.0.1:0", "--redis", redis_.url(), "--broker", broker_.base_url(), "--capacity",
                  "10", "--workers", "8"},
                 {});
  const int port = server.wait_listening();
  ASSERT_GT(port, 0);

  // An idle keep-alive connection, which shutdown closes.
  const int idle = turnstile::testing::connect_to_loopback(port);
  ASSERT_GE(idle, 0);
  ASSERT_TRUE(send_all(idle, "GET /main/manifest.json HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string idle_pending;
  ASSERT_EQ(read_reply(idle, idle_pending, Clock::now() + 10s).status, 200);

  constexpr int kInFlight = 5;
  std::vector<HttpReply> replies(kInFlight);
  std::vector<std::thread> threads;
  for (int i = 0; i < kInFlight; ++i) {
    threads.emplace_back([&, i] {
      // Keep-alive requests: the answer must say it closes (draining).
      replies[static_cast<std::size_t>(i)] = round_trip(
          port, get_request("/main/stream/movie/tt0111161.json", "client-" + std::to_string(i), "", false));
    });
  }
  // Every request is at the broker: admitted, waiting on the resolve.
  ASSERT_TRUE(broker_.wait_for_requests(kInFlight, 10s));
  server.signal(SIGTERM);

  // The idle connection is closed, and new connections are refused, while
  // the requests in flight are still waiting.
  pollfd poll_fd{idle, POLLIN, 0};
  ASSERT_EQ(::poll(&poll_fd, 1, 5000), 1);
  char byte = 0;
  EXPECT_EQ(::recv(idle, &byte, 1, 0), 0);
  ::close(idle);
  EXPECT_TRUE(eventually(
      [&] {
        const int fd = turnstile::testing::connect_to_loopback(port);
        if (fd < 0) return true;
        ::close(fd);
        return false;
      },
      5s));
  EXPECT_FALSE(server.exited(0ms).has_value());

  release->open();
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kInFlight; ++i) {
    const HttpReply& reply = replies[static_cast<std::size_t>(i)];
    EXPECT_EQ(reply.status, 200) << i;
    EXPECT_NE(reply.body.find("session="), std::string::npos) << reply.body;
    EXPECT_TRUE(reply.closed_after) << i;
    expect_cors(reply, "in flight at SIGTERM");
  }
  EXPECT_EQ(server.exited(15s), 0);

  int answered = 0;
  std::vector<std::string> events;
  for (const std::string& line : server.stdout_lines()) {
    const nlohmann::json entry = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(entry.is_object()) << line;
    if (entry.contains("event")) {
      events.push_back(entry["event"]);
    } else if (entry["outcome"] == "granted") {
      ++answered;
    }
  }
  EXPECT_EQ(answered, kInFlight);
  EXPECT_EQ(events, (std::vector<std::string>{"listening", "draining", "stopped"}));
  EXPECT_EQ(pool("main").sessions.size(), static_cast<std::size_t>(kInFlight));
}

}  // namespace
