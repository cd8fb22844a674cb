#include "adapters/broker/http_broker.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/assert.h"
#include "core/ids.h"
#include "core/outcome.h"

namespace turnstile::adapters {
namespace {

// curl_global_init is not safe to race with itself or with any other libcurl
// call, so it runs exactly once, before the first handle is made, and is never
// undone: a handle may live until the process ends.
void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { TS_ASSERT(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK); });
}

CURL* handle(void* curl) { return static_cast<CURL*>(curl); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<core::Ms> parse_retry_after(std::string_view value, core::Ms max_ms) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  core::Ms seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    // Past the cap the digits no longer matter; stopping the sum here keeps
    // a value of any length from overflowing.
    if (seconds <= max_ms / 1000) seconds = seconds * 10 + (c - '0');
  }
  if (seconds > max_ms / 1000) return max_ms;
  return std::min(seconds * 1000, max_ms);
}

std::optional<std::vector<core::Stream>> parse_resolve_body(std::string_view body, std::size_t max_streams) {
  // Without exceptions: a body that is not JSON parses to a discarded value.
  const nlohmann::json json = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  const auto streams = json.find("streams");
  if (streams == json.end() || !streams->is_array() || streams->size() > max_streams) return std::nullopt;
  std::vector<core::Stream> out;
  out.reserve(streams->size());
  for (const nlohmann::json& entry : *streams) {
    if (!entry.is_object()) return std::nullopt;
    const auto name = entry.find("name");
    const auto url = entry.find("url");
    if (name == entry.end() || !name->is_string() || url == entry.end() || !url->is_string()) return std::nullopt;
    core::Stream stream;
    stream.name = name->get<std::string>();
    stream.url = url->get<std::string>();
    if (stream.url.empty()) return std::nullopt;
    out.push_back(std::move(stream));
  }
  return out;
}

HttpBroker::HttpBroker(HttpBrokerConfig config) : config_(std::move(config)), error_buffer_(CURL_ERROR_SIZE, '\0') {
  TS_ASSERT(!core::check_retry_config(config_.retry));
  TS_ASSERT(config_.connect_timeout_ms >= 1);
  TS_ASSERT(config_.max_retry_after_ms >= 0);
  global_init_once();
  curl_ = curl_easy_init();
  TS_ASSERT(curl_ != nullptr);
  CURL* curl = handle(curl_);
  // Timeouts through signals (SIGALRM around a blocking resolver) are unsafe
  // with threads; libcurl's threaded resolver needs none.
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer_.data());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &HttpBroker::on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HttpBroker::on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
  // A redirect would be a second request inside one attempt; the broker's
  // address is configured, so a redirect is an answer like any other 3xx.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "turnstile");
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
}

HttpBroker::~HttpBroker() {
  if (curl_ != nullptr) curl_easy_cleanup(handle(curl_));
}

core::Ms HttpBroker::steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::size_t HttpBroker::on_body(char* data, std::size_t size, std::size_t count, void* self) {
  auto* broker = static_cast<HttpBroker*>(self);
  const std::size_t bytes = size * count;
  long status = 0;
  curl_easy_getinfo(handle(broker->curl_), CURLINFO_RESPONSE_CODE, &status);
  // Only a 2xx body is read; any other status decides the outcome alone, so
  // its body (an error page of any length) is dropped as it arrives.
  if (status < 200 || status > 299) return bytes;
  if (broker->body_.size() + bytes > broker->config_.max_body_bytes) {
    // Returning less than was handed in ends the transfer (CURLE_WRITE_ERROR):
    // an oversized body is permanent, and reading the rest only burns budget.
    broker->body_too_long_ = true;
    return 0;
  }
  broker->body_.append(data, bytes);
  return bytes;
}

std::size_t HttpBroker::on_header(char* data, std::size_t size, std::size_t count, void* self) {
  auto* broker = static_cast<HttpBroker*>(self);
  const std::size_t bytes = size * count;
  const std::string_view line(data, bytes);
  // A status line starts a new response (after a 1xx, say): forget the last one's header.
  if (line.starts_with("HTTP/")) broker->retry_after_.clear();
  constexpr std::string_view kRetryAfter = "retry-after:";
  if (starts_with_nocase(line, kRetryAfter) && line.size() - kRetryAfter.size() <= 64) {
    broker->retry_after_ = std::string(trim(line.substr(kRetryAfter.size())));
  }
  return bytes;
}

