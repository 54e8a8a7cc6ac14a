// Inside the docker flavor: Nomad's built-in docker driver's plugin options
// as a struct, the two schemas (docker_schema.cc), the options and the
// support table (docker_flavor.cc, docker_support.cc) and the task -> OCI
// bundle translation (docker_bundle.cc, docker_mounts.cc for volumes and
// mount blocks, docker_seccomp.cc for security_opt's profile files).
// flavor.h has the public face (make_docker_flavor).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "driver/apparmor_default.h"
#include "driver/flavor.h"

namespace husk::driver::docker {

// The docker driver's task config and plugin option schemas, field for
// field (reference: driver-fields.md §2.1, §2.2).
Spec task_schema();
Spec plugin_schema();
std::vector<FieldSupport> support_table();

// The decoded plugin options. husk has no docker daemon: endpoint, tls and
// the runtime list only name things (see support_table()).
struct Options {
  std::string endpoint;
  std::string auth_config, auth_helper;
  std::vector<std::string> extra_labels;
  std::string logging_type = "json-file";
  std::map<std::string, std::string> logging_config;
  bool gc_image = true;
  int64_t gc_image_delay_ns = 180'000'000'000;
  bool gc_container = true;
  bool dangling_enabled = true;
  int64_t dangling_period_ns = 300'000'000'000;
  int64_t dangling_creation_grace_ns = 300'000'000'000;
  bool dangling_dry_run = false;
  bool volumes_enabled = false;
  std::string volumes_selinuxlabel;
  bool allow_privileged = false;
  std::vector<int> allow_caps;  // the bound of every task's capabilities
  std::vector<std::string> allow_runtimes = {"runc", "nvidia"};
  std::string nvidia_runtime = "nvidia";
  std::string infra_image = "registry.k8s.io/pause-amd64:3.3";
  int64_t infra_image_pull_timeout_ns = 300'000'000'000;
  int64_t image_pull_timeout_ns = 300'000'000'000;
  int64_t pull_activity_timeout_ns = 120'000'000'000;
  int64_t container_exists_attempts = 5;
  int64_t pids_limit = 0;
  bool disable_log_collection = false;
  std::vector<std::string> allowed_pid, allowed_ipc, allowed_userns, allowed_uts;

  // Facts about the host, not options; tests set them.
  bool rootless = false;
  bool selinux_enabled = false;
  int online_cpus = 1;
  std::string host_dev = "/dev";
  std::string image_store_root;  // image::Store::default_root()
  std::string host_resolv_conf = "/etc/resolv.conf";
  std::string host_resolved_upstream = "/run/systemd/resolve/resolv.conf";
  std::string host_hosts = "/etc/hosts";
  std::string default_init_path = "/usr/bin/docker-init";  // docker's tini (--init)
  apparmor::HostPolicy apparmor;  // husk-default for tasks that name no profile
};

Options host_defaults();
// SetConfig: errors name the option ("allow_caps[2]: ...").
Result<Options> parse_options(const Value& plugin_config);

Result<BundlePlan> plan(const Options& opts, const TaskSpec& task, const Value& config,
                        const std::string& container_id, const std::string& task_dir);

// The docker driver's default allow_caps (docker's default set, which adds
// NET_RAW to it, is cut down to this list).
std::vector<int> default_allow_caps();
// docker's own default capability set.
std::vector<int> docker_default_capabilities();
// Whether `mode` matches one of allowed_modes' globs.
bool mode_allowed(const std::vector<std::string>& globs, const std::string& mode);

}  // namespace husk::driver::docker
