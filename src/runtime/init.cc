#include "runtime/init.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.h"
#include "common/program.h"
#include "oci/tables.h"
#include "runtime/fuse_overlay.h"
#include "runtime/hooks.h"
#include "runtime/mounts.h"
#include "runtime/paths.h"
#include "runtime/process.h"
#include "runtime/rootfs_overlay.h"
#include "runtime/apparmor.h"
#include "runtime/seccomp.h"
#include "runtime/sync.h"
#include "runtime/terminal.h"

namespace husk::runtime {
namespace {

// The idmapped rootfs the parent made (annotation run.husk.rootfs.idmap),
// received with IdMapsWritten; this is the child's own copy of husk.
UniqueFd idmapped_rootfs_tree;

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

Result<> reset_signals() {
  default_signals();
  return {};
}

Result<> join_namespaces(const InitConfig& cfg) {
  // The user namespace first: joining the others may need its privileges.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [type, fd] : cfg.join) {
      bool is_user = type == oci::NamespaceType::User;
      if ((pass == 0) != is_user) continue;
      if (setns(fd, oci::namespace_clone_flag(type)) < 0)
        return fail_sys("linux.namespaces: join ", oci::namespace_name(type), " namespace");
    }
  }
  return {};
}

Result<> become_root_in_userns() {
  // After the maps are written: container uid/gid 0 when the map has it.
  if (setresgid(0, 0, 0) < 0 && errno != EINVAL) return fail_sys("setresgid 0 in the user namespace");
  if (setresuid(0, 0, 0) < 0 && errno != EINVAL) return fail_sys("setresuid 0 in the user namespace");
  return {};
}

Result<> write_time_offsets(const oci::Linux& linux) {
  std::string s;
  for (const auto& [clock, off] : linux.time_offsets) s += cat(clock, " ", off.secs, " ", off.nanosecs, "\n");
  if (s.empty()) return {};
  TRYV_CTX(write_file("/proc/self/timens_offsets", s), "linux.timeOffsets");
  return {};
}

Result<> set_hostname(const oci::Spec& spec) {
  bool uts = spec.linux && spec.linux->has_namespace(oci::NamespaceType::Uts);
  if (spec.hostname) {
    if (!uts) return fail_msg("hostname: cannot set the hostname without a UTS namespace in linux.namespaces");
    if (sethostname(spec.hostname->c_str(), spec.hostname->size()) < 0)
      return fail_sys("hostname: sethostname \"", *spec.hostname, "\"");
  }
  if (spec.domainname) {
    if (!uts) return fail_msg("domainname: cannot set the domain name without a UTS namespace in linux.namespaces");
    if (setdomainname(spec.domainname->c_str(), spec.domainname->size()) < 0)
      return fail_sys("domainname: setdomainname \"", *spec.domainname, "\"");
  }
  return {};
}

// Through the container's own /proc (proc_root = "<rootfs>/proc", before
// pivot_root): sysctls go in before the read-only paths (podman makes
// /proc/sys read-only and still sets sysctls).
Result<> apply_sysctl(const oci::Linux& linux, const std::string& proc_root) {
  for (const auto& [key, value] : linux.sysctl) {
    if (key.find("..") != std::string::npos || key.find('/') != std::string::npos)
      return fail_msg("linux.sysctl: invalid key \"", key, "\"");
    std::string rel = key;
    for (auto& c : rel)
      if (c == '.') c = '/';
    TRYV_CTX(write_file(proc_root + "/sys/" + rel, value), "linux.sysctl.", key);
  }
  return {};
}

