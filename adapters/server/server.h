#pragma once

// turnstiled: the stream route (SPEC F) over HTTP/1.1.
//
// One thread runs the event loop: it accepts connections, parses requests,
// owns the core::Route (which is not thread-safe, and must see every request
// for coalescing to hold across connections, C1), reads the steady clock,
// fires the route's timers at next_deadline() and writes the answers. Store
// and broker attempts block, so they run on two bounded pools of worker
// threads (one RedisStore or HttpBroker per thread), and their replies are
// posted back to the loop. The loop never blocks, so a flight's timers fire
// on time whatever the workers are doing, and F6 holds.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "adapters/server/config.h"

namespace turnstile::adapters {

// Counters since start, for tests, benchmarks and the shutdown line.
struct ServerStats {
  std::uint64_t requests = 0;          // HTTP requests answered (any status)
  std::uint64_t flights_started = 0;   // stream requests that started a flight
  std::uint64_t flights_joined = 0;    // stream requests that joined one (C1)
  std::uint64_t store_calls = 0;       // store attempts handed to a worker
  std::uint64_t broker_calls = 0;      // broker attempts handed to a worker
  std::uint64_t calls_rejected = 0;    // attempts failed at once: their queue was full
  std::uint64_t connections_rejected = 0;  // answered 503: over max_connections
  std::uint64_t flights_now = 0;       // flights running now (C6: 0 at quiescence)
};

// Receives every log line (one JSON object, no newline). The default writes
// it to stdout and flushes.
using LogSink = std::function<void(std::string_view line)>;

class Server {
 public:
  explicit Server(ServerConfig config, LogSink sink = {});
  ~Server();  // stops (gracefully) and joins whatever still runs
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens. Empty on success, else why not (one line).
  std::string listen();
  // The bound address as host:port ([v6]:port), after listen().
  std::string address() const;
  std::uint16_t port() const;

  // Serves until a graceful shutdown has finished: stop() was called, or,
  // with handle_signals, SIGTERM or SIGINT arrived. Shutdown stops
  // accepting, closes idle connections, answers every request already
  // received (then closes its connection), lets every flight run to its end
  // (C4, F5), then stops the workers. Returns 0.
  int run(bool handle_signals);

  // Begins the graceful shutdown. Safe from any thread, and before run().
  void stop();

  // A snapshot, safe from any thread.
  ServerStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace turnstile::adapters
