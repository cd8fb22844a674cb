#pragma once

// SPEC H: a concurrent history of gate operations as JSON Lines, one
// completed or pending operation a line:
//
//   {"process":"w3","call":1200,"ret":1450,"op":{…a D input…},"out":{…a D output…}}
//   {"process":"w5","call":1300,"ret":null,"op":{…},"out":null}
//
// The simulator and the real-Redis stress test write it (append_history_line),
// `turnstile lincheck` reads it (read_history). The reader is strict: a line
// is wholly valid or the file is refused with one message
// "<source>:<line>: field 'x': expected …", naming nested fields by their
// path ("op.client", "out.held").
//
// Config ops. A D `config` op may appear in a history; it is an operation of
// the model like any other: it sets the pool's config from the point where it
// takes effect, within its call/ret interval like every other op. Its `out`
// is {"outcome":"configured"} (or null when pending). Before any config op
// takes effect a pool has D's default config (capacity 4, ttl 30000, grace
// 15000). A recorder that sets the config once before the run writes the
// config op first, with a ret earlier than every other op's call.
//
// This reader carries its own parser for the D objects rather than calling
// cli/gate_codec: sim/ must not depend on cli/ (DESIGN.md, "Layout"). A test
// (tests/lincheck_test.cc) holds the two to the same verdict on every op.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/gate.h"

namespace turnstile::sim {

// The most operations one history may hold; a longer file is refused.
inline constexpr std::size_t kMaxHistoryOps = 4'000'000;
// Lines longer than this are refused before parsing: no operation needs a tenth of it.
inline constexpr std::size_t kMaxHistoryLineBytes = 64 * 1024;

// One line of a history.
struct HistoryOp {
  std::size_t line = 0;             // 1-based line number in the file it came from (0: not from a file)
  std::string process;              // 1-64 bytes of [A-Za-z0-9._-]
  std::int64_t call = 0;            // >= 0
  std::optional<std::int64_t> ret;  // >= call; nullopt: pending (outcome unknown)
  std::string pool;
  // The operation: a gate op (admit, heartbeat, release) or a config op.
  std::variant<core::Op, core::GateConfig> op;
  // The gate's answer for a completed gate op. Always nullopt for a pending op
  // and for a config op (whose only answer is "configured").
  std::optional<core::Decision> out;

  bool pending() const { return !ret.has_value(); }
  bool is_config() const { return std::holds_alternative<core::GateConfig>(op); }
};

struct HistoryError {
  std::string message;  // "<source>:<line>: field 'x': expected …", one line, no newline
};

// Parses one line (without its newline). `source` and `line` only go into the
// error message and HistoryOp::line.
std::variant<HistoryOp, HistoryError> parse_history_line(std::string_view text, std::string_view source,
                                                         std::size_t line);

// Parses a whole file. A final line without a newline counts; a "\r" before a
// newline is dropped; an empty line is an error like any malformed line.
std::variant<std::vector<HistoryOp>, HistoryError> read_history(std::string_view text, std::string_view source);

// Writes one line (with its newline), keys in SPEC H's order, the op and out
// objects exactly as SPEC D prints them.
void append_history_line(std::string& out, const HistoryOp& op);
std::string format_history_line(const HistoryOp& op);

// The D input object of an op, e.g. {"op":"admit","pool":"p",...}.
void append_d_op(std::string& out, std::string_view pool, const std::variant<core::Op, core::GateConfig>& op);
// The D output object of a decision: {"outcome":"admitted","token":"1","victim":null,"held":1}.
void append_d_decision(std::string& out, const core::Decision& decision);

}  // namespace turnstile::sim
