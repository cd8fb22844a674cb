#include "core/outcome.h"

namespace turnstile::core {

std::string_view outcome_class_name(OutcomeClass outcome_class) {
  switch (outcome_class) {
    case OutcomeClass::success:
      return "success";
    case OutcomeClass::transient:
      return "transient";
    case OutcomeClass::permanent:
      return "permanent";
  }
  return "permanent";
}

OutcomeClass classify_http_status(int status) {
  if (status >= 200 && status <= 299) return OutcomeClass::success;
  if (status == 408 || status == 429) return OutcomeClass::transient;
  // 501 (not implemented) and 505 (version not supported) will answer the
  // same way however often they are asked, so retrying them only burns budget.
  if (status >= 500 && status <= 599 && status != 501 && status != 505) return OutcomeClass::transient;
  return OutcomeClass::permanent;
}

OutcomeClass classify_store_error(std::string_view error_reply) {
  // Redis names the kind of an error by the reply's first word; the rest is
  // prose that may change between versions. Matching the whole word keeps
  // BUSYGROUP (a consumer group already exists) apart from BUSY.
  const std::string_view first_word = error_reply.substr(0, error_reply.find(' '));
  if (first_word == "BUSY" || first_word == "LOADING" || first_word == "TRYAGAIN") {
    return OutcomeClass::transient;
  }
  return OutcomeClass::permanent;
}

}  // namespace turnstile::core
