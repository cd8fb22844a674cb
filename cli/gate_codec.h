#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "core/gate.h"

namespace turnstile::cli {

// SPEC D: one line of a gate op file, parsed and validated (V). Nothing in it
// is applied yet; a line is either wholly valid or an error.
struct GateOpLine {
  std::string pool;
  core::Op op;
};
struct GateConfigLine {
  std::string pool;
  core::GateConfig config;
};
using GateLine = std::variant<GateOpLine, GateConfigLine>;

// Why a line was rejected, without the "line N: " prefix, e.g.
// "field 'client': expected 1-64 bytes of [A-Za-z0-9._-]".
struct LineError {
  std::string message;
};

std::variant<GateLine, LineError> parse_gate_line(std::string_view line);

// SPEC D output, byte for byte:
// {"outcome":"admitted","token":"1","victim":null,"held":1}
std::string format_decision(const core::Decision& decision);
void append_decision(std::string& out, const core::Decision& decision);

// The output for a config line.
inline constexpr std::string_view kConfiguredLine = R"({"outcome":"configured"})";

}  // namespace turnstile::cli
