#include "adapters/server/server.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "adapters/broker/http_broker.h"
#include "adapters/redis/redis_store.h"
#include "adapters/server/target.h"
#include "adapters/server/work_queue.h"
#include "core/response.h"
#include "core/route.h"

namespace turnstile::adapters {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using core::Ms;

constexpr std::size_t kMaxLoggedBytes = 512;
// Bytes a waiting connection may read ahead (a pipelined next request)
// before the server stops watching it for a close.
constexpr std::size_t kMaxReadAheadBytes = 16384;
// Connections over max_connections that are still read and answered 503;
// beyond these, new connections are closed at once.
constexpr std::size_t kRejectSlots = 64;
// After an answer that closes the connection, the server stops sending and
// reads (and drops) what the client still sends, for at most this long and
// this much, before it closes: closing with unread bytes would send a TCP
// reset, which can destroy the answer before the client reads it.
constexpr Ms kLingerMs = 1000;
constexpr std::size_t kMaxLingerBytes = 65536;

// Appends `text` as a JSON string. Bytes outside printable ASCII are escaped
// one by one, so that a log line is valid JSON whatever a client sent.
void append_log_string(std::string& out, std::string_view text) {
  constexpr std::string_view kHex = "0123456789abcdef";
  out += '"';
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      out += "\\u00";
      out += kHex[byte >> 4];
      out += kHex[byte & 0x0f];
    } else {
      out += c;
    }
  }
  out += '"';
}

// Beast 1.74 speaks boost::string_view.
std::string_view std_view(beast::string_view text) { return {text.data(), text.size()}; }

std::string truncated(std::string_view text) { return std::string(text.substr(0, kMaxLoggedBytes)); }

// UTC wall time with milliseconds, e.g. 2026-11-27T10:00:00.123Z.
std::string iso_time_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  std::array<char, 40> text{};
  const int n = std::snprintf(text.data(), text.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                              utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                              static_cast<int>(ms % 1000));
  return std::string(text.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

// The route's clock: the steady clock, shifted once at start to read as wall
// time in ms, so that issued_at (SPEC G) is comparable across instances
// while it never jumps when the wall clock is set.
class Clock {
 public:
  Clock()
      : offset_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count() -
                   RedisStore::steady_ms()) {}

  Ms now() const { return RedisStore::steady_ms() + offset_ms_; }
  // The adapters' deadlines are on the steady clock itself.
  Ms to_steady_ms(Ms at) const { return at - offset_ms_; }
  std::chrono::steady_clock::time_point time_point(Ms at) const {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(to_steady_ms(at)));
  }

 private:
  Ms offset_ms_;
};

struct StoreJob {
  core::FlightId flight = 0;
  std::uint32_t call = 0;
  std::string pool;
  core::Op op;
  Ms deadline_steady_ms = 0;
};

struct BrokerJob {
  core::FlightId flight = 0;
  std::uint32_t call = 0;
  std::string episode;
  Ms deadline_steady_ms = 0;
};

std::string manifest_body(std::string_view pool) {
  // The pool is a V1 id ([A-Za-z0-9._-]), so it needs no escaping.
  std::string body = R"({"id":"org.turnstile.)";
  body += pool;
  body += R"(","version":"0.1.0","name":"turnstile )";
  body += pool;
  body += R"(","description":"Streams behind the turnstile admission gate of pool )";
  body += pool;
  body += R"(: at most its capacity of clients watch at once.","resources":["stream"],"types":["movie","series"],)"
          R"("idPrefixes":["tt"],"catalogs":[]})";
  return body;
}

std::string error_body(std::string_view error) {
  std::string body = R"({"error":)";
  core::append_json_string(body, error);
  body += '}';
  return body;
}

class Connection;

}  // namespace

struct Server::Impl {
  Impl(ServerConfig server_config, LogSink log_sink);

