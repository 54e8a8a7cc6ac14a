#include "runtime/mount_api.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>  // glibc 2.36 pulls <linux/mount.h> in itself
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/paths.h"

namespace husk::runtime {

namespace {

// Raw syscalls: older glibc has no wrappers, and errno is what we report.
int sys_open_tree(int dfd, const char* path, unsigned flags) {
  return static_cast<int>(::syscall(SYS_open_tree, dfd, path, flags));
}
int sys_move_mount(int from_dfd, const char* from, int to_dfd, const char* to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags));
}
int sys_mount_setattr(int dfd, const char* path, unsigned flags, struct mount_attr* attr) {
  return static_cast<int>(::syscall(SYS_mount_setattr, dfd, path, flags, attr, sizeof *attr));
}
int sys_fsopen(const char* fs, unsigned flags) { return static_cast<int>(::syscall(SYS_fsopen, fs, flags)); }
int sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int sys_fsmount(int fd, unsigned flags, unsigned attrs) {
  return static_cast<int>(::syscall(SYS_fsmount, fd, flags, attrs));
}

// glibc 2.36's <sys/statvfs.h> predates it; the kernel's value.
#ifndef ST_NOSYMFOLLOW
#define ST_NOSYMFOLLOW 0x2000
#endif

constexpr unsigned long kAtimeModes = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;

// The MS_* flags a mount (not a superblock) carries, as mount_setattr bits.
uint64_t attr_bits(unsigned long ms) {
  uint64_t a = 0;
  if (ms & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (ms & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (ms & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (ms & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  if (ms & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
  if (ms & MS_NOSYMFOLLOW) a |= MOUNT_ATTR_NOSYMFOLLOW;
  if (ms & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
  if (ms & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
  return a;  // MS_RELATIME is MOUNT_ATTR_RELATIME == 0
}

// The flags a mount has now, as MS_* (statvfs reports them as ST_*).
Result<unsigned long> current_flags(int fd) {
  struct statvfs st;
  if (::fstatvfs(fd, &st) < 0) return fail_sys("statfs");
  unsigned long ms = 0;
  if (st.f_flag & ST_RDONLY) ms |= MS_RDONLY;
  if (st.f_flag & ST_NOSUID) ms |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) ms |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) ms |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) ms |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) ms |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) ms |= MS_RELATIME;
  if (st.f_flag & ST_NOSYMFOLLOW) ms |= MS_NOSYMFOLLOW;
  return ms;
}

Result<> setattr(int fd, bool recursive, struct mount_attr* attr, const char* what) {
  unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  if (sys_mount_setattr(fd, "", flags, attr) < 0) return fail_sys(what);
  return {};
}

// A forked child parked in a fresh user namespace; killed and reaped when
// this goes out of scope, on every path.
struct NamespaceHolder {
  pid_t pid = -1;
  UniqueFd release;  // closing it lets the child exit
  ~NamespaceHolder() {
    if (pid <= 0) return;
    release.reset();
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
};

std::string map_text(const std::vector<oci::IdMapping>& maps) {
  std::string out;
  for (const auto& m : maps) out += cat(m.container_id, ' ', m.host_id, ' ', m.size, '\n');
  return out;
}

}  // namespace

Result<UniqueFd> clone_tree(int fd, bool recursive) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  int tree = sys_open_tree(fd, "", flags);
  if (tree < 0) return fail_sys("open_tree");
  return UniqueFd(tree);
}

Result<UniqueFd> clone_tree_at(const std::string& host_path, bool recursive) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  int tree = sys_open_tree(AT_FDCWD, host_path.c_str(), flags);
  if (tree < 0) return fail_sys("open_tree ", host_path);
  return UniqueFd(tree);
}

