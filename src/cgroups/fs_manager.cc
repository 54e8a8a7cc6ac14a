// The cgroupfs manager (cgroup v2), the "disabled" manager, and detection.
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "cgroups/manager.h"
#include "cgroups/resources.h"

namespace husk::cgroups {
namespace {

bool is_cgroup2(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, nullptr);
}

// Our own cgroup, from /proc/self/cgroup's "0::" line.
std::string own_cgroup() {
  auto s = read_file("/proc/self/cgroup");
  if (!s) return "/";
  size_t pos = s->find("0::");
  if (pos == std::string::npos) return "/";
  size_t end = s->find('\n', pos);
  return s->substr(pos + 3, end == std::string::npos ? std::string::npos : end - pos - 3);
}

class FsManager : public Manager {
 public:
  FsManager(std::string mount, std::string rel) : mount_(std::move(mount)), rel_(std::move(rel)) {
    path_ = mount_ + rel_;
  }
  explicit FsManager(std::string abs) : path_(std::move(abs)) {}

  Result<> create() override {
    // mkdir -p below the mount point, remembering what we made.
    std::string cur = mount_;
    size_t pos = 1;
    while (pos <= rel_.size()) {
      size_t slash = rel_.find('/', pos);
      std::string comp = rel_.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
      pos = slash == std::string::npos ? rel_.size() + 1 : slash + 1;
      if (comp.empty()) continue;
      cur += "/" + comp;
      if (mkdir(cur.c_str(), 0755) < 0) {
        if (errno != EEXIST) return fail_sys("mkdir ", cur);
        if (cur == path_) {
          auto procs = read_file(cur + "/cgroup.procs");
          if (procs && !trim(*procs).empty())
            return fail_errno(EEXIST, "cgroup ", cur, " is in use by other processes");
        }
      }
    }
    return {};
  }

  Result<UniqueFd> open_dir() override { return open_fd(path_, O_PATH | O_DIRECTORY); }

  Result<> add_process(pid_t pid) override {
    TRYV_CTX(write_file(path_ + "/cgroup.procs", std::to_string(pid)), "add process ", pid, " to cgroup ", path_);
    return {};
  }

  Result<> apply(const oci::Resources& resources) override {
    auto exists = [&](const std::string& f) { return access((path_ + "/" + f).c_str(), F_OK) == 0; };
    std::vector<FileWrite> writes = TRY(translate(resources, exists));
    // "No limit" needs no controller: drop such writes for a controller the
    // hierarchy does not offer (podman asks for pids.limit 0 by default).
    std::string mount = mount_.empty() ? detect_mount_point() : mount_;
    auto offered = words(read_file(mount + "/cgroup.controllers").value_or(""));
    auto unavailable = [&](const std::string& c) {
      return !c.empty() && std::find(offered.begin(), offered.end(), c) == offered.end();
    };
    std::map<std::string, bool> only_unlimited;
    for (const auto& w : writes)
      if (unavailable(w.controller)) only_unlimited[w.controller] = only_unlimited.count(w.controller) ? only_unlimited[w.controller] && w.value == "max" : w.value == "max";
    std::erase_if(writes, [&](const FileWrite& w) { return only_unlimited.count(w.controller) && only_unlimited[w.controller]; });
    std::set<std::string> needed;
    for (const auto& w : writes)
      if (!w.controller.empty()) needed.insert(w.controller);
    for (const auto& c : needed) TRYV(enable_controller(c, writes));
    if (resources.memory && resources.memory->check_before_update.value_or(false) && resources.memory->limit &&
        *resources.memory->limit > 0) {
      auto cur = read_file(path_ + "/memory.current");
      if (cur && strtoll(cur->c_str(), nullptr, 10) > *resources.memory->limit)
        return fail_msg("linux.resources.memory.limit: ", *resources.memory->limit, " is below the current usage ",
                        trim(*cur), " (checkBeforeUpdate)");
    }
    for (const auto& w : writes) {
      std::string file = path_ + "/" + w.file;
      if (access(file.c_str(), F_OK) < 0)
        return fail_errno(ENOENT, w.field, ": ", file, " does not exist");
      TRYV_CTX(write_file(file, w.value), w.field, ": write \"", w.value, "\" to ", file);
    }
    return {};
  }

  Result<> freeze(bool frozen) override {
    TRYV_CTX(write_file(path_ + "/cgroup.freeze", frozen ? "1" : "0"), frozen ? "freeze " : "thaw ", path_);
    for (int i = 0; i < 500; ++i) {
      if (TRY(this->frozen()) == frozen) return {};
      sleep_ms(10);
    }
    return fail_errno(ETIMEDOUT, "cgroup ", path_, " did not become ", frozen ? "frozen" : "thawed");
  }