// "0-2,5" -> a node bitmask for set_mempolicy.
Result<std::vector<unsigned long>> node_mask(const std::string& list) {
  std::vector<unsigned long> mask(16, 0);  // 1024 nodes
  const size_t bits = sizeof(unsigned long) * 8;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    std::string part = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? list.size() : comma + 1;
    char* end;
    long lo = strtol(part.c_str(), &end, 10), hi = lo;
    if (*end == '-') hi = strtol(end + 1, &end, 10);
    if (part.empty() || *end || lo < 0 || hi < lo || static_cast<size_t>(hi) >= mask.size() * bits)
      return fail_msg("linux.memoryPolicy.nodes: bad node list \"", list, "\"");
    for (long n = lo; n <= hi; ++n) mask[static_cast<size_t>(n) / bits] |= 1UL << (static_cast<size_t>(n) % bits);
  }
  return mask;
}

Result<> apply_memory_policy(const oci::MemoryPolicy& mp) {
  static const std::pair<const char*, int> kModes[] = {
      {"MPOL_DEFAULT", 0}, {"MPOL_PREFERRED", 1}, {"MPOL_BIND", 2}, {"MPOL_INTERLEAVE", 3},
      {"MPOL_LOCAL", 4},   {"MPOL_PREFERRED_MANY", 5}, {"MPOL_WEIGHTED_INTERLEAVE", 6}};
  int mode = 0;
  for (const auto& [n, v] : kModes)
    if (mp.mode == n) mode = v;
  for (const auto& f : mp.flags) {
    if (f == "MPOL_F_STATIC_NODES") mode |= 1 << 15;
    else if (f == "MPOL_F_RELATIVE_NODES") mode |= 1 << 14;
    else if (f == "MPOL_F_NUMA_BALANCING") mode |= 1 << 13;
  }
  std::vector<unsigned long> mask;
  if (mp.nodes) mask = TRY(node_mask(*mp.nodes));
  long rc = syscall(SYS_set_mempolicy, mode, mask.empty() ? nullptr : mask.data(),
                    mask.empty() ? 0UL : mask.size() * sizeof(unsigned long) * 8);
  if (rc < 0) return fail_sys("linux.memoryPolicy: set_mempolicy ", mp.mode);
  return {};
}

Result<> apply_personality(const oci::Linux& linux) {
  if (!linux.personality) return {};
  unsigned long persona = linux.personality->domain == "LINUX32" ? PER_LINUX32 : PER_LINUX;
  if (personality(persona) < 0) return fail_sys("linux.personality: personality ", linux.personality->domain);
  return {};
}

