// `turnstile show`'s page in a real browser (Debian's chromium, headless):
// it loads with no console message and no script error, its DOM holds the
// lanes and the highlighted rule, the first screen shows them, and a
// screenshot is taken. A 100,000-step trace renders to a page under 10 MB
// that loads too. chromium missing is a failure, not a skip: scripts/setup.sh
// installs it.

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <fmt/format.h>

#include "tests/test_files.h"
#include "cli/sim_commands.h"
#include "sim/checkers.h"
#include "sim/trace.h"
#include "sim/world.h"

namespace turnstile::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kWidth = 1400;
constexpr int kHeight = 900;

using Result = turnstile::testing::CommandResult;
using turnstile::testing::slurp;

std::optional<fs::path> find_chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  std::istringstream in(dirs);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    for (const char* name : {"chromium", "chromium-browser"}) {
      const fs::path candidate = fs::path(dir) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return std::nullopt;
}

// The console lines chromium logs for the page: any at all fails the test,
// since the page itself logs nothing.
std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos) {
      lines.push_back(line);
    }
  }
  return lines;
}

std::uint32_t big_endian32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

class ShowBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("turnstile_show_browser_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    chromium_ = find_chromium();
    ASSERT_TRUE(chromium_.has_value())
        << "chromium is not installed: the browser test needs Debian's chromium (apt-get install chromium; "
           "scripts/setup.sh installs it)";
  }
  // The profile directory is inside dir_, so this removes it too.
  void TearDown() override { fs::remove_all(dir_); }

  Result shell(const std::string& command) {
    const fs::path out = dir_ / "stdout";
    const fs::path err = dir_ / "stderr";
    const std::string full = "cd '" + dir_.string() + "' && " + command + " > '" + out.string() + "' 2> '" +
                             err.string() + "' < /dev/null";
    const int status = std::system(full.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = slurp(out);
    result.err = slurp(err);
    return result;
  }

  Result turnstile(const std::string& args) { return shell(std::string(TURNSTILE_BINARY) + " " + args); }

  // chromium headless on a file, with a private profile, no network (every
  // host name fails to resolve) and the page's console on stderr.
  Result chromium(const fs::path& page, const std::string& action) {
    const std::string command = fmt::format(
        "timeout 90 '{}' --headless --disable-gpu --no-sandbox --no-first-run --no-default-browser-check "
        "--disable-background-networking --disable-component-update --disable-sync --disable-extensions "
        "--host-resolver-rules='MAP * ~NOTFOUND' --user-data-dir='{}' --enable-logging=stderr --v=0 "
        "--window-size={},{} {} 'file://{}'",
        chromium_->string(), (dir_ / "profile").string(), kWidth, kHeight, action, page.string());
    return shell(command);
  }

  // Loads the page, checks what every page must satisfy, and returns its DOM.
  std::string load(const fs::path& page) {
    const Result dump = chromium(page, "--dump-dom");
    EXPECT_EQ(dump.exit_code, 0) << dump.err;
    EXPECT_EQ(console_lines(dump.err), std::vector<std::string>{}) << "the page logged to the console";
    EXPECT_EQ(dump.out.find(R"(id="script-error")"), std::string::npos) << "a script error";
    // The page's script ran to its end.
    EXPECT_NE(dump.out.find(R"(data-ready="1")"), std::string::npos);
    return dump.out;
  }

  fs::path dir_;
  std::optional<fs::path> chromium_;
};

