// The container's cgroup (cgroup v2 only). One interface, two managers:
// cgroupfs (default) and systemd transient scopes (--systemd-cgroup), plus
// "disabled". The fs manager works on any directory, so unit tests point it
// at a fake tree. On a hybrid host (v1 controllers, cgroup2 at
// /sys/fs/cgroup/unified with none) the unified hierarchy still gives each
// container its own cgroup for freeze, kill and ps; a resource that needs a
// controller the hierarchy does not offer is an error naming the controller.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "oci/spec.h"

namespace husk::cgroups {

enum class ManagerKind { Fs, Systemd, Disabled };

struct Options {
  ManagerKind kind = ManagerKind::Fs;
  // Mount point of the cgroup2 hierarchy; empty = detect (/sys/fs/cgroup
  // when it is cgroup2, else /sys/fs/cgroup/unified).
  std::string mount_point;
  std::string container_id;
  // linux.cgroupsPath as written ("" when absent). fs: "/a/b" is under the
  // hierarchy root, "a/b" under husk's own cgroup; absent = "/husk/<id>".
  // systemd: "slice:prefix:name".
  std::string cgroups_path;
  bool rootless = false;
  // linux.devices: a default device rule whose node the spec replaces is
  // left out of the device program (device_bpf.h).
  std::vector<oci::Device> devices;
};

struct MemoryStats {
  uint64_t usage = 0, max_usage = 0, limit = 0;  // memory.current, .peak, .max
  uint64_t swap_usage = 0, swap_limit = 0;       // memory.swap.current, .max
  uint64_t anon = 0, file = 0, kernel = 0;       // from memory.stat
  uint64_t oom = 0, oom_kill = 0, max = 0;       // from memory.events ("max": hits of the limit)
  std::map<std::string, uint64_t> stat;          // memory.stat as it is
};
struct CpuStats {
  uint64_t usage_usec = 0, user_usec = 0, system_usec = 0;
  uint64_t nr_periods = 0, nr_throttled = 0, throttled_usec = 0;
};
// One line of io.stat.
struct IoDeviceStats {
  uint32_t major = 0, minor = 0;
  uint64_t rbytes = 0, wbytes = 0, rios = 0, wios = 0, dbytes = 0, dios = 0;
};
// hugetlb.<size>.current/.max/.events for one page size ("2MB").
struct HugetlbStats {
  std::string page_size;
  uint64_t usage = 0, limit = 0, failcnt = 0;
};
struct Stats {
  std::optional<MemoryStats> memory;
  std::optional<CpuStats> cpu;
  std::optional<uint64_t> pids_current;
  std::optional<uint64_t> pids_limit;
  std::vector<IoDeviceStats> io;
  std::vector<HugetlbStats> hugetlb;
};

// When the cgroup comes to exist. Fs: create() makes the directory before
// the container init is cloned (clone3 CLONE_INTO_CGROUP). Systemd: a
// transient scope is started around a process, so create() only checks
// that systemd is reachable and add_process(init) starts the scope; only
// then do open_dir(), apply() and the rest work.
enum class Creation { BeforeProcess, AroundProcess };

class Manager {
 public:
  virtual ~Manager() = default;

  virtual Creation creation() const { return Creation::BeforeProcess; }
  // Make the cgroup (enabling needed controllers in the parents).
  virtual Result<> create() = 0;
  // O_PATH|O_DIRECTORY fd of the cgroup, for clone3 CLONE_INTO_CGROUP.
  virtual Result<UniqueFd> open_dir() = 0;
  virtual Result<> add_process(pid_t pid) = 0;
  // Resource files, and the device program (device_bpf.h): always on the
  // cgroup this manager created, on a reopened one (update) only when
  // resources.devices has rules.
  virtual Result<> apply(const oci::Resources& resources) = 0;
  // Freeze or thaw, waiting until cgroup.events says it is done.
  virtual Result<> freeze(bool frozen) = 0;
  virtual Result<bool> frozen() = 0;
  // Signal every process in the cgroup (cgroup.kill for SIGKILL).
  virtual Result<> kill_all(int signal) = 0;
  virtual Result<std::vector<pid_t>> pids() = 0;
  virtual Result<Stats> stats() = 0;
  // Remove the cgroup (and scope); killing what is left. Idempotent.
  virtual Result<> destroy() = 0;
  // Absolute path of the cgroup directory ("" when disabled); recorded in
  // state.json so later commands reattach with open_existing().
  virtual std::string path() const = 0;
  // The systemd unit that owns the cgroup ("" for the other managers);
  // recorded in state.json beside path().
  virtual std::string unit() const { return ""; }
};

Result<std::unique_ptr<Manager>> make_manager(const Options& opts);

// What state.json recorded of a cgroup made earlier.
struct Recorded {
  ManagerKind kind = ManagerKind::Fs;
  std::string path;          // absolute cgroup directory, "" when none
  std::string systemd_unit;  // systemd: the scope's unit name
  bool rootless = false;     // systemd: the user manager, not the system one
  std::vector<oci::Device> devices;  // the container's linux.devices, as for Options
};
// Reattach to a cgroup made earlier, for kill, pause, ps, update, stats and
// delete.
Result<std::unique_ptr<Manager>> open_existing(const Recorded& rec);

// Where the cgroup2 hierarchy is mounted, "" if nowhere.
std::string detect_mount_point();

}  // namespace husk::cgroups
