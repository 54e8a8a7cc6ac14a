// The systemd manager (--systemd-cgroup, --cgroup-manager systemd): the
// container's cgroup is a transient scope that systemd makes around the
// container init (StartTransientUnit, Delegate=yes), on the system bus for
// root and the user's bus rootless. Once the scope exists its directory is
// handled as the cgroupfs manager handles any cgroup (resource files,
// freeze, kill, stats); delete stops the unit.
//
// linux.cgroupsPath is runc's "slice:prefix:name": unit "prefix-name.scope"
// in "slice". An empty slice is system.slice (root) or user.slice
// (rootless), "-" is the root slice; no cgroupsPath is ":husk:<id>".
#pragma once

#include <memory>
#include <string>

#include "cgroups/manager.h"

namespace husk::cgroups {

struct SystemdScope {
  std::string slice;       // "system.slice", "-.slice" for the root slice
  std::string unit;        // "husk-abc.scope"
  std::string slice_path;  // the slice's cgroup below the manager's root: "/system.slice", "/a.slice/a-b.slice"
};

// linux.cgroupsPath -> slice and scope; errors name linux.cgroupsPath and
// the value. A name ending in ".slice" is refused: a container needs a
// scope to hold its processes.
Result<SystemdScope> parse_systemd_cgroups_path(const std::string& cgroups_path, const std::string& container_id,
                                                bool rootless);

// mount: the cgroup2 mount point (where the scope's directory will be).
Result<std::unique_ptr<Manager>> make_systemd_manager(const Options& opts, std::string mount);
// A scope made earlier: its cgroup directory and unit name from state.json.
Result<std::unique_ptr<Manager>> open_systemd_manager(const Recorded& rec);

}  // namespace husk::cgroups
