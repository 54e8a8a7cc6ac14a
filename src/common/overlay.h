// Overlay mounts: a task's root filesystem over an image's unpacked layers
// (read only, top first) with the task's own upper and work directories,
// mounted by the driver (root) or by the container's init in its user
// namespace (runtime/rootfs_overlay.h, "userxattr"). The new
// mount API passes one lowerdir at a time ("lowerdir+", Linux 6.8), so the
// number of layers is not bounded by the one-page mount data; older kernels
// get mount(2) with one page of data naming the layers by short
// /proc/self/fd/N paths (~200 layers fit).
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace husk::overlay {

struct OverlaySpec {
  std::vector<std::string> lower;  // top first
  std::string upper, work;         // empty both: a read-only overlay
  bool userxattr = false;          // rootless stores (user.overlay.* xattrs)
};

// The layers as one lowerdir= value, "top:next:...", for mount data, the
// rootfs annotation and fuse-overlayfs; a path with a ':' or ',' is an
// error, as such a value cannot carry it.
Result<std::string> lowerdir_value(const std::vector<std::string>& lower);

// Mount the overlay on `target` (an existing directory).
Result<> mount_overlay(const OverlaySpec& spec, const std::string& target);

// Detach the overlay at `target`; not mounted is fine.
Result<> unmount_overlay(const std::string& target);

}  // namespace husk::overlay
