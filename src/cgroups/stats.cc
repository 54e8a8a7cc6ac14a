#include "cgroups/stats.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "cgroups/hierarchy.h"
#include "common/fd.h"
#include "common/text.h"

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
    m.swap_limit = read_number(dir + "/memory.swap.max").value_or(kUnlimited);
    if (auto ms = read_keyed(dir + "/memory.stat")) {
      m.stat = *ms;
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
      m.max = get(*ev, "max");
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
  if (auto io = read_file(dir + "/io.stat")) st.io = parse_io_stat(*io);
  st.hugetlb = read_hugetlb(dir);
  return st;
}

std::vector<IoDeviceStats> parse_io_stat(std::string_view text) {
  // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per line.
  std::vector<IoDeviceStats> out;
  for (std::string_view line : lines_of(text)) {
    auto words = split_words(line);
    if (words.empty()) continue;
    IoDeviceStats d;
    if (sscanf(words[0].c_str(), "%u:%u", &d.major, &d.minor) != 2) continue;
    for (size_t i = 1; i < words.size(); ++i) {
      size_t eq = words[i].find('=');
      if (eq == std::string::npos) continue;
      std::string key = words[i].substr(0, eq);
      uint64_t v = strtoull(words[i].c_str() + eq + 1, nullptr, 10);
      if (key == "rbytes") d.rbytes = v;
      else if (key == "wbytes") d.wbytes = v;
      else if (key == "rios") d.rios = v;
      else if (key == "wios") d.wios = v;
      else if (key == "dbytes") d.dbytes = v;
      else if (key == "dios") d.dios = v;
    }
    out.push_back(d);
  }
  return out;
}

std::vector<HugetlbStats> read_hugetlb(const std::string& dir) {
  std::vector<HugetlbStats> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    // hugetlb.2MB.current, but not hugetlb.2MB.rsvd.current.
    std::string_view name = e->d_name;
    if (!name.starts_with("hugetlb.") || !name.ends_with(".current") || name.find(".rsvd.") != std::string_view::npos)
      continue;
    std::string size(name.substr(8, name.size() - 8 - 8));
    HugetlbStats h;
    h.page_size = size;
    std::string base = dir + "/hugetlb." + size;
    h.usage = read_number(base + ".current").value_or(0);
    h.limit = read_number(base + ".max").value_or(kUnlimited);
    if (auto ev = read_keyed(base + ".events")) h.failcnt = get(*ev, "max");
    out.push_back(std::move(h));
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.page_size < b.page_size; });
  return out;
}

}  // namespace husk::cgroups
