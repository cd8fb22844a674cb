#pragma once

// The broker over HTTP (SPEC R, F1): one resolve of an episode's streams is
// `GET {base_url}/resolve/{episode}` answering `{"streams":[{"name":..,
// "url":..}, ...]}`. Each attempt runs under a deadline handed in by the
// caller's retry machine (core::Retry inside core::Flow, or call() below),
// and its outcome is classified per R3.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/flow.h"
#include "core/retry.h"
#include "core/rng.h"
#include "core/time.h"

namespace turnstile::adapters {

struct HttpBrokerConfig {
  std::string base_url;                 // http://host:port, no trailing slash
  core::RetryConfig retry = core::RetryConfig::broker_defaults();
  core::Ms connect_timeout_ms = 300;    // never past the attempt's deadline
  std::size_t max_body_bytes = 1 << 20; // a longer body is malformed (permanent)
  std::size_t max_streams = 64;         // a body listing more is malformed (permanent)
  core::Ms max_retry_after_ms = 60000;  // a longer Retry-After is cut to this
};

// What the broker did, for tests and logs.
struct HttpBrokerStats {
  std::uint64_t attempts = 0;
  std::uint64_t connects = 0;  // connections opened (keep-alive reuses one)
};

// A Retry-After value in whole seconds (RFC 9110's delay-seconds: digits
// only), as milliseconds cut to `max_ms`; nothing when malformed (an HTTP
// date included: a broker that wants a delay sends seconds).
std::optional<core::Ms> parse_retry_after(std::string_view value, core::Ms max_ms);

// A resolve body, {"streams":[{"name":"..","url":".."}, ...]} (other fields
// are ignored), or nothing when it is malformed: not JSON, no `streams`
// array, an entry without a string name or a non-empty string url, or more
// than `max_streams` entries.
std::optional<std::vector<core::Stream>> parse_resolve_body(std::string_view body, std::size_t max_streams);

// One libcurl easy handle, reused across attempts so connections are kept
// alive. Not thread-safe: one broker per thread.
class HttpBroker {
 public:
  explicit HttpBroker(HttpBrokerConfig config);
  ~HttpBroker();
  HttpBroker(const HttpBroker&) = delete;
  HttpBroker& operator=(const HttpBroker&) = delete;

  // One attempt that ends by `deadline_ms` (steady_ms()'s clock). 2xx with a
  // well-formed body is success; 408, 429, 500-599 but 501 and 505, a
  // timeout, a reset or a refused connection are transient (with
  // Retry-After, in seconds, as retry_after_ms on 429 and 503); anything
  // else, a malformed body included, is permanent (R3).
  core::BrokerReply attempt(std::string_view episode, core::Ms deadline_ms);

  // One whole resolve (R1-R7) through core::Retry with config.retry, its
  // time read from steady_ms() and its retry delay drawn from `rng`.
  core::BrokerReply call(std::string_view episode, core::Rng& rng);

  const HttpBrokerStats& stats() const { return stats_; }
  // Why the last failed attempt failed, for messages.
  const std::string& last_error() const { return last_error_; }

  // std::chrono::steady_clock in milliseconds, the clock of every deadline.
  static core::Ms steady_ms();

 private:
  core::BrokerReply fail(core::OutcomeClass outcome_class, std::string why,
                         std::optional<core::Ms> retry_after_ms = std::nullopt);
  // libcurl's write and header callbacks; `self` is the broker.
  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self);
  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self);

  HttpBrokerConfig config_;
  void* curl_ = nullptr;  // CURL*, kept out of this header
  std::string body_;      // the current attempt's response body
  bool body_too_long_ = false;
  std::string retry_after_;  // the current attempt's Retry-After value, raw
  std::string error_buffer_;  // libcurl's CURLOPT_ERRORBUFFER
  HttpBrokerStats stats_;
  std::string last_error_;
};

}  // namespace turnstile::adapters
