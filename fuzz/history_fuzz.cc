// libFuzzer harness for the SPEC H history reader: any bytes, as one history
// file, must either be read whole or be refused with a single
// "fuzz:<line>: ..." message; never a crash, hang or sanitizer report. What
// is read must write back and read again to the same lines, and a small
// history must go through the checker (with a bounded search) without
// tripping an assertion.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sim/history_format.h"
#include "sim/lincheck.h"

namespace {

std::string write_all(const std::vector<turnstile::sim::HistoryOp>& ops) {
  std::string text;
  for (const auto& op : ops) turnstile::sim::append_history_line(text, op);
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace turnstile;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = sim::read_history(text, "fuzz");
  if (const auto* error = std::get_if<sim::HistoryError>(&parsed)) {
    if (error->message.rfind("fuzz:", 0) != 0 || error->message.find('\n') != std::string::npos) __builtin_trap();
    return 0;
  }
  auto& ops = std::get<std::vector<sim::HistoryOp>>(parsed);

  // Writing is the inverse of reading, up to spelling (key order, spaces).
  const std::string written = write_all(ops);
  auto reread = sim::read_history(written, "written");
  if (!std::holds_alternative<std::vector<sim::HistoryOp>>(reread)) __builtin_trap();
  if (write_all(std::get<std::vector<sim::HistoryOp>>(reread)) != written) __builtin_trap();

  if (ops.size() <= 64) {
    sim::LincheckLimits limits;
    limits.max_search_bytes = std::size_t{64} << 20;
    int polls = 0;
    limits.should_stop = [&polls] { return ++polls > 20; };
    for (const sim::PoolHistory& pool : sim::split_by_pool(std::move(ops))) {
      const sim::PoolVerdict verdict = sim::check_pool(pool, limits);
      if (verdict.verdict == sim::LincheckVerdict::not_linearizable && verdict.stuck >= pool.ops.size()) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
