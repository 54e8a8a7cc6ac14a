#include "common/copy_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>

#include "common/fd.h"

namespace husk {

namespace {

Result<> copy_file_data(int from, int to, off_t size) {
  off_t left = size;
  while (left > 0) {
    ssize_t n = ::sendfile(to, from, nullptr, static_cast<size_t>(left));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("copy");
    }
    if (n == 0) break;  // the file shrank under us
    left -= n;
  }
  return {};
}

// Owner, mode and times of name in to_dir, taken from st. Symlinks get only
// their owner (their mode means nothing).
Result<> copy_metadata(int to_dir, const char* name, const struct stat& st) {
  if (::fchownat(to_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("chown ", name);
  if (!S_ISLNK(st.st_mode) && ::fchmodat(to_dir, name, st.st_mode & 07777, 0) < 0) return fail_sys("chmod ", name);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(to_dir, name, times, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("set times of ", name);
  return {};
}

Result<> copy_entry(int from_dir, int to_dir, const char* name) {
  struct stat st;
  if (::fstatat(from_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return fail_sys("stat ", name);
  switch (st.st_mode & S_IFMT) {
    case S_IFDIR: {
      if (::mkdirat(to_dir, name, 0700) < 0 && errno != EEXIST) return fail_sys("mkdir ", name);
      UniqueFd from = TRY(open_at(from_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      UniqueFd to = TRY(open_at(to_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      TRYV_CTX(copy_tree(from.get(), to.get()), name);
      break;
    }
    case S_IFREG: {
      UniqueFd from = TRY(open_at(from_dir, name, O_RDONLY | O_NOFOLLOW));
      UniqueFd to = TRY(open_at(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
      TRYV_CTX(copy_file_data(from.get(), to.get(), st.st_size), name);
      break;
    }
    case S_IFLNK: {
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlinkat(from_dir, name, target.data(), target.size());
      if (n < 0) return fail_sys("readlink ", name);
      target.resize(static_cast<size_t>(n));
      if (::symlinkat(target.c_str(), to_dir, name) < 0) return fail_sys("symlink ", name);
      break;
    }
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
      if (::mknodat(to_dir, name, st.st_mode, st.st_rdev) < 0) return fail_sys("mknod ", name);
      break;
    default:
      return {};  // sockets are bound by a process, not copied
  }
  return copy_metadata(to_dir, name, st);
}

}  // namespace

Result<> copy_tree(int from_dir, int to_dir) {
  // fdopendir takes the fd over; give it a copy so the caller keeps its own.
  int d = ::fcntl(from_dir, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return fail_sys("dup");
  DIR* dir = ::fdopendir(d);
  if (!dir) {
    ::close(d);
    return fail_sys("opendir");
  }
  ::rewinddir(dir);
  Result<> result;
  errno = 0;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    result = copy_entry(from_dir, to_dir, name.c_str());
    if (!result) break;
    errno = 0;
  }
  if (result && errno != 0) result = fail_sys("readdir");
  ::closedir(dir);
  return result;
}

}  // namespace husk
