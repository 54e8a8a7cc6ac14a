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

#include "common/duration.h"
#include "driver/bundle_files.h"
#include "driver/image_dir.h"
#include "driver/image_resolve.h"
#include "driver/podman_fields.h"
#include "driver/podman_flavor.h"
#include "driver/podman_security.h"
#include "driver/userns_auto.h"
#include "net/config.h"
#include "oci/config.h"
#include "oci/default_seccomp.h"
#include "oci/tables.h"

namespace husk::driver::podman {

namespace {

const std::string kCfg = "config";


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
  ImageOptions image_opts{opts.image_store_root, oci::host_platform()};
  {
    std::string os = TRY(str("os")), arch = TRY(str("arch")), variant = TRY(str("variant"));
    if (!os.empty()) image_opts.platform.os = os;
    if (!arch.empty()) {
      image_opts.platform.architecture = arch;
      image_opts.platform.variant = "";
    }
    if (!variant.empty()) image_opts.platform.variant = variant;
  }
  {
    // Pull options: the task's auth block, force_pull, image_pull_timeout,
    // auth_soft_fail; the plugin's auth.config and auth.helper.
    const Value& auth = cfg["auth"];
    std::string user = TRY(read_string(auth, "username", f("auth"))), pass = TRY(read_string(auth, "password", f("auth")));
    if (!user.empty() || !pass.empty()) image_opts.pull.credentials = image::Credentials{user, pass, "", "the task's auth block"};
    if (!auth.is_null()) image_opts.pull.tls_verify = TRY(read_bool(auth, "tls_verify", f("auth"), true));
    image_opts.pull.auth_file = opts.auth_config;
    image_opts.pull.auth_helper = opts.auth_helper;
    image_opts.pull.force = TRY(boolean("force_pull"));
    image_opts.pull.auth_soft_fail = TRY(boolean("auth_soft_fail"));
    std::string t = TRY(str("image_pull_timeout", "5m"));
    auto ns = TRY(parse_go_duration(t.empty() ? "5m" : t, f("image_pull_timeout")));
    image_opts.pull.timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ns).count();
  }
  if (task.emit_event)
    image_opts.pull_progress = [&task, image](const std::string& summary) {
      task.emit_event("Image pull progress: " + summary, {{"image", image}});
    };
  ResolvedImage img = TRY(resolve_image(image, image_opts, f("image")));
  if (!img.pulled.empty()) out.warnings.push_back(img.pulled);
  for (const auto& w : img.warnings) out.warnings.push_back(cat("image: ", w));
  // Only a pulled image (in the store, from no host file) has no host path.
  bool from_host = !img.source_path.empty() || img.image_id.empty();
  if (!opts.volumes_enabled && from_host) {
    // An image directory or archive is a host path too: with volumes
    // disabled it must come from the allocation, or any host file would be
    // readable.
    char real_alloc[PATH_MAX], real_src[PATH_MAX];
    std::string alloc = realpath(task.alloc_dir.c_str(), real_alloc) ? std::string(real_alloc) : "";
    std::string src = realpath(img.source_path.c_str(), real_src) ? std::string(real_src) : "";
    if (alloc.empty() || src.empty() || !is_within(alloc, src))
      return fail_msg(f("image"), ": \"", image, "\": volumes are not enabled (plugin volumes.enabled = false), ",
                      "so only images inside the allocation directory can be used");
  }
  out.image_layers = img.layers;
  if (!img.image_id.empty()) {
    out.image_store = opts.image_store_root;
    out.image_id = img.image_id;
  } else {
    for (auto k : {"arch", "os", "variant"})
      if (!TRY(str(k)).empty())
        out.warnings.push_back(cat(f(k), " is ignored: a local image directory has one platform"));
  }
  const oci::ImageConfig* icfg = img.config ? &*img.config : nullptr;
  if (icfg) out.stop_signal = icfg->stop_signal;
  out.keep_container = !opts.gc_container;

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
  // podman's rule: the task's entrypoint replaces the image's Entrypoint
  // (and drops its Cmd); command + args replace the image's Cmd.
  std::vector<std::string> entrypoint, command;
  const Value& ep = cfg["entrypoint"];
  if (ep.kind() == Value::Kind::String) {
    entrypoint.push_back(ep.as_string());
    out.warnings.push_back("config.entrypoint: a string is deprecated; use a list");
  } else if (ep.kind() == Value::Kind::Array) {
    for (size_t i = 0; i < ep.items().size(); i++)
      entrypoint.push_back(TRY(stringify(ep.items()[i], fi("entrypoint", i))));
  } else if (!ep.is_null()) {
    return fail_msg(f("entrypoint"), ": expected a string or a list of strings");
  }
  if (std::string c = TRY(str("command")); !c.empty()) command.push_back(c);
  for (auto& a : TRY(strings("args"))) command.push_back(a);
  bool task_entrypoint = !ep.is_null();
  if (icfg) {
    if (!task_entrypoint && icfg->entrypoint) entrypoint = *icfg->entrypoint;
    if (command.empty() && !task_entrypoint && icfg->cmd) command = *icfg->cmd;
  }
  std::vector<std::string> argv = entrypoint;
  argv.insert(argv.end(), command.begin(), command.end());
  if (argv.empty())
    return fail_msg(f("command"), ": nothing to run: the image \"", image,
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
  // The task's user, else the image's User.
  std::string user_name = task.user.empty() && icfg ? icfg->user : task.user;
  ResolvedUser user =
      TRY(resolve_user(out.image_layers, user_name, task.user.empty() && icfg ? "image config User" : "user"));
  proc.user.uid = user.uid;
  proc.user.gid = user.gid;
  proc.user.additional_gids = user.additional_gids;

  std::map<std::string, std::string> env = task.env;
  // port_map (deprecated): NOMAD_PORT_<label> is the mapped container port.
  std::vector<std::pair<std::string, int64_t>> port_map;
  {
    Value pm = TRY(merged_map(cfg["port_map"], f("port_map")));
    for (const auto& [label, v] : pm.entries()) {
      if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Float)
        return fail_msg(f("port_map"), ".", label, ": expected a port number");
      port_map.emplace_back(label, v.as_int());
      env["NOMAD_PORT_" + label] = std::to_string(v.as_int());
    }
  }
  // The image's Env under the task's (podman merges them so).
  if (icfg)
    for (const auto& kvp : icfg->env) {
      size_t eq = kvp.find('=');
      env.try_emplace(kvp.substr(0, eq), kvp.substr(eq + 1));
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
  } else if (icfg && !icfg->working_dir.empty()) {
    if (icfg->working_dir[0] != '/')
      return fail_msg(f("image"), ": the image's WorkingDir \"", icfg->working_dir, "\" is not an absolute path");
    proc.cwd = icfg->working_dir;
  }

