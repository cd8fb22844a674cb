#pragma once

#include <string>
#include <string_view>

namespace turnstile::adapters {

// SHA-1 of `data` as 40 lowercase hex digits: the name EVALSHA knows a
// script by. Only script names are computed with it, never anything that
// needs collision resistance.
std::string sha1_hex(std::string_view data);

}  // namespace turnstile::adapters
