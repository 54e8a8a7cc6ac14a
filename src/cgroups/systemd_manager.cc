#include "cgroups/systemd_manager.h"

#include <signal.h>

#include <cstdint>

#include "cgroups/fs_manager.h"
#include "cgroups/hierarchy.h"
#include "cgroups/resources.h"
#include "cgroups/systemd_bus.h"
#include "common/fd.h"

namespace husk::cgroups {
namespace {

// systemd's UNIT_NAME_MAX, terminator included.
constexpr size_t kUnitNameMax = 255;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Characters systemd allows in a unit name, but ':' (our separator) and '@'
// (templates).
// OCI limits that systemd has a unit property for. The rest (io, hugetlb,
// cpusets, unified) only go to the files, inside the delegated scope.
std::vector<UnitProperty> resource_properties(const oci::Resources& r) {
  constexpr uint64_t kInfinity = UINT64_MAX;
  std::vector<UnitProperty> out;
  if (r.memory) {
    if (r.memory->limit && *r.memory->limit != 0)
      out.push_back(
          UnitProperty::u64("MemoryMax", *r.memory->limit > 0 ? static_cast<uint64_t>(*r.memory->limit) : kInfinity));
    if (r.memory->reservation && *r.memory->reservation > 0)
      out.push_back(UnitProperty::u64("MemoryLow", static_cast<uint64_t>(*r.memory->reservation)));
  }
  if (r.pids)
    out.push_back(UnitProperty::u64("TasksMax", r.pids->limit > 0 ? static_cast<uint64_t>(r.pids->limit) : kInfinity));
  if (r.cpu) {
    if (r.cpu->shares && *r.cpu->shares > 0)
      out.push_back(UnitProperty::u64("CPUWeight", shares_to_weight(*r.cpu->shares)));
    if (r.cpu->quota) {
      uint64_t period = r.cpu->period.value_or(100000);
      uint64_t per_sec = kInfinity;
      if (*r.cpu->quota > 0 && period > 0) {
        // systemd keeps whole percents (10 ms per second): round up, as runc.
        per_sec = static_cast<uint64_t>(*r.cpu->quota) * 1000000 / period;
        if (per_sec % 10000) per_sec = (per_sec / 10000 + 1) * 10000;
      }
      out.push_back(UnitProperty::u64("CPUQuotaPerSecUSec", per_sec));
    }
    if (r.cpu->period && *r.cpu->period > 0) out.push_back(UnitProperty::u64("CPUQuotaPeriodUSec", *r.cpu->period));
  }
  return out;
}

bool valid_unit_chars(const std::string& s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-' || c == '\\';
    if (!ok) return false;
  }
  return true;
}

class SystemdManager : public Manager {
 public:
  SystemdManager(SystemdScope scope, std::string mount, bool user, std::vector<oci::Device> devices)
      : scope_(std::move(scope)), mount_(std::move(mount)), user_(user), devices_(std::move(devices)) {}
  // Reattached from state.json: the scope exists.
  SystemdManager(std::string unit, std::string path, bool user, std::unique_ptr<Manager> fs)
      : user_(user), started_(true), path_(std::move(path)), fs_(std::move(fs)) {
    scope_.unit = std::move(unit);
  }

  Creation creation() const override { return Creation::AroundProcess; }

  // Before the init exists: make sure systemd answers, so an unreachable
  // bus fails before anything was cloned.
  Result<> create() override {
    TRYV(bus());
    return {};
  }

  Result<UniqueFd> open_dir() override {
    TRYV(need_scope("open the cgroup"));
    return fs_->open_dir();
  }

  // The first process starts the scope around it; later ones join it.
  Result<> add_process(pid_t pid) override {
    if (fs_) return fs_->add_process(pid);
    SystemdBus* b = TRY(bus());
    TRYV(b->start_scope(scope_.unit, properties(), pid, started_));
    // Verify rather than trust: the scope's cgroup is where the kernel says
    // the process now is.
    std::string proc = cat("/proc/", pid, "/cgroup");
    std::string text = TRY_CTX(read_file(proc), "systemd cgroup manager: find the cgroup of ", scope_.unit);
    std::string rel = unified_cgroup_of(text);
    std::string want = (scope_.slice_path == "/" ? "" : scope_.slice_path) + "/" + scope_.unit;
    if (!ends_with(rel, want))
      return fail_errno(EIO, "systemd cgroup manager: StartTransientUnit ", scope_.unit, " finished, but process ", pid,
                        " is in cgroup ", rel, " (", proc, "), not in ", want);
    path_ = mount_ + (rel == "/" ? "" : rel);
    fs_ = make_fs_manager(mount_, rel, devices_);
    return {};
  }