  // ---- capabilities, privileged, security options ----------------------------------
  bool privileged = TRY(boolean("privileged"));
  if (privileged && !opts.allow_privileged)
    return fail_msg(f("privileged"), ": privileged tasks are not allowed: the plugin's allow_privileged is false");
  auto cap_add = TRY(strings("cap_add"));
  auto cap_drop = TRY(strings("cap_drop"));
  auto caps = privileged ? all_capabilities() : TRY(merge_capabilities(cap_add, cap_drop));
  if (opts.allow_caps && !privileged) {
    // Each cap_add entry must be allowed; the defaults are cut to the list.
    const auto& allowed = *opts.allow_caps;
    for (size_t i = 0; i < cap_add.size(); i++) {
      bool all = false;
      auto asked = TRY(cap_list({cap_add[i]}, fi("cap_add", i), all));
      if (all) asked = all_capabilities();
      for (int c : asked)
        if (std::find(allowed.begin(), allowed.end(), c) == allowed.end())
          return fail_msg(fi("cap_add", i), ": \"", cap_add[i], "\" is not in the plugin's allow_caps");
    }
    std::erase_if(caps, [&](int c) { return std::find(allowed.begin(), allowed.end(), c) == allowed.end(); });
  }
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
  // A profile loaded on the host, applied at the exec; none named:
  // husk-default where the host runs AppArmor, as podman's
  // containers-default; privileged tasks and unconfined run unconfined.
  proc.apparmor_profile = TRY(apparmor::task_profile(opts.apparmor, apparmor, privileged,
                                                     sec.apparmor ? f("security_opt") + ": apparmor" : f("apparmor_profile"),
                                                     "apparmor_profile = \"unconfined\""));
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
  if (privileged) make_privileged(spec, opts.host_dev);


