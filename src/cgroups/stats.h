// Reading a cgroup's usage: memory, cpu, pids, io and hugetlb files into Stats. A file
// that is missing (controller not enabled, older kernel) leaves its part of
// Stats empty rather than failing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/manager.h"

namespace husk::cgroups {

// "max" as a number: no limit.
inline constexpr uint64_t kUnlimited = UINT64_MAX;

// "key value" lines (memory.stat, memory.events, cpu.stat).
std::map<std::string, uint64_t> parse_flat_keyed(std::string_view text);

// io.stat lines ("8:0 rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..").
std::vector<IoDeviceStats> parse_io_stat(std::string_view text);

// hugetlb.<size>.* of every page size the cgroup has.
std::vector<HugetlbStats> read_hugetlb(const std::string& dir);

Stats read_stats(const std::string& dir);

}  // namespace husk::cgroups
