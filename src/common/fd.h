// Owned file descriptors and small fd-level I/O helpers. Every fd husk opens
// is O_CLOEXEC and owned by a UniqueFd so a failure unwinds it.
#pragma once

#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"

namespace husk {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Whole-buffer I/O that retries on EINTR and short counts.
Result<> write_all(int fd, std::string_view data);
Result<std::string> read_all(int fd);
Result<std::string> read_file(const std::string& path);

// Whether the namespace `ns_fd` (of /proc/PID/ns/KIND or NS_GET_USERNS) is
// this process's own of that kind ("user", "net", ...).
Result<bool> is_own_namespace(int ns_fd, const char* kind);
Result<std::string> read_file_at(int dirfd, const std::string& path);
// Write a small file (sysctl, cgroup knob, /proc/<pid>/uid_map): one write().
Result<> write_file(const std::string& path, std::string_view data);
Result<> write_file_at(int dirfd, const std::string& path, std::string_view data);
// Atomic replace: temp file in the same dir, fsync, rename.
Result<> write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0600);

Result<UniqueFd> open_fd(const std::string& path, int flags, mode_t mode = 0);
Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);

}  // namespace husk
