#pragma once

// Small file and output helpers shared by the tests that drive the
// `turnstile` binary or write and read its files.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace turnstile::testing {

// What a command run by a test printed, and how it exited.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

inline void spill(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

}  // namespace turnstile::testing