  // The loop's side. Everything below runs on the loop's thread only.
  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void begin_shutdown(std::string_view why);
  void check_drained();
  void forget(std::uint64_t connection);
  void submit(const std::shared_ptr<Connection>& connection, core::StreamRequest request);
  void leave(core::WaiterId waiter);
  void on_store_reply(core::FlightId flight, std::uint32_t call, const core::StoreReply& reply);
  void on_broker_reply(core::FlightId flight, std::uint32_t call, const core::BrokerReply& reply);
  void on_timer(beast::error_code ec);
  // Performs every effect the route has, then sets the timer to its next deadline.
  void pump();
  void arm_timer();
  std::string next_request_id();
  void log(std::string line);
  void log_event(std::string_view event, std::string_view fields);

  // Worker threads.
  void store_worker(RedisStore& store);
  void broker_worker(HttpBroker& broker);

  ServerConfig config;
  LogSink sink;
  Clock clock;

  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc};
  asio::steady_timer timer{ioc};
  asio::steady_timer drain_timer{ioc};
  asio::steady_timer accept_timer{ioc};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::string bound_address;
  std::uint16_t bound_port = 0;

  core::Route route;
  core::Rng rng;
  std::optional<Ms> armed_at;  // the timer's expiry, when it is set
  core::WaiterId last_waiter = 0;
  std::uint64_t last_connection = 0;
  std::uint64_t last_request = 0;
  std::string instance_tag;
  // Every open connection; waiting ones are also held by `waiters` until answered.
  std::map<std::uint64_t, std::weak_ptr<Connection>> connections;
  std::unordered_map<core::WaiterId, std::shared_ptr<Connection>> waiters;
  bool draining = false;
  bool drained = false;

  WorkQueue<StoreJob> store_queue;
  WorkQueue<BrokerJob> broker_queue;
  std::vector<std::thread> threads;

  struct AtomicStats {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> flights_started{0};
    std::atomic<std::uint64_t> flights_joined{0};
    std::atomic<std::uint64_t> store_calls{0};
    std::atomic<std::uint64_t> broker_calls{0};
    std::atomic<std::uint64_t> calls_rejected{0};
    std::atomic<std::uint64_t> connections_rejected{0};
    std::atomic<std::uint64_t> flights_now{0};
  } counters;
};

namespace {

// One HTTP/1.1 connection: reads a request, answers it, and reads the next
// (keep-alive). While the route works on a stream request, the connection
// keeps a read open so that a client that goes away is noticed at once
// (C4: its waiter leaves; the flight goes on for the others).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server::Impl& server, tcp::socket socket, std::uint64_t id, bool reject)
      : server_(server), stream_(std::move(socket)), id_(id), reject_(reject) {}

  std::uint64_t id() const { return id_; }
  bool waiting() const { return waiter_.has_value(); }
  void set_waiter(core::WaiterId waiter) { waiter_ = waiter; }
  void set_flight(const char* flight) { flight_ = flight; }

  void start() { do_read(); }

  // The route answered this connection's request.
  void deliver(const core::Response& response) {
    waiter_.reset();
    if (submitting_) flight_ = "none";  // answered at once (C5 busy, V4 policy): no flight
    const std::string reason = response.denied ? std::string(core::denial_text(response.reason)) : std::string();
    answer(http::status::ok, core::render_body(response), response.denied ? "denied" : "granted", reason);
  }

  // Shutdown began: an idle connection is closed now; one with a request in
  // hand closes after answering it.
  void on_drain() {
    if ((state_ == State::reading && idle()) || state_ == State::reading_after_watch) close();
  }

  void close() {
    if (state_ == State::closed) return;
    auto self = shared_from_this();
    state_ = State::closed;
    if (waiter_) {
      const core::WaiterId waiter = *waiter_;
      waiter_.reset();
      server_.leave(waiter);
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    server_.forget(id_);
  }

  void set_submitting(bool submitting) { submitting_ = submitting; }

  // Called once the route took the request and has not answered yet.
  void begin_watch() {
    if (state_ != State::routing || watching_ || buffer_.size() >= kMaxReadAheadBytes) return;
    watching_ = true;
    stream_.expires_never();
    stream_.async_read_some(buffer_.prepare(2048),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) { self->on_watch(ec, n); });
  }

