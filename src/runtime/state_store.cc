#include "runtime/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/text.h"

namespace husk::runtime {
namespace {

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string unescape(const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      ++i;
      out += v[i] == 'n' ? '\n' : v[i];
    } else {
      out += v[i];
    }
  }
  return out;
}

Result<> lock_dir(int fd, const std::string& path) {
  while (flock(fd, LOCK_EX) < 0) {
    if (errno != EINTR) return fail_sys("lock ", path);
  }
  return {};
}

Result<> mkdir_p(const std::string& path, mode_t mode) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) < 0 && errno != EEXIST) return fail_sys("mkdir ", cur);
  }
  return {};
}

Result<> remove_tree_at(int dirfd) {
  int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return fail_sys("dup");
  DIR* d = fdopendir(dup);
  if (!d) {
    ::close(dup);
    return fail_sys("opendir");
  }
  rewinddir(d);
  while (struct dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (e->d_type == DT_DIR) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        auto r = remove_tree_at(sub);
        ::close(sub);
        if (!r) {
          closedir(d);
          return r;
        }
      }
      if (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
        closedir(d);
        return fail_sys("remove ", e->d_name);
      }
    } else if (unlinkat(dirfd, e->d_name, 0) < 0 && errno != ENOENT) {
      closedir(d);
      return fail_sys("remove ", e->d_name);
    }
  }
  closedir(d);
  return {};
}

}  // namespace

Result<> validate_container_id(const std::string& id) {
  if (id.empty()) return fail_msg("container id is empty");
  if (id == "." || id == "..") return fail_msg("invalid container id \"", id, "\"");
  if (id.size() > 1024) return fail_msg("container id is longer than 1024 characters");
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '-' || c == '.';
    if (!ok) return fail_msg("invalid container id \"", id, "\": only letters, digits and _ + - . are allowed");
  }
  return {};
}

Result<> ContainerDir::save(const ContainerRecord& rec) const {
  std::string s;
  auto put = [&](const char* k, const std::string& v) { s += cat(k, "=", escape(v), "\n"); };
  put("id", rec.id);
  put("bundle", rec.bundle);
  put("rootfs", rec.rootfs);
  put("pid", std::to_string(rec.pid));
  put("pid_start", std::to_string(rec.pid_start));
  put("cgroup_path", rec.cgroup_path);
  put("cgroup_manager", rec.cgroup_manager);
  put("created", std::to_string(rec.created));
  put("rootless", rec.rootless ? "1" : "0");
  put("owner", std::to_string(rec.owner));
  put("systemd_scope", rec.systemd_scope);
  if (rec.fuse_pid > 0) {
    put("fuse_pid", std::to_string(rec.fuse_pid));
    put("fuse_start", std::to_string(rec.fuse_start));
  }
  return write_file_atomic(path_ + "/state", s, 0600);
}

Result<ContainerRecord> ContainerDir::load() const {
  std::string s = TRY(read_file(path_ + "/state"));
  std::map<std::string, std::string> kv = key_values(s);
  for (auto& [k, v] : kv) v = unescape(v);
  ContainerRecord rec;
  rec.id = kv["id"];
  rec.bundle = kv["bundle"];
  rec.rootfs = kv["rootfs"];
  rec.pid = static_cast<pid_t>(atoi(kv["pid"].c_str()));
  rec.pid_start = strtoull(kv["pid_start"].c_str(), nullptr, 10);
  rec.cgroup_path = kv["cgroup_path"];
  rec.cgroup_manager = kv["cgroup_manager"].empty() ? "fs" : kv["cgroup_manager"];
  rec.created = strtoll(kv["created"].c_str(), nullptr, 10);
  rec.rootless = kv["rootless"] == "1";
  rec.owner = static_cast<uid_t>(strtoul(kv["owner"].c_str(), nullptr, 10));
  rec.systemd_scope = kv["systemd_scope"];
  rec.fuse_pid = static_cast<pid_t>(atoi(kv["fuse_pid"].c_str()));
  rec.fuse_start = strtoull(kv["fuse_start"].c_str(), nullptr, 10);
  if (rec.id.empty()) return fail_msg("state file ", path_, "/state is corrupt");
  return rec;
}

void ContainerDir::unlock() const { flock(fd_.get(), LOCK_UN); }

Result<bool> ContainerDir::relock() const {
  TRYV(lock_dir(fd_.get(), path_));
  struct stat st;
  if (fstat(fd_.get(), &st) < 0) return fail_sys("stat ", path_);
  return st.st_nlink > 0 && faccessat(fd_.get(), "state", F_OK, 0) == 0;
}

Result<> ContainerDir::remove() {
  TRYV_CTX(remove_tree_at(fd_.get()), "remove state directory ", path_);
  if (::rmdir(path_.c_str()) < 0 && errno != ENOENT) return fail_sys("remove state directory ", path_);
  fd_.reset();  // the lock goes with the directory: waiters see it gone
  return {};
}

