// Parent side of create, start and run.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "cgroups/rootless.h"
#include "oci/config.h"
#include "oci/tables.h"
#include "runtime/apparmor.h"
#include "runtime/container.h"
#include "runtime/container_internal.h"
#include "runtime/fuse_overlay.h"
#include "runtime/hooks.h"
#include "runtime/init.h"
#include "runtime/log.h"
#include "runtime/mount_api.h"
#include "runtime/notify.h"
#include "runtime/process.h"
#include "runtime/network.h"
#include "runtime/rootfs_overlay.h"
#include "runtime/seccomp.h"
#include "runtime/state_store.h"
#include "runtime/sync.h"
#include "runtime/terminal.h"
#include "runtime/userns.h"

namespace husk::runtime {

Result<std::string> state_json_for(const oci::Spec& spec, const std::string& id, pid_t pid, const std::string& bundle,
                                   oci::Status status) {
  oci::State st;
  st.oci_version = spec.oci_version;
  st.id = id;
  st.status = status;
  st.pid = pid;
  st.bundle = bundle;
  st.annotations = spec.annotations;
  return oci::emit_state(st);
}

// Undo a half-made container: whatever exists is removed.
struct CreateGuard {
  ContainerDir* dir = nullptr;
  cgroups::Manager* cgroup = nullptr;
  pid_t pid = 0;
  bool committed = false;
  std::string network_id;  // set once networking may have made something
  FuseServer fuse;          // the root's fuse-overlayfs, once started
  ~CreateGuard() {
    if (committed) return;
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    stop_fuse_overlayfs(fuse);
    if (dir && !network_id.empty()) detach_network(dir->path(), network_id);
    if (cgroup) (void)cgroup->destroy();
    if (dir) (void)dir->remove();
  }
};

namespace {

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;
constexpr uint64_t kClonePidfd = 0x00001000;

struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

std::string absolute(const std::string& base, const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  return base + "/" + p;
}

Result<std::string> real_dir(const std::string& p, const char* what) {
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) return fail_sys(what, " \"", p, "\"");
  struct stat st;
  if (stat(buf, &st) < 0) return fail_sys(what, " \"", p, "\"");
  if (!S_ISDIR(st.st_mode)) return fail_errno(ENOTDIR, what, " \"", p, "\"");
  return std::string(buf);
}

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What a spawned init needs from its parent, and what the parent keeps.
struct Spawned {
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd console_master;
};

Result<> check_spec(const oci::Spec& spec) {
  if (!spec.process) return fail_msg("process: required to create a container");
  if (!spec.linux) return fail_msg("linux: required to create a container on Linux");
  if (!spec.linux->has_namespace(oci::NamespaceType::Mount))
    return fail_msg("linux.namespaces: a mount namespace is required");
  if (spec.linux->has_namespace(oci::NamespaceType::User) == false &&
      (!spec.linux->uid_mappings.empty() || !spec.linux->gid_mappings.empty()))
    return fail_msg("linux.uidMappings: id mappings need a user namespace in linux.namespaces");
  const oci::Namespace* user = spec.linux->find_namespace(oci::NamespaceType::User);
  if (user && !user->path && (spec.linux->uid_mappings.empty() || spec.linux->gid_mappings.empty()))
    return fail_msg("linux.uidMappings: a new user namespace needs uidMappings and gidMappings");
  if (!spec.linux->time_offsets.empty() && !spec.linux->has_namespace(oci::NamespaceType::Time))
    return fail_msg("linux.timeOffsets: time offsets need a time namespace in linux.namespaces");
  // What husk cannot honour is refused, never silently dropped.
  if (spec.linux->intel_rdt) return fail_errno(ENOTSUP, "linux.intelRdt: Intel RDT (resctrl) is not supported by husk");
  if (!spec.linux->net_devices.empty())
    return fail_errno(ENOTSUP, "linux.netDevices: moving host network devices into a container is not supported by husk yet");
  if (auto a = spec.annotations.find(kRootfsIdmapAnnotation); a != spec.annotations.end()) {
    if (a->second != "true")
      return fail_msg("annotations.", kRootfsIdmapAnnotation, ": \"", a->second, "\" is not \"true\"");
    if (!user || user->path)
      return fail_msg("annotations.", kRootfsIdmapAnnotation,
                      ": an idmapped rootfs takes the maps of a new user namespace (linux.namespaces has none)");
  }
  if (auto a = spec.annotations.find(kRootfsOverlayAnnotation); a != spec.annotations.end()) {
    TRYV(parse_rootfs_overlay(a->second));
    if (spec.annotations.contains(kRootfsIdmapAnnotation))
      return fail_msg("annotations.", kRootfsOverlayAnnotation, ": the root is an overlay or an idmapped mount, not ",
                      "both (", kRootfsIdmapAnnotation, ")");
  }
  if (auto a = spec.annotations.find(kRootfsOverlayMountAnnotation); a != spec.annotations.end()) {
    TRYV(parse_overlay_mount(a->second));
    if (!spec.annotations.contains(kRootfsOverlayAnnotation))
      return fail_msg("annotations.", kRootfsOverlayMountAnnotation, ": says how to mount ", kRootfsOverlayAnnotation,
                      ", which the bundle does not set");
  }
  if (spec.process->apparmor_profile)
    TRYV(check_apparmor_profile(*spec.process->apparmor_profile, "process.apparmorProfile"));
  if (spec.process->selinux_label && !spec.process->selinux_label->empty())
    log::warning("process.selinuxLabel is not applied: husk does not implement SELinux labels");
  return {};
}

// crun's rule for an unprivileged caller: a spec without a user namespace
// gets one, and a new user namespace without maps maps the caller to 0 (the
// only ids it may map without a helper). Said once, as a warning.
void complete_rootless_userns(oci::Spec& spec) {
  if (geteuid() == 0 || !spec.linux) return;
  oci::Linux& l = *spec.linux;
  const oci::Namespace* user = l.find_namespace(oci::NamespaceType::User);
  if (user && user->path) return;
  bool added = !user;
  if (added) l.namespaces.push_back(oci::Namespace{oci::NamespaceType::User, std::nullopt});
  bool mapped = !l.uid_mappings.empty() || !l.gid_mappings.empty();
  if (!mapped) {
    l.uid_mappings = {oci::IdMapping{0, static_cast<uint32_t>(geteuid()), 1}};
    l.gid_mappings = {oci::IdMapping{0, static_cast<uint32_t>(getegid()), 1}};
  }
  if (added || !mapped)
    log::warning(
        cat("rootless: ", added ? "linux.namespaces has no user namespace: added one" : "linux.uidMappings is empty",
            mapped ? "" : cat(", mapping uid ", geteuid(), " and gid ", getegid(), " to 0 in the container"),
            " (`husk spec --rootless` writes a config with them)"));
}

// Fill cfg's namespace plan and return the clone3 flags for the fast path
// (0 flags and cfg.staged = true when the init must be staged).
Result<uint64_t> plan_namespaces(const oci::Spec& spec, InitConfig& cfg, std::vector<UniqueFd>& join_fds) {
  uint64_t flags = 0;
  bool joins = false, new_time = false;
  for (size_t i = 0; i < spec.linux->namespaces.size(); ++i) {
    const auto& ns = spec.linux->namespaces[i];
    int flag = oci::namespace_clone_flag(ns.type);
    if (ns.path) {
      int fd = ::open(ns.path->c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return fail_sys("linux.namespaces[", i, "].path: open \"", *ns.path, "\"");
      join_fds.emplace_back(fd);
      cfg.join.emplace_back(ns.type, fd);
      joins = true;
    } else {
      flags |= static_cast<uint64_t>(flag);
      if (ns.type == oci::NamespaceType::Time) new_time = true;
      if (ns.type == oci::NamespaceType::User) cfg.new_userns = true;
    }
  }
  cfg.unshare_flags = flags;
  cfg.staged = joins || new_time;
  return cfg.staged ? 0 : flags;
}

// NOTIFY_SOCKET (systemd Type=notify): a socket is bound into the container
// and the container's process gets NOTIFY_SOCKET pointing at it: the
// caller's own, or (foreground run) the relay's (notify.h).
void add_notify_socket(oci::Spec& spec, std::vector<std::string>& extra_env, const std::string& sock) {
  if (sock.empty() || sock[0] != '/') return;
  oci::Mount m;
  m.destination = "/run/notify/notify.sock";
  m.type = "bind";
  m.source = sock;
  m.options = {"bind", "nosuid", "nodev", "noexec"};
  spec.mounts.push_back(m);
  extra_env.push_back("NOTIFY_SOCKET=/run/notify/notify.sock");
}

// Socket activation: LISTEN_FDS from our caller go to the container as the
// first preserved fds.
int add_listen_fds(std::vector<std::string>& extra_env) {
  const char* n = getenv("LISTEN_FDS");
  if (!n) return 0;
  int count = atoi(n);
  if (count <= 0) return 0;
  extra_env.push_back(cat("LISTEN_FDS=", count));
  extra_env.push_back("LISTEN_PID=1");
  return count;
}

// A container in a user namespace of its own with a cgroup namespace owns
// its cgroup, as crun and systemd-nspawn make it: the directory and the
// files /sys/kernel/cgroup/delegate lists go to the host id of the
// container's root, so a booted systemd can manage its subtree.
Result<> delegate_cgroup_to_container_root(const std::string& dir, const oci::Spec& spec) {
  const oci::Linux& l = *spec.linux;
  if (dir.empty() || geteuid() != 0 || !l.has_namespace(oci::NamespaceType::Cgroup)) return {};
  const oci::Namespace* user = l.find_namespace(oci::NamespaceType::User);
  if (!user || user->path) return {};
  auto host_of_root = [](const std::vector<oci::IdMapping>& maps) -> std::optional<uint32_t> {
    for (const auto& m : maps)
      if (m.container_id == 0 && m.size > 0) return m.host_id;
    return std::nullopt;
  };
  auto uid = host_of_root(l.uid_mappings), gid = host_of_root(l.gid_mappings);
  if (!uid || !gid || (*uid == 0 && *gid == 0)) return {};
  std::vector<std::string> files = {""};
  auto listed = read_file("/sys/kernel/cgroup/delegate");
  std::string names = listed ? *listed : "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\n";
  size_t i = 0;
  while (i < names.size()) {
    size_t j = names.find('\n', i);
    if (j == std::string::npos) j = names.size();
    if (j > i) files.push_back(names.substr(i, j - i));
    i = j + 1;
  }
  for (const auto& f : files) {
    std::string path = f.empty() ? dir : dir + "/" + f;
    if (::chown(path.c_str(), *uid, *gid) < 0 && !(errno == ENOENT && !f.empty()))
      return fail_sys("give the container's root (uid ", *uid, ") its cgroup: chown ", path);
  }
  return {};
}

// The systemd manager's scope is started around the new init, which waits
// (CgroupReady) before it does anything else; then the limits go in.
Result<> place_in_cgroup(const Created& c, pid_t pid, int sock) {
  TRYV_CTX(c.cgroup->add_process(pid), "create the container's cgroup");
  TRYV(c.cgroup->apply(c.spec->linux->resources ? *c.spec->linux->resources : oci::Resources{}));
  return sync_send(sock, SyncType::CgroupReady);
}

Result<Spawned> spawn_init(InitConfig& cfg, const Created& c, uint64_t fast_flags, int cgroup_fd,
                           const std::string& console_socket, bool keep_console) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return fail_sys("socketpair");
  UniqueFd parent_sock(sv[0]), child_sock(sv[1]);
  cfg.sync_fd = child_sock.get();

  CloneArgs args = {};
  int pidfd = -1;
  args.flags = (cfg.staged ? 0 : fast_flags) | kClonePidfd;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (cgroup_fd >= 0) {
    args.flags |= kCloneIntoCgroup;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  pid_t pid = static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof args));
  if (pid < 0 && errno == EINVAL && cgroup_fd >= 0) {
    // Kernels before 5.7: clone, then move the process in.
    args.flags &= ~kCloneIntoCgroup;
    pid = static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof args));
  }
  if (pid < 0) return fail_sys("clone the container process");
  if (pid == 0) {
    parent_sock.reset();
    container_init(cfg);
  }
  Spawned sp;
  sp.pid = pid;
  sp.pidfd.reset(pidfd);
  child_sock.reset();
  c.guard->pid = pid;
  const int sock = parent_sock.get();
  const oci::Spec& spec = *c.spec;
  if (cfg.wait_for_cgroup) TRYV(place_in_cgroup(c, pid, sock));

  UniqueFd userns;  // the init's, once it has one
  const std::string fuse_log = c.dir->path() + "/fuse-overlayfs.log";
  for (;;) {
    SyncMsg msg = TRY(sync_recv(sock));
    switch (msg.type) {
      case SyncType::Error: {
        Error e(msg.err, msg.payload);
        if (c.guard->fuse.pid > 0)
          if (std::string said = fuse_overlayfs_log(fuse_log); !said.empty()) e.context(cat("fuse-overlayfs: ", said));
        return fail(std::move(e));
      }
      case SyncType::NamespacesReady: {
        TRYV(write_id_maps(pid, spec.linux->uid_mappings, spec.linux->gid_mappings));
        // In its new user namespace the child may not raise a hard limit
        // or write its oom_score_adj: they are set from here, in husk's
        // (the staged path's real init inherits them from this process).
        if (spec.process) TRYV(apply_outside_limits(pid, *spec.process));
        // An idmapped rootfs is made here, in the initial user namespace
        // (the child may not idmap a host filesystem), with the child's
        // namespace as its mapping; the child attaches it.
        UniqueFd rootfs_tree;
        // Also for a fuse-overlayfs root: its server serves that namespace.
        if (spec.annotations.contains(kRootfsIdmapAnnotation) || spec.annotations.contains(kRootfsOverlayAnnotation))
          userns = TRY(open_fd(cat("/proc/", pid, "/ns/user"), O_RDONLY | O_CLOEXEC));
        if (spec.annotations.contains(kRootfsIdmapAnnotation)) rootfs_tree = TRY(idmapped_rootfs(cfg.rootfs, userns.get()));
        TRYV(sync_send(sock, SyncType::IdMapsWritten, {}, rootfs_tree ? rootfs_tree.get() : -1));
        break;
      }
      case SyncType::InitPid: {
        pid_t init = static_cast<pid_t>(atoi(msg.payload.c_str()));
        waitpid(pid, nullptr, 0);  // the intermediate stage is done
        sp.pid = init;
        c.guard->pid = init;
        int fd = static_cast<int>(syscall(SYS_pidfd_open, init, 0));
        if (fd < 0) return fail_sys("pidfd_open the container init");
        sp.pidfd.reset(fd);
        TRYV(sync_send(sock, SyncType::Continue));
        break;
      }
      case SyncType::RunCreateRuntime: {
        TRYV(delegate_cgroup_to_container_root(c.cgroup->path(), spec));
        if (c.attach_network) TRYV(c.attach_network(sp.pid, msg.fd.get()));
        std::string st = TRY(state_json_for(spec, c.id, sp.pid, c.bundle, oci::Status::Creating));
        if (spec.hooks) {
          TRYV(run_hooks(spec.hooks->prestart, "prestart", st));
          TRYV(run_hooks(spec.hooks->create_runtime, "createRuntime", st));
        }
        TRYV(sync_send(sock, SyncType::HooksDone, st));
        break;
      }
      case SyncType::ConsoleFd:
        if (!console_socket.empty()) TRYV(send_console(console_socket, msg.fd.get()));
        if (keep_console) sp.console_master = std::move(msg.fd);
        break;
      case SyncType::NotifyFd: {
        const auto& sc = *spec.linux->seccomp;
        if (!sc.listener_path) return fail_msg("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
        std::string st = TRY(state_json_for(spec, c.id, sp.pid, c.bundle, oci::Status::Creating));
        std::string msg_json = cat("{\"ociVersion\":\"", spec.oci_version, "\",\"fds\":[\"seccompFd\"],\"pid\":", sp.pid,
                                   ",\"metadata\":\"", log::json_escape(sc.listener_metadata.value_or("")),
                                   "\",\"state\":", st, "}");
        TRYV_CTX(send_seccomp_listener(*sc.listener_path, msg.fd.get(), msg_json), "linux.seccomp.listenerPath");
        break;
      }
      case SyncType::MountFuseOverlay: {
        if (!msg.payload.empty())
          log::warning(cat("this kernel refused overlayfs in the container's user namespace (", msg.payload,
                           "): its root is mounted with fuse-overlayfs"));
        auto ov = TRY(parse_rootfs_overlay(spec.annotations.at(kRootfsOverlayAnnotation)));
        FuseLaunch launch = TRY(FuseLaunch::prepare(userns.get(), ov, fuse_log));
        TRYV(sync_send(sock, SyncType::Continue, {}, launch.fuse_fd()));
        TRYV(sync_expect(sock, SyncType::FuseMounted));
        c.guard->fuse = TRY(launch.go());
        TRYV(sync_send(sock, SyncType::Continue));
        break;
      }
      case SyncType::Ready:
        return sp;
      default:
        return fail_errno(EPROTO, "unexpected message from the container process");
    }
  }
}

}  // namespace