  // The limits systemd knows of go to the unit too (runc's order: the unit,
  // then the files), or its next daemon-reload would reset them.
  Result<> apply(const oci::Resources& r) override {
    TRYV(need_scope("apply linux.resources"));
    std::vector<UnitProperty> props = resource_properties(r);
    if (!props.empty()) {
      SystemdBus* b = TRY(bus());
      TRYV_CTX(b->set_properties(scope_.unit, props), "linux.resources");
    }
    return fs_->apply(r);
  }
  Result<> freeze(bool frozen) override {
    TRYV(need_scope(frozen ? "freeze" : "thaw"));
    return fs_->freeze(frozen);
  }
  Result<bool> frozen() override {
    TRYV(need_scope("read cgroup.events"));
    return fs_->frozen();
  }
  Result<> kill_all(int sig) override {
    TRYV(need_scope("signal its processes"));
    return fs_->kill_all(sig);
  }
  Result<std::vector<pid_t>> pids() override {
    TRYV(need_scope("list its processes"));
    return fs_->pids();
  }
  Result<Stats> stats() override {
    TRYV(need_scope("read its stats"));
    return fs_->stats();
  }

  // Kill what is left, stop the unit and wait, reset it if it failed, and
  // remove whatever directory systemd left. Without a bus (systemd gone
  // since) the cgroup is still removed: an emptied scope is systemd's to
  // forget.
  Result<> destroy() override {
    if (!started_) return {};
    if (fs_) (void)fs_->kill_all(SIGKILL);
    Result<> stopped;
    auto b = bus();
    if (b) {
      stopped = (*b)->stop_unit(scope_.unit);
      (void)(*b)->reset_failed(scope_.unit);
    }
    if (fs_) TRYV(fs_->destroy());
    if (!stopped) return stopped;
    started_ = false;
    return {};
  }

  std::string path() const override { return path_; }
  std::string unit() const override { return scope_.unit; }

 private:
  Result<> need_scope(const char* what) {
    if (fs_) return {};
    return fail_errno(ENOENT, "systemd cgroup manager: ", what, ": scope ", scope_.unit,
                      " was not started yet (it is made around the container init)");
  }

  Result<SystemdBus*> bus() {
    if (!bus_) {
      bus_ = TRY(SystemdBus::connect(user_));
      TRYV(bus_->subscribe());
    }
    return bus_.get();
  }

  // What crun and runc ask for a container's scope.
  std::vector<UnitProperty> properties() const {
    return {
        UnitProperty::string("Description", cat("husk container ", scope_.unit)),
        UnitProperty::string("Slice", scope_.slice),
        // The cgroup below the scope is ours: systemd leaves its files alone.
        UnitProperty::boolean("Delegate", true),
        // A container is not part of the boot or shutdown ordering.
        UnitProperty::boolean("DefaultDependencies", false),
        // A failed scope is garbage-collected, not kept until reset.
        UnitProperty::string("CollectMode", "inactive-or-failed"),
        // Controllers enabled down to the scope, as the cgroupfs manager does.
        UnitProperty::boolean("MemoryAccounting", true),
        UnitProperty::boolean("CPUAccounting", true),
        UnitProperty::boolean("IOAccounting", true),
        UnitProperty::boolean("TasksAccounting", true),
    };
  }

  SystemdScope scope_;
  std::string mount_;
  bool user_ = false;
  std::vector<oci::Device> devices_;  // linux.devices, for the device program of the scope
  bool started_ = false;  // systemd accepted the unit: destroy() must stop it
  std::string path_;
  std::unique_ptr<Manager> fs_;  // the scope's directory, once it exists
  std::unique_ptr<SystemdBus> bus_;
};

}  // namespace

