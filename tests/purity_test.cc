// DESIGN.md: core/ is pure. This test reads every file under core/ and fails
// if one includes a clock, thread, socket, file stream or <random>, or calls
// rand. It is a text scan, so it also catches code that is not compiled.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/source_scan.h"

namespace {

namespace fs = std::filesystem;

std::vector<turnstile::testing::BannedPattern> banned_patterns() {
  return {
      {"a clock", R"(#\s*include\s*<(chrono|ctime|time\.h|sys/time\.h)>|steady_clock|system_clock|high_resolution_clock|\btime\s*\(\s*(NULL|nullptr|0)\s*\))"},
      {"a thread", R"(#\s*include\s*<(thread|mutex|shared_mutex|condition_variable|future|atomic|pthread\.h|semaphore|latch|barrier)>|std::thread|std::jthread|std::async)"},
      {"a socket", R"(#\s*include\s*<(sys/socket\.h|netinet/[a-z_]+\.h|arpa/inet\.h|netdb\.h|unistd\.h|poll\.h|sys/epoll\.h)>|hiredis|curl|boost/asio|boost/beast)"},
      {"a file stream", R"(#\s*include\s*<(fstream|filesystem|iostream|fcntl\.h)>|\bfopen\s*\(|std::ifstream|std::ofstream)"},
      {"<random>", R"(#\s*include\s*<random>|random_device|mt19937|_distribution\b)"},
      {"rand", R"((^|[^A-Za-z0-9_])s?rand\s*\()"},
      {"a fiber", R"(boost/fiber|this_fiber)"},
  };
}

std::vector<std::string> violations_in(const fs::path& root) {
  return turnstile::testing::scan_sources(root, banned_patterns());
}

TEST(Purity, CoreHasNoClockThreadSocketFileRandomOrRand) {
  const fs::path core = fs::path(TURNSTILE_SOURCE_DIR) / "core";
  ASSERT_TRUE(fs::is_directory(core));
  const auto found = violations_in(core);
  std::ostringstream report;
  for (const auto& line : found) report << line << "\n";
  EXPECT_TRUE(found.empty()) << report.str();
}

// The scan must be able to fail: a directory with one offending file of each
// kind is caught on every line.
TEST(Purity, ScanCatchesEachBannedKind) {
  const fs::path dir = fs::temp_directory_path() / ("turnstile_purity_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::create_directories(dir);
  {
    std::ofstream bad(dir / "bad.cc");
    bad << "#include <chrono>\n"
           "#include <thread>\n"
           "#include <sys/socket.h>\n"
           "#include <fstream>\n"
           "#include <random>\n"
           "int x = rand();\n"
           "// #include <thread> in a comment is fine\n";
  }
  const auto found = violations_in(dir);
  fs::remove_all(dir);
  EXPECT_EQ(found.size(), 6u);
}

}  // namespace
