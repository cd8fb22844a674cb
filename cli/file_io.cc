#include "cli/file_io.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace turnstile::cli {

FileText read_file(const std::string& path, std::size_t max_bytes) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return {std::nullopt, fmt::format("{}: cannot open: {}", path, std::strerror(errno))};
  std::string text;
  std::array<char, 1 << 16> buffer{};
  while (file) {
    file.read(buffer.data(), buffer.size());
    text.append(buffer.data(), static_cast<std::size_t>(file.gcount()));
    if (text.size() > max_bytes) return {std::nullopt, fmt::format("{}: larger than {} bytes", path, max_bytes)};
  }
  if (file.bad()) return {std::nullopt, fmt::format("{}: cannot read", path)};
  return {std::move(text), {}};
}

std::string write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno));
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  file.close();
  if (!file) return fmt::format("{}: cannot write", path.string());
  return {};
}

std::string write_file_creating_directory(const std::filesystem::path& path, const std::string& text) {
  std::error_code code;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), code);
  if (code) return fmt::format("{}: cannot create directory: {}", path.parent_path().string(), code.message());
  return write_file(path, text);
}

}  // namespace turnstile::cli