Result<std::string> StateStore::default_root(bool rootless) {
  const char* xdg = getenv("XDG_RUNTIME_DIR");
  // Root of a user namespace (podman's) is rootless and uses the user's
  // runtime directory as crun does; without one (an unprivileged LXC's root)
  // it keeps /run/husk.
  if (!rootless || (geteuid() == 0 && (!xdg || !*xdg))) return std::string("/run/husk");
  if (!xdg || !*xdg)
    return fail_msg(
        "XDG_RUNTIME_DIR is not set: a rootless husk keeps its state in $XDG_RUNTIME_DIR/husk "
        "(log in through a session that sets it, or pass --root DIR)");
  if (xdg[0] != '/') return fail_msg("XDG_RUNTIME_DIR \"", xdg, "\" is not an absolute path");
  struct stat st;
  if (stat(xdg, &st) < 0) return fail_sys("XDG_RUNTIME_DIR ", xdg);
  if (!S_ISDIR(st.st_mode)) return fail_errno(ENOTDIR, "XDG_RUNTIME_DIR ", xdg);
  if (st.st_uid != geteuid())
    return fail_msg("XDG_RUNTIME_DIR ", xdg, " is owned by uid ", st.st_uid, ", not by the caller (uid ", geteuid(),
                    "): another user's runtime directory (pass --root DIR)");
  return std::string(xdg) + "/husk";
}

bool is_initial_id_map(std::string_view uid_map) {
  // "         0          0 4294967295": every id, the initial user namespace.
  unsigned long long inside = 1, outside = 1, count = 0;
  std::string text(uid_map);
  if (sscanf(text.c_str(), "%llu %llu %llu", &inside, &outside, &count) != 3) return false;
  return inside == 0 && outside == 0 && count == 4294967295ULL;
}

Result<StateStore> StateStore::open(const std::string& root) {
  if (root.empty() || root[0] != '/') return fail_msg("--root must be an absolute path, got \"", root, "\"");
  TRYV(mkdir_p(root, 0700));
  return StateStore(root);
}

Result<ContainerDir> StateStore::create(const std::string& id) const {
  TRYV(validate_container_id(id));
  std::string path = root_ + "/" + id;
  // Searchable by others, not listable: a container whose user namespace
  // maps its root to another host uid binds the files husk writes here
  // (hosts, hostname, resolv.conf, all 0644) from inside that namespace.
  if (::mkdir(path.c_str(), 0711) < 0) {
    if (errno == EEXIST) return fail_errno(EEXIST, "container \"", id, "\" already exists");
    return fail_sys("mkdir ", path);
  }
  UniqueFd fd = TRY(open_fd(path, O_RDONLY | O_DIRECTORY));
  TRYV(lock_dir(fd.get(), path));
  return ContainerDir(path, std::move(fd));
}

Result<ContainerDir> StateStore::open_unsaved(const std::string& id) const {
  TRYV(validate_container_id(id));
  std::string path = root_ + "/" + id;
  int raw = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) return fail_sys("open ", path);
  UniqueFd fd(raw);
  TRYV(lock_dir(fd.get(), path));
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return fail_sys("stat ", path);
  if (st.st_nlink == 0 || faccessat(fd.get(), "state", F_OK, 0) == 0)
    return fail_errno(ENOENT, "container \"", id, "\" has no unsaved directory");
  return ContainerDir(path, std::move(fd));
}

Result<ContainerDir> StateStore::open_container(const std::string& id) const {
  TRYV(validate_container_id(id));
  std::string path = root_ + "/" + id;
  int raw = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return fail_errno(ENOENT, "container \"", id, "\" does not exist");
    return fail_sys("open ", path);
  }
  UniqueFd fd(raw);
  TRYV(lock_dir(fd.get(), path));
  // The holder we waited for may have been `delete`: the directory is gone.
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return fail_sys("stat ", path);
  if (st.st_nlink == 0) return fail_errno(ENOENT, "container \"", id, "\" does not exist");
  // A crash between mkdir and the first save leaves no state file.
  if (faccessat(fd.get(), "state", F_OK, 0) < 0) return fail_errno(ENOENT, "container \"", id, "\" does not exist");
  return ContainerDir(path, std::move(fd));
}

Result<std::vector<std::string>> StateStore::list() const {
  std::vector<std::string> ids;
  DIR* d = opendir(root_.c_str());
  if (!d) {
    if (errno == ENOENT) return ids;
    return fail_sys("open ", root_);
  }
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
    ids.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

oci::Status derive_status(const ContainerRecord& rec, bool fifo_present, bool frozen) {
  if (rec.pid == 0) return oci::Status::Creating;
  if (!process_alive(rec.pid, rec.pid_start)) return oci::Status::Stopped;
  if (fifo_present) return oci::Status::Created;
  if (frozen) return oci::Status::Paused;
  return oci::Status::Running;
}

}  // namespace husk::runtime
