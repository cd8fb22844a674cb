// The `turnstile` command (DESIGN.md, "The command line").

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/gate_command.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);

  CLI::App app{"turnstile: deterministic simulation and model checking of a stream endpoint's reliability controls"};
  app.require_subcommand(1);

  std::string ops_path;
  auto* gate = app.add_subcommand("gate", "Apply gate operations (JSON Lines, SPEC D) and print one decision per line");
  gate->add_option("file", ops_path, "Op file to read; standard input when omitted or '-'");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // CLI11 exits 0 for --help and 106+ for usage errors; DESIGN.md wants 2.
    const int code = app.exit(error);
    return code == 0 ? 0 : 2;
  }

  if (gate->parsed()) {
    if (ops_path.empty() || ops_path == "-") return turnstile::cli::run_gate(std::cin, std::cout, std::cerr);
    std::ifstream file(ops_path, std::ios::binary);
    if (!file) {
      std::cerr << ops_path << ": cannot open: " << std::strerror(errno) << "\n";
      return 2;
    }
    return turnstile::cli::run_gate(file, std::cout, std::cerr);
  }
  return 2;
}
