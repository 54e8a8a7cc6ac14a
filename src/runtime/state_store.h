// Where husk keeps what it knows of each container: a directory per
// container under the root (/run/husk, or $XDG_RUNTIME_DIR/husk rootless)
// holding `state` (key=value lines, replaced atomically), `config.json` (the
// spec the container was created from) and `exec.fifo` (until start). Every
// command on one container holds flock() on that directory for its whole run.
// A pid is stored with its start time so a recycled pid is never taken for
// the container.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/program.h"
#include "oci/spec.h"

namespace husk::runtime {

struct ContainerRecord {
  std::string id;
  std::string bundle;       // absolute
  std::string rootfs;       // absolute
  pid_t pid = 0;            // host pid of the container init, 0 before it exists
  uint64_t pid_start = 0;   // its start time (clock ticks since boot)
  std::string cgroup_path;  // absolute cgroup directory, "" when none
  std::string cgroup_manager = "fs";  // fs, systemd, disabled
  int64_t created = 0;      // unix time in ns
  bool rootless = false;
  uid_t owner = 0;
  std::string systemd_scope;  // unit name for the systemd manager
  pid_t fuse_pid = 0;          // the root's fuse-overlayfs server (runtime/fuse_overlay.h), 0 when none
  uint64_t fuse_start = 0;
};

// process_start_time and process_alive: src/common/program.h.
using husk::process_alive;
using husk::process_start_time;

// Container ids: what runc accepts ([A-Za-z0-9_+.-], not "." or "..").
Result<> validate_container_id(const std::string& id);

class ContainerDir {
 public:
  ContainerDir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

  Result<> save(const ContainerRecord& rec) const;
  Result<ContainerRecord> load() const;
  std::string fifo_path() const { return path_ + "/exec.fifo"; }
  std::string config_path() const { return path_ + "/config.json"; }
  // Let other commands in while this one goes on (foreground run).
  void unlock() const;
  // Take the lock again after unlock(): waits for the command holding it.
  // False when that command was `delete` and the directory is gone.
  Result<bool> relock() const;
  // Remove the directory and everything in it (the lock goes with it).
  Result<> remove();

 private:
  std::string path_;
  UniqueFd fd_;  // O_DIRECTORY, flock()ed
};

// "0 0 4294967295": /proc/self/uid_map of the initial user namespace.
bool is_initial_id_map(std::string_view uid_map);

class StateStore {
 public:
  // Default root: /run/husk for root, $XDG_RUNTIME_DIR/husk rootless (an
  // error when that is unset, not a directory or not owned by the caller;
  // root of a user namespace without it keeps /run/husk).
  static Result<std::string> default_root(bool rootless);
  static Result<StateStore> open(const std::string& root);

  const std::string& root() const { return root_; }
  // A new container's directory, locked; an error if the id is taken.
  Result<ContainerDir> create(const std::string& id) const;
  // An existing container's directory, locked (waits for other commands).
  Result<ContainerDir> open_container(const std::string& id) const;
  // The directory of a create that died before its first save (locked:
  // no create is still at work in it), for delete to clean up.
  Result<ContainerDir> open_unsaved(const std::string& id) const;
  Result<std::vector<std::string>> list() const;

 private:
  explicit StateStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// What `husk state` reports, derived from the record and the live process:
// created while exec.fifo exists (start removes it).
oci::Status derive_status(const ContainerRecord& rec, bool fifo_present, bool frozen);

}  // namespace husk::runtime