 private:
  // reading: waiting for a request. routing: the route has it. writing: the
  // answer is being sent. reading_after_watch: answered, waiting for the
  // watch read to end before reading the next request. lingering: answered
  // with a close, draining what the client still sends.
  enum class State { reading, routing, writing, reading_after_watch, lingering, closed };

  bool idle() const { return buffer_.size() == 0 && (!parser_ || !parser_->got_some()); }

  void do_read() {
    if (state_ == State::closed) return;
    state_ = State::reading;
    if (server_.draining && idle()) {
      close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(server_.config.header_limit_bytes);
    parser_->body_limit(server_.config.body_limit_bytes);
    stream_.expires_after(std::chrono::milliseconds(server_.config.idle_timeout_ms));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (state_ == State::closed) return;
    if (ec) {
      const bool http_error = ec.category() == http::make_error_code(http::error::end_of_stream).category();
      if (http_error && ec != http::error::end_of_stream && ec != http::error::partial_message) {
        // A malformed or oversized request (F7): 400, then close, since what
        // follows on this connection cannot be framed.
        begin_request("", "");
        close_after_ = true;
        answer(http::status::bad_request, error_body("malformed request: " + ec.message()), "error", ec.message());
        return;
      }
      close();  // the client closed, reset, or was silent past the idle timeout
      return;
    }
    http::request<http::string_body> request = parser_->release();
    parser_.reset();
    handle(request);
  }

  void begin_request(std::string_view method, std::string_view path) {
    started_ms_ = server_.clock.now();
    method_ = truncated(method);
    path_ = truncated(path);
    client_.reset();
    flight_ = nullptr;
    extra_.clear();
  }

  void handle(const http::request<http::string_body>& request) {
    begin_request(std_view(request.method_string()), std_view(request.target()));
    version_ = request.version();
    keep_alive_ = request.keep_alive();
    if (version_ != 10 && version_ != 11) {
      close_after_ = true;
      answer(http::status::bad_request, error_body("unsupported HTTP version"), "error", "unsupported HTTP version");
      return;
    }
    if (reject_) {
      close_after_ = true;
      answer(http::status::service_unavailable, error_body("too many connections"), "error", "too many connections");
      return;
    }
    if (request.method() == http::verb::options) {
      // A CORS preflight: browsers send it before a GET with X-Client-Id.
      extra_.emplace_back("Access-Control-Allow-Methods", "GET, OPTIONS");
      extra_.emplace_back("Access-Control-Allow-Headers", "X-Client-Id, X-Request-Id, Content-Type");
      extra_.emplace_back("Access-Control-Max-Age", "86400");
      answer(http::status::no_content, "", "preflight", "");
      return;
    }
    if (request.method() != http::verb::get) {
      extra_.emplace_back("Allow", "GET, OPTIONS");
      answer(http::status::method_not_allowed, error_body("method not allowed"), "error", "method not allowed");
      return;
    }
    const Target target = parse_target(std_view(request.target()));
    switch (target.kind) {
      case TargetKind::malformed:
        answer(http::status::bad_request, error_body(target.error), "error", target.error);
        return;
      case TargetKind::not_found:
        answer(http::status::not_found, error_body("no such route"), "error", "no such route");
        return;
      case TargetKind::manifest:
        answer(http::status::ok, manifest_body(target.pool), "manifest", "");
        return;
      case TargetKind::stream:
        break;
    }

    const auto client = request.find("X-Client-Id");
    if (client == request.end()) {
      answer(http::status::bad_request, error_body("missing header X-Client-Id"), "error", "missing header X-Client-Id");
      return;
    }
    client_ = truncated(std_view(client->value()));
    if (auto error = core::check_id(core::IdKind::client, "X-Client-Id", std_view(client->value()))) {
      const std::string why = "X-Client-Id: expected " + error->expected;
      answer(http::status::bad_request, error_body(why), "error", why);
      return;
    }
    // V3: a client may name its request, so that its own retry is answered
    // by G3 rather than applied twice; otherwise the instance names it.
    std::string request_id;
    if (const auto named = request.find("X-Request-Id"); named != request.end()) {
      if (auto error = core::check_id(core::IdKind::request, "X-Request-Id", std_view(named->value()))) {
        const std::string why = "X-Request-Id: expected " + error->expected;
        answer(http::status::bad_request, error_body(why), "error", why);
        return;
      }
      request_id = std::string(std_view(named->value()));
    } else {
      request_id = server_.next_request_id();
    }

    core::StreamRequest stream_request;
    stream_request.pool = target.pool;
    stream_request.client = std::string(std_view(client->value()));
    stream_request.episode = target.episode;
    stream_request.request = std::move(request_id);
    stream_request.issued_at = started_ms_;
    state_ = State::routing;
    server_.submit(shared_from_this(), std::move(stream_request));
  }

  void on_watch(beast::error_code ec, std::size_t n) {
    watching_ = false;
    if (state_ == State::closed) return;
    if (!ec) buffer_.commit(n);
    switch (state_) {
      case State::routing:
        if (ec) {
          close();  // C4: the client went away; its flight goes on
        } else {
          begin_watch();  // a pipelined request: kept in the buffer for later
        }
        return;
      case State::writing:
        if (ec) peer_gone_ = true;
        return;
      case State::reading_after_watch:
        if (ec && ec != asio::error::operation_aborted) {
          close();
        } else {
          do_read();
        }
        return;
      case State::lingering:
        buffer_.consume(buffer_.size());
        if (ec && ec != asio::error::operation_aborted) {
          close();
        } else {
          discard();
        }
        return;
      case State::reading:
      case State::closed:
        return;
    }
  }

  void answer(http::status status, std::string body, std::string_view outcome, std::string_view reason) {
    outcome_ = outcome;
    reason_ = truncated(reason);
    response_ = {};
    response_.version(version_ == 10 ? 10 : 11);
    response_.result(status);
    response_.set(http::field::server, "turnstiled");
    // F7: every answer carries CORS, errors included.
    response_.set(http::field::access_control_allow_origin, "*");
    if (status != http::status::no_content) response_.set(http::field::content_type, "application/json");
    if (outcome == "granted" || outcome == "denied") response_.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : extra_) response_.set(name, value);
    response_.body() = std::move(body);
    response_.keep_alive(keep_alive_ && !close_after_ && !server_.draining);
    // A 204 carries neither a body nor a Content-Length (RFC 9110).
    if (status != http::status::no_content) response_.prepare_payload();
    state_ = State::writing;
    stream_.expires_after(std::chrono::milliseconds(server_.config.idle_timeout_ms));
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    log_answer();
    if (state_ == State::closed) return;
    if (ec || peer_gone_) {
      close();
      return;
    }
    if (!response_.keep_alive()) {
      linger();
      return;
    }
    if (watching_) {
      // The watch read must end before the next request is read; it is
      // cancelled, and its handler reads on.
      state_ = State::reading_after_watch;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
      return;
    }
    do_read();
  }