Result<SystemdScope> parse_systemd_cgroups_path(const std::string& cgroups_path, const std::string& container_id,
                                                bool rootless) {
  const std::string field = "linux.cgroupsPath";
  std::string slice, prefix, name;
  if (cgroups_path.empty()) {
    prefix = "husk";
    name = container_id;
  } else {
    size_t a = cgroups_path.find(':');
    size_t b = a == std::string::npos ? a : cgroups_path.find(':', a + 1);
    if (b == std::string::npos || cgroups_path.find(':', b + 1) != std::string::npos)
      return fail_msg(field, ": \"", cgroups_path,
                      "\" is not \"slice:prefix:name\", as the systemd cgroup manager needs (e.g. "
                      "\"system.slice:husk:",
                      container_id, "\")");
    slice = cgroups_path.substr(0, a);
    prefix = cgroups_path.substr(a + 1, b - a - 1);
    name = cgroups_path.substr(b + 1);
  }
  if (name.empty()) return fail_msg(field, ": \"", cgroups_path, "\" has an empty name (slice:prefix:name)");
  if (ends_with(name, ".slice"))
    return fail_msg(field, ": \"", cgroups_path, "\" names a slice (", name,
                    "): a container needs a scope, give a name without .slice");
  if (!valid_unit_chars(prefix) || !valid_unit_chars(name))
    return fail_msg(field, ": \"", cgroups_path,
                    "\": the prefix and name may only hold letters, digits and \"_.-\\\" (they form a unit name)");

  SystemdScope s;
  s.unit = prefix.empty() ? name + ".scope" : prefix + "-" + name + ".scope";
  if (s.unit.size() >= kUnitNameMax)
    return fail_msg(field, ": \"", cgroups_path, "\": unit name ", s.unit, " is longer than systemd allows (",
                    kUnitNameMax - 1, ")");

  if (slice.empty()) slice = rootless ? "user.slice" : "system.slice";
  if (slice == "-") slice = "-.slice";
  if (slice.find('/') != std::string::npos || !ends_with(slice, ".slice") || !valid_unit_chars(slice))
    return fail_msg(field, ": \"", cgroups_path, "\": slice \"", slice,
                    "\" is not a slice unit name (like system.slice or machine-pods.slice; no '/')");
  // "a-b-c.slice" lives in /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root.
  std::string base = slice.substr(0, slice.size() - 6);
  if (base == "-") {
    s.slice_path = "/";
  } else {
    std::string acc;
    size_t pos = 0;
    for (;;) {
      size_t dash = base.find('-', pos);
      std::string part = base.substr(pos, dash == std::string::npos ? std::string::npos : dash - pos);
      if (part.empty())
        return fail_msg(field, ": \"", cgroups_path, "\": slice \"", slice,
                        "\" has an empty component (each '-' separates a parent slice)");
      acc += (acc.empty() ? "" : "-") + part;
      s.slice_path += "/" + acc + ".slice";
      if (dash == std::string::npos) break;
      pos = dash + 1;
    }
  }
  s.slice = slice;
  return s;
}

Result<std::unique_ptr<Manager>> make_systemd_manager(const Options& opts, std::string mount) {
  SystemdScope scope = TRY(parse_systemd_cgroups_path(opts.cgroups_path, opts.container_id, opts.rootless));
  return std::unique_ptr<Manager>(std::make_unique<SystemdManager>(std::move(scope), std::move(mount), opts.rootless, opts.devices));
}

Result<std::unique_ptr<Manager>> open_systemd_manager(const Recorded& rec) {
  if (rec.path.empty() || rec.path[0] != '/') return fail_msg("cgroup path \"", rec.path, "\" is not absolute");
  std::string unit = rec.systemd_unit;
  if (unit.empty()) {
    // A record without the unit name: the scope's directory is named for it.
    unit = rec.path.substr(rec.path.rfind('/') + 1);
    if (!ends_with(unit, ".scope")) return fail_msg("systemd cgroup manager: no unit recorded for cgroup ", rec.path);
  }
  auto fs = open_fs_manager(rec.path, rec.devices);
  return std::unique_ptr<Manager>(
      std::make_unique<SystemdManager>(std::move(unit), rec.path, rec.rootless, std::move(fs)));
}

}  // namespace husk::cgroups
