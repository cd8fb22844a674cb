#pragma once

// An in-process HTTP/1.1 stub broker for tests, on 127.0.0.1 with an
// ephemeral port. POSIX sockets, one thread per connection (at most
// kMaxConnections at once; a connection over the bound is closed at once).
//
//   turnstile::testing::StubBroker broker;            // listening when constructed
//   config.base_url = broker.base_url();              // "http://127.0.0.1:<port>"
//
// What it answers, per request, in this order of precedence:
//   1. the front of the queue filled by push(behaviour) (one per request);
//   2. else the handler set by set_handler(fn), fn(const StubRequest&) -> StubBehaviour;
//   3. else StubBroker::default_behaviour(request): `GET /resolve/{episode}`
//      answers 200 with resolve_body(episode) =
//      {"streams":[{"name":"stub","url":"https://example.invalid/<episode>"}]},
//      anything else 404.
//
// A StubBehaviour (build with the named constructors, then adjust fields):
//   StubBehaviour::status(503)              that status; body: see `body`
//   StubBehaviour::ok(body)                 200 with this exact body
//   StubBehaviour::retry_after(429, "2")    that status with `Retry-After: 2`
//   StubBehaviour::malformed()              200 with a body that is not JSON
//   StubBehaviour::hang()                   never answers until release_hung() or
//                                           the destructor; then the connection closes
//   StubBehaviour::reset()                  closes the connection with a TCP RST, no answer
//   .latency_ms = 300                       waits that long before acting (cut short by stop)
//   .headers.push_back({"X-Name", "v"})     extra response headers
//   .body = "..."                           unset: resolve_body(episode) for a 2xx on
//                                           /resolve/{episode}, else empty
//   .close = true                           `Connection: close`, then close
//
// Counting: requests() in total, requests(path) per path (the target without
// its query), connections() accepted, hanging() requests currently held.
// wait_for_requests(n, timeout) waits until n requests have been read.
// Requests are counted once their head (and body, if any) has been read,
// before any latency, hang or reset.
//
// Keep-alive: HTTP/1.1 connections stay open between requests unless the
// client or the behaviour says `Connection: close`; HTTP/1.0 closes unless
// the client asks for keep-alive. A request head over 64 KiB gets 431 and a
// close.
//
// The destructor (or stop()) closes the listener, releases every hung or
// waiting request, shuts every connection down and joins every thread.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace turnstile::testing {

struct StubRequest {
  std::string method;
  std::string target;  // as sent, query included
  std::string path;    // the target without its query
  std::string version; // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::uint64_t index = 0;  // 1 for the first request the stub read, and so on

  // The header's value, or empty. `name` in lower case.
  std::string header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return {};
  }
  // The {episode} of /resolve/{episode}, or empty for any other path.
  std::string episode() const {
    constexpr std::string_view kPrefix = "/resolve/";
    if (path.size() <= kPrefix.size() || path.compare(0, kPrefix.size(), kPrefix) != 0) return {};
    return path.substr(kPrefix.size());
  }
};

struct StubBehaviour {
  enum class Kind { answer, hang, reset };
  Kind kind = Kind::answer;
  int status_code = 200;
  std::optional<std::string> body;  // unset: see the header comment
  std::vector<std::pair<std::string, std::string>> headers;
  int latency_ms = 0;
  bool close = false;

  static StubBehaviour status(int code) {
    StubBehaviour b;
    b.status_code = code;
    return b;
  }
  static StubBehaviour ok(std::string text) {
    StubBehaviour b;
    b.body = std::move(text);
    return b;
  }
  static StubBehaviour retry_after(int code, std::string value) {
    StubBehaviour b = status(code);
    b.headers.emplace_back("Retry-After", std::move(value));
    return b;
  }
  static StubBehaviour malformed() { return ok("{\"streams\":[{\"name\":\"stub\",\"url\":"); }
  static StubBehaviour hang() {
    StubBehaviour b;
    b.kind = Kind::hang;
    return b;
  }
  static StubBehaviour reset() {
    StubBehaviour b;
    b.kind = Kind::reset;
    return b;
  }
  StubBehaviour with_latency(int ms) && {
    latency_ms = ms;
    return std::move(*this);
  }
};

class StubBroker {
 public:
  static constexpr std::size_t kMaxConnections = 1024;
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;
  static constexpr std::size_t kMaxBodyBytes = 1 << 20;

