#include "runtime/userns.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/fd.h"
#include "runtime/subid.h"

namespace husk::runtime {
namespace {

const char* range_file(const char* helper) { return helper[3] == 'u' ? "/etc/subuid" : "/etc/subgid"; }

Result<std::string> helper_path(const char* helper, const char* field) {
  std::string path = find_in_path(helper);
  if (path.empty())
    return fail_errno(ENOENT, field, ": mapping ids from ", range_file(helper), " needs ", helper,
                      ", which is not in PATH: install Debian's uidmap package, or map only your own id (size 1)");
  return path;
}

Result<> run_helper(const char* helper, pid_t pid, const std::vector<oci::IdMapping>& maps, const char* field) {
  std::string path = TRY(helper_path(helper, field));
  std::vector<std::string> args = {helper, std::to_string(pid)};
  for (const auto& m : maps) {
    args.push_back(std::to_string(m.container_id));
    args.push_back(std::to_string(m.host_id));
    args.push_back(std::to_string(m.size));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = fork();
  if (child < 0) return fail_sys("fork ", helper);
  if (child == 0) {
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return fail_sys("wait for ", helper);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return fail_errno(ENOENT, field, ": could not run ", path, " (install Debian's uidmap package)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail_msg(field, ": ", path, " failed (status ",
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                    "): check the ranges for this user in ", range_file(helper));
  return {};
}

}  // namespace

std::string find_in_path(const std::string& name) {
  const char* env = getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(pos, colon - pos);
    pos = colon + 1;
    if (dir.empty() || dir[0] != '/') continue;  // only absolute entries: cwd is the caller's bundle
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string format_id_map(const std::vector<oci::IdMapping>& maps) {
  std::string s;
  for (const auto& m : maps) s += cat(m.container_id, " ", m.host_id, " ", m.size, "\n");
  return s;
}

Result<> check_id_maps(const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids) {
  if (geteuid() == 0) return {};
  if (!uids.empty() && !only_own_id(uids, geteuid())) {
    TRYV(check_mappings(uids, uid_owner(), "linux.uidMappings"));
    TRYV(helper_path("newuidmap", "linux.uidMappings"));
  }
  if (!gids.empty() && !only_own_id(gids, getegid())) {
    TRYV(check_mappings(gids, gid_owner(), "linux.gidMappings"));
    TRYV(helper_path("newgidmap", "linux.gidMappings"));
  }
  return {};
}

Result<> write_id_maps(pid_t pid, const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids) {
  std::string proc = cat("/proc/", pid, "/");
  if (geteuid() == 0) {
    if (!uids.empty()) TRYV_CTX(write_file(proc + "uid_map", format_id_map(uids)), "linux.uidMappings");
    if (!gids.empty()) TRYV_CTX(write_file(proc + "gid_map", format_id_map(gids)), "linux.gidMappings");
    return {};
  }
  if (only_own_id(uids, geteuid())) {
    TRYV_CTX(write_file(proc + "uid_map", format_id_map(uids)), "linux.uidMappings");
  } else if (!uids.empty()) {
    TRYV(run_helper("newuidmap", pid, uids, "linux.uidMappings"));
  }
  if (only_own_id(gids, getegid())) {
    TRYV_CTX(write_file(proc + "setgroups", "deny"), "linux.gidMappings");
    TRYV_CTX(write_file(proc + "gid_map", format_id_map(gids)), "linux.gidMappings");
  } else if (!gids.empty()) {
    TRYV(run_helper("newgidmap", pid, gids, "linux.gidMappings"));
  }
  return {};
}

RootlessMaps rootless_id_maps() {
  RootlessMaps m;
  auto add = [](std::vector<oci::IdMapping>& maps, const IdOwner& owner, const char* helper) {
    maps.push_back({0, owner.id, 1});
    if (owner.ranges.empty() || find_in_path(helper).empty()) return;
    const auto& r = owner.ranges.front();
    maps.push_back({1, static_cast<uint32_t>(r.start), static_cast<uint32_t>(std::min<uint64_t>(r.count, 65536))});
  };
  add(m.uids, uid_owner(), "newuidmap");
  add(m.gids, gid_owner(), "newgidmap");
  return m;
}

}  // namespace husk::runtime
