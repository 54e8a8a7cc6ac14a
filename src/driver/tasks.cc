#include "driver/tasks.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cgroups/stats.h"
#include "common/copy_tree.h"
#include "common/fd.h"
#include "common/idshift.h"
#include "common/overlay.h"
#include "common/program.h"
#include "common/text.h"
#include "driver/bundle_files.h"
#include "driver/husk_process.h"
#include "driver/image_resolve.h"
#include "driver/log.h"
#include "image/store.h"
#include "oci/config.h"
#include "runtime/rootfs_overlay.h"
#include "runtime/state_store.h"

namespace husk::driver {
namespace {

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

// Nomad task ids are "<alloc>/<task>/<8 hex>"; husk ids allow [A-Za-z0-9_+.-].
std::string container_id_for(const std::string& task_id) {
  std::string id;
  for (char c : task_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '-' || c == '.';
    id.push_back(c == '/' ? '-' : ok ? c : '_');
  }
  if (id.empty() || id == "." || id == "..") id = "task" + id;
  return id;
}

// rm -rf that stays on one filesystem and never follows a symlink: a task
// directory may hold a mount point we failed to unmount. A directory of
// ours we may not read or enter (overlayfs leaves its work/work at mode
// 0, a task may chmod its files) is opened up first, as rm -rf does.
void remove_tree(int parent, const char* name, dev_t dev) {
  struct stat st;
  if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) return;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES && st.st_uid == geteuid() && fchmodat(parent, name, 0700, 0) == 0)
      fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    if ((st.st_mode & 0300) != 0300 && st.st_uid == geteuid()) (void)fchmod(fd, 0700);
    DIR* d = fdopendir(fd);
    if (!d) {
      close(fd);
      return;
    }
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.push_back(e->d_name);
    for (const auto& n : names) remove_tree(dirfd(d), n.c_str(), dev);
    closedir(d);
    unlinkat(parent, name, AT_REMOVEDIR);
  } else {
    unlinkat(parent, name, 0);
  }
}

void remove_dir(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) < 0) return;
  remove_tree(AT_FDCWD, path.c_str(), st.st_dev);
}

// Unmounts what a task dir may hold (its rootfs; an idmapped image at
// lower/; a loop-mounted disk image at image/; a tmpfs at volatile/).
void unmount_task_dir(const std::string& dir) {
  for (const char* m : {"/rootfs", "/lower", "/volatile", "/image", kShmDir}) umount2((dir + m).c_str(), MNT_DETACH);
}

// Unmounts, then removes the dir. The rootfs may be a bind of a user's
// image directory on the same file system: if it is still there and not
// empty after the unmount, the dir is left in place rather than risk
// deleting the image.
//
// A rootless driver's task dir has no mounts, but its upper dir holds what
// the task wrote, owned by the store's sub-ids (the container's uid 1000 is
// subuid_start+999 on disk), which the driver's user may not remove: what
// is left then goes through `husk-image remove-dir`, in a user namespace
// with the store's map (forking is not for this threaded process).
void remove_task_dir(const std::string& dir) {
  unmount_task_dir(dir);
  for (const char* m : {"/rootfs", "/lower", "/image", kShmDir})
    if (rmdir((dir + m).c_str()) < 0 && errno != ENOENT) {
      fprintf(stderr, "nomad-driver-husk: %s%s is not empty after unmounting it (%s): leaving %s in place\n",
              dir.c_str(), m, strerror(errno), dir.c_str());
      return;
    }
  remove_dir(dir);
  struct stat st;
  if (geteuid() == 0 || lstat(dir.c_str(), &st) < 0) return;
  auto r = run_captured({husk_image_binary(), "remove-dir", dir}, {}, 120000);
  if (r && !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0) return;
  std::string why = !r ? r.error().str() : r->timed_out ? "husk-image remove-dir timed out" : r->err;
  fprintf(stderr, "nomad-driver-husk: remove the task directory %s in the image store's user namespace: %s\n",
          dir.c_str(), why.c_str());
}

// Log FIFOs: open for writing, waiting a while for the reader (Nomad's
// logmon) instead of blocking forever.
Result<UniqueFd> open_log(const std::string& path) {
  if (path.empty() || path == "/dev/null") return open_fd("/dev/null", O_WRONLY | O_CLOEXEC);
  for (int i = 0;; ++i) {
    int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      return UniqueFd(fd);
    }
    if (errno != ENXIO || i == 1000) return fail_sys("open the task log ", path, " for writing");
    sleep_ms(10);  // no reader yet
  }
}

