#include "cli/gate_command.h"

#include <istream>
#include <ostream>

#include <fmt/format.h>

namespace turnstile::cli {
namespace {

// Lines longer than this are refused before parsing: no op needs a tenth of it.
constexpr std::size_t kMaxLineBytes = 64 * 1024;
// Decisions are written out in chunks of about this size.
constexpr std::size_t kFlushBytes = 64 * 1024;

}  // namespace

GateBook::Pool* GateBook::pool_for(const std::string& name) {
  auto it = pools_.find(name);
  if (it != pools_.end()) return &it->second;
  if (pools_.size() >= kMaxPools) return nullptr;
  return &pools_.emplace(name, Pool{}).first->second;
}

LineResult GateBook::apply(const GateLine& line) {
  const std::string& name =
      std::holds_alternative<GateOpLine>(line) ? std::get<GateOpLine>(line).pool : std::get<GateConfigLine>(line).pool;
  Pool* pool = pool_for(name);
  if (pool == nullptr) {
    return LineError{fmt::format("field 'pool': expected at most {} distinct pools in one run", kMaxPools)};
  }
  if (const auto* config_line = std::get_if<GateConfigLine>(&line)) {
    pool->config = config_line->config;
    return std::monostate{};
  }
  return core::apply(pool->state, std::get<GateOpLine>(line).op, pool->config);
}

int run_gate(std::istream& in, std::ostream& out, std::ostream& err) {
  GateBook book;
  return run_gate_lines(in, out, err, [&book](const GateLine& line) { return book.apply(line); });
}

int run_gate_lines(std::istream& in, std::ostream& out, std::ostream& err,
                   const std::function<LineResult(const GateLine&)>& apply) {
  std::string line;
  std::string buffer;
  buffer.reserve(kFlushBytes + 256);
  std::size_t line_number = 0;

  auto fail = [&](std::string_view message) {
    out << buffer;
    out.flush();
    err << fmt::format("line {}: {}\n", line_number, message);
    return 2;
  };

  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > kMaxLineBytes) return fail(fmt::format("longer than {} bytes", kMaxLineBytes));
    if (line.find_first_not_of(" \t") == std::string::npos) return fail("empty line, expected a JSON object");

    auto parsed = parse_gate_line(line);
    if (auto* error = std::get_if<LineError>(&parsed)) return fail(error->message);
    const LineResult applied = apply(std::get<GateLine>(parsed));
    if (const auto* error = std::get_if<LineError>(&applied)) return fail(error->message);
    if (const auto* decision = std::get_if<core::Decision>(&applied)) {
      append_decision(buffer, *decision);
    } else {
      buffer += kConfiguredLine;
    }
    buffer += '\n';
    if (buffer.size() >= kFlushBytes) {
      out << buffer;
      buffer.clear();
    }
  }
  out << buffer;
  out.flush();
  if (in.bad()) {
    err << fmt::format("line {}: read error\n", line_number + 1);
    return 2;
  }
  return 0;
}

}  // namespace turnstile::cli
