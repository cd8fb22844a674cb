// SPEC D: `turnstile gate` prints exactly what the core decides. Generated op
// files go through the whole reader and writer (run_gate) and, line by line,
// straight to core::apply; the two outputs must be identical bytes. A file
// with one malformed line must print exactly the decisions before it.

#include <algorithm>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "cli/gate_command.h"
#include "core/gate.h"

namespace turnstile::cli {
namespace {

struct GeneratedLine {
  std::string json;
  std::string pool;
  bool is_config = false;
  core::Op op;
  core::GateConfig config;
};

rc::Gen<GeneratedLine> gen_line() {
  return rc::gen::exec([] {
    GeneratedLine line;
    line.pool = *rc::gen::element<std::string>("p", "q");
    const auto client = *rc::gen::element<std::string>("c1", "c2", "c3", "c.4", "c_5");
    const auto now = *rc::gen::inRange<core::Ms>(0, 200);
    switch (*rc::gen::inRange(0, 5)) {
      case 0:
        line.is_config = true;
        line.config = {*rc::gen::inRange<std::int64_t>(1, 4), *rc::gen::inRange<core::Ms>(1, 60),
                       *rc::gen::inRange<core::Ms>(0, 60)};
        line.json = fmt::format(R"({{"op":"config","pool":"{}","capacity":{},"ttl":{},"grace":{}}})", line.pool,
                                line.config.capacity, line.config.ttl_ms, line.config.grace_ms);
        break;
      case 1:
      case 2: {
        line.op.kind = core::OpKind::admit;
        line.op.client = client;
        line.op.episode = *rc::gen::element<std::string>("tt1:1:1", "tt1:1:2", "tt2");
        line.op.request = fmt::format("r{}", *rc::gen::inRange(0, 6));
        line.op.issued_at = *rc::gen::inRange<core::Ms>(0, 200);
        line.op.now = now;
        // Keys in a generated order: D allows any.
        std::vector<std::string> fields = {
            R"("op":"admit")",
            fmt::format(R"("pool":"{}")", line.pool),
            fmt::format(R"("client":"{}")", client),
            fmt::format(R"("episode":"{}")", line.op.episode),
            fmt::format(R"("request":"{}")", line.op.request),
            fmt::format(R"("issued_at":{})", line.op.issued_at),
            fmt::format(R"("now":{})", now)};
        const auto keys = *rc::gen::container<std::vector<int>>(fields.size(), rc::gen::arbitrary<int>());
        std::vector<std::size_t> order(fields.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return keys[a] < keys[b]; });
        std::vector<std::string> shuffled;
        for (auto i : order) shuffled.push_back(fields[i]);
        fields = shuffled;
        line.json = "{" + fmt::format("{}", fmt::join(fields, ",")) + "}";
        break;
      }
      default: {
        const bool heartbeat = *rc::gen::arbitrary<bool>();
        line.op.kind = heartbeat ? core::OpKind::heartbeat : core::OpKind::release;
        line.op.client = client;
        line.op.token = *rc::gen::inRange<core::Token>(0, 12);
        line.op.now = now;
        line.json = fmt::format(R"({{"op":"{}","pool":"{}","client":"{}","token":"{}","now":{}}})",
                                heartbeat ? "heartbeat" : "release", line.pool, client, line.op.token, now);
        break;
      }
    }
    return line;
  });
}

// What the core decides, formatted with the writer alone.
std::string expected_output(const std::vector<GeneratedLine>& lines, std::size_t count) {
  std::map<std::string, std::pair<core::PoolState, core::GateConfig>> pools;
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    auto& [state, config] = pools[lines[i].pool];
    if (lines[i].is_config) {
      config = lines[i].config;
      out += kConfiguredLine;
    } else {
      out += format_decision(core::apply(state, lines[i].op, config));
    }
    out += '\n';
  }
  return out;
}

struct GateRun {
  int code;
  std::string out;
  std::string err;
};

GateRun run_gate_text(const std::string& input) {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  const int code = run_gate(in, out, err);
  return {code, out.str(), err.str()};
}

using Runner = std::function<GateRun(const std::string&)>;

void output_is_exactly_the_cores_decisions(const Runner& runner) {
  const auto lines = *rc::gen::container<std::vector<GeneratedLine>>(gen_line());
  std::string input;
  for (const auto& line : lines) input += line.json + "\n";
  const auto result = runner(input);
  RC_ASSERT(result.code == 0);
  RC_ASSERT(result.err.empty());
  RC_ASSERT(result.out == expected_output(lines, lines.size()));
}

void malformed_line_stops_after_earlier_decisions(const Runner& runner) {
  const auto lines = *rc::gen::container<std::vector<GeneratedLine>>(gen_line());
  const auto bad_at = *rc::gen::inRange<std::size_t>(0, lines.size() + 1);
  const auto bad = *rc::gen::element<std::string>(
      "{", "[]", "", "{\"op\":\"admit\"}", "{\"op\":\"release\",\"pool\":\"p\",\"client\":\"c 1\",\"token\":\"1\",\"now\":1}",
      "{\"op\":\"heartbeat\",\"pool\":\"p\",\"client\":\"c\",\"token\":\"1\",\"now\":-5}", "null", "{\"op\":7}");
  std::string input;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i == bad_at) input += bad + "\n";
    input += lines[i].json + "\n";
  }
  if (bad_at == lines.size()) input += bad + "\n";
  const auto result = runner(input);
  RC_ASSERT(result.code == 2);
  RC_ASSERT(result.out == expected_output(lines, bad_at));
  RC_ASSERT(result.err.rfind(fmt::format("line {}: ", bad_at + 1), 0) == 0);
  RC_ASSERT(std::count(result.err.begin(), result.err.end(), '\n') == 1);
}

RC_GTEST_PROP(GateCliProps, D_OutputIsExactlyTheCoresDecisions, ()) { output_is_exactly_the_cores_decisions(run_gate_text); }

RC_GTEST_PROP(GateCliProps, V4_MalformedLineStopsAfterEarlierDecisions, ()) {
  malformed_line_stops_after_earlier_decisions(run_gate_text);
}

// The properties can fail: a runner that treats every pool as one is caught
// by the first, and one that loses the decisions before a bad line by the second.
TEST(GateCliProps, CatchesARunnerThatMixesPools) {
  const Runner one_pool = [](const std::string& input) {
    std::string merged = input;
    for (std::size_t at = merged.find("\"pool\":\"q\""); at != std::string::npos; at = merged.find("\"pool\":\"q\"")) {
      merged.replace(at, 10, "\"pool\":\"p\"");
    }
    return run_gate_text(merged);
  };
  EXPECT_FALSE(rc::check("one pool", [&] { output_is_exactly_the_cores_decisions(one_pool); }));
}

TEST(GateCliProps, CatchesARunnerThatLosesEarlierDecisions) {
  const Runner all_or_nothing = [](const std::string& input) {
    GateRun result = run_gate_text(input);
    if (result.code != 0) result.out.clear();
    return result;
  };
  EXPECT_FALSE(rc::check("all or nothing", [&] { malformed_line_stops_after_earlier_decisions(all_or_nothing); }));
}

}  // namespace
}  // namespace turnstile::cli
