#include "cgroups/fs_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "cgroups/device_bpf.h"
#include "cgroups/hierarchy.h"
#include "cgroups/resources.h"
#include "cgroups/stats.h"
#include "common/fd.h"

namespace husk::cgroups {
namespace {

// Freezing and removal wait in 10 ms steps for at most 5 s.
constexpr int kPollMs = 10;
constexpr int kPollSteps = 500;

void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, nullptr);
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// One write of one line, with an error that names the value and the file.
Result<> write_knob(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return fail_sys("write \"", value, "\" to ", path);
  UniqueFd owned(fd);
  ssize_t n;
  do {
    n = ::write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_sys("write \"", value, "\" to ", path);
  return {};
}

std::vector<std::string> sub_cgroups(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string p = dir + "/" + e->d_name;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.push_back(std::move(p));
  }
  closedir(d);
  return out;
}

// cgroup.procs of dir and every cgroup below it. Sub-cgroups may vanish
// while we walk: only the top one must be readable.
Result<> collect_pids(const std::string& dir, std::vector<pid_t>& out, bool top) {
  auto procs = read_file(dir + "/cgroup.procs");
  if (!procs) {
    if (!top) return {};
    return fail(std::move(procs.error()).with_context(cat("list the processes of cgroup ", dir)));
  }
  for (const auto& w : split_words(*procs)) out.push_back(static_cast<pid_t>(strtol(w.c_str(), nullptr, 10)));
  for (const auto& sub : sub_cgroups(dir)) TRYV(collect_pids(sub, out, false));
  return {};
}

// Bottom-up: a cgroup can only be removed once it has no children.
Result<> remove_tree(const std::string& dir) {
  for (const auto& sub : sub_cgroups(dir)) TRYV(remove_tree(sub));
  if (rmdir(dir.c_str()) < 0 && errno != ENOENT) return fail_sys("remove cgroup ", dir);
  return {};
}

class FsManager : public Manager {
 public:
  FsManager(std::string mount, std::string rel, std::vector<oci::Device> devices)
      : mount_(std::move(mount)), rel_(std::move(rel)), path_(mount_ + rel_), devices_(std::move(devices)) {}

  Result<> create() override {
    auto dirs = ancestors(mount_, rel_);
    dirs.push_back(path_);
    for (size_t i = 1; i < dirs.size(); ++i) {
      if (mkdir(dirs[i].c_str(), 0755) == 0) continue;
      if (errno != EEXIST) return fail_sys("create cgroup ", dirs[i]);
    }
    // Reusing a cgroup is fine (a cgroupsPath made ahead by the caller), but
    // not one that holds processes: that is another container's.
    std::vector<pid_t> pids;
    if (collect_pids(path_, pids, true) && !pids.empty())
      return fail_errno(EBUSY, "cgroup ", path_, " is in use: it already has ", pids.size(),
                        " process(es) (pid ", pids[0], ")");
    delegate_offered_controllers(mount_, rel_);
    created_ = true;
    return {};
  }

  Result<UniqueFd> open_dir() override {
    return TRY_CTX(open_fd(path_, O_PATH | O_DIRECTORY), "open cgroup ", path_);
  }

  Result<> add_process(pid_t pid) override {
    return write_knob(path_ + "/cgroup.procs", std::to_string(pid));
  }

  Result<> apply(const oci::Resources& resources) override {
    auto present = [&](const std::string& f) { return exists(path_ + "/" + f); };
    std::vector<FileWrite> writes = TRY(translate(resources, present));
    // As runc: a new container always gets a program (no rules = deny all
    // but the defaults); an update without device rules keeps the one it has.
    std::optional<DevicePolicy> devices;
    if (created_ || !resources.devices.empty()) devices = TRY(device_policy(resources.devices, devices_));

    // Make each controller available first. One that the hierarchy does not
    // offer is an error, unless every write for it only lifts a limit.
    std::map<std::string, std::vector<const FileWrite*>> by_controller;
    for (const auto& w : writes)
      if (!w.controller.empty()) by_controller[w.controller].push_back(&w);
    std::set<std::string> skipped;
    for (const auto& [ctrl, ws] : by_controller) {
      auto r = delegate_controller(mount_, rel_, ctrl, ws.front()->field);
      if (r) continue;
      bool all_unlimited = true;
      for (const auto* w : ws) all_unlimited = all_unlimited && is_unlimited(*w);
      if (r.error().code() == ENOTSUP && all_unlimited) {
        skipped.insert(ctrl);
        continue;
      }
      return r;
    }

    if (resources.memory && resources.memory->check_before_update.value_or(false) && resources.memory->limit &&
        *resources.memory->limit > 0 && !skipped.count("memory"))
      TRYV(check_memory_usage(*resources.memory->limit));

    for (const auto& w : writes) {
      if (skipped.count(w.controller)) continue;
      std::string file = path_ + "/" + w.file;
      if (!exists(file)) {
        if (w.skip_if_missing) continue;
        return fail_errno(ENOENT, w.field, ": the cgroup has no file ", w.file, " (", file, ")");
      }
      TRYV_CTX(write_knob(file, w.value), w.field);
    }
    if (devices) TRYV(apply_devices(*devices));
    return {};
  }