// The last error husk wrote to its --log-format json log.
std::string last_logged_error(const std::string& log) {
  auto text = read_file(log);
  if (!text) return "";
  std::string msg;
  for (std::string_view line : lines_of(*text)) {
    if (line.find("\"level\":\"error\"") == std::string::npos) continue;
    size_t m = line.find("\"msg\":\"");
    if (m == std::string::npos) continue;
    std::string out;
    for (size_t i = m + 7; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        ++i;
        out.push_back(line[i] == 'n' ? ' ' : line[i] == 't' ? ' ' : line[i]);
      } else {
        out.push_back(line[i]);
      }
    }
    msg = out;
  }
  return msg;
}

}  // namespace

std::string encode_handle_state(const TaskHandleState& s) {
  std::string out;
  auto put = [&](const char* k, const std::string& v) {
    out += k;
    out += '=';
    for (char c : v) out += c == '\n' ? ' ' : c;
    out += '\n';
  };
  put("version", "1");
  put("task_id", s.task_id);
  put("task_name", s.task_name);
  put("alloc_id", s.alloc_id);
  put("container_id", s.container_id);
  put("task_dir", s.task_dir);
  put("monitor_pid", std::to_string(s.monitor_pid));
  put("monitor_start", std::to_string(s.monitor_start));
  put("started_at_ns", std::to_string(s.started_at_ns));
  put("overlay", s.overlay ? "1" : "0");
  put("image_store", s.image_store);
  put("stop_signal", s.stop_signal);
  put("keep", s.keep ? "1" : "0");
  return out;
}

Result<TaskHandleState> decode_handle_state(const std::string& bytes) {
  std::map<std::string, std::string> kv = key_values(bytes);
  if (kv["version"] != "1") return fail_msg("driver_state: not a husk task handle (version \"", kv["version"], "\")");
  TaskHandleState s;
  s.task_id = kv["task_id"];
  s.task_name = kv["task_name"];
  s.alloc_id = kv["alloc_id"];
  s.container_id = kv["container_id"];
  s.task_dir = kv["task_dir"];
  s.monitor_pid = static_cast<pid_t>(atoi(kv["monitor_pid"].c_str()));
  s.monitor_start = strtoull(kv["monitor_start"].c_str(), nullptr, 10);
  s.started_at_ns = strtoll(kv["started_at_ns"].c_str(), nullptr, 10);
  s.overlay = kv["overlay"] == "1";
  s.image_store = kv["image_store"];
  s.stop_signal = kv["stop_signal"];
  s.keep = kv["keep"] == "1";
  if (s.container_id.empty() || s.task_dir.empty()) return fail_msg("driver_state: no container id or task directory");
  return s;
}

TaskManager::TaskManager(std::string state_dir) : state_dir_(std::move(state_dir)) {}

TaskManager::~TaskManager() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, t] : tasks_)
    if (t->waiter.joinable()) t->waiter.detach();
}

runtime::GlobalOptions TaskManager::husk_options() const {
  runtime::GlobalOptions g;
  g.root = state_dir_ + "/containers";
  g.cgroup_manager = cgroup_manager_;
  return g;
}

std::vector<std::string> TaskManager::husk_argv() const {
  std::vector<std::string> a = {husk_binary(), "--root", state_dir_ + "/containers"};
  if (cgroup_manager_ == cgroups::ManagerKind::Systemd) a.insert(a.end(), {"--cgroup-manager", "systemd"});
  return a;
}

std::string TaskManager::cgroups_path_for(const std::string& container_id) const {
  // systemd: a husk-<id>.scope unit in nomad.slice; cgroupfs: the same
  // place by path, so that both layouts look alike to an operator.
  if (cgroup_manager_ == cgroups::ManagerKind::Systemd) return "nomad.slice:husk:" + container_id;
  // A rootless driver may only make cgroups in the subtree delegated to
  // it: husk's default there (<delegated>/husk/<id>, cgroups/rootless.h).
  if (geteuid() != 0) return "";
  return "/nomad.slice/husk-" + container_id + ".scope";
}

Result<std::pair<std::string, std::string>> TaskManager::prepare(const TaskSpec& task) {
  if (task.id.empty()) return fail_msg("task id is empty");
  std::string cid = container_id_for(task.id);
  // Searchable, not listable, by others: a task in a user namespace range
  // of its own (the nspawn flavor's private_users) has a root that is not
  // the host's, and its init reaches its bundle and root through these.
  for (const char* d : {"", "/containers", "/tasks"}) {
    std::string p = state_dir_ + d;
    if (mkdir(p.c_str(), 0711) < 0 && errno != EEXIST) return fail_sys("create the driver's state directory ", p);
    if (chmod(p.c_str(), 0711) < 0) return fail_sys("chmod the driver's state directory ", p);
  }
  std::string dir = state_dir_ + "/tasks/" + cid;
  if (mkdir(dir.c_str(), 0711) < 0) {
    if (errno == EEXIST) return fail_errno(EEXIST, "task ", task.id, " exists already (", dir, ")");
    return fail_sys("create the task directory ", dir);
  }
  return std::make_pair(cid, dir);
}

