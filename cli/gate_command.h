#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <variant>

#include "cli/gate_codec.h"
#include "core/gate.h"

namespace turnstile::cli {

// The pools an op file talks about, each with its state and config (SPEC D:
// the default config holds until a config line for that pool).
// What one line did: a config line answers nothing (monostate), an op line
// its decision; or the line failed.
using LineResult = std::variant<std::monostate, core::Decision, LineError>;

class GateBook {
 public:
  // Bounds the pool table: an op file naming more pools than this is refused.
  static constexpr std::size_t kMaxPools = 10000;

  // Applies one parsed line. A config line answers nothing (nullopt); an op
  // line answers its decision. Fails only when a new pool would exceed kMaxPools.
  LineResult apply(const GateLine& line);

 private:
  struct Pool {
    core::PoolState state;
    core::GateConfig config;
  };
  Pool* pool_for(const std::string& name);

  std::map<std::string, Pool, std::less<>> pools_;
};

// `turnstile gate`: reads op lines from `in`, writes one decision line per
// input line to `out`. On the first malformed line it writes every earlier
// decision, then one line "line N: ..." to `err`, and returns 2. Returns 0
// when every line was applied.
int run_gate(std::istream& in, std::ostream& out, std::ostream& err);

// The line loop of every `turnstile gate` runner: reads and parses each line
// of `in` (bounded length, no empty lines), hands it to `apply`, and writes
// its decision (or `configured`) to `out`, buffered. On the first malformed
// line or failed apply it writes every earlier decision, then one line
// "line N: ..." to `err`, and returns 2. Returns 0 when every line was applied.
int run_gate_lines(std::istream& in, std::ostream& out, std::ostream& err,
                   const std::function<LineResult(const GateLine&)>& apply);

}  // namespace turnstile::cli