  void linger() {
    state_ = State::lingering;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (watching_) {
      // The watch read ends now, and its handler goes on with discard().
      stream_.socket().cancel(ignored);
      return;
    }
    discard();
  }

  void discard() {
    stream_.expires_after(std::chrono::milliseconds(kLingerMs));
    discard_some();
  }

  void discard_some() {
    stream_.async_read_some(asio::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (self->state_ == State::closed) return;
                              self->discarded_ += n;
                              if (ec || self->discarded_ > kMaxLingerBytes) {
                                self->close();
                              } else {
                                self->discard_some();
                              }
                            });
  }

  void log_answer() {
    server_.counters.requests.fetch_add(1, std::memory_order_relaxed);
    if (!server_.config.log_requests) return;
    std::string line = R"({"time":")" + iso_time_now() + R"(","method":)";
    append_log_string(line, method_);
    line += R"(,"path":)";
    append_log_string(line, path_);
    line += R"(,"status":)" + std::to_string(response_.result_int());
    line += R"(,"client":)";
    if (client_) {
      append_log_string(line, *client_);
    } else {
      line += "null";
    }
    line += R"(,"outcome":)";
    append_log_string(line, outcome_);
    line += R"(,"reason":)";
    if (reason_.empty()) {
      line += "null";
    } else {
      append_log_string(line, reason_);
    }
    line += R"(,"latency_ms":)" + std::to_string(server_.clock.now() - started_ms_);
    line += R"(,"flight":)";
    if (flight_ != nullptr) {
      append_log_string(line, flight_);
    } else {
      line += "null";
    }
    line += '}';
    server_.log(std::move(line));
  }

  Server::Impl& server_;
  beast::tcp_stream stream_;
  std::uint64_t id_;
  bool reject_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  State state_ = State::reading;
  std::optional<core::WaiterId> waiter_;
  bool watching_ = false;
  bool peer_gone_ = false;
  bool submitting_ = false;
  bool keep_alive_ = false;
  bool close_after_ = false;
  unsigned version_ = 11;
  std::vector<std::pair<std::string, std::string>> extra_;
  std::array<char, 4096> discard_{};
  std::size_t discarded_ = 0;

  // The request being answered, for its log line.
  Ms started_ms_ = 0;
  std::string method_;
  std::string path_;
  std::optional<std::string> client_;
  std::string outcome_;
  std::string reason_;
  const char* flight_ = nullptr;
};

}  // namespace