  Result<bool> frozen() override {
    std::string ev = TRY(read_file(path_ + "/cgroup.events"));
    return ev.find("frozen 1") != std::string::npos;
  }

  Result<> kill_all(int sig) override {
    if (sig == SIGKILL && access((path_ + "/cgroup.kill").c_str(), F_OK) == 0)
      return write_file(path_ + "/cgroup.kill", "1");
    // Freeze so nothing forks away between listing and signalling.
    bool was_frozen = TRY(frozen());
    if (!was_frozen) TRYV(freeze(true));
    auto list = pids();
    if (list)
      for (pid_t p : *list) ::kill(p, sig);
    if (!was_frozen) TRYV(freeze(false));
    if (!list) return fail(list.error());
    return {};
  }

  Result<std::vector<pid_t>> pids() override {
    std::vector<pid_t> out;
    TRYV(collect(path_, out));
    return out;
  }

  Result<Stats> stats() override {
    Stats st;
    auto num = [&](const char* f) -> std::optional<uint64_t> {
      auto s = read_file(path_ + "/" + f);
      if (!s) return std::nullopt;
      std::string t = trim(*s);
      if (t == "max") return UINT64_MAX;
      return strtoull(t.c_str(), nullptr, 10);
    };
    auto keyed = [&](const char* f) {
      std::map<std::string, uint64_t> m;
      auto s = read_file(path_ + "/" + f);
      if (!s) return m;
      auto w = words(*s);
      for (size_t i = 0; i + 1 < w.size(); i += 2) m[w[i]] = strtoull(w[i + 1].c_str(), nullptr, 10);
      return m;
    };
    if (auto cur = num("memory.current")) {
      MemoryStats m;
      m.usage = *cur;
      m.max_usage = num("memory.peak").value_or(0);
      m.limit = num("memory.max").value_or(UINT64_MAX);
      m.swap_usage = num("memory.swap.current").value_or(0);
      auto ms = keyed("memory.stat");
      m.anon = ms["anon"];
      m.file = ms["file"];
      m.kernel = ms["kernel"];
      auto ev = keyed("memory.events");
      m.oom = ev["oom"];
      m.oom_kill = ev["oom_kill"];
      st.memory = m;
    }
    auto cs = keyed("cpu.stat");
    if (!cs.empty()) {
      CpuStats c;
      c.usage_usec = cs["usage_usec"];
      c.user_usec = cs["user_usec"];
      c.system_usec = cs["system_usec"];
      c.nr_periods = cs["nr_periods"];
      c.nr_throttled = cs["nr_throttled"];
      c.throttled_usec = cs["throttled_usec"];
      st.cpu = c;
    }
    st.pids_current = num("pids.current");
    st.pids_limit = num("pids.max");
    return st;
  }

  Result<> destroy() override {
    if (access(path_.c_str(), F_OK) < 0) return {};
    (void)kill_all(SIGKILL);
    for (int i = 0; i < 500; ++i) {
      auto r = remove_tree(path_);
      if (r) return {};
      if (r.error().code() != EBUSY) return r;
      sleep_ms(10);
    }
    return fail_errno(EBUSY, "remove cgroup ", path_, ": processes are still in it");
  }

  std::string path() const override { return path_; }

 private:
  Result<> enable_controller(const std::string& ctrl, const std::vector<FileWrite>& writes) {
    std::string mount = mount_.empty() ? detect_mount_point() : mount_;
    auto available = read_file(mount + "/cgroup.controllers");
    auto list = words(available.value_or(""));
    std::string field;
    for (const auto& w : writes)
      if (w.controller == ctrl) field = w.field;
    if (std::find(list.begin(), list.end(), ctrl) == list.end())
      return fail_errno(ENOTSUP, field, ": the ", ctrl, " controller is not available in ", mount,
                        " (cgroup.controllers: \"", trim(available.value_or("")), "\")");
    // Every ancestor of our cgroup delegates the controller to its children.
    std::string cur = mount;
    std::string rel = path_.substr(mount.size());
    size_t pos = 1;
    while (pos < rel.size()) {
      std::string sc = cur + "/cgroup.subtree_control";
      auto have = words(read_file(sc).value_or(""));
      if (std::find(have.begin(), have.end(), ctrl) == have.end()) {
        auto r = write_file(sc, "+" + ctrl);
        if (!r) return fail(std::move(r.error()).with_context(cat(field, ": enable the ", ctrl, " controller in ", sc)));
      }
      size_t slash = rel.find('/', pos);
      cur = mount + rel.substr(0, slash);
      pos = slash == std::string::npos ? rel.size() : slash + 1;
    }
    return {};
  }

