// What Nomad tells a driver about a task, as plain C++ (no protobuf): the
// fields of TaskConfig that shape the container. The gRPC layer fills it;
// the flavors (podman, docker, nspawn) translate it with the task's decoded
// `config {}` into an OCI bundle.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace husk::driver {

struct TaskMount {
  std::string task_path, host_path;
  bool readonly = false;
  std::string propagation;  // "private", "host-to-task", "bidirectional" or ""
};

struct TaskDevice {
  std::string task_path, host_path;
  std::string permissions;  // subset of "rwm"
};

struct TaskPort {
  std::string label;
  int32_t host_port = 0;
  int32_t container_port = 0;  // 0: same as host_port
  std::string host_ip;
};

enum class NetworkMode { Host, Group, Task, None };

struct TaskSpec {
  std::string id;  // <alloc_id>/<task>/<8 hex>
  std::string name, alloc_id, job_name, job_id, task_group, namespace_, node_name, node_id;
  std::map<std::string, std::string> env;         // the full task environment
  std::map<std::string, std::string> device_env;
  std::string user;
  std::string alloc_dir;  // host path: <data_dir>/alloc/<alloc_id>; task dir = alloc_dir/<name>
  std::string stdout_path, stderr_path;

  // Resources.
  int64_t cpu_shares_mhz = 0;       // allocated_resources.cpu.cpu_shares
  int64_t memory_mb = 0, memory_max_mb = 0;
  int64_t linux_cpu_shares = 0;     // linux_resources.cpu_shares
  int64_t memory_limit_bytes = 0;   // linux_resources.memory_limit_bytes
  int64_t cpu_period = 0, cpu_quota = 0, oom_score_adj = 0;
  std::string cpuset_cpus;          // reserved cores, "0,3"
  double percent_ticks = 0;
  std::vector<TaskPort> ports;

  std::vector<TaskMount> mounts;
  std::vector<TaskDevice> devices;

  // network_isolation_spec: Group means "join the netns at netns_path".
  NetworkMode network_mode = NetworkMode::Host;
  std::string netns_path;
  std::string hosts_hostname, hosts_address;  // hostsConfig
  std::vector<std::string> dns_servers, dns_searches, dns_options;

  // Not from Nomad: StartTask's way to send a task event while the task is
  // being started (an image pull's progress). May be empty.
  std::function<void(const std::string& message, const std::map<std::string, std::string>& annotations)> emit_event;
};

}  // namespace husk::driver
