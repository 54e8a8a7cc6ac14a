#include "common/fd.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>

namespace husk {

Result<> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<std::string> read_all(int fd) {
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("read");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<UniqueFd> open_fd(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return fail_sys("open ", path);
  return UniqueFd(fd);
}

Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode) {
  int fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return fail_sys("open ", path);
  return UniqueFd(fd);
}

Result<std::string> read_file(const std::string& path) {
  return read_file_at(AT_FDCWD, path);
}

Result<std::string> read_file_at(int dirfd, const std::string& path) {
  UniqueFd fd = TRY(open_at(dirfd, path, O_RDONLY));
  return TRY_CTX(read_all(fd.get()), "read ", path);
}

Result<> write_file(const std::string& path, std::string_view data) {
  return write_file_at(AT_FDCWD, path, data);
}

Result<> write_file_at(int dirfd, const std::string& path, std::string_view data) {
  int fd = ::openat(dirfd, path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return fail_sys("open ", path);
  UniqueFd owned(fd);
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_sys("write ", path);
  if (static_cast<size_t>(n) != data.size()) return fail_errno(EIO, "short write to ", path);
  return {};
}

Result<> write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmpXXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return fail_sys("create temporary file for ", path);
  UniqueFd owned(fd);
  auto cleanup_fail = [&](Error e) -> Result<> {
    ::unlink(tmp.c_str());
    return fail(std::move(e));
  };
  if (::fchmod(fd, mode) < 0) return cleanup_fail(Error::sys("chmod " + tmp));
  if (auto r = write_all(fd, data); !r) return cleanup_fail(std::move(r.error()).with_context("write " + tmp));
  if (::fsync(fd) < 0) return cleanup_fail(Error::sys("fsync " + tmp));
  owned.reset();
  if (::rename(tmp.c_str(), path.c_str()) < 0) return cleanup_fail(Error::sys("rename " + tmp + " to " + path));
  return {};
}

Result<bool> is_own_namespace(int ns_fd, const char* kind) {
  struct stat a, b;
  std::string self = cat("/proc/self/ns/", kind);
  if (fstat(ns_fd, &a) < 0 || stat(self.c_str(), &b) < 0) return fail_sys("stat ", kind, " namespaces");
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

}  // namespace husk
