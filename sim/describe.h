#pragma once

// The words messages use for the things they name, shared by the checkers,
// the model checker, the readers and the command line, so that every
// message says the same thing the same way.

#include <string>
#include <string_view>

#include "core/gate.h"

namespace turnstile::sim {

// "admit of client c1 (episode e, request r1, issued_at 5)", "heartbeat of client c1 with token 3", ...
std::string describe_op(const core::Op& op);

// "admitted token 1", "rotated token 3 victim c2", "blocked_capacity".
std::string describe_decision(const core::Decision& decision);

// "client c1 (token 1, last_seen 5, admitted_at 0)".
std::string describe_session(const core::Session& session);

// Text from the input, as an error message may quote it: control bytes
// escaped as JSON escapes them, so the message stays one line, and long text
// cut (at a UTF-8 character boundary) to 64 bytes with "..." after it.
std::string quote_input(std::string_view text);

}  // namespace turnstile::sim
