#pragma once

// A text scan of source files for banned constructs, shared by the purity
// tests of core/ and sim/ (DESIGN.md). A text scan also catches code that is
// not compiled. Comment lines (starting with //) are skipped.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace turnstile::testing {

struct BannedPattern {
  BannedPattern(std::string what_, const char* pattern_, std::string exempt_marker_ = {})
      : what(std::move(what_)), pattern(pattern_), exempt_marker(std::move(exempt_marker_)) {}

  std::string what;
  std::regex pattern;
  // A line holding this marker may match the pattern (empty: no exemption).
  std::string exempt_marker;
};

// Every match in the .h and .cc files under `root`, in file order then line
// order, as "file:line: what: text".
inline std::vector<std::string> scan_sources(const std::filesystem::path& root,
                                             const std::vector<BannedPattern>& banned) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    const auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".h" || ext == ".cc")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> found;
  for (const auto& path : files) {
    std::ifstream file(path);
    std::string line;
    int number = 0;
    while (std::getline(file, line)) {
      ++number;
      const auto first = line.find_first_not_of(" \t");
      if (first != std::string::npos && line.compare(first, 2, "//") == 0) continue;
      for (const auto& rule : banned) {
        if (!rule.exempt_marker.empty() && line.find(rule.exempt_marker) != std::string::npos) continue;
        if (std::regex_search(line, rule.pattern)) {
          found.push_back(path.filename().string() + ":" + std::to_string(number) + ": " + rule.what + ": " + line);
        }
      }
    }
  }
  return found;
}

}  // namespace turnstile::testing
