// The cgroup2 hierarchy: where it is mounted, which cgroup husk runs in, how
// linux.cgroupsPath maps to a directory, and delegating controllers from the
// root down to a cgroup through each ancestor's cgroup.subtree_control.
// Everything works on plain paths, so a fake tree in a temp dir stands in
// for /sys/fs/cgroup in unit tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace husk::cgroups {

bool is_cgroup2(const std::string& path);

// Whitespace-separated words ("cpu io memory\n" -> {cpu, io, memory}).
std::vector<std::string> split_words(std::string_view text);

// The path of the "0::" line of a /proc/<pid>/cgroup text; "/" when there
// is none (a pure v1 host).
std::string unified_cgroup_of(std::string_view proc_pid_cgroup);

// linux.cgroupsPath -> a path below the mount point, starting with '/':
// "/a/b" stays, "a/b" goes below own_cgroup, "" becomes "/husk/<id>".
// ".." components and a path naming the hierarchy root are refused.
Result<std::string> resolve_cgroup_path(const std::string& cgroups_path, const std::string& container_id,
                                        const std::string& own_cgroup);

// The cgroup2 mount that holds `dir`: the topmost cgroup2 ancestor on the
// same filesystem. For a directory that is not on cgroup2 (a fake tree) it
// is the parent directory.
std::string mount_point_of(const std::string& dir);

// The ancestors of `rel` (below `mount`) whose cgroup.subtree_control
// decides what the cgroup gets: mount, mount/a, ... up to the parent.
std::vector<std::string> ancestors(const std::string& mount, const std::string& rel);

// Makes `controller` available in mount+rel, enabling it in every ancestor
// that does not delegate it yet. `field` names the spec field that needs it.
// Fails with ENOTSUP, naming the directory and its cgroup.controllers, when
// an ancestor is not offered the controller.
Result<> delegate_controller(const std::string& mount, const std::string& rel, const std::string& controller,
                             const std::string& field);

// Best effort, for create(): enables every controller each ancestor below
// the root is offered. The root's cgroup.subtree_control is the host's
// configuration: it is only written when a resource needs a controller
// (delegate_controller). Errors are ignored: a rootless caller or an
// ancestor with processes of its own cannot delegate, and apply() reports
// what is really missing.
void delegate_offered_controllers(const std::string& mount, const std::string& rel);

}  // namespace husk::cgroups
