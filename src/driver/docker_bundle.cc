// A docker task as an OCI bundle: the decoded `config {}` plus what Nomad
// says about the task, turned into the oci::Spec dockerd would have given
// runc, with the docker driver's checks against the plugin options
// (allow_caps, allow_privileged, allowed_modes, volumes, pids_limit).
// Fields only dockerd can honour are errors naming the field; ones that
// change nothing about isolation (pull and log options) become warnings.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <tuple>

#include "common/duration.h"
#include "common/program.h"
#include "common/text.h"
#include "driver/apparmor_default.h"
#include "driver/bundle_files.h"
#include "image/reference.h"
#include "net/config.h"
#include "driver/docker_flavor.h"
#include "driver/docker_mounts.h"
#include "driver/docker_security.h"
#include "driver/image_dir.h"
#include "driver/image_resolve.h"
#include "driver/podman_flavor.h"
#include "driver/podman_security.h"
#include "oci/config.h"
#include "oci/default_seccomp.h"
#include "oci/tables.h"

namespace husk::driver::docker {

namespace {

// "localhost", "127.0.0.1:5000", "[::1]:5000": a registry dockerd trusts
// without TLS.
bool is_loopback_registry(const std::string& registry) {
  std::string host = registry;
  if (host.starts_with("[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost" || host == "::1") return true;
  auto ip = net::parse_ip(host);
  return ip && ip->family == AF_INET && ip->bytes[0] == 127;
}

const std::string kCfg = "config";
std::string f(std::string_view name) { return cat("config.", name); }

// The one place the docker flavor turns `image` into a root filesystem,
// through resolve_image(): a registry reference pulled into the store (the
// task's auth, force_pull, image_pull_timeout, auth_soft_fail; the plugin's
// auth and pull_activity_timeout), `load` (a docker-archive in the task
// directory, imported as docker's load does), an archive or OCI layout, or a
// local root filesystem directory (husk's own addition).
Result<ResolvedImage> docker_image(const Options& opts, const TaskSpec& task, const Value& cfg, std::string image) {
  if (image.starts_with("https://")) image = image.substr(8);
  const std::string own_dir = task.alloc_dir + "/" + task.name;
  struct stat st;
  std::string in_task = clean_path(own_dir + "/" + image);
  if (!image.empty() && image[0] != '/' && image.find(':') == std::string::npos && !task.alloc_dir.empty() &&
      stat(in_task.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    image = in_task;
  std::string ref = image;
  if (std::string load = TRY(read_string(cfg, "load", kCfg)); !load.empty()) {
    // docker load of a `docker save` archive the task downloaded (an
    // artifact), then the image by its name in the archive.
    std::string file = load[0] == '/' ? clean_path(load) : clean_path(own_dir + "/" + load);
    if (!is_within(clean_path(own_dir), file))
      return fail_msg(f("load"), ": \"", load, "\" is outside the task directory");
    if (stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return fail_msg(f("load"), ": \"", load, "\": no such archive in the task directory (", file, ")");
    ref = cat("docker-archive:", file, image.empty() ? "" : ":", image);
  }
  ImageOptions io{opts.image_store_root, oci::host_platform(), {}};
  const Value& auth = cfg["auth"];
  std::string user = TRY(read_string(auth, "username", f("auth"))), pass = TRY(read_string(auth, "password", f("auth")));
  if (!user.empty() || !pass.empty()) io.pull.credentials = image::Credentials{user, pass, "", "the task's auth block"};
  // dockerd always treats registries on the loopback (127.0.0.0/8, ::1,
  // localhost) as insecure: plain HTTP allowed, as it is here.
  if (auto parsed = image::parse_reference(ref); parsed && is_loopback_registry(parsed->registry))
    io.pull.tls_verify = false;
  io.pull.auth_file = opts.auth_config;
  io.pull.auth_helper = opts.auth_helper;
  io.pull.force = TRY(read_bool(cfg, "force_pull", kCfg));
  io.pull.auth_soft_fail = TRY(read_bool(cfg, "auth_soft_fail", kCfg));
  io.pull.activity_timeout_ms = opts.pull_activity_timeout_ns / 1000000;
  // As in the docker driver: a pull that stalls that long fails.
  io.pull.retry_stalled = false;
  io.pull.activity_timeout_name = "the plugin's pull_activity_timeout";
  if (task.emit_event)
    io.pull_progress = [&task, ref](const std::string& summary) {
      task.emit_event("Docker image pull progress: " + summary, {{"image", ref}});
    };
  io.pull.timeout_ms = opts.image_pull_timeout_ns / 1000000;
  if (std::string t = TRY(read_string(cfg, "image_pull_timeout", kCfg)); !t.empty()) {
    auto ns = TRY(parse_go_duration(t, f("image_pull_timeout")));
    io.pull.timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ns).count();
  }
  ResolvedImage img = TRY(resolve_image(ref, io, f("image")));
  if (!opts.volumes_enabled && !img.source_path.empty()) {
    // A local image directory or archive is a host path too: with volumes
    // disabled it must come from the allocation, or any host directory
    // would be readable.
    char real_alloc[PATH_MAX], real_src[PATH_MAX];
    std::string alloc = realpath(task.alloc_dir.c_str(), real_alloc) ? std::string(real_alloc) : "";
    std::string src = realpath(img.source_path.c_str(), real_src) ? std::string(real_src) : "";
    if (alloc.empty() || src.empty() || !is_within(alloc, src))
      return fail_msg(f("image"), ": \"", image, "\": volumes are not enabled (plugin volumes.enabled = false), ",
                      "so only image directories inside the allocation directory can be used");
  }
  return img;
}

// A namespace mode field gated by allowed_modes (unless allow_privileged).
Result<> check_mode(const Options& opts, const std::vector<std::string>& allowed, const char* kind,
                    const std::string& field, const std::string& mode) {
  if (mode.empty() || opts.allow_privileged || mode_allowed(allowed, mode)) return {};
  return fail_msg(f(field), ": \"", mode, "\" is not allowed by the plugin's allowed_modes.", kind,
                  " (and allow_privileged is false)");
}

Result<std::vector<uint32_t>> group_ids(const std::vector<std::string>& layers, const std::vector<std::string>& groups) {
  std::vector<uint32_t> out;
  std::optional<std::string> text;
  bool read = false;
  for (size_t i = 0; i < groups.size(); i++) {
    const std::string& g = groups[i];
    char* end = nullptr;
    unsigned long n = strtoul(g.c_str(), &end, 10);
    if (!g.empty() && *end == 0 && n <= UINT32_MAX) {
      out.push_back(static_cast<uint32_t>(n));
      continue;
    }
    if (!read) {
      text = TRY_CTX(read_in_layers(layers, "/etc/group"), f("group_add"), ": read the image's /etc/group");
      read = true;
    }
    bool found = false;
    size_t start = 0;
    while (text && start < text->size() && !found) {
      size_t nl = text->find('\n', start);
      std::string line = text->substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      start = nl == std::string::npos ? text->size() : nl + 1;
      size_t c1 = line.find(':'), c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
      size_t c3 = c2 == std::string::npos ? c2 : line.find(':', c2 + 1);
      if (c3 == std::string::npos || line.substr(0, c1) != g) continue;
      out.push_back(static_cast<uint32_t>(strtoul(line.c_str() + c2 + 1, nullptr, 10)));
      found = true;
    }
    if (!found) return fail_msg(f("group_add"), "[", i, "]: no group \"", g, "\" in the image's /etc/group");
  }
  return out;
}

// docker-init (tini) from the host, as dockerd binds it for --init.
std::string find_init(const Options& opts) {
  for (const std::string& p : {opts.default_init_path, std::string("/usr/libexec/docker/docker-init"),
                               std::string("/usr/bin/tini"), std::string("/usr/bin/catatonit"),
                               std::string("/usr/libexec/podman/catatonit")}) {
    struct stat st;
    if (!p.empty() && stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return p;
  }
  return "";
}

}  // namespace

Result<BundlePlan> plan(const Options& opts, const TaskSpec& task, const Value& cfg, const std::string& container_id,
                        const std::string& task_dir) {
  BundlePlan out;
  if (!cfg.is_null() && cfg.kind() != Value::Kind::Map) return fail_msg("config: expected an object");
  auto str = [&](std::string_view k) { return read_string(cfg, k, kCfg); };
  auto boolean = [&](std::string_view k) { return read_bool(cfg, k, kCfg); };
  auto integer = [&](std::string_view k, int64_t d = 0) { return read_int(cfg, k, kCfg, d); };
  auto strings = [&](std::string_view k) { return read_strings(cfg, k, kCfg); };

  // ---- dockerd-only fields: refused where honouring them is impossible ---------
  if (std::string v = TRY(str("isolation")); !v.empty())
    return fail_msg(f("isolation"), ": \"", v, "\": Windows container isolation; husk runs Linux containers");
  if (std::string v = TRY(str("runtime")); !v.empty()) {
    if (std::find(opts.allow_runtimes.begin(), opts.allow_runtimes.end(), v) == opts.allow_runtimes.end())
      return fail_msg(f("runtime"), ": \"", v, "\" is not in the plugin's allow_runtimes");
    if (v != "runc" && v != "husk")
      return fail_msg(f("runtime"), ": \"", v, "\": husk is the OCI runtime of every task (runc-compatible); ",
                      "it cannot hand a task to another runtime");
  }
  if (auto so = TRY(read_string_map(cfg, "storage_opt", kCfg)); !so.empty())
    return fail_msg(f("storage_opt"), ".", so.front().first,
                    ": husk's task root is an overlay on the host's filesystem, which has no per-container storage options");
  if (std::string v = TRY(str("volume_driver")); !v.empty()) {
    if (v != "local") return fail_msg(f("volume_driver"), ": \"", v, "\": husk has only docker's \"local\" volume driver");
    if (!opts.volumes_enabled) return fail_msg(f("volume_driver"), ": needs the plugin's volumes.enabled = true");
  }
  // docker run -i: the task's stdin stays open (nothing is attached to it;
  // it never reaches end of file).
  out.interactive = TRY(boolean("interactive"));

  // ---- image ---------------------------------------------------------------------
  std::string image = TRY(str("image"));
  ResolvedImage img = TRY(docker_image(opts, task, cfg, image));
  if (!img.pulled.empty()) out.warnings.push_back(img.pulled);
  for (const auto& w : img.warnings) out.warnings.push_back(cat("image: ", w));
  const std::vector<std::string>& layers = img.layers;
  const oci::ImageConfig* icfg = img.config ? &*img.config : nullptr;
  if (icfg) out.stop_signal = icfg->stop_signal;
  out.keep_container = !opts.gc_container;
  const std::string own_dir = task.alloc_dir + "/" + task.name;

  oci::Spec spec = oci::default_spec(false);
  spec.root = oci::Root{task_dir + "/rootfs", TRY(boolean("readonly_rootfs"))};
  oci::Process& proc = *spec.process;
  oci::Linux& lin = *spec.linux;
  if (!lin.resources) lin.resources = oci::Resources{};
  proc.no_new_privileges = false;  // docker's default
  proc.terminal = TRY(boolean("tty"));
  // dockerd sets no rlimits of its own: the task inherits the driver's, as
  // a container inherits dockerd's.
  proc.rlimits.clear();
  // docker's masked paths (runc's defaults plus these).
  for (const char* p : {"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap"})
    if (std::find(lin.masked_paths->begin(), lin.masked_paths->end(), p) == lin.masked_paths->end())
      lin.masked_paths->push_back(p);

  // ---- argv ------------------------------------------------------------------------
  // docker's rules: entrypoint replaces the image's Entrypoint; command
  // (with args) replaces its Cmd, and args alone do too.
  std::vector<std::string> argv = TRY(strings("entrypoint"));
  if (argv.empty() && icfg && icfg->entrypoint) argv = *icfg->entrypoint;
  std::vector<std::string> cmdline;
  if (std::string c = TRY(str("command")); !c.empty()) {
    auto space = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; };
    if (space(c.front()) || space(c.back()))
      return fail_msg(f("command"), ": \"", c, "\" has leading or trailing whitespace");
    cmdline.push_back(c);
  }
  for (auto& a : TRY(strings("args"))) cmdline.push_back(a);
  if (cmdline.empty() && icfg && icfg->cmd) cmdline = *icfg->cmd;
  argv.insert(argv.end(), cmdline.begin(), cmdline.end());
  if (argv.empty())
    return fail_msg(f("command"), ": nothing to run: the image directory \"", image,
                    "\" carries no entrypoint or command; set config.command (or config.entrypoint)");
  if (TRY(boolean("init"))) {
    std::string init = find_init(opts);
    if (init.empty())
      return fail_msg(f("init"), ": no init binary on the host (docker-init, tini or catatonit); install tini");
    spec.mounts.push_back(bind_mount(init, "/sbin/docker-init", {"bind", "ro", "nosuid", "nodev"}));
    argv.insert(argv.begin(), {"/sbin/docker-init", "--"});
  }
  proc.args = argv;

  // ---- user, groups, env, cwd ---------------------------------------------------------
  ResolvedUser user = TRY(resolve_user(layers, task.user.empty() && icfg ? icfg->user : task.user, "user"));
  proc.user.uid = user.uid;
  proc.user.gid = user.gid;
  proc.user.additional_gids = user.additional_gids;
  auto group_add = TRY(strings("group_add"));
  for (uint32_t g : TRY(group_ids(layers, group_add)))
    if (std::find(proc.user.additional_gids.begin(), proc.user.additional_gids.end(), g) ==
        proc.user.additional_gids.end())
      proc.user.additional_gids.push_back(g);

  std::map<std::string, std::string> env = task.env;
  if (icfg)  // the image's Env under the task's
    for (const auto& kv : icfg->env)
      if (size_t eq = kv.find('='); eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  if (icfg && !icfg->working_dir.empty()) proc.cwd = icfg->working_dir;
  std::vector<std::pair<std::string, int64_t>> port_map;
  {
    Value pm = TRY(merged_map(cfg["port_map"], f("port_map")));
    for (const auto& [label, v] : pm.entries()) {
      if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Float)
        return fail_msg(f("port_map"), ".", label, ": expected a port number");
      if (v.as_int() < 1 || v.as_int() > 65535)
        return fail_msg(f("port_map"), ".", label, ": ", v.as_int(), " is not a port number");
      port_map.emplace_back(label, v.as_int());
      env["NOMAD_PORT_" + label] = std::to_string(v.as_int());
    }
  }
  if (std::string wd = TRY(str("work_dir")); !wd.empty()) {
    if (wd[0] != '/') return fail_msg(f("work_dir"), ": \"", wd, "\" is not an absolute path");
    proc.cwd = wd;
  }

  // ---- capabilities, privileged, security options --------------------------------------
  bool privileged = TRY(boolean("privileged"));
  if (privileged && !opts.allow_privileged)
    return fail_msg(f("privileged"), ": privileged tasks are not allowed: the plugin's allow_privileged is false");
  auto cap_add = TRY(strings("cap_add"));
  auto cap_drop = TRY(strings("cap_drop"));
  auto caps = privileged ? podman::all_capabilities() : TRY(task_capabilities(opts.allow_caps, cap_add, cap_drop));
  {
    oci::Capabilities c;
    c.bounding = caps;
    c.effective = caps;
    c.permitted = caps;
    c.inheritable = std::vector<int>{};  // docker >= 20.10.14
    proc.capabilities = c;
  }
  auto security_opt = TRY(strings("security_opt"));
  SecurityOpts sec = TRY(parse_security_opts(security_opt, caps));
  proc.no_new_privileges = sec.no_new_privileges;
  // apparmor=PROFILE: a profile loaded on the host, applied at the exec;
  // none named: husk-default where the host runs AppArmor, as dockerd's
  // docker-default; privileged tasks and apparmor=unconfined run unconfined.
  proc.apparmor_profile = TRY(apparmor::task_profile(opts.apparmor, sec.apparmor.value_or(""), privileged,
                                                     f("security_opt") + (sec.apparmor ? ": apparmor" : ""),
                                                     "security_opt = [\"apparmor=unconfined\"]"));
  // docker's rule: its default filter unless privileged, seccomp=unconfined
  // or a profile of the task's own.
  if (sec.seccomp) lin.seccomp = *sec.seccomp;
  else if (!privileged && !sec.seccomp_unconfined) lin.seccomp = oci::default_seccomp(caps);
  if (privileged || sec.unmask_all) {
    lin.masked_paths = std::vector<std::string>{};
    lin.readonly_paths = std::vector<std::string>{};
  }
  if (privileged) podman::make_privileged(spec, opts.host_dev);

  // ---- namespaces -------------------------------------------------------------------------
  auto set_ns = [&](oci::NamespaceType t, bool present, std::optional<std::string> path = std::nullopt) {
    set_namespace(spec, t, present, std::move(path));
  };
  std::string userns = TRY(str("userns_mode"));
  TRYV(check_mode(opts, opts.allowed_userns, "userns", "userns_mode", userns));
  TRYV(apply_store_id_map(spec, img, f("userns_mode"), userns));
  if (!userns.empty() && userns != "host")
    return fail_msg(f("userns_mode"), ": \"", userns, "\": husk runs tasks in the host's user namespace (only \"host\")");

  // The state dir's containers/, where container:NAME modes look.
  std::string containers_root = containers_root_of(task_dir);

  std::string pid_mode = TRY(str("pid_mode"));
  TRYV(check_mode(opts, opts.allowed_pid, "pid", "pid_mode", pid_mode));
  if (pid_mode == "host") {
    set_ns(oci::NamespaceType::Pid, false);
  } else if (pid_mode.starts_with("container:")) {
    RunningContainer other = TRY(running_init(containers_root, pid_mode.substr(10), f("pid_mode")));
    set_ns(oci::NamespaceType::Pid, true, cat("/proc/", other.pid, "/ns/pid"));
  } else if (!pid_mode.empty() && pid_mode != "private") {
    return fail_msg(f("pid_mode"), ": \"", pid_mode, "\" is not a PID namespace mode (host, private, container:NAME)");
  }

  std::string cgroupns = TRY(str("cgroupns"));
  if (cgroupns == "host") set_ns(oci::NamespaceType::Cgroup, false);
  else if (!cgroupns.empty() && cgroupns != "private")
    return fail_msg(f("cgroupns"), ": \"", cgroupns, "\" is not a cgroup namespace mode (host, private)");

  std::string net_mode = TRY(str("network_mode"));
  bool group = task.network_mode == NetworkMode::Group && !task.netns_path.empty();
  bool host_net = false, netns_none = false, husk_network = false, joined_container = false, user_network = false;
  if (group && net_mode.empty()) {
    // Nomad's group network: the docker driver joins its pause container.
    set_ns(oci::NamespaceType::Network, true, task.netns_path);
  } else if (net_mode == "host") {
    set_ns(oci::NamespaceType::Network, false);
    host_net = true;
  } else if (net_mode == "none") {
    set_ns(oci::NamespaceType::Network, true);
    netns_none = true;
  } else if (net_mode.empty() || net_mode == "bridge" || net_mode == "default") {
    if (opts.rootless) return fail_msg(f("network_mode"), ": \"", net_mode, "\": a bridge needs root");
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = "bridge";
    husk_network = true;
  } else if (net_mode.starts_with("container:")) {
    // husk joins the other container's network namespace when it creates
    // this one (src/net's container: mode); it must be running by then.
    std::string other = TRY(container_named(containers_root, net_mode.substr(10), f("network_mode")));
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = "container:" + other;
    joined_container = true;
  } else {
    // A user-defined network: husk's bridge of that name, made with the
    // network's first container (its subnet the next free 10.89.N.0/24,
    // or the /24 of a static ipv4_address) and removed with its last.
    if (!net::valid_interface_name(net_mode) || net_mode.find(':') != std::string::npos)
      return fail_msg(f("network_mode"), ": \"", net_mode,
                      "\" is not a network mode (bridge, host, none, container:NAME) nor a network name husk can ",
                      "make a bridge of (1-15 of [A-Za-z0-9_.-])");
    if (opts.rootless) return fail_msg(f("network_mode"), ": \"", net_mode, "\": a bridge network needs root");
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = "bridge:" + net_mode;
    husk_network = true;
    user_network = true;
  }

  // On a user-defined network the other containers find this one by its
  // docker name (<task>-<alloc id>) and network_aliases: husk keeps those
  // names in their /etc/hosts (run.husk.aliases) where dockerd's embedded
  // DNS would answer them.
  auto aliases = TRY(strings("network_aliases"));
  for (size_t i = 0; i < aliases.size(); i++)
    if (!net::valid_hostname(aliases[i]))
      return fail_msg(f("network_aliases"), "[", i, "]: \"", aliases[i], "\" is not a host name");
  if (!aliases.empty() && !user_network)
    return fail_msg(f("network_aliases"), ": aliases need a user-defined network (network_mode = \"NAME\"), as in ",
                    "docker, not ", net_mode.empty() ? "the default network" : "\"" + net_mode + "\"");
  if (user_network) {
    std::string names = task_container_name(task);
    for (const auto& a : aliases) names += "," + a;
    spec.annotations[net::kAliasesAnnotation] = names;
  }

  // Static addresses: as dockerd, on a user-defined network only.
  for (auto [k, family, note] : {std::tuple{"ipv4_address", AF_INET, net::kIpAnnotation},
                                 std::tuple{"ipv6_address", AF_INET6, net::kIp6Annotation}}) {
    std::string v = TRY(str(k));
    if (v.empty()) continue;
    if (auto ip = net::parse_static_address(v, family); !ip) return fail_msg(f(k), ": ", ip.error().what());
    if (!user_network)
      return fail_msg(f(k), ": \"", v, "\": a static address needs a user-defined network (network_mode = \"NAME\"), ",
                      "as in docker, not ", net_mode.empty() ? "the default network" : "\"" + net_mode + "\"");
    spec.annotations[note] = v;
  }

  // docker --mac-address: the container's eth0 on husk's bridge (run.husk.mac).
  if (std::string mac = TRY(str("mac_address")); !mac.empty()) {
    if (!husk_network)
      return fail_msg(f("mac_address"), ": \"", mac, "\": only with a bridge network (network_mode bridge, ",
                      "the default, or a user-defined one), not ", net_mode.empty() ? "a group network" : "\"" + net_mode + "\"");
    if (auto parsed = net::parse_mac(mac); !parsed) return fail_msg(f("mac_address"), ": ", parsed.error().what());
    spec.annotations[net::kMacAnnotation] = mac;
  }

  std::string ipc_mode = TRY(str("ipc_mode"));
  TRYV(check_mode(opts, opts.allowed_ipc, "ipc", "ipc_mode", ipc_mode));
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
  } else if (ipc_mode.starts_with("container:")) {
    // The other container's IPC namespace (System V IPC, POSIX message
    // queues) and its /dev/shm, which it shares only as "shareable" (a
    // tmpfs the driver mounted on the host side), as dockerd requires.
    RunningContainer other = TRY(running_init(containers_root, ipc_mode.substr(10), f("ipc_mode")));
    if (!join_dev_shm(spec, containers_root, other.id))
      return fail_msg(f("ipc_mode"), ": \"", ipc_mode, "\": container ", other.id,
                      " has a non-shareable IPC namespace (give it ipc_mode = \"shareable\")");
    set_ns(oci::NamespaceType::Ipc, true, cat("/proc/", other.pid, "/ns/ipc"));
    own_ipc = false;
    shm_mount = false;
  } else {
    return fail_msg(f("ipc_mode"), ": \"", ipc_mode,
                    "\" is not an IPC mode (private, shareable, host, none, container:NAME)");
  }
  int64_t shm = TRY(integer("shm_size"));
  if (shm != 0) {
    if (shm < 0) return fail_msg(f("shm_size"), ": ", shm, " is negative");
    if (!shm_mount) return fail_msg(f("shm_size"), ": only with ipc_mode private or shareable");
    for (auto& m : spec.mounts)
      if (m.destination == "/dev/shm") {
        std::erase_if(m.options, [](const std::string& o) { return o.starts_with("size="); });
        m.options.push_back(cat("size=", shm));
      }
  }
  if (ipc_mode == "shareable" && opts.rootless)
    out.warnings.push_back(cat(f("ipc_mode"), ": a rootless driver cannot mount a /dev/shm to share: this task's is its own"));
  else if (ipc_mode == "shareable") share_dev_shm(spec, task_dir, shm > 0 ? shm : 64LL << 20, out.shareable_shm_bytes);

  std::string uts_mode = TRY(str("uts_mode"));
  TRYV(check_mode(opts, opts.allowed_uts, "uts", "uts_mode", uts_mode));
  std::string hostname = TRY(str("hostname"));
  bool own_uts = true;
  if (uts_mode == "host") {
    if (!hostname.empty()) return fail_msg(f("hostname"), ": cannot be set with uts_mode = \"host\"");
    set_ns(oci::NamespaceType::Uts, false);
    spec.hostname.reset();
    own_uts = false;
  } else if (!uts_mode.empty() && uts_mode != "private") {
    return fail_msg(f("uts_mode"), ": \"", uts_mode, "\" is not a UTS mode (host, private)");
  } else {
    if (hostname.empty()) hostname = task.hosts_hostname;
    if (hostname.empty() && host_net) {
      char buf[HOST_NAME_MAX + 1] = {};
      if (gethostname(buf, sizeof buf - 1) == 0) hostname = buf;
    }
    if (hostname.empty()) hostname = container_id.substr(0, 12);
    spec.hostname = hostname;
  }

  env.try_emplace("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.try_emplace("HOME", user.home.empty() ? "/" : user.home);
  if (spec.hostname) env.try_emplace("HOSTNAME", *spec.hostname);
  if (proc.terminal) env.try_emplace("TERM", "xterm");
  proc.env.clear();
  for (const auto& [k, v] : env) proc.env.push_back(k + "=" + v);

  for (auto& [k, v] : TRY(read_string_map(cfg, "sysctl", kCfg))) {
    TRYV(podman::check_sysctl(k, !host_net, own_ipc, own_uts));
    lin.sysctl[k] = v;
  }

  // ---- ports --------------------------------------------------------------------------------
  {
    auto ports = TRY(strings("ports"));
    for (size_t i = 0; i < ports.size(); i++) {
      bool found = false;
      for (const auto& p : task.ports) found = found || p.label == ports[i];
      if (!found) return fail_msg(f("ports"), "[", i, "]: port \"", ports[i], "\" is not in the group network block");
    }
    if (!port_map.empty() && task.ports.empty())
      return fail_msg(f("port_map"), ": the task has no ports to map");
    if (host_net && (!ports.empty() || !port_map.empty()))
      out.warnings.push_back("config.ports and config.port_map do nothing with network_mode = \"host\" (as in docker)");
    if (joined_container && !ports.empty())
      out.warnings.push_back("config.ports are skipped with network_mode = \"container:...\" (as in the docker driver)");
    if (netns_none && (!ports.empty() || !port_map.empty()))
      return fail_msg(!ports.empty() ? f("ports") : f("port_map"), ": a task with network_mode = \"none\" has no ports");
    if (husk_network) {
      // The ports' host side to the container side, TCP and UDP as the
      // docker driver publishes them.
      std::string forwards = TRY(port_forwards(task, ports, port_map, f("port_map")));
      if (!forwards.empty()) spec.annotations["run.husk.ports"] = forwards;
    }
  }

  // ---- resources ---------------------------------------------------------------------------
  {
    oci::MemoryResources mem;
    int64_t memory = task.memory_mb * 1024 * 1024;
    int64_t hard = TRY(integer("memory_hard_limit"));
    if (hard < 0) return fail_msg(f("memory_hard_limit"), ": ", hard, " is negative");
    if (task.memory_max_mb < 0) {
      mem.reservation = memory;  // memory_max = -1: no hard limit at all
    } else if (hard > 0 || task.memory_max_mb > 0) {
      int64_t limit = std::max(hard, task.memory_max_mb) * 1024 * 1024;
      if (memory > limit)
        return fail_msg(f("memory_hard_limit"), ": ", limit >> 20, " MB is below the task's memory (", task.memory_mb,
                        " MB)");
      mem.limit = limit;
      mem.reservation = memory;
      mem.swap = limit;
    } else if (memory > 0) {
      mem.limit = memory;
      mem.swap = memory;  // docker's MemorySwap = Memory: no swap
    }
    if (mem.limit || mem.reservation) lin.resources->memory = mem;

    oci::CpuResources cpu;
    if (task.linux_cpu_shares > 0 && !opts.rootless)
      cpu.shares = static_cast<uint64_t>(std::clamp<int64_t>(task.linux_cpu_shares, 2, 262144));
    if (!task.cpuset_cpus.empty()) cpu.cpus = task.cpuset_cpus;
    if (!TRY(str("cpuset_cpus")).empty())
      out.warnings.push_back("config.cpuset_cpus has no effect (as in the docker driver): use resources.cores");
    int64_t period = TRY(integer("cpu_cfs_period", 100000));
    if (period > 1000000) return fail_msg(f("cpu_cfs_period"), ": ", period, " is bigger than 1000000");
    if (period < 0) return fail_msg(f("cpu_cfs_period"), ": ", period, " is negative");
    if (TRY(boolean("cpu_hard_limit"))) {
      if (period == 0) period = task.cpu_period > 0 ? task.cpu_period : 100000;
      if (period < 1000) period = 1000;
      int64_t quota = static_cast<int64_t>(task.percent_ticks * static_cast<double>(period)) * opts.online_cpus;
      if (quota < 1000) quota = 1000;
      cpu.period = static_cast<uint64_t>(period);
      cpu.quota = quota;
    }
    if (cpu.shares || cpu.cpus || cpu.quota) lin.resources->cpu = cpu;

    int64_t pids = TRY(integer("pids_limit"));
    if (pids < 0) return fail_msg(f("pids_limit"), ": ", pids, " is negative");
    if (pids > 0 && opts.pids_limit > 0 && pids > opts.pids_limit)
      return fail_msg(f("pids_limit"), ": ", pids, " is above the plugin's pids_limit (", opts.pids_limit, ")");
    if (pids == 0) pids = opts.pids_limit;
    if (pids > 0) lin.resources->pids = oci::PidsResources{pids};

    int64_t oom = TRY(integer("oom_score_adj"));
    if (oom < -1000 || oom > 1000) return fail_msg(f("oom_score_adj"), ": ", oom, " is not within -1000..1000");
    if (oom != 0) proc.oom_score_adj = static_cast<int>(oom);
  }
  for (auto& [k, v] : TRY(read_string_map(cfg, "ulimit", kCfg))) {
    auto r = TRY(podman::parse_ulimit(k, v));
    std::erase_if(proc.rlimits, [&](const oci::Rlimit& x) { return x.resource == r.resource; });
    proc.rlimits.push_back(r);
  }

  // ---- devices and mounts ----------------------------------------------------------------------
  TRYV(add_device_blocks(cfg, spec));
  for (size_t i = 0; i < task.devices.size(); i++) {
    const auto& d = task.devices[i];
    TRYV(podman::add_device(spec, d.host_path, d.task_path.empty() ? d.host_path : d.task_path, d.permissions,
                            cat("devices[", i, "]")));
  }
  std::vector<PendingVolume> pending;
  {
    std::string state = task_dir.substr(0, task_dir.rfind('/'));
    state = state.substr(0, state.rfind('/'));
    MountContext ctx{opts, task, own_dir, task_dir, state + "/volumes", layers.front()};
    TRYV(add_task_mounts(ctx, cfg, spec, pending));
  }

  // ---- /etc files ------------------------------------------------------------------------------
  {
    // Nomad's group DNS block wins over the task's dns_* fields, as in the
    // docker driver (which then gets Nomad's own resolv.conf).
    EtcFiles etc = host_etc_files(opts, host_net, netns_none);
    bool group_dns = !task.dns_servers.empty() || !task.dns_searches.empty() || !task.dns_options.empty();
    etc.servers = group_dns ? task.dns_servers : TRY(strings("dns_servers"));
    etc.servers_field = group_dns ? "dns.servers" : f("dns_servers");
    etc.searches = group_dns ? task.dns_searches : TRY(strings("dns_search_domains"));
    etc.options = group_dns ? task.dns_options : TRY(strings("dns_options"));
    etc.extra_hosts = TRY(strings("extra_hosts"));
    etc.extra_hosts_field = f("extra_hosts");
    TRYV(add_etc_files(spec, task, task_dir, etc));
  }

  // ---- labels -> annotations -----------------------------------------------------------------------
  TRYV(add_task_labels(spec, cfg, kCfg, task, opts.extra_labels, true));

  // ---- logging, health checks ---------------------------------------------------------------------
  {
    const Value& logging = cfg["logging"];
    std::string type = TRY(read_string(logging, "type", f("logging")));
    if (type.empty()) type = TRY(read_string(logging, "driver", f("logging")));
    auto conf = TRY(read_string_map(logging, "config", f("logging")));
    bool from_plugin = type.empty() && conf.empty();
    std::string where = from_plugin ? "plugin logging" : f("logging");
    if (from_plugin) {
      type = opts.logging_type;
      conf.assign(opts.logging_config.begin(), opts.logging_config.end());
    }
    if (type.empty()) type = "json-file";
    // Nomad's log files get the output unless the plugin says not to
    // collect it (docker's docker_logger); "none" keeps it from everyone.
    out.discard_output = opts.disable_log_collection || type == "none";
    if (type == "journald" || type == "syslog" || type == "gelf" || type == "fluentd" || type == "splunk" ||
        type == "awslogs" || type == "gcplogs") {
      // docker's _command is the task's own argv, without the init before it.
      size_t first = proc.args.size() > 2 && proc.args[0] == "/sbin/docker-init" && proc.args[1] == "--" ? 2 : 0;
      std::string command;
      for (size_t i = first; i < proc.args.size(); ++i) command += (command.empty() ? "" : " ") + proc.args[i];
      LogTemplateValues tv{container_id, task_container_name(task), image, img.image_id, command};
      std::map<std::string, std::string> labels;
      for (const auto& [k, v] : spec.annotations)
        if (!k.starts_with("run.husk.")) labels[k] = v;
      out.log = TRY(docker_log_plan(type, conf, tv, labels, proc.env, where));
    } else if (type == "json-file" || type == "local") {
      // dockerd's own log files; husk's output goes to Nomad's, which is
      // what Nomad's docker_logger copies them to.
      if (opts.disable_log_collection)
        out.warnings.push_back(cat(where, ".type = \"", type, "\" with disable_log_collection: husk keeps no ", type,
                                   " log of its own, so the task's output is not kept"));
    } else if (type == "etwlogs") {
      // As dockerd on Linux, which has no such driver.
      return fail_msg(where, ".type = \"etwlogs\": Event Tracing for Windows is a Windows log driver; this is Linux");
    } else if (type == "logentries") {
      return fail_msg(where, ".type = \"logentries\": the Logentries service closed on 15 November 2022 and ",
                      "docker removed its driver in v25; choose another log type");
    } else if (type != "none") {
      // As dockerd: "no log driver named ... is registered".
      return fail_msg(where, ".type = \"", type, "\": not a docker log driver husk has (json-file, local, journald, ",
                      "syslog, gelf, fluentd, splunk, awslogs, gcplogs, none)");
    }
  }
  (void)TRY(read_bool(cfg["healthchecks"], "disable", f("healthchecks")));  // husk runs no image HEALTHCHECK
  (void)TRY(integer("container_exists_attempts"));
  // The task's address for Nomad (the docker driver's DriverNetwork): on
  // husk's bridge, auto-advertised on a user-defined network or with
  // advertise_ipv6_address (then the IPv6 one), as the docker driver does.
  bool advertise6 = TRY(boolean("advertise_ipv6_address"));
  if (husk_network) {
    out.advertise.enabled = true;
    out.advertise.ipv6 = advertise6;
    out.advertise.auto_advertise = user_network || advertise6;
    for (const auto& [label, port] : port_map) out.advertise.port_map[label] = static_cast<int32_t>(port);
  } else if (advertise6) {
    out.warnings.push_back("config.advertise_ipv6_address: the task has no address of its own on husk's bridge");
  }

  // Last: the only step that leaves something on the host besides task_dir.
  TRYV(create_volumes(pending, layers));
  out.spec = std::move(spec);
  out.image_layers = img.layers;
  if (!img.image_id.empty()) {
    out.image_store = opts.image_store_root;
    out.image_id = img.image_id;
  }
  return out;
}

}  // namespace husk::driver::docker
