// SPEC D: `turnstile gate`, in-process through run_gate() and end to end
// through the built binary.

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "cli/gate_command.h"

namespace turnstile::cli {
namespace {

struct GateRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

GateRun gate(const std::string& input) {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  GateRun run;
  run.exit_code = run_gate(in, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

TEST(GateCli, D_SpecExamplesByteExact) {
  const auto run = gate(
      R"({"op":"admit","pool":"p","client":"c1","episode":"tt1:1:1","request":"r1","issued_at":1000,"now":1000})"
      "\n"
      R"({"op":"heartbeat","pool":"p","client":"c1","token":"1","now":2000})"
      "\n"
      R"({"op":"release","pool":"p","client":"c1","token":"1","now":3000})"
      "\n"
      R"({"op":"config","pool":"p","capacity":2,"ttl":30000,"grace":15000})"
      "\n");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(run.out,
            "{\"outcome\":\"admitted\",\"token\":\"1\",\"victim\":null,\"held\":1}\n"
            "{\"outcome\":\"alive\",\"token\":null,\"victim\":null,\"held\":1}\n"
            "{\"outcome\":\"released\",\"token\":null,\"victim\":null,\"held\":0}\n"
            "{\"outcome\":\"configured\"}\n");
}

TEST(GateCli, D_KeysInAnyOrderOnInput) {
  const auto run = gate(R"({"now":5,"issued_at":5,"request":"r","episode":"e","client":"c","pool":"p","op":"admit"})"
                        "\n");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "{\"outcome\":\"admitted\",\"token\":\"1\",\"victim\":null,\"held\":1}\n");
}

TEST(GateCli, D_DefaultConfigHoldsUntilAConfigLine) {
  // Default capacity 4: the fifth client is blocked; after capacity 5, admitted.
  std::string input;
  for (int i = 1; i <= 5; ++i) {
    input += R"({"op":"admit","pool":"p","client":"c)" + std::to_string(i) +
             R"(","episode":"e","request":"r","issued_at":0,"now":0})" "\n";
  }
  input += R"({"op":"config","pool":"p","capacity":5,"ttl":30000,"grace":15000})" "\n";
  input += R"({"op":"admit","pool":"p","client":"c5","episode":"e","request":"r2","issued_at":0,"now":0})" "\n";
  const auto run = gate(input);
  EXPECT_EQ(run.exit_code, 0);
  std::istringstream lines(run.out);
  std::string line;
  std::vector<std::string> out;
  while (std::getline(lines, line)) out.push_back(line);
  ASSERT_EQ(out.size(), 7u);
  EXPECT_EQ(out[4], R"({"outcome":"blocked_capacity","token":null,"victim":null,"held":4})");
  EXPECT_EQ(out[6], R"({"outcome":"admitted","token":"5","victim":null,"held":5})");
}

TEST(GateCli, D_PoolsAreIndependent) {
  const auto run = gate(
      R"({"op":"config","pool":"a","capacity":1,"ttl":10,"grace":0})" "\n"
      R"({"op":"admit","pool":"a","client":"c1","episode":"e","request":"r1","issued_at":0,"now":0})" "\n"
      R"({"op":"admit","pool":"b","client":"c2","episode":"e","request":"r1","issued_at":0,"now":0})" "\n"
      R"({"op":"admit","pool":"a","client":"c2","episode":"e","request":"r1","issued_at":0,"now":0})" "\n");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out,
            "{\"outcome\":\"configured\"}\n"
            "{\"outcome\":\"admitted\",\"token\":\"1\",\"victim\":null,\"held\":1}\n"
            "{\"outcome\":\"admitted\",\"token\":\"1\",\"victim\":null,\"held\":1}\n"
            "{\"outcome\":\"blocked_capacity\",\"token\":null,\"victim\":null,\"held\":1}\n");
}

struct Malformed {
  const char* name;
  const char* line;
  const char* error;
};

class GateCliMalformed : public ::testing::TestWithParam<Malformed> {};

// V4 and SPEC D: a malformed line exits 2 with "line N: field 'X': expected ...",
// after printing every earlier decision; nothing after it is applied.
TEST_P(GateCliMalformed, V4_ExitTwoNamingLineAndFieldAfterEarlierDecisions) {
  const auto& c = GetParam();
  const auto run = gate(std::string(R"({"op":"admit","pool":"p","client":"c1","episode":"e","request":"r1","issued_at":1,"now":1})") +
                        "\n" + c.line + "\n" +
                        R"({"op":"admit","pool":"p","client":"c2","episode":"e","request":"r1","issued_at":1,"now":1})" + "\n");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.out, "{\"outcome\":\"admitted\",\"token\":\"1\",\"victim\":null,\"held\":1}\n");
  EXPECT_EQ(run.err, std::string("line 2: ") + c.error + "\n");
}

