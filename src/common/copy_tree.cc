#include "common/copy_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <map>
#include <string>
#include <utility>

#include "common/fd.h"

namespace husk {

namespace {

Result<> copy_file_data(int from, int to, off_t size) {
  off_t left = size;
  bool ranges = true;
  while (left > 0) {
    // copy_file_range shares extents where the file system can (a reflink
    // on btrfs or xfs); sendfile copies between any two.
    ssize_t n = -1;
    if (ranges) {
      n = ::copy_file_range(from, nullptr, to, nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && errno != EINTR) ranges = false;
    }
    if (!ranges) n = ::sendfile(to, from, nullptr, static_cast<size_t>(left));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("copy");
    }
    if (n == 0) break;  // the file shrank under us
    left -= n;
  }
  return {};
}

class Copier {
 public:
  Copier(const CopyOptions& o, int to_root) : o_(o), to_root_(to_root) {}

  Result<> tree(int from_dir, int to_dir, const std::string& rel) {
    // fdopendir takes the fd over; give it a copy so the caller keeps its own.
    int d = ::fcntl(from_dir, F_DUPFD_CLOEXEC, 3);
    if (d < 0) return fail_sys("dup");
    DIR* dir = ::fdopendir(d);
    if (!dir) {
      ::close(d);
      return fail_sys("opendir ", shown(rel));
    }
    ::rewinddir(dir);
    Result<> result;
    errno = 0;
    while (struct dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      result = entry(from_dir, to_dir, rel.empty() ? name : rel + "/" + name, name.c_str());
      if (!result) break;
      errno = 0;
    }
    if (result && errno != 0) result = fail_sys("readdir ", shown(rel));
    ::closedir(dir);
    return result;
  }

 private:
  static std::string shown(const std::string& rel) { return rel.empty() ? "." : rel; }

  Result<> entry(int from_dir, int to_dir, const std::string& rel, const char* name) {
    struct stat st;
    if (::fstatat(from_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("stat ", rel);
    // A second name of an inode already copied is a link to the copy.
    std::pair<dev_t, ino_t> key{st.st_dev, st.st_ino};
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      if (auto seen = links_.find(key); seen != links_.end()) {
        if (::linkat(to_root_, seen->second.c_str(), to_dir, name, 0) < 0)
          return fail_sys("link ", rel, " to ", seen->second);
        return {};
      }
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR: {
        if (::mkdirat(to_dir, name, 0700) < 0 && errno != EEXIST) return fail_sys("mkdir ", rel);
        UniqueFd from = TRY(open_at(from_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
        UniqueFd to = TRY(open_at(to_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
        TRYV(tree(from.get(), to.get(), rel));
        break;
      }
      case S_IFREG: {
        UniqueFd from = TRY(open_at(from_dir, name, O_RDONLY | O_NOFOLLOW));
        UniqueFd to = TRY(open_at(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
        TRYV_CTX(copy_file_data(from.get(), to.get(), st.st_size), rel);
        break;
      }
      case S_IFLNK: {
        std::string target(PATH_MAX, '\0');
        ssize_t n = ::readlinkat(from_dir, name, target.data(), target.size());
        if (n < 0) return fail_sys("readlink ", rel);
        target.resize(static_cast<size_t>(n));
        if (::symlinkat(target.c_str(), to_dir, name) < 0) return fail_sys("symlink ", rel);
        break;
      }
      case S_IFCHR:
      case S_IFBLK:
      case S_IFIFO:
        if (::mknodat(to_dir, name, st.st_mode, st.st_rdev) < 0) return fail_sys("mknod ", rel);
        break;
      default:
        return {};  // sockets are bound by a process, not copied
    }
    TRYV(metadata(from_dir, to_dir, rel, name, st));
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) links_.emplace(key, rel);
    return {};
  }

  // Owner, extended attributes, mode and times of name in to_dir, as the
  // source has them. In that order: chown clears setuid bits and file
  // capabilities, which come back after it. Symlinks get no mode.
  Result<> metadata(int from_dir, int to_dir, const std::string& rel, const char* name, const struct stat& st) {
    uint32_t uid = o_.uid ? o_.uid(st.st_uid) : st.st_uid, gid = o_.gid ? o_.gid(st.st_gid) : st.st_gid;
    if (::fchownat(to_dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("chown ", rel, " to ", uid, ":", gid);
    if (o_.xattrs) TRYV(xattrs(from_dir, to_dir, rel, name));
    if (!S_ISLNK(st.st_mode) && ::fchmodat(to_dir, name, st.st_mode & 07777, 0) < 0) return fail_sys("chmod ", rel);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(to_dir, name, times, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("set times of ", rel);
    return {};
  }

  Result<> xattrs(int from_dir, int to_dir, const std::string& rel, const char* name) {
    // The xattr calls take paths: the entries through their directories' fds.
    std::string from = cat("/proc/self/fd/", from_dir, "/", name), to = cat("/proc/self/fd/", to_dir, "/", name);
    std::string keys(4096, '\0');
    ssize_t n;
    while ((n = ::llistxattr(from.c_str(), keys.data(), keys.size())) < 0 && errno == ERANGE) keys.resize(keys.size() * 4);
    if (n < 0) {
      if (errno == ENOTSUP) return {};
      return fail_sys("list the extended attributes of ", rel);
    }
    keys.resize(static_cast<size_t>(n));
    for (size_t at = 0; at < keys.size();) {
      std::string key = keys.c_str() + at;
      at += key.size() + 1;
      std::string value(256, '\0');
      ssize_t len;
      while ((len = ::lgetxattr(from.c_str(), key.c_str(), value.data(), value.size())) < 0 && errno == ERANGE)
        value.resize(value.size() * 4);
      if (len < 0) {
        if (errno == ENODATA) continue;  // removed meanwhile
        return fail_sys("read ", key, " of ", rel);
      }
      value.resize(static_cast<size_t>(len));
      if (o_.uid && o_.gid) {
        std::optional<std::string> moved;
        if (key == "system.posix_acl_access" || key == "system.posix_acl_default")
          moved = idshift::map_acl(value, o_.uid, o_.gid);
        else if (key == "security.capability")
          moved = idshift::map_file_caps(value, o_.uid);
        if (moved) value = std::move(*moved);
      }
      if (::lsetxattr(to.c_str(), key.c_str(), value.data(), value.size(), 0) < 0) {
        if ((errno == ENOTSUP || errno == EOPNOTSUPP) && key == "security.selinux") continue;
        return fail_sys("set ", key, " of ", rel);
      }
    }
    return {};
  }

  const CopyOptions& o_;
  int to_root_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // inode -> the copy's path under to_root_
};

}  // namespace

Result<> copy_tree(int from_dir, int to_dir, const CopyOptions& options) {
  Copier c(options, to_dir);
  return c.tree(from_dir, to_dir, "");
}

}  // namespace husk
