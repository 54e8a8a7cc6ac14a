// The container's root as a fuse-overlayfs mount, for kernels that do not
// mount overlayfs in a user namespace (before Linux 5.11) or when the
// bundle asks for it (annotation run.husk.rootfs.overlay.mount =
// "fuse-overlayfs"). husk forks the server: it joins the container's user
// namespace (whose ids it serves; a /dev/fuse fd must be opened there to
// mount in it), opens /dev/fuse (outside the container's cgroup and its
// device rules) and hands the fd over; the container's init mounts a FUSE
// file system on its root.path with it, in its own mount namespace; then
// the server execs `fuse-overlayfs -f ... /dev/fd/3`. It stays in husk's
// mount namespace, pid namespace and cgroup: pivot_root never moves it
// into the container's root, it does not keep the container's mount
// namespace alive, and it ends by itself when the mount goes with that
// namespace. `husk delete` stops it too, by the pid the state keeps.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"
#include "common/fd.h"
#include "common/overlay.h"

namespace husk::runtime {

// run.husk.rootfs.overlay.mount: "auto" (the default: native overlayfs,
// fuse-overlayfs when the kernel refuses it in a user namespace),
// "native", or "fuse-overlayfs".
inline constexpr const char* kRootfsOverlayMountAnnotation = "run.husk.rootfs.overlay.mount";
enum class OverlayMount { kAuto, kNative, kFuse };
Result<OverlayMount> parse_overlay_mount(std::string_view value);

struct FuseServer {
  pid_t pid = 0;
  uint64_t start = 0;  // process start time, as the state keeps pids
};

// A server forked and waiting to exec: `fuse` is its /dev/fuse fd, for
// the init to mount with; go() lets it run once the mount exists.
class FuseLaunch {
 public:
  // In husk: forks the server for `spec`, in the user namespace
  // `userns_fd` (-1: husk's own). Its messages go to `log`.
  static Result<FuseLaunch> prepare(int userns_fd, const overlay::OverlaySpec& spec, const std::string& log);
  FuseLaunch(FuseLaunch&& o) noexcept
      : server_(std::exchange(o.server_, FuseServer{})), fuse_(std::move(o.fuse_)), control_(std::move(o.control_)) {}
  FuseLaunch& operator=(FuseLaunch&&) = delete;
  ~FuseLaunch();  // not let go: the server is killed

  int fuse_fd() const { return fuse_.get(); }
  const FuseServer& server() const { return server_; }
  // The mount is made: exec fuse-overlayfs (errors: it could not).
  Result<FuseServer> go();

 private:
  FuseLaunch() = default;
  FuseServer server_;
  UniqueFd fuse_, control_;
};

// In the container's init, before pivot_root: mounts a FUSE file system
// of fuse-overlayfs's type on `target` on the connection `fuse_fd` (owned
// by the caller's ids in its user namespace, allow_other,
// default_permissions).
Result<> mount_fuse_root(const std::string& target, int fuse_fd);

// The server's last words, for an error that follows its start.
std::string fuse_overlayfs_log(const std::string& log);

// SIGTERM, then SIGKILL after a second.
void stop_fuse_overlayfs(const FuseServer& s);

}  // namespace husk::runtime
