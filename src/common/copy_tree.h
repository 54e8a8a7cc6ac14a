// Copying a directory tree with its metadata: the runtime's tmpcopyup (a
// fresh tmpfs gets what the image had under its mount point) and the nspawn
// flavor's docker image_download (an image's merged layers become a
// machine image directory).
#pragma once

#include "common/error.h"

namespace husk {

// Copy the tree under from_dir (an O_RDONLY directory fd) into to_dir:
// directories, regular files, symlinks, device nodes and fifos, with their
// mode, owner and times. Never follows a symlink of the source.
Result<> copy_tree(int from_dir, int to_dir);

}  // namespace husk
