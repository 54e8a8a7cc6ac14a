// The docker driver's schemas as hclspec trees: every task config field and
// plugin option with its HCL type, default and required flag, so a job or
// agent config written for Nomad's docker driver decodes the same under husk.
#include "driver/docker_flavor.h"

namespace husk::driver::docker {

using namespace husk::driver::members;

namespace {
// The body of `mount` and of the deprecated `mounts`.
Spec mount_body() {
  return object({
      d("type", "string", "\"volume\""),
      a("target", "string"),
      a("source", "string"),
      a("readonly", "bool"),
      {"bind_options", block("bind_options", object({a("propagation", "string")}))},
      {"tmpfs_options", block("tmpfs_options", object({a("size", "number"), a("mode", "number")}))},
      {"volume_options", block("volume_options", object({
                                                     a("no_copy", "bool"),
                                                     a("labels", "list(map(string))"),
                                                     {"driver_config", block("driver_config", object({
                                                                                                  a("name", "string"),
                                                                                                  a("options", "list(map(string))"),
                                                                                              }))},
                                                 }))},
  });
}
}  // namespace

Spec task_schema() {
  return object({
      a("image", "string", true),
      a("image_pull_timeout", "string"),
      a("advertise_ipv6_address", "bool"),
      a("args", "list(string)"),
      {"auth", block("auth", object({
                                 a("username", "string"),
                                 a("password", "string"),
                                 a("email", "string"),
                                 a("server_address", "string"),
                             }))},
      a("auth_soft_fail", "bool"),
      a("cap_add", "list(string)"),
      a("cap_drop", "list(string)"),
      a("cgroupns", "string"),
      a("command", "string"),
      a("container_exists_attempts", "number"),
      a("cpuset_cpus", "string"),
      a("cpu_hard_limit", "bool"),
      d("cpu_cfs_period", "number", "100000"),
      {"devices", block_list("devices", object({
                                            a("host_path", "string"),
                                            a("container_path", "string"),
                                            a("cgroup_permissions", "string"),
                                        }))},
      a("dns_search_domains", "list(string)"),
      a("dns_options", "list(string)"),
      a("dns_servers", "list(string)"),
      a("entrypoint", "list(string)"),
      a("extra_hosts", "list(string)"),
      a("force_pull", "bool"),
      a("group_add", "list(string)"),
      {"healthchecks", block("healthchecks", object({a("disable", "bool")}))},
      a("hostname", "string"),
      a("init", "bool"),
      a("interactive", "bool"),
      a("ipc_mode", "string"),
      a("ipv4_address", "string"),
      a("ipv6_address", "string"),
      a("isolation", "string"),
      a("labels", "list(map(string))"),
      a("load", "string"),
      {"logging", block("logging", object({
                                       a("type", "string"),
                                       a("driver", "string"),
                                       a("config", "list(map(string))"),
                                   }))},
      a("mac_address", "string"),
      a("memory_hard_limit", "number"),
      {"mount", block_list("mount", mount_body())},
      {"mounts", block_list("mounts", mount_body())},
      a("network_aliases", "list(string)"),
      a("network_mode", "string"),
      a("oom_score_adj", "number"),
      a("pids_limit", "number"),
      a("pid_mode", "string"),
      a("port_map", "list(map(number))"),
      a("ports", "list(string)"),
      a("privileged", "bool"),
      a("readonly_rootfs", "bool"),
      a("runtime", "string"),
      a("security_opt", "list(string)"),
      a("shm_size", "number"),
      {"storage_opt", block_attrs("storage_opt", "string")},
      a("sysctl", "list(map(string))"),
      a("tty", "bool"),
      a("ulimit", "list(map(string))"),
      a("uts_mode", "string"),
      a("userns_mode", "string"),
      a("volumes", "list(string)"),
      a("volume_driver", "string"),
      a("work_dir", "string"),
  });
}

Spec plugin_schema() {
  return object({
      a("endpoint", "string"),
      {"auth", block("auth", object({
                                 a("config", "string"),
                                 a("helper", "string"),
                             }))},
      {"tls", block("tls", object({
                               a("cert", "string"),
                               a("key", "string"),
                               a("ca", "string"),
                           }))},
      a("extra_labels", "list(string)"),
      {"logging", with_default(block("logging", object({
                                                    a("type", "string"),
                                                    {"config", block_attrs("config", "string")},
                                                })),
                               literal("{ type = \"json-file\", config = { max-file = \"2\", max-size = \"2m\" } }"))},
      {"gc", with_default(
                 block("gc", object({
                                 d("image", "bool", "true"),
                                 d("image_delay", "string", "\"3m\""),
                                 d("container", "bool", "true"),
                                 {"dangling_containers",
                                  with_default(block("dangling_containers", object({
                                                                                d("enabled", "bool", "true"),
                                                                                d("period", "string", "\"5m\""),
                                                                                d("creation_grace", "string", "\"5m\""),
                                                                                d("dry_run", "bool", "false"),
                                                                            })),
                                               literal("{ enabled = true, period = \"5m\", creation_grace = \"5m\" }"))},
                             })),
                 literal("{ image = true, image_delay = \"3m\", container = true, dangling_containers = "
                         "{ enabled = true, period = \"5m\", creation_grace = \"5m\" } }"))},
      {"volumes", with_default(block("volumes", object({
                                                    d("enabled", "bool", "false"),
                                                    a("selinuxlabel", "string"),
                                                })),
                               literal("{ enabled = false }"))},
      d("allow_privileged", "bool", "false"),
      d("allow_caps", "list(string)",
        "[\"audit_write\", \"chown\", \"dac_override\", \"fowner\", \"fsetid\", \"kill\", \"mknod\", "
        "\"net_bind_service\", \"setfcap\", \"setgid\", \"setpcap\", \"setuid\", \"sys_chroot\"]"),
      d("allow_runtimes", "list(string)", "[\"runc\", \"nvidia\"]"),
      d("nvidia_runtime", "string", "\"nvidia\""),
      d("infra_image", "string", "\"registry.k8s.io/pause-amd64:3.3\""),
      d("infra_image_pull_timeout", "string", "\"5m\""),
      d("image_pull_timeout", "string", "\"5m\""),
      d("pull_activity_timeout", "string", "\"2m\""),
      d("container_exists_attempts", "number", "5"),
      d("oom_score_adj", "number", "0"),
      d("pids_limit", "number", "0"),
      d("disable_log_collection", "bool", "false"),
      d("windows_allow_insecure_container_admin", "bool", "false"),
      {"allowed_modes", block("allowed_modes", object({
                                                   a("pid", "list(string)"),
                                                   a("ipc", "list(string)"),
                                                   a("userns", "list(string)"),
                                                   a("uts", "list(string)"),
                                               }))},
      a("image_store", "string"),  // husk's addition: the image store root
  });
}

}  // namespace husk::driver::docker
