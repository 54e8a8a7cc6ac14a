// nomad-driver-nspawn's schemas as hclspec trees: every task config field
// and plugin option with its HCL type, default and required flag, so a job
// or agent config written for nspawn decodes the same under husk.
#include "driver/nspawn_flavor.h"

namespace husk::driver::nspawn {

using namespace husk::driver::members;

Spec task_schema() {
  return object({
      a("image", "string", true),
      {"image_download", block("image_download", object({
                                                     a("url", "string", true),
                                                     d("type", "string", "\"tar\""),
                                                     d("force", "bool", "false"),
                                                     d("verify", "string", "\"no\""),
                                                 }))},
      d("boot", "bool", "true"),
      a("process_two", "bool"),
      a("command", "list(string)"),
      a("ephemeral", "bool"),
      a("read_only", "bool"),
      a("volatile", "string"),
      d("user_namespacing", "bool", "true"),
      a("private_users", "string"),
      a("private_users_ownership", "string"),
      a("console", "string"),
      a("pivot_root", "string"),
      a("resolv_conf", "string"),
      a("user", "string"),
      a("working_directory", "string"),
      a("bind", "list(map(string))"),
      a("bind_read_only", "list(map(string))"),
      a("environment", "list(map(string))"),
      a("capability", "list(string)"),
      a("ports", "list(string)"),
      a("port_map", "list(map(number))"),
      d("network_veth", "bool", "true"),
      a("network_bridge", "string"),
      a("network_zone", "string"),
  });
}

Spec plugin_schema() {
  return object({
      d("enabled", "bool", "true"),
      d("volumes", "bool", "true"),
  });
}

}  // namespace husk::driver::nspawn
