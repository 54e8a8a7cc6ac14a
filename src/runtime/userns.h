// User namespace id maps: written directly by root, through the setuid
// helpers newuidmap/newgidmap (Debian's uidmap) for the ranges an
// unprivileged user owns in /etc/subuid and /etc/subgid, or directly for the
// single-id mapping of the caller's own ids.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::runtime {

std::string format_id_map(const std::vector<oci::IdMapping>& maps);

// Write /proc/<pid>/uid_map and gid_map for a process in a new user
// namespace. Unprivileged callers whose maps are just their own id get
// setgroups "deny" first (the kernel requires it); wider maps go through
// newuidmap/newgidmap.
Result<> write_id_maps(pid_t pid, const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids);

}  // namespace husk::runtime