  Result<> freeze(bool want) override {
    TRYV_CTX(write_knob(path_ + "/cgroup.freeze", want ? "1" : "0"), want ? "freeze" : "thaw");
    // The write only starts it: tasks stop at their next return to user
    // space. cgroup.events says when all of them have.
    for (int i = 0; i < kPollSteps; ++i) {
      if (TRY(frozen()) == want) return {};
      sleep_ms(kPollMs);
    }
    return fail_errno(ETIMEDOUT, "cgroup ", path_, " did not become ", want ? "frozen" : "thawed", " within ",
                      kPollSteps * kPollMs / 1000, " s (", path_, "/cgroup.events)");
  }

  Result<bool> frozen() override {
    std::string ev = TRY(read_file(path_ + "/cgroup.events"));
    auto m = parse_flat_keyed(ev);
    auto it = m.find("frozen");
    return it != m.end() && it->second == 1;
  }

  Result<> kill_all(int sig) override {
    // cgroup.kill (5.14+) kills the whole subtree atomically, forks included.
    if (sig == SIGKILL && exists(path_ + "/cgroup.kill")) return write_knob(path_ + "/cgroup.kill", "1");
    std::vector<pid_t> list = TRY(pids());
    if (list.empty()) return {};
    // Freeze so nothing forks away between listing and signalling. A
    // cgroup that was frozen already (paused) stays so.
    bool froze = false;
    if (exists(path_ + "/cgroup.freeze") && !frozen().value_or(true)) {
      TRYV_CTX(freeze(true), "signal every process of cgroup ", path_);
      froze = true;
      list = TRY(pids());
    }
    for (pid_t p : list)
      if (p > 0) ::kill(p, sig);  // ESRCH: it exited meanwhile
    if (froze) TRYV(freeze(false));
    return {};
  }

  Result<std::vector<pid_t>> pids() override {
    std::vector<pid_t> out;
    TRYV(collect_pids(path_, out, true));
    return out;
  }

  Result<Stats> stats() override {
    if (!exists(path_)) return fail_errno(ENOENT, "read the stats of cgroup ", path_, ": it does not exist");
    return read_stats(path_);
  }

  Result<> destroy() override {
    if (!exists(path_)) return {};
    (void)kill_all(SIGKILL);
    // Killed tasks leave the cgroup asynchronously: rmdir is EBUSY until
    // the last one has exited.
    for (int i = 0;; ++i) {
      auto r = remove_tree(path_);
      if (r || r.error().code() != EBUSY || i == kPollSteps) return r;
      sleep_ms(kPollMs);
    }
  }

  std::string path() const override { return path_; }

 private:
  // checkBeforeUpdate: a limit below what is used now would OOM-kill the
  // container at once; refuse it instead.
  Result<> check_memory_usage(int64_t limit) {
    std::string file = path_ + "/memory.current";
    auto cur = read_file(file);
    if (!cur) return fail(std::move(cur.error()).with_context("linux.resources.memory.checkBeforeUpdate"));
    uint64_t used = strtoull(cur->c_str(), nullptr, 10);
    if (static_cast<uint64_t>(limit) < used)
      return fail_msg("linux.resources.memory.limit: ", limit, " is below the current usage ", used, " (", file,
                      "; checkBeforeUpdate is set)");
    return {};
  }

  // The program goes on the cgroup2 directory whenever there is one that
  // we may attach to. On a hybrid host that is the unified tree
  // (/sys/fs/cgroup/unified) even though the devices controller is v1's:
  // the kernel runs the cgroup2 device programs of a task's unified cgroup
  // (devcgroup_check_permission: the BPF hook first, then the v1
  // controller), and husk leaves its containers in the v1 devices cgroup
  // of its caller (usually allow-all), so without the program nothing would
  // enforce the rules there. That v1 cgroup still applies on top.
  // No program on a fake tree (unit tests) or without the privilege
  // (rootless; see can_attach_device_programs).
  Result<> apply_devices(const DevicePolicy& policy) {
    if (!is_cgroup2(path_) || !can_attach_device_programs()) return {};
    UniqueFd dir = TRY_CTX(open_fd(path_, O_RDONLY | O_DIRECTORY), "linux.resources.devices: open cgroup ", path_);
    auto r = attach_device_program(dir.get(), device_program(policy));
    // A kernel without cgroup BPF cannot filter, and a new container whose
    // rules allow everything needs no filter (runc's canSkipEBPFError).
    if (!r && created_ && policy.default_allow && policy.exceptions.empty()) return {};
    TRYV_CTX(std::move(r), "linux.resources.devices: cgroup ", path_);
    return {};
  }

  std::string mount_;
  std::string rel_;
  std::string path_;
  std::vector<oci::Device> devices_;
  bool created_ = false;  // by create(): a new container, not an update
};

}  // namespace

std::unique_ptr<Manager> make_fs_manager(std::string mount, std::string rel, std::vector<oci::Device> devices) {
  return std::make_unique<FsManager>(std::move(mount), std::move(rel), std::move(devices));
}

std::unique_ptr<Manager> open_fs_manager(std::string path, std::vector<oci::Device> devices) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string mount = mount_point_of(path);
  if (mount == "/") return std::make_unique<FsManager>("", path, std::move(devices));
  return std::make_unique<FsManager>(mount, path.substr(mount.size()), std::move(devices));
}

}  // namespace husk::cgroups
