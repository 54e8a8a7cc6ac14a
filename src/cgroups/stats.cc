#include "cgroups/stats.h"

#include <cstdlib>
#include <optional>

#include "cgroups/hierarchy.h"
#include "common/fd.h"

namespace husk::cgroups {
namespace {

std::optional<uint64_t> read_number(const std::string& path) {
  auto s = read_file(path);
  if (!s) return std::nullopt;
  auto w = split_words(*s);
  if (w.empty()) return std::nullopt;
  if (w[0] == "max") return kUnlimited;
  return strtoull(w[0].c_str(), nullptr, 10);
}

std::optional<std::map<std::string, uint64_t>> read_keyed(const std::string& path) {
  auto s = read_file(path);
  if (!s) return std::nullopt;
  return parse_flat_keyed(*s);
}

uint64_t get(const std::map<std::string, uint64_t>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

std::map<std::string, uint64_t> parse_flat_keyed(std::string_view text) {
  std::map<std::string, uint64_t> m;
  auto w = split_words(text);
  for (size_t i = 0; i + 1 < w.size(); i += 2)
    m[w[i]] = w[i + 1] == "max" ? kUnlimited : strtoull(w[i + 1].c_str(), nullptr, 10);
  return m;
}

Stats read_stats(const std::string& dir) {
  Stats st;
  if (auto cur = read_number(dir + "/memory.current")) {
    MemoryStats m;
    m.usage = *cur;
    m.max_usage = read_number(dir + "/memory.peak").value_or(0);  // 5.19+
    m.limit = read_number(dir + "/memory.max").value_or(kUnlimited);
    m.swap_usage = read_number(dir + "/memory.swap.current").value_or(0);
    if (auto ms = read_keyed(dir + "/memory.stat")) {
      m.anon = get(*ms, "anon");
      m.file = get(*ms, "file");
      // "kernel" is 5.18+; before, it is the sum of its parts.
      m.kernel = ms->count("kernel") ? get(*ms, "kernel")
                                     : get(*ms, "kernel_stack") + get(*ms, "pagetables") + get(*ms, "percpu") +
                                           get(*ms, "slab");
    }
    if (auto ev = read_keyed(dir + "/memory.events")) {
      m.oom = get(*ev, "oom");
      m.oom_kill = get(*ev, "oom_kill");
    }
    st.memory = m;
  }
  // cpu.stat is a core file: it exists without the cpu controller (then
  // only the usage lines are in it).
  if (auto cs = read_keyed(dir + "/cpu.stat")) {
    CpuStats c;
    c.usage_usec = get(*cs, "usage_usec");
    c.user_usec = get(*cs, "user_usec");
    c.system_usec = get(*cs, "system_usec");
    c.nr_periods = get(*cs, "nr_periods");
    c.nr_throttled = get(*cs, "nr_throttled");
    c.throttled_usec = get(*cs, "throttled_usec");
    st.cpu = c;
  }
  st.pids_current = read_number(dir + "/pids.current");
  st.pids_limit = read_number(dir + "/pids.max");
  return st;
}

}  // namespace husk::cgroups
