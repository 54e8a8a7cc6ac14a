// `husk exec`: a new process in a running container's namespaces and cgroup,
// under the same rules (seccomp, capabilities, the exec trampoline).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>

#include "cgroups/manager.h"
#include "common/text.h"
#include "oci/config.h"
#include "oci/tables.h"
#include "runtime/apparmor.h"
#include "runtime/container_internal.h"
#include "runtime/process.h"
#include "runtime/sync.h"
#include "runtime/terminal.h"

namespace husk::runtime {
namespace {

constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;

struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

void set_env(std::vector<std::string>& env, const std::string& kv) {
  std::string key = kv.substr(0, kv.find('='));
  for (auto& e : env)
    if (e.substr(0, e.find('=')) == key) {
      e = kv;
      return;
    }
  env.push_back(kv);
}

Result<oci::Process> exec_process_spec(const oci::Spec& spec, const ExecOptions& o) {
  oci::Process p;
  if (!o.process_file.empty()) {
    std::string raw = TRY(read_file(o.process_file));
    p = TRY_CTX(oci::parse_process(raw), o.process_file);
  } else {
    p = *spec.process;
    p.args = o.args;
    p.terminal = o.tty;
    p.console_size.reset();
  }
  for (const auto& e : o.env) {
    if (e.find('=') == std::string::npos) return fail_msg("--env: expected KEY=VALUE, got \"", e, "\"");
    set_env(p.env, e);
  }
  if (!o.cwd.empty()) p.cwd = o.cwd;
  if (o.user) {
    p.user.uid = o.user->first;
    p.user.gid = o.user->second;
  }
  if (!o.additional_gids.empty()) p.user.additional_gids = o.additional_gids;
  if (!o.caps.empty()) {
    if (!p.capabilities) p.capabilities.emplace();
    for (const auto& name : o.caps) {
      auto cap = oci::capability_from_name(name);
      if (!cap) return fail_msg("--cap: unknown capability \"", name, "\"");
      for (auto* set : {&p.capabilities->bounding, &p.capabilities->effective, &p.capabilities->permitted}) {
        if (!*set) set->emplace();
        (*set)->push_back(*cap);
      }
    }
  }
  if (o.no_new_privs) p.no_new_privileges = true;
  if (o.apparmor) p.apparmor_profile = o.apparmor;
  if (p.args.empty()) return fail_msg("exec: no command to run");
  if (p.apparmor_profile) TRYV(check_apparmor_profile(*p.apparmor_profile, "exec: process.apparmorProfile"));
  return p;
}

// The namespaces of the container that differ from ours, as setns flags.
// The user namespace is looked at even when the spec has none: a rootless
// create adds one (crun's rule), and the saved config.json is as written.
int namespace_flags(pid_t pid, const oci::Linux& linux) {
  int flags = 0;
  std::vector<oci::NamespaceType> types;
  for (const auto& ns : linux.namespaces) types.push_back(ns.type);
  if (!linux.has_namespace(oci::NamespaceType::User)) types.push_back(oci::NamespaceType::User);
  for (oci::NamespaceType type : types) {
    std::string name(oci::namespace_proc_name(type));
    struct stat theirs, ours;
    if (stat(cat("/proc/", pid, "/ns/", name).c_str(), &theirs) < 0) continue;
    if (stat(cat("/proc/self/ns/", name).c_str(), &ours) == 0 && theirs.st_ino == ours.st_ino &&
        theirs.st_dev == ours.st_dev)
      continue;
    flags |= oci::namespace_clone_flag(type);
  }
  return flags;
}

[[noreturn]] void exec_child(int sync, int target_pidfd, int ns_flags, const oci::Process& process,
                             const oci::Seccomp* seccomp, int preserve_fds) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  std::vector<int> keep = {sync, target_pidfd};
  for (int fd = 3; fd < 3 + preserve_fds; ++fd) keep.push_back(fd);
  close_fds_except(keep);
  auto stage = [&]() -> Result<> {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Raising a hard limit is allowed only outside a user namespace: set
    // the limits before joining one (again after: lowering is always allowed).
    // oom_score_adj too: in the container's user namespace /proc/self's
    // files belong to a root it does not map.
    // Dumpable for it: a non-dumpable process's /proc/self files belong
    // to the host's root, which a rootless caller is not (EACCES).
    if (ns_flags & CLONE_NEWUSER) {
      if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_DUMPABLE 1 for the limits");
      auto set = apply_outside_limits(0, process);
      prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
      TRYV(std::move(set));
    }
    if (ns_flags && setns(target_pidfd, ns_flags) < 0) return fail_sys("join the container's namespaces");
    ::close(target_pidfd);
    // The pid namespace applies to children: the process is our child, made
    // a child of husk (CLONE_PARENT) so husk can wait for it.
    CloneArgs args = {};
    args.flags = CLONE_PARENT;
    pid_t pid = static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof args));
    if (pid < 0) return fail_sys("clone into the container");
    if (pid > 0) {
      (void)sync_send(sync, SyncType::InitPid, std::to_string(pid));
      _exit(0);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    TRYV(sync_expect(sync, SyncType::Continue));  // the parent has our pid
    TRYV(apply_process_limits(process, (ns_flags & CLONE_NEWUSER) != 0));
    UniqueFd trampoline = TRY(make_trampoline());
    std::string path = TRY(find_executable(process));
    if (process.terminal) {
      Pty pty = TRY_CTX(open_pty("/dev/ptmx"), "exec --tty");
      if (process.console_size)
        TRYV(set_window_size(pty.master.get(), process.console_size->height, process.console_size->width));
      TRYV(sync_send(sync, SyncType::ConsoleFd, {}, pty.master.get()));
      TRYV(attach_terminal(pty.slave.get()));
    }
    if (process.apparmor_profile) TRYV(apparmor_exec_profile(*process.apparmor_profile, "process.apparmorProfile"));
    UniqueFd notify = TRY(apply_process_identity(process, seccomp));
    (void)notify;  // a second listener is not handed out for exec'd processes
    if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_PDEATHSIG");
    TRYV(sync_send(sync, SyncType::Ready, path));
    ::close(sync);
    Error e = exec_process(trampoline.get(), path, process, preserve_fds);
    std::string line = "husk: " + e.str() + "\n";
    (void)write_all(2, line);
    _exit(127);
  };
  auto r = stage();
  sync_send_error(sync, r.error());
  _exit(1);
}

}  // namespace