// Everything after the namespaces exist, in the real init.
Result<> setup_container(const InitConfig& cfg, int sync, std::string& state_json, UniqueFd& console_slave) {
  const oci::Spec& spec = *cfg.spec;
  if (cfg.send_netns) {
    // Ours to open (we are not dumpable: others may not open our /proc).
    UniqueFd netns = TRY(open_fd("/proc/self/ns/net", O_RDONLY));
    TRYV(sync_send(sync, SyncType::RunCreateRuntime, {}, netns.get()));
  } else {
    TRYV(sync_send(sync, SyncType::RunCreateRuntime));
  }
  state_json = TRY(sync_expect(sync, SyncType::HooksDone)).payload;

  if (!cfg.no_new_keyring) {
    // A fresh session keyring, so the container does not see the caller's keys.
    if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, cfg.session_keyring.c_str()) < 0 && errno != ENOSYS &&
        errno != EDQUOT && errno != EACCES && errno != EPERM)
      return fail_sys("join a new session keyring");
  }

  RootfsOptions ro;
  ro.rootfs = cfg.rootfs;
  ro.rootfs_tree = idmapped_rootfs_tree.get();
  if (auto a = spec.annotations.find(kRootfsOverlayAnnotation); a != spec.annotations.end()) {
    ro.overlay = TRY(parse_rootfs_overlay(a->second));
    if (auto m = spec.annotations.find(kRootfsOverlayMountAnnotation); m != spec.annotations.end())
      ro.overlay_mount = TRY(parse_overlay_mount(m->second));
    ro.mount_overlay_outside = [sync, rootfs = cfg.rootfs](const std::string& refused) -> Result<> {
      // The FUSE mount is ours to make (here, in our namespaces); its
      // server is the parent's to run (runtime/fuse_overlay.h).
      TRYV(sync_send(sync, SyncType::MountFuseOverlay, refused));
      SyncMsg m = TRY(sync_expect(sync, SyncType::Continue));
      if (!m.fd) return fail_errno(EPROTO, "no /dev/fuse fd from husk");
      TRYV(mount_fuse_root(rootfs, m.fd.get()));
      m.fd.reset();  // the server's alone: if it dies, the mount fails rather than hangs
      TRYV(sync_send(sync, SyncType::FuseMounted));
      TRYV(sync_expect(sync, SyncType::Continue));
      struct stat st;
      if (stat(rootfs.c_str(), &st) < 0) return fail_sys("the fuse-overlayfs server does not answer for ", rootfs);
      return {};
    };
  }
  ro.no_pivot = cfg.no_pivot;
  ro.rootless = cfg.rootless;
  // Rootless also covers husk run as root of a user namespace it did not
  // make (podman's): the same mounts are refused there.
  ro.in_user_namespace =
      cfg.new_userns || cfg.rootless || (spec.linux && spec.linux->find_namespace(oci::NamespaceType::User) != nullptr);
  ro.new_net_namespace = spec.linux && spec.linux->has_namespace(oci::NamespaceType::Network);
  ro.before_pivot = [&]() -> Result<> {
    if (cfg.terminal) {
      Pty pty = TRY_CTX(open_pty(cfg.rootfs + "/dev/ptmx"), "process.terminal");
      if (spec.process->console_size)
        TRYV(set_window_size(pty.master.get(), spec.process->console_size->height, spec.process->console_size->width));
      UniqueFd root = TRY(open_fd(cfg.rootfs, O_PATH | O_DIRECTORY));
      UniqueFd console = TRY(touch_in_root(root.get(), "/dev/console", 0600));
      if (mount(fd_path(pty.slave.get()).c_str(), fd_path(console.get()).c_str(), nullptr, MS_BIND, nullptr) < 0)
        return fail_sys("bind the pty onto /dev/console");
      TRYV(sync_send(sync, SyncType::ConsoleFd, {}, pty.master.get()));
      console_slave = std::move(pty.slave);
    }
    if (spec.linux && !spec.linux->sysctl.empty()) TRYV(apply_sysctl(*spec.linux, cfg.rootfs + "/proc"));
    if (spec.hooks) TRYV(run_hooks(spec.hooks->create_container, "createContainer", state_json));
    return {};
  };
  TRYV(setup_rootfs(spec, ro));
  TRYV(set_hostname(spec));
  if (spec.linux) {
    TRYV(apply_personality(*spec.linux));
    if (spec.linux->memory_policy) TRYV(apply_memory_policy(*spec.linux->memory_policy));
  }
  return {};
}

[[noreturn]] void fail_child(int sync, const Error& e) {
  sync_send_error(sync, e);
  _exit(1);
}

struct Prepared {
  UniqueFd trampoline;
  std::string path;
  const oci::Seccomp* deferred_seccomp = nullptr;
};

bool uses_notify(const oci::Seccomp& s) {
  if (s.default_action == oci::SeccompAction::Notify) return true;
  for (const auto& c : s.syscalls)
    if (c.action == oci::SeccompAction::Notify) return true;
  return false;
}

