// A podman task as an OCI bundle: the decoded `config {}` plus what Nomad
// says about the task, turned into the oci::Spec podman would have given
// its runtime. Fields husk cannot honour are errors naming the field; only
// ones that change nothing about isolation (pull options, log options)
// become warnings.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <charconv>
#include <cmath>
#include <fnmatch.h>

#include "driver/bundle_paths.h"
#include "driver/image_dir.h"
#include "driver/podman_fields.h"
#include "driver/podman_flavor.h"
#include "driver/podman_security.h"
#include "oci/config.h"
#include "oci/default_seccomp.h"
#include "oci/tables.h"

namespace husk::driver::podman {

namespace {

const std::string kCfg = "config";


bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// --- process args ------------------------------------------------------------

Result<std::string> stringify(const Value& v, const std::string& field) {
  switch (v.kind()) {
    case Value::Kind::String: return v.as_string();
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Bool: return std::string(v.as_bool() ? "true" : "false");
    case Value::Kind::Float: {
      double d = v.as_float();
      if (d == std::trunc(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
      char buf[64];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
      return std::string(buf, p);
    }
    default: return fail_msg(field, ": expected a string");
  }
}

}  // namespace

Result<BundlePlan> plan(const Options& opts, const TaskSpec& task, const Value& cfg, const std::string& container_id,
                        const std::string& task_dir) {
  BundlePlan out;
  if (!cfg.is_null() && cfg.kind() != Value::Kind::Map) return fail_msg("config: expected an object");
  auto str = [&](std::string_view k, std::string d = "") { return read_string(cfg, k, kCfg, std::move(d)); };
  auto boolean = [&](std::string_view k) { return read_bool(cfg, k, kCfg); };
  auto integer = [&](std::string_view k) { return read_int(cfg, k, kCfg); };
  auto strings = [&](std::string_view k) { return read_strings(cfg, k, kCfg); };

  // ---- image --------------------------------------------------------------
  std::string image = TRY(str("image"));
  const std::string own_dir = task.alloc_dir + "/" + task.name;
  {
    // A relative image names a directory in the task's own directory (an
    // artifact unpacked into local/, say); anything else relative is a
    // registry reference, which resolve_image_dir refuses.
    struct stat st;
    std::string in_task = clean_path(own_dir + "/" + image);
    if (!image.empty() && image[0] != '/' && image.find(':') == std::string::npos && !task.alloc_dir.empty() &&
        stat(in_task.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      image = in_task;
  }
  out.image_rootfs = TRY(resolve_image_dir(image, f("image")));
  if (!opts.volumes_enabled) {
    // An image directory is a host path too: with volumes disabled it must
    // come from the allocation, or any host directory would be readable.
    char real_alloc[PATH_MAX];
    std::string alloc = realpath(task.alloc_dir.c_str(), real_alloc) ? std::string(real_alloc) : "";
    if (alloc.empty() || !is_within(alloc, out.image_rootfs))
      return fail_msg(f("image"), ": \"", image, "\": volumes are not enabled (plugin volumes.enabled = false), ",
                      "so only image directories inside the allocation directory can be used");
  }
  for (auto k : {"arch", "os", "variant"})
    if (!TRY(str(k)).empty()) out.warnings.push_back(cat(f(k), " is ignored: local image directories are not pulled"));
  {
    std::string t = TRY(str("image_pull_timeout", "5m"));
    if (auto ns = parse_go_duration(t.empty() ? "5m" : t); !ns) return fail_msg(f("image_pull_timeout"), ": ", ns.error().what());
  }
  // auth, auth_soft_fail and force_pull only matter for pulls; none happens.

  // ---- socket -------------------------------------------------------------
  {
    std::string sock = TRY(str("socket", "default"));
    if (sock.empty()) sock = "default";
    bool known = false;
    for (const auto& s : opts.sockets) known = known || s.name == sock;
    if (!known) return fail_msg(f("socket"), ": \"", sock, "\" is not a socket of the plugin configuration");
  }

  oci::Spec spec = oci::default_spec(false);
  spec.root = oci::Root{task_dir + "/rootfs", TRY(boolean("readonly_rootfs"))};
  oci::Process& proc = *spec.process;
  oci::Linux& lin = *spec.linux;
  if (!lin.resources) lin.resources = oci::Resources{};
  proc.no_new_privileges = false;  // podman's default
  proc.terminal = TRY(boolean("tty"));

  // ---- argv -----------------------------------------------------------------
  std::vector<std::string> argv;
  const Value& ep = cfg["entrypoint"];
  if (ep.kind() == Value::Kind::String) {
    argv.push_back(ep.as_string());
    out.warnings.push_back("config.entrypoint: a string is deprecated; use a list");
  } else if (ep.kind() == Value::Kind::Array) {
    for (size_t i = 0; i < ep.items().size(); i++) argv.push_back(TRY(stringify(ep.items()[i], fi("entrypoint", i))));
  } else if (!ep.is_null()) {
    return fail_msg(f("entrypoint"), ": expected a string or a list of strings");
  }
  if (std::string c = TRY(str("command")); !c.empty()) argv.push_back(c);
  for (auto& a : TRY(strings("args"))) argv.push_back(a);
  if (argv.empty())
    return fail_msg(f("command"), ": nothing to run: the image directory \"", image,
                    "\" carries no entrypoint or command; set config.command (or config.entrypoint)");

  // init: podman's catatonit as PID 1, bound in from the host.
  if (TRY(boolean("init"))) {
    std::string init = TRY(str("init_path"));
    if (init.empty()) init = opts.default_init_path;
    struct stat st;
    if (init[0] != '/' || stat(init.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return fail_msg(f("init"), ": no init binary at \"", init, "\"; install catatonit or set config.init_path");
    spec.mounts.push_back(bind_mount(init, "/run/podman-init", {"bind", "ro", "nosuid", "nodev"}));
    argv.insert(argv.begin(), {"/run/podman-init", "--"});
  }
  proc.args = argv;

  // ---- user, env, cwd --------------------------------------------------------------
  ResolvedUser user = TRY(resolve_user(out.image_rootfs, task.user, "user"));
  proc.user.uid = user.uid;
  proc.user.gid = user.gid;
  proc.user.additional_gids = user.additional_gids;

  std::map<std::string, std::string> env = task.env;
  // port_map (deprecated): NOMAD_PORT_<label> is the mapped container port.
  std::vector<std::pair<std::string, std::string>> port_map;
  {
    Value pm = TRY(merged_map(cfg["port_map"], f("port_map")));
    for (const auto& [label, v] : pm.entries()) {
      if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Float)
        return fail_msg(f("port_map"), ".", label, ": expected a port number");
      port_map.emplace_back(label, std::to_string(v.as_int()));
      env["NOMAD_PORT_" + label] = std::to_string(v.as_int());
    }
  }
  env.try_emplace("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.try_emplace("HOME", user.home.empty() ? "/" : user.home);
  if (proc.terminal) env.try_emplace("TERM", "xterm");
  env.try_emplace("container", "podman");
  proc.env.clear();
  for (const auto& [k, v] : env) proc.env.push_back(k + "=" + v);

  if (std::string wd = TRY(str("working_dir")); !wd.empty()) {
    if (wd[0] != '/') return fail_msg(f("working_dir"), ": \"", wd, "\" is not an absolute path");
    proc.cwd = wd;
  }

  // ---- capabilities, privileged, security options ----------------------------------
  bool privileged = TRY(boolean("privileged"));
  auto cap_add = TRY(strings("cap_add"));
  auto cap_drop = TRY(strings("cap_drop"));
  auto caps = privileged ? all_capabilities() : TRY(merge_capabilities(cap_add, cap_drop));
  {
    oci::Capabilities c;
    c.bounding = caps;
    c.inheritable = std::vector<int>{};
    if (user.uid == 0) {
      c.effective = caps;
      c.permitted = caps;
    } else {
      // podman: a non-root user keeps only what cap_add asked for, as ambient.
      bool all = false;
      auto asked = privileged ? std::vector<int>{} : TRY(cap_list(cap_add, f("cap_add"), all));
      if (all) asked = caps;
      std::vector<int> user_caps;
      for (int x : asked)
        if (std::find(caps.begin(), caps.end(), x) != caps.end()) user_caps.push_back(x);
      // Ambient capabilities must also be inheritable (capabilities(7)).
      c.effective = user_caps;
      c.permitted = user_caps;
      c.inheritable = user_caps;
      c.ambient = user_caps;
    }
    proc.capabilities = c;
  }

  auto security_opt = TRY(strings("security_opt"));
  SecurityOpts sec = TRY(parse_security_opts(security_opt));
  proc.no_new_privileges = sec.no_new_privileges;
  std::string apparmor = TRY(str("apparmor_profile"));
  if (sec.apparmor) apparmor = *sec.apparmor;
  if (!apparmor.empty() && apparmor != "unconfined")
    return fail_msg(sec.apparmor ? f("security_opt") : f("apparmor_profile"), ": AppArmor profile \"", apparmor,
                    "\" cannot be applied: husk does not implement AppArmor");
  if (!TRY(strings("selinux_opts")).empty())
    return fail_msg(f("selinux_opts"), ": husk does not implement SELinux labels");
  // docker's and podman's rule: a default filter unless privileged or
  // seccomp=unconfined (oci/default_seccomp.h says what it denies).
  if (!privileged && !sec.seccomp_unconfined) lin.seccomp = oci::default_seccomp(caps);
  for (auto& m : spec.mounts)
    if (m.destination == "/proc")
      for (auto& o : sec.proc_opts) m.options.push_back(o);
  if (privileged || sec.unmask_all) {
    lin.masked_paths = std::vector<std::string>{};
    lin.readonly_paths = std::vector<std::string>{};
  } else {
    auto& masked = *lin.masked_paths;
    for (auto& p : sec.unmask) {
      std::erase(masked, p);
      std::erase(*lin.readonly_paths, p);
    }
    for (auto& p : sec.mask)
      if (std::find(masked.begin(), masked.end(), p) == masked.end()) masked.push_back(p);
  }
  if (privileged) {
    for (auto& m : spec.mounts)
      if (m.destination == "/sys" || m.destination == "/sys/fs/cgroup") std::erase(m.options, "ro");
    oci::DeviceRule all;
    all.allow = true;
    all.access = "rwm";
    lin.resources->devices.push_back(all);
    std::vector<std::pair<std::string, std::string>> devs;
    host_devices(opts.host_dev, "", devs, 0);
    std::sort(devs.begin(), devs.end());
    for (auto& [host, dst] : devs) {
      struct stat st;
      if (stat(host.c_str(), &st) != 0) continue;
      lin.devices.push_back(device_node(dst, st));
    }
  }

  std::string userns = TRY(str("userns"));
  if (!userns.empty() && userns != "host")
    return fail_msg(f("userns"), ": \"", userns, "\": user namespace modes are not supported by husk yet (only \"host\")");

  // ---- devices ------------------------------------------------------------------------
  {
    auto devs = TRY(strings("devices"));
    for (size_t i = 0; i < devs.size(); i++) TRYV(add_device_string(spec, devs[i], fi("devices", i)));
    for (size_t i = 0; i < task.devices.size(); i++) {
      const auto& d = task.devices[i];
      TRYV(add_device(spec, d.host_path, d.task_path.empty() ? d.host_path : d.task_path, d.permissions,
                      cat("devices[", i, "]")));
    }
  }

  // ---- namespaces: network, IPC, UTS ----------------------------------------------------
  auto set_ns = [&](oci::NamespaceType t, bool present, std::optional<std::string> path = std::nullopt) {
    std::erase_if(lin.namespaces, [&](const oci::Namespace& n) { return n.type == t; });
    if (present) lin.namespaces.push_back(oci::Namespace{t, std::move(path)});
  };
  std::string net_mode = TRY(str("network_mode"));
  bool host_net = false, netns_none = false, husk_network = false;
  if (task.network_mode == NetworkMode::Group && !task.netns_path.empty()) {
    // Nomad's group network wins over network_mode, as in nomad-driver-podman.
    set_ns(oci::NamespaceType::Network, true, task.netns_path);
  } else if (net_mode == "host") {
    set_ns(oci::NamespaceType::Network, false);
    host_net = true;
  } else if (net_mode == "none") {
    set_ns(oci::NamespaceType::Network, true);
    netns_none = true;
  } else if (net_mode.starts_with("ns:")) {
    std::string p = net_mode.substr(3);
    if (p.empty() || p[0] != '/') return fail_msg(f("network_mode"), ": \"", net_mode, "\": the path is not absolute");
    set_ns(oci::NamespaceType::Network, true, p);
  } else if (net_mode.starts_with("task:") || net_mode.starts_with("container:")) {
    return fail_msg(f("network_mode"), ": \"", net_mode,
                    "\": joining another task's network is not supported by husk yet; use a group network");
  } else if (net_mode.empty() || net_mode == "bridge" || net_mode.starts_with("bridge:") || net_mode == "slirp4netns" ||
             net_mode == "pasta") {
    // podman's own networks, made by husk (src/net): unset is podman's
    // default, a bridge for root and slirp4netns rootless.
    std::string mode = net_mode;
    if (mode.empty()) mode = opts.rootless ? "slirp4netns" : "bridge";
    if (opts.rootless && mode.starts_with("bridge"))
      return fail_msg(f("network_mode"), ": \"", net_mode, "\": a bridge needs root; use slirp4netns or pasta");
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = mode;
    husk_network = true;
  } else {
    return fail_msg(f("network_mode"), ": \"", net_mode,
                    "\" is not a network mode (bridge, host, none, slirp4netns, pasta, ns:<path>)");
  }
  bool own_netns = !host_net;

  std::string ipc_mode = TRY(str("ipc_mode"));
  bool own_ipc = true, shm_mount = true;
  if (ipc_mode.empty() || ipc_mode == "private" || ipc_mode == "shareable") {
  } else if (ipc_mode == "host") {
    set_ns(oci::NamespaceType::Ipc, false);
    own_ipc = false;
    std::erase_if(spec.mounts, [](const oci::Mount& m) { return m.destination == "/dev/shm"; });
    spec.mounts.push_back(bind_mount("/dev/shm", "/dev/shm", {"rbind"}));
    shm_mount = false;
  } else if (ipc_mode == "none") {
    std::erase_if(spec.mounts, [](const oci::Mount& m) { return m.destination == "/dev/shm"; });
    shm_mount = false;
  } else if (ipc_mode.starts_with("ns:")) {
    std::string p = ipc_mode.substr(3);
    if (p.empty() || p[0] != '/') return fail_msg(f("ipc_mode"), ": \"", ipc_mode, "\": the path is not absolute");
    set_ns(oci::NamespaceType::Ipc, true, p);
  } else if (ipc_mode.starts_with("task:") || ipc_mode.starts_with("container:")) {
    return fail_msg(f("ipc_mode"), ": \"", ipc_mode, "\": joining another task's IPC namespace is not supported by husk yet");
  } else {
    return fail_msg(f("ipc_mode"), ": \"", ipc_mode, "\" is not an IPC mode");
  }
  if (std::string shm = TRY(str("shm_size")); !shm.empty()) {
    if (!shm_mount) return fail_msg(f("shm_size"), ": only with ipc_mode private or shareable");
    auto bytes = parse_size(shm);
    if (!bytes) return fail_msg(f("shm_size"), ": ", bytes.error().what());
    for (auto& m : spec.mounts)
      if (m.destination == "/dev/shm") {
        std::erase_if(m.options, [](const std::string& o) { return o.starts_with("size="); });
        m.options.push_back(cat("size=", *bytes));
      }
  }

  // Hostname: podman shares the host's UTS namespace with the host network
  // unless a hostname is asked for.
  std::string hostname = TRY(str("hostname"));
  bool own_uts = true;
  if (hostname.empty() && host_net) {
    set_ns(oci::NamespaceType::Uts, false);
    spec.hostname.reset();
    own_uts = false;
  } else {
    if (hostname.empty()) hostname = task.hosts_hostname;
    if (hostname.empty()) hostname = container_id.substr(0, 12);
    spec.hostname = hostname;
  }

  for (auto& [k, v] : TRY(read_string_map(cfg, "sysctl", kCfg))) {
    TRYV(check_sysctl(k, own_netns, own_ipc, own_uts));
    lin.sysctl[k] = v;
  }

  // ---- ports and static addressing ------------------------------------------------------------
  {
    auto ports = TRY(strings("ports"));
    if (!ports.empty() && !port_map.empty())
      return fail_msg(f("ports"), ": cannot be combined with config.port_map");
    if (!ports.empty() && task.ports.empty())
      return fail_msg(f("ports"), ": the group network block defines no ports");
    for (size_t i = 0; i < ports.size(); i++) {
      bool found = false;
      for (const auto& p : task.ports) found = found || p.label == ports[i];
      if (!found) return fail_msg(fi("ports", i), ": port \"", ports[i], "\" is not in the group network block");
    }
    bool group = task.network_mode == NetworkMode::Group && !task.netns_path.empty();
    if ((!ports.empty() || !port_map.empty()) && !group && !husk_network)
      return fail_msg(!ports.empty() ? f("ports") : f("port_map"),
                      ": publishing ports needs a network of the task's own (bridge, slirp4netns, pasta) or a "
                      "group network");
    if (husk_network) {
      // Nomad's port mappings of the ports named here (or by port_map)
      // become husk's forwards, TCP and UDP as podman publishes them.
      std::string forwards;
      auto forward = [&](const TaskPort& p, int32_t container_port) {
        for (const char* proto : {"tcp", "udp"}) {
          if (!forwards.empty()) forwards += ",";
          if (!p.host_ip.empty()) forwards += (p.host_ip.find(':') != std::string::npos ? "[" + p.host_ip + "]" : p.host_ip) + ":";
          forwards += cat(p.host_port, ":", container_port, "/", proto);
        }
      };
      for (const auto& label : ports)
        for (const auto& p : task.ports)
          if (p.label == label) forward(p, p.container_port ? p.container_port : p.host_port);
      for (const auto& [label, to] : port_map) {
        bool found = false;
        for (const auto& p : task.ports)
          if (p.label == label) {
            forward(p, static_cast<int32_t>(atoi(to.c_str())));
            found = true;
          }
        if (!found) return fail_msg(f("port_map"), ".", label, ": the task has no port labelled \"", label, "\"");
      }
      if (!forwards.empty()) spec.annotations["run.husk.ports"] = forwards;
    }
    const char* why = husk_network ? " is ignored: husk's bridge gives addresses from its own IPAM"
                                   : " is ignored: podman applies it in bridge mode only";
    for (auto k : {"ipv4_address", "ipv6_address", "static_mac"})
      if (!TRY(str(k)).empty()) out.warnings.push_back(cat(f(k), why));
    if (!TRY(strings("static_ips")).empty()) out.warnings.push_back(cat("config.static_ips", why));
  }

  // ---- resources --------------------------------------------------------------------------
  {
    oci::MemoryResources mem;
    int64_t memory = task.memory_mb * 1024 * 1024;
    int64_t memory_max = task.memory_max_mb * 1024 * 1024;
    std::optional<int64_t> reserved;
    if (std::string r = TRY(str("memory_reservation")); !r.empty()) {
      auto b = parse_size(r);
      if (!b) return fail_msg(f("memory_reservation"), ": ", b.error().what());
      reserved = *b;
    }
    if (task.memory_max_mb < 0) {
      mem.reservation = reserved ? std::min(*reserved, memory) : memory;
    } else if (memory_max > 0) {
      mem.limit = memory_max;
      mem.reservation = reserved && *reserved < memory ? *reserved : memory;
    } else if (memory > 0) {
      mem.limit = memory;
      mem.reservation = reserved;
    } else {
      mem.reservation = reserved;
    }
    if (std::string s = TRY(str("memory_swap")); !s.empty()) {
      auto b = parse_size(s);
      if (!b) return fail_msg(f("memory_swap"), ": ", b.error().what());
      mem.swap = *b;
    }
    int64_t swappiness = TRY(integer("memory_swappiness"));
    if (swappiness < 0 || swappiness > 100) return fail_msg(f("memory_swappiness"), ": ", swappiness, " is not within 0..100");
    // podman sends swappiness on cgroup v1 only; husk is cgroup v2 only.
    if (mem.limit || mem.reservation || mem.swap) lin.resources->memory = mem;

    oci::CpuResources cpu;
    if (task.linux_cpu_shares > 0 && !opts.rootless) cpu.shares = static_cast<uint64_t>(task.linux_cpu_shares);
    if (!task.cpuset_cpus.empty()) cpu.cpus = task.cpuset_cpus;
    if (TRY(boolean("cpu_hard_limit"))) {
      int64_t period = TRY(integer("cpu_cfs_period"));
      if (period > 1000000) return fail_msg(f("cpu_cfs_period"), ": ", period, " is bigger than 1000000");
      if (period < 0) return fail_msg(f("cpu_cfs_period"), ": ", period, " is negative");
      if (period == 0) period = 100000;
      if (period < 1000) period = 1000;
      int64_t quota = static_cast<int64_t>(task.percent_ticks * static_cast<double>(period)) * opts.online_cpus;
      if (quota < 1000) quota = 1000;
      cpu.period = static_cast<uint64_t>(period);
      cpu.quota = quota;
    }
    if (cpu.shares || cpu.cpus || cpu.quota) lin.resources->cpu = cpu;

    int64_t pids = TRY(integer("pids_limit"));
    if (pids > 0) lin.resources->pids = oci::PidsResources{pids};

    int64_t oom = TRY(integer("oom_score_adj"));
    if (oom < -1000 || oom > 1000) return fail_msg(f("oom_score_adj"), ": ", oom, " is not within -1000..1000");
    proc.oom_score_adj = static_cast<int>(oom);
  }

  // ---- rlimits: podman raises nofile and nproc for rootful containers ----------------------
  {
    proc.rlimits.clear();
    auto set_rlimit = [&](oci::Rlimit r) {
      std::erase_if(proc.rlimits, [&](const oci::Rlimit& x) { return x.resource == r.resource; });
      proc.rlimits.push_back(r);
    };
    for (int res : {RLIMIT_NOFILE, RLIMIT_NPROC}) {
      uint64_t soft = 1048576, hard = 1048576;
      struct rlimit cur;
      if ((opts.rootless || !opts.can_raise_rlimits) && getrlimit(res, &cur) == 0) {
        hard = std::min<uint64_t>(hard, cur.rlim_max);
        soft = std::min<uint64_t>(soft, std::min<uint64_t>(cur.rlim_cur, hard));
      }
      set_rlimit(oci::Rlimit{res, soft, hard});
    }
    for (auto& [k, v] : TRY(read_string_map(cfg, "ulimit", kCfg))) set_rlimit(TRY(parse_ulimit(k, v)));
  }

  // ---- mounts ---------------------------------------------------------------------------------
  {
    add_task_dir_mounts(spec, task);

    auto volumes = TRY(strings("volumes"));
    for (size_t i = 0; i < volumes.size(); i++) {
      std::string field = fi("volumes", i);
      auto parts = split(volumes[i], ':');
      if (parts.size() < 2) return fail_msg(field, ": \"", volumes[i], "\": want host_path:container_path[:options]");
      std::string src = parts[0], dst = parts[1];
      if (src.empty()) return fail_msg(field, ": \"", volumes[i], "\": empty host path (named volumes are not supported)");
      if (dst.empty() || dst[0] != '/') return fail_msg(field, ": container path \"", dst, "\" is not absolute");
      src = src[0] == '/' ? clean_path(src) : clean_path(own_dir + "/" + src);
      if (!opts.volumes_enabled) {
        // Resolve symlinks too: a task may plant one in its own directories.
        char real[PATH_MAX], real_alloc[PATH_MAX];
        std::string check = src;
        if (realpath(src.c_str(), real)) check = real;
        std::string alloc = realpath(task.alloc_dir.c_str(), real_alloc) ? std::string(real_alloc) : clean_path(task.alloc_dir);
        if (task.alloc_dir.empty() || !is_within(alloc, check))
          return fail_msg(field, ": \"", volumes[i], "\": volumes are not enabled (plugin volumes.enabled = false), ",
                          "so only paths inside the allocation directory can be mounted");
      }
      std::vector<std::string> mopts = {"rbind"};
      if (parts.size() > 2)
        for (auto& o : split(parts[2], ',')) {
          if (o.empty()) continue;
          if (o == "z" || o == "Z") {
            if (opts.selinux_enabled)
              return fail_msg(field, ": option \"", o, "\": husk cannot relabel for SELinux");
            continue;  // no SELinux here: podman skips the relabel too
          }
          mopts.push_back(o);
        }
      spec.mounts.push_back(bind_mount(src, dst, mopts));
    }

    for (size_t i = 0; i < task.mounts.size(); i++) {
      const auto& m = task.mounts[i];
      std::vector<std::string> mopts = {"rbind"};
      if (m.readonly) mopts.push_back("ro");
      if (m.propagation == "private" || m.propagation.empty())
        mopts.push_back("rprivate");
      else if (m.propagation == "host-to-task")
        mopts.push_back("rslave");
      else if (m.propagation == "bidirectional")
        mopts.push_back("rshared");
      else
        return fail_msg("mounts[", i, "].propagation: unknown mode \"", m.propagation, "\"");
      spec.mounts.push_back(bind_mount(m.host_path, m.task_path, mopts));
    }

    // podman's --read-only-tmpfs (on by default): a read-only root still
    // gets writable /run, /tmp and /var/tmp.
    if (spec.root.readonly)
      for (const char* dst : {"/run", "/tmp", "/var/tmp"}) {
        oci::Mount m;
        m.destination = dst;
        m.type = "tmpfs";
        m.source = "tmpfs";
        m.options = {"rw", "nosuid", "nodev"};
        spec.mounts.push_back(m);
      }

    auto tmpfs = TRY(strings("tmpfs"));
    for (size_t i = 0; i < tmpfs.size(); i++) {
      auto colon = tmpfs[i].find(':');
      std::string dst = tmpfs[i].substr(0, colon);
      if (dst.empty() || dst[0] != '/') return fail_msg(fi("tmpfs", i), ": \"", dst, "\" is not an absolute path");
      oci::Mount m;
      m.destination = dst;
      m.type = "tmpfs";
      m.source = "tmpfs";
      m.options = {"rw", "noexec", "nosuid", "nodev"};
      if (colon != std::string::npos)
        for (auto& o : split(tmpfs[i].substr(colon + 1), ','))
          if (!o.empty()) m.options.push_back(o);
      spec.mounts.push_back(m);
    }
  }

  // ---- /etc/resolv.conf, /etc/hosts, /etc/hostname -------------------------------------------------
  {
    std::vector<std::string> servers = task.dns_servers.empty() ? opts.dns_servers : task.dns_servers;
    for (size_t i = 0; i < servers.size(); i++)
      if (!is_ip(servers[i])) return fail_msg("dns.servers[", i, "]: \"", servers[i], "\" is not an IP address");
    std::string resolv;
    if (servers.empty() && task.dns_searches.empty() && task.dns_options.empty()) {
      resolv = read_host_file(opts.host_resolv_conf);
      // systemd-resolved's stub listens on the host's loopback, which a task
      // with its own network namespace cannot reach: use its upstream list,
      // as podman does.
      if (own_netns && resolv.find("nameserver 127.0.0.53") != std::string::npos) {
        std::string upstream = read_host_file(opts.host_resolved_upstream);
        if (!upstream.empty()) resolv = upstream;
      }
    } else {
      for (auto& s : servers) resolv += "nameserver " + s + "\n";
      if (!task.dns_searches.empty()) {
        resolv += "search";
        for (auto& s : task.dns_searches) resolv += " " + s;
        resolv += "\n";
      }
      if (!task.dns_options.empty()) {
        resolv += "options";
        for (auto& s : task.dns_options) resolv += " " + s;
        resolv += "\n";
      }
    }

    std::string hosts;
    if (host_net) {
      hosts = read_host_file(opts.host_hosts);
      if (!hosts.empty() && hosts.back() != '\n') hosts += "\n";
    } else {
      hosts = "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    }
    if (!task.hosts_address.empty() && !task.hosts_hostname.empty())
      hosts += task.hosts_address + "\t" + task.hosts_hostname + "\n";
    if (spec.hostname && !host_net && *spec.hostname != task.hosts_hostname)
      hosts += (netns_none ? "127.0.0.1\t" : "127.0.1.1\t") + *spec.hostname + "\n";
    auto extra = TRY(strings("extra_hosts"));
    for (size_t i = 0; i < extra.size(); i++) {
      auto colon = extra[i].find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == extra[i].size())
        return fail_msg(fi("extra_hosts", i), ": \"", extra[i], "\": want host:ip");
      std::string host = extra[i].substr(0, colon), ip = extra[i].substr(colon + 1);
      if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
      if (!is_ip(ip)) return fail_msg(fi("extra_hosts", i), ": \"", ip, "\" is not an IP address");
      hosts += ip + "\t" + host + "\n";
    }

    TRYV_CTX(write_task_file(task_dir + "/resolv.conf", resolv), "write the task's resolv.conf");
    TRYV_CTX(write_task_file(task_dir + "/hosts", hosts), "write the task's hosts file");
    spec.mounts.push_back(bind_mount(task_dir + "/resolv.conf", "/etc/resolv.conf", {"bind", "ro", "nosuid", "nodev", "noexec"}));
    spec.mounts.push_back(bind_mount(task_dir + "/hosts", "/etc/hosts", {"bind", "ro", "nosuid", "nodev", "noexec"}));
    if (spec.hostname) {
      TRYV_CTX(write_task_file(task_dir + "/hostname", *spec.hostname + "\n"), "write the task's hostname file");
      spec.mounts.push_back(bind_mount(task_dir + "/hostname", "/etc/hostname", {"bind", "ro", "nosuid", "nodev", "noexec"}));
    }
  }

  // ---- labels -> annotations ----------------------------------------------------------------------
  {
    for (auto& [k, v] : TRY(read_string_map(cfg, "labels", kCfg))) spec.annotations[k] = v;
    if (!opts.extra_labels.empty()) spec.annotations["com.hashicorp.nomad.alloc_id"] = task.alloc_id;
    const std::pair<const char*, const std::string*> extra[] = {
        {"job_name", &task.job_name},   {"job_id", &task.job_id},       {"task_group_name", &task.task_group},
        {"task_name", &task.name},      {"namespace", &task.namespace_}, {"node_name", &task.node_name},
        {"node_id", &task.node_id},
    };
    for (const auto& pattern : opts.extra_labels)
      for (const auto& [key, value] : extra)
        if (fnmatch(pattern.c_str(), key, 0) == 0) spec.annotations[cat("com.hashicorp.nomad.", key)] = *value;
  }

  // ---- logging ------------------------------------------------------------------------------------------
  {
    const Value& logging = cfg["logging"];
    std::string driver = TRY(read_string(logging, "driver", f("logging")));
    auto options = TRY(read_string_map(logging, "options", f("logging")));
    bool empty_block = driver.empty() && options.empty();
    std::string field = empty_block ? std::string("logging.driver (plugin)") : f("logging.driver");
    if (empty_block) driver = opts.logging_driver;
    if (driver.empty()) driver = "nomad";
    if (driver != "nomad" && driver != "journald")
      return fail_msg(field, ": \"", driver, "\" is not a log driver; use \"nomad\" or \"journald\"");
    if (driver == "journald")
      out.warnings.push_back(cat(field, " = \"journald\": husk sends the task's output to Nomad's log files, not journald"));
    if (!options.empty() || (empty_block && !opts.logging_options.empty()))
      out.warnings.push_back("logging.options are ignored: husk has no podman log drivers");
  }

  out.spec = std::move(spec);
  return out;
}

}  // namespace husk::driver::podman
