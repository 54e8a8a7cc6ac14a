// husk-default, the AppArmor profile of the docker and podman flavors'
// tasks that name none (docker's docker-default, podman's
// containers-default): its text (contrib/apparmor/husk-default, embedded at
// build time), loading it into the kernel with apparmor_parser when it is
// missing or not the text this binary carries, and the rule that picks a
// task's profile. The nspawn flavor applies none, as systemd-nspawn.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace husk::driver::apparmor {

inline constexpr const char* kDefaultProfile = "husk-default";

std::string_view default_profile_text();

// Where ensure_default_profile() looks; tests point it at a fake tree.
struct Host {
  std::string securityfs = "/sys/kernel/security/apparmor";
  // "": $HUSK_APPARMOR_PARSER when set, else apparmor_parser from $PATH, /usr/sbin, /sbin.
  std::string parser;
  // What was last loaded: this text's digest and the kernel's hash of the
  // policy it made (policy/profiles/husk-default.N/sha1). On a tmpfs, so a
  // reboot forgets it together with the kernel's policy.
  std::string stamp = "/run/husk-driver/apparmor-husk-default";
};

// Loads husk-default (apparmor_parser -r, the text on its stdin, run as a
// child) unless the kernel has it from this text already: loaded, the
// stamp naming this text, and the kernel's hash of it what it was when it
// was loaded (someone else's replacement is replaced). Thread-safe; the
// error says what failed (no apparmor_parser, its complaint).
Result<> ensure_default_profile(const Host& host);

// What the flavors ask of the host (their Options' facts; tests fake them).
struct HostPolicy {
  bool enabled = false;              // the host runs AppArmor (and the driver is root)
  std::function<Result<>()> ensure;  // ensure_default_profile(Host{}) on a real host
};

// The profile a docker or podman task runs under, nullopt for none:
// `named` ("" when the task names none) checked loaded; none for a
// privileged task or "unconfined"; else husk-default where the host runs
// AppArmor, loaded first. `field` names the task field, `opt_out` how the
// task says unconfined; a default that cannot be loaded is an error with
// both, never a silent unconfined task.
Result<std::optional<std::string>> task_profile(const HostPolicy& host, const std::string& named, bool privileged,
                                                const std::string& field, const std::string& opt_out);

// HostPolicy of this host: enabled when AppArmor is and euid is 0.
HostPolicy host_policy();

}  // namespace husk::driver::apparmor
