// An nspawn task as an OCI bundle: the decoded `config {}` plus what Nomad
// says about the task, turned into the container systemd-nspawn would have
// made: a machine named <task>-<alloc> whose machine id is the allocation
// id, nspawn's capability set, /run and /tmp on tmpfs, an init as PID 1
// with boot, and the root filesystem modes of --ephemeral, --volatile and
// --read-only. Fields husk cannot honour are errors naming the field.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "common/fd.h"
#include "common/idshift.h"
#include "driver/bundle_files.h"
#include "driver/disk_image.h"
#include "driver/image_dir.h"
#include "driver/nspawn_flavor.h"
#include "net/config.h"
#include "oci/config.h"
#include "oci/default_seccomp.h"
#include "oci/tables.h"

namespace husk::driver::nspawn {

namespace {

const std::string kCfg = "config";
// How long StartTask waits for a booted systemd's READY=1 before counting
// the task as started anyway.
constexpr int kBootReadyTimeoutMs = 120000;
std::string f(std::string_view name) { return cat("config.", name); }

// systemd-nspawn's default capability set (nspawn.c's arg_caps_retain).
const char* const kNspawnCaps[] = {
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_NICE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
};

// A path inside the image, resolved with the image as "/" (symlinks in
// the image cannot leave it): the host path, or "" when it does not exist.
Result<std::string> path_in_image(const std::string& root, const std::string& path) {
  UniqueFd r = TRY(open_fd(root, O_PATH | O_DIRECTORY | O_CLOEXEC));
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string rel = path;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  if (rel.empty()) return root;
  int fd = static_cast<int>(syscall(SYS_openat2, r.get(), rel.c_str(), &how, sizeof how));
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::string();
    return fail_sys("look up ", path, " in ", root);
  }
  UniqueFd p(fd);
  char buf[PATH_MAX];
  ssize_t n = readlink(cat("/proc/self/fd/", fd).c_str(), buf, sizeof buf - 1);
  if (n < 0) return fail_sys("resolve ", path, " in ", root);
  return std::string(buf, static_cast<size_t>(n));
}

bool is_regular(const std::string& p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The allocation id as a machine id: 32 lower-case hex digits.
std::string machine_id_of(const std::string& alloc_id, const std::string& fallback_seed) {
  std::string hex;
  for (char c : alloc_id)
    if (isxdigit(static_cast<unsigned char>(c)))
      hex.push_back(static_cast<char>(tolower(static_cast<unsigned char>(c))));
  if (hex.size() == 32 && hex != std::string(32, '0')) return hex;
  // Not a UUID (tests, odd clients): a stable id from the seed instead.
  uint64_t h1 = 1469598103934665603ull, h2 = 1099511628211ull;
  for (unsigned char c : fallback_seed) {
    h1 = (h1 ^ c) * 1099511628211ull;
    h2 = (h2 + c) * 6364136223846793005ull + 1442695040888963407ull;
  }
  char buf[33];
  snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h1), static_cast<unsigned long long>(h2));
  return buf;
}

std::string uuid_form(const std::string& id) {
  return cat(id.substr(0, 8), "-", id.substr(8, 4), "-", id.substr(12, 4), "-", id.substr(16, 4), "-", id.substr(20));
}

oci::Mount tmpfs_mount(const char* dst, std::vector<std::string> opts) {
  oci::Mount m;
  m.destination = dst;
  m.type = "tmpfs";
  m.source = "tmpfs";
  m.options = std::move(opts);
  return m;
}

Result<int> capability_of(const std::string& name, const std::string& field) {
  std::string n;
  for (char c : name) n.push_back(static_cast<char>(toupper(static_cast<unsigned char>(c))));
  if (!n.starts_with("CAP_")) n = "CAP_" + n;
  auto c = oci::capability_from_name(n);
  if (!c) return fail_msg(field, ": \"", name, "\" is not a capability");
  return *c;
}

}  // namespace