TEST_F(ShowBrowser, P1_LegacyRacePageLoadsShowsLanesAndTheHighlightedRule) {
  const Result run = turnstile("run --seed 0 --gate legacy --trace-out legacy.trace.jsonl");
  ASSERT_EQ(run.exit_code, 1) << run.out << run.err;
  const Result show = turnstile("show legacy.trace.jsonl -o legacy.html");
  ASSERT_EQ(show.exit_code, 0) << show.err;

  const std::string dom = load(dir_ / "legacy.html");
  for (const std::string lane : {"c0", "c1", "c2", "store", "broker"}) {
    EXPECT_NE(dom.find(fmt::format(R"(data-lane="{}")", lane)), std::string::npos) << lane;
  }
  EXPECT_NE(dom.find(R"(id="violation")"), std::string::npos);
  EXPECT_NE(dom.find("<b>P1 violated</b>"), std::string::npos);
  EXPECT_NE(dom.find(std::string(sim::rule_text("P1"))), std::string::npos);
  EXPECT_NE(dom.find("G14: Invariant after every operation"), std::string::npos);
  // The first screen, the one the screenshot takes, shows every lane and the violation.
  EXPECT_NE(dom.find(R"(data-lanes-in-view="5")"), std::string::npos);
  EXPECT_NE(dom.find(R"(data-violation-in-view="1")"), std::string::npos);
  // The details panel starts on the violating event.
  EXPECT_NE(dom.find(R"(<pre id="detail-text">gate (legacy write) on pool p: admit of client c0)"), std::string::npos);

  const fs::path png = dir_ / "legacy.png";
  const Result shot = chromium(dir_ / "legacy.html", "--screenshot='" + png.string() + "'");
  EXPECT_EQ(shot.exit_code, 0) << shot.err;
  EXPECT_EQ(console_lines(shot.err), std::vector<std::string>{});
  ASSERT_TRUE(fs::exists(png));
  const std::string bytes = slurp(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  EXPECT_EQ(big_endian32(bytes, 16), static_cast<std::uint32_t>(kWidth));
  EXPECT_EQ(big_endian32(bytes, 20), static_cast<std::uint32_t>(kHeight));
  // A blank page of this size compresses to a few kilobytes; this one has
  // text, lanes, bars and a chart.
  EXPECT_GT(bytes.size(), 40'000u);
  // Kept next to the test (build/tests/ under ctest) for a person or a CI
  // artifact to look at; the temporary directory goes away.
  std::error_code ignored;
  fs::copy_file(png, fs::current_path() / "show_browser_legacy.png", fs::copy_options::overwrite_existing, ignored);
}

// A trace of 100,000 scheduler steps: requests of eight clients, one every
// eight steps, each a request, a store call, its gate step, its end and the
// answer; every fifth with a fault; the last admit over capacity (P1).
std::string hundred_thousand_step_trace() {
  constexpr std::uint64_t kSteps = 100'000;
  sim::TraceHeader header;
  header.version = std::string(kTurnstileVersion);
  header.scenario = sim::default_scenario();
  header.seed = 42;
  header.strategy = "random";
  header.gate = sim::GateMode::legacy;
  sim::RunReport report;
  report.history = sim::History(header.scenario.max_events);
  const std::uint64_t requests = kSteps / 8;
  for (std::uint64_t r = 0; r < requests; ++r) {
    const std::uint64_t step = r * 8;
    const auto at = static_cast<core::Ms>(r * 5);
    const std::string client = fmt::format("c{}", r % 8);
    core::StreamRequest request{"p", client, "tt1:1:1", fmt::format("{}.r{}", client, r), at};
    core::Op op;
    op.client = client;
    op.episode = request.episode;
    op.request = request.request;
    op.issued_at = at;
    op.now = at;
    const bool last = r + 1 == requests;
    sim::GateStep gate;
    gate.pool = "p";
    gate.op = op;
    gate.config.capacity = 2;
    gate.decision = core::Decision{core::Outcome::admitted, r + 1, "", last ? 3 : 1};
    gate.legacy = true;
    auto& history = report.history;
    EXPECT_TRUE(history.append(step, at, sim::RequestSent{0, r + 1, request}));
    EXPECT_TRUE(history.append(step + 2, at, sim::CallStarted{0, r + 1, sim::Dependency::store, 1, 1, op, at + 300}));
    if (r % 5 == 2) {
      EXPECT_TRUE(history.append(step + 3, at, sim::FaultFired{"store.busy", "BUSY"}));
    }
    EXPECT_TRUE(history.append(step + 4, at, gate));
    if (last) {
      report.violation = sim::Violation{"P1", history.size() - 1, step + 4, at, "3 slots held, expected at most 2"};
    }
    EXPECT_TRUE(history.append(step + 6, at + 1,
                               sim::CallEnded{0, r + 1, sim::Dependency::store, 1, core::OutcomeClass::success,
                                              std::nullopt, false}));
    EXPECT_TRUE(history.append(step + 7, at + 2,
                               sim::ResponseReceived{0, r + 1, core::Response::denial(core::DenialReason::capacity),
                                                     core::kNoToken}));
  }
  for (std::uint64_t s = 0; s < kSteps; ++s) {
    report.runtime.schedule.push_back(
        sim::StepRecord{s, static_cast<sim::SimFiberId>(1 + s % 9), static_cast<core::Ms>(s / 8 * 5), {0, 1}, s});
  }
  report.runtime.steps = kSteps;
  report.runtime.outcome = sim::Outcome::stopped;
  report.fingerprint = 0x1234;
  return sim::write_trace(header, report);
}

TEST_F(ShowBrowser, P1_HundredThousandStepTraceRendersUnderTenMegabytesAndLoads) {
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); };
  auto start = Clock::now();
  {
    std::ofstream file(dir_ / "big.trace.jsonl", std::ios::binary);
    file << hundred_thousand_step_trace();
  }
  const double write_s = seconds(start);
  start = Clock::now();
  const Result show = turnstile("show big.trace.jsonl -o big.html");
  const double show_s = seconds(start);
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("P1 highlighted"), std::string::npos) << show.out;
  const std::uintmax_t size = fs::file_size(dir_ / "big.html");
  EXPECT_LT(size, 10u * 1000 * 1000);

  start = Clock::now();
  const std::string dom = load(dir_ / "big.html");
  std::cout << fmt::format("trace {} bytes written in {:.1f} s; show {:.1f} s; html {} bytes; chromium {:.1f} s\n",
                           fs::file_size(dir_ / "big.trace.jsonl"), write_s, show_s, size, seconds(start));
  EXPECT_NE(dom.find("100000 steps"), std::string::npos);
  EXPECT_NE(dom.find(R"(id="summary-note")"), std::string::npos);
  EXPECT_NE(dom.find("<b>P1 violated</b>"), std::string::npos);
  EXPECT_NE(dom.find(R"(data-violation-in-view="1")"), std::string::npos);
  for (const std::string lane : {"c0", "c7", "store", "broker"}) {
    EXPECT_NE(dom.find(fmt::format(R"(data-lane="{}")", lane)), std::string::npos) << lane;
  }
}

}  // namespace
}  // namespace turnstile::cli