namespace {

cgroups::Options cgroup_options(const GlobalOptions& g, const oci::Spec& spec, const std::string& id, bool rootless) {
  cgroups::Options co;
  co.kind = g.cgroup_manager;
  co.container_id = id;
  co.cgroups_path = spec.linux && spec.linux->cgroups_path ? *spec.linux->cgroups_path : "";
  co.rootless = rootless;
  if (spec.linux) co.devices = spec.linux->devices;
  return co;
}

}  // namespace

Result<std::unique_ptr<cgroups::Manager>> make_cgroup(const GlobalOptions& g, const oci::Spec& spec,
                                                      const std::string& id, bool rootless) {
  return cgroups::make_manager(cgroup_options(g, spec, id, rootless));
}

Result<Created> create_container(const GlobalOptions& g, const CreateOptions& o, bool keep_console) {
  TRYV(validate_container_id(o.id));
  if (o.preserve_fds < 0) return fail_msg("--preserve-fds: must not be negative");
  std::string bundle = TRY(real_dir(o.bundle, "bundle"));
  std::string config_path = o.config.empty() ? bundle + "/config.json" : absolute(bundle, o.config);
  std::string raw = TRY_CTX(read_file(config_path), "load ", config_path);
  auto spec = std::make_unique<oci::Spec>(TRY_CTX(oci::parse_config(raw), config_path));
  complete_rootless_userns(*spec);
  TRYV_CTX(check_spec(*spec), config_path);
  if (spec->linux->has_namespace(oci::NamespaceType::User))
    TRYV_CTX(check_id_maps(spec->linux->uid_mappings, spec->linux->gid_mappings), config_path);
  bool rootless = is_rootless(g);
  net::Config net_cfg = TRY_CTX(network_config(o.network, *spec, raw, rootless), config_path);
  if (spec->process->terminal && o.console_socket.empty() && !keep_console)
    return fail_msg("process.terminal is true but no --console-socket was given to receive the terminal");
  std::string rootfs = TRY_CTX(real_dir(absolute(bundle, spec->root.path), "root.path"), config_path);

  Created c;
  c.id = o.id;
  c.bundle = bundle;
  c.spec = std::move(spec);
  c.guard = std::make_unique<CreateGuard>();
  StateStore store = TRY(open_store(g));
  c.dir = std::make_unique<ContainerDir>(TRY(store.create(o.id)));
  c.guard->dir = c.dir.get();
  // No fsync: the copy never changes, and a create cut short leaves a
  // directory without a state file, which every command treats as absent.
  {
    UniqueFd cfg_fd = TRY(open_fd(c.dir->config_path(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    TRYV_CTX(write_all(cfg_fd.get(), raw), "write ", c.dir->config_path());
  }
  if (mkfifo(c.dir->fifo_path().c_str(), 0600) < 0) return fail_sys("mkfifo ", c.dir->fifo_path());
  UniqueFd fifo = TRY(open_fd(c.dir->fifo_path(), O_PATH));
  // The init opens it for writing as the container's user (through its
  // O_PATH fd: the state directory stays closed to that user), as runc does.
  if (chmod(c.dir->fifo_path().c_str(), 0622) < 0) return fail_sys("chmod ", c.dir->fifo_path());

  if (net_cfg.requested()) {
    TRYV(plan_network(net_cfg, *c.spec, store, *c.dir));
    c.guard->network_id = o.id;
    c.attach_network = [&c, net_cfg, &store, rootless](pid_t pid, int netns_fd) {
      return attach_network(net_cfg, *c.spec, store, *c.dir, c.id, rootless, pid, netns_fd);
    };
  }
  if (rootless && g.cgroup_manager == cgroups::ManagerKind::Fs) {
    cgroups::Options co = cgroup_options(g, *c.spec, o.id, rootless);
    const oci::Resources* res = c.spec->linux->resources ? &*c.spec->linux->resources : nullptr;
    auto made = TRY_CTX(cgroups::make_rootless_cgroup(co, res), "create the container's cgroup");
    if (!made.warning.empty()) log::warning(made.warning);
    c.cgroup = std::move(made.manager);
  } else {
    c.cgroup = TRY(make_cgroup(g, *c.spec, o.id, rootless));
    TRYV_CTX(c.cgroup->create(), "create the container's cgroup");
  }
  c.guard->cgroup = c.cgroup.get();
  // cgroupfs: the cgroup exists now and the init is cloned into it. A
  // systemd scope is made around the init once it exists (spawn_init).
  const bool cgroup_after_clone = c.cgroup->creation() == cgroups::Creation::AroundProcess;
  UniqueFd cgroup_fd;
  if (!cgroup_after_clone) {
    // Without linux.resources too: the device program is always installed
    // (deny all but the default devices), as runc does.
    TRYV(c.cgroup->apply(c.spec->linux->resources ? *c.spec->linux->resources : oci::Resources{}));
    if (!c.cgroup->path().empty()) cgroup_fd = TRY(c.cgroup->open_dir());
  }

  InitConfig cfg;
  cfg.spec = c.spec.get();
  cfg.rootfs = rootfs;
  cfg.bundle = bundle;
  cfg.fifo_fd = fifo.get();
  cfg.terminal = c.spec->process->terminal;
  cfg.no_pivot = o.no_pivot;
  cfg.rootless = rootless;
  cfg.no_new_keyring = o.no_new_keyring;
  cfg.session_keyring = "_ses." + o.id;
  cfg.send_netns = net_cfg.configures_interfaces() || net_cfg.mode == net::Mode::None;
  std::string notify = notify_target();
  if (keep_console && !notify.empty()) {
    c.notify = std::make_unique<NotifyRelay>(TRY(NotifyRelay::open(c.dir->path() + "/notify.sock", notify)));
    notify = c.notify->path();
  }
  add_notify_socket(*c.spec, cfg.extra_env, notify);
  cfg.preserve_fds = o.preserve_fds + add_listen_fds(cfg.extra_env);
  std::vector<UniqueFd> join_fds;
  uint64_t fast_flags = TRY(plan_namespaces(*c.spec, cfg, join_fds));
  if (cgroup_after_clone) {
    cfg.wait_for_cgroup = true;
    // A cgroup namespace is rooted at the cgroup its creator is in: it is
    // made once the init sits in its scope.
    if (fast_flags & CLONE_NEWCGROUP) {
      fast_flags &= ~static_cast<uint64_t>(CLONE_NEWCGROUP);
      cfg.unshare_cgroupns = true;
    }
  }

  Spawned sp = TRY(spawn_init(cfg, c, fast_flags, cgroup_fd.get(), o.console_socket, keep_console));
  c.attach_network = nullptr;  // it refers to locals of this function
  if (cgroup_fd && c.cgroup->pids().value_or(std::vector<pid_t>{}).empty()) TRYV(c.cgroup->add_process(sp.pid));
  c.pid = sp.pid;
  c.pidfd = std::move(sp.pidfd);
  c.console_master = std::move(sp.console_master);

  ContainerRecord rec;
  rec.id = o.id;
  rec.bundle = bundle;
  rec.rootfs = rootfs;
  rec.pid = sp.pid;
  rec.pid_start = process_start_time(sp.pid);
  rec.cgroup_path = c.cgroup->path();
  rec.systemd_scope = c.cgroup->unit();
  rec.fuse_pid = c.guard->fuse.pid;
  rec.fuse_start = c.guard->fuse.start;
  rec.cgroup_manager = g.cgroup_manager == cgroups::ManagerKind::Systemd ? "systemd"
                       : g.cgroup_manager == cgroups::ManagerKind::Disabled ? "disabled" : "fs";
  rec.created = now_ns();
  rec.rootless = rootless;
  rec.owner = geteuid();
  TRYV(c.dir->save(rec));
  if (!o.pid_file.empty()) TRYV_CTX(write_file_atomic(absolute(get_cwd(), o.pid_file), std::to_string(sp.pid), 0644), "--pid-file");
  c.record = rec;
  return c;
}

void Created::commit() { guard->committed = true; }
Created::Created() = default;
Created::~Created() = default;
Created::Created(Created&&) noexcept = default;

Result<> start_created(ContainerDir& dir, const ContainerRecord& rec, const oci::Spec& spec) {
  if (access(dir.fifo_path().c_str(), F_OK) < 0 && errno == ENOENT)
    return fail_msg("container \"", rec.id, "\" was already started");
  // The pidfd first: once the fifo has a reader the process runs, and a
  // short one (/bin/true) may be gone before we could look at it.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, rec.pid, 0));
  if (pidfd < 0 || !process_alive(rec.pid, rec.pid_start)) {
    if (pidfd >= 0) ::close(pidfd);
    return fail_errno(ESRCH, "container \"", rec.id, "\" is stopped: its process exited before start");
  }
  UniqueFd owned_pidfd(pidfd);
  int fd = ::open(dir.fifo_path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fail_msg("container \"", rec.id, "\" was already started");
    return fail_sys("open ", dir.fifo_path());
  }
  UniqueFd fifo(fd);
  // The init writes one byte once its startContainer hooks ran, and the
  // fifo closes when it execs (close-on-exec): then the process runs.
  struct pollfd fds[2] = {{fifo.get(), POLLIN, 0}, {pidfd, POLLIN, 0}};
  bool got_byte = false;
  for (;;) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_sys("wait for the container process");
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char c;
      ssize_t r = ::read(fifo.get(), &c, 1);
      if (r == 1) {
        got_byte = true;
        continue;
      }
      if (r == 0) {
        if (!got_byte) return fail_errno(ESRCH, "container \"", rec.id, "\": its process failed before start");
        break;
      }
    }
    if (fds[1].revents & POLLIN) {
      if (got_byte) break;  // exec'd and already exited
      return fail_errno(ESRCH, "container \"", rec.id, "\": its process exited before start");
    }
  }
  // "created" is "exec.fifo exists": removing it is what records the start.
  ::unlink(dir.fifo_path().c_str());
  if (spec.hooks && !spec.hooks->poststart.empty()) {
    std::string st = TRY(state_json_for(spec, rec.id, rec.pid, rec.bundle, oci::Status::Running));
    if (auto r = run_hooks(spec.hooks->poststart, "poststart", st); !r) log::warning(r.error().str());
  }
  return {};
}

Result<> create(const GlobalOptions& g, const CreateOptions& o) {
  Created c = TRY(create_container(g, o, false));
  c.commit();
  return {};
}

Result<> start(const GlobalOptions& g, const std::string& id) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  bool fifo = access(dir.fifo_path().c_str(), F_OK) == 0;
  oci::Status st = derive_status(rec, fifo, false);
  if (st != oci::Status::Created)
    return fail_msg("container \"", id, "\" is ", oci::status_name(st), ": only a created container can be started");
  oci::Spec spec = TRY(load_saved_spec(dir));
  return start_created(dir, rec, spec);
}