// From the namespaces to "blocked on exec.fifo": every failure here reaches
// `create` over the sync socket.
Result<Prepared> prepare(const InitConfig& cfg, oci::Process& process, std::string& state_json) {
  const int sync = cfg.sync_fd;
  const oci::Spec& spec = *cfg.spec;
  UniqueFd console_slave;
  TRYV(setup_container(cfg, sync, state_json, console_slave));
  // With a new user namespace, create set rlimits and oom_score_adj from outside.
  TRYV(apply_process_limits(process, cfg.new_userns));
  Prepared p;
  p.trampoline = TRY(make_trampoline());
  p.path = TRY(find_executable(process));
  if (console_slave) {
    TRYV(attach_terminal(console_slave.get()));
    console_slave.reset();
  }
  const oci::Seccomp* seccomp = spec.linux && spec.linux->seccomp ? &*spec.linux->seccomp : nullptr;
  // With no_new_privileges and no notify listener the filter is loaded last,
  // right before the exec (runc's order): nothing husk still does after it
  // depends on what the profile allows.
  if (seccomp && process.no_new_privileges && !uses_notify(*seccomp)) {
    p.deferred_seccomp = seccomp;
    seccomp = nullptr;
  }
  // Before no_new_privileges and the filter (runc's order); the profile
  // takes the process at its execve.
  if (process.apparmor_profile) TRYV(apparmor_exec_profile(*process.apparmor_profile, "process.apparmorProfile"));
  UniqueFd notify = TRY(apply_process_identity(process, seccomp));
  if (notify) TRYV(sync_send(sync, SyncType::NotifyFd, {}, notify.get()));
  // `create` returns once we are Ready and the init must outlive it.
  if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_PDEATHSIG");
  TRYV(sync_send(sync, SyncType::Ready, p.path));
  return p;
}

[[noreturn]] void die(const Error& e) {
  std::string line = "husk: " + e.str() + "\n";
  (void)write_all(2, line);
  _exit(127);
}

[[noreturn]] void real_init(const InitConfig& cfg) {
  oci::Process process = *cfg.spec->process;
  for (const auto& e : cfg.extra_env) process.env.push_back(e);
  // The host's /proc/self/fd, to reopen exec.fifo after pivot_root: the
  // container need not have a /proc of its own.
  int proc_fds = ::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (proc_fds < 0) fail_child(cfg.sync_fd, Error::sys("open /proc/self/fd"));

  std::string state_json;
  auto prepared = prepare(cfg, process, state_json);
  if (!prepared) fail_child(cfg.sync_fd, prepared.error());
  ::close(cfg.sync_fd);

  // Block until `start` opens the fifo for reading. It stays open (close-on-
  // exec) through the startContainer hooks: `start` reads our byte, then
  // waits for the exec to close it before it runs the poststart hooks.
  int fifo = openat(proc_fds, std::to_string(cfg.fifo_fd).c_str(), O_WRONLY | O_CLOEXEC);
  if (fifo < 0) die(Error::sys("open exec.fifo"));
  ::close(proc_fds);
  ::close(cfg.fifo_fd);
  if (cfg.spec->hooks && !cfg.spec->hooks->start_container.empty()) {
    if (auto r = run_hooks(cfg.spec->hooks->start_container, "startContainer", state_json); !r) die(r.error());
  }
  if (::write(fifo, "0", 1) != 1) die(Error::sys("write exec.fifo"));
  if (prepared->deferred_seccomp) {
    if (auto r = load_seccomp(*prepared->deferred_seccomp); !r) die(r.error());
  }
  die(exec_process(prepared->trampoline.get(), prepared->path, process, cfg.preserve_fds));
}

Result<> map_user_namespace(const InitConfig& cfg) {
  // An unprivileged parent (or newuidmap, which checks who owns us) can only
  // open our /proc/<pid>/uid_map while we are dumpable. Nothing of the
  // container runs yet: the image is not even mounted.
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_DUMPABLE 1 for the id maps");
  TRYV(sync_send(cfg.sync_fd, SyncType::NamespacesReady));
  SyncMsg written = TRY(sync_expect(cfg.sync_fd, SyncType::IdMapsWritten));
  idmapped_rootfs_tree = std::move(written.fd);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_DUMPABLE 0");
  return become_root_in_userns();
}

