// config.json -> Spec, with validation. Unknown members are ignored (the
// spec requires it); unknown enum values and bad values are errors naming
// the JSON path.
#include <climits>

#include "oci/config.h"
#include "common/fd.h"
#include "oci/json_reader.h"
#include "oci/tables.h"

namespace husk::oci {
namespace {

constexpr int64_t kI64Min = INT64_MIN, kI64Max = INT64_MAX;

Result<std::vector<IdMapping>> parse_mappings(const J& j) {
  std::vector<IdMapping> out;
  if (!j.present()) return out;
  TRYV(need_array(j));
  for (size_t i = 0; i < j.size(); ++i) {
    J m = j.at(i);
    TRYV(need_object(m));
    IdMapping im;
    im.container_id = static_cast<uint32_t>(TRY(get_uint(m["containerID"], UINT32_MAX)));
    im.host_id = static_cast<uint32_t>(TRY(get_uint(m["hostID"], UINT32_MAX)));
    im.size = static_cast<uint32_t>(TRY(get_uint(m["size"], UINT32_MAX)));
    if (im.size == 0) return bad(m["size"], "must be greater than 0");
    out.push_back(im);
  }
  return out;
}

Result<std::optional<std::vector<int>>> parse_cap_set(const J& j) {
  if (!j.present()) return std::optional<std::vector<int>>();
  TRYV(need_array(j));
  std::vector<int> out;
  for (size_t i = 0; i < j.size(); ++i) {
    std::string name = TRY(get_string(j.at(i)));
    auto cap = capability_from_name(name);
    if (!cap) return bad(j.at(i), "unknown capability \"", name, "\"");
    out.push_back(*cap);
  }
  return std::optional<std::vector<int>>(std::move(out));
}

Result<Process> parse_process_at(const J& p) {
  TRYV(need_object(p));
  Process pr;
  pr.terminal = TRY(opt_bool(p["terminal"])).value_or(false);
  if (p["consoleSize"].present()) {
    J cs = p["consoleSize"];
    TRYV(need_object(cs));
    pr.console_size = ConsoleSize{static_cast<uint32_t>(TRY(get_uint(cs["height"], UINT32_MAX))),
                                  static_cast<uint32_t>(TRY(get_uint(cs["width"], UINT32_MAX)))};
  }
  J u = p["user"];
  if (u.present()) {
    TRYV(need_object(u));
    pr.user.uid = static_cast<uint32_t>(TRY(opt_uint(u["uid"], UINT32_MAX)).value_or(0));
    pr.user.gid = static_cast<uint32_t>(TRY(opt_uint(u["gid"], UINT32_MAX)).value_or(0));
    if (auto um = TRY(opt_uint(u["umask"], 0777))) pr.user.umask = static_cast<uint32_t>(*um);
    J ag = u["additionalGids"];
    if (ag.present()) {
      TRYV(need_array(ag));
      for (size_t i = 0; i < ag.size(); ++i)
        pr.user.additional_gids.push_back(static_cast<uint32_t>(TRY(get_uint(ag.at(i), UINT32_MAX))));
    }
    pr.user.username = TRY(opt_string(u["username"]));
  }
  if (p["args"].present()) pr.args = TRY(get_strings(p["args"]));
  pr.command_line = TRY(opt_string(p["commandLine"]));
  if (pr.args.empty()) return bad(p["args"], "required: the command to run");
  if (p["env"].present()) pr.env = TRY(get_strings(p["env"]));
  for (size_t i = 0; i < pr.env.size(); ++i)
    if (pr.env[i].find('=') == std::string::npos) return bad(p["env"].at(i), "expected KEY=VALUE, got \"", pr.env[i], "\"");
  pr.cwd = TRY(opt_string(p["cwd"])).value_or("/");
  if (pr.cwd.empty() || pr.cwd[0] != '/') return bad(p["cwd"], "must be an absolute path, got \"", pr.cwd, "\"");
  J caps = p["capabilities"];
  if (caps.present()) {
    TRYV(need_object(caps));
    Capabilities c;
    c.bounding = TRY(parse_cap_set(caps["bounding"]));
    c.effective = TRY(parse_cap_set(caps["effective"]));
    c.inheritable = TRY(parse_cap_set(caps["inheritable"]));
    c.permitted = TRY(parse_cap_set(caps["permitted"]));
    c.ambient = TRY(parse_cap_set(caps["ambient"]));
    pr.capabilities = c;
  }
  J rl = p["rlimits"];
  if (rl.present()) {
    TRYV(need_array(rl));
    for (size_t i = 0; i < rl.size(); ++i) {
      J r = rl.at(i);
      TRYV(need_object(r));
      std::string type = TRY(get_string(r["type"]));
      auto res = rlimit_from_name(type);
      if (!res) return bad(r["type"], "unknown rlimit \"", type, "\"");
      Rlimit lim{*res, TRY(get_uint(r["soft"])), TRY(get_uint(r["hard"]))};
      if (lim.soft > lim.hard) return bad(r, "soft limit ", lim.soft, " is above the hard limit ", lim.hard);
      for (const auto& prev : pr.rlimits)
        if (prev.resource == lim.resource) return bad(r["type"], "duplicate rlimit \"", type, "\"");
      pr.rlimits.push_back(lim);
    }
  }
  pr.no_new_privileges = TRY(opt_bool(p["noNewPrivileges"])).value_or(false);
  pr.apparmor_profile = TRY(opt_string(p["apparmorProfile"]));
  if (auto o = TRY(opt_int(p["oomScoreAdj"], -1000, 1000))) pr.oom_score_adj = static_cast<int>(*o);
  pr.selinux_label = TRY(opt_string(p["selinuxLabel"]));
  J io = p["ioPriority"];
  if (io.present()) {
    TRYV(need_object(io));
    std::string klass = TRY(get_string(io["class"]));
    IoPriority iop;
    if (klass == "IOPRIO_CLASS_RT") iop.klass = IoPriorityClass::RealTime;
    else if (klass == "IOPRIO_CLASS_BE") iop.klass = IoPriorityClass::BestEffort;
    else if (klass == "IOPRIO_CLASS_IDLE") iop.klass = IoPriorityClass::Idle;
    else return bad(io["class"], "unknown I/O priority class \"", klass, "\"");
    iop.priority = static_cast<int>(TRY(opt_int(io["priority"], 0, 7)).value_or(0));
    pr.io_priority = iop;
  }
  J sc = p["scheduler"];
  if (sc.present()) {
    TRYV(need_object(sc));
    Scheduler s;
    std::string pol = TRY(get_string(sc["policy"]));
    static const std::pair<const char*, SchedPolicy> kPol[] = {
        {"SCHED_OTHER", SchedPolicy::Other}, {"SCHED_FIFO", SchedPolicy::Fifo}, {"SCHED_RR", SchedPolicy::RoundRobin},
        {"SCHED_BATCH", SchedPolicy::Batch}, {"SCHED_ISO", SchedPolicy::Iso},   {"SCHED_IDLE", SchedPolicy::Idle},
        {"SCHED_DEADLINE", SchedPolicy::Deadline}};
    bool found = false;
    for (const auto& [n, v] : kPol)
      if (pol == n) s.policy = v, found = true;
    if (!found) return bad(sc["policy"], "unknown scheduler policy \"", pol, "\"");
    if (auto n = TRY(opt_int(sc["nice"], -20, 19))) s.nice = static_cast<int32_t>(*n);
    if (auto n = TRY(opt_int(sc["priority"], 0, 99))) s.priority = static_cast<int32_t>(*n);
    if (sc["flags"].present()) s.flags = TRY(get_strings(sc["flags"]));
    static const char* kFlags[] = {"SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
                                   "SCHED_FLAG_KEEP_POLICY",   "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
                                   "SCHED_FLAG_UTIL_CLAMP_MAX"};
    for (size_t i = 0; i < s.flags.size(); ++i) {
      bool ok = false;
      for (auto f : kFlags) ok = ok || s.flags[i] == f;
      if (!ok) return bad(sc["flags"].at(i), "unknown scheduler flag \"", s.flags[i], "\"");
    }
    s.runtime = TRY(opt_uint(sc["runtime"]));
    s.deadline = TRY(opt_uint(sc["deadline"]));
    s.period = TRY(opt_uint(sc["period"]));
    pr.scheduler = s;
  }
  J aff = p["execCPUAffinity"];
  if (aff.present()) {
    TRYV(need_object(aff));
    pr.exec_cpu_affinity = ExecCpuAffinity{TRY(opt_string(aff["initial"])), TRY(opt_string(aff["final"]))};
  }
  return pr;
}

Result<std::optional<int64_t>> opt_i64(const J& j) { return opt_int(j, kI64Min, kI64Max); }

Result<std::vector<ThrottleDevice>> parse_throttle(const J& j) {
  std::vector<ThrottleDevice> out;
  if (!j.present()) return out;
  TRYV(need_array(j));
  for (size_t i = 0; i < j.size(); ++i) {
    J t = j.at(i);
    TRYV(need_object(t));
    out.push_back({TRY(get_int(t["major"], 0, kI64Max)), TRY(get_int(t["minor"], 0, kI64Max)), TRY(get_uint(t["rate"]))});
  }
  return out;
}

Result<Resources> parse_resources_at(const J& r) {
  TRYV(need_object(r));
  Resources res;
  J devs = r["devices"];
  if (devs.present()) {
    TRYV(need_array(devs));
    for (size_t i = 0; i < devs.size(); ++i) {
      J d = devs.at(i);
      TRYV(need_object(d));
      DeviceRule rule;
      rule.allow = TRY(get_bool(d["allow"]));
      if (auto t = TRY(opt_string(d["type"]))) {
        if (*t != "a" && *t != "c" && *t != "b") return bad(d["type"], "must be \"a\", \"c\" or \"b\", got \"", *t, "\"");
        rule.type = (*t)[0];
      }
      rule.major = TRY(opt_int(d["major"], -1, kI64Max));
      rule.minor = TRY(opt_int(d["minor"], -1, kI64Max));
      rule.access = TRY(opt_string(d["access"]));
      if (rule.access && rule.access->find_first_not_of("rwm") != std::string::npos)
        return bad(d["access"], "must be made of r, w and m, got \"", *rule.access, "\"");
      res.devices.push_back(rule);
    }
  }
  J m = r["memory"];
  if (m.present()) {
    TRYV(need_object(m));
    MemoryResources mem;
    mem.limit = TRY(opt_i64(m["limit"]));
    mem.reservation = TRY(opt_i64(m["reservation"]));
    mem.swap = TRY(opt_i64(m["swap"]));
    mem.kernel = TRY(opt_i64(m["kernel"]));
    mem.kernel_tcp = TRY(opt_i64(m["kernelTCP"]));
    mem.swappiness = TRY(opt_uint(m["swappiness"], 100));
    mem.disable_oom_killer = TRY(opt_bool(m["disableOOMKiller"]));
    mem.use_hierarchy = TRY(opt_bool(m["useHierarchy"]));
    mem.check_before_update = TRY(opt_bool(m["checkBeforeUpdate"]));
    res.memory = mem;
  }
  J c = r["cpu"];
  if (c.present()) {
    TRYV(need_object(c));
    CpuResources cpu;
    cpu.shares = TRY(opt_uint(c["shares"]));
    cpu.quota = TRY(opt_i64(c["quota"]));
    cpu.burst = TRY(opt_uint(c["burst"]));
    cpu.period = TRY(opt_uint(c["period"]));
    cpu.realtime_runtime = TRY(opt_i64(c["realtimeRuntime"]));
    cpu.realtime_period = TRY(opt_uint(c["realtimePeriod"]));
    cpu.cpus = TRY(opt_string(c["cpus"]));
    cpu.mems = TRY(opt_string(c["mems"]));
    cpu.idle = TRY(opt_int(c["idle"], 0, 1));
    res.cpu = cpu;
  }
  J p = r["pids"];
  if (p.present()) {
    TRYV(need_object(p));
    res.pids = PidsResources{TRY(opt_i64(p["limit"])).value_or(0)};
  }
  J b = r["blockIO"];
  if (b.present()) {
    TRYV(need_object(b));
    BlockIoResources bio;
    if (auto w = TRY(opt_uint(b["weight"], 1000))) bio.weight = static_cast<uint16_t>(*w);
    if (auto w = TRY(opt_uint(b["leafWeight"], 1000))) bio.leaf_weight = static_cast<uint16_t>(*w);
    J wd = b["weightDevice"];
    if (wd.present()) {
      TRYV(need_array(wd));
      for (size_t i = 0; i < wd.size(); ++i) {
        J d = wd.at(i);
        TRYV(need_object(d));
        WeightDevice w;
        w.major = TRY(get_int(d["major"], 0, kI64Max));
        w.minor = TRY(get_int(d["minor"], 0, kI64Max));
        if (auto x = TRY(opt_uint(d["weight"], 1000))) w.weight = static_cast<uint16_t>(*x);
        if (auto x = TRY(opt_uint(d["leafWeight"], 1000))) w.leaf_weight = static_cast<uint16_t>(*x);
        bio.weight_device.push_back(w);
      }
    }
    bio.throttle_read_bps_device = TRY(parse_throttle(b["throttleReadBpsDevice"]));
    bio.throttle_write_bps_device = TRY(parse_throttle(b["throttleWriteBpsDevice"]));
    bio.throttle_read_iops_device = TRY(parse_throttle(b["throttleReadIOPSDevice"]));
    bio.throttle_write_iops_device = TRY(parse_throttle(b["throttleWriteIOPSDevice"]));
    res.block_io = bio;
  }
  J hp = r["hugepageLimits"];
  if (hp.present()) {
    TRYV(need_array(hp));
    for (size_t i = 0; i < hp.size(); ++i) {
      J h = hp.at(i);
      TRYV(need_object(h));
      res.hugepage_limits.push_back({TRY(get_string(h["pageSize"])), TRY(get_uint(h["limit"]))});
    }
  }
  J n = r["network"];
  if (n.present()) {
    TRYV(need_object(n));
    NetworkResources net;
    if (auto id = TRY(opt_uint(n["classID"], UINT32_MAX))) net.class_id = static_cast<uint32_t>(*id);
    J pr = n["priorities"];
    if (pr.present()) {
      TRYV(need_array(pr));
      for (size_t i = 0; i < pr.size(); ++i)
        net.priorities.push_back({TRY(get_string(pr.at(i)["name"])),
                                  static_cast<uint32_t>(TRY(get_uint(pr.at(i)["priority"], UINT32_MAX)))});
    }
    res.network = net;
  }
  J rd = r["rdma"];
  if (rd.present()) {
    TRYV(need_object(rd));
    for (const auto& k : rd.keys()) {
      J e = rd[k.c_str()];
      TRYV(need_object(e));
      RdmaLimit lim;
      if (auto x = TRY(opt_uint(e["hcaHandles"], UINT32_MAX))) lim.hca_handles = static_cast<uint32_t>(*x);
      if (auto x = TRY(opt_uint(e["hcaObjects"], UINT32_MAX))) lim.hca_objects = static_cast<uint32_t>(*x);
      res.rdma[k] = lim;
    }
  }
  if (r["unified"].present()) res.unified = TRY(get_string_map(r["unified"]));
  return res;
}

Result<std::vector<Hook>> parse_hooks(const J& j) {
  std::vector<Hook> out;
  if (!j.present()) return out;
  TRYV(need_array(j));
  for (size_t i = 0; i < j.size(); ++i) {
    J h = j.at(i);
    TRYV(need_object(h));
    Hook hook;
    hook.path = TRY(get_string(h["path"]));
    if (hook.path.empty() || hook.path[0] != '/') return bad(h["path"], "must be an absolute path, got \"", hook.path, "\"");
    if (h["args"].present()) hook.args = TRY(get_strings(h["args"]));
    if (h["env"].present()) hook.env = TRY(get_strings(h["env"]));
    if (auto t = TRY(opt_int(h["timeout"], kI64Min, INT_MAX))) {
      if (*t <= 0) return bad(h["timeout"], "must be greater than 0, got ", *t);
      hook.timeout = static_cast<int>(*t);
    }
    out.push_back(std::move(hook));
  }
  return out;
}

Result<Seccomp> parse_seccomp(const J& s) {
  TRYV(need_object(s));
  Seccomp sc;
  auto action = [](const J& j) -> Result<SeccompAction> {
    std::string name = TRY(get_string(j));
    auto a = seccomp_action_from_name(name);
    if (!a) return bad(j, "unknown seccomp action \"", name, "\"");
    return *a;
  };
  sc.default_action = TRY(action(s["defaultAction"]));
  if (auto e = TRY(opt_uint(s["defaultErrnoRet"], UINT32_MAX))) sc.default_errno_ret = static_cast<uint32_t>(*e);
  if (s["architectures"].present()) sc.architectures = TRY(get_strings(s["architectures"]));
  for (size_t i = 0; i < sc.architectures.size(); ++i)
    if (!seccomp_arch_known(sc.architectures[i]))
      return bad(s["architectures"].at(i), "unknown architecture \"", sc.architectures[i], "\"");
  if (s["flags"].present()) sc.flags = TRY(get_strings(s["flags"]));
  for (size_t i = 0; i < sc.flags.size(); ++i)
    if (!seccomp_flag_known(sc.flags[i])) return bad(s["flags"].at(i), "unknown seccomp flag \"", sc.flags[i], "\"");
  sc.listener_path = TRY(opt_string(s["listenerPath"]));
  sc.listener_metadata = TRY(opt_string(s["listenerMetadata"]));
  J calls = s["syscalls"];
  if (calls.present()) {
    TRYV(need_array(calls));
    for (size_t i = 0; i < calls.size(); ++i) {
      J c = calls.at(i);
      TRYV(need_object(c));
      SeccompSyscall call;
      call.names = TRY(get_strings(c["names"]));
      if (call.names.empty()) return bad(c["names"], "must name at least one syscall");
      for (size_t k = 0; k < call.names.size(); ++k)
        if (call.names[k].empty()) return bad(c["names"].at(k), "empty syscall name");
      call.action = TRY(action(c["action"]));
      if (auto e = TRY(opt_uint(c["errnoRet"], UINT32_MAX))) call.errno_ret = static_cast<uint32_t>(*e);
      J args = c["args"];
      if (args.present()) {
        TRYV(need_array(args));
        for (size_t k = 0; k < args.size(); ++k) {
          J a = args.at(k);
          TRYV(need_object(a));
          SeccompArg arg;
          arg.index = static_cast<uint32_t>(TRY(get_uint(a["index"], 5)));
          arg.value = TRY(get_uint(a["value"]));
          arg.value_two = TRY(opt_uint(a["valueTwo"]));
          std::string op = TRY(get_string(a["op"]));
          auto o = seccomp_op_from_name(op);
          if (!o) return bad(a["op"], "unknown seccomp operator \"", op, "\"");
          arg.op = *o;
          call.args.push_back(arg);
        }
      }
      sc.syscalls.push_back(std::move(call));
    }
  }
  return sc;
}

Result<Linux> parse_linux(const J& l) {
  TRYV(need_object(l));
  Linux lx;
  J ns = l["namespaces"];
  if (ns.present()) {
    TRYV(need_array(ns));
    for (size_t i = 0; i < ns.size(); ++i) {
      J n = ns.at(i);
      TRYV(need_object(n));
      std::string type = TRY(get_string(n["type"]));
      auto t = namespace_from_name(type);
      if (!t) return bad(n["type"], "unknown namespace type \"", type, "\"");
      if (lx.has_namespace(*t)) return bad(n["type"], "duplicate namespace type \"", type, "\"");
      Namespace nsv{*t, TRY(opt_string(n["path"]))};
      if (nsv.path && (nsv.path->empty() || (*nsv.path)[0] != '/'))
        return bad(n["path"], "must be an absolute path, got \"", *nsv.path, "\"");
      lx.namespaces.push_back(nsv);
    }
  }
  lx.uid_mappings = TRY(parse_mappings(l["uidMappings"]));
  lx.gid_mappings = TRY(parse_mappings(l["gidMappings"]));
  J to = l["timeOffsets"];
  if (to.present()) {
    TRYV(need_object(to));
    for (const auto& k : to.keys()) {
      J o = to[k.c_str()];
      if (k != "monotonic" && k != "boottime") return bad(o, "unknown clock (monotonic or boottime)");
      TRYV(need_object(o));
      lx.time_offsets[k] = TimeOffset{TRY(opt_i64(o["secs"])).value_or(0),
                                      static_cast<uint32_t>(TRY(opt_uint(o["nanosecs"], 999999999)).value_or(0))};
    }
  }
  J devs = l["devices"];
  if (devs.present()) {
    TRYV(need_array(devs));
    for (size_t i = 0; i < devs.size(); ++i) {
      J d = devs.at(i);
      TRYV(need_object(d));
      Device dev;
      std::string type = TRY(get_string(d["type"]));
      if (type.size() != 1 || std::string("cbup").find(type[0]) == std::string::npos)
        return bad(d["type"], "must be one of c, b, u or p, got \"", type, "\"");
      dev.type = type[0];
      dev.path = TRY(get_string(d["path"]));
      if (dev.path.empty() || dev.path[0] != '/') return bad(d["path"], "must be an absolute path, got \"", dev.path, "\"");
      if (dev.type != 'p') {
        dev.major = TRY(get_int(d["major"], 0, kI64Max));
        dev.minor = TRY(get_int(d["minor"], 0, kI64Max));
      }
      if (auto m = TRY(opt_uint(d["fileMode"], 07777))) dev.file_mode = static_cast<uint32_t>(*m);
      if (auto u = TRY(opt_uint(d["uid"], UINT32_MAX))) dev.uid = static_cast<uint32_t>(*u);
      if (auto g = TRY(opt_uint(d["gid"], UINT32_MAX))) dev.gid = static_cast<uint32_t>(*g);
      lx.devices.push_back(dev);
    }
  }
  lx.cgroups_path = TRY(opt_string(l["cgroupsPath"]));
  if (l["resources"].present()) lx.resources = TRY(parse_resources_at(l["resources"]));
  if (auto p = TRY(opt_string(l["rootfsPropagation"])); p && !p->empty()) {
    auto prop = propagation_from_name(*p);
    if (!prop) return bad(l["rootfsPropagation"], "unknown propagation \"", *p, "\"");
    lx.rootfs_propagation = *prop;
  }
  if (l["seccomp"].present()) lx.seccomp = TRY(parse_seccomp(l["seccomp"]));
  if (l["sysctl"].present()) lx.sysctl = TRY(get_string_map(l["sysctl"]));
  if (l["maskedPaths"].present()) lx.masked_paths = TRY(get_strings(l["maskedPaths"]));
  if (l["readonlyPaths"].present()) lx.readonly_paths = TRY(get_strings(l["readonlyPaths"]));
  lx.mount_label = TRY(opt_string(l["mountLabel"]));
  J rdt = l["intelRdt"];
  if (rdt.present()) {
    TRYV(need_object(rdt));
    IntelRdt r;
    r.clos_id = TRY(opt_string(rdt["closID"]));
    r.l3_cache_schema = TRY(opt_string(rdt["l3CacheSchema"]));
    r.mem_bw_schema = TRY(opt_string(rdt["memBwSchema"]));
    if (rdt["schemata"].present()) r.schemata = TRY(get_strings(rdt["schemata"]));
    r.enable_monitoring = TRY(opt_bool(rdt["enableMonitoring"]));
    r.enable_cmt = TRY(opt_bool(rdt["enableCMT"]));
    r.enable_mbm = TRY(opt_bool(rdt["enableMBM"]));
    lx.intel_rdt = r;
  }
  J pers = l["personality"];
  if (pers.present()) {
    TRYV(need_object(pers));
    Personality p;
    p.domain = TRY(get_string(pers["domain"]));
    if (p.domain != "LINUX" && p.domain != "LINUX32")
      return bad(pers["domain"], "must be LINUX or LINUX32, got \"", p.domain, "\"");
    if (pers["flags"].present()) p.flags = TRY(get_strings(pers["flags"]));
    lx.personality = p;
  }
  J mp = l["memoryPolicy"];
  if (mp.present()) {
    TRYV(need_object(mp));
    MemoryPolicy pol;
    pol.mode = TRY(get_string(mp["mode"]));
    static const char* kModes[] = {"MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED",
                                   "MPOL_PREFERRED_MANY", "MPOL_LOCAL", "MPOL_WEIGHTED_INTERLEAVE"};
    bool ok = false;
    for (auto m : kModes) ok = ok || pol.mode == m;
    if (!ok) return bad(mp["mode"], "unknown memory policy mode \"", pol.mode, "\"");
    pol.nodes = TRY(opt_string(mp["nodes"]));
    if (mp["flags"].present()) pol.flags = TRY(get_strings(mp["flags"]));
    for (size_t i = 0; i < pol.flags.size(); ++i)
      if (pol.flags[i] != "MPOL_F_NUMA_BALANCING" && pol.flags[i] != "MPOL_F_RELATIVE_NODES" &&
          pol.flags[i] != "MPOL_F_STATIC_NODES")
        return bad(mp["flags"].at(i), "unknown memory policy flag \"", pol.flags[i], "\"");
    lx.memory_policy = pol;
  }
  J nd = l["netDevices"];
  if (nd.present()) {
    TRYV(need_object(nd));
    for (const auto& k : nd.keys()) {
      J d = nd[k.c_str()];
      TRYV(need_object(d));
      lx.net_devices[k] = NetDevice{TRY(opt_string(d["name"]))};
    }
  }
  return lx;
}

Result<Spec> parse_spec(const J& root) {
  TRYV(need_object(root));
  Spec s;
  s.oci_version = TRY(get_string(root["ociVersion"]));
  if (root["process"].present()) s.process = TRY(parse_process_at(root["process"]));
  J r = root["root"];
  if (!r.present()) return bad(r, "required");
  TRYV(need_object(r));
  s.root.path = TRY(get_string(r["path"]));
  if (s.root.path.empty()) return bad(r["path"], "must not be empty");
  s.root.readonly = TRY(opt_bool(r["readonly"])).value_or(false);
  s.hostname = TRY(opt_string(root["hostname"]));
  s.domainname = TRY(opt_string(root["domainname"]));
  J mounts = root["mounts"];
  if (mounts.present()) {
    TRYV(need_array(mounts));
    for (size_t i = 0; i < mounts.size(); ++i) {
      J m = mounts.at(i);
      TRYV(need_object(m));
      Mount mnt;
      mnt.destination = TRY(get_string(m["destination"]));
      if (mnt.destination.empty()) return bad(m["destination"], "must not be empty");
      if (mnt.destination[0] != '/') mnt.destination = "/" + mnt.destination;  // runc accepts relative
      mnt.type = TRY(opt_string(m["type"]));
      mnt.source = TRY(opt_string(m["source"]));
      if (m["options"].present()) mnt.options = TRY(get_strings(m["options"]));
      mnt.uid_mappings = TRY(parse_mappings(m["uidMappings"]));
      mnt.gid_mappings = TRY(parse_mappings(m["gidMappings"]));
      if (mnt.uid_mappings.empty() != mnt.gid_mappings.empty())
        return bad(m, "uidMappings and gidMappings go together");
      s.mounts.push_back(std::move(mnt));
    }
  }
  J hooks = root["hooks"];
  if (hooks.present()) {
    TRYV(need_object(hooks));
    Hooks h;
    h.prestart = TRY(parse_hooks(hooks["prestart"]));
    h.create_runtime = TRY(parse_hooks(hooks["createRuntime"]));
    h.create_container = TRY(parse_hooks(hooks["createContainer"]));
    h.start_container = TRY(parse_hooks(hooks["startContainer"]));
    h.poststart = TRY(parse_hooks(hooks["poststart"]));
    h.poststop = TRY(parse_hooks(hooks["poststop"]));
    s.hooks = std::move(h);
  }
  if (root["annotations"].present()) s.annotations = TRY(get_string_map(root["annotations"]));
  if (root["linux"].present()) s.linux = TRY(parse_linux(root["linux"]));
  return s;
}

}  // namespace

Result<Spec> parse_config(std::string_view json) {
  JsonDoc doc = TRY(JsonDoc::parse(json));
  return parse_spec(doc.root());
}

Result<Spec> load_config(const std::string& path) {
  std::string raw = TRY(read_file(path));
  return TRY_CTX(parse_config(raw), path);
}

Result<Process> parse_process(std::string_view json) {
  JsonDoc doc = TRY(JsonDoc::parse(json));
  return parse_process_at(doc.root());
}

Result<Resources> parse_resources(std::string_view json) {
  JsonDoc doc = TRY(JsonDoc::parse(json));
  return parse_resources_at(doc.root());
}

Result<State> parse_state(std::string_view json) {
  JsonDoc doc = TRY(JsonDoc::parse(json));
  J r = doc.root();
  TRYV(need_object(r));
  State st;
  st.oci_version = TRY(get_string(r["ociVersion"]));
  st.id = TRY(get_string(r["id"]));
  std::string status = TRY(get_string(r["status"]));
  bool found = false;
  for (Status s : {Status::Creating, Status::Created, Status::Running, Status::Paused, Status::Stopped})
    if (status == status_name(s)) st.status = s, found = true;
  if (!found) return bad(r["status"], "unknown status \"", status, "\"");
  st.pid = static_cast<int>(TRY(opt_int(r["pid"], 0, INT_MAX)).value_or(0));
  st.bundle = TRY(opt_string(r["bundle"])).value_or("");
  if (r["annotations"].present()) st.annotations = TRY(get_string_map(r["annotations"]));
  return st;
}

const char* status_name(Status s) {
  switch (s) {
    case Status::Creating: return "creating";
    case Status::Created: return "created";
    case Status::Running: return "running";
    case Status::Paused: return "paused";
    case Status::Stopped: return "stopped";
  }
  return "unknown";
}

}  // namespace husk::oci
