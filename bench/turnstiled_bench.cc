// turnstiled under load (issue 6): requests per second and p50/p99 latency at
// 50 and 200 keep-alive connections, against the stub broker alone as the
// baseline; and broker calls saved by coalescing in a burst.
//
// The program starts its own redis-server (tests/redis_server.h), a stub
// broker (tests/stub_broker.h, answering at once) and a turnstiled Server in
// this process (request log off), all on loopback. The load generator is
// ours: one thread, epoll, N keep-alive connections, each sending its next
// request as soon as the previous answer arrived, for a fixed time.
//
// Workloads:
//   turnstiled     each connection is its own client on one pool of ample
//                  capacity, so every request is a whole flight: a gate call
//                  (gate.lua through EVALSHA) then a broker call.
//   one key        every connection is the same client and episode, so
//                  requests that overlap share a flight (C1).
//   broker alone   the same connections sending GET /resolve/{id} to the
//                  stub broker itself: the cost of the HTTP hop turnstiled
//                  adds its gate and coalescing to.
//   burst          k connections send one identical request at once while
//                  the broker takes 50 ms: broker calls per burst.
//
//   build-serverrel/bench/turnstiled_bench [--seconds S] [--workers W]

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "adapters/redis/redis_store.h"
#include "adapters/server/config.h"
#include "adapters/server/server.h"
#include "tests/loopback_port.h"
#include "tests/redis_server.h"
#include "tests/stub_broker.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  double seconds = 5.0;
  int workers = 8;
};

// What one timed run measured.
struct LoadResult {
  std::uint64_t answered = 0;  // 200s
  std::uint64_t errors = 0;    // other statuses, closes and resets
  std::uint64_t denied = 0;    // 200s that are F3 denials (busy, capacity, ...)
  double seconds = 0;
  std::vector<double> latencies_ms;

  double per_second() const { return seconds > 0 ? static_cast<double>(answered) / seconds : 0; }
  double percentile(double p) const {
    if (latencies_ms.empty()) return 0;
    std::vector<double> sorted = latencies_ms;
    const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(rank), sorted.end());
    return sorted[rank];
  }
};


// Drives `requests.size()` keep-alive connections, connection i sending
// requests[i] again and again, for `seconds` (or, with once, one request
// each). Latency is from the request's send to its whole answer.
LoadResult run_load(int port, const std::vector<std::string>& requests, double seconds, bool once = false) {
  struct Conn {
    int fd = -1;
    std::string in;
    Clock::time_point sent;
    bool busy = false;
  };
  LoadResult result;
  result.latencies_ms.reserve(1 << 20);
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(requests.size());
  auto send_request = [&](std::size_t i) {
    Conn& c = conns[i];
    if (c.fd < 0) {
      c.fd = turnstile::testing::connect_to_loopback(port);
      if (c.fd < 0) return false;
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = i;
      ::epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &event);
    }
    c.sent = Clock::now();
    // Requests are small: one send takes all of it on a fresh or idle socket.
    if (::send(c.fd, requests[i].data(), requests[i].size(), MSG_NOSIGNAL) != static_cast<ssize_t>(requests[i].size())) {
      return false;
    }
    c.busy = true;
    return true;
  };
  auto drop = [&](Conn& c) {
    if (c.fd >= 0) {
      ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
    }
    c.fd = -1;
    c.in.clear();
    c.busy = false;
  };

  const Clock::time_point start = Clock::now();
  const Clock::time_point stop_sending = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const Clock::time_point give_up = stop_sending + std::chrono::seconds(15);
  for (std::size_t i = 0; i < conns.size(); ++i) {
    if (!send_request(i)) {
      ++result.errors;
      drop(conns[i]);
    }
  }
  std::vector<epoll_event> events(256);
  char chunk[16384];
  for (;;) {
    const Clock::time_point now = Clock::now();
    const bool sending = !once && now < stop_sending;
    const bool any_busy = std::any_of(conns.begin(), conns.end(), [](const Conn& c) { return c.busy; });
    if (!any_busy && !sending) break;
    if (now > give_up) break;
    const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[static_cast<std::size_t>(e)].data.u64;
      Conn& c = conns[i];
      const ssize_t got = ::recv(c.fd, chunk, sizeof chunk, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (c.busy) ++result.errors;
        drop(c);
        if (!once && Clock::now() < stop_sending && !send_request(i)) drop(c);
        continue;
      }
      c.in.append(chunk, static_cast<std::size_t>(got));
      for (;;) {
        const std::size_t head_end = c.in.find("\r\n\r\n");
        if (head_end == std::string::npos) break;
        const std::size_t at = c.in.find("Content-Length: ");
        const std::size_t length =
            at != std::string::npos && at < head_end ? std::strtoul(c.in.c_str() + at + 16, nullptr, 10) : 0;
        if (c.in.size() < head_end + 4 + length) break;
        const bool ok = c.in.compare(0, 12, "HTTP/1.1 200") == 0;
        if (ok && std::string_view(c.in).substr(head_end + 4, length).find("\"cacheMaxAge\":0") != std::string_view::npos) {
          ++result.denied;
        }
        c.in.erase(0, head_end + 4 + length);
        c.busy = false;
        if (ok) {
          ++result.answered;
          result.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c.sent).count());
        } else {
          ++result.errors;
        }
        if (!once && Clock::now() < stop_sending && !send_request(i)) {
          ++result.errors;
          drop(c);
        }
      }
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!once) result.seconds = std::min(result.seconds, std::chrono::duration<double>(stop_sending - start).count() + 0.0);
  for (Conn& c : conns) drop(c);
  ::close(epoll);
  return result;
}

