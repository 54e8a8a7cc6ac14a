// Spec -> config.json, the OCI state, `features`, and the default spec.
#include "oci/config.h"
#include "oci/json_writer.h"
#include "oci/tables.h"

namespace husk::oci {
namespace {

void mappings(JsonWriter& w, const char* name, const std::vector<IdMapping>& maps) {
  if (maps.empty()) return;
  w.key(name).begin_array();
  for (const auto& m : maps)
    w.begin_object().key("containerID").unum(m.container_id).key("hostID").unum(m.host_id).key("size").unum(m.size).end_object();
  w.end_array();
}

void cap_set(JsonWriter& w, const char* name, const std::optional<std::vector<int>>& set) {
  if (!set) return;
  w.key(name).begin_array();
  for (int c : *set) w.str(capability_name(c));
  w.end_array();
}

void hooks(JsonWriter& w, const char* name, const std::vector<Hook>& list) {
  if (list.empty()) return;
  w.key(name).begin_array();
  for (const auto& h : list) {
    w.begin_object().key("path").str(h.path);
    if (!h.args.empty()) w.key("args").strings(h.args);
    if (!h.env.empty()) w.key("env").strings(h.env);
    if (h.timeout) w.key("timeout").num(*h.timeout);
    w.end_object();
  }
  w.end_array();
}

template <typename T>
void opt_num(JsonWriter& w, const char* name, const std::optional<T>& v) {
  if (!v) return;
  if constexpr (std::is_signed_v<T>) w.key(name).num(*v);
  else w.key(name).unum(*v);
}

void opt_str(JsonWriter& w, const char* name, const std::optional<std::string>& v) {
  if (v) w.key(name).str(*v);
}

void opt_bool(JsonWriter& w, const char* name, const std::optional<bool>& v) {
  if (v) w.key(name).boolean(*v);
}

void string_map(JsonWriter& w, const char* name, const std::map<std::string, std::string>& m) {
  if (m.empty()) return;
  w.key(name).begin_object();
  for (const auto& [k, v] : m) w.key(k).str(v);
  w.end_object();
}

const char* sched_policy_name(SchedPolicy p) {
  switch (p) {
    case SchedPolicy::Other: return "SCHED_OTHER";
    case SchedPolicy::Fifo: return "SCHED_FIFO";
    case SchedPolicy::RoundRobin: return "SCHED_RR";
    case SchedPolicy::Batch: return "SCHED_BATCH";
    case SchedPolicy::Iso: return "SCHED_ISO";
    case SchedPolicy::Idle: return "SCHED_IDLE";
    case SchedPolicy::Deadline: return "SCHED_DEADLINE";
  }
  return "SCHED_OTHER";
}

void process(JsonWriter& w, const Process& p) {
  w.key("process").begin_object();
  w.key("terminal").boolean(p.terminal);
  if (p.console_size)
    w.key("consoleSize").begin_object().key("height").unum(p.console_size->height).key("width").unum(p.console_size->width).end_object();
  w.key("user").begin_object().key("uid").unum(p.user.uid).key("gid").unum(p.user.gid);
  opt_num(w, "umask", p.user.umask);
  if (!p.user.additional_gids.empty()) {
    w.key("additionalGids").begin_array();
    for (auto g : p.user.additional_gids) w.unum(g);
    w.end_array();
  }
  opt_str(w, "username", p.user.username);
  w.end_object();
  w.key("args").strings(p.args);
  opt_str(w, "commandLine", p.command_line);
  if (!p.env.empty()) w.key("env").strings(p.env);
  w.key("cwd").str(p.cwd);
  if (p.capabilities) {
    w.key("capabilities").begin_object();
    cap_set(w, "bounding", p.capabilities->bounding);
    cap_set(w, "effective", p.capabilities->effective);
    cap_set(w, "inheritable", p.capabilities->inheritable);
    cap_set(w, "permitted", p.capabilities->permitted);
    cap_set(w, "ambient", p.capabilities->ambient);
    w.end_object();
  }
  if (!p.rlimits.empty()) {
    w.key("rlimits").begin_array();
    for (const auto& r : p.rlimits)
      w.begin_object().key("type").str(rlimit_name(r.resource)).key("hard").unum(r.hard).key("soft").unum(r.soft).end_object();
    w.end_array();
  }
  w.key("noNewPrivileges").boolean(p.no_new_privileges);
  opt_str(w, "apparmorProfile", p.apparmor_profile);
  opt_num(w, "oomScoreAdj", p.oom_score_adj);
  opt_str(w, "selinuxLabel", p.selinux_label);
  if (p.io_priority) {
    const char* k = p.io_priority->klass == IoPriorityClass::RealTime ? "IOPRIO_CLASS_RT"
                    : p.io_priority->klass == IoPriorityClass::BestEffort ? "IOPRIO_CLASS_BE" : "IOPRIO_CLASS_IDLE";
    w.key("ioPriority").begin_object().key("class").str(k).key("priority").num(p.io_priority->priority).end_object();
  }
  if (p.scheduler) {
    w.key("scheduler").begin_object().key("policy").str(sched_policy_name(p.scheduler->policy));
    opt_num(w, "nice", p.scheduler->nice);
    opt_num(w, "priority", p.scheduler->priority);
    if (!p.scheduler->flags.empty()) w.key("flags").strings(p.scheduler->flags);
    opt_num(w, "runtime", p.scheduler->runtime);
    opt_num(w, "deadline", p.scheduler->deadline);
    opt_num(w, "period", p.scheduler->period);
    w.end_object();
  }
  if (p.exec_cpu_affinity) {
    w.key("execCPUAffinity").begin_object();
    opt_str(w, "initial", p.exec_cpu_affinity->initial);
    opt_str(w, "final", p.exec_cpu_affinity->final);
    w.end_object();
  }
  w.end_object();
}

void throttle(JsonWriter& w, const char* name, const std::vector<ThrottleDevice>& v) {
  if (v.empty()) return;
  w.key(name).begin_array();
  for (const auto& t : v) w.begin_object().key("major").num(t.major).key("minor").num(t.minor).key("rate").unum(t.rate).end_object();
  w.end_array();
}

void resources(JsonWriter& w, const Resources& r) {
  w.key("resources").begin_object();
  if (!r.devices.empty()) {
    w.key("devices").begin_array();
    for (const auto& d : r.devices) {
      w.begin_object().key("allow").boolean(d.allow);
      if (d.type) w.key("type").str(std::string(1, *d.type));
      opt_num(w, "major", d.major);
      opt_num(w, "minor", d.minor);
      opt_str(w, "access", d.access);
      w.end_object();
    }
    w.end_array();
  }
  if (r.memory) {
    const auto& m = *r.memory;
    w.key("memory").begin_object();
    opt_num(w, "limit", m.limit);
    opt_num(w, "reservation", m.reservation);
    opt_num(w, "swap", m.swap);
    opt_num(w, "kernel", m.kernel);
    opt_num(w, "kernelTCP", m.kernel_tcp);
    opt_num(w, "swappiness", m.swappiness);
    opt_bool(w, "disableOOMKiller", m.disable_oom_killer);
    opt_bool(w, "useHierarchy", m.use_hierarchy);
    opt_bool(w, "checkBeforeUpdate", m.check_before_update);
    w.end_object();
  }
  if (r.cpu) {
    const auto& c = *r.cpu;
    w.key("cpu").begin_object();
    opt_num(w, "shares", c.shares);
    opt_num(w, "quota", c.quota);
    opt_num(w, "burst", c.burst);
    opt_num(w, "period", c.period);
    opt_num(w, "realtimeRuntime", c.realtime_runtime);
    opt_num(w, "realtimePeriod", c.realtime_period);
    opt_str(w, "cpus", c.cpus);
    opt_str(w, "mems", c.mems);
    opt_num(w, "idle", c.idle);
    w.end_object();
  }
  if (r.pids) w.key("pids").begin_object().key("limit").num(r.pids->limit).end_object();
  if (r.block_io) {
    const auto& b = *r.block_io;
    w.key("blockIO").begin_object();
    opt_num(w, "weight", b.weight);
    opt_num(w, "leafWeight", b.leaf_weight);
    if (!b.weight_device.empty()) {
      w.key("weightDevice").begin_array();
      for (const auto& d : b.weight_device) {
        w.begin_object().key("major").num(d.major).key("minor").num(d.minor);
        opt_num(w, "weight", d.weight);
        opt_num(w, "leafWeight", d.leaf_weight);
        w.end_object();
      }
      w.end_array();
    }
    throttle(w, "throttleReadBpsDevice", b.throttle_read_bps_device);
    throttle(w, "throttleWriteBpsDevice", b.throttle_write_bps_device);
    throttle(w, "throttleReadIOPSDevice", b.throttle_read_iops_device);
    throttle(w, "throttleWriteIOPSDevice", b.throttle_write_iops_device);
    w.end_object();
  }
  if (!r.hugepage_limits.empty()) {
    w.key("hugepageLimits").begin_array();
    for (const auto& h : r.hugepage_limits) w.begin_object().key("pageSize").str(h.page_size).key("limit").unum(h.limit).end_object();
    w.end_array();
  }
  if (r.network) {
    w.key("network").begin_object();
    opt_num(w, "classID", r.network->class_id);
    if (!r.network->priorities.empty()) {
      w.key("priorities").begin_array();
      for (const auto& p : r.network->priorities) w.begin_object().key("name").str(p.name).key("priority").unum(p.priority).end_object();
      w.end_array();
    }
    w.end_object();
  }
  if (!r.rdma.empty()) {
    w.key("rdma").begin_object();
    for (const auto& [k, v] : r.rdma) {
      w.key(k).begin_object();
      opt_num(w, "hcaHandles", v.hca_handles);
      opt_num(w, "hcaObjects", v.hca_objects);
      w.end_object();
    }
    w.end_object();
  }
  string_map(w, "unified", r.unified);
  w.end_object();
}

void seccomp(JsonWriter& w, const Seccomp& s) {
  w.key("seccomp").begin_object().key("defaultAction").str(seccomp_action_name(s.default_action));
  opt_num(w, "defaultErrnoRet", s.default_errno_ret);
  if (!s.architectures.empty()) w.key("architectures").strings(s.architectures);
  if (!s.flags.empty()) w.key("flags").strings(s.flags);
  opt_str(w, "listenerPath", s.listener_path);
  opt_str(w, "listenerMetadata", s.listener_metadata);
  if (!s.syscalls.empty()) {
    w.key("syscalls").begin_array();
    for (const auto& c : s.syscalls) {
      w.begin_object().key("names").strings(c.names).key("action").str(seccomp_action_name(c.action));
      opt_num(w, "errnoRet", c.errno_ret);
      if (!c.args.empty()) {
        w.key("args").begin_array();
        for (const auto& a : c.args) {
          w.begin_object().key("index").unum(a.index).key("value").unum(a.value);
          opt_num(w, "valueTwo", a.value_two);
          w.key("op").str(seccomp_op_name(a.op)).end_object();
        }
        w.end_array();
      }
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
}

void linux_section(JsonWriter& w, const Linux& l) {
  w.key("linux").begin_object();
  mappings(w, "uidMappings", l.uid_mappings);
  mappings(w, "gidMappings", l.gid_mappings);
  if (!l.time_offsets.empty()) {
    w.key("timeOffsets").begin_object();
    for (const auto& [k, v] : l.time_offsets)
      w.key(k).begin_object().key("secs").num(v.secs).key("nanosecs").unum(v.nanosecs).end_object();
    w.end_object();
  }
  if (!l.devices.empty()) {
    w.key("devices").begin_array();
    for (const auto& d : l.devices) {
      w.begin_object().key("type").str(std::string(1, d.type)).key("path").str(d.path);
      if (d.type != 'p') w.key("major").num(d.major).key("minor").num(d.minor);
      opt_num(w, "fileMode", d.file_mode);
      opt_num(w, "uid", d.uid);
      opt_num(w, "gid", d.gid);
      w.end_object();
    }
    w.end_array();
  }
  opt_str(w, "cgroupsPath", l.cgroups_path);
  if (l.resources) resources(w, *l.resources);
  if (l.rootfs_propagation != Propagation::Unset) w.key("rootfsPropagation").str(propagation_name(l.rootfs_propagation));
  if (l.seccomp) seccomp(w, *l.seccomp);
  string_map(w, "sysctl", l.sysctl);
  if (!l.namespaces.empty()) {
    w.key("namespaces").begin_array();
    for (const auto& n : l.namespaces) {
      w.begin_object().key("type").str(namespace_name(n.type));
      opt_str(w, "path", n.path);
      w.end_object();
    }
    w.end_array();
  }
  if (l.masked_paths) w.key("maskedPaths").strings(*l.masked_paths);
  if (l.readonly_paths) w.key("readonlyPaths").strings(*l.readonly_paths);
  opt_str(w, "mountLabel", l.mount_label);
  if (l.intel_rdt) {
    const auto& r = *l.intel_rdt;
    w.key("intelRdt").begin_object();
    opt_str(w, "closID", r.clos_id);
    opt_str(w, "l3CacheSchema", r.l3_cache_schema);
    opt_str(w, "memBwSchema", r.mem_bw_schema);
    if (!r.schemata.empty()) w.key("schemata").strings(r.schemata);
    opt_bool(w, "enableMonitoring", r.enable_monitoring);
    opt_bool(w, "enableCMT", r.enable_cmt);
    opt_bool(w, "enableMBM", r.enable_mbm);
    w.end_object();
  }
  if (l.personality) {
    w.key("personality").begin_object().key("domain").str(l.personality->domain);
    if (!l.personality->flags.empty()) w.key("flags").strings(l.personality->flags);
    w.end_object();
  }
  if (l.memory_policy) {
    w.key("memoryPolicy").begin_object().key("mode").str(l.memory_policy->mode);
    opt_str(w, "nodes", l.memory_policy->nodes);
    if (!l.memory_policy->flags.empty()) w.key("flags").strings(l.memory_policy->flags);
    w.end_object();
  }
  if (!l.net_devices.empty()) {
    w.key("netDevices").begin_object();
    for (const auto& [k, v] : l.net_devices) {
      w.key(k).begin_object();
      opt_str(w, "name", v.name);
      w.end_object();
    }
    w.end_object();
  }
  w.end_object();
}

}  // namespace

std::string emit_config(const Spec& s) {
  JsonWriter w(true);
  w.begin_object().key("ociVersion").str(s.oci_version);
  if (s.process) process(w, *s.process);
  w.key("root").begin_object().key("path").str(s.root.path).key("readonly").boolean(s.root.readonly).end_object();
  opt_str(w, "hostname", s.hostname);
  opt_str(w, "domainname", s.domainname);
  if (!s.mounts.empty()) {
    w.key("mounts").begin_array();
    for (const auto& m : s.mounts) {
      w.begin_object().key("destination").str(m.destination);
      opt_str(w, "type", m.type);
      opt_str(w, "source", m.source);
      if (!m.options.empty()) w.key("options").strings(m.options);
      mappings(w, "uidMappings", m.uid_mappings);
      mappings(w, "gidMappings", m.gid_mappings);
      w.end_object();
    }
    w.end_array();
  }
  if (s.hooks) {
    w.key("hooks").begin_object();
    hooks(w, "prestart", s.hooks->prestart);
    hooks(w, "createRuntime", s.hooks->create_runtime);
    hooks(w, "createContainer", s.hooks->create_container);
    hooks(w, "startContainer", s.hooks->start_container);
    hooks(w, "poststart", s.hooks->poststart);
    hooks(w, "poststop", s.hooks->poststop);
    w.end_object();
  }
  string_map(w, "annotations", s.annotations);
  if (s.linux) linux_section(w, *s.linux);
  w.end_object();
  return w.take();
}

std::string emit_state(const State& st) {
  JsonWriter w(false);
  w.begin_object().key("ociVersion").str(st.oci_version).key("id").str(st.id).key("status").str(status_name(st.status));
  w.key("pid").num(st.pid);  // 0 when stopped, as runc reports it
  w.key("bundle").str(st.bundle);
  string_map(w, "annotations", st.annotations);
  w.end_object();
  return w.take();
}

std::string features_json() {
  JsonWriter w(true);
  w.begin_object().key("ociVersionMin").str("1.0.0").key("ociVersionMax").str("1.2.0");
  w.key("hooks").strings(std::vector<std::string>{"prestart", "createRuntime", "createContainer", "startContainer",
                                                  "poststart", "poststop"});
  w.key("mountOptions").strings(known_mount_options());
  w.key("linux").begin_object();
  w.key("namespaces").strings(namespace_names());
  w.key("capabilities").strings(capability_names());
  w.key("cgroup").begin_object().key("v1").boolean(false).key("v2").boolean(true).key("systemd").boolean(true)
      .key("systemdUser").boolean(true).key("rdma").boolean(true).end_object();
  w.key("seccomp").begin_object().key("enabled").boolean(true).key("actions").strings(seccomp_action_names())
      .key("operators").strings(seccomp_op_names()).key("archs").strings(seccomp_arch_names())
      .key("knownFlags").strings(seccomp_flag_names())
      .key("supportedFlags").strings(std::vector<std::string>{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                                              "SECCOMP_FILTER_FLAG_SPEC_ALLOW"})
      .end_object();
  w.key("apparmor").begin_object().key("enabled").boolean(true).end_object();
  w.key("selinux").begin_object().key("enabled").boolean(false).end_object();
  w.key("intelRdt").begin_object().key("enabled").boolean(false).end_object();
  w.key("mountExtensions").begin_object().key("idmap").begin_object().key("enabled").boolean(true).end_object().end_object();
  w.end_object();
  w.key("annotations").begin_object().key("run.husk.version").str("0.1.0").end_object();
  w.end_object();
  return w.take();
}

Spec default_spec(bool rootless, uint32_t uid, uint32_t gid) {
  Spec s;
  s.oci_version = "1.2.0";
  Process p;
  p.terminal = true;
  p.args = {"sh"};
  p.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"};
  p.cwd = "/";
  std::vector<int> caps;
  for (auto n : {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}) caps.push_back(*capability_from_name(n));
  p.capabilities = Capabilities{caps, caps, std::nullopt, caps, std::nullopt};
  p.rlimits = {Rlimit{*rlimit_from_name("RLIMIT_NOFILE"), 1024, 1024}};
  p.no_new_privileges = true;
  s.process = p;
  s.root = Root{"rootfs", true};
  s.hostname = "husk";
  auto mount = [](const char* dst, const char* type, const char* src, std::vector<std::string> opts) {
    Mount m;
    m.destination = dst;
    m.type = type;
    m.source = src;
    m.options = std::move(opts);
    return m;
  };
  s.mounts.push_back(mount("/proc", "proc", "proc", {}));
  s.mounts.push_back(mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  s.mounts.push_back(mount("/dev/pts", "devpts", "devpts",
                           rootless ? std::vector<std::string>{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}
                                    : std::vector<std::string>{"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                                               "mode=0620", "gid=5"}));
  s.mounts.push_back(mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  s.mounts.push_back(mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  if (rootless) {
    s.mounts.push_back(mount("/sys", "none", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"}));
  } else {
    s.mounts.push_back(mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
    s.mounts.push_back(mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  }
  Linux l;
  if (!rootless) {
    Resources r;
    DeviceRule deny;
    deny.allow = false;
    deny.access = "rwm";
    r.devices.push_back(deny);
    l.resources = r;
  }
  for (auto t : {NamespaceType::Pid, NamespaceType::Network, NamespaceType::Ipc, NamespaceType::Uts,
                 NamespaceType::Mount, NamespaceType::Cgroup}) {
    if (rootless && t == NamespaceType::Network) continue;
    l.namespaces.push_back(Namespace{t, std::nullopt});
  }
  if (rootless) {
    l.namespaces.push_back(Namespace{NamespaceType::User, std::nullopt});
    l.uid_mappings = {IdMapping{0, uid, 1}};
    l.gid_mappings = {IdMapping{0, gid, 1}};
  }
  l.masked_paths = std::vector<std::string>{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"};
  l.readonly_paths = std::vector<std::string>{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
  s.linux = l;
  return s;
}

}  // namespace husk::oci
