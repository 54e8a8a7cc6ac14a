#include "runtime/userns.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fd.h"

namespace husk::runtime {
namespace {

bool only_own_id(const std::vector<oci::IdMapping>& maps, uint32_t own) {
  return maps.size() == 1 && maps[0].size == 1 && maps[0].host_id == own;
}

Result<> run_helper(const char* helper, pid_t pid, const std::vector<oci::IdMapping>& maps) {
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
    execvp(helper, argv.data());
    _exit(127);
  }
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return fail_sys("wait for ", helper);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return fail_errno(ENOENT, helper, " not found: install Debian's uidmap package to map id ranges from /etc/sub",
                      helper[3] == 'u' ? "uid" : "gid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail_msg(helper, " failed (status ", WEXITSTATUS(status), "): check the ranges for this user in /etc/sub",
                    helper[3] == 'u' ? "uid" : "gid");
  return {};
}

}  // namespace

std::string format_id_map(const std::vector<oci::IdMapping>& maps) {
  std::string s;
  for (const auto& m : maps) s += cat(m.container_id, " ", m.host_id, " ", m.size, "\n");
  return s;
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
    TRYV_CTX(run_helper("newuidmap", pid, uids), "linux.uidMappings");
  }
  if (only_own_id(gids, getegid())) {
    TRYV_CTX(write_file(proc + "setgroups", "deny"), "linux.gidMappings");
    TRYV_CTX(write_file(proc + "gid_map", format_id_map(gids)), "linux.gidMappings");
  } else if (!gids.empty()) {
    TRYV_CTX(run_helper("newgidmap", pid, gids), "linux.gidMappings");
  }
  return {};
}

}  // namespace husk::runtime
