// The docker flavor: the docker driver's plugin options (SetConfig), its
// fingerprint attributes, and the Flavor object the gRPC layer drives. The
// task translation is docker_bundle.cc, the schemas docker_schema.cc, the
// support table docker_support.cc.
#include "driver/docker_flavor.h"

#include "image/store.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/duration.h"
#include "driver/bundle_files.h"
#include "driver/image_resolve.h"
#include "driver/podman_flavor.h"
#include "driver/podman_security.h"
#include "oci/tables.h"

namespace husk::driver::docker {

namespace {
std::vector<int> caps_named(std::initializer_list<const char*> names) {
  std::vector<int> out;
  for (auto n : names) out.push_back(*oci::capability_from_name(n));
  std::sort(out.begin(), out.end());
  return out;
}

Result<int64_t> duration_option(const Value& m, std::string_view key, std::string_view path, const char* fallback) {
  std::string s = TRY(read_string(m, key, path, fallback));
  if (s.empty()) s = fallback;
  std::string field = path.empty() ? std::string(key) : cat(path, ".", key);
  int64_t ns = TRY(parse_go_duration(s, field)).count();
  if (ns < 0) return fail_msg(field, ": \"", s, "\" is negative");
  return ns;
}

// docker's mode validators, for allowed_modes entries (globs allowed).
bool known_mode(std::string_view kind, const std::string& m) {
  if (m.find_first_of("*?[") != std::string::npos) return true;
  if (kind == "ipc") return m == "" || m == "host" || m == "private" || m == "shareable" || m == "none" ||
                            m.starts_with("container:");
  if (kind == "userns") return m == "" || m == "host" || m == "private";
  return m == "" || m == "host" || m == "private" || m.starts_with("container:");
}
}  // namespace

std::vector<int> default_allow_caps() {
  return caps_named({"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                     "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
                     "CAP_SYS_CHROOT"});
}

std::vector<int> docker_default_capabilities() {
  auto c = default_allow_caps();
  c.push_back(*oci::capability_from_name("CAP_NET_RAW"));
  std::sort(c.begin(), c.end());
  return c;
}

Options host_defaults() {
  Options o;
  o.rootless = geteuid() != 0;
  o.selinux_enabled = selinux_enabled();
  o.online_cpus = online_cpus();
  o.allow_caps = default_allow_caps();
  o.logging_config = {{"max-file", "2"}, {"max-size", "2m"}};
  o.image_store_root = image::Store::default_root();
  o.apparmor = apparmor::host_policy();
  return o;
}

Result<Options> parse_options(const Value& cfg) {
  Options o = host_defaults();
  if (!cfg.is_null() && cfg.kind() != Value::Kind::Map) return fail_msg("plugin config: expected an object");

  o.endpoint = TRY(read_string(cfg, "endpoint", ""));
  o.auth_config = TRY(read_string(cfg["auth"], "config", "auth"));
  o.auth_helper = TRY(read_string(cfg["auth"], "helper", "auth"));
  o.image_store_root = TRY(image_store_option(cfg));
  for (auto k : {"cert", "key", "ca"}) (void)TRY(read_string(cfg["tls"], k, "tls"));
  o.extra_labels = TRY(read_strings(cfg, "extra_labels", ""));

  const Value& logging = cfg["logging"];
  if (!logging.is_null()) {
    o.logging_type = TRY(read_string(logging, "type", "logging"));
    o.logging_config.clear();
    for (auto& [k, v] : TRY(read_string_map(logging, "config", "logging"))) o.logging_config[k] = v;
  }

  const Value& gc = cfg["gc"];
  o.gc_image = TRY(read_bool(gc, "image", "gc", true));
  o.gc_image_delay_ns = TRY(duration_option(gc, "image_delay", "gc", "3m"));
  o.gc_container = TRY(read_bool(gc, "container", "gc", true));
  const Value& dc = gc["dangling_containers"];
  o.dangling_enabled = TRY(read_bool(dc, "enabled", "gc.dangling_containers", true));
  o.dangling_period_ns = TRY(duration_option(dc, "period", "gc.dangling_containers", "5m"));
  o.dangling_creation_grace_ns = TRY(duration_option(dc, "creation_grace", "gc.dangling_containers", "5m"));
  o.dangling_dry_run = TRY(read_bool(dc, "dry_run", "gc.dangling_containers"));
  if (o.dangling_creation_grace_ns < 60'000'000'000)
    return fail_msg("gc.dangling_containers.creation_grace: must be at least 1m");
  if (o.dangling_period_ns <= 0) return fail_msg("gc.dangling_containers.period: must be positive");

  o.volumes_enabled = TRY(read_bool(cfg["volumes"], "enabled", "volumes", false));
  o.volumes_selinuxlabel = TRY(read_string(cfg["volumes"], "selinuxlabel", "volumes"));
  if (!o.volumes_selinuxlabel.empty() && o.selinux_enabled)
    return fail_msg("volumes.selinuxlabel: \"", o.volumes_selinuxlabel,
                    "\": husk cannot relabel binds for SELinux, and SELinux is enabled on this host");

  o.allow_privileged = TRY(read_bool(cfg, "allow_privileged", ""));
  if (!cfg["allow_caps"].is_null()) {
    bool all = false;
    auto names = TRY(read_strings(cfg, "allow_caps", ""));
    o.allow_caps = TRY(podman::cap_list(names, "allow_caps", all));
    if (all) o.allow_caps = podman::all_capabilities();
    std::sort(o.allow_caps.begin(), o.allow_caps.end());
  }
  if (!cfg["allow_runtimes"].is_null()) o.allow_runtimes = TRY(read_strings(cfg, "allow_runtimes", ""));
  o.nvidia_runtime = TRY(read_string(cfg, "nvidia_runtime", "", "nvidia"));
  o.infra_image = TRY(read_string(cfg, "infra_image", "", o.infra_image));
  if (o.infra_image.starts_with("https://")) o.infra_image = o.infra_image.substr(8);
  o.infra_image_pull_timeout_ns = TRY(duration_option(cfg, "infra_image_pull_timeout", "", "5m"));
  o.image_pull_timeout_ns = TRY(duration_option(cfg, "image_pull_timeout", "", "5m"));
  o.pull_activity_timeout_ns = TRY(duration_option(cfg, "pull_activity_timeout", "", "2m"));
  if (o.pull_activity_timeout_ns < 60'000'000'000) return fail_msg("pull_activity_timeout: must be at least 1m");
  o.container_exists_attempts = TRY(read_int(cfg, "container_exists_attempts", "", 5));
  if (o.container_exists_attempts < 0) return fail_msg("container_exists_attempts: must not be negative");
  (void)TRY(read_int(cfg, "oom_score_adj", ""));  // the docker driver declares it and never uses it
  o.pids_limit = TRY(read_int(cfg, "pids_limit", ""));
  if (o.pids_limit < 0) return fail_msg("pids_limit: ", o.pids_limit, " is negative");
  o.disable_log_collection = TRY(read_bool(cfg, "disable_log_collection", ""));
  (void)TRY(read_bool(cfg, "windows_allow_insecure_container_admin", ""));

  const Value& am = cfg["allowed_modes"];
  std::pair<const char*, std::vector<std::string>*> modes[] = {
      {"pid", &o.allowed_pid}, {"ipc", &o.allowed_ipc}, {"userns", &o.allowed_userns}, {"uts", &o.allowed_uts}};
  for (auto& [kind, list] : modes) {
    *list = TRY(read_strings(am, kind, "allowed_modes"));
    for (size_t i = 0; i < list->size(); i++)
      if (!known_mode(kind, (*list)[i]))
        return fail_msg("allowed_modes.", kind, "[", i, "]: \"", (*list)[i], "\" is not a ", kind, " mode");
  }
  return o;
}

namespace {

class DockerFlavor final : public Flavor {
 public:
  DockerFlavor() : opts_(host_defaults()) {}

  std::string name() const override { return "docker"; }
  Spec plugin_schema() const override { return docker::plugin_schema(); }
  Spec task_schema() const override { return docker::task_schema(); }
  std::vector<FieldSupport> support() const override { return support_table(); }

  Result<> configure(const Value& plugin_config) override {
    opts_ = TRY(parse_options(plugin_config));
    return {};
  }

  std::vector<std::pair<std::string, std::string>> attributes() const override {
    // The docker driver's keys where husk has the fact; bridge_ip is the
    // gateway of husk's own bridge network (src/net's default).
    std::vector<std::pair<std::string, std::string>> a = {
        {"os_type", "linux"},
        {"runtimes", "husk"},
        {"seccompEnabled", "true"},
        {"ociRuntime", "husk"},
    };
    if (opts_.allow_privileged) a.emplace_back("privileged.enabled", "true");
    if (opts_.volumes_enabled) a.emplace_back("volumes.enabled", "true");
    if (opts_.pids_limit > 0) a.emplace_back("pids.limit", std::to_string(opts_.pids_limit));
    if (opts_.rootless) a.emplace_back("cpuset_management.disabled", "true");
    return a;
  }

  std::optional<DanglingReaper> dangling_reaper() const override {
    if (!opts_.dangling_enabled) return std::nullopt;
    // The docker driver keys on the alloc_id label, which plan() puts on
    // every task.
    return DanglingReaper{opts_.dangling_period_ns, opts_.dangling_creation_grace_ns, opts_.dangling_dry_run,
                          "com.hashicorp.nomad.alloc_id"};
  }

  std::optional<ImageGc> image_gc() const override {
    if (!opts_.gc_image) return std::nullopt;
    return ImageGc{opts_.image_store_root, opts_.gc_image_delay_ns};
  }

  Result<BundlePlan> plan(const TaskSpec& task, const Value& task_config, const std::string& container_id,
                          const std::string& task_dir) const override {
    return docker::plan(opts_, task, task_config, container_id, task_dir);
  }

 private:
  Options opts_;
};

}  // namespace

// Nomad's glob match for allowed_modes (path.Match-like).
bool mode_allowed(const std::vector<std::string>& globs, const std::string& mode) {
  for (const auto& g : globs)
    if (fnmatch(g.c_str(), mode.c_str(), 0) == 0) return true;
  return false;
}

}  // namespace husk::driver::docker

namespace husk::driver {
std::unique_ptr<Flavor> make_docker_flavor() { return std::make_unique<docker::DockerFlavor>(); }
}  // namespace husk::driver
