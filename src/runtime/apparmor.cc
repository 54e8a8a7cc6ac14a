#include "runtime/apparmor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.h"
#include "common/text.h"

namespace husk::runtime {
namespace {
constexpr const char* kEnabled = "/sys/module/apparmor/parameters/enabled";
constexpr const char* kProfiles = "/sys/kernel/security/apparmor/profiles";
}  // namespace

bool apparmor_enabled() {
  auto v = read_file(kEnabled);
  return v && !v->empty() && (*v)[0] == 'Y';
}

Result<> check_apparmor_profile(const std::string& profile, const std::string& field) {
  if (profile.empty() || (profile == "unconfined" && !apparmor_enabled())) return {};
  if (!apparmor_enabled())
    return fail_msg(field, " \"", profile, "\": AppArmor is not enabled on this host (", kEnabled, ")");
  // The loaded profiles, "NAME (MODE)" a line (root may read them; where
  // the list cannot be read, the exec reports a missing profile).
  auto list = read_file(kProfiles);
  if (!list || profile == "unconfined") return {};
  for (std::string_view line : lines_of(*list)) {
    size_t sp = line.rfind(" (");
    if (line.substr(0, sp) == profile) return {};
  }
  return fail_msg(field, " \"", profile, "\": no such AppArmor profile is loaded (", kProfiles,
                  "; load it with apparmor_parser)");
}

Result<> apparmor_exec_profile(const std::string& profile, const std::string& field) {
  if (profile.empty() || (profile == "unconfined" && !apparmor_enabled())) return {};
  // The LSM-specific file first (Linux 5.1), then the shared one.
  int fd = ::open("/proc/self/attr/apparmor/exec", O_WRONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) fd = ::open("/proc/self/attr/exec", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail_sys(field, " \"", profile, "\": open /proc/self/attr/apparmor/exec");
  UniqueFd f(fd);
  std::string cmd = "exec " + profile;
  if (::write(f.get(), cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size()))
    return fail_sys(field, " \"", profile, "\": set the AppArmor profile for the exec");
  return {};
}

}  // namespace husk::runtime
