// state, list, kill, delete, pause, resume, ps.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/text.h"
#include "oci/config.h"
#include "runtime/container_internal.h"
#include "runtime/fuse_overlay.h"
#include "runtime/hooks.h"
#include "runtime/log.h"
#include "runtime/network.h"

namespace husk::runtime {

std::string get_cwd() {
  char buf[PATH_MAX];
  return getcwd(buf, sizeof buf) ? std::string(buf) : std::string("/");
}

bool is_rootless(const GlobalOptions& g) {
  if (g.rootless) return *g.rootless;
  if (geteuid() != 0) return true;
  // Root of a user namespace that does not hold every id (podman's rootless
  // one) is rootless too, as crun decides.
  auto map = read_file("/proc/self/uid_map");
  return map && !is_initial_id_map(*map);
}

Result<StateStore> open_store(const GlobalOptions& g) {
  std::string root = g.root.empty() ? TRY(StateStore::default_root(is_rootless(g))) : g.root;
  return StateStore::open(root);
}

Result<oci::Spec> load_saved_spec(const ContainerDir& dir) {
  std::string raw = TRY(read_file(dir.config_path()));
  return TRY_CTX(oci::parse_config(raw), dir.config_path());
}

Result<std::unique_ptr<cgroups::Manager>> reopen_cgroup(const ContainerRecord& rec,
                                                        const std::vector<oci::Device>& devices) {
  cgroups::ManagerKind kind = rec.cgroup_manager == "systemd"    ? cgroups::ManagerKind::Systemd
                              : rec.cgroup_manager == "disabled" ? cgroups::ManagerKind::Disabled
                                                                 : cgroups::ManagerKind::Fs;
  if (rec.cgroup_path.empty()) kind = cgroups::ManagerKind::Disabled;
  cgroups::Recorded r;
  r.kind = kind;
  r.path = rec.cgroup_path;
  r.systemd_unit = rec.systemd_scope;
  r.rootless = rec.rootless;
  r.devices = devices;
  return cgroups::open_existing(r);
}

Result<oci::Status> current_status(const ContainerDir& dir, const ContainerRecord& rec) {
  bool fifo = faccessat(dir.fd(), "exec.fifo", F_OK, 0) == 0;
  bool frozen = false;
  if (!rec.cgroup_path.empty() && process_alive(rec.pid, rec.pid_start)) {
    auto cg = reopen_cgroup(rec);
    if (cg) frozen = (*cg)->frozen().value_or(false);
  }
  return derive_status(rec, fifo, frozen);
}

namespace {

Result<> signal_init(const ContainerRecord& rec, int sig) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, rec.pid, 0));
  if (pidfd < 0) return fail_errno(ESRCH, "container \"", rec.id, "\" is not running");
  UniqueFd owned(pidfd);
  // The pidfd pins the process: check it is still the one we made.
  if (!process_alive(rec.pid, rec.pid_start)) return fail_errno(ESRCH, "container \"", rec.id, "\" is not running");
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) < 0) return fail_sys("send signal ", sig, " to container \"", rec.id, "\"");
  return {};
}

}  // namespace

Result<> destroy_container(ContainerDir& dir, const ContainerRecord& rec, bool force) {
  oci::Status st = TRY(current_status(dir, rec));
  if ((st == oci::Status::Running || st == oci::Status::Paused) && !force)
    return fail_msg("container \"", rec.id, "\" is ", oci::status_name(st), ": stop it first or use --force");
  auto cg = reopen_cgroup(rec);
  if (process_alive(rec.pid, rec.pid_start)) {
    if (cg && !rec.cgroup_path.empty()) (void)(*cg)->kill_all(SIGKILL);
    (void)signal_init(rec, SIGKILL);
    if (!signal_and_await_exit(rec.pid, rec.pid_start, 0, 10000))
      return fail_errno(ETIMEDOUT, "process ", rec.pid, " did not exit");
  }
  // The root's fuse-overlayfs server ends with its mount; here it is gone
  // before delete ends.
  stop_fuse_overlayfs({rec.fuse_pid, rec.fuse_start});
  detach_network(dir.path(), rec.id);
  if (cg) TRYV_CTX((*cg)->destroy(), "remove the container's cgroup");
  auto spec = load_saved_spec(dir);
  if (spec && spec->hooks && !spec->hooks->poststop.empty()) {
    oci::State s;
    s.oci_version = spec->oci_version;
    s.id = rec.id;
    s.status = oci::Status::Stopped;
    s.bundle = rec.bundle;
    s.annotations = spec->annotations;
    if (auto r = run_hooks(spec->hooks->poststop, "poststop", oci::emit_state(s)); !r) log::warning(r.error().str());
  }
  return dir.remove();
}

Result<ContainerInfo> state(const GlobalOptions& g, const std::string& id) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  ContainerInfo info;
  info.state.status = TRY(current_status(dir, rec));
  auto spec = load_saved_spec(dir);
  info.state.oci_version = spec ? spec->oci_version : "1.2.0";
  if (spec) info.state.annotations = spec->annotations;
  info.state.id = rec.id;
  info.state.pid = info.state.status == oci::Status::Stopped ? 0 : rec.pid;
  info.state.bundle = rec.bundle;
  info.rootfs = rec.rootfs;
  info.created_ns = rec.created;
  info.owner = rec.owner;
  return info;
}

