// The podman flavor: nomad-driver-podman's plugin options (SetConfig), its
// fingerprint attributes, and the Flavor object the gRPC layer drives. The
// task translation is podman_bundle.cc, the schemas podman_schema.cc.
#include "driver/podman_flavor.h"
#include "driver/podman_security.h"

#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>

#include "common/duration.h"
#include "driver/bundle_files.h"
#include "driver/image_resolve.h"
#include "image/store.h"
#include "oci/tables.h"
#include "runtime/apparmor.h"

namespace husk::driver::podman {

std::vector<int> default_capabilities() {
  // containers/common's default_capabilities since podman 4: docker's set
  // without AUDIT_WRITE, MKNOD and NET_RAW.
  std::vector<int> out;
  for (auto n : {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                 "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"})
    out.push_back(*oci::capability_from_name(n));
  return out;
}

Result<int64_t> parse_size(std::string_view s) {
  if (s.size() < 2) return fail_msg("invalid size \"", s, "\": want an integer and a unit b, k, m or g");
  int64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, n);
  if (ec != std::errc() || p != s.data() + s.size() - 1 || n < 0)
    return fail_msg("invalid size \"", s, "\": want an integer and a unit b, k, m or g");
  int shift = 0;
  switch (s.back()) {
    case 'b': shift = 0; break;
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    default: return fail_msg("invalid size \"", s, "\": want an integer and a unit b, k, m or g");
  }
  if (n > (INT64_MAX >> shift)) return fail_msg("invalid size \"", s, "\": too large");
  return n << shift;
}

Options host_defaults() {
  Options o;
  o.rootless = geteuid() != 0;
  o.image_store_root = image::Store::default_root();
  {
    // CapEff from /proc/self/status: without CAP_SYS_RESOURCE the rlimit
    // defaults are capped at the driver's own limits.
    o.can_raise_rlimits = !o.rootless;
    if (FILE* f = fopen("/proc/self/status", "re")) {
      char line[256];
      while (fgets(line, sizeof line, f))
        if (strncmp(line, "CapEff:", 7) == 0) {
          unsigned long long eff = strtoull(line + 7, nullptr, 16);
          o.can_raise_rlimits = o.can_raise_rlimits && (eff & (1ULL << 24 /* CAP_SYS_RESOURCE */));
        }
      fclose(f);
    }
  }
  o.selinux_enabled = selinux_enabled();
  o.online_cpus = online_cpus();
  o.apparmor = apparmor::host_policy();
  return o;
}

