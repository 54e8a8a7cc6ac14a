// OCI linux.resources -> cgroup v2 file writes, as a list a test can read.
// Each write names the controller it needs and the spec field it comes from.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::cgroups {

struct FileWrite {
  std::string file;        // relative to the cgroup directory ("memory.max")
  std::string value;
  std::string controller;  // "" for core files
  std::string field;       // "linux.resources.memory.limit"
};

// exists(file) tells whether a file is present in the cgroup (for
// io.bfq.weight vs io.weight and for validating `unified` keys).
Result<std::vector<FileWrite>> translate(const oci::Resources& r, const std::function<bool(const std::string&)>& exists);

// cpu.shares (2..262144) -> cpu.weight (1..10000), runc's mapping.
uint64_t shares_to_weight(uint64_t shares);
// blkio weight (10..1000) -> io.weight (1..10000).
uint64_t blkio_to_io_weight(uint64_t weight);

}  // namespace husk::cgroups