std::string stream_request(std::string_view client, std::string_view episode) {
  return "GET /bench/stream/movie/" + std::string(episode) + ".json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-Id: " +
         std::string(client) + "\r\n\r\n";
}

std::string resolve_request(std::string_view episode) {
  return "GET /resolve/" + std::string(episode) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

void print_row(const char* name, std::size_t connections, const LoadResult& result, double baseline) {
  std::printf("| %-34s | %5zu | %9.0f | %7.2f | %7.2f | %6llu | %6llu | %5.2fx |\n", name, connections,
              result.per_second(), result.percentile(0.50), result.percentile(0.99),
              static_cast<unsigned long long>(result.denied), static_cast<unsigned long long>(result.errors),
              baseline > 0 ? result.per_second() / baseline : 1.0);
  std::fflush(stdout);
}

bool parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    const char* value = argv[++i];
    if (flag == "--seconds") {
      options.seconds = std::atof(value);
    } else if (flag == "--workers") {
      options.workers = std::atoi(value);
    } else {
      return false;
    }
  }
  return options.seconds > 0 && options.workers >= 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, options)) {
    std::fprintf(stderr, "usage: turnstiled_bench [--seconds S] [--workers W]\n");
    return 2;
  }
  turnstile::testing::RedisServer redis;
  if (!redis.error().empty()) {
    std::fprintf(stderr, "redis-server: %s\n", redis.error().c_str());
    return 1;
  }
  turnstile::testing::StubBroker broker;
  if (!broker.error().empty()) {
    std::fprintf(stderr, "stub broker: %s\n", broker.error().c_str());
    return 1;
  }

  turnstile::adapters::ServerConfig config;
  config.listen_host = "127.0.0.1";
  config.listen_port = 0;
  config.redis = std::get<turnstile::adapters::RedisEndpoint>(turnstile::adapters::parse_redis_url(redis.url()));
  config.broker_url = broker.base_url();
  config.gate.capacity = 100000;
  config.workers = options.workers;
  config.log_requests = false;
  turnstile::adapters::Server server(config, [](std::string_view) {});
  if (const std::string error = server.listen(); !error.empty()) {
    std::fprintf(stderr, "turnstiled: %s\n", error.c_str());
    return 1;
  }
  std::thread serving([&] { server.run(false); });
  const int port = server.port();

  std::printf("turnstiled_bench: %.1f s per run, %d store + %d broker workers, %u cores\n\n", options.seconds,
              options.workers, options.workers, std::thread::hardware_concurrency());
  std::printf("| %-34s | %5s | %9s | %7s | %7s | %6s | %6s | %6s |\n", "target", "conns", "req/s", "p50 ms",
              "p99 ms", "denied", "errors", "ratio");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(36, '-').c_str(), std::string(7, '-').c_str(),
              std::string(11, '-').c_str(), std::string(9, '-').c_str(), std::string(9, '-').c_str(),
              std::string(8, '-').c_str(), std::string(8, '-').c_str(), std::string(8, '-').c_str());

  // Warm-up: connections, the script cache and the stub's threads.
  {
    std::vector<std::string> warm;
    for (int i = 0; i < 50; ++i) warm.push_back(stream_request("warm" + std::to_string(i), "tt0111161"));
    (void)run_load(port, warm, 0.5);
  }

  for (const std::size_t connections : {std::size_t{50}, std::size_t{200}}) {
    std::vector<std::string> alone(connections, resolve_request("tt0111161"));
    const LoadResult baseline = run_load(broker.port(), alone, options.seconds);

    std::vector<std::string> each_own;
    for (std::size_t i = 0; i < connections; ++i) {
      each_own.push_back(stream_request("c" + std::to_string(i), "tt0111161"));
    }
    const auto before = server.stats();
    const LoadResult own = run_load(port, each_own, options.seconds);
    const auto after = server.stats();

    std::vector<std::string> one_key(connections, stream_request("shared", "tt0944947:1:2"));
    const auto before_shared = server.stats();
    const LoadResult shared = run_load(port, one_key, options.seconds);
    const auto after_shared = server.stats();

    print_row("broker alone (baseline)", connections, baseline, baseline.per_second());
    print_row("turnstiled, a client per conn", connections, own, baseline.per_second());
    print_row("turnstiled, one key (coalesced)", connections, shared, baseline.per_second());
    std::printf("|   calls per request: own %.2f store %.2f broker; one key %.3f store %.3f broker |\n",
                static_cast<double>(after.store_calls - before.store_calls) / std::max<double>(1, static_cast<double>(own.answered)),
                static_cast<double>(after.broker_calls - before.broker_calls) / std::max<double>(1, static_cast<double>(own.answered)),
                static_cast<double>(after_shared.store_calls - before_shared.store_calls) /
                    std::max<double>(1, static_cast<double>(shared.answered)),
                static_cast<double>(after_shared.broker_calls - before_shared.broker_calls) /
                    std::max<double>(1, static_cast<double>(shared.answered)));
  }

  // Bursts: k identical requests at once while the broker takes 50 ms.
  std::printf("\n| burst of k identical requests | k | answered | of which busy (C5) | broker calls | gate calls | broker calls saved |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  broker.set_handler([](const turnstile::testing::StubRequest&) {
    return turnstile::testing::StubBehaviour::status(200).with_latency(50);
  });
  int burst_index = 0;
  for (const std::size_t k : {std::size_t{10}, std::size_t{50}, std::size_t{200}}) {
    const std::string episode = "tt" + std::to_string(9000000 + burst_index++);
    std::vector<std::string> burst(k, stream_request("burst", episode));
    const auto before = server.stats();
    const std::uint64_t broker_before = broker.requests("/resolve/" + episode);
    const LoadResult result = run_load(port, burst, 0, /*once=*/true);
    const auto after = server.stats();
    const std::uint64_t calls = broker.requests("/resolve/" + episode) - broker_before;
    std::printf("| %s | %zu | %llu | %llu | %llu | %llu | %llu |\n", episode.c_str(), k,
                static_cast<unsigned long long>(result.answered), static_cast<unsigned long long>(result.denied),
                static_cast<unsigned long long>(calls),
                static_cast<unsigned long long>(after.store_calls - before.store_calls),
                static_cast<unsigned long long>(k - calls));
  }

  server.stop();
  serving.join();
  return 0;
}
