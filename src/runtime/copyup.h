// tmpcopyup: fill a fresh tmpfs with what the image had under its mount
// point, so a tmpfs over /etc or /var/lib keeps the image's files.
#pragma once

#include "common/error.h"

namespace husk::runtime {

// Copy the tree under from_dir (an O_RDONLY directory fd) into to_dir:
// directories, regular files, symlinks, device nodes and fifos, with their
// mode, owner and times. Never follows a symlink of the source.
Result<> copy_tree(int from_dir, int to_dir);

}  // namespace husk::runtime