  static Result<> collect(const std::string& dir, std::vector<pid_t>& out) {
    auto procs = read_file(dir + "/cgroup.procs");
    if (!procs) return fail(procs.error());
    for (const auto& w : words(*procs)) out.push_back(static_cast<pid_t>(atoi(w.c_str())));
    DIR* d = opendir(dir.c_str());
    if (!d) return {};
    while (struct dirent* e = readdir(d)) {
      if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
      (void)collect(dir + "/" + e->d_name, out);
    }
    closedir(d);
    return {};
  }

  static Result<> remove_tree(const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (d) {
      std::vector<std::string> subs;
      while (struct dirent* e = readdir(d))
        if (e->d_type == DT_DIR && e->d_name[0] != '.') subs.push_back(dir + "/" + e->d_name);
      closedir(d);
      for (const auto& s : subs) TRYV(remove_tree(s));
    }
    if (rmdir(dir.c_str()) < 0 && errno != ENOENT) return fail_sys("remove cgroup ", dir);
    return {};
  }

  std::string mount_;
  std::string rel_;
  std::string path_;
};

class DisabledManager : public Manager {
 public:
  Result<> create() override { return {}; }
  Result<UniqueFd> open_dir() override { return UniqueFd(); }
  Result<> add_process(pid_t) override { return {}; }
  Result<> apply(const oci::Resources& r) override {
    bool asks = r.memory || r.cpu || r.pids || r.block_io || !r.hugepage_limits.empty() || !r.rdma.empty() ||
                !r.unified.empty();
    if (asks) return fail_msg("linux.resources: cgroups are disabled (--cgroup-manager disabled) but the spec asks for limits");
    return {};
  }
  Result<> freeze(bool) override { return fail_msg("cgroups are disabled: cannot freeze"); }
  Result<bool> frozen() override { return false; }
  Result<> kill_all(int) override { return fail_msg("cgroups are disabled: cannot signal every process"); }
  Result<std::vector<pid_t>> pids() override { return std::vector<pid_t>{}; }
  Result<Stats> stats() override { return Stats{}; }
  Result<> destroy() override { return {}; }
  std::string path() const override { return ""; }
};

Result<std::string> relative_path(const Options& o) {
  std::string p = o.cgroups_path;
  if (p.empty()) p = "/husk/" + o.container_id;
  else if (p[0] != '/') {
    std::string own = own_cgroup();
    p = (own == "/" ? "" : own) + "/" + p;
  }
  size_t pos = 0;
  while (pos < p.size()) {
    size_t slash = p.find('/', pos);
    std::string comp = p.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (comp == "..") return fail_msg("linux.cgroupsPath: \"..\" is not allowed in \"", o.cgroups_path, "\"");
    pos = slash == std::string::npos ? p.size() : slash + 1;
  }
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::string detect_mount_point() {
  if (is_cgroup2("/sys/fs/cgroup")) return "/sys/fs/cgroup";
  if (is_cgroup2("/sys/fs/cgroup/unified")) return "/sys/fs/cgroup/unified";
  return "";
}

Result<std::unique_ptr<Manager>> make_manager(const Options& opts) {
  switch (opts.kind) {
    case ManagerKind::Disabled:
      return std::unique_ptr<Manager>(new DisabledManager());
    case ManagerKind::Systemd:
      return fail_errno(ENOTSUP, "--systemd-cgroup: the systemd cgroup manager is not implemented yet; use cgroupfs");
    case ManagerKind::Fs:
      break;
  }
  std::string mount = opts.mount_point.empty() ? detect_mount_point() : opts.mount_point;
  if (mount.empty())
    return fail_errno(ENOENT, "no cgroup2 hierarchy is mounted (at /sys/fs/cgroup or /sys/fs/cgroup/unified); "
                              "use --cgroup-manager disabled to run without a cgroup");
  std::string rel = TRY(relative_path(opts));
  return std::unique_ptr<Manager>(new FsManager(mount, rel));
}

Result<std::unique_ptr<Manager>> open_existing(ManagerKind kind, const std::string& path) {
  if (kind == ManagerKind::Disabled || path.empty()) return std::unique_ptr<Manager>(new DisabledManager());
  if (kind == ManagerKind::Systemd) return fail_errno(ENOTSUP, "systemd cgroup manager: not implemented yet");
  return std::unique_ptr<Manager>(new FsManager(path));
}

}  // namespace husk::cgroups
