// The container's root filesystem: everything from "the child is in its new
// mount namespace" to "/ is the rootfs, masked and read-only paths applied".
// plan_rootfs() turns the spec into an ordered list of steps that tests read
// without mounting anything (bubblewrap's model); setup_rootfs() runs them.
// Every destination is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT)
// and mounted through an fd (new mount API: open_tree/move_mount/fsopen,
// mount_setattr for idmapped mounts), so a symlink in the image cannot send a
// mount to the host (runc CVE-2021-30465 class).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/overlay.h"
#include "runtime/fuse_overlay.h"
#include "oci/spec.h"

namespace husk::runtime {

struct RootfsOptions {
  std::string rootfs;            // absolute host path of root.path
  bool no_pivot = false;         // --no-pivot: MS_MOVE + chroot
  bool in_user_namespace = false;  // created a userns: bind device nodes, no mknod
  bool rootless = false;           // husk runs unprivileged on the host
  bool new_net_namespace = true;   // false: sysfs cannot be mounted in a userns, bind /sys instead
  std::string console_path;      // pty slave to bind onto /dev/console ("" = none)
  int rootfs_tree = -1;          // a detached (idmapped) tree to attach over rootfs instead of binding it
  // Mounted on rootfs instead of binding it (run.husk.rootfs.overlay);
  // "userxattr" in a user namespace.
  std::optional<overlay::OverlaySpec> overlay;
  // How (run.husk.rootfs.overlay.mount), and who mounts it with
  // fuse-overlayfs from outside (the parent; runtime/fuse_overlay.h),
  // given why native overlayfs was refused ("" when not tried).
  OverlayMount overlay_mount = OverlayMount::kAuto;
  std::function<Result<>(const std::string& refused)> mount_overlay_outside;
  // Runs after every mount and before pivot_root (createContainer hooks).
  std::function<Result<>()> before_pivot;
};

// Parsed mount options: flags for mount(2)/mount_setattr, propagation, and
// the data string passed to the filesystem.
struct MountFlags {
  unsigned long flags = 0;          // MS_* set
  unsigned long clear = 0;          // MS_* explicitly cleared (rw, suid, ...)
  unsigned long propagation = 0;    // MS_SHARED|MS_REC ... (0 = none)
  bool bind = false, recursive = false, idmap = false, copy_up = false;
  std::string data;                 // "size=65536k,mode=755"
  // The r* options (rro, rnosuid, ...): MS_* bits set/cleared on the whole
  // tree with mount_setattr(AT_RECURSIVE).
  unsigned long rec_flags = 0;
  unsigned long rec_clear = 0;
  bool recursive_idmap = false;     // "ridmap": idmap every mount of an rbind
};
Result<MountFlags> parse_mount_options(const std::vector<std::string>& options);

enum class StepKind {
  MakeRootPrivate,  // propagation of / before anything (rslave/rprivate)
  BindRootfs,       // rootfs bound onto itself
  Mount,            // a spec mount (index into spec.mounts)
  DefaultDevices,   // /dev/null, zero, full, random, urandom, tty (+ ptmx link)
  Device,           // a spec device (index into linux.devices)
  DevSymlinks,      // /dev/fd, stdin, stdout, stderr, core
  Console,          // bind console_path onto /dev/console
  BeforePivot,      // callback
  Pivot,            // pivot_root or MS_MOVE+chroot
  RootPropagation,  // linux.rootfsPropagation
  MaskPath,         // /dev/null over a file, empty read-only tmpfs over a dir
  ReadonlyPath,     // bind remount read-only
  ReadonlyRoot,     // root.readonly
};
struct Step {
  StepKind kind;
  std::string target;  // path inside the container ("/proc")
  int index = -1;      // spec.mounts / linux.devices index, when relevant
};

Result<std::vector<Step>> plan_rootfs(const oci::Spec& spec, const RootfsOptions& opts);
Result<> setup_rootfs(const oci::Spec& spec, const RootfsOptions& opts);

}  // namespace husk::runtime
