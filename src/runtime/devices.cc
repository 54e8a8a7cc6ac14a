#include "runtime/devices.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.h"
#include "runtime/mount_api.h"
#include "runtime/paths.h"

namespace husk::runtime {

namespace {

// Nodes get exactly the mode asked for, whatever the caller's umask.
class UmaskZero {
 public:
  UmaskZero() : saved_(::umask(0)) {}
  ~UmaskZero() { ::umask(saved_); }
  UmaskZero(const UmaskZero&) = delete;
  UmaskZero& operator=(const UmaskZero&) = delete;

 private:
  mode_t saved_;
};

std::pair<std::string, std::string> split_parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return {"/", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

Result<> bind_host_node(int rootfd, const std::string& path) {
  UniqueFd target = TRY(touch_in_root(rootfd, path, 0600));
  UniqueFd tree = TRY(clone_tree_at(path, false));
  return attach_tree(tree.get(), target.get());
}

// mknod, replacing whatever non-directory is in the way (an image may ship a
// regular file or a dangling symlink where a device belongs).
Result<> make_node(int rootfd, const std::string& path, mode_t type, dev_t rdev, mode_t mode, uid_t uid, gid_t gid) {
  auto [parent, name] = split_parent(path);
  if (name.empty() || name == "." || name == "..") return fail_errno(EINVAL, "device path ", path);
  UniqueFd dir = TRY(mkdir_in_root(rootfd, parent));
  UmaskZero umask_zero;
  if (::mknodat(dir.get(), name.c_str(), type | mode, rdev) < 0) {
    if (errno != EEXIST) return fail_sys("mknod ", path);
    struct stat st;
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("stat ", path);
    bool same = (st.st_mode & S_IFMT) == type && (type == S_IFIFO || st.st_rdev == rdev);
    if (!same) {
      if (::unlinkat(dir.get(), name.c_str(), 0) < 0) return fail_sys("remove ", path);
      if (::mknodat(dir.get(), name.c_str(), type | mode, rdev) < 0) return fail_sys("mknod ", path);
    }
  }
  if (::fchownat(dir.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("chown ", path);
  if (::fchmodat(dir.get(), name.c_str(), mode, 0) < 0) return fail_sys("chmod ", path);
  return {};
}

struct DefaultDevice {
  const char* path;
  unsigned major, minor;
};
constexpr DefaultDevice kDefaultDevices[] = {
    {"/dev/null", 1, 3},    {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
    {"/dev/random", 1, 8},  {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

Result<> make_symlink(int dirfd, const char* target, const char* name) {
  if (::symlinkat(target, dirfd, name) < 0 && errno != EEXIST) return fail_sys("symlink /dev/", name, " -> ", target);
  return {};
}

}  // namespace

Result<> create_default_devices(int rootfd, bool in_user_namespace) {
  for (const DefaultDevice& d : kDefaultDevices) {
    if (in_user_namespace)
      TRYV_CTX(bind_host_node(rootfd, d.path), "bind ", d.path);
    else
      TRYV(make_node(rootfd, d.path, S_IFCHR, makedev(d.major, d.minor), 0666, 0, 0));
  }
  UniqueFd dev = TRY(mkdir_in_root(rootfd, "/dev"));
  return make_symlink(dev.get(), "pts/ptmx", "ptmx");
}

Result<> create_device(int rootfd, const oci::Device& d, bool in_user_namespace) {
  mode_t type;
  switch (d.type) {
    case 'c':
    case 'u': type = S_IFCHR; break;
    case 'b': type = S_IFBLK; break;
    case 'p': type = S_IFIFO; break;
    default: return fail_errno(EINVAL, "device ", d.path, ": unknown type '", d.type, "'");
  }
  if (in_user_namespace) {
    TRYV_CTX(bind_host_node(rootfd, d.path), "bind device ", d.path);
    return {};
  }
  dev_t rdev = type == S_IFIFO ? 0 : makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor));
  mode_t mode = d.file_mode ? (*d.file_mode & 07777) : 0666;
  return make_node(rootfd, d.path, type, rdev, mode, d.uid.value_or(0), d.gid.value_or(0));
}

Result<> create_dev_symlinks(int rootfd) {
  UniqueFd dev = TRY(mkdir_in_root(rootfd, "/dev"));
  TRYV(make_symlink(dev.get(), "/proc/self/fd", "fd"));
  TRYV(make_symlink(dev.get(), "/proc/self/fd/0", "stdin"));
  TRYV(make_symlink(dev.get(), "/proc/self/fd/1", "stdout"));
  TRYV(make_symlink(dev.get(), "/proc/self/fd/2", "stderr"));
  // Only where the kernel has one, as runc does.
  if (::access("/proc/kcore", F_OK) == 0) TRYV(make_symlink(dev.get(), "/proc/kcore", "core"));
  return {};
}

Result<> bind_console(int rootfd, const std::string& console_path) {
  UniqueFd target = TRY(touch_in_root(rootfd, "/dev/console", 0600));
  UniqueFd tree = TRY_CTX(clone_tree_at(console_path, false), "bind ", console_path, " onto /dev/console");
  TRYV_CTX(attach_tree(tree.get(), target.get()), "bind ", console_path, " onto /dev/console");
  return {};
}

}  // namespace husk::runtime
