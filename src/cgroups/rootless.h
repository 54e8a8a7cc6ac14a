// Rootless cgroups through cgroupfs (no systemd). An unprivileged user may
// only make cgroups inside a subtree delegated to them: the topmost ancestor
// of their own cgroup whose directory, cgroup.procs and cgroup.subtree_control
// they own (systemd's user@UID.service, or a directory root made and chowned).
// There the default cgroup is <delegated>/husk/<id>. Without one, or when the
// cgroup cannot be made for lack of permission, the container runs without a
// cgroup and the caller gets one warning to print, unless linux.resources asks
// for a limit: that is an error naming the field (runc's and crun's rule).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "cgroups/manager.h"

namespace husk::cgroups {

// The delegated subtree holding own_cgroup (a path below mount, "/a/b"),
// "" when the caller owns none of it. Never the hierarchy root.
std::string delegated_root(const std::string& mount, const std::string& own_cgroup, uid_t uid);

struct RootlessCgroup {
  std::unique_ptr<Manager> manager;  // made (create() done), or the disabled one
  std::string warning;               // non-empty: print it, there is no cgroup
};

// opts.kind must be Fs. own_cgroup "" = read /proc/self/cgroup.
Result<RootlessCgroup> make_rootless_cgroup(const Options& opts, const oci::Resources* resources,
                                            std::string own_cgroup = "", uid_t uid = geteuid());

}  // namespace husk::cgroups
