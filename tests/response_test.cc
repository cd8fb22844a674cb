#include "core/response.h"

#include <gtest/gtest.h>

#include <string>

namespace turnstile::core {
namespace {

std::string json(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

std::string denial_body(DenialReason reason) { return render_body(Response::denial(reason)); }

TEST(Response, F3_DenialTexts) {
  EXPECT_EQ(denial_text(DenialReason::capacity), "capacity");
  EXPECT_EQ(denial_text(DenialReason::policy), "policy");
  EXPECT_EQ(denial_text(DenialReason::busy), "busy");
  EXPECT_EQ(denial_text(DenialReason::unavailable), "unavailable");
  EXPECT_EQ(denial_text(DenialReason::superseded), "superseded");
  EXPECT_EQ(denial_text(DenialReason::resolve_failed), "resolve-failed");
}

TEST(Response, F3_EveryDenialBodyByteForByte) {
  EXPECT_EQ(denial_body(DenialReason::capacity),
            R"({"streams":[{"name":"turnstile","description":"capacity"}],"cacheMaxAge":0})");
  EXPECT_EQ(denial_body(DenialReason::policy),
            R"({"streams":[{"name":"turnstile","description":"policy"}],"cacheMaxAge":0})");
  EXPECT_EQ(denial_body(DenialReason::busy),
            R"({"streams":[{"name":"turnstile","description":"busy"}],"cacheMaxAge":0})");
  EXPECT_EQ(denial_body(DenialReason::unavailable),
            R"({"streams":[{"name":"turnstile","description":"unavailable"}],"cacheMaxAge":0})");
  EXPECT_EQ(denial_body(DenialReason::superseded),
            R"({"streams":[{"name":"turnstile","description":"superseded"}],"cacheMaxAge":0})");
  EXPECT_EQ(denial_body(DenialReason::resolve_failed),
            R"({"streams":[{"name":"turnstile","description":"resolve-failed"}],"cacheMaxAge":0})");
}

TEST(Response, F3_DenialIgnoresAnyStreams) {
  Response response = Response::denial(DenialReason::busy);
  response.streams.push_back({"x", "http://x/"});
  EXPECT_EQ(render_body(response), R"({"streams":[{"name":"turnstile","description":"busy"}],"cacheMaxAge":0})");
}

TEST(Response, F2_GrantedBodyByteForByte) {
  const Response response = Response::granted({{"1080p", "http://cdn/a.mkv?session=7"}, {"720p", "http://cdn/b.mkv?session=7"}});
  EXPECT_FALSE(response.denied);
  EXPECT_EQ(render_body(response),
            R"({"streams":[{"name":"1080p","url":"http://cdn/a.mkv?session=7"},)"
            R"({"name":"720p","url":"http://cdn/b.mkv?session=7"}]})");
}

TEST(Response, F2_GrantedWithNoStreams) {
  EXPECT_EQ(render_body(Response::granted({})), R"({"streams":[]})");
}

TEST(Response, F2_GrantedBodyEscapesNamesAndUrls) {
  const Response response = Response::granted({{"a \"q\"\n", "http://x/\\y"}});
  EXPECT_EQ(render_body(response), R"({"streams":[{"name":"a \"q\"\n","url":"http://x/\\y"}]})");
}

TEST(Response, JsonStringEscapesQuoteAndBackslash) {
  EXPECT_EQ(json(""), R"("")");
  EXPECT_EQ(json("plain"), R"("plain")");
  EXPECT_EQ(json("a\"b"), R"("a\"b")");
  EXPECT_EQ(json("a\\b"), R"("a\\b")");
  EXPECT_EQ(json("/"), R"("/")");
}

TEST(Response, JsonStringEscapesControlCharacters) {
  EXPECT_EQ(json("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json(std::string_view("\x00", 1)), R"("\u0000")");
  EXPECT_EQ(json("\x01\x1f"), R"("\u0001\u001f")");
  EXPECT_EQ(json("\x0b"), R"("\u000b")");
  EXPECT_EQ(json("\x7f"), "\"\x7f\"");
}

TEST(Response, JsonStringPassesHighBytesThrough) {
  EXPECT_EQ(json("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(json("\xff\x80"), "\"\xff\x80\"");
}

TEST(Response, JsonStringAppends) {
  std::string out = "x=";
  append_json_string(out, "y");
  EXPECT_EQ(out, R"(x="y")");
}

TEST(Response, F2_TokenStartsAQuery) {
  EXPECT_EQ(with_session_token("http://cdn/a.mkv", "42"), "http://cdn/a.mkv?session=42");
}

TEST(Response, F2_TokenJoinsAnExistingQuery) {
  EXPECT_EQ(with_session_token("http://cdn/a.mkv?q=1", "42"), "http://cdn/a.mkv?q=1&session=42");
  EXPECT_EQ(with_session_token("http://cdn/a?q=1&r=2", "42"), "http://cdn/a?q=1&r=2&session=42");
}

TEST(Response, F2_TokenGoesBeforeTheFragment) {
  EXPECT_EQ(with_session_token("http://cdn/a.mkv#t=10", "42"), "http://cdn/a.mkv?session=42#t=10");
  EXPECT_EQ(with_session_token("http://cdn/a.mkv?q=1#t=10", "42"), "http://cdn/a.mkv?q=1&session=42#t=10");
  // A '?' inside the fragment is not a query.
  EXPECT_EQ(with_session_token("http://cdn/a#x?y", "42"), "http://cdn/a?session=42#x?y");
}

TEST(Response, F2_TokenAfterAnEmptyQueryNeedsNoSeparator) {
  EXPECT_EQ(with_session_token("http://cdn/a?", "42"), "http://cdn/a?session=42");
  EXPECT_EQ(with_session_token("http://cdn/a?q=1&", "42"), "http://cdn/a?q=1&session=42");
}

TEST(Response, ResponsesCompareByValue) {
  EXPECT_EQ(Response::denial(DenialReason::busy), Response::denial(DenialReason::busy));
  EXPECT_NE(Response::denial(DenialReason::busy), Response::denial(DenialReason::capacity));
  EXPECT_NE(Response::granted({{"a", "u"}}), Response::granted({{"a", "v"}}));
}

}  // namespace
}  // namespace turnstile::core