void TaskManager::discard(const std::string& task_dir) { remove_task_dir(task_dir); }

namespace {
Result<UniqueFd> notify_listener(const std::string& name) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_sys("socket for the task's sd_notify");
  UniqueFd s(fd);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof a.sun_path) return fail_msg("notify socket name too long: ", name);
  memcpy(a.sun_path + 1, name.data(), name.size());  // abstract: sun_path[0] = 0
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) < 0) return fail_sys("bind the task's notify socket @", name);
  return s;
}

// Waits for READY=1 on `sock` while the monitor `pid` lives (not reaping
// it: watch() does). The monitor's wait status if it ended first.
std::optional<int> wait_ready(int sock, pid_t pid, int timeout_ms, const std::string& task_id) {
  int64_t deadline = now_ns() + static_cast<int64_t>(timeout_ms) * 1000000;
  int64_t start = now_ns();
  while (now_ns() < deadline) {
    struct pollfd p = {sock, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      char buf[4096];
      ssize_t n = recv(sock, buf, sizeof buf - 1, MSG_DONTWAIT);
      if (n > 0) {
        std::string_view msg(buf, static_cast<size_t>(n));
        for (std::string_view line : lines_of(msg))
          if (line == "READY=1") {
            log_info(cat("task ", task_id, " is ready (sd_notify READY=1) ", (now_ns() - start) / 1000000,
                         " ms after its container started"));
            return std::nullopt;
          }
      }
    }
    siginfo_t si{};
    if (waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
      int st;
      waitpid(pid, &st, 0);
      return st;
    }
  }
  log_warn(cat("task ", task_id, ": no sd_notify READY=1 within ", timeout_ms, " ms; counting it as started"));
  return std::nullopt;
}

// <task_dir>/rootfs from the image as the plan's mode says.
// `husk ARGS...`: the helpers that fork (a user namespace for an idmapped
// mount), which the driver, a threaded gRPC server, does not do itself.
// A yes/no question (check-idmap) answers with exit status 0 or 1; for
// anything else any status but 0 is the error husk printed.
Result<std::string> run_husk(std::vector<std::string> args, bool yes_no = false) {
  args.insert(args.begin(), husk_binary());
  auto r = TRY(run_captured(args, {}, 30000));
  if (r.timed_out) return fail_msg("husk ", args[1], " did not finish within 30 s");
  if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) > (yes_no ? 1 : 0)) {
    std::string why = rtrim(r.err);
    // husk logs "husk: error: ..." or JSON; its last line says why.
    if (size_t nl = why.rfind('\n'); nl != std::string::npos) why = why.substr(nl + 1);
    return fail_msg("husk ", args[1], args.size() > 2 && args[2][0] != '-' ? " " + args[2] : "", ": ",
                    why.empty() ? describe_wait_status(r.status) : why);
  }
  return WEXITSTATUS(r.status) == 0 ? std::string("yes") : std::string("no");
}