Result<Options> parse_options(const Value& cfg) {
  Options o = host_defaults();
  if (!cfg.is_null() && cfg.kind() != Value::Kind::Map) return fail_msg("plugin config: expected an object");

  std::string socket_path = TRY(read_string(cfg, "socket_path", ""));
  const Value& sockets = cfg["socket"];
  if (!sockets.is_null() && sockets.kind() != Value::Kind::Array) return fail_msg("socket: expected a list of blocks");
  if (!socket_path.empty() && !sockets.items().empty())
    return fail_msg("socket_path: cannot be combined with socket blocks; name the socket in a socket block");
  for (size_t i = 0; i < sockets.items().size(); i++) {
    std::string at = cat("socket[", i, "]");
    Socket s;
    s.name = TRY(read_string(sockets.items()[i], "name", at));
    s.socket_path = TRY(read_string(sockets.items()[i], "socket_path", at));
    if (s.socket_path.empty()) return fail_msg(at, ".socket_path: required");
    if (s.name.empty()) s.name = "default";
    bool dup = false;
    for (const auto& e : o.sockets) dup = dup || e.name == s.name;
    if (!dup) o.sockets.push_back(std::move(s));  // podman logs and ignores duplicates
  }
  if (o.sockets.empty())
    o.sockets.push_back(Socket{"default", socket_path.empty() ? (o.rootless ? cat("unix:///run/user/", geteuid(),
                                                                                  "/podman/podman.sock")
                                                                           : std::string("unix:///run/podman/podman.sock"))
                                                              : socket_path});

  const Value& auth = cfg["auth"];
  o.auth_config = TRY(read_string(auth, "config", "auth"));
  o.auth_helper = TRY(read_string(auth, "helper", "auth"));
  o.image_store_root = TRY(image_store_option(cfg));

  const Value& volumes = cfg["volumes"];
  o.volumes_enabled = TRY(read_bool(volumes, "enabled", "volumes", true));
  o.volumes_selinuxlabel = TRY(read_string(volumes, "selinuxlabel", "volumes"));
  if (!o.volumes_selinuxlabel.empty() && o.selinux_enabled)
    return fail_msg("volumes.selinuxlabel: \"", o.volumes_selinuxlabel,
                    "\": husk cannot relabel binds for SELinux, and SELinux is enabled on this host");

  o.gc_container = TRY(read_bool(cfg["gc"], "container", "gc", true));
  o.recover_stopped = TRY(read_bool(cfg, "recover_stopped", ""));
  o.extra_labels = TRY(read_strings(cfg, "extra_labels", ""));

  const Value& logging = cfg["logging"];
  o.logging_driver = TRY(read_string(logging, "driver", "logging", "nomad"));
  for (auto& [k, v] : TRY(read_string_map(logging, "options", "logging"))) o.logging_options[k] = v;
  if (o.logging_driver.empty()) o.logging_driver = "nomad";
  if (o.logging_driver != "nomad" && o.logging_driver != "journald")
    return fail_msg("logging.driver: \"", o.logging_driver, "\" is not a log driver; use \"nomad\" or \"journald\"");

  o.default_rootless_mode = TRY(read_string(cfg["networking"], "default_rootless_mode", "networking"));
  o.disable_log_collection = TRY(read_bool(cfg, "disable_log_collection", ""));

  std::string timeout = TRY(read_string(cfg, "client_http_timeout", ""));
  if (!timeout.empty()) {
    o.client_http_timeout_ns = TRY(parse_go_duration(timeout, "client_http_timeout")).count();
  }

  o.dns_servers = TRY(read_strings(cfg, "dns_servers", ""));
  for (size_t i = 0; i < o.dns_servers.size(); i++) {
    unsigned char buf[16];
    const char* s = o.dns_servers[i].c_str();
    if (inet_pton(AF_INET, s, buf) != 1 && inet_pton(AF_INET6, s, buf) != 1)
      return fail_msg("dns_servers[", i, "]: \"", o.dns_servers[i], "\" is not an IP address");
  }
  if (!cfg.is_null() && !cfg["allow_caps"].is_null()) {
    bool all = false;
    auto names = TRY(read_strings(cfg, "allow_caps", ""));
    auto caps = TRY(cap_list(names, "allow_caps", all));
    if (!all) o.allow_caps = caps;
  }
  o.allow_privileged = TRY(read_bool(cfg, "allow_privileged", "", true));
  return o;
}

namespace {

class PodmanFlavor final : public Flavor {
 public:
  explicit PodmanFlavor(std::string name) : name_(std::move(name)), opts_(host_defaults()) {}

  std::string name() const override { return name_; }
  Spec plugin_schema() const override { return podman::plugin_schema(); }
  Spec task_schema() const override { return podman::task_schema(); }

  Result<> configure(const Value& plugin_config) override {
    opts_ = TRY(parse_options(plugin_config));
    return {};
  }

  std::vector<std::pair<std::string, std::string>> attributes() const override {
    std::string caps;
    for (int c : default_capabilities()) {
      std::string_view n = oci::capability_name(c);
      if (n.starts_with("CAP_")) n.remove_prefix(4);
      caps += cat(caps.empty() ? "" : ",", n);
    }
    struct stat st;
    bool cgroup2 = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0;
    // Only the default socket: husk has no podman daemon behind the others.
    return {
        {"health", "healthy"},
        {"defaultPodman", "true"},
        {"socketName", opts_.sockets.front().name},
        {"socket", opts_.sockets.front().socket_path},
        {"capabilities", caps},
        {"cgroupVersion", cgroup2 ? "v2" : "v1"},
        {"rootless", opts_.rootless ? "true" : "false"},
        // As podman reports the host: a task may name a loaded profile.
        {"appArmor", runtime::apparmor_enabled() ? "true" : "false"},
        {"seccompEnabled", "true"},
        {"selinuxEnabled", opts_.selinux_enabled ? "true" : "false"},
        {"ociRuntime", "husk"},
    };
  }

  Result<BundlePlan> plan(const TaskSpec& task, const Value& task_config, const std::string& container_id,
                          const std::string& task_dir) const override {
    return podman::plan(opts_, task, task_config, container_id, task_dir);
  }

  std::vector<FieldSupport> support() const override { return support_rows(); }

 private:
  std::string name_;
  Options opts_;
};

}  // namespace
}  // namespace husk::driver::podman

namespace husk::driver {
std::unique_ptr<Flavor> make_podman_flavor(std::string served_name) {
  return std::make_unique<podman::PodmanFlavor>(std::move(served_name));
}
}  // namespace husk::driver