Result<int> exec(const GlobalOptions& g, const ExecOptions& o) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(o.id));
  ContainerRecord rec = TRY(dir.load());
  oci::Status st = TRY(current_status(dir, rec));
  if (st == oci::Status::Stopped) return fail_msg("container \"", o.id, "\" is stopped: cannot exec in it");
  if (st == oci::Status::Paused) return fail_msg("container \"", o.id, "\" is paused: resume it first");
  oci::Spec spec = TRY(load_saved_spec(dir));
  oci::Process process = TRY(exec_process_spec(spec, o));
  if (process.terminal && o.console_socket.empty() && o.detach)
    return fail_msg("exec: --tty with --detach needs --console-socket to receive the terminal");
  if (o.preserve_fds < 0) return fail_msg("--preserve-fds: must not be negative");

  int target = static_cast<int>(syscall(SYS_pidfd_open, rec.pid, 0));
  if (target < 0 || !process_alive(rec.pid, rec.pid_start)) {
    if (target >= 0) ::close(target);
    return fail_errno(ESRCH, "container \"", o.id, "\" is not running");
  }
  UniqueFd target_pidfd(target);
  int ns_flags = namespace_flags(rec.pid, *spec.linux);
  UniqueFd cgroup_fd;
  if (!rec.cgroup_path.empty()) cgroup_fd = TRY(open_fd(rec.cgroup_path, O_PATH | O_DIRECTORY));

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return fail_sys("socketpair");
  UniqueFd parent_sock(sv[0]), child_sock(sv[1]);
  CloneArgs args = {};
  args.exit_signal = SIGCHLD;
  if (cgroup_fd) {
    args.flags |= kCloneIntoCgroup;
    args.cgroup = static_cast<uint64_t>(cgroup_fd.get());
  }
  const oci::Seccomp* seccomp = spec.linux->seccomp ? &*spec.linux->seccomp : nullptr;
  pid_t stage = static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof args));
  if (stage < 0 && errno == EBUSY && cgroup_fd) {
    // The container's cgroup delegates controllers to children (a booted
    // systemd moved itself to init.scope and enabled them), so it may hold
    // no process: join the init's own cgroup instead, as runc does.
    std::string rel;
    if (auto text = read_file(cat("/proc/", rec.pid, "/cgroup")))
      for (std::string_view line : lines_of(*text))
        if (line.starts_with("0::")) rel = std::string(line.substr(3));
    std::string mount = cgroups::detect_mount_point();
    if (!rel.empty() && !mount.empty()) {
      cgroup_fd = TRY(open_fd(mount + rel, O_PATH | O_DIRECTORY | O_CLOEXEC));
      args.cgroup = static_cast<uint64_t>(cgroup_fd.get());
      stage = static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof args));
    } else {
      errno = EBUSY;
    }
  }
  if (stage < 0) return fail_sys("clone for exec");
  if (stage == 0) {
    parent_sock.reset();
    exec_child(child_sock.get(), target_pidfd.get(), ns_flags, process, seccomp, o.preserve_fds);
  }
  child_sock.reset();
  struct Reaper {
    pid_t pid;
    bool armed = true;
    ~Reaper() {
      if (armed && pid > 0) {
        ::kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } stage_reaper{stage}, proc_reaper{0};

  pid_t pid = 0;
  UniqueFd master;
  for (bool ready = false; !ready;) {
    SyncMsg msg = TRY(sync_recv(parent_sock.get()));
    switch (msg.type) {
      case SyncType::Error:
        return fail(Error(msg.err, msg.payload));
      case SyncType::InitPid:
        pid = static_cast<pid_t>(atoi(msg.payload.c_str()));
        proc_reaper.pid = pid;
        waitpid(stage, nullptr, 0);
        stage_reaper.armed = false;
        TRYV(sync_send(parent_sock.get(), SyncType::Continue));
        break;
      case SyncType::ConsoleFd:
        if (!o.console_socket.empty()) TRYV(send_console(o.console_socket, msg.fd.get()));
        else master = std::move(msg.fd);
        break;
      case SyncType::Ready:
        ready = true;
        break;
      default:
        return fail_errno(EPROTO, "unexpected message from the exec process");
    }
  }
  proc_reaper.armed = false;
  if (!o.pid_file.empty()) TRYV_CTX(write_file_atomic(o.pid_file[0] == '/' ? o.pid_file : get_cwd() + "/" + o.pid_file, std::to_string(pid), 0644), "--pid-file");
  dir.unlock();
  if (o.detach) return 0;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return fail_sys("pidfd_open the exec'd process");
  UniqueFd owned(pidfd);
  struct termios saved;
  bool raw = master && isatty(0) && tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(0, TCSANOW, &t);
  }
  auto status = wait_foreground(pid, pidfd, master.get());
  if (raw) tcsetattr(0, TCSANOW, &saved);
  if (!status) return fail(status.error());
  return WIFSIGNALED(*status) ? 128 + WTERMSIG(*status) : WEXITSTATUS(*status);
}

}  // namespace husk::runtime