// Forward the signals a foreground runtime receives to the container init,
// proxy the terminal, and return the exit status.
Result<int> wait_foreground(pid_t pid, int pidfd, int master, NotifyRelay* notify) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGCHLD})
    sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return fail_sys("signalfd");
  UniqueFd sig_fd(sfd);
  bool stdin_open = master >= 0;
  char buf[16384];
  for (;;) {
    struct pollfd fds[5] = {{pidfd, POLLIN, 0},
                            {sfd, POLLIN, 0},
                            {master, POLLIN, 0},
                            {stdin_open ? 0 : -1, POLLIN, 0},
                            {notify ? notify->fd() : -1, POLLIN, 0}};
    int n = poll(fds, 5, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_sys("poll");
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == sizeof si) {
        int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) continue;
        if (sig == SIGWINCH && master >= 0) {
          struct winsize ws;
          if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
          continue;
        }
        syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
      }
    }
    if (master >= 0 && (fds[2].revents & (POLLIN | POLLHUP))) {
      ssize_t r = ::read(master, buf, sizeof buf);
      if (r > 0) (void)write_all(1, std::string_view(buf, static_cast<size_t>(r)));
    }
    if (stdin_open && (fds[3].revents & (POLLIN | POLLHUP))) {
      ssize_t r = ::read(0, buf, sizeof buf);
      if (r > 0) (void)write_all(master, std::string_view(buf, static_cast<size_t>(r)));
      else stdin_open = false;
    }
    if (fds[4].revents & POLLIN) notify->forward();
    if (fds[0].revents & POLLIN) break;
  }
  // Drain what the terminal still holds.
  if (master >= 0) {
    fcntl(master, F_SETFL, O_NONBLOCK);
    ssize_t r;
    while ((r = ::read(master, buf, sizeof buf)) > 0) (void)write_all(1, std::string_view(buf, static_cast<size_t>(r)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_sys("wait for the container process");
  }
  sigprocmask(SIG_UNBLOCK, &mask, nullptr);
  return status;
}

Result<int> run(const GlobalOptions& g, const CreateOptions& o) {
  if (o.detach && !o.log.name.empty())
    return fail_msg("--log-driver: a detached run has no monitor to forward the container's output; run it in the foreground");
  if (o.detach) {
    Created c = TRY(create_container(g, o, false));
    TRYV(start_created(*c.dir, c.record, *c.spec));
    c.commit();
    return 0;
  }
  // First, so that the container inherits the pipes as its stdout and
  // stderr, and an unreachable log destination fails before it exists.
  std::optional<LogForwarder> forwarder;
  if (!o.log.name.empty()) forwarder.emplace(TRY(LogForwarder::start(o.log, o.id)));
  Created c = TRY(create_container(g, o, true));
  c.commit();
  struct termios saved;
  bool raw = c.console_master && isatty(0) && tcgetattr(0, &saved) == 0;
  if (auto r = start_created(*c.dir, c.record, *c.spec); !r) {
    (void)destroy_container(*c.dir, c.record, true);
    return fail(r.error());
  }
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(0, TCSANOW, &t);
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(c.console_master.get(), TIOCSWINSZ, &ws);
  }
  c.dir->unlock();  // other commands (exec, kill, state) work while it runs
  auto waited = wait_foreground(c.pid, c.pidfd.get(), c.console_master.get(), c.notify.get());
  if (raw) tcsetattr(0, TCSANOW, &saved);
  if (!waited) return fail(waited.error());
  int status = WIFSIGNALED(*waited) ? 128 + WTERMSIG(*waited) : WEXITSTATUS(*waited);
  // The last lines reach the log driver before whoever waits for this
  // process learns that the container ended.
  if (forwarder) forwarder->finish(5000);
  // Back under the lock before touching the directory: a `delete --force`
  // that killed the container may be removing it right now, and writes
  // here would race its removal.
  bool present = TRY_CTX(c.dir->relock(), "lock container \"", o.id, "\" after it exited");
  if (!present) return status;
  if (o.keep) {
    // A kept container remembers how it ended, for whoever supervises it
    // (the Nomad driver): exit code, signal, and whether the OOM killer
    // struck in its cgroup.
    ExitStatus e;
    e.exit_code = WIFEXITED(*waited) ? WEXITSTATUS(*waited) : 128 + WTERMSIG(*waited);
    e.signal = WIFSIGNALED(*waited) ? WTERMSIG(*waited) : 0;
    if (auto st = c.cgroup->stats(); st && st->memory) e.oom_killed = st->memory->oom_kill > 0;
    TRYV_CTX(record_exit_status(*c.dir, e), "record the exit status of container \"", o.id, "\"");
  } else if (auto rec = c.dir->load(); rec) {
    (void)destroy_container(*c.dir, *rec, true);
  }
  return status;
}

}  // namespace husk::runtime
