// /dev inside the container: the default nodes every container gets, the
// spec's linux.devices, the /proc/self/fd symlinks and /dev/console. Nodes
// are made with mknod, or in a user namespace (where mknod is EPERM) by
// binding the host's node onto an empty file, as runc and crun do.
#pragma once

#include <string>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::runtime {

// /dev/null, zero, full, random, urandom, tty (0666, 0:0) and the
// /dev/ptmx -> pts/ptmx symlink.
Result<> create_default_devices(int rootfd, bool in_user_namespace);
// One linux.devices entry.
Result<> create_device(int rootfd, const oci::Device& dev, bool in_user_namespace);
// /dev/fd, stdin, stdout, stderr -> /proc/self/fd/..., /dev/core -> /proc/kcore.
Result<> create_dev_symlinks(int rootfd);
// An empty /dev/console with the pty slave console_path bound onto it.
Result<> bind_console(int rootfd, const std::string& console_path);

}  // namespace husk::runtime
