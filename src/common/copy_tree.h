// Copying a directory tree with its metadata: the runtime's tmpcopyup (a
// fresh tmpfs gets what the image had under its mount point), the nspawn
// flavor's docker image_download (an image's merged layers become a
// machine image directory), and the driver's copies of an image's layers
// with a task's own ids (podman's userns = "auto" where the store's file
// system takes no idmapped mounts).
#pragma once

#include <cstdint>

#include "common/error.h"
#include "common/idshift.h"

namespace husk {

struct CopyOptions {
  // The copy's owners: the source's moved by these (a user namespace's
  // maps, on-disk id to host id), with the ids in ACLs and a v3 file
  // capability's root id; unset keeps them as they are.
  idshift::IdMapFn uid, gid;
  // Extended attributes too: overlayfs's trusted.overlay.* (an opaque
  // directory of a layer), security.capability, ACLs, user.*. An attribute
  // the target file system refuses is an error naming it, except
  // security.selinux where the target has no SELinux labels.
  bool xattrs = false;
};

// Copy the tree under from_dir (an O_RDONLY directory fd) into to_dir:
// directories, regular files (hard links kept as links), symlinks, device
// nodes and fifos, with their mode, owner and times. Never follows a
// symlink of the source; errors name the entry's path under from_dir.
Result<> copy_tree(int from_dir, int to_dir, const CopyOptions& options = {});

}  // namespace husk