Result<> attach_tree(int tree, int target) {
  if (sys_move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return fail_sys("move_mount");
  return {};
}

Result<> set_mount_flags(int fd, unsigned long set, unsigned long clear, bool recursive, bool keep_locked) {
  set &= ~clear;
  if (keep_locked) clear &= ~TRY(current_flags(fd));
  if (attr_bits(set | clear) == 0 && !((set | clear) & kAtimeModes)) return {};

  struct mount_attr attr = {};
  attr.attr_set = attr_bits(set);
  attr.attr_clr = attr_bits(clear) & ~static_cast<uint64_t>(MOUNT_ATTR__ATIME);
  // An atime mode is a field, not a bit: changing it means clearing the
  // field; clearing a mode alone falls back to relatime (0).
  if ((set | clear) & kAtimeModes) attr.attr_clr |= MOUNT_ATTR__ATIME;
  if (sys_mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr) == 0) return {};
  if (errno == EPERM && keep_locked && (attr.attr_clr & MOUNT_ATTR__ATIME)) {
    // The atime mode is locked in a user namespace too: keep the mount's.
    attr.attr_set &= ~static_cast<uint64_t>(MOUNT_ATTR__ATIME);
    attr.attr_clr &= ~static_cast<uint64_t>(MOUNT_ATTR__ATIME);
    if (sys_mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr) == 0) return {};
  }
  if (errno != ENOSYS) return fail_sys("mount_setattr");

  // Kernel < 5.12: a bind remount of the top mount, carrying the flags it
  // already has so locked ones stay set.
  unsigned long now = TRY(current_flags(fd));
  unsigned long want = (now & ~clear) | set;
  if (set & kAtimeModes) want = (want & ~kAtimeModes) | (set & kAtimeModes);
  if (::mount(nullptr, fd_path(fd).c_str(), nullptr, MS_REMOUNT | MS_BIND | want, nullptr) < 0)
    return fail_sys("remount");
  return {};
}

Result<> set_propagation(int fd, unsigned long propagation) {
  if (propagation == 0) return {};
  struct mount_attr attr = {};
  attr.propagation = propagation & ~static_cast<unsigned long>(MS_REC);
  unsigned flags = AT_EMPTY_PATH | ((propagation & MS_REC) ? AT_RECURSIVE : 0);
  if (sys_mount_setattr(fd, "", flags, &attr) == 0) return {};
  if (errno != ENOSYS) return fail_sys("set propagation");
  if (::mount(nullptr, fd_path(fd).c_str(), nullptr, propagation, nullptr) < 0) return fail_sys("set propagation");
  return {};
}

Result<> set_idmap(int tree, int userns_fd, bool recursive) {
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  return setattr(tree, recursive, &attr, "idmap the mount");
}

