// Paths inside a container's rootfs, resolved safely: the kernel resolves
// every component with the rootfs as "/" (openat2 RESOLVE_IN_ROOT), so ".."
// and absolute symlinks cannot leave it.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "common/fd.h"

namespace husk::runtime {

// Open path (absolute or relative, taken inside root) under rootfd.
Result<UniqueFd> open_in_root(int rootfd, const std::string& path, int flags, mode_t mode = 0);
// mkdir -p inside root; returns an O_PATH fd of the final directory.
Result<UniqueFd> mkdir_in_root(int rootfd, const std::string& path, mode_t mode = 0755);
// Make path (and its parents) exist as an empty regular file (bind target).
Result<UniqueFd> touch_in_root(int rootfd, const std::string& path, mode_t mode = 0644);
// The userspace resolver open_in_root falls back to when the kernel has no
// openat2 (< 5.6): one component at a time with O_NOFOLLOW, ".." clamped at
// the root, symlinks followed relative to the root. Exposed for tests.
Result<UniqueFd> open_in_root_walk(int rootfd, const std::string& path, int flags, mode_t mode = 0);
// "/proc/self/fd/N" for an fd: how husk names an fd it mounts onto.
std::string fd_path(int fd);

}  // namespace husk::runtime