core::BrokerReply HttpBroker::fail(core::OutcomeClass outcome_class, std::string why,
                                   std::optional<core::Ms> retry_after_ms) {
  last_error_ = std::move(why);
  return core::BrokerReply{core::AttemptResult{outcome_class, retry_after_ms}, {}};
}

core::BrokerReply HttpBroker::attempt(std::string_view episode, core::Ms deadline_ms) {
  // The caller validated the episode (SPEC V2): its bytes need no escaping in a path.
  TS_ASSERT(core::is_valid_id(core::IdKind::episode, episode));
  ++stats_.attempts;
  const core::Ms left_ms = deadline_ms - steady_ms();
  if (left_ms <= 0) return fail(core::OutcomeClass::transient, "the attempt's deadline passed before it started");

  CURL* curl = handle(curl_);
  const std::string url = fmt::format("{}/resolve/{}", config_.base_url, episode);
  body_.clear();
  body_too_long_ = false;
  retry_after_.clear();
  error_buffer_[0] = '\0';
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  // The whole transfer (connect included) ends at the attempt's deadline.
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(left_ms));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(left_ms, config_.connect_timeout_ms)));
  const CURLcode code = curl_easy_perform(curl);
  long connects = 0;
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
  stats_.connects += static_cast<std::uint64_t>(std::max(connects, 0L));

  const std::string detail = error_buffer_[0] != '\0' ? std::string(error_buffer_.c_str()) : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OK:
      break;
    case CURLE_OPERATION_TIMEDOUT:
      return fail(core::OutcomeClass::transient, fmt::format("{}: timed out: {}", url, detail));
    case CURLE_COULDNT_CONNECT:
      // Refused, or no route: nothing was sent, so trying again is safe.
      return fail(core::OutcomeClass::transient, fmt::format("{}: could not connect: {}", url, detail));
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      // A reset, or a connection closed before a whole answer came.
      return fail(core::OutcomeClass::transient, fmt::format("{}: connection lost: {}", url, detail));
    case CURLE_WRITE_ERROR:
      if (body_too_long_) {
        return fail(core::OutcomeClass::permanent,
                    fmt::format("{}: malformed body: longer than {} bytes", url, config_.max_body_bytes));
      }
      return fail(core::OutcomeClass::permanent, fmt::format("{}: {}", url, detail));
    default:
      return fail(core::OutcomeClass::permanent, fmt::format("{}: {}", url, detail));
  }

  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  const core::OutcomeClass outcome_class = core::classify_http_status(static_cast<int>(status));
  if (outcome_class != core::OutcomeClass::success) {
    // R5: Retry-After counts on 429 and 503 only.
    std::optional<core::Ms> retry_after_ms;
    if (status == 429 || status == 503) retry_after_ms = parse_retry_after(retry_after_, config_.max_retry_after_ms);
    return fail(outcome_class, fmt::format("{}: HTTP {}", url, status), retry_after_ms);
  }
  auto streams = parse_resolve_body(body_, config_.max_streams);
  if (!streams) return fail(core::OutcomeClass::permanent, fmt::format("{}: HTTP {} with a malformed body", url, status));
  return core::BrokerReply{core::AttemptResult{core::OutcomeClass::success, std::nullopt}, *std::move(streams)};
}

core::BrokerReply HttpBroker::call(std::string_view episode, core::Rng& rng) {
  core::Retry retry(config_.retry, steady_ms());
  retry.start();
  core::BrokerReply last;
  // R4: at most two attempts and one wait, each one effect, then the end.
  // The bound only guards against a machine that stopped emitting.
  for (int step = 0; step < 8; ++step) {
    std::optional<core::RetryEffect> effect = retry.poll();
    if (!effect) break;
    if (const auto* start = std::get_if<core::StartAttempt>(&*effect)) {
      last = attempt(episode, start->deadline);
      // A reply after the deadline counts as the attempt's timeout (R1):
      // the retry machine decides that, not this loop.
      retry.on_result(steady_ms(), start->attempt, last.result, rng);
    } else if (const auto* wake = std::get_if<core::RetryWake>(&*effect)) {
      std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::milliseconds(wake->at)));
      retry.on_timer(std::max(steady_ms(), wake->at), rng);
    } else {
      const auto& done = std::get<core::RetryDone>(*effect);
      if (done.outcome_class != core::OutcomeClass::success) last.streams.clear();
      return core::BrokerReply{core::AttemptResult{done.outcome_class, std::nullopt}, std::move(last.streams)};
    }
  }
  return fail(core::OutcomeClass::permanent, "the retry machine stopped without an outcome");
}

}  // namespace turnstile::adapters
