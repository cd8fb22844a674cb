#include "core/ids.h"

#include <string>

#include <gtest/gtest.h>

namespace turnstile::core {
namespace {

TEST(Ids, V1_PoolAndClientAcceptTheirAlphabetUpTo64Bytes) {
  for (auto kind : {IdKind::pool, IdKind::client}) {
    EXPECT_TRUE(is_valid_id(kind, "a"));
    EXPECT_TRUE(is_valid_id(kind, "Az09._-"));
    EXPECT_TRUE(is_valid_id(kind, std::string(64, 'x')));
    EXPECT_FALSE(is_valid_id(kind, std::string(65, 'x')));
    EXPECT_FALSE(is_valid_id(kind, ""));
    EXPECT_FALSE(is_valid_id(kind, "a:b"));
    EXPECT_FALSE(is_valid_id(kind, "a b"));
    EXPECT_FALSE(is_valid_id(kind, "a/b"));
    EXPECT_FALSE(is_valid_id(kind, "caf\xc3\xa9"));
  }
}

TEST(Ids, V2_EpisodeAllowsColonsUpTo128Bytes) {
  EXPECT_TRUE(is_valid_id(IdKind::episode, "tt0944947:1:2"));
  EXPECT_TRUE(is_valid_id(IdKind::episode, "tt0111161"));
  EXPECT_TRUE(is_valid_id(IdKind::episode, std::string(128, ':')));
  EXPECT_FALSE(is_valid_id(IdKind::episode, std::string(129, 'e')));
  EXPECT_FALSE(is_valid_id(IdKind::episode, ""));
  EXPECT_FALSE(is_valid_id(IdKind::episode, "tt1;1"));
  EXPECT_FALSE(is_valid_id(IdKind::episode, std::string("tt\0001", 4)));
}

TEST(Ids, V3_RequestIsLikeAClientId) {
  EXPECT_TRUE(is_valid_id(IdKind::request, "r-1.a_b"));
  EXPECT_FALSE(is_valid_id(IdKind::request, "r:1"));
  EXPECT_FALSE(is_valid_id(IdKind::request, std::string(65, 'r')));
}

TEST(Ids, V4_CheckIdNamesFieldAndExpectation) {
  EXPECT_FALSE(check_id(IdKind::client, "client", "ok").has_value());
  auto error = check_id(IdKind::episode, "episode", "bad id");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "episode");
  EXPECT_EQ(error->expected, "1-128 bytes of [A-Za-z0-9._:-]");
  EXPECT_EQ(check_id(IdKind::pool, "pool", "")->expected, "1-64 bytes of [A-Za-z0-9._-]");
}

}  // namespace
}  // namespace turnstile::core
