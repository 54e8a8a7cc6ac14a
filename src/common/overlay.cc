// Overlay mounts (see overlay.h).
#include "common/overlay.h"

#include <fcntl.h>
#include <sys/mount.h>  // glibc 2.36 pulls <linux/mount.h> in itself
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fd.h"

namespace husk::overlay {

namespace {

int sys_fsopen(const char* fs, unsigned flags) { return static_cast<int>(::syscall(SYS_fsopen, fs, flags)); }
int sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int sys_fsmount(int fd, unsigned flags, unsigned attrs) {
  return static_cast<int>(::syscall(SYS_fsmount, fd, flags, attrs));
}
int sys_move_mount(int from_dfd, const char* from, int to_dfd, const char* to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags));
}

// The kernel's own words on a failed fsconfig ("overlayfs: failed to
// resolve ..."), read from the fs context.
std::string fs_log(int fsfd) {
  std::string out;
  char buf[512];
  for (;;) {
    ssize_t n = read(fsfd, buf, sizeof buf);
    if (n <= 0) break;
    if (!out.empty()) out += "; ";
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<> set_string(int fsfd, const char* key, const std::string& value) {
  if (sys_fsconfig(fsfd, FSCONFIG_SET_STRING, key, value.c_str(), 0) < 0) {
    int e = errno;
    std::string log = fs_log(fsfd);
    return fail_errno(e, "overlay option ", key, "=", value, log.empty() ? "" : " (" + log + ")");
  }
  return {};
}

// A created overlay superblock, the layers given one "lowerdir+" at a time.
Result<UniqueFd> create_overlay(const OverlaySpec& spec, const std::string& target) {
  int fd = sys_fsopen("overlay", FSOPEN_CLOEXEC);
  if (fd < 0) return fail_sys("fsopen overlay");
  UniqueFd fs(fd);
  for (const auto& l : spec.lower) TRYV(set_string(fs.get(), "lowerdir+", l));
  if (!spec.upper.empty()) {
    TRYV(set_string(fs.get(), "upperdir", spec.upper));
    TRYV(set_string(fs.get(), "workdir", spec.work));
  }
  if (spec.userxattr && sys_fsconfig(fs.get(), FSCONFIG_SET_FLAG, "userxattr", nullptr, 0) < 0)
    return fail_sys("overlay option userxattr");
  if (sys_fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    int e = errno;
    std::string log = fs_log(fs.get());
    return fail_errno(e, "create the overlay for ", target, log.empty() ? "" : " (" + log + ")");
  }
  return fs;
}

// Kernels without lowerdir+: mount(2) with one page of data, the layers as
// short /proc/self/fd/N names (fsconfig strings would stop at 256 bytes).
Result<> mount_overlay_legacy(const OverlaySpec& spec, const std::string& target) {
  std::vector<UniqueFd> held;  // open until the mount exists
  std::string data = "lowerdir=";
  for (size_t i = 0; i < spec.lower.size(); i++) {
    held.push_back(TRY(open_fd(spec.lower[i], O_PATH | O_DIRECTORY)));
    data += cat(i ? ":" : "", "/proc/self/fd/", held.back().get());
  }
  for (const auto* p : {&spec.upper, &spec.work})
    if (p->find_first_of(",:") != std::string::npos)
      return fail_msg("overlay on ", target, ": ", *p, " has a ',' or ':', which mount data cannot carry");
  if (!spec.upper.empty()) data += cat(",upperdir=", spec.upper, ",workdir=", spec.work);
  if (spec.userxattr) data += ",userxattr";
  if (data.size() >= 4096)
    return fail_errno(EINVAL, "overlay on ", target, ": ", spec.lower.size(),
                      " layers do not fit one page of mount data on a kernel without lowerdir+ (Linux 6.8)");
  if (mount("overlay", target.c_str(), "overlay", 0, data.c_str()) < 0)
    return fail_sys("mount the overlay of ", spec.lower.size(), " layers on ", target);
  return {};
}

}  // namespace

Result<> mount_overlay(const OverlaySpec& spec, const std::string& target) {
  if (spec.lower.empty()) return fail_msg("overlay on ", target, ": no layers");
  // Before 6.5 overlayfs took its options through the legacy mount data:
  // "lowerdir+" is unknown there (refused at fsconfig or at create, EINVAL).
  auto fs = create_overlay(spec, target);
  if (!fs && fs.error().code() == EINVAL) {
    auto legacy = mount_overlay_legacy(spec, target);
    if (!legacy) return fail(std::move(legacy.error()).with_context(cat(fs.error().str(), "; without lowerdir+")));
    return {};
  }
  if (!fs) return fail(std::move(fs.error()));
  int m = sys_fsmount(fs->get(), FSMOUNT_CLOEXEC, 0);
  if (m < 0) return fail_sys("fsmount the overlay for ", target);
  UniqueFd mnt(m);
  if (sys_move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return fail_sys("attach the overlay on ", target);
  return {};
}

Result<> unmount_overlay(const std::string& target) {
  if (umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
    return fail_sys("unmount ", target);
  return {};
}

Result<std::string> lowerdir_value(const std::vector<std::string>& lower) {
  std::string out;
  for (const auto& l : lower) {
    if (l.find_first_of(":,") != std::string::npos)
      return fail_msg("the image layer ", l, " has a ':' or ',' in its path, which a lowerdir= value cannot carry");
    out += (out.empty() ? "" : ":") + l;
  }
  return out;
}

}  // namespace husk::overlay