Server::Impl::Impl(ServerConfig server_config, LogSink log_sink)
    : config(std::move(server_config)),
      sink(std::move(log_sink)),
      route(config.route),
      rng(std::random_device{}()),
      store_queue(config.queue_capacity),
      broker_queue(config.queue_capacity) {
  if (!sink) {
    sink = [](std::string_view line) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    };
  }
  // Request ids are `<tag>-<counter in 16 hex digits>`: fixed width, so
  // their bytewise order is their order of arrival (G4 breaks issued_at ties
  // by request id), and the tag keeps instances apart.
  std::array<char, 9> tag{};
  std::snprintf(tag.data(), tag.size(), "%08x", static_cast<unsigned>(rng.next_u64() & 0xffffffffu));
  instance_tag = tag.data();
}

void Server::Impl::log(std::string line) { sink(line); }

void Server::Impl::log_event(std::string_view event, std::string_view fields) {
  std::string line = R"({"time":")" + iso_time_now() + R"(","event":)";
  append_log_string(line, event);
  if (!fields.empty()) {
    line += ',';
    line += fields;
  }
  line += '}';
  sink(line);
}

std::string Server::Impl::next_request_id() {
  ++last_request;
  std::array<char, 17> counter{};
  std::snprintf(counter.data(), counter.size(), "%016llx", static_cast<unsigned long long>(last_request));
  return instance_tag + "-" + counter.data();
}