// Attach at dst the tree at src as the task sees it: idmapped into the
// task's range when the plan says so (src/dst may be /usr of a volatile root).
Result<> bind_image(const OwnershipPlan& own, bool idmap, const std::string& src, const std::string& dst) {
  if (!idmap) {
    if (mount(src.c_str(), dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
      return fail_sys("bind the image ", src, " on ", dst);
    return {};
  }
  if (!own.uid_map.empty()) {
    TRYV_CTX(run_husk({"mount-idmapped", "--uid-map", id_map_text(own.uid_map), "--gid-map", id_map_text(own.gid_map),
                       src, dst}),
             "config.userns = \"auto\": the image's layers are seen with the task's ids through idmapped mounts");
    return {};
  }
  TRYV_CTX(run_husk({"mount-idmapped", src, dst, std::to_string(own.to), std::to_string(own.count),
                     std::to_string(own.from)}),
           "private_users_ownership: idmap the image into the task's range ", own.to, "-", own.to + own.count - 1);
  return {};
}

// An id as the maps (container id -> host id) move it; one they do not
// map is the overflow id, as an idmapped mount shows it.
idshift::IdMapFn host_id_of(const std::vector<oci::IdMapping>& maps) {
  return [maps](uint32_t id) -> uint32_t {
    for (const auto& m : maps)
      if (id >= m.container_id && id - m.container_id < m.size) return m.host_id + (id - m.container_id);
    return 65534;
  };
}

// userns = "auto" where the store's file system takes no idmapped mounts:
// each layer copied to <task dir>/copied/N with its owners moved into the
// task's ids (as podman's storage copies and chowns an image for a
// mapping), the task's own lower layers. They go with the task dir.
Result<std::vector<std::string>> copy_layers(const BundlePlan& plan, const std::string& task_dir) {
  const OwnershipPlan& own = plan.ownership;
  CopyOptions o{host_id_of(own.uid_map), host_id_of(own.gid_map), true};
  std::string at = task_dir + "/copied";
  if (mkdir(at.c_str(), 0700) < 0) return fail_sys("create ", at);
  std::vector<std::string> out;
  int64_t start = now_ns();
  for (size_t i = 0; i < plan.image_layers.size(); ++i) {
    const std::string& layer = plan.image_layers[i];
    std::string one = cat(at, "/", i);
    if (mkdir(one.c_str(), 0700) < 0) return fail_sys("create ", one);
    UniqueFd from = TRY(open_fd(layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    UniqueFd to = TRY(open_fd(one, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    TRYV_CTX(copy_tree(from.get(), to.get(), o), "copy the layer ", layer, " to ", one);
    struct stat st;
    if (fstat(from.get(), &st) < 0) return fail_sys("stat ", layer);
    if (fchown(to.get(), o.uid(st.st_uid), o.gid(st.st_gid)) < 0 || fchmod(to.get(), st.st_mode & 07777) < 0)
      return fail_sys("give ", one, " the owner and mode of ", layer);
    out.push_back(one);
  }
  log_info(cat("copied the ", out.size(), " layers of the image with the task's ids to ", at, " in ",
               (now_ns() - start) / 1000000, " ms (the store's file system takes no idmapped mounts)"));
  return out;
}

// A rootless driver mounts nothing: the task's root is an overlay of the
// image's layers (a store image's, or one directory) with its upper and
// work dirs in the task dir, which husk's init mounts in the container's
// own user and mount namespaces (run.husk.rootfs.overlay, userxattr).
Result<> plan_rootless_rootfs(BundlePlan& plan, const std::string& task_dir) {
  if (plan.rootfs_mode != RootfsMode::kOverlay)
    return fail_msg(
        "a driver that does not run as root cannot mount this task's root file system (a volatile root or "
        "the image itself, not an overlay with its changes in the task directory)");
  if (plan.ownership.mode != OwnershipPlan::Mode::kOff)
    return fail_msg("a driver that does not run as root cannot map the image into the task's own id range ",
                    "(private_users_ownership, userns = \"auto\")");
  std::string upper = task_dir + "/upper", work = task_dir + "/work";
  if (mkdir(upper.c_str(), 0755) < 0) return fail_sys("create ", upper);
  if (mkdir(work.c_str(), 0700) < 0) return fail_sys("create ", work);
  std::string lower = TRY_CTX(overlay::lowerdir_value(plan.image_layers), runtime::kRootfsOverlayAnnotation);
  plan.spec.annotations[runtime::kRootfsOverlayAnnotation] =
      cat("lowerdir=", lower, ",upperdir=", upper, ",workdir=", work);
  return {};
}

Result<> mount_rootfs(const BundlePlan& plan, const std::string& task_dir, const std::string& rootfs) {
  const OwnershipPlan& own = plan.ownership;
  std::vector<std::string> image_layers = plan.image_layers;
  // userns = "auto": the layers idmapped with the task's maps, or copied
  // with its ids where their file system takes no idmapped mounts.
  bool copied = false;
  if (own.mode == OwnershipPlan::Mode::kMap && !own.uid_map.empty() &&
      TRY_CTX(run_husk({"check-idmap", image_layers.front()}, true), "config.userns = \"auto\"") == "no") {
    image_layers = TRY_CTX(copy_layers(plan, task_dir), "config.userns = \"auto\"");
    copied = true;
  }
  // kImage and kVolatileRoot use the image directory itself: a local
  // root filesystem (one layer); the overlays take every layer.
  const std::string& image = image_layers.front();
  // The image's ids meet the task's range: shifted on disk (chown, once:
  // the image's root records the range), or seen through idmapped mounts.
  bool idmap = false;
  if (own.mode != OwnershipPlan::Mode::kOff && !copied) {
    bool map = own.mode == OwnershipPlan::Mode::kMap;
    if (own.mode == OwnershipPlan::Mode::kAuto) {
      map = TRY_CTX(run_husk({"check-idmap", image}, true), "private_users_ownership: \"auto\"") == "yes";
      if (!map && !own.chown_ok)
        return fail_msg("config.private_users_ownership: \"auto\": the file system of ", image,
                        " takes no idmapped mounts, and chown would change an image that is shared or not a "
                        "directory");
    }
    if (map) {
      idmap = true;
    } else {
      (void)TRY_CTX(idshift::shift_tree(own.image_root, own.to), "config.private_users_ownership: shift ",
                    own.image_root, " to the range ", own.to);
    }
  }
  // What the task dir adds to the root belongs to the task's root user.
  const uint32_t root_id = own.root_uid(), root_gid = own.root_gid();
  auto give = [&](const std::string& path) -> Result<> {
    if ((root_id != 0 || root_gid != 0) && lchown(path.c_str(), root_id, root_gid) < 0)
      return fail_sys("chown ", path, " to ", root_id, ":", root_gid);
    return {};
  };
  std::string layers = task_dir;
  switch (plan.rootfs_mode) {
    case RootfsMode::kImage:
      return bind_image(own, idmap, image, rootfs);
    case RootfsMode::kVolatileRoot: {
      // nspawn --volatile=yes: an empty tmpfs root, the image's /usr read-only.
      std::string opts = cat("mode=755,uid=", root_id, ",gid=", root_gid);
      if (mount("tmpfs", rootfs.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) < 0)
        return fail_sys("mount a tmpfs root on ", rootfs);
      std::string usr = rootfs + "/usr";
      if (mkdir(usr.c_str(), 0755) < 0) return fail_sys("create ", usr);
      TRYV(give(usr));
      TRYV(bind_image(own, idmap, image + "/usr", usr));
      if (mount(nullptr, usr.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) < 0)
        return fail_sys("make ", usr, " read-only");
      return {};
    }
    case RootfsMode::kVolatileOverlay:
      layers = task_dir + "/volatile";
      if (mkdir(layers.c_str(), 0700) < 0) return fail_sys("create ", layers);
      if (mount("tmpfs", layers.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=700") < 0)
        return fail_sys("mount the tmpfs for the task's changes on ", layers);
      [[fallthrough]];
    case RootfsMode::kOverlay: {
      std::string upper = layers + "/upper", work = layers + "/work";
      if (mkdir(upper.c_str(), 0755) < 0) return fail_sys("create ", upper);
      TRYV(give(upper));  // the overlay's root takes its owner from the upper dir
      if (mkdir(work.c_str(), 0700) < 0) return fail_sys("create ", work);
      std::vector<std::string> lower = image_layers;
      if (idmap) {
        // Each layer's idmapped clone at lower/N, on a tmpfs of the task's
        // own (one lazy unmount of lower/ takes them all away).
        std::string at = task_dir + "/lower";
        if (mkdir(at.c_str(), 0700) < 0) return fail_sys("create ", at);
        if (mount("tmpfs", at.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=700,size=64k") < 0)
          return fail_sys("mount a tmpfs for the task's idmapped layers on ", at);
        lower.clear();
        for (size_t i = 0; i < image_layers.size(); ++i) {
          std::string one = cat(at, "/", i);
          if (mkdir(one.c_str(), 0700) < 0) return fail_sys("create ", one);
          TRYV(bind_image(own, true, image_layers[i], one));
          lower.push_back(one);
        }
      }
      TRYV_CTX(overlay::mount_overlay(overlay::OverlaySpec{lower, upper, work, false}, rootfs),
               "mount the task's root filesystem on ", rootfs);
      return {};
    }
  }
  return {};
}
}  // namespace

Result<TaskHandleState> TaskManager::start(const TaskSpec& task, BundlePlan plan, const std::string& cid,
                                           const std::string& task_dir) {
  TaskHandleState h;
  h.task_id = task.id;
  h.task_name = task.name;
  h.alloc_id = task.alloc_id;
  h.container_id = cid;
  h.task_dir = task_dir;
  h.stop_signal = plan.stop_signal;
  h.keep = plan.keep_container;
  // Anything that fails from here on leaves nothing behind.
  bool ok = false;
  struct Undo {
    TaskManager* m;
    std::string dir;
    std::string cid;
    std::string store;
    bool* ok;
    ~Undo() {
      if (*ok) return;
      (void)runtime::remove(m->husk_options(), cid, true);
      m->discard(dir);
      if (!store.empty())
        if (auto s = image::Store::open(store)) (void)s->release_lease(cid);
    }
  } undo{this, task_dir, cid, "", &ok};

  // The lease first: a GC running now cannot take the layers away.
  if (!plan.image_id.empty()) {
    auto store = TRY_CTX(image::Store::open(plan.image_store), "start task ", task.id);
    TRYV_CTX(store.take_lease(cid, plan.image_id), "start task ", task.id);
    undo.store = h.image_store = plan.image_store;
  }
  std::string rootfs = task_dir + "/rootfs";
  if (mkdir(rootfs.c_str(), 0755) < 0) return fail_sys("create ", rootfs);
  if (!plan.image_layers.empty() && geteuid() != 0) {
    TRYV(plan_rootless_rootfs(plan, task_dir));
  } else if (!plan.image_layers.empty()) {
    TRYV(mount_rootfs(plan, task_dir, rootfs));
    h.overlay = true;
  }
  if (plan.shareable_shm_bytes > 0) {
    // ipc_mode "shareable": a /dev/shm that outlives no task dir and that
    // another task's container can bind (bundle_files.h, join_dev_shm).
    std::string shm = task_dir + kShmDir;
    if (mkdir(shm.c_str(), 0700) < 0) return fail_sys("create ", shm);
    std::string data = cat("mode=1777,size=", plan.shareable_shm_bytes);
    if (mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data.c_str()) < 0)
      return fail_sys("mount the task's shareable /dev/shm on ", shm);
  }
  plan.spec.root.path = rootfs;
  if (plan.spec.linux && !plan.spec.linux->cgroups_path)
    if (std::string path = cgroups_path_for(cid); !path.empty()) plan.spec.linux->cgroups_path = path;
  TRYV(write_file_atomic(task_dir + "/config.json", oci::emit_config(plan.spec), 0600));

  UniqueFd out = TRY(open_log(plan.discard_output ? "" : task.stdout_path));
  UniqueFd err = TRY(open_log(plan.discard_output ? "" : task.stderr_path));
  UniqueFd in;
  if (plan.interactive) {
    // Held by the container alone (the monitor passes it on): the driver
    // keeps no fd, so nothing changes across a plugin restart.
    std::string fifo = task_dir + "/stdin";
    if (mkfifo(fifo.c_str(), 0600) < 0) return fail_sys("create the task's stdin ", fifo);
    in = TRY(open_fd(fifo, O_RDWR | O_CLOEXEC));
  }
  // The container's sd_notify reaches us through husk's relay on an
  // abstract socket (a path under the task dir could pass sun_path's 108).
  UniqueFd ready;
  std::string ready_name = "husk-driver-ready/" + cid;
  if (plan.ready_timeout_ms > 0) ready = TRY(notify_listener(ready_name));
  std::string log = task_dir + "/husk.log";
  std::vector<std::string> argv = husk_argv();
  argv.insert(argv.end(), {"--log", log, "--log-format", "json", "run", "--keep"});
  if (!plan.log.driver.empty()) {
    argv.insert(argv.end(), {"--log-driver", plan.log.driver});
    for (const std::string& o : plan.log.opts) argv.insert(argv.end(), {"--log-opt", o});
  }
  argv.insert(argv.end(), {"--bundle", task_dir, cid});
  SpawnOptions so;
  so.stdin_fd = in ? in.get() : -1;
  so.stdout_fd = out.get();
  so.stderr_fd = err.get();
  if (ready) so.extra_env.push_back("NOTIFY_SOCKET=@" + ready_name);
  pid_t pid = TRY(spawn(argv, so));
  out.reset();
  err.reset();
  in.reset();
  h.monitor_pid = pid;
  h.monitor_start = runtime::process_start_time(pid);
  h.started_at_ns = now_ns();

  // Running, or the monitor has exited: with an exit status recorded the
  // task ran (and was quick); without, husk failed to create it.
  runtime::GlobalOptions g = husk_options();
  std::optional<int> monitor_status;
  for (int i = 0;; ++i) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      monitor_status = st;
      break;
    }
    auto info = runtime::state(g, cid);
    if (info && info->state.status != oci::Status::Created) break;
    if (i == 6000) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return fail_errno(ETIMEDOUT, "container ", cid, " did not start within 60 s");
    }
    sleep_ms(10);
  }
  if (!monitor_status && ready) monitor_status = wait_ready(ready.get(), pid, plan.ready_timeout_ms, task.id);
  if (monitor_status) {
    auto recorded = runtime::exit_status(g, cid);
    if (!recorded || !*recorded) {
      std::string why = last_logged_error(log);
      if (why.empty()) why = cat("husk exited with status ", exit_code_of(*monitor_status));
      return fail_msg(why);
    }
  }
  auto t = std::make_shared<Task>();
  t->h = h;
  {
    std::lock_guard<std::mutex> l(mu_);
    tasks_[task.id] = t;
  }
  if (monitor_status) finish(*t, monitor_status);
  else watch(t, true);
  ok = true;
  return h;
}

void TaskManager::finish(Task& t, std::optional<int> monitor_status) {
  TaskResult r;
  auto recorded = runtime::exit_status(husk_options(), t.h.container_id);
  if (recorded && *recorded) {
    r.exit_code = (*recorded)->exit_code;
    r.signal = (*recorded)->signal;
    r.oom_killed = (*recorded)->oom_killed;
  } else {
    r.exit_code = monitor_status ? exit_code_of(*monitor_status) : -1;
    r.err = "the task's monitor ended without recording the container's exit status";
  }
  std::lock_guard<std::mutex> l(t.mu);
  t.result = r;
  t.exited = true;
  t.completed_at_ns = now_ns();
  t.cv.notify_all();
}

void TaskManager::watch(std::shared_ptr<Task> t, bool our_child) {
  t->waiter = std::thread([this, t, our_child] {
    std::optional<int> status;
    if (our_child) {
      int st;
      while (waitpid(t->h.monitor_pid, &st, 0) < 0 && errno == EINTR) {
      }
      status = st;
    } else {
      int fd = static_cast<int>(syscall(SYS_pidfd_open, t->h.monitor_pid, 0));
      if (fd >= 0 && runtime::process_alive(t->h.monitor_pid, t->h.monitor_start)) {
        struct pollfd p = {fd, POLLIN, 0};
        while (poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
      }
      if (fd >= 0) close(fd);
    }
    finish(*t, status);
  });
}

Result<> TaskManager::recover(const TaskHandleState& h) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (tasks_.count(h.task_id)) return {};
  }
  auto info = runtime::state(husk_options(), h.container_id);
  if (!info) return fail(std::move(info.error()).with_context(cat("recover task ", h.task_id)));
  auto t = std::make_shared<Task>();
  t->h = h;
  {
    std::lock_guard<std::mutex> l(mu_);
    tasks_[h.task_id] = t;
  }
  if (runtime::process_alive(h.monitor_pid, h.monitor_start)) watch(t, false);
  else finish(*t, std::nullopt);
  return {};
}

Result<std::shared_ptr<TaskManager::Task>> TaskManager::find(const std::string& task_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return fail_errno(ENOENT, "task not found for given id \"", task_id, "\"");
  return it->second;
}

bool TaskManager::known(const std::string& task_id) {
  std::lock_guard<std::mutex> l(mu_);
  return tasks_.count(task_id) > 0;
}

Result<TaskResult> TaskManager::wait(const std::string& task_id, const std::function<bool()>& cancelled) {
  auto t = TRY(find(task_id));
  std::unique_lock<std::mutex> l(t->mu);
  while (!t->exited) {
    if (cancelled && cancelled()) return fail_errno(ECANCELED, "wait for task ", task_id, ": cancelled");
    t->cv.wait_for(l, std::chrono::milliseconds(500));
  }
  return t->result;
}

Result<> TaskManager::stop(const std::string& task_id, int64_t timeout_ms, const std::string& sig_name) {
  auto t = TRY(find(task_id));
  int sig = SIGTERM;
  // Nomad's kill_signal first, else the image's StopSignal.
  const std::string& name = sig_name.empty() ? t->h.stop_signal : sig_name;
  if (!name.empty()) sig = TRY_CTX(runtime::parse_signal(name), "stop task ", task_id);
  runtime::GlobalOptions g = husk_options();
  auto exited_within = [&](int64_t ms) {
    std::unique_lock<std::mutex> l(t->mu);
    return t->cv.wait_for(l, std::chrono::milliseconds(ms), [&] { return t->exited; });
  };
  if (exited_within(0)) return {};
  int64_t sent = now_ns();
  (void)runtime::kill(g, t->h.container_id, sig, false);
  if (exited_within(timeout_ms)) {
    log_info(cat("task ", task_id, " exited ", (now_ns() - sent) / 1000000, " ms after ",
                 name.empty() ? "SIGTERM" : name, " (timeout ", timeout_ms, " ms)"));
    return {};
  }
  // Past the timeout: every process of the container's cgroup.
  log_info(cat("task ", task_id, " did not exit within ", timeout_ms, " ms of ", name.empty() ? "SIGTERM" : name,
               ": killing it"));
  TRYV_CTX(runtime::kill(g, t->h.container_id, SIGKILL, true), "kill task ", task_id);
  if (exited_within(10000)) return {};
  return fail_errno(ETIMEDOUT, "task ", task_id, " did not exit 10 s after SIGKILL");
}

// gc.container = false: the stopped container stays in husk's state (husk
// list and state show it) with its task dir, minus the mounts: its root's
// changes stay in upper/, its spec in config.json, husk's log in husk.log.
// The `kept` file there says so, and keeps the dangling reaper away. The
// image's lease ends as for any task (the store may collect the image; the
// container's own changes are its task dir's).
Result<> TaskManager::keep_container(const Task& t) {
  const std::string& dir = t.h.task_dir;
  unmount_task_dir(dir);
  remove_dir(dir + "/copied");  // userns = "auto"'s copies of the image's layers
  std::string root = husk_options().root;
  std::string text = cat("The container ", t.h.container_id, " of task ", t.h.task_id, " (", t.h.task_name,
                         ", allocation ", t.h.alloc_id, ") was kept: the plugin's gc.container is false.\n",
                         "Its state:   husk --root ", root, " state ", t.h.container_id, "\n",
                         "Its changes: ", dir, "/upper\n", "Remove it:   husk --root ", root, " delete ",
                         t.h.container_id, " && rm -r ", dir, "\n");
  TRYV_CTX(write_file_atomic(dir + "/" + kKeptFile, text, 0644), "keep the container of task ", t.h.task_id);
  log_info(cat("kept the stopped container ", t.h.container_id, " of task ", t.h.task_id,
               " (gc.container = false): its task dir ", dir, " stays"));
  return {};
}

Result<> TaskManager::destroy(const std::string& task_id, bool force) {
  auto t = TRY(find(task_id));
  bool exited;
  {
    std::lock_guard<std::mutex> l(t->mu);
    exited = t->exited;
  }
  if (!exited && !force) return fail_msg("task ", task_id, " is running: stop it first, or destroy it with force");
  if (!exited) TRYV(stop(task_id, 0, "SIGKILL"));
  runtime::GlobalOptions g = husk_options();
  if (t->h.keep) {
    TRYV(keep_container(*t));
  } else {
    auto removed = runtime::remove(g, t->h.container_id, true);
    if (!removed && removed.error().code() != ENOENT) return fail(std::move(removed.error()));
    if (t->h.overlay && umount2((t->h.task_dir + "/rootfs").c_str(), MNT_DETACH) < 0 && errno != EINVAL &&
        errno != ENOENT)
      return fail_sys("unmount the root filesystem of task ", task_id);
    remove_task_dir(t->h.task_dir);
  }
  // The lease outlived any plugin restart in the store; it ends with the task.
  if (!t->h.image_store.empty()) {
    auto store = TRY_CTX(image::Store::open(t->h.image_store), "destroy task ", task_id);
    TRYV_CTX(store.release_lease(t->h.container_id), "destroy task ", task_id);
  }
  if (t->waiter.joinable()) t->waiter.join();
  std::lock_guard<std::mutex> l(mu_);
  tasks_.erase(task_id);
  return {};
}

Result<TaskStatusInfo> TaskManager::inspect(const std::string& task_id) {
  auto t = TRY(find(task_id));
  TaskStatusInfo s;
  s.id = task_id;
  s.name = t->h.task_name;
  s.started_at_ns = t->h.started_at_ns;
  std::lock_guard<std::mutex> l(t->mu);
  s.running = !t->exited;
  s.completed_at_ns = t->completed_at_ns;
  s.result = t->result;
  return s;
}

Result<> TaskManager::signal(const std::string& task_id, const std::string& sig_name) {
  auto t = TRY(find(task_id));
  int sig = TRY_CTX(runtime::parse_signal(sig_name), "signal task ", task_id);
  return runtime::kill(husk_options(), t->h.container_id, sig, false);
}

Result<cgroups::Stats> TaskManager::stats(const std::string& task_id) {
  auto t = TRY(find(task_id));
  std::string dir = TRY(runtime::cgroup_dir(husk_options(), t->h.container_id));
  return cgroups::read_stats(dir);
}

Result<std::vector<std::string>> TaskManager::exec_argv(const std::string& task_id,
                                                        const std::vector<std::string>& argv, bool tty,
                                                        const std::vector<std::string>& husk_options) {
  auto t = TRY(find(task_id));
  if (argv.empty()) return fail_msg("exec in task ", task_id, ": no command");
  std::vector<std::string> a = husk_argv();
  a.push_back("exec");
  if (tty) a.push_back("--tty");
  a.insert(a.end(), husk_options.begin(), husk_options.end());
  a.push_back(t->h.container_id);
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

Result<ExecResult> TaskManager::exec(const std::string& task_id, const std::vector<std::string>& argv,
                                     int64_t timeout_ms) {
  std::vector<std::string> a = TRY(exec_argv(task_id, argv, false));
  Captured c = TRY(run_captured(a, "", timeout_ms > 0 ? static_cast<int>(timeout_ms) : -1));
  if (c.timed_out) return fail_errno(ETIMEDOUT, "exec in task ", task_id, ": timed out after ", timeout_ms, " ms");
  ExecResult r;
  r.out = std::move(c.out);
  r.err = std::move(c.err);
  r.exit_code = exit_code_of(c.status);
  return r;
}

}  // namespace husk::driver