INSTANTIATE_TEST_SUITE_P(
    Lines, GateCliMalformed,
    ::testing::Values(
        Malformed{"BadJson", R"({"op":"admit",)", "not valid JSON"},
        Malformed{"NotAnObject", R"([1,2])", "expected a JSON object"},
        Malformed{"EmptyLine", "", "empty line, expected a JSON object"},
        Malformed{"UnknownOp", R"({"op":"evict","pool":"p"})", "field 'op': expected one of admit, heartbeat, release, config"},
        Malformed{"MissingOp", R"({"pool":"p"})", "field 'op': missing, expected one of admit, heartbeat, release, config"},
        Malformed{"MissingField", R"({"op":"admit","pool":"p","client":"c","episode":"e","request":"r","now":1})",
                  "field 'issued_at': missing, expected an integer from 0 to 9007199254740991 (ms)"},
        Malformed{"WrongTypeTime", R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":"5"})",
                  "field 'now': expected an integer from 0 to 9007199254740991 (ms)"},
        Malformed{"FloatTime", R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":5.5})",
                  "field 'now': expected an integer from 0 to 9007199254740991 (ms)"},
        Malformed{"NegativeTime", R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":-1})",
                  "field 'now': expected an integer from 0 to 9007199254740991 (ms)"},
        Malformed{"HugeTime", R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":18446744073709551615})",
                  "field 'now': expected an integer from 0 to 9007199254740991 (ms)"},
        Malformed{"TokenNumber", R"({"op":"release","pool":"p","client":"c","token":1,"now":1})",
                  "field 'token': expected a decimal token string such as \"1\""},
        Malformed{"TokenNotDecimal", R"({"op":"release","pool":"p","client":"c","token":"1a","now":1})",
                  "field 'token': expected a decimal token string such as \"1\""},
        Malformed{"InvalidClient", R"({"op":"release","pool":"p","client":"c 1","token":"1","now":1})",
                  "field 'client': expected 1-64 bytes of [A-Za-z0-9._-]"},
        Malformed{"InvalidEpisode", R"({"op":"admit","pool":"p","client":"c","episode":"tt/1","request":"r","issued_at":1,"now":1})",
                  "field 'episode': expected 1-128 bytes of [A-Za-z0-9._:-]"},
        Malformed{"InvalidPool", R"({"op":"admit","pool":"","client":"c","episode":"e","request":"r","issued_at":1,"now":1})",
                  "field 'pool': expected 1-64 bytes of [A-Za-z0-9._-]"},
        Malformed{"UnknownField", R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":1,"tokn":"2"})",
                  "field 'tokn': expected no such field for op 'heartbeat' (fields: op, pool, client, token, now)"},
        Malformed{"UnknownFieldWithANewline", R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":1,"a\nb":2})",
                  "field 'a\\nb': expected no such field for op 'heartbeat' (fields: op, pool, client, token, now)"},
        Malformed{"ZeroCapacity", R"({"op":"config","pool":"p","capacity":0,"ttl":1,"grace":0})",
                  "field 'capacity': expected an integer from 1 to 100000"},
        Malformed{"ZeroTtl", R"({"op":"config","pool":"p","capacity":1,"ttl":0,"grace":0})",
                  "field 'ttl': expected an integer from 1 to 9007199254740991 (ms)"}),
    [](const ::testing::TestParamInfo<Malformed>& param_info) { return std::string(param_info.param.name); });

TEST(GateCli, V4_CarriageReturnLineEndingsAreAccepted) {
  const auto run = gate(R"({"op":"heartbeat","pool":"p","client":"c","token":"1","now":1})" "\r\n");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "{\"outcome\":\"gone\",\"token\":null,\"victim\":null,\"held\":0}\n");
}

// The bundled example (README) through the real binary, and its exit codes.
std::string slurp(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

int shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WEXITSTATUS(status);
}

TEST(GateCli, D_BinaryRunsBundledExample) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto out = dir / "turnstile_gate_cli_test.out";
  const std::string example = std::string(TURNSTILE_SOURCE_DIR) + "/examples/ops.jsonl";
  ASSERT_EQ(shell(std::string(TURNSTILE_BINARY) + " gate " + example + " > " + out.string()), 0);
  EXPECT_EQ(slurp(out), slurp(std::string(TURNSTILE_SOURCE_DIR) + "/examples/ops.expected.jsonl"));
  ASSERT_EQ(shell(std::string(TURNSTILE_BINARY) + " gate < " + example + " > " + out.string()), 0);
  EXPECT_EQ(slurp(out), slurp(std::string(TURNSTILE_SOURCE_DIR) + "/examples/ops.expected.jsonl"));
  std::filesystem::remove(out);
}

TEST(GateCli, D_BinaryExitsTwoOnMissingFileAndBadUsage) {
  EXPECT_EQ(shell(std::string(TURNSTILE_BINARY) + " gate /nonexistent/ops.jsonl 2>/dev/null"), 2);
  EXPECT_EQ(shell(std::string(TURNSTILE_BINARY) + " frobnicate 2>/dev/null"), 2);
  EXPECT_EQ(shell(std::string(TURNSTILE_BINARY) + " 2>/dev/null"), 2);
  EXPECT_EQ(shell(std::string(TURNSTILE_BINARY) + " gate --help >/dev/null"), 0);
}

}  // namespace
}  // namespace turnstile::cli
