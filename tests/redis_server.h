#pragma once

// A redis-server of the test's own: a unix socket in a fresh temporary
// directory, no TCP port, no persistence. It is started by the constructor,
// answers PING before the constructor returns, and is stopped (and its
// directory removed) by the destructor. Nothing assumes a running service.
//
// The binary is `redis-server` on PATH, or $TURNSTILE_REDIS_SERVER.
//
// The server is killed when the thread that started it (the constructor's,
// or restart()'s) ends, so that a crashed test leaves no server behind:
// construct and restart it from a thread that outlives it.

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace turnstile::testing {

struct RedisReplyDeleter {
  void operator()(redisReply* reply) const {
    if (reply != nullptr) freeReplyObject(reply);
  }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// A plain hiredis connection for the test's own commands (CLIENT PAUSE,
// SCRIPT FLUSH, reading keys), separate from the store under test.
class RedisClient {
 public:
  explicit RedisClient(const std::string& socket_path, int timeout_ms = 5000) {
    const timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    context_ = redisConnectUnixWithTimeout(socket_path.c_str(), timeout);
    if (context_ != nullptr && context_->err == 0) redisSetTimeout(context_, timeout);
  }
  ~RedisClient() {
    if (context_ != nullptr) redisFree(context_);
  }
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  bool ok() const { return context_ != nullptr && context_->err == 0; }

  // The reply, or null on a connection error.
  RedisReplyPtr command(const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (std::string_view arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (!ok()) return nullptr;
    return RedisReplyPtr(
        static_cast<redisReply*>(redisCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lengths.data())));
  }

  // The reply's text (status, string or error), or "<no reply>".
  std::string text(const std::vector<std::string_view>& args) {
    RedisReplyPtr reply = command(args);
    if (!reply) return "<no reply>";
    if (reply->type == REDIS_REPLY_INTEGER) return std::to_string(reply->integer);
    if (reply->str == nullptr) return "";
    return std::string(reply->str, reply->len);
  }

 private:
  redisContext* context_ = nullptr;
};

class RedisServer {
 public:
  RedisServer() {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    // A unix socket path has at most 107 bytes.
    if (base.size() > 60) base = "/tmp";
    std::string pattern = base + "/turnstile-redis-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      error_ = "mkdtemp failed under " + base;
      return;
    }
    dir_ = pattern;
    socket_ = dir_ + "/redis.sock";
    start();
  }

  ~RedisServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Empty when the server is up; otherwise why it is not.
  const std::string& error() const { return error_; }
  const std::string& socket_path() const { return socket_; }
  std::string url() const { return "unix:" + socket_; }

  // Stops the server and starts a new one on the same socket: every key and
  // the script cache are lost, as in a restart without persistence.
  bool restart() {
    stop();
    return start();
  }

 private:
  bool start() {
    const char* binary_env = std::getenv("TURNSTILE_REDIS_SERVER");
    const std::string binary = binary_env != nullptr && *binary_env != '\0' ? binary_env : "redis-server";
    const std::string log = dir_ + "/redis.log";
    std::vector<std::string> args = {
        binary, "--port", "0", "--save", "", "--appendonly", "no", "--unixsocket", socket_,
        "--unixsocketperm", "700", "--dir", dir_, "--logfile", log, "--daemonize", "no",
        // DEBUG SLEEP is a fault the tests inject; `local` allows it on the unix socket only.
        "--enable-debug-command", "local",
    };
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      error_ = "fork failed";
      return false;
    }
    if (pid_ == 0) {
      // The server dies with the test, even when the test crashes (strictly:
      // with the thread that forked it).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }

    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < give_up) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = binary + " exited at start (is redis-server installed? set TURNSTILE_REDIS_SERVER, or run ctest -LE redis); log: " +
                 read_file(log);
        return false;
      }
      if (std::filesystem::exists(socket_)) {
        RedisClient client(socket_, 200);
        if (client.ok() && client.text({"PING"}) == "PONG") {
          error_.clear();
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    error_ = binary + " did not answer PING within 10 s; log: " + read_file(log);
    stop();
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pid_ = -1;
    std::error_code ignored;
    std::filesystem::remove(socket_, ignored);
  }

  static std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
  std::string error_;
};

}  // namespace turnstile::testing
