// Watching a cgroup for OOM kills and for its last process leaving, without
// a polling loop: the kernel reports every change of memory.events and
// cgroup.events as an inotify IN_MODIFY, so a wait sleeps until one comes.
// `husk events` uses it, and so will the Nomad driver's task monitor.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/fd.h"

namespace husk::cgroups {

struct CgroupChange {
  uint64_t new_ooms = 0;  // OOM kills since the last wait (memory.events oom_kill)
  bool empty = false;     // no process is left (cgroup.events populated 0)
};

class EventWatcher {
 public:
  // Watches the cgroup directory `dir`. Without the memory controller there
  // is no memory.events: only emptiness is reported then.
  static Result<EventWatcher> open(const std::string& dir);

  // Sleeps until a watched file changes or timeout_ms passes (-1: no
  // timeout), then says what changed. Returns at once when the cgroup is
  // already empty.
  Result<CgroupChange> wait(int timeout_ms);

  bool has_memory_events() const { return memory_watch_ >= 0; }

 private:
  Result<CgroupChange> check();

  std::string dir_;
  UniqueFd inotify_;
  int memory_watch_ = -1;
  uint64_t oom_kills_ = 0;
};

}  // namespace husk::cgroups
