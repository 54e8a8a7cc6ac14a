// The container's root as an overlay of host directories (annotation
// run.husk.rootfs.overlay), mounted by the container's init on root.path
// once it is in its user and mount namespaces, in place of binding
// root.path onto itself. So an unprivileged caller (a rootless driver's
// task, image store layers unpacked for its user namespace) gets the
// overlay it could not mount on the host: native overlayfs with
// "userxattr" in a user namespace (Linux 5.11). The mount lives in the
// container's mount namespace only and goes with it; the directories are
// the caller's to make and remove.
#pragma once

#include <string_view>

#include "common/error.h"
#include "common/overlay.h"

namespace husk::runtime {

inline constexpr const char* kRootfsOverlayAnnotation = "run.husk.rootfs.overlay";

// "lowerdir=DIR[:DIR...][,upperdir=DIR,workdir=DIR]": the lower directories
// top first, as overlayfs takes them; upperdir and workdir together or not
// at all (a read-only root). Absolute paths without ',' or ':'.
Result<overlay::OverlaySpec> parse_rootfs_overlay(std::string_view value);

}  // namespace husk::runtime
