#include "core/outcome.h"

#include <gtest/gtest.h>

namespace turnstile::core {
namespace {

constexpr OutcomeClass kSuccess = OutcomeClass::success;
constexpr OutcomeClass kTransient = OutcomeClass::transient;
constexpr OutcomeClass kPermanent = OutcomeClass::permanent;

TEST(Outcome, R3_ClassNamesAreStable) {
  EXPECT_EQ(outcome_class_name(kSuccess), "success");
  EXPECT_EQ(outcome_class_name(kTransient), "transient");
  EXPECT_EQ(outcome_class_name(kPermanent), "permanent");
}

TEST(Outcome, R3_TwoHundredsAreSuccess) {
  EXPECT_EQ(classify_http_status(199), kPermanent);
  EXPECT_EQ(classify_http_status(200), kSuccess);
  EXPECT_EQ(classify_http_status(204), kSuccess);
  EXPECT_EQ(classify_http_status(299), kSuccess);
  EXPECT_EQ(classify_http_status(300), kPermanent);
}

TEST(Outcome, R3_OtherFourHundredsArePermanent) {
  EXPECT_EQ(classify_http_status(400), kPermanent);
  EXPECT_EQ(classify_http_status(404), kPermanent);
  EXPECT_EQ(classify_http_status(407), kPermanent);
  EXPECT_EQ(classify_http_status(409), kPermanent);
  EXPECT_EQ(classify_http_status(428), kPermanent);
  EXPECT_EQ(classify_http_status(430), kPermanent);
  EXPECT_EQ(classify_http_status(499), kPermanent);
}

TEST(Outcome, R3_RequestTimeoutAndTooManyRequestsAreTransient) {
  EXPECT_EQ(classify_http_status(408), kTransient);
  EXPECT_EQ(classify_http_status(429), kTransient);
}

TEST(Outcome, R3_FiveHundredsAreTransientExcept501And505) {
  EXPECT_EQ(classify_http_status(500), kTransient);
  EXPECT_EQ(classify_http_status(501), kPermanent);
  EXPECT_EQ(classify_http_status(502), kTransient);
  EXPECT_EQ(classify_http_status(503), kTransient);
  EXPECT_EQ(classify_http_status(504), kTransient);
  EXPECT_EQ(classify_http_status(505), kPermanent);
  EXPECT_EQ(classify_http_status(506), kTransient);
  EXPECT_EQ(classify_http_status(599), kTransient);
}

TEST(Outcome, R3_StatusesOutsideTheKnownRangesArePermanent) {
  EXPECT_EQ(classify_http_status(-1), kPermanent);
  EXPECT_EQ(classify_http_status(0), kPermanent);
  EXPECT_EQ(classify_http_status(100), kPermanent);
  EXPECT_EQ(classify_http_status(600), kPermanent);
  EXPECT_EQ(classify_http_status(999), kPermanent);
}

TEST(Outcome, R3_EveryStatusFrom0To999HasTheSpecClass) {
  // The whole range against the rule as written, so no status slips between
  // the edges tested above.
  for (int status = 0; status < 1000; ++status) {
    OutcomeClass expected = kPermanent;
    if (status >= 200 && status < 300) expected = kSuccess;
    if (status == 408 || status == 429) expected = kTransient;
    if (status >= 500 && status < 600 && status != 501 && status != 505) expected = kTransient;
    EXPECT_EQ(classify_http_status(status), expected) << "status " << status;
  }
}

TEST(Outcome, R3_StoreBusyLoadingTryagainAreTransient) {
  EXPECT_EQ(classify_store_error("BUSY Redis is busy running a script."), kTransient);
  EXPECT_EQ(classify_store_error("LOADING Redis is loading the dataset in memory"), kTransient);
  EXPECT_EQ(classify_store_error("TRYAGAIN Multiple keys request during rehashing of slot"), kTransient);
  EXPECT_EQ(classify_store_error("BUSY"), kTransient);
  EXPECT_EQ(classify_store_error("LOADING"), kTransient);
  EXPECT_EQ(classify_store_error("TRYAGAIN"), kTransient);
}

TEST(Outcome, R3_StoreErrAndWrongtypeArePermanent) {
  EXPECT_EQ(classify_store_error("ERR unknown command 'FOO'"), kPermanent);
  EXPECT_EQ(classify_store_error("WRONGTYPE Operation against a key holding the wrong kind of value"),
            kPermanent);
  EXPECT_EQ(classify_store_error("ERR"), kPermanent);
}

TEST(Outcome, R3_NoscriptIsNotATransientOutcome) {
  EXPECT_EQ(classify_store_error("NOSCRIPT No matching script. Please use EVAL."), kPermanent);
}

TEST(Outcome, R3_StoreErrorIsClassifiedByItsWholeFirstWord) {
  // BUSYGROUP shares a prefix with BUSY but says a consumer group exists:
  // asking again cannot change that.
  EXPECT_EQ(classify_store_error("BUSYGROUP Consumer Group name already exists"), kPermanent);
  EXPECT_EQ(classify_store_error("LOADINGX"), kPermanent);
  EXPECT_EQ(classify_store_error("busy lower case is not a Redis error kind"), kPermanent);
  EXPECT_EQ(classify_store_error(" BUSY leading space"), kPermanent);
  EXPECT_EQ(classify_store_error("ERR BUSY in the prose"), kPermanent);
  EXPECT_EQ(classify_store_error(""), kPermanent);
}

}  // namespace
}  // namespace turnstile::core
