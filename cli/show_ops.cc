#include "cli/show_ops.h"

namespace turnstile::cli::show_detail {

Tone outcome_tone(core::Outcome outcome) {
  switch (outcome) {
    case core::Outcome::admitted:
    case core::Outcome::resumed:
    case core::Outcome::switched:
    case core::Outcome::rotated:
    case core::Outcome::alive:
    case core::Outcome::released:
      return Tone::good;
    case core::Outcome::superseded:
    case core::Outcome::blocked_capacity:
      return Tone::warn;
    case core::Outcome::gone:
      return Tone::neutral;
  }
  return Tone::neutral;
}

}  // namespace turnstile::cli::show_detail
