// Choosing a manager, and finding the cgroup2 hierarchy.
#include "cgroups/manager.h"

#include "cgroups/disabled_manager.h"
#include "cgroups/fs_manager.h"
#include "cgroups/hierarchy.h"
#include "cgroups/systemd_manager.h"

namespace husk::cgroups {

std::string detect_mount_point() {
  if (is_cgroup2("/sys/fs/cgroup")) return "/sys/fs/cgroup";
  // Hybrid hosts: v1 controllers, the v2 tree beside them.
  if (is_cgroup2("/sys/fs/cgroup/unified")) return "/sys/fs/cgroup/unified";
  return "";
}

Result<std::unique_ptr<Manager>> make_manager(const Options& opts) {
  switch (opts.kind) {
    case ManagerKind::Disabled:
      return make_disabled_manager();
    case ManagerKind::Systemd:
    case ManagerKind::Fs:
      break;
  }
  std::string mount = opts.mount_point.empty() ? detect_mount_point() : opts.mount_point;
  if (mount.empty())
    return fail_errno(ENOENT, "no cgroup2 hierarchy is mounted (at /sys/fs/cgroup or /sys/fs/cgroup/unified); "
                              "use --cgroup-manager disabled to run without a cgroup");
  while (mount.size() > 1 && mount.back() == '/') mount.pop_back();
  if (opts.kind == ManagerKind::Systemd) return make_systemd_manager(opts, mount);
  std::string own = "/";
  if (!opts.cgroups_path.empty() && opts.cgroups_path[0] != '/')
    own = unified_cgroup_of(read_file("/proc/self/cgroup").value_or(""));
  std::string rel = TRY(resolve_cgroup_path(opts.cgroups_path, opts.container_id, own));
  return make_fs_manager(mount, rel, opts.devices);
}

Result<std::unique_ptr<Manager>> open_existing(const Recorded& rec) {
  if (rec.kind == ManagerKind::Disabled || rec.path.empty()) return make_disabled_manager();
  if (rec.kind == ManagerKind::Systemd) return open_systemd_manager(rec);
  if (rec.path[0] != '/') return fail_msg("cgroup path \"", rec.path, "\" is not absolute");
  return open_fs_manager(rec.path, rec.devices);
}

}  // namespace husk::cgroups
