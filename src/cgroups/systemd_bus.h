// A client of systemd's manager (org.freedesktop.systemd1) over sd-bus:
// start a transient scope around a process, stop a unit, reset a failed
// one, each waiting for its job's JobRemoved signal.
//
// libsystemd is loaded with dlopen on the first connection, not linked:
// Debian ships no static libsystemd, and linking the shared one would make
// every husk process (state, kill, exec, the default cgroupfs manager) load
// and relocate libsystemd and its own dependencies (liblzma, libzstd, liblz4,
// libcap, libgcrypt) at start: an empty program linked with -lsystemd
// takes 1.2-1.3 ms of CPU to run instead of 0.56-0.58 ms on our dev host,
// while husk --version costs the same with and without this file (ldd:
// libc and libm only). Only the systemd cgroup manager pays for the dlopen.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk::cgroups {

// One property of a transient unit, as StartTransientUnit takes it
// ("(sv)"): the variants husk needs are strings, booleans and u64s.
struct UnitProperty {
  enum class Type { String, Bool, U64 };
  std::string name;
  Type type = Type::String;
  std::string str;
  uint64_t num = 0;  // Bool: 0 or 1

  static UnitProperty string(std::string n, std::string v) { return {std::move(n), Type::String, std::move(v), 0}; }
  static UnitProperty boolean(std::string n, bool v) { return {std::move(n), Type::Bool, {}, v ? 1u : 0u}; }
  static UnitProperty u64(std::string n, uint64_t v) { return {std::move(n), Type::U64, {}, v}; }
};

class SystemdBus {
 public:
  // The system bus (root; DBUS_SYSTEM_BUS_ADDRESS) or the caller's user
  // bus (rootless; DBUS_SESSION_BUS_ADDRESS). The error names the bus and
  // its address and suggests --cgroup-manager cgroupfs.
  static Result<std::unique_ptr<SystemdBus>> connect(bool user);
  ~SystemdBus();
  SystemdBus(const SystemdBus&) = delete;
  SystemdBus& operator=(const SystemdBus&) = delete;

  // Asks the manager for its signals (Subscribe) and listens for
  // JobRemoved. Also the first round trip: a bus nobody serves
  // org.freedesktop.systemd1 on fails here.
  Result<> subscribe();
  // StartTransientUnit(unit, "fail", properties + PIDs=[pid], no aux units),
  // then waits for its job. `started` is set once systemd accepted the job
  // (the unit exists then, even if the job fails).
  Result<> start_scope(const std::string& unit, const std::vector<UnitProperty>& props, pid_t pid, bool& started);
  // StopUnit(unit, "replace") and wait. A unit systemd does not know
  // (NoSuchUnit) counts as stopped.
  Result<> stop_unit(const std::string& unit);
  // SetUnitProperties(unit, runtime, props): what systemd itself keeps
  // applying to the unit's cgroup (limits, so a daemon-reload does not
  // undo them).
  Result<> set_properties(const std::string& unit, const std::vector<UnitProperty>& props);
  // ResetFailedUnit(unit); NoSuchUnit counts as done.
  Result<> reset_failed(const std::string& unit);

  const std::string& name() const { return name_; }  // "system bus" / "user bus"

  struct Impl;

 private:
  explicit SystemdBus(std::unique_ptr<Impl> impl, std::string name);
  Result<> wait_job(const std::string& method, const std::string& unit, const std::string& job);
  std::unique_ptr<Impl> impl_;
  std::string name_;
};

// How long a job may take (systemd's own default job timeout is far longer;
// runc and crun wait 30 s too).
constexpr int kSystemdJobTimeoutSec = 30;

}  // namespace husk::cgroups