// Staged path: returns in the real init (or exits in the intermediate).
Result<> enter_namespaces_staged(const InitConfig& cfg) {
  TRYV(join_namespaces(cfg));
  for (const auto& j : cfg.join) ::close(j.second);
  if (cfg.new_userns) {
    if (unshare(CLONE_NEWUSER) < 0) return fail_sys("linux.namespaces: create user namespace");
    TRYV(map_user_namespace(cfg));
  }
  unsigned long rest = cfg.unshare_flags & ~static_cast<unsigned long>(CLONE_NEWUSER);
  if (rest && unshare(static_cast<int>(rest)) < 0) return fail_sys("linux.namespaces: unshare");
  if ((rest & CLONE_NEWTIME) && cfg.spec->linux) TRYV(write_time_offsets(*cfg.spec->linux));
  bool joins_pid_or_time = false;
  for (const auto& j : cfg.join)
    if (j.first == oci::NamespaceType::Pid || j.first == oci::NamespaceType::Time) joins_pid_or_time = true;
  if (!(rest & (CLONE_NEWPID | CLONE_NEWTIME)) && !joins_pid_or_time) return {};

  // pid and time namespaces take effect for children: the real init is our
  // child, made a child of husk itself (CLONE_PARENT) so husk can wait for it.
  CloneArgs args = {};
  args.flags = CLONE_PARENT;
  pid_t pid = static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof args));
  if (pid < 0) return fail_sys("clone the container init");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    // Speak only after the parent knows our pid (it arrives from our parent).
    TRYV(sync_expect(cfg.sync_fd, SyncType::Continue));
    return {};
  }
  if (auto r = sync_send(cfg.sync_fd, SyncType::InitPid, std::to_string(pid)); !r) _exit(1);
  _exit(0);
}

}  // namespace

void container_init(const InitConfig& cfg) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // Non-dumpable: no process in the container may open /proc/<pid>/exe of
  // husk while it works in there (CVE-2019-5736 class).
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (auto r = reset_signals(); !r) fail_child(cfg.sync_fd, r.error());
  // Nothing of husk's may reach the container: in particular the state
  // directory's lock, which would otherwise block every later command.
  std::vector<int> keep = {cfg.sync_fd, cfg.fifo_fd};
  for (const auto& j : cfg.join) keep.push_back(j.second);
  for (int fd = 3; fd < 3 + cfg.preserve_fds; ++fd) keep.push_back(fd);
  close_fds_except(keep);
  if (cfg.wait_for_cgroup) {
    if (auto r = sync_expect(cfg.sync_fd, SyncType::CgroupReady); !r) fail_child(cfg.sync_fd, r.error());
    if (cfg.unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
      fail_child(cfg.sync_fd, Error::sys("linux.namespaces: create cgroup namespace"));
  }
  if (cfg.staged) {
    // Still in husk's user namespace: limits above the current hard ones
    // can be set here and not after joining another (as runc does them).
    bool joins_user = false;
    for (const auto& j : cfg.join) joins_user = joins_user || j.first == oci::NamespaceType::User;
    if ((joins_user || cfg.new_userns) && cfg.spec->process)
      if (auto r = apply_rlimits(*cfg.spec->process); !r) fail_child(cfg.sync_fd, r.error());
    if (auto r = enter_namespaces_staged(cfg); !r) fail_child(cfg.sync_fd, r.error());
  } else if (cfg.new_userns) {
    if (auto r = map_user_namespace(cfg); !r) fail_child(cfg.sync_fd, r.error());
  }
  // After the id maps: before them a new user namespace makes us nobody, and
  // a bundle only its owner may enter (podman's 0700 userdata, entered from
  // a nested user namespace as with --userns=keep-id) would be refused.
  if (chdir(cfg.bundle.c_str()) < 0) fail_child(cfg.sync_fd, Error::sys("chdir to the bundle " + cfg.bundle));
  real_init(cfg);
}

}  // namespace husk::runtime
