#include "cgroups/events.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "cgroups/stats.h"

namespace husk::cgroups {
namespace {

std::optional<uint64_t> keyed_value(const std::string& file, const char* key) {
  auto text = read_file(file);
  if (!text) return std::nullopt;
  auto m = parse_flat_keyed(*text);
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

}  // namespace

Result<EventWatcher> EventWatcher::open(const std::string& dir) {
  EventWatcher w;
  w.dir_ = dir;
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return fail_sys("inotify_init1");
  w.inotify_ = UniqueFd(fd);
  std::string events = dir + "/cgroup.events";
  if (inotify_add_watch(fd, events.c_str(), IN_MODIFY) < 0) return fail_sys("watch ", events);
  std::string memory = dir + "/memory.events";
  w.memory_watch_ = inotify_add_watch(fd, memory.c_str(), IN_MODIFY);
  if (w.memory_watch_ < 0 && errno != ENOENT) return fail_sys("watch ", memory);
  // Kills before we started watching are not news.
  if (w.memory_watch_ >= 0) w.oom_kills_ = keyed_value(memory, "oom_kill").value_or(0);
  return w;
}

Result<CgroupChange> EventWatcher::check() {
  CgroupChange c;
  if (memory_watch_ >= 0) {
    uint64_t kills = keyed_value(dir_ + "/memory.events", "oom_kill").value_or(oom_kills_);
    if (kills > oom_kills_) c.new_ooms = kills - oom_kills_;
    oom_kills_ = kills;
  }
  // A removed cgroup is as empty as one can be.
  auto populated = keyed_value(dir_ + "/cgroup.events", "populated");
  c.empty = !populated || *populated == 0;
  return c;
}

Result<CgroupChange> EventWatcher::wait(int timeout_ms) {
  CgroupChange now = TRY(check());
  if (now.empty || now.new_ooms) return now;
  struct pollfd p = {inotify_.get(), POLLIN, 0};
  int n;
  do {
    n = poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_sys("wait for events of cgroup ", dir_);
  // Drain: what changed is re-read from the files, not from the events.
  char buf[4096];
  while (read(inotify_.get(), buf, sizeof buf) > 0) {
  }
  return check();
}

}  // namespace husk::cgroups
