// Small pieces every flavor's task -> bundle translation needs: lexical
// path cleaning and containment (for volume policies), IP literals, the
// task's generated /etc files (written atomically, O_CLOEXEC) and bind
// mount entries, /etc/resolv.conf and /etc/hosts. Shared by podman_bundle.cc and docker_bundle.cc.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "driver/task_spec.h"
#include "driver/value.h"
#include "oci/spec.h"

namespace husk::driver {

// Go's filepath.Clean for absolute paths: no ".", "..", or doubled "/".
std::string clean_path(std::string_view p);
// Whether `path` is `parent` or below it (both clean and absolute).
bool is_within(const std::string& parent, const std::string& path);
bool is_ip(const std::string& s);
// Writes `content` to `path` through a temporary file and rename.
Result<> write_file(const std::string& path, const std::string& content);
// A host file's text (at most 1 MiB); "" when it cannot be read.
std::string read_host_file(const std::string& path);
oci::Mount bind_mount(std::string src, std::string dst, std::vector<std::string> opts);

// Splits at every `sep` ("a::b" has an empty middle field).
std::vector<std::string> split(std::string_view s, char sep);

// The host's CPUs this process may run on (at least 1), and whether
// SELinux is enabled: host facts the flavors' options carry.
int online_cpus();
bool selinux_enabled();

// Drops namespace `t` from the spec, then adds it back when `present`
// (joining `path` when given).
void set_namespace(oci::Spec& spec, oci::NamespaceType t, bool present, std::optional<std::string> path = std::nullopt);

// husk's port forwards (the run.husk.ports annotation) for the group ports
// named in `labels` (container side: their `to`, else the host port) and
// the deprecated port_map (label -> container port), TCP and UDP each. An
// unknown port_map label is an error naming `port_map_field`.
Result<std::string> port_forwards(const TaskSpec& task, const std::vector<std::string>& labels,
                                  const std::vector<std::pair<std::string, int64_t>>& port_map,
                                  const std::string& port_map_field);

// Nomad's own volume mounts (TaskConfig.mounts) as binds with their
// propagation.
Result<> add_nomad_mounts(oci::Spec& spec, const TaskSpec& task);

// com.hashicorp.nomad.<key> annotations for the task's metadata keys that
// match one of the plugin's extra_labels globs.
void add_nomad_labels(oci::Spec& spec, const TaskSpec& task, const std::vector<std::string>& patterns);

// The task config's `labels` map (errors name `field`.labels) as
// annotations, then Nomad's (add_nomad_labels), and with `alloc_id` the
// annotation com.hashicorp.nomad.alloc_id.
Result<> add_task_labels(oci::Spec& spec, const Value& cfg, std::string_view field, const TaskSpec& task,
                         const std::vector<std::string>& extra_labels, bool alloc_id);

// What shapes a task's /etc/resolv.conf, /etc/hosts and /etc/hostname.
struct EtcFiles {
  std::vector<std::string> servers, searches, options;  // all empty: the host's resolv.conf
  std::string servers_field;                            // for errors: "config.dns_servers"
  std::vector<std::string> extra_hosts;                 // "host:ip"
  std::string extra_hosts_field;
  bool host_net = false;    // the task shares the host's network namespace
  bool netns_none = false;  // a network namespace with loopback only
  std::string host_resolv_conf, host_resolved_upstream, host_hosts;
};
// The host's side of EtcFiles, from a flavor's options (docker's and
// podman's have the same three paths).
template <class Options>
EtcFiles host_etc_files(const Options& o, bool host_net, bool netns_none) {
  EtcFiles etc;
  etc.host_net = host_net;
  etc.netns_none = netns_none;
  etc.host_resolv_conf = o.host_resolv_conf;
  etc.host_resolved_upstream = o.host_resolved_upstream;
  etc.host_hosts = o.host_hosts;
  return etc;
}

// Writes the three files into `task_dir` and binds them read-only (hostname
// only when spec.hostname is set). systemd-resolved's loopback stub is
// replaced by its upstream list for tasks with a network of their own.
Result<> add_etc_files(oci::Spec& spec, const TaskSpec& task, const std::string& task_dir, const EtcFiles& etc);

// The task's env value for `key`, or `fallback` when unset or empty.
std::string task_env_or(const TaskSpec& task, const char* key, const char* fallback);

// The name the upstream drivers give a task's container: <task>-<alloc id>.
inline std::string task_container_name(const TaskSpec& task) { return task.name + "-" + task.alloc_id; }
// Binds of the allocation's shared directory and the task's local/ and
// secrets/ at the paths the Nomad env names (NOMAD_ALLOC_DIR, ...).
void add_task_dir_mounts(oci::Spec& spec, const TaskSpec& task);

// Another task's husk container, for "container:NAME" modes (see
// bundle_files.cc); `field` names the task config field in errors.
Result<std::string> container_named(const std::string& containers_root, const std::string& name,
                                    const std::string& field);
// That container (container_named) and its init's pid while it runs
// (husk's state record: pid and start time).
struct RunningContainer {
  std::string id;
  pid_t pid = 0;
};
Result<RunningContainer> running_init(const std::string& containers_root, const std::string& name,
                                      const std::string& field);
// <state>/containers for a task dir <state>/tasks/ID.
std::string containers_root_of(const std::string& task_dir);

// ipc_mode "shareable": /dev/shm becomes a bind of <task_dir>/shm, a tmpfs
// of `bytes` the driver mounts (BundlePlan::shareable_shm_bytes).
inline constexpr const char* kShmDir = "/shm";
void share_dev_shm(oci::Spec& spec, const std::string& task_dir, int64_t bytes, int64_t& plan_bytes);
// ipc_mode "container:NAME": the /dev/shm of that task when it is
// shareable (its <task dir>/shm is a mount): bound as this task's /dev/shm
// and true; false when it is not shareable.
bool join_dev_shm(oci::Spec& spec, const std::string& containers_root, const std::string& other_id);

}  // namespace husk::driver