  StubBroker() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) {
      error_ = "socket failed";
      return;
    }
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 512) != 0) {
      error_ = "bind/listen on 127.0.0.1 failed";
      ::close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) {
      error_ = "pipe failed";
      ::close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~StubBroker() {
    stop();
    if (wake_[0] >= 0) ::close(wake_[0]);
    if (wake_[1] >= 0) ::close(wake_[1]);
  }

  StubBroker(const StubBroker&) = delete;
  StubBroker& operator=(const StubBroker&) = delete;

  // Empty when listening; otherwise why not.
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The next request (one per call, first in first out) gets `behaviour`.
  void push(StubBehaviour behaviour) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(behaviour));
  }
  // Requests that find the queue empty ask `handler`; empty restores the default.
  void set_handler(std::function<StubBehaviour(const StubRequest&)> handler) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(handler);
  }
  // Forgets the queue (not the counts).
  void clear_queue() {
    std::lock_guard lock(mutex_);
    queue_.clear();
  }

  std::uint64_t requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::uint64_t requests(const std::string& path) const {
    std::lock_guard lock(mutex_);
    auto it = per_path_.find(path);
    return it == per_path_.end() ? 0 : it->second;
  }
  std::uint64_t connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }
  std::uint64_t hanging() const {
    std::lock_guard lock(mutex_);
    return hanging_;
  }
  // Zeroes the request counts (total and per path).
  void reset_counts() {
    std::lock_guard lock(mutex_);
    requests_ = 0;
    per_path_.clear();
  }

  // Waits until at least `count` requests have been read; false on timeout.
  bool wait_for_requests(std::uint64_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return requests_ >= count; });
  }

  // Ends every request hanging now: their connections close without an answer.
  void release_hung() {
    std::lock_guard lock(mutex_);
    ++release_epoch_;
    changed_.notify_all();
  }

  // Stops accepting, releases every hung or waiting request, closes every
  // connection and joins every thread. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      changed_.notify_all();
    }
    if (acceptor_.joinable()) {
      const char byte = 0;
      [[maybe_unused]] ssize_t ignored = ::write(wake_[1], &byte, 1);
      acceptor_.join();
    }
    std::list<Connection> connections;
    {
      std::lock_guard lock(mutex_);
      connections.swap(connections_list_);
    }
    for (Connection& c : connections) c.thread.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

  static std::string resolve_body(std::string_view episode) {
    return "{\"streams\":[{\"name\":\"stub\",\"url\":\"https://example.invalid/" + std::string(episode) + "\"}]}";
  }

  static StubBehaviour default_behaviour(const StubRequest& request) {
    if (request.method == "GET" && !request.episode().empty()) return StubBehaviour::status(200);
    return StubBehaviour::status(404);
  }

 private:
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard lock(mutex_);
      reap_locked();
      if (stopping_ || connections_list_.size() >= kMaxConnections) {
        ::close(fd);
        continue;
      }
      ++connections_;
      open_fds_.insert(fd);
      auto done = std::make_shared<std::atomic<bool>>(false);
      connections_list_.push_back(Connection{std::thread([this, fd, done] {
                                               serve(fd);
                                               done->store(true);
                                             }),
                                             done});
    }
  }

  // Joins the threads of connections that ended. Called with mutex_ held;
  // a finished thread joins at once.
  void reap_locked() {
    for (auto it = connections_list_.begin(); it != connections_list_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_list_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void close_fd(int fd, bool with_reset) {
    std::lock_guard lock(mutex_);
    if (with_reset) {
      // SO_LINGER with a zero timeout makes close() send RST.
      linger option{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
    }
    open_fds_.erase(fd);
    ::close(fd);
  }

  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  static std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  }

  static std::string trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
    return std::string(text);
  }

  static std::string_view reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 400: return "Bad Request";
      case 404: return "Not Found";
      case 408: return "Request Timeout";
      case 429: return "Too Many Requests";
      case 431: return "Request Header Fields Too Large";
      case 500: return "Internal Server Error";
      case 501: return "Not Implemented";
      case 502: return "Bad Gateway";
      case 503: return "Service Unavailable";
      case 504: return "Gateway Timeout";
      case 505: return "HTTP Version Not Supported";
      default: return "Status";
    }
  }

  // Parses one request head; false when it is not HTTP.
  static bool parse_head(std::string_view head, StubRequest& request) {
    const auto line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return false;
    request.method = std::string(line.substr(0, sp1));
    request.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    request.version = std::string(line.substr(sp2 + 1));
    if (request.version.rfind("HTTP/1.", 0) != 0) return false;
    request.path = request.target.substr(0, request.target.find('?'));
    std::string_view rest = line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
    while (!rest.empty()) {
      const auto end = rest.find("\r\n");
      std::string_view field = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
      if (field.empty()) continue;
      const auto colon = field.find(':');
      if (colon == std::string_view::npos) return false;
      request.headers.emplace_back(lower(field.substr(0, colon)), trim(field.substr(colon + 1)));
    }
    return true;
  }

  // Waits up to `ms` (or until stop, or a release when `hung`); true if the
  // stub is stopping or the hang was released.
  bool wait_interrupted(int ms, bool hung) {
    std::unique_lock lock(mutex_);
    const std::uint64_t epoch = release_epoch_;
    auto interrupted = [&] { return stopping_ || (hung && release_epoch_ != epoch); };
    if (hung) {
      ++hanging_;
      changed_.wait(lock, interrupted);
      --hanging_;
      return true;
    }
    return changed_.wait_for(lock, std::chrono::milliseconds(ms), interrupted);
  }

  StubBehaviour choose(const StubRequest& request) {
    std::function<StubBehaviour(const StubRequest&)> handler;
    {
      std::lock_guard lock(mutex_);
      if (!queue_.empty()) {
        StubBehaviour behaviour = std::move(queue_.front());
        queue_.pop_front();
        return behaviour;
      }
      handler = handler_;
    }
    // Outside the lock, so that a handler may call the stub's own methods.
    if (handler) return handler(request);
    return default_behaviour(request);
  }

  void serve(int fd) {
    std::string buffer;
    char chunk[8192];
    for (;;) {
      // Read one request head.
      std::size_t head_end = std::string::npos;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (buffer.size() > kMaxHeadBytes) {
          send_all(fd, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          close_fd(fd, false);
          return;
        }
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          close_fd(fd, false);
          return;
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      StubRequest request;
      if (!parse_head(std::string_view(buffer).substr(0, head_end), request)) {
        send_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        close_fd(fd, false);
        return;
      }
      buffer.erase(0, head_end + 4);
      const std::string length_text = request.header("content-length");
      std::size_t length = 0;
      if (!length_text.empty()) {
        try {
          length = std::stoul(length_text);
        } catch (...) {
          length = kMaxBodyBytes + 1;
        }
      }
      if (length > kMaxBodyBytes) {
        close_fd(fd, false);
        return;
      }
      while (buffer.size() < length) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          close_fd(fd, false);
          return;
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      request.body = buffer.substr(0, length);
      buffer.erase(0, length);

      {
        std::lock_guard lock(mutex_);
        request.index = ++requests_;
        ++per_path_[request.path];
        changed_.notify_all();
      }
      StubBehaviour behaviour = choose(request);
      if (behaviour.latency_ms > 0 && wait_interrupted(behaviour.latency_ms, false)) {
        close_fd(fd, false);
        return;
      }
      if (behaviour.kind == StubBehaviour::Kind::hang) {
        wait_interrupted(0, true);
        close_fd(fd, false);
        return;
      }
      if (behaviour.kind == StubBehaviour::Kind::reset) {
        close_fd(fd, true);
        return;
      }

      const std::string connection = lower(request.header("connection"));
      bool keep_alive = request.version == "HTTP/1.1" ? connection != "close" : connection == "keep-alive";
      if (behaviour.close) keep_alive = false;
      std::string body;
      if (behaviour.body) {
        body = *behaviour.body;
      } else if (behaviour.status_code / 100 == 2 && !request.episode().empty()) {
        body = resolve_body(request.episode());
      }
      std::string response = "HTTP/1.1 " + std::to_string(behaviour.status_code) + " " +
                             std::string(reason(behaviour.status_code)) + "\r\n";
      response += "Content-Type: application/json\r\n";
      response += "Content-Length: " + std::to_string(body.size()) + "\r\n";
      for (const auto& [name, value] : behaviour.headers) response += name + ": " + value + "\r\n";
      response += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
      if (request.method != "HEAD") response += body;
      if (!send_all(fd, response) || !keep_alive) {
        close_fd(fd, false);
        return;
      }
    }
  }

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::string error_;
  std::thread acceptor_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::uint64_t release_epoch_ = 0;
  std::deque<StubBehaviour> queue_;
  std::function<StubBehaviour(const StubRequest&)> handler_;
  std::uint64_t requests_ = 0;
  std::uint64_t connections_ = 0;
  std::uint64_t hanging_ = 0;
  std::map<std::string, std::uint64_t> per_path_;
  std::set<int> open_fds_;
  std::list<Connection> connections_list_;
};

}  // namespace turnstile::testing
