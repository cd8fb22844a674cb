// DESIGN.md: Boost.Fiber's own sleeps and timed waits read steady_clock, so
// simulated code never calls them; sim::sleep_until parks on the virtual
// clock instead. This test reads every file under sim/ and fails if one
// sleeps or waits with a timeout the Boost (or std) way, or names a real
// clock. It is a text scan, so it also catches code that is not compiled.
//
// One exemption: FiberAlgorithm must override Boost's
// suspend_until(steady_clock::time_point const&), a signature it cannot
// change. A line marked "sim-purity: signature only, never read" may name
// steady_clock, but never call now() on it.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/source_scan.h"

namespace {

namespace fs = std::filesystem;

constexpr const char* kSignatureOnly = "sim-purity: signature only, never read";

std::vector<turnstile::testing::BannedPattern> banned_patterns() {
  return {
      {"a Boost.Fiber sleep", R"(this_fiber\s*::\s*sleep_(for|until)|\bsleep_for\s*\()"},
      {"a thread sleep", R"(this_thread\s*::\s*sleep_(for|until)|\busleep\s*\(|\bnanosleep\s*\()"},
      {"a timed wait", R"(wait_(for|until)\s*\()"},
      {"a timed lock", R"(try_lock_(for|until)\s*\()"},
      {"a real clock", R"(steady_clock|system_clock|high_resolution_clock)", kSignatureOnly},
      {"reading a clock", R"(_clock\s*::\s*now\s*\()"},
  };
}

std::vector<std::string> violations_in(const fs::path& root) {
  return turnstile::testing::scan_sources(root, banned_patterns());
}

TEST(SimPurity, SimNeverSleepsWaitsWithATimeoutOrReadsARealClock) {
  const fs::path sim = fs::path(TURNSTILE_SOURCE_DIR) / "sim";
  ASSERT_TRUE(fs::is_directory(sim));
  ASSERT_TRUE(fs::exists(sim / "runtime.cc"));
  const auto found = violations_in(sim);
  std::ostringstream report;
  for (const auto& line : found) report << line << "\n";
  EXPECT_TRUE(found.empty()) << report.str();
}

// The scan must be able to fail: a planted file with one offence per line is
// caught on each of them, and the exemption covers only what it says.
TEST(SimPurity, ScanCatchesEachBannedKind) {
  const fs::path dir = fs::temp_directory_path() / ("turnstile_sim_purity_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::create_directories(dir);
  {
    std::ofstream bad(dir / "bad.cc");
    bad << "boost::this_fiber::sleep_for(std::chrono::milliseconds(5));\n"
           "boost::this_fiber::sleep_until(deadline);\n"
           "sleep_for(d);\n"
           "std::this_thread::sleep_until(t);\n"
           "cv.wait_for(lock, d);\n"
           "future.wait_until(t);\n"
           "channel.pop_wait_for(value, d);\n"
           "mutex.try_lock_for(d);\n"
           "mutex.try_lock_until(t);\n"
           "using Clock = std::chrono::system_clock;\n"
           "void f(std::chrono::steady_clock::time_point t);\n"
           "auto t = std::chrono::steady_clock::now();  // sim-purity: signature only, never read\n"
           "// boost::this_fiber::sleep_for in a comment is fine\n"
           "void g(std::chrono::steady_clock::time_point const&);  // sim-purity: signature only, never read\n"
           "sim::sleep_until(t);\n";
  }
  const auto found = violations_in(dir);
  fs::remove_all(dir);
  std::ostringstream report;
  for (const auto& line : found) report << line << "\n";
  // Lines 1-11 once each; line 12 once (reading a clock: the marker lifts
  // only the naming rule); the comment, the marked signature and our own
  // sim::sleep_until not at all.
  EXPECT_EQ(found.size(), 12u) << report.str();
}

}  // namespace
