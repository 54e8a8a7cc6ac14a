// OCI linux.resources -> cgroup v2 file writes, as a list a test can read.
// Each write names the controller it needs and the spec field it comes from.
// The translation follows crun and runc; where they differ the choice is
// said at the field. Device rules are not here (an eBPF program).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::cgroups {

struct FileWrite {
  std::string file;        // relative to the cgroup directory ("memory.max")
  std::string value;       // one line: the kernel parses one line per write()
  std::string controller;  // "" for core files (cgroup.*)
  std::string field;       // "linux.resources.memory.limit"
  // Skipped when the file is missing: memory.swap.max without swap
  // accounting (crun ignores it the same way).
  bool skip_if_missing = false;
};

// exists(file) tells whether a file is present in the cgroup (io.bfq.weight
// vs io.weight, hugetlb.<size>.rsvd.max).
Result<std::vector<FileWrite>> translate(const oci::Resources& r, const std::function<bool(const std::string&)>& exists);

// True when a write only lifts a limit ("max"), so it needs no controller:
// podman asks for pids.limit 0 on hosts without the pids controller.
bool is_unlimited(const FileWrite& w);

// cpu.shares (2..262144) -> cpu.weight (1..10000). crun's current mapping,
// quadratic in log2(shares), so the defaults meet: 1024 -> 100.
uint64_t shares_to_weight(uint64_t shares);
// blkio weight (10..1000) -> io.weight (1..10000), linear as runc and crun.
uint64_t blkio_to_io_weight(uint64_t weight);

}  // namespace husk::cgroups
