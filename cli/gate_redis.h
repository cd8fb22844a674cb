#pragma once

#include <iosfwd>
#include <string>

namespace turnstile::cli {

// `turnstile gate --redis URL`: run_gate (cli/gate_command.h) with gate.lua
// on a real server in place of the core. Reads SPEC D op lines from `in` and
// writes one decision line per input line to `out`, byte for byte as
// run_gate would for the same states. Each op is one store call through the
// retry machine with the store config (SPEC R), with the op's `now` as the
// store's clock. Config lines set the config sent with that pool's later ops;
// nothing of the config is stored in Redis.
//
// The ops apply to whatever the server already holds for those pools: point
// it at a scratch server, or use pool names of its own, to compare it with
// the core from empty pools.
//
// On a malformed line, a bad URL, or a store call that failed after its
// retry, it writes every earlier decision, then one line "line N: ..." (or
// "--redis: ...") to `err`, and returns 2. Returns 0 when every line was applied.
int run_gate_redis(std::istream& in, std::ostream& out, std::ostream& err, const std::string& url);

}  // namespace turnstile::cli
