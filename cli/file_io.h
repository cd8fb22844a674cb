#pragma once

// Whole files in and out for the commands, with the one-line errors they
// print (a path, then what went wrong).

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace turnstile::cli {

// A whole file, or why it could not be read.
struct FileText {
  std::optional<std::string> text;
  std::string error;
};

// Reads `path` whole; a file over `max_bytes` is refused rather than read.
FileText read_file(const std::string& path, std::size_t max_bytes);

// Writes `text` to `path`, replacing it. An error line, or empty.
std::string write_file(const std::filesystem::path& path, const std::string& text);

// The same, creating `path`'s directory first (traces-out/, prop-traces/ ...).
std::string write_file_creating_directory(const std::filesystem::path& path, const std::string& text);

}  // namespace turnstile::cli
