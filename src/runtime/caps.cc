#include "runtime/caps.h"

#include <sys/capability.h>
#include <sys/prctl.h>

#include <cstdlib>

#include "common/fd.h"
#include "oci/tables.h"

namespace husk::runtime {
namespace {

int kernel_last_cap() {
  static int last = [] {
    auto s = read_file("/proc/sys/kernel/cap_last_cap");
    return s ? atoi(s->c_str()) : CAP_LAST_CAP;
  }();
  return last;
}

std::string cap_label(int cap) {
  std::string_view n = oci::capability_name(cap);
  return n.empty() ? cat("capability ", cap) : std::string(n);
}

bool has(const std::optional<std::vector<int>>& set, int cap) {
  if (!set) return false;
  for (int c : *set)
    if (c == cap) return true;
  return false;
}

}  // namespace

Result<> drop_bounding(const oci::Capabilities& caps) {
  for (int cap = 0; cap <= kernel_last_cap(); ++cap) {
    if (has(caps.bounding, cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return fail_sys("process.capabilities.bounding: drop ", cap_label(cap));
  }
  return {};
}

Result<> apply_capabilities(const oci::Capabilities& caps) {
  cap_t state = cap_init();
  if (!state) return fail_sys("cap_init");
  struct Free {
    cap_t c;
    ~Free() { cap_free(c); }
  } guard{state};
  const int last = kernel_last_cap();
  auto set_flag = [&](const std::optional<std::vector<int>>& set, cap_flag_t flag) {
    if (!set) return;
    for (int c : *set) {
      if (c > last) continue;  // a capability this kernel does not know
      cap_value_t v = c;
      cap_set_flag(state, flag, 1, &v, CAP_SET);
    }
  };
  set_flag(caps.effective, CAP_EFFECTIVE);
  set_flag(caps.permitted, CAP_PERMITTED);
  set_flag(caps.inheritable, CAP_INHERITABLE);
  if (cap_set_proc(state) < 0) return fail_sys("process.capabilities: set effective, permitted and inheritable");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return fail_sys("process.capabilities.ambient: clear");
  if (caps.ambient) {
    for (int c : *caps.ambient) {
      if (c > last) continue;
      if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
        return fail_sys("process.capabilities.ambient: raise ", cap_label(c));
    }
  }
  return {};
}

}  // namespace husk::runtime
