// turnstiled: the stream route (SPEC F) over HTTP. docs/turnstiled.md says
// how to run it; `turnstiled --help` lists every flag and its variable.

#include <cstdio>
#include <string>

#include "adapters/server/config.h"
#include "adapters/server/server.h"

int main(int argc, char** argv) {
  turnstile::adapters::ParsedArgs parsed = turnstile::adapters::parse_server_args(argc, argv);
  if (!parsed.config) {
    std::FILE* out = parsed.exit_code == 0 ? stdout : stderr;
    std::fputs(parsed.message.c_str(), out);
    if (!parsed.message.ends_with('\n')) std::fputc('\n', out);
    return parsed.exit_code;
  }

  turnstile::adapters::Server server(*parsed.config);
  if (const std::string error = server.listen(); !error.empty()) {
    std::fprintf(stderr, "turnstiled: %s\n", error.c_str());
    return 1;
  }
  // The "listening" line on stdout names the bound address (port 0 picks one).
  return server.run(/*handle_signals=*/true);
}
