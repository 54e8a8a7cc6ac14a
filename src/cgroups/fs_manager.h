// The cgroupfs manager: the container's cgroup v2 directory, written
// directly (mkdir, cgroup.subtree_control, resource files, cgroup.freeze,
// cgroup.kill). It works on any directory, so unit tests point it at a
// fake tree of plain files.
#pragma once

#include <memory>
#include <string>

#include "cgroups/manager.h"

namespace husk::cgroups {

// A cgroup at mount + rel (rel starts with '/', from resolve_cgroup_path).
std::unique_ptr<Manager> make_fs_manager(std::string mount, std::string rel);
// A cgroup made earlier, by its absolute path.
std::unique_ptr<Manager> open_fs_manager(std::string path);

}  // namespace husk::cgroups