Result<UniqueFd> make_idmap_userns(const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids) {
  if (uids.empty() && gids.empty()) return fail_errno(EINVAL, "idmapped mount without uid or gid mappings");
  int ready[2], hold[2];
  if (::pipe2(ready, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  if (::pipe2(hold, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd hold_r(hold[0]), hold_w(hold[1]);

  NamespaceHolder child;
  child.pid = ::fork();
  if (child.pid < 0) return fail_sys("fork the idmap user namespace holder");
  if (child.pid == 0) {
    // Async-signal-safe only: the parent may be anything.
    char c = 0;
    // Only the parent may hold the write end, or the read below never ends.
    ::close(hold[1]);
    ::close(ready[0]);
    // The parent writes our maps: a non-dumpable child's /proc files are
    // root's, and the container init is non-dumpable.
    if (::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) ::_exit(1);
    if (::unshare(CLONE_NEWUSER) < 0) ::_exit(1);
    // Our pid as the /proc we both see names it: the caller may be in a new
    // pid namespace while /proc is still the host's.
    char self[32];
    ssize_t len = ::readlink("/proc/self", self, sizeof self - 1);
    if (len <= 0) ::_exit(1);
    if (::write(ready[1], self, static_cast<size_t>(len)) != len) ::_exit(1);
    (void)!::read(hold[0], &c, 1);
    ::_exit(0);
  }
  child.release = std::move(hold_w);
  ready_w.reset();
  hold_r.reset();
  char buf[32];
  ssize_t n;
  do {
    n = ::read(ready_r.get(), buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return fail_errno(EPERM, "unshare a user namespace for an idmapped mount");
  buf[n] = '\0';

  // A mapping for one side only: use it for both, so no id is left unmapped.
  std::string proc = cat("/proc/", buf, "/");
  TRYV_CTX(write_file(proc + "uid_map", map_text(uids.empty() ? gids : uids)), "idmapped mount uid map");
  TRYV_CTX(write_file(proc + "gid_map", map_text(gids.empty() ? uids : gids)), "idmapped mount gid map");
  return TRY_CTX(open_fd(proc + "ns/user", O_RDONLY), "idmapped mount user namespace");
}

Result<UniqueFd> idmapped_rootfs(const std::string& rootfs, int userns_fd) {
  const std::string label = cat("annotations.", kRootfsIdmapAnnotation, ": idmap the rootfs ", rootfs);
  UniqueFd tree = TRY_CTX(clone_tree_at(rootfs, true), label);
  if (auto r = set_idmap(tree.get(), userns_fd, true); !r) {
    if (r.error().code() == EINVAL || r.error().code() == EOPNOTSUPP)
      return fail_errno(r.error().code(), label, ": its filesystem does not support idmapped mounts");
    return std::unexpected(std::move(r.error()).with_context(label));
  }
  return tree;
}

Result<bool> supports_idmap(const std::string& path) {
  // Any mapping but the filesystem's own will do.
  std::vector<oci::IdMapping> maps = {oci::IdMapping{0, 0x10000, 0x10000}};
  UniqueFd userns = TRY_CTX(make_idmap_userns(maps, maps), "check idmapped mounts on ", path);
  UniqueFd tree = TRY_CTX(clone_tree_at(path, false), "check idmapped mounts on ", path);
  if (auto r = set_idmap(tree.get(), userns.get(), false); !r) {
    if (r.error().code() == EINVAL || r.error().code() == EOPNOTSUPP) return false;
    return std::unexpected(std::move(r.error()).with_context(cat("check idmapped mounts on ", path)));
  }
  return true;
}

Result<> mount_idmapped(const std::string& src, const std::string& dst, const std::vector<oci::IdMapping>& maps) {
  return mount_idmapped(src, dst, maps, maps);
}

Result<> mount_idmapped(const std::string& src, const std::string& dst, const std::vector<oci::IdMapping>& uids,
                        const std::vector<oci::IdMapping>& gids) {
  const std::string label = cat("idmapped mount of ", src, " on ", dst);
  UniqueFd userns = TRY_CTX(make_idmap_userns(uids, gids), label);
  UniqueFd tree = TRY_CTX(clone_tree_at(src, true), label);
  if (auto r = set_idmap(tree.get(), userns.get(), true); !r) {
    if (r.error().code() == EINVAL || r.error().code() == EOPNOTSUPP)
      return fail_errno(r.error().code(), label, ": the file system of ", src, " does not support idmapped mounts");
    return std::unexpected(std::move(r.error()).with_context(label));
  }
  UniqueFd at = TRY_CTX(open_fd(dst, O_PATH | O_DIRECTORY | O_CLOEXEC), label);
  return attach_tree(tree.get(), at.get());
}

Result<UniqueFd> make_empty_tmpfs(bool readonly) {
  int fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fs < 0) return fail_sys("fsopen tmpfs");
  UniqueFd ctx(fs);
  if (readonly && sys_fsconfig(fs, FSCONFIG_SET_FLAG, "ro", nullptr, 0) < 0) return fail_sys("fsconfig ro");
  if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return fail_sys("fsconfig create tmpfs");
  int mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, readonly ? MOUNT_ATTR_RDONLY : 0);
  if (mnt < 0) return fail_sys("fsmount tmpfs");
  return UniqueFd(mnt);
}

}  // namespace husk::runtime
