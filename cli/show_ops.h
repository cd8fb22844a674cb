#pragma once

// Internal to `turnstile show`, not public API (that is cli/show_command.h):
// what more than one of its models uses to draw an operation: the bar still
// awaiting its end and a decision's colour.

#include <cstddef>
#include <cstdint>
#include <string>

#include "cli/show_render.h"
#include "core/gate.h"

namespace turnstile::cli::show_detail {

// An operation whose start was seen and whose end is awaited.
struct Open {
  std::uint64_t from = 0;
  std::size_t lane = 0;
  std::string label;
  std::string detail;
};

// A decision's colour: granted, refused, or neither.
Tone outcome_tone(core::Outcome outcome);


}  // namespace turnstile::cli::show_detail
