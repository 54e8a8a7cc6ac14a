// nomad-driver-podman's schemas as hclspec trees: every task config field
// and plugin option with its HCL type, default and required flag, so a job
// or agent config written for podman decodes the same under husk.
#include "driver/podman_flavor.h"

namespace husk::driver::podman {

using namespace husk::driver::members;

Spec task_schema() {
  return object({
      a("image", "string", true),
      a("arch", "string"),
      a("os", "string"),
      a("variant", "string"),
      {"auth", block("auth", object({
                                 a("username", "string"),
                                 a("password", "string"),
                                 d("tls_verify", "bool", "true"),
                             }))},
      a("auth_soft_fail", "bool"),
      a("force_pull", "bool"),
      d("image_pull_timeout", "string", "\"5m\""),
      a("entrypoint", "any"),
      a("command", "string"),
      a("args", "list(string)"),
      a("working_dir", "string"),
      a("hostname", "string"),
      a("tty", "bool"),
      a("init", "bool"),
      a("init_path", "string"),
      a("labels", "list(map(string))"),
      a("cap_add", "list(string)"),
      a("cap_drop", "list(string)"),
      a("privileged", "bool"),
      a("readonly_rootfs", "bool"),
      a("apparmor_profile", "string"),
      a("selinux_opts", "list(string)"),
      a("security_opt", "list(string)"),
      a("userns", "string"),
      a("devices", "list(string)"),
      a("volumes", "list(string)"),
      a("tmpfs", "list(string)"),
      a("sysctl", "list(map(string))"),
      a("ulimit", "list(map(string))"),
      a("memory_reservation", "string"),
      a("memory_swap", "string"),
      a("memory_swappiness", "number"),
      a("oom_score_adj", "number"),
      a("pids_limit", "number"),
      a("shm_size", "string"),
      a("cpu_hard_limit", "bool"),
      a("cpu_cfs_period", "number"),
      a("network_mode", "string"),
      a("ipc_mode", "string"),
      a("ipv4_address", "string"),
      a("ipv6_address", "string"),
      a("static_ips", "list(string)"),
      a("static_mac", "string"),
      a("extra_hosts", "list(string)"),
      a("ports", "list(string)"),
      a("port_map", "list(map(number))"),
      {"logging", block("logging", object({
                                       a("driver", "string"),
                                       a("options", "list(map(string))"),
                                   }))},
      d("socket", "string", "\"default\""),
  });
}

Spec plugin_schema() {
  return object({
      a("socket_path", "string"),
      {"socket", block_list("socket", object({
                                          a("name", "string"),
                                          a("socket_path", "string", true),
                                      }))},
      {"auth", block("auth", object({
                                 a("config", "string"),
                                 a("helper", "string"),
                             }))},
      {"volumes", with_default(block("volumes", object({
                                                    d("enabled", "bool", "true"),
                                                    a("selinuxlabel", "string"),
                                                })),
                               literal("{ enabled = true }"))},
      {"gc", with_default(block("gc", object({
                                          d("container", "bool", "true"),
                                      })),
                          literal("{ container = true }"))},
      d("recover_stopped", "bool", "false"),
      a("extra_labels", "list(string)"),
      {"logging", with_default(block("logging", object({
                                                    d("driver", "string", "\"nomad\""),
                                                    {"options", block_attrs("options", "string")},
                                                })),
                               literal("{ driver = \"nomad\", options = {} }"))},
      {"networking", with_default(block("networking", object({
                                                          a("default_rootless_mode", "string"),
                                                      })),
                                  literal("{ default_rootless_mode = \"\" }"))},
      d("disable_log_collection", "bool", "false"),
      a("client_http_timeout", "string"),
      a("dns_servers", "list(string)"),
      // husk's additions (nomad-driver-podman has neither): the operator's
      // bounds on tasks, as in Nomad's docker driver. Unset, podman's
      // behaviour: any capability, privileged allowed.
      a("allow_caps", "list(string)"),
      d("allow_privileged", "bool", "true"),
      a("image_store", "string"),  // husk's image store root
  });
}

}  // namespace husk::driver::podman
