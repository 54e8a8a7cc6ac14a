// The OCI runtime spec 1.2 config.json as validated C++ values. src/oci/
// parses config.json once into a Spec (config.h); nothing below src/oci/
// reads JSON. Optional JSON members are std::optional so a parsed spec can be
// emitted back unchanged. Enumerations are C++ enums; capabilities are
// kernel capability numbers (names in tables.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace husk::oci {

struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

struct Mount {
  std::string destination;
  std::optional<std::string> type;
  std::optional<std::string> source;
  std::vector<std::string> options;  // as written; runtime/mounts parses them
  std::vector<IdMapping> uid_mappings;  // idmapped mount
  std::vector<IdMapping> gid_mappings;
};

struct Root {
  std::string path;
  bool readonly = false;
};

struct Hook {
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::optional<int> timeout;  // seconds, > 0
};

struct Hooks {
  std::vector<Hook> prestart;  // deprecated, still run
  std::vector<Hook> create_runtime;
  std::vector<Hook> create_container;
  std::vector<Hook> start_container;
  std::vector<Hook> poststart;
  std::vector<Hook> poststop;
};

struct Capabilities {
  std::optional<std::vector<int>> bounding;
  std::optional<std::vector<int>> effective;
  std::optional<std::vector<int>> inheritable;
  std::optional<std::vector<int>> permitted;
  std::optional<std::vector<int>> ambient;
};

