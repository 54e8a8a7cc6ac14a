#include "runtime/paths.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

namespace husk::runtime {

namespace {

// Same bound as the kernel's MAXSYMLINKS, so both resolvers agree on ELOOP.
constexpr int kMaxSymlinks = 40;

std::vector<std::string> split_components(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// "/a/b/c" -> {"/a/b", "c"}; the parent of a single component is "/".
std::pair<std::string, std::string> split_last(const std::string& path) {
  std::vector<std::string> parts = split_components(path);
  if (parts.empty()) return {"/", ""};
  std::string parent;
  for (size_t i = 0; i + 1 < parts.size(); ++i) parent += "/" + parts[i];
  if (parent.empty()) parent = "/";
  return {parent, parts.back()};
}

Result<UniqueFd> dup_fd(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return fail_sys("dup");
  return UniqueFd(d);
}

}  // namespace

std::string fd_path(int fd) { return cat("/proc/self/fd/", fd); }

Result<UniqueFd> open_in_root_walk(int rootfd, const std::string& path, int flags, mode_t mode) {
  // The directories walked so far; ".." pops one but never the root, which is
  // how RESOLVE_IN_ROOT clamps it.
  std::vector<UniqueFd> stack;
  stack.push_back(TRY(dup_fd(rootfd)));
  std::vector<std::string> todo = split_components(path);
  std::reverse(todo.begin(), todo.end());  // a stack: back() is the next component
  int links = 0;

  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    bool last = todo.empty();
    if (name == ".") {
      if (!last) continue;
      break;
    }
    if (name == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    int dir = stack.back().get();
    int fd = ::openat(dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT && last && (flags & O_CREAT)) {
        fd = ::openat(dir, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0) return fail_sys("open ", path, " in root");
        return UniqueFd(fd);
      }
      return fail_sys("open ", path, " in root");
    }
    UniqueFd comp(fd);
    struct stat st;
    if (::fstat(comp.get(), &st) < 0) return fail_sys("stat ", name);
    if (S_ISLNK(st.st_mode)) {
      if (last && (flags & O_NOFOLLOW)) {
        if (flags & O_PATH) return comp;
        return fail_errno(ELOOP, "open ", path, " in root");
      }
      if (++links > kMaxSymlinks) return fail_errno(ELOOP, "open ", path, " in root");
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlinkat(comp.get(), "", target.data(), target.size());
      if (n < 0) return fail_sys("readlink ", name);
      target.resize(static_cast<size_t>(n));
      // An absolute link restarts at the container's root, not the host's.
      if (!target.empty() && target[0] == '/') stack.resize(1);
      std::vector<std::string> more = split_components(target);
      for (auto it = more.rbegin(); it != more.rend(); ++it) todo.push_back(*it);
      continue;
    }
    if (!last) {
      if (!S_ISDIR(st.st_mode)) return fail_errno(ENOTDIR, "open ", path, " in root");
      stack.push_back(std::move(comp));
      continue;
    }
    if (flags & O_PATH) {
      if ((flags & O_DIRECTORY) && !S_ISDIR(st.st_mode)) return fail_errno(ENOTDIR, "open ", path, " in root");
      return comp;
    }
    if ((flags & O_CREAT) && (flags & O_EXCL)) return fail_errno(EEXIST, "open ", path, " in root");
    // Reopen the checked component itself, never the name again.
    int real = ::openat(dir, name.c_str(), (flags & ~(O_CREAT | O_EXCL)) | O_NOFOLLOW | O_CLOEXEC);
    if (real < 0) return fail_sys("open ", path, " in root");
    return UniqueFd(real);
  }
  // Ended on a directory reached by ".", "..", "/" or a link to one.
  UniqueFd d = TRY(dup_fd(stack.back().get()));
  if (flags & O_PATH) return d;
  return open_at(d.get(), ".", flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW));
}

Result<UniqueFd> open_in_root(int rootfd, const std::string& path, int flags, mode_t mode) {
  std::string rel = path;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  if (rel.empty()) rel = ".";
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, rootfd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    // EAGAIN: a concurrent rename made the kernel give up; try again a bit.
    if (errno == EAGAIN && attempt < 16) continue;
    if (errno == ENOSYS) return open_in_root_walk(rootfd, rel, flags, mode);
    return fail_sys("open ", path, " in root");
  }
}

Result<UniqueFd> mkdir_in_root(int rootfd, const std::string& path, mode_t mode) {
  auto whole = open_in_root(rootfd, path, O_PATH | O_DIRECTORY);
  if (whole || whole.error().code() != ENOENT) return whole;
  // Walk down from the root, making each missing component in its resolved
  // parent: mkdirat() takes a single name, so no symlink is followed by it.
  UniqueFd cur = TRY(dup_fd(rootfd));
  std::string prefix;
  for (const std::string& name : split_components(path)) {
    prefix += "/" + name;
    auto next = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
    if (!next) {
      if (next.error().code() != ENOENT || name == ".." || name == ".") return next;
      if (::mkdirat(cur.get(), name.c_str(), mode) < 0 && errno != EEXIST)
        return fail_sys("mkdir ", prefix, " in root");
      next = TRY(open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY));
    }
    cur = std::move(*next);
  }
  return cur;
}

Result<UniqueFd> touch_in_root(int rootfd, const std::string& path, mode_t mode) {
  auto existing = open_in_root(rootfd, path, O_PATH);
  if (existing || existing.error().code() != ENOENT) return existing;
  auto [parent, name] = split_last(path);
  if (name.empty() || name == "." || name == "..") return fail_errno(EINVAL, "create file ", path, " in root");
  UniqueFd dir = TRY(mkdir_in_root(rootfd, parent));
  int fd = ::openat(dir.get(), name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return fail_sys("create file ", path, " in root");
  ::close(fd);
  return open_in_root(rootfd, path, O_PATH);
}

}  // namespace husk::runtime