Result<std::vector<ContainerInfo>> list(const GlobalOptions& g) {
  StateStore store = TRY(open_store(g));
  std::vector<ContainerInfo> out;
  for (const auto& id : TRY(store.list())) {
    auto info = state(g, id);
    if (info) out.push_back(std::move(*info));
  }
  return out;
}

Result<> kill(const GlobalOptions& g, const std::string& id, int sig, bool all) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  oci::Status st = TRY(current_status(dir, rec));
  if (st == oci::Status::Stopped) return fail_errno(ESRCH, "container \"", id, "\" is not running");
  if (all && !rec.cgroup_path.empty()) {
    auto cg = TRY(reopen_cgroup(rec));
    return cg->kill_all(sig);
  }
  return signal_init(rec, sig);
}

Result<> remove(const GlobalOptions& g, const std::string& id, bool force) {
  StateStore store = TRY(open_store(g));
  auto dir = store.open_container(id);
  if (!dir) {
    if (dir.error().code() == ENOENT) {
      // A create killed before its first save left a directory (and
      // perhaps a network and a cgroup) without state: delete removes them.
      if (auto unsaved = store.open_unsaved(id); unsaved) {
        detach_network(unsaved->path(), id);
        if (auto spec = load_saved_spec(*unsaved); spec)
          if (auto cg = make_cgroup(g, *spec, id, is_rootless(g)); cg) (void)(*cg)->destroy();
        return unsaved->remove();
      }
      if (force) return {};
    }
    return fail(dir.error());
  }
  auto rec = dir->load();
  if (!rec) {  // a crash left a directory without state
    detach_network(dir->path(), id);
    return dir->remove();
  }
  return destroy_container(*dir, *rec, force);
}

Result<std::vector<pid_t>> pids(const GlobalOptions& g, const std::string& id) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  if (rec.cgroup_path.empty()) {
    if (process_alive(rec.pid, rec.pid_start)) return std::vector<pid_t>{rec.pid};
    return std::vector<pid_t>{};
  }
  auto cg = TRY(reopen_cgroup(rec));
  return cg->pids();
}

static Result<> set_frozen(const GlobalOptions& g, const std::string& id, bool frozen) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  oci::Status st = TRY(current_status(dir, rec));
  if (frozen && st != oci::Status::Running && st != oci::Status::Created)
    return fail_msg("container \"", id, "\" is ", oci::status_name(st), ": only a running container can be paused");
  if (!frozen && st != oci::Status::Paused)
    return fail_msg("container \"", id, "\" is ", oci::status_name(st), ": only a paused container can be resumed");
  if (rec.cgroup_path.empty())
    return fail_msg("container \"", id, "\" has no cgroup (cgroups disabled): it cannot be ", frozen ? "paused" : "resumed");
  auto cg = TRY(reopen_cgroup(rec));
  return cg->freeze(frozen);
}

Result<> pause(const GlobalOptions& g, const std::string& id) { return set_frozen(g, id, true); }

Result<> update(const GlobalOptions& g, const std::string& id, const oci::Resources& resources) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  oci::Status st = TRY(current_status(dir, rec));
  if (st == oci::Status::Stopped) return fail_msg("container \"", id, "\" is stopped: nothing to update");
  if (rec.cgroup_path.empty()) return fail_msg("container \"", id, "\" has no cgroup (cgroups disabled): cannot update resources");
  std::vector<oci::Device> devices;
  if (!resources.devices.empty()) {
    // The default device rules leave out those the spec's linux.devices replaces.
    oci::Spec spec = TRY_CTX(load_saved_spec(dir), "update the device rules");
    if (spec.linux) devices = spec.linux->devices;
  }
  auto cg = TRY(reopen_cgroup(rec, devices));
  return cg->apply(resources);
}
Result<> resume(const GlobalOptions& g, const std::string& id) { return set_frozen(g, id, false); }

Result<> record_exit_status(const ContainerDir& dir, const ExitStatus& e) {
  return write_file_atomic(dir.path() + "/exit",
                           cat("exit_code=", e.exit_code, "\nsignal=", e.signal, "\noom_killed=", e.oom_killed, "\n"), 0600);
}

Result<std::optional<ExitStatus>> read_exit_status(const ContainerDir& dir) {
  auto text = read_file(dir.path() + "/exit");
  if (!text) {
    if (text.error().code() == ENOENT) return std::optional<ExitStatus>{};
    return fail(std::move(text.error()));
  }
  auto kv = key_values(*text);
  ExitStatus e;
  e.exit_code = atoi(kv["exit_code"].c_str());
  e.signal = atoi(kv["signal"].c_str());
  e.oom_killed = atoi(kv["oom_killed"].c_str()) != 0;
  return std::optional<ExitStatus>{e};
}

Result<std::optional<ExitStatus>> exit_status(const GlobalOptions& g, const std::string& id) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  return read_exit_status(dir);
}

Result<std::string> cgroup_dir(const GlobalOptions& g, const std::string& id) {
  StateStore store = TRY(open_store(g));
  ContainerDir dir = TRY(store.open_container(id));
  ContainerRecord rec = TRY(dir.load());
  oci::Status st = TRY(current_status(dir, rec));
  if (st == oci::Status::Stopped) return fail_msg("container \"", id, "\" is stopped: it has no stats or events");
  if (rec.cgroup_path.empty())
    return fail_msg("container \"", id, "\" has no cgroup (cgroups disabled): it has no stats or events");
  return rec.cgroup_path;
}

}  // namespace husk::runtime
