// libFuzzer harness for the SPEC D op reader: any bytes, as one op file, must
// either be applied line by line or stop at one line with exit code 2 and a
// single "line N: ..." message; never a crash, hang or sanitizer report.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "cli/gate_command.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::ostringstream out;
  std::ostringstream err;
  const int code = turnstile::cli::run_gate(in, out, err);
  const std::string message = err.str();
  if (code == 0 && !message.empty()) __builtin_trap();
  if (code == 2 && (message.rfind("line ", 0) != 0 || message.find('\n') != message.size() - 1)) __builtin_trap();
  if (code != 0 && code != 2) __builtin_trap();
  return 0;
}
