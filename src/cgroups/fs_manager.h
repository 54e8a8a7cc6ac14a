// The cgroupfs manager: the container's cgroup v2 directory, written
// directly (mkdir, cgroup.subtree_control, resource files, cgroup.freeze,
// cgroup.kill), and the device rules as an eBPF program (device_bpf.h). It
// works on any directory, so unit tests point it at a fake tree of plain
// files (where no program is attached).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cgroups/manager.h"

namespace husk::cgroups {

// A cgroup at mount + rel (rel starts with '/', from resolve_cgroup_path).
// devices: the container's linux.devices (see Options::devices).
std::unique_ptr<Manager> make_fs_manager(std::string mount, std::string rel, std::vector<oci::Device> devices = {});
// A cgroup made earlier, by its absolute path.
std::unique_ptr<Manager> open_fs_manager(std::string path, std::vector<oci::Device> devices = {});

}  // namespace husk::cgroups