Result<BundlePlan> plan(const Options& opts, const TaskSpec& task, const Value& cfg, const std::string& container_id,
                        const std::string& task_dir) {
  BundlePlan out;
  if (!cfg.is_null() && cfg.kind() != Value::Kind::Map) return fail_msg("config: expected an object");
  auto str = [&](std::string_view k) { return read_string(cfg, k, kCfg); };
  auto boolean = [&](std::string_view k, bool d = false) { return read_bool(cfg, k, kCfg, d); };
  auto strings = [&](std::string_view k) { return read_strings(cfg, k, kCfg); };
  (void)container_id;

  const std::string machine = task.name + "-" + task.alloc_id;
  const bool group = task.network_mode == NetworkMode::Group && !task.netns_path.empty();

  // ---- options that decide the root filesystem ------------------------------------------
  bool boot = TRY(boolean("boot", true));
  bool process_two = TRY(boolean("process_two"));
  if (boot && process_two)
    return fail_msg(f("process_two"), ": cannot be combined with boot = true (an init is PID 1 already)");
  bool ephemeral = TRY(boolean("ephemeral"));
  bool read_only = TRY(boolean("read_only"));
  std::string vol = TRY(str("volatile"));
  if (vol == "false") vol = "no";
  if (vol == "true") vol = "yes";
  if (!vol.empty() && vol != "no" && vol != "yes" && vol != "state" && vol != "overlay")
    return fail_msg(f("volatile"), ": \"", vol, "\" is not a volatile mode (yes, state, overlay or no)");
  bool is_volatile = !vol.empty() && vol != "no";
  if (ephemeral && is_volatile) return fail_msg(f("volatile"), ": cannot be combined with ephemeral = true");
  std::string ownership = TRY(str("private_users_ownership"));
  if (!ownership.empty() && ownership != "auto" && ownership != "map" && ownership != "chown" && ownership != "off")
    return fail_msg(f("private_users_ownership"), ": \"", ownership, "\" is not auto, map, chown or off");
  if (ownership == "chown" && (read_only || is_volatile))
    return fail_msg(f("private_users_ownership"), ": \"chown\" cannot be combined with ",
                    read_only ? "read_only = true" : "volatile");

  // ---- the image ------------------------------------------------------------------------
  std::string image = TRY(str("image"));
  auto download = TRY(parse_download(cfg["image_download"]));
  if (download) TRYV(download_image(opts, image, *download));
  ImageSource src = TRY(resolve_image(opts, image));
  if (src.kind == ImageSource::Kind::kHostRoot && vol != "yes" && vol != "state")
    return fail_msg(f("image"), ": \"", image, "\" is the host's root: only with volatile = \"yes\" or \"state\"");
  std::string rootfs_dir;
  if (src.kind == ImageSource::Kind::kRawFile) {
    // Loop-mounted read-only under the task dir (discard/destroy unmount it).
    std::string at = task_dir + "/image";
    if (mkdir(at.c_str(), 0700) != 0) return fail_sys("create ", at);
    Partition part = TRY(find_root_partition(src.path, f("image")));
    TRYV(mount_disk_image(src.path, part, at, f("image")));
    rootfs_dir = at;
  } else {
    rootfs_dir = src.path;
  }
  const std::string image_root = rootfs_dir;  // before pivot_root

  if (std::string pr = TRY(str("pivot_root")); !pr.empty()) {
    size_t colon = pr.find(':');
    std::string new_root = pr.substr(0, colon), old_root = colon == std::string::npos ? "" : pr.substr(colon + 1);
    if (new_root.empty() || new_root[0] != '/' ||
        (colon != std::string::npos && (old_root.empty() || old_root[0] != '/')))
      return fail_msg(f("pivot_root"), ": \"", pr, "\": every part must be an absolute path");
    if (vol == "yes") return fail_msg(f("pivot_root"), ": cannot be combined with volatile = \"yes\"");
    std::string p = TRY_CTX(path_in_image(image_root, new_root), f("pivot_root"));
    struct stat st;
    if (p.empty() || stat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return fail_msg(f("pivot_root"), ": \"", new_root, "\" is not a directory in the image");
    rootfs_dir = p;
    if (!old_root.empty()) out.spec.mounts.push_back(bind_mount(image_root, old_root, {"rbind", "rw"}));
  }
  std::vector<oci::Mount> pivot_mounts = std::move(out.spec.mounts);

  if (vol == "yes") {
    out.rootfs_mode = RootfsMode::kVolatileRoot;
    std::string usr = TRY(path_in_image(rootfs_dir, "/usr"));
    if (usr.empty()) return fail_msg(f("volatile"), ": \"yes\" needs an image with /usr (\"", image, "\" has none)");
  } else if (vol == "overlay") {
    out.rootfs_mode = RootfsMode::kVolatileOverlay;
  } else if (ephemeral || (src.kind == ImageSource::Kind::kRawFile && !read_only && vol != "state")) {
    // A raw image is mounted read-only: writes go to a per-task layer.
    out.rootfs_mode = RootfsMode::kOverlay;
  } else {
    out.rootfs_mode = RootfsMode::kImage;
  }

  oci::Spec spec = oci::default_spec(false);
  spec.root = oci::Root{task_dir + "/rootfs", read_only || vol == "state"};
  for (auto& m : pivot_mounts) spec.mounts.push_back(std::move(m));
  oci::Process& proc = *spec.process;
  oci::Linux& lin = *spec.linux;
  if (!lin.resources) lin.resources = oci::Resources{};
  proc.no_new_privileges = false;  // nspawn's default
  proc.terminal = false;
  spec.hostname = machine.substr(0, 64);
  spec.annotations["run.husk.machine"] = machine;

  // ---- console --------------------------------------------------------------------------
  {
    // interactive and read-only: nspawn gives the container a pty as its
    // console, connected to nspawn's own stdio; under Nomad that is the
    // task's logs (Nomad sends no input, so the two are the same here).
    std::string console = TRY(str("console"));
    if (console == "interactive" || console == "read-only") proc.terminal = true;
    if (!console.empty() && !proc.terminal && console != "pipe" && console != "passive" && console != "autopipe")
      return fail_msg(f("console"), ": \"", console,
                      "\" is not a console mode (interactive, read-only, passive, pipe)");
  }

  // ---- namespaces and network -----------------------------------------------------------
  auto set_ns = [&](oci::NamespaceType t, bool present, std::optional<std::string> path = std::nullopt) {
    std::erase_if(lin.namespaces, [&](const oci::Namespace& n) { return n.type == t; });
    if (present) lin.namespaces.push_back(oci::Namespace{t, std::move(path)});
  };
  bool veth = TRY(boolean("network_veth", true));
  std::string bridge = TRY(str("network_bridge"));
  std::string zone = TRY(str("network_zone"));
  bool husk_network = false, foreign_bridge = false;
  if (!bridge.empty() && !zone.empty()) return fail_msg(f("network_zone"), ": cannot be combined with network_bridge");
  if (group) {
    // Nomad's group network wins: nspawn's driver drops veth and user
    // namespacing and joins the namespace.
    if (!bridge.empty() || !zone.empty())
      return fail_msg(bridge.empty() ? f("network_zone") : f("network_bridge"),
                      ": cannot be used with a group network (network { mode = \"bridge\" })");
    set_ns(oci::NamespaceType::Network, true, task.netns_path);
  } else if (!zone.empty() || !bridge.empty()) {
    std::string name = zone.empty() ? bridge : "vz-" + zone;
    const std::string& field = zone.empty() ? f("network_bridge") : f("network_zone");
    bool ok = !name.empty() && name.size() <= 15;
    for (char c : name) ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    if (!ok)
      return fail_msg(field, ": \"", zone.empty() ? bridge : zone, "\" makes the bridge name \"", name,
                      "\", which is not an interface name (1-15 of [A-Za-z0-9_.-])");
    set_ns(oci::NamespaceType::Network, true);
    // network_bridge onto a bridge husk did not make (nspawn's only kind):
    // the veth joins it and the container configures host0 itself (DHCP
    // from whatever serves that bridge). Else husk's bridge of that name.
    std::string containers_root = containers_root_of(task_dir);
    bool husks = access((containers_root + "/.networks/" + name + "/subnet").c_str(), F_OK) == 0;
    if (!bridge.empty() && !husks && opts.link_exists(name)) {
      spec.annotations["run.husk.network"] = "veth:" + name;
      foreign_bridge = true;
    } else {
      spec.annotations["run.husk.network"] = "bridge:" + name;
      husk_network = true;
    }
  } else if (veth) {
    set_ns(oci::NamespaceType::Network, true);
    spec.annotations["run.husk.network"] = "bridge";
    husk_network = true;
  } else {
    set_ns(oci::NamespaceType::Network, false);
  }
  const bool own_netns = group || husk_network || foreign_bridge;
  // The container's end of the veth is host0, as nspawn names it (images
  // made for nspawn configure it: systemd's 80-container-host0.network).
  if (husk_network || foreign_bridge) spec.annotations[net::kIfnameAnnotation] = "host0";

  // ---- user namespace -------------------------------------------------------------------
  {
    bool userns = TRY(boolean("user_namespacing", true)) && !group;
    std::string pu = TRY(str("private_users"));
    if (userns) {
      // The image's root directory says which range its files are in (its
      // owner), as nspawn reads it.
      struct stat st;
      if (stat(image_root.c_str(), &st) != 0) return fail_sys(f("image"), ": stat ", image_root);
      auto range = TRY(parse_private_users(pu, machine, st.st_uid, opts.range_in_use));
      if (range) {
        set_ns(oci::NamespaceType::User, true);
        lin.uid_mappings = {oci::IdMapping{0, range->first, range->second}};
        lin.gid_mappings = {oci::IdMapping{0, range->first, range->second}};
        // nspawn: --private-users=pick implies ownership "auto", else "off".
        std::string own = ownership.empty() ? (pu.empty() || pu == "pick" ? "auto" : "off") : ownership;
        OwnershipPlan& op = out.ownership;
        op.to = range->first;
        op.count = range->second;
        op.image_root = image_root;
        if (own == "off") {
          if (st.st_uid != range->first)
            out.warnings.push_back(cat("config.private_users_ownership = \"off\": the image's root is owned by uid ",
                                       st.st_uid, ", not ", range->first,
                                       " (the range's root): files outside the range show as nobody"));
        } else {
          auto base = idshift::tree_base(st.st_uid, st.st_gid, image);
          if (!base) return fail_msg(f("private_users_ownership"), ": \"", own, "\": ", base.error().what());
          op.from = *base;
          // A tree in the range already needs nothing.
          if (op.from != op.to) {
            // chown changes the image on disk: only a directory image used
            // as the root itself (not a raw image, the host's root, or the
            // shared lower layer of an overlay).
            op.chown_ok = src.kind == ImageSource::Kind::kDirectory && out.rootfs_mode == RootfsMode::kImage;
            if (own == "chown" && !op.chown_ok)
              return fail_msg(f("private_users_ownership"), ": \"chown\" would change ",
                              src.kind != ImageSource::Kind::kDirectory ? "an image that is not a directory"
                                                                        : "the image every ephemeral task shares",
                              "; use \"map\" or \"auto\"");
            op.mode = own == "map" ? OwnershipPlan::Mode::kMap
                      : own == "chown" ? OwnershipPlan::Mode::kChown
                                       : OwnershipPlan::Mode::kAuto;
          }
        }
      }
    }
  }

  // ---- argv -----------------------------------------------------------------------------
  std::vector<std::string> command = TRY(strings("command"));
  std::vector<std::string> argv;
  if (boot) {
    // nspawn --boot: the image's init as PID 1, command as its arguments.
    std::string init;
    for (const char* p : {"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"}) {
      std::string host = TRY(path_in_image(rootfs_dir, p));
      if (is_regular(host)) {
        init = p;
        // systemd says READY=1 once startup finished (the default target
        // reached): StartTask waits for that, as nspawn --notify-ready=yes.
        if (std::string_view(host).ends_with("/systemd")) out.ready_timeout_ms = kBootReadyTimeoutMs;
        break;
      }
    }
    if (init.empty())
      return fail_msg(f("boot"), ": no init in \"", image,
                      "\" (/usr/lib/systemd/systemd, /lib/systemd/systemd, /sbin/init); set boot = false to run "
                      "config.command");
    argv.push_back(init);
    argv.insert(argv.end(), command.begin(), command.end());
    out.stop_signal = "SIGRTMIN+3";  // systemd's halt request, as nspawn sends
  } else {
    argv = command;
    if (argv.empty()) {
      for (const char* p : {"/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh"})
        if (is_regular(TRY(path_in_image(rootfs_dir, p)))) {
          argv.push_back(p);
          break;
        }
      if (argv.empty())
        return fail_msg(f("command"), ": nothing to run: boot = false, no command and no shell in the image");
    }
    if (process_two) {
      // nspawn --as-pid2: a stub init as PID 1 reaps and passes signals on.
      std::string stub;
      for (const auto& p : opts.stub_inits)
        if (is_regular(p)) {
          stub = p;
          break;
        }
      if (stub.empty())
        return fail_msg(f("process_two"), ": no stub init on the host (catatonit or tini; looked in ",
                        opts.stub_inits.empty() ? "" : opts.stub_inits.front(), " and others)");
      spec.mounts.push_back(bind_mount(stub, "/run/husk-stub-init", {"bind", "ro", "nosuid", "nodev"}));
      argv.insert(argv.begin(), {"/run/husk-stub-init", "--"});
    }
  }
  proc.args = argv;

  // ---- user, environment, working directory ---------------------------------------------
  std::string user_name = TRY(str("user"));
  if (boot && !user_name.empty())
    return fail_msg(f("user"), ": cannot be combined with boot = true (the init runs as root)");
  ResolvedUser user = TRY(resolve_user({rootfs_dir}, user_name, f("user")));
  proc.user.uid = user.uid;
  proc.user.gid = user.gid;
  proc.user.additional_gids = user.additional_gids;

  std::map<std::string, std::string> env;
  for (auto& [k, v] : TRY(read_string_map(cfg, "environment", kCfg))) env[k] = v;
  for (const auto& [k, v] : task.env) env[k] = v;  // the Nomad task env wins, as upstream
  const std::string mid = machine_id_of(task.alloc_id, machine);
  env.try_emplace("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.try_emplace("HOME", user.home.empty() ? "/" : user.home);
  // systemd recognises "systemd-nspawn" (systemd-detect-virt, unit
  // conditions): images made for nspawn behave as they would there.
  if (proc.terminal) env.try_emplace("TERM", "vt220");  // what nspawn gives a pty console
  env["container"] = "systemd-nspawn";
  env["container_uuid"] = uuid_form(mid);
  proc.env.clear();
  for (const auto& [k, v] : env) proc.env.push_back(k + "=" + v);

  if (std::string wd = TRY(str("working_directory")); !wd.empty()) {
    if (wd[0] != '/') return fail_msg(f("working_directory"), ": \"", wd, "\" is not an absolute path");
    proc.cwd = wd;
  }

  // ---- capabilities and seccomp ---------------------------------------------------------
  {
    std::vector<int> caps;
    for (const char* n : kNspawnCaps) caps.push_back(*oci::capability_from_name(n));
    if (own_netns) caps.push_back(*oci::capability_from_name("CAP_NET_ADMIN"));  // nspawn: private network
    auto extra = TRY(strings("capability"));
    for (size_t i = 0; i < extra.size(); i++) {
      if (extra[i] == "all" || extra[i] == "ALL") {
        for (int c = 0; c <= oci::last_capability(); c++) caps.push_back(c);
        continue;
      }
      caps.push_back(TRY(capability_of(extra[i], cat("config.capability[", i, "]"))));
    }
    std::sort(caps.begin(), caps.end());
    caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
    oci::Capabilities c;
    c.bounding = caps;
    c.inheritable = std::vector<int>{};
    c.effective = user.uid == 0 ? caps : std::vector<int>{};
    c.permitted = user.uid == 0 ? caps : std::vector<int>{};
    proc.capabilities = c;
    lin.seccomp = oci::default_seccomp(caps);
  }

  // ---- mounts ---------------------------------------------------------------------------
  // nspawn: /tmp and /run are always tmpfs; a booted systemd gets the
  // cgroup tree of its own (cgroup namespace) writable to manage its units.
  spec.mounts.push_back(tmpfs_mount("/tmp", {"rw", "nosuid", "nodev", "mode=1777"}));
  spec.mounts.push_back(tmpfs_mount("/run", {"rw", "nosuid", "nodev", "mode=755"}));
  if (vol == "state") spec.mounts.push_back(tmpfs_mount("/var", {"rw", "nosuid", "nodev", "mode=755"}));
  if (boot)
    for (auto& m : spec.mounts)
      if (m.destination == "/sys/fs/cgroup") std::erase(m.options, "ro");

  add_task_dir_mounts(spec, task);
  for (const char* key : {"bind", "bind_read_only"}) {
    bool ro = std::string_view(key) == "bind_read_only";
    for (auto& [host, dst] : TRY(read_string_map(cfg, key, kCfg))) {
      std::string field = cat("config.", key, ".", host);
      if (host.empty() || host[0] != '/') return fail_msg(field, ": host path \"", host, "\" is not absolute");
      if (dst.empty() || dst[0] != '/') return fail_msg(field, ": container path \"", dst, "\" is not absolute");
      struct stat st;
      if (stat(host.c_str(), &st) != 0) return fail_sys(field, ": host path \"", host, "\"");
      std::vector<std::string> mo = {"rbind"};
      if (ro) mo.push_back("ro");
      spec.mounts.push_back(bind_mount(clean_path(host), clean_path(dst), mo));
    }
  }
  for (size_t i = 0; i < task.mounts.size(); i++) {
    const auto& m = task.mounts[i];
    if (!opts.volumes)
      return fail_msg("mounts[", i, "]: \"", m.task_path,
                      "\": volumes are not enabled (plugin option volumes = false)");
    std::vector<std::string> mo = {"rbind"};
    if (m.readonly) mo.push_back("ro");
    if (m.propagation == "private" || m.propagation.empty())
      mo.push_back("rprivate");
    else if (m.propagation == "host-to-task")
      mo.push_back("rslave");
    else if (m.propagation == "bidirectional")
      mo.push_back("rshared");
    else
      return fail_msg("mounts[", i, "].propagation: unknown mode \"", m.propagation, "\"");
    spec.mounts.push_back(bind_mount(m.host_path, m.task_path, mo));
  }

  // /etc/machine-id: the allocation id, as the README of nomad-driver-nspawn promises.
  TRYV_CTX(write_file(task_dir + "/machine-id", mid + "\n"), "write the task's machine-id");
  spec.mounts.push_back(
      bind_mount(task_dir + "/machine-id", "/etc/machine-id", {"bind", "ro", "nosuid", "nodev", "noexec"}));

  // ---- /etc/resolv.conf -----------------------------------------------------------------
  {
    std::string mode = TRY(str("resolv_conf"));
    static const char* const kModes[] = {
        "off",          "copy-host",      "copy-static",    "copy-uplink",  "copy-stub",
        "replace-host", "replace-static", "replace-uplink", "replace-stub", "bind-host",
        "bind-static",  "bind-uplink",    "bind-stub",      "delete",       "auto"};
    if (!mode.empty() && std::find(std::begin(kModes), std::end(kModes), mode) == std::end(kModes))
      return fail_msg(f("resolv_conf"), ": \"", mode,
                      "\" is not a resolv.conf mode (off, copy-*, replace-*, bind-*, "
                      "delete, auto with host, static, uplink or stub)");
    if (mode == "delete")
      return fail_msg(f("resolv_conf"),
                      ": \"delete\" would remove /etc/resolv.conf from the image itself; husk "
                      "does not change images (use \"off\")");
    std::string generated;
    if ((mode.empty() || mode == "auto") && !task.dns_servers.empty()) {
      // Nomad's group dns block.
      for (auto& s : task.dns_servers) generated += "nameserver " + s + "\n";
      if (!task.dns_searches.empty()) {
        generated += "search";
        for (auto& s : task.dns_searches) generated += " " + s;
        generated += "\n";
      }
      if (!task.dns_options.empty()) {
        generated += "options";
        for (auto& s : task.dns_options) generated += " " + s;
        generated += "\n";
      }
      mode = "copy-generated";
    }
    if (mode.empty() || mode == "auto") {
      // nspawn's auto: the resolver list the task can reach. In its own
      // network namespace the host's 127.0.0.53 stub is out of reach.
      struct stat st;
      bool uplink = stat(opts.host_resolved_upstream.c_str(), &st) == 0;
      mode = own_netns && uplink ? "copy-uplink" : "copy-host";
    }
    if (mode != "off") {
      std::string how = mode.substr(0, mode.find('-')), which = mode.substr(mode.find('-') + 1);
      std::string from = which == "host"     ? opts.host_resolv_conf
                         : which == "static" ? std::string("/usr/lib/systemd/resolv.conf")
                         : which == "uplink" ? opts.host_resolved_upstream
                         : which == "stub"   ? opts.host_resolved_stub
                                             : std::string();
      if (how == "bind") {
        struct stat st;
        if (stat(from.c_str(), &st) != 0) return fail_sys(f("resolv_conf"), ": \"", mode, "\": ", from);
        spec.mounts.push_back(bind_mount(from, "/etc/resolv.conf", {"bind", "ro", "nosuid", "nodev", "noexec"}));
      } else {
        // copy and replace: the task's own copy (writable; never written
        // back into the image).
        std::string content = which == "generated" ? generated : read_host_file(from);
        TRYV_CTX(write_file(task_dir + "/resolv.conf", content), "write the task's resolv.conf");
        spec.mounts.push_back(
            bind_mount(task_dir + "/resolv.conf", "/etc/resolv.conf", {"bind", "rw", "nosuid", "nodev", "noexec"}));
      }
    }
  }

  // ---- ports ----------------------------------------------------------------------------
  {
    auto ports = TRY(strings("ports"));
    Value pm = TRY(merged_map(cfg["port_map"], f("port_map")));
    if (!ports.empty() && !pm.entries().empty())
      return fail_msg(f("ports"), ": cannot be combined with config.port_map");
    if (!ports.empty() && task.ports.empty()) return fail_msg(f("ports"), ": the group network block defines no ports");
    std::string forwards;
    auto forward = [&](const TaskPort& p, int64_t to) {
      if (!forwards.empty()) forwards += ",";
      if (!p.host_ip.empty())
        forwards += (p.host_ip.find(':') != std::string::npos ? "[" + p.host_ip + "]" : p.host_ip) + ":";
      forwards += cat(p.host_port, ":", to, "/tcp");  // nspawn -p defaults to tcp
    };
    for (size_t i = 0; i < ports.size(); i++) {
      const TaskPort* found = nullptr;
      for (const auto& p : task.ports)
        if (p.label == ports[i]) found = &p;
      if (!found) return fail_msg("config.ports[", i, "]: port \"", ports[i], "\" is not in the group network block");
      forward(*found, found->container_port ? found->container_port : found->host_port);
    }
    for (const auto& [label, v] : pm.entries()) {
      if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Float)
        return fail_msg(f("port_map"), ".", label, ": expected a port number");
      const TaskPort* found = nullptr;
      for (const auto& p : task.ports)
        if (p.label == label) found = &p;
      if (!found) return fail_msg(f("port_map"), ".", label, ": the task has no port labelled \"", label, "\"");
      forward(*found, v.as_int());
    }
    if (!forwards.empty()) {
      if (!own_netns)
        return fail_msg(ports.empty() ? f("port_map") : f("ports"),
                        ": publishing ports needs a network of the task's own (network_veth, network_bridge, "
                        "network_zone) or a group network");
      if (foreign_bridge)
        return fail_msg(ports.empty() ? f("port_map") : f("ports"), ": bridge \"", bridge,
                        "\" is not husk's, so husk does not know the address to forward ports to; use network_veth or "
                        "a bridge husk makes (a name no interface has yet)");
      // In a group network Nomad maps the ports; husk forwards its own.
      if (husk_network) spec.annotations["run.husk.ports"] = forwards;
    }
  }

  // ---- resources: nspawn's driver sets MemoryMax (and MemoryHigh with memory_max) -------
  {
    oci::MemoryResources mem;
    int64_t memory = task.memory_mb * 1024 * 1024, memory_max = task.memory_max_mb * 1024 * 1024;
    if (memory_max > 0) {
      mem.limit = memory_max;
      mem.reservation = memory;
    } else if (memory > 0) {
      mem.limit = memory;
    }
    if (mem.limit) lin.resources->memory = mem;
    oci::CpuResources cpu;
    if (task.linux_cpu_shares > 0) cpu.shares = static_cast<uint64_t>(task.linux_cpu_shares);
    if (!task.cpuset_cpus.empty()) cpu.cpus = task.cpuset_cpus;
    if (cpu.shares || cpu.cpus) lin.resources->cpu = cpu;
  }

  out.spec = std::move(spec);
  out.image_layers = {rootfs_dir};
  return out;
}

}  // namespace husk::driver::nspawn
