// `husk update`: runc/crun's flags, or -r FILE with a linux.resources object.
#include <cstdio>
#include <cstdlib>

#include "cli/args.h"
#include "common/fd.h"
#include "oci/config.h"
#include "runtime/container.h"
#include "runtime/log.h"

namespace husk::cli {

// "512m", "1G", "1048576" -> bytes; "-1" stays -1.
Result<int64_t> parse_bytes(const std::string& flag, const std::string& v) {
  char* end;
  long long n = strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == v.c_str()) return fail_msg("--", flag, ": not a size: \"", v, "\"");
  std::string unit(end);
  for (auto& c : unit) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  long long mul = 1;
  if (unit == "k") mul = 1LL << 10;
  else if (unit == "m") mul = 1LL << 20;
  else if (unit == "g") mul = 1LL << 30;
  else if (unit == "t") mul = 1LL << 40;
  else if (!unit.empty()) return fail_msg("--", flag, ": unknown unit in \"", v, "\"");
  return n * mul;
}

int update_command(const runtime::GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  std::vector<OptSpec> specs = {
      {"resources", 'r', true},  {"memory", 0, true},        {"memory-reservation", 0, true},
      {"memory-swap", 0, true},  {"kernel-memory", 0, true}, {"kernel-memory-tcp", 0, true},
      {"cpu-shares", 0, true},   {"cpu-quota", 0, true},     {"cpu-period", 0, true},
      {"cpu-rt-runtime", 0, true}, {"cpu-rt-period", 0, true}, {"cpuset-cpus", 0, true},
      {"cpuset-mems", 0, true},  {"pids-limit", 0, true},    {"blkio-weight", 0, true},
      {"cpu-burst", 0, true},    {"cpu-idle", 0, true},      {"l3-cache-schema", 0, true},
      {"mem-bw-schema", 0, true}, {"help", 'h', false},
  };
  auto p = parse(args, at + 1, specs, "update", false);
  auto fail_out = [](const Error& e) {
    log::error(e.str());
    return 1;
  };
  if (!p) return fail_out(p.error());
  if (p->has("help")) {
    printf("usage: husk update [options] CONTAINER-ID\n");
    return 0;
  }
  if (p->positional.size() != 1) return fail_out(Error::msg("update: usage: husk update [options] CONTAINER-ID"));
  oci::Resources res;
  if (p->values.count("resources")) {
    std::string file = p->get("resources");
    auto raw = file == "-" ? read_all(0) : read_file(file);
    if (!raw) return fail_out(raw.error());
    auto parsed = oci::parse_resources(*raw);
    if (!parsed) return fail_out(std::move(parsed.error()).with_context(file));
    res = *parsed;
  }
  auto num = [&](const char* flag, auto setter) -> Result<> {
    if (!p->values.count(flag)) return {};
    int64_t v = TRY(parse_bytes(flag, p->get(flag)));
    setter(v);
    return {};
  };
  auto mem = [&]() -> oci::MemoryResources& {
    if (!res.memory) res.memory.emplace();
    return *res.memory;
  };
  auto cpu = [&]() -> oci::CpuResources& {
    if (!res.cpu) res.cpu.emplace();
    return *res.cpu;
  };
  std::vector<Result<>> rs = {
      num("memory", [&](int64_t v) { mem().limit = v; }),
      num("memory-reservation", [&](int64_t v) { mem().reservation = v; }),
      num("memory-swap", [&](int64_t v) { mem().swap = v; }),
      num("kernel-memory", [&](int64_t v) { mem().kernel = v; }),
      num("kernel-memory-tcp", [&](int64_t v) { mem().kernel_tcp = v; }),
      num("cpu-shares", [&](int64_t v) { cpu().shares = static_cast<uint64_t>(v); }),
      num("cpu-quota", [&](int64_t v) { cpu().quota = v; }),
      num("cpu-period", [&](int64_t v) { cpu().period = static_cast<uint64_t>(v); }),
      num("cpu-burst", [&](int64_t v) { cpu().burst = static_cast<uint64_t>(v); }),
      num("cpu-idle", [&](int64_t v) { cpu().idle = v; }),
      num("cpu-rt-runtime", [&](int64_t v) { cpu().realtime_runtime = v; }),
      num("cpu-rt-period", [&](int64_t v) { cpu().realtime_period = static_cast<uint64_t>(v); }),
      num("pids-limit", [&](int64_t v) { res.pids = oci::PidsResources{v}; }),
      num("blkio-weight", [&](int64_t v) {
        if (!res.block_io) res.block_io.emplace();
        res.block_io->weight = static_cast<uint16_t>(v);
      }),
  };
  for (auto& r : rs)
    if (!r) return fail_out(r.error());
  if (p->values.count("cpuset-cpus")) cpu().cpus = p->get("cpuset-cpus");
  if (p->values.count("cpuset-mems")) cpu().mems = p->get("cpuset-mems");
  if (p->values.count("l3-cache-schema") || p->values.count("mem-bw-schema"))
    return fail_out(Error::msg("update: Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported by husk"));
  auto r = runtime::update(g, p->positional[0], res);
  if (!r) return fail_out(r.error());
  return 0;
}

}  // namespace husk::cli