void Server::Impl::accept() {
  acceptor.async_accept(ioc, [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void Server::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (draining || !acceptor.is_open()) return;
  if (ec) {
    // Out of file descriptors, say: try again shortly rather than spin.
    accept_timer.expires_after(std::chrono::milliseconds(50));
    accept_timer.async_wait([this](beast::error_code timer_ec) {
      if (!timer_ec && !draining && acceptor.is_open()) accept();
    });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  const bool over = connections.size() >= config.max_connections;
  if (over) counters.connections_rejected.fetch_add(1, std::memory_order_relaxed);
  if (over && connections.size() >= config.max_connections + kRejectSlots) {
    // Not even a 503 can be afforded: the connection is closed at once.
    socket.close(ignored);
  } else {
    const std::uint64_t id = ++last_connection;
    auto connection = std::make_shared<Connection>(*this, std::move(socket), id, over);
    connections.emplace(id, connection);
    connection->start();
  }
  accept();
}

void Server::Impl::forget(std::uint64_t connection) {
  connections.erase(connection);
  check_drained();
}

void Server::Impl::submit(const std::shared_ptr<Connection>& connection, core::StreamRequest request) {
  const core::WaiterId waiter = ++last_waiter;
  connection->set_waiter(waiter);
  waiters.emplace(waiter, connection);
  const std::size_t before = route.flight_count();
  route.on_request(request.issued_at, waiter, request, rng);
  const bool started = route.flight_count() > before;
  connection->set_flight(started ? "started" : "joined");
  connection->set_submitting(true);
  pump();
  connection->set_submitting(false);
  if (connection->waiting()) {
    (started ? counters.flights_started : counters.flights_joined).fetch_add(1, std::memory_order_relaxed);
    connection->begin_watch();
  }
}

void Server::Impl::leave(core::WaiterId waiter) {
  waiters.erase(waiter);
  route.on_leave(clock.now(), waiter);
  pump();
}

void Server::Impl::on_store_reply(core::FlightId flight, std::uint32_t call, const core::StoreReply& reply) {
  route.on_store_reply(clock.now(), flight, call, reply, rng);
  pump();
}

void Server::Impl::on_broker_reply(core::FlightId flight, std::uint32_t call, const core::BrokerReply& reply) {
  route.on_broker_reply(clock.now(), flight, call, reply, rng);
  pump();
}

void Server::Impl::on_timer(beast::error_code ec) {
  if (ec == asio::error::operation_aborted) return;
  armed_at.reset();
  route.on_timer(clock.now(), rng);
  pump();
}

void Server::Impl::pump() {
  while (std::optional<core::RouteEffect> effect = route.poll()) {
    if (auto* store = std::get_if<core::RouteStoreCall>(&*effect)) {
      const core::FlightKey* key = route.coalescer().key_of(store->flight);
      if (key == nullptr) continue;  // the flight has ended; nothing waits for this call
      StoreJob job{store->flight, store->call.call, key->pool, std::move(store->call.op),
                   clock.to_steady_ms(store->call.deadline)};
      if (store_queue.push(std::move(job))) {
        counters.store_calls.fetch_add(1, std::memory_order_relaxed);
      } else {
        // Every worker is busy and the queue is full: the attempt fails now,
        // as a refused connection would (R3: transient).
        counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
        core::StoreReply reply;
        reply.result.outcome_class = core::OutcomeClass::transient;
        route.on_store_reply(clock.now(), store->flight, store->call.call, reply, rng);
      }
    } else if (auto* broker = std::get_if<core::RouteBrokerCall>(&*effect)) {
      BrokerJob job{broker->flight, broker->call.call, broker->call.episode, clock.to_steady_ms(broker->call.deadline)};
      if (broker_queue.push(std::move(job))) {
        counters.broker_calls.fetch_add(1, std::memory_order_relaxed);
      } else {
        counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
        core::BrokerReply reply;
        reply.result.outcome_class = core::OutcomeClass::transient;
        route.on_broker_reply(clock.now(), broker->flight, broker->call.call, reply, rng);
      }
    } else if (auto* respond = std::get_if<core::RouteRespond>(&*effect)) {
      auto found = waiters.find(respond->waiter);
      if (found == waiters.end()) continue;  // C4: it went away
      std::shared_ptr<Connection> connection = std::move(found->second);
      waiters.erase(found);
      // Before the answer goes out: a client that reads it may read the stats next.
      counters.flights_now.store(route.flight_count(), std::memory_order_relaxed);
      connection->deliver(respond->response);
    }
    // RouteWake needs nothing: the timer follows next_deadline() below.
  }
  counters.flights_now.store(route.flight_count(), std::memory_order_relaxed);
  arm_timer();
  check_drained();
}

void Server::Impl::arm_timer() {
  const std::optional<Ms> next = route.next_deadline();
  if (next == armed_at) return;
  armed_at = next;
  if (!next) {
    timer.cancel();
    return;
  }
  timer.expires_at(clock.time_point(*next));
  timer.async_wait([this](beast::error_code ec) { on_timer(ec); });
}

void Server::Impl::begin_shutdown(std::string_view why) {
  if (draining) return;
  draining = true;
  std::string fields = R"("reason":)";
  append_log_string(fields, why);
  fields += R"(,"connections":)" + std::to_string(connections.size());
  fields += R"(,"flights":)" + std::to_string(route.flight_count());
  log_event("draining", fields);
  beast::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  std::vector<std::shared_ptr<Connection>> open;
  for (auto& [id, weak] : connections) {
    if (auto connection = weak.lock()) open.push_back(std::move(connection));
  }
  for (auto& connection : open) connection->on_drain();
  // A request still arriving byte by byte gets until every flight could have
  // ended (F6) and a second more; then its connection is closed.
  const core::RetryConfig& store = config.route.flow.store;
  const Ms bound_ms = store.budget_ms + config.route.flow.broker.budget_ms + store.budget_ms + 1000;
  drain_timer.expires_after(std::chrono::milliseconds(bound_ms));
  drain_timer.async_wait([this](beast::error_code ec) {
    if (ec == asio::error::operation_aborted) return;
    std::vector<std::shared_ptr<Connection>> left;
    for (auto& [id, weak] : connections) {
      if (auto connection = weak.lock()) left.push_back(std::move(connection));
    }
    for (auto& connection : left) {
      if (!connection->waiting()) connection->close();
    }
    check_drained();
  });
  check_drained();
}

void Server::Impl::check_drained() {
  if (!draining || drained) return;
  std::erase_if(connections, [](const auto& entry) { return entry.second.expired(); });
  if (!connections.empty() || route.flight_count() != 0) return;
  drained = true;
  timer.cancel();
  drain_timer.cancel();
  accept_timer.cancel();
  work.reset();
  ioc.stop();
}

void Server::Impl::store_worker(RedisStore& store) {
  while (std::optional<StoreJob> job = store_queue.pop()) {
    // The flow timed this attempt out already; its reply would be stale.
    if (RedisStore::steady_ms() >= job->deadline_steady_ms) continue;
    core::StoreReply reply = store.attempt(job->pool, job->op, config.gate, job->deadline_steady_ms);
    asio::post(ioc, [this, flight = job->flight, call = job->call, reply = std::move(reply)] {
      on_store_reply(flight, call, reply);
    });
  }
}

void Server::Impl::broker_worker(HttpBroker& broker) {
  while (std::optional<BrokerJob> job = broker_queue.pop()) {
    if (HttpBroker::steady_ms() >= job->deadline_steady_ms) continue;
    core::BrokerReply reply = broker.attempt(job->episode, job->deadline_steady_ms);
    asio::post(ioc, [this, flight = job->flight, call = job->call, reply = std::move(reply)] {
      on_broker_reply(flight, call, reply);
    });
  }
}

Server::Server(ServerConfig config, LogSink sink) : impl_(std::make_unique<Impl>(std::move(config), std::move(sink))) {}

Server::~Server() {
  // run() returns only after its workers are joined; these are left only when it never ran.
  impl_->store_queue.close();
  impl_->broker_queue.close();
  for (std::thread& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
}

std::string Server::listen() {
  Impl& impl = *impl_;
  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(impl.config.listen_host, ec);
  tcp::endpoint endpoint;
  if (ec) {
    // A host name: take its first address.
    tcp::resolver resolver(impl.ioc);
    auto results = resolver.resolve(impl.config.listen_host, std::to_string(impl.config.listen_port), ec);
    if (ec || results.empty()) return "--listen: cannot resolve '" + impl.config.listen_host + "': " + ec.message();
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = tcp::endpoint(address, impl.config.listen_port);
  }
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
    return "--listen: cannot listen on " + impl.config.listen_host + ":" + std::to_string(impl.config.listen_port) +
           ": " + ec.message();
  }
  const tcp::endpoint local = impl.acceptor.local_endpoint(ec);
  impl.bound_port = local.port();
  const std::string host = local.address().to_string();
  impl.bound_address = (local.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(impl.bound_port);
  return "";
}

std::string Server::address() const { return impl_->bound_address; }
std::uint16_t Server::port() const { return impl_->bound_port; }

int Server::run(bool handle_signals) {
  Impl& impl = *impl_;
  // Stores and brokers are made here, one after the other, and each is then
  // used by its one thread only.
  std::vector<std::unique_ptr<RedisStore>> stores;
  std::vector<std::unique_ptr<HttpBroker>> brokers;
  for (int i = 0; i < impl.config.workers; ++i) {
    RedisStoreConfig store_config;
    store_config.endpoint = impl.config.redis;
    store_config.clock = impl.config.store_clock;
    store_config.retry = impl.config.route.flow.store;
    stores.push_back(std::make_unique<RedisStore>(store_config));
    HttpBrokerConfig broker_config;
    broker_config.base_url = impl.config.broker_url;
    broker_config.retry = impl.config.route.flow.broker;
    brokers.push_back(std::make_unique<HttpBroker>(broker_config));
  }
  for (int i = 0; i < impl.config.workers; ++i) {
    impl.threads.emplace_back([&impl, store = stores[static_cast<std::size_t>(i)].get()] { impl.store_worker(*store); });
    impl.threads.emplace_back(
        [&impl, broker = brokers[static_cast<std::size_t>(i)].get()] { impl.broker_worker(*broker); });
  }

  impl.work.emplace(impl.ioc.get_executor());
  if (handle_signals) {
    impl.signals.add(SIGTERM);
    impl.signals.add(SIGINT);
    impl.signals.async_wait([&impl](beast::error_code ec, int signal) {
      if (ec) return;
      impl.begin_shutdown(signal == SIGTERM ? "SIGTERM" : "SIGINT");
    });
  }
  if (impl.acceptor.is_open()) impl.accept();
  impl.log_event("listening", R"("address":")" + impl.bound_address + '"');
  impl.ioc.run();

  impl.store_queue.close();
  impl.broker_queue.close();
  for (std::thread& thread : impl.threads) thread.join();
  impl.threads.clear();
  const ServerStats totals = stats();
  impl.log_event("stopped", R"("requests":)" + std::to_string(totals.requests) + R"(,"flights_started":)" +
                                std::to_string(totals.flights_started) + R"(,"flights_joined":)" +
                                std::to_string(totals.flights_joined) + R"(,"store_calls":)" +
                                std::to_string(totals.store_calls) + R"(,"broker_calls":)" +
                                std::to_string(totals.broker_calls));
  return 0;
}

void Server::stop() {
  Impl& impl = *impl_;
  asio::post(impl.ioc, [&impl] { impl.begin_shutdown("stop"); });
}

ServerStats Server::stats() const {
  const Impl::AtomicStats& c = impl_->counters;
  ServerStats out;
  out.requests = c.requests.load(std::memory_order_relaxed);
  out.flights_started = c.flights_started.load(std::memory_order_relaxed);
  out.flights_joined = c.flights_joined.load(std::memory_order_relaxed);
  out.store_calls = c.store_calls.load(std::memory_order_relaxed);
  out.broker_calls = c.broker_calls.load(std::memory_order_relaxed);
  out.calls_rejected = c.calls_rejected.load(std::memory_order_relaxed);
  out.connections_rejected = c.connections_rejected.load(std::memory_order_relaxed);
  out.flights_now = c.flights_now.load(std::memory_order_relaxed);
  return out;
}

}  // namespace turnstile::adapters