struct Rlimit {
  int resource = 0;  // RLIMIT_* number; name from tables.h
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct User {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::optional<uint32_t> umask;
  std::vector<uint32_t> additional_gids;
  std::optional<std::string> username;  // windows only; kept for emit
};

struct ConsoleSize {
  uint32_t height = 0;
  uint32_t width = 0;
};

enum class IoPriorityClass { RealTime, BestEffort, Idle };
struct IoPriority {
  IoPriorityClass klass = IoPriorityClass::BestEffort;
  int priority = 0;  // 0..7
};

enum class SchedPolicy { Other, Fifo, RoundRobin, Batch, Iso, Idle, Deadline };
struct Scheduler {
  SchedPolicy policy = SchedPolicy::Other;
  std::optional<int32_t> nice;
  std::optional<int32_t> priority;
  std::vector<std::string> flags;  // SCHED_FLAG_* names, validated
  std::optional<uint64_t> runtime;
  std::optional<uint64_t> deadline;
  std::optional<uint64_t> period;
};

struct ExecCpuAffinity {
  std::optional<std::string> initial;  // cpu list "0-3,7"
  std::optional<std::string> final;
};

struct Process {
  bool terminal = false;
  std::optional<ConsoleSize> console_size;
  User user;
  std::vector<std::string> args;
  std::optional<std::string> command_line;  // windows only
  std::vector<std::string> env;
  std::string cwd = "/";
  std::optional<Capabilities> capabilities;
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::optional<std::string> apparmor_profile;
  std::optional<int> oom_score_adj;
  std::optional<std::string> selinux_label;
  std::optional<IoPriority> io_priority;
  std::optional<Scheduler> scheduler;
  std::optional<ExecCpuAffinity> exec_cpu_affinity;
};

enum class NamespaceType { Pid, Network, Mount, Ipc, Uts, User, Cgroup, Time };
struct Namespace {
  NamespaceType type = NamespaceType::Mount;
  std::optional<std::string> path;  // join this one instead of creating
};

struct TimeOffset {
  int64_t secs = 0;
  uint32_t nanosecs = 0;
};

struct Device {
  char type = 'c';  // 'c', 'b', 'u' (unbuffered char) or 'p' (fifo)
  std::string path;
  int64_t major = 0;  // required for c/b/u
  int64_t minor = 0;
  std::optional<uint32_t> file_mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
};

// --- linux.resources -------------------------------------------------------

struct DeviceRule {
  bool allow = false;
  std::optional<char> type;  // 'a', 'c', 'b'; absent means all
  std::optional<int64_t> major;  // absent means any (-1 in cgroup terms)
  std::optional<int64_t> minor;
  std::optional<std::string> access;  // subset of "rwm"
};

struct MemoryResources {
  std::optional<int64_t> limit;
  std::optional<int64_t> reservation;
  std::optional<int64_t> swap;
  std::optional<int64_t> kernel;
  std::optional<int64_t> kernel_tcp;
  std::optional<uint64_t> swappiness;
  std::optional<bool> disable_oom_killer;
  std::optional<bool> use_hierarchy;
  std::optional<bool> check_before_update;
};

struct CpuResources {
  std::optional<uint64_t> shares;
  std::optional<int64_t> quota;
  std::optional<uint64_t> burst;
  std::optional<uint64_t> period;
  std::optional<int64_t> realtime_runtime;
  std::optional<uint64_t> realtime_period;
  std::optional<std::string> cpus;
  std::optional<std::string> mems;
  std::optional<int64_t> idle;
};

struct PidsResources {
  int64_t limit = 0;  // <= 0 means unlimited
};

struct WeightDevice {
  int64_t major = 0;
  int64_t minor = 0;
  std::optional<uint16_t> weight;
  std::optional<uint16_t> leaf_weight;
};

struct ThrottleDevice {
  int64_t major = 0;
  int64_t minor = 0;
  uint64_t rate = 0;
};

struct BlockIoResources {
  std::optional<uint16_t> weight;
  std::optional<uint16_t> leaf_weight;
  std::vector<WeightDevice> weight_device;
  std::vector<ThrottleDevice> throttle_read_bps_device;
  std::vector<ThrottleDevice> throttle_write_bps_device;
  std::vector<ThrottleDevice> throttle_read_iops_device;
  std::vector<ThrottleDevice> throttle_write_iops_device;
};

struct HugepageLimit {
  std::string page_size;  // "2MB", "1GB"
  uint64_t limit = 0;
};

struct NetworkPriority {
  std::string name;
  uint32_t priority = 0;
};

struct NetworkResources {
  std::optional<uint32_t> class_id;
  std::vector<NetworkPriority> priorities;
};

struct RdmaLimit {
  std::optional<uint32_t> hca_handles;
  std::optional<uint32_t> hca_objects;
};

struct Resources {
  std::vector<DeviceRule> devices;
  std::optional<MemoryResources> memory;
  std::optional<CpuResources> cpu;
  std::optional<PidsResources> pids;
  std::optional<BlockIoResources> block_io;
  std::vector<HugepageLimit> hugepage_limits;
  std::optional<NetworkResources> network;
  std::map<std::string, RdmaLimit> rdma;
  std::map<std::string, std::string> unified;
};

// --- linux.seccomp ---------------------------------------------------------

enum class SeccompAction { Kill, KillProcess, KillThread, Trap, Errno, Trace, Allow, Log, Notify };
enum class SeccompOp { NotEqual, LessThan, LessEqual, EqualTo, GreaterEqual, GreaterThan, MaskedEqual };

struct SeccompArg {
  uint32_t index = 0;
  uint64_t value = 0;
  std::optional<uint64_t> value_two;
  SeccompOp op = SeccompOp::EqualTo;
};

struct SeccompSyscall {
  std::vector<std::string> names;
  SeccompAction action = SeccompAction::Allow;
  std::optional<uint32_t> errno_ret;
  std::vector<SeccompArg> args;
};

struct Seccomp {
  SeccompAction default_action = SeccompAction::Allow;
  std::optional<uint32_t> default_errno_ret;
  std::vector<std::string> architectures;  // SCMP_ARCH_* names, validated
  std::vector<std::string> flags;           // SECCOMP_FILTER_FLAG_* names, validated
  std::optional<std::string> listener_path;
  std::optional<std::string> listener_metadata;
  std::vector<SeccompSyscall> syscalls;
};

// --- the rest of linux.* ---------------------------------------------------

struct IntelRdt {
  std::optional<std::string> clos_id;
  std::optional<std::string> l3_cache_schema;
  std::optional<std::string> mem_bw_schema;
  std::vector<std::string> schemata;
  std::optional<bool> enable_monitoring;
  std::optional<bool> enable_cmt;  // pre-1.2 names, kept for emit
  std::optional<bool> enable_mbm;
};

struct Personality {
  std::string domain;  // "LINUX" or "LINUX32"
  std::vector<std::string> flags;
};

struct MemoryPolicy {
  std::string mode;  // MPOL_* name, validated
  std::optional<std::string> nodes;
  std::vector<std::string> flags;  // MPOL_F_* names
};

struct NetDevice {
  std::optional<std::string> name;  // name inside the container
};

enum class Propagation { Unset, Shared, Slave, Private, Unbindable, RShared, RSlave, RPrivate, RUnbindable };

struct Linux {
  std::vector<Namespace> namespaces;
  std::vector<IdMapping> uid_mappings;
  std::vector<IdMapping> gid_mappings;
  std::map<std::string, TimeOffset> time_offsets;  // "monotonic", "boottime"
  std::vector<Device> devices;
  std::optional<std::string> cgroups_path;
  std::optional<Resources> resources;
  Propagation rootfs_propagation = Propagation::Unset;
  std::optional<Seccomp> seccomp;
  std::map<std::string, std::string> sysctl;
  std::optional<std::vector<std::string>> masked_paths;
  std::optional<std::vector<std::string>> readonly_paths;
  std::optional<std::string> mount_label;
  std::optional<IntelRdt> intel_rdt;
  std::optional<Personality> personality;
  std::optional<MemoryPolicy> memory_policy;
  std::map<std::string, NetDevice> net_devices;

  bool has_namespace(NamespaceType t) const {
    for (const auto& ns : namespaces)
      if (ns.type == t) return true;
    return false;
  }
  const Namespace* find_namespace(NamespaceType t) const {
    for (const auto& ns : namespaces)
      if (ns.type == t) return &ns;
    return nullptr;
  }
};

struct Spec {
  std::string oci_version;
  std::optional<Process> process;  // required for create; optional in schema
  Root root;
  std::optional<std::string> hostname;
  std::optional<std::string> domainname;
  std::vector<Mount> mounts;
  std::optional<Hooks> hooks;
  std::map<std::string, std::string> annotations;
  std::optional<Linux> linux;
};

// The OCI state (`husk state`, and hooks' stdin).
enum class Status { Creating, Created, Running, Paused, Stopped };
struct State {
  std::string oci_version;
  std::string id;
  Status status = Status::Creating;
  int pid = 0;  // 0 when stopped
  std::string bundle;
  std::map<std::string, std::string> annotations;
};

}  // namespace husk::oci
