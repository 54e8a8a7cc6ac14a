// The dangling-container reaper of TaskManager (see tasks.h): containers a
// plugin made whose task Nomad no longer knows (a plugin crash between
// StartTask's create and its reply, a lost handle), found by the
// annotation the flavor puts on every task and removed like DestroyTask
// would remove them.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "driver/log.h"
#include "driver/tasks.h"

namespace husk::driver {

Result<std::vector<std::string>> TaskManager::reap_dangling(const std::string& label, int64_t grace_ns, bool dry_run,
                                                            int64_t now_ns) {
  std::set<std::string> owned;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, t] : tasks_) owned.insert(t->h.container_id);
  }
  struct stat st;
  if (stat((state_dir_ + "/containers").c_str(), &st) != 0) return std::vector<std::string>{};
  runtime::GlobalOptions g = husk_options();
  auto all = TRY_CTX(runtime::list(g), "list the driver's containers");
  std::vector<std::string> reaped;
  for (const auto& c : all) {
    const std::string& id = c.state.id;
    if (owned.count(id) || !c.state.annotations.count(label)) continue;
    if (access((state_dir_ + "/tasks/" + id + "/" + kKeptFile).c_str(), F_OK) == 0) continue;
    if (c.created_ns <= 0 || now_ns - c.created_ns < grace_ns) continue;
    reaped.push_back(id);
    if (dry_run) {
      log_info("dangling container " + id + " (dry run: left alone)");
      continue;
    }
    if (c.state.status == oci::Status::Running || c.state.status == oci::Status::Created ||
        c.state.status == oci::Status::Paused)
      (void)runtime::kill(g, id, SIGKILL, true);
    auto removed = runtime::remove(g, id, true);
    if (!removed && removed.error().code() != ENOENT) {
      log_error("remove dangling container " + id + ": " + removed.error().str());
      continue;
    }
    // The task directory named after the container: its overlay root and
    // bundle files.
    std::string dir = state_dir_ + "/tasks/" + id;
    if (umount2((dir + "/rootfs").c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
      log_error("unmount the root of dangling container " + id + ": " + strerror(errno));
      continue;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    log_info("removed dangling container " + id);
  }
  return reaped;
}

}  // namespace husk::driver
