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

// Before cloning, as an unprivileged caller: every mapping must be the
// caller's own id or inside their /etc/subuid (subgid) ranges, and a helper
// needed for it must be found in PATH. Errors name the mapping, the range
// and the helper. A no-op for root.
Result<> check_id_maps(const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids);

// Write /proc/<pid>/uid_map and gid_map for a process in a new user
// namespace. Unprivileged callers whose maps are just their own id get
// setgroups "deny" first (the kernel requires it); wider maps go through
// newuidmap/newgidmap, looked up in PATH.
Result<> write_id_maps(pid_t pid, const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids);

// `husk spec --rootless`: container 0 is the caller; with a range in
// /etc/subuid (subgid) and the helper installed, ids 1..65536 come from
// the first range too (podman's default), else the map is that one id.
struct RootlessMaps {
  std::vector<oci::IdMapping> uids, gids;
};
RootlessMaps rootless_id_maps();

// Where a helper (newuidmap) is: the first PATH entry that has it
// executable (PATH unset: /usr/local/bin:/usr/bin:/bin), "" if none.
std::string find_in_path(const std::string& name);

}  // namespace husk::runtime
