#include "cgroups/rootless.h"

#include <sys/stat.h>
#include <unistd.h>

#include "cgroups/disabled_manager.h"
#include "cgroups/fs_manager.h"
#include "cgroups/hierarchy.h"
#include "cgroups/resources.h"

namespace husk::cgroups {
namespace {

bool owned_by(const std::string& path, uid_t uid) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && st.st_uid == uid;
}

// What a delegation hands over (cgroup v2's "Delegation Containment"): the
// directory and the files that move processes and enable controllers.
bool delegated_to(const std::string& dir, uid_t uid) {
  return owned_by(dir, uid) && owned_by(dir + "/cgroup.procs", uid) && owned_by(dir + "/cgroup.subtree_control", uid);
}

bool is_permission_error(int err) { return err == EACCES || err == EPERM || err == EROFS; }

// A limit asked for with nowhere to apply it: the error names the field.
Result<> refuse_limits(const oci::Resources* r, const std::string& why) {
  if (!r) return {};
  if (r->network && (r->network->class_id || !r->network->priorities.empty()))
    return fail_msg("linux.resources.network: a rootless container has no cgroup to apply it to: ", why);
  auto writes = translate(*r, [](const std::string&) { return false; });
  if (!writes) return fail(std::move(writes.error()));
  for (const auto& w : *writes)
    if (!is_unlimited(w))
      return fail_msg(w.field, ": a rootless container has no cgroup to apply this limit to (", w.file, " \"", w.value,
                      "\"): ", why);
  return {};
}

Result<RootlessCgroup> without_cgroup(const oci::Resources* r, const std::string& why) {
  TRYV(refuse_limits(r, why));
  RootlessCgroup out;
  out.manager = make_disabled_manager();
  out.warning = cat("rootless: running without a cgroup (no limits, pause, or stats): ", why);
  return out;
}

}  // namespace

std::string delegated_root(const std::string& mount, const std::string& own_cgroup, uid_t uid) {
  std::string found;
  std::string cur = own_cgroup;
  while (cur.size() > 1) {
    if (!delegated_to(mount + cur, uid)) break;
    found = cur;
    size_t slash = cur.rfind('/');
    cur = slash == 0 ? "/" : cur.substr(0, slash);
  }
  return found;
}

Result<RootlessCgroup> make_rootless_cgroup(const Options& opts, const oci::Resources* resources,
                                            std::string own_cgroup, uid_t uid) {
  std::string mount = opts.mount_point.empty() ? detect_mount_point() : opts.mount_point;
  while (mount.size() > 1 && mount.back() == '/') mount.pop_back();
  if (mount.empty()) return without_cgroup(resources, "no cgroup2 hierarchy is mounted");
  if (own_cgroup.empty()) own_cgroup = unified_cgroup_of(read_file("/proc/self/cgroup").value_or(""));

  std::string rel;
  if (opts.cgroups_path.empty()) {
    std::string root = delegated_root(mount, own_cgroup, uid);
    if (root.empty())
      return without_cgroup(resources, cat("no cgroup subtree of ", mount, " is delegated to uid ", uid,
                                           " (husk runs in ", own_cgroup, ")"));
    rel = TRY(resolve_cgroup_path("husk/" + opts.container_id, opts.container_id, root));
  } else {
    rel = TRY(resolve_cgroup_path(opts.cgroups_path, opts.container_id, own_cgroup));
  }
  RootlessCgroup out;
  out.manager = make_fs_manager(mount, rel);
  if (auto made = out.manager->create(); !made) {
    if (!is_permission_error(made.error().code())) return fail(std::move(made.error()));
    return without_cgroup(resources, made.error().str());
  }
  return out;
}

}  // namespace husk::cgroups