  // userns: the mode is what precedes the first ':'. host (none of its
  // own) and ns:PATH (join that user namespace, as podman does) are done;
  // keep-id and nomap are podman's rootless modes, which a rootful podman
  // refuses too; auto allocates the task's ids from the subordinate ranges
  // of `containers` (userns_auto.h) and idmaps the image's layers.
  std::string userns = TRY(str("userns"));
  std::string userns_mode = userns.substr(0, userns.find(':'));
  if (!img.uid_map.empty()) {
    TRYV(apply_store_id_map(spec, img, f("userns"), userns));
  } else if (userns.empty() || userns == "host") {
  } else if (userns_mode == "ns") {
    std::string p = userns.substr(3);
    if (p.empty() || p[0] != '/') return fail_msg(f("userns"), ": \"", userns, "\": the path is not absolute");
    struct stat st;
    if (stat(p.c_str(), &st) != 0) return fail_msg(f("userns"), ": \"", userns, "\": ", p, ": ", strerror(errno));
    set_namespace(spec, oci::NamespaceType::User, true, p);
    spec.linux->uid_mappings.clear();
    spec.linux->gid_mappings.clear();
  } else if (userns_mode == "keep-id" || userns_mode == "nomap") {
    if (!opts.rootless)
      return fail_msg(f("userns"), ": \"", userns, "\": ", userns_mode, " is a rootless mode (podman refuses it as root)");
    return fail_msg(f("userns"), ": \"", userns, "\": ", userns_mode, " is not supported by husk yet");
  } else if (userns_mode == "auto") {
    if (opts.rootless)
      return fail_msg(f("userns"), ": \"", userns, "\": a rootless driver cannot allocate ids for auto (it needs root)");
    if (userns != "auto" && userns[4] != ':')
      return fail_msg(f("userns"), ": \"", userns, "\" is not a user namespace mode (host, auto, keep-id, nomap, ns:PATH)");
    auto req = TRY(parse_userns_auto(userns.size() > 5 ? userns.substr(5) : "", f("userns")));
    // The image's ids (and the task's own user's) size the namespace.
    uint32_t span = req.size ? 0 : TRY_CTX(image_id_span(out.image_layers), f("userns"), ": \"auto\"");
    if (!req.size) {
      span = std::max({span, proc.user.uid + 1, proc.user.gid + 1});
      for (uint32_t g : proc.user.additional_gids) span = std::max(span, g + 1);
    }
    std::string tasks_dir = task_dir.substr(0, task_dir.rfind('/'));
    AutoUserns maps = TRY(allocate_userns_auto(req, span, opts.userns_auto, tasks_dir, task_dir, f("userns")));
    set_namespace(spec, oci::NamespaceType::User, true);
    spec.linux->uid_mappings = maps.uid;
    spec.linux->gid_mappings = maps.gid;
    // The image's layers are seen through idmapped mounts with the same
    // maps: a file the image gives to uid N belongs to the task's N.
    out.ownership.mode = OwnershipPlan::Mode::kMap;
    out.ownership.uid_map = maps.uid;
    out.ownership.gid_map = maps.gid;
    out.ownership.image_root = out.image_layers.front();
  } else {
    return fail_msg(f("userns"), ": \"", userns, "\" is not a user namespace mode (host, auto, keep-id, nomap, ns:PATH)");
  }

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
    set_namespace(spec, t, present, std::move(path));
  };
  std::string net_mode = TRY(str("network_mode"));
  // task:NAME is the container of task NAME of this allocation (podman's
  // name for it: NAME-<alloc id>); container:X names one directly.
  const std::string containers_root = containers_root_of(task_dir);
  auto other_container = [&](const std::string& mode) {
    return mode.starts_with("task:") ? mode.substr(5) + "-" + task.alloc_id : mode.substr(10);
  };
  bool host_net = false, netns_none = false, husk_network = false, bridge_network = false, joined_net = false;
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
    // Another task's network namespace, joined by husk when it creates
    // this container (src/net's container: mode): it must be running.
    std::string other = TRY(container_named(containers_root, other_container(net_mode), f("network_mode")));
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = "container:" + other;
    joined_net = true;
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
    bridge_network = mode.starts_with("bridge");
  } else if (net::valid_interface_name(net_mode) && net_mode.find(':') == std::string::npos) {
    // A network of that name (podman network create): husk's bridge NAME,
    // made with its first container and removed with its last.
    if (opts.rootless) return fail_msg(f("network_mode"), ": \"", net_mode, "\": a bridge network needs root");
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = "bridge:" + net_mode;
    husk_network = bridge_network = true;
  } else {
    return fail_msg(f("network_mode"), ": \"", net_mode,
                    "\" is not a network mode (bridge, host, none, slirp4netns, pasta, ns:<path>) nor a network name ",
                    "husk can make a bridge of (1-15 of [A-Za-z0-9_.-])");
  }
  bool own_netns = !host_net && !joined_net;  // a joined one is the other task's

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
    // The other task's IPC namespace, and its /dev/shm when it is
    // "shareable" (else a warning: this task keeps a /dev/shm of its own).
    RunningContainer other = TRY(running_init(containers_root, other_container(ipc_mode), f("ipc_mode")));
    if (!join_dev_shm(spec, containers_root, other.id))
      out.warnings.push_back(cat(f("ipc_mode"), ": \"", ipc_mode, "\": container ", other.id,
                                 " does not share its /dev/shm (ipc_mode = \"shareable\" there does); this task has "
                                 "its own"));
    set_ns(oci::NamespaceType::Ipc, true, cat("/proc/", other.pid, "/ns/ipc"));
    own_ipc = false;
    shm_mount = false;
  } else {
    return fail_msg(f("ipc_mode"), ": \"", ipc_mode, "\" is not an IPC mode");
  }
  int64_t shm_bytes = 0;
  if (std::string shm = TRY(str("shm_size")); !shm.empty()) {
    if (!shm_mount) return fail_msg(f("shm_size"), ": only with ipc_mode private or shareable");
    auto bytes = parse_size(shm);
    if (!bytes) return fail_msg(f("shm_size"), ": ", bytes.error().what());
    shm_bytes = *bytes;
    for (auto& m : spec.mounts)
      if (m.destination == "/dev/shm") {
        std::erase_if(m.options, [](const std::string& o) { return o.starts_with("size="); });
        m.options.push_back(cat("size=", *bytes));
      }
  }
  if (ipc_mode == "shareable" && opts.rootless)
    out.warnings.push_back(cat(f("ipc_mode"), ": a rootless driver cannot mount a /dev/shm to share: this task's is its own"));
  else if (ipc_mode == "shareable") share_dev_shm(spec, task_dir, shm_bytes > 0 ? shm_bytes : 64LL << 20, out.shareable_shm_bytes);

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
      std::string forwards = TRY(port_forwards(task, ports, port_map, f("port_map")));
      if (!forwards.empty()) spec.annotations["run.husk.ports"] = forwards;
    }
    // The task's address for Nomad, as nomad-driver-podman reports the
    // container's (auto-advertised): on husk's bridge.
    if (bridge_network) {
      out.advertise.enabled = true;
      out.advertise.auto_advertise = true;
      for (const auto& [label, port] : port_map) out.advertise.port_map[label] = static_cast<int32_t>(port);
    }
    // Static addresses and MAC: on a bridge network (podman applies them
    // in bridge mode only, and so does husk: elsewhere they warn).
    std::optional<std::string> ip4, ip6;
    auto take = [&](const std::string& field, const std::string& v, int family = AF_UNSPEC) -> Result<> {
      auto ip = family == AF_UNSPEC ? net::parse_ip(v) : net::parse_static_address(v, family);
      if (!ip) return fail_msg(field, ": ", ip.error().what());
      auto& slot = ip->family == AF_INET ? ip4 : ip6;
      if (slot && *slot != v)
        return fail_msg(field, ": \"", v, "\": the container already has ", ip->family == AF_INET ? "IPv4" : "IPv6",
                        " address ", *slot, " (husk gives it one of each family)");
      slot = v;
      return {};
    };
    if (std::string v = TRY(str("ipv4_address")); !v.empty()) TRYV(take(f("ipv4_address"), v, AF_INET));
    if (std::string v = TRY(str("ipv6_address")); !v.empty()) TRYV(take(f("ipv6_address"), v, AF_INET6));
    auto statics = TRY(strings("static_ips"));
    for (size_t i = 0; i < statics.size(); i++) TRYV(take(fi("static_ips", i), statics[i]));
    std::string mac = TRY(str("static_mac"));
    if (!mac.empty())
      if (auto m = net::parse_mac(mac); !m) return fail_msg(f("static_mac"), ": ", m.error().what());
    if (bridge_network) {
      if (ip4) spec.annotations[net::kIpAnnotation] = *ip4;
      if (ip6) spec.annotations[net::kIp6Annotation] = *ip6;
      if (!mac.empty()) spec.annotations[net::kMacAnnotation] = mac;
    } else {
      for (auto k : {"ipv4_address", "ipv6_address", "static_mac"})
        if (!TRY(str(k)).empty())
          out.warnings.push_back(cat(f(k), " is ignored: podman applies it in bridge mode only"));
      if (!statics.empty()) out.warnings.push_back(cat(f("static_ips"), " is ignored: podman applies it in bridge mode only"));
    }
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

    TRYV(add_nomad_mounts(spec, task));

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
    EtcFiles etc = host_etc_files(opts, host_net, netns_none);
    etc.servers = task.dns_servers.empty() ? opts.dns_servers : task.dns_servers;
    etc.servers_field = "dns.servers";
    etc.searches = task.dns_searches;
    etc.options = task.dns_options;
    etc.extra_hosts = TRY(strings("extra_hosts"));
    etc.extra_hosts_field = f("extra_hosts");
    TRYV(add_etc_files(spec, task, task_dir, etc));
  }

  // ---- labels -> annotations ----------------------------------------------------------------------
  TRYV(add_task_labels(spec, cfg, kCfg, task, opts.extra_labels, !opts.extra_labels.empty()));

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
    if (empty_block) options.assign(opts.logging_options.begin(), opts.logging_options.end());
    // The output reaches Nomad's log files unless the plugin says not to
    // collect it; journald gets it as well, as conmon sends it.
    out.discard_output = opts.disable_log_collection;
    if (driver == "journald") {
      out.log.driver = "journald";
      std::string tag = "{{.ID}}";
      for (const auto& [k, v] : options) {
        if (k == "tag") tag = v;
        else out.warnings.push_back(cat("logging.options.", k, ": not an option of podman's journald log driver husk has (tag)"));
      }
      LogTemplateValues tv{container_id, task_container_name(task), image, img.image_id};
      out.log.opts.push_back("tag=" + TRY(expand_log_tag(tag, tv, f("logging.options.tag"))));
      out.log.opts.push_back("name=" + tv.name);
    } else if (!options.empty()) {
      out.warnings.push_back("logging.options are ignored: the nomad log driver has none");
    }
    if (driver == "nomad" && opts.disable_log_collection)
      out.warnings.push_back("disable_log_collection with logging.driver \"nomad\": the task's output is not kept");
  }

  // A mount must not hide one made before it (readonly_rootfs's /run tmpfs
  // over the init at /run/podman-init, a tmpfs over a volume's subpath):
  // parents first, as podman sorts them; same-depth order is kept.
  std::stable_sort(spec.mounts.begin(), spec.mounts.end(), [](const oci::Mount& a, const oci::Mount& b) {
    auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/') - (p.size() > 1 && p.back() == '/'); };
    return depth(clean_path(a.destination)) < depth(clean_path(b.destination));
  });
  out.spec = std::move(spec);
  return out;
}

}  // namespace husk::driver::podman
