#include "cgroups/resources.h"

#include <map>

namespace husk::cgroups {
namespace {

std::string device(int64_t major, int64_t minor) { return cat(major, ':', minor); }

Result<> add_memory(const oci::MemoryResources& m, const std::string& f, std::vector<FileWrite>& w) {
  // runc treats 0 as "not set" for limit and reservation: a 0 limit would
  // OOM-kill the container at once.
  auto limit_value = [](int64_t v) { return v < 0 ? std::string("max") : std::to_string(v); };
  if (m.limit && *m.limit != 0) w.push_back({"memory.max", limit_value(*m.limit), "memory", f + "limit"});
  if (m.reservation && *m.reservation != 0)
    w.push_back({"memory.low", limit_value(*m.reservation), "memory", f + "reservation"});
  if (m.swap) {
    // OCI swap is memory+swap; memory.swap.max is the swap part alone.
    // -1 is unlimited; 0 means no swap (as crun writes it).
    int64_t swap = *m.swap;
    if (swap > 0) {
      if (!m.limit || *m.limit <= 0)
        return fail_msg(f, "swap: ", swap, " needs linux.resources.memory.limit too (OCI swap is memory+swap)");
      if (swap < *m.limit)
        return fail_msg(f, "swap: ", swap, " is below linux.resources.memory.limit ", *m.limit,
                        " (OCI swap is memory+swap)");
      swap -= *m.limit;
    }
    w.push_back({"memory.swap.max", limit_value(swap), "memory", f + "swap", true});
  }
  // cgroup v2 has no knob for these; crun refuses them rather than drop them.
  if (m.kernel) return fail_msg(f, "kernel: cgroup v2 has no kernel memory limit");
  if (m.kernel_tcp) return fail_msg(f, "kernelTCP: cgroup v2 has no kernel TCP memory limit");
  if (m.swappiness) return fail_msg(f, "swappiness: cgroup v2 has no per-cgroup swappiness");
  if (m.use_hierarchy) return fail_msg(f, "useHierarchy: cgroup v2 is always hierarchical");
  // memory.oom.group is not the same thing (it kills the whole group on an
  // OOM instead of none): crun refuses, so do we.
  if (m.disable_oom_killer.value_or(false))
    return fail_msg(f, "disableOOMKiller: cgroup v2 cannot disable the OOM killer of a cgroup");
  return {};
}

Result<> add_cpu(const oci::CpuResources& c, const std::string& f, std::vector<FileWrite>& w) {
  if (c.realtime_runtime && *c.realtime_runtime != 0)
    return fail_msg(f, "realtimeRuntime: cgroup v2 has no realtime CPU bandwidth");
  if (c.realtime_period && *c.realtime_period != 0)
    return fail_msg(f, "realtimePeriod: cgroup v2 has no realtime CPU bandwidth");
  // shares 0 is docker's "not set".
  if (c.shares && *c.shares != 0) w.push_back({"cpu.weight", std::to_string(shares_to_weight(*c.shares)), "cpu", f + "shares"});
  bool quota_set = c.quota && *c.quota != 0;
  bool period_set = c.period && *c.period != 0;
  if (quota_set || period_set) {
    // As runc: a quota <= 0 lifts the limit, and without a period only the
    // quota is written, so the kernel keeps the period set before (update).
    std::string v = quota_set && *c.quota > 0 ? std::to_string(*c.quota) : "max";
    if (period_set) v += " " + std::to_string(*c.period);
    w.push_back({"cpu.max", v, "cpu", f + (quota_set ? "quota" : "period")});
  }
  if (c.burst) w.push_back({"cpu.max.burst", std::to_string(*c.burst), "cpu", f + "burst"});
  if (c.idle) w.push_back({"cpu.idle", std::to_string(*c.idle), "cpu", f + "idle"});
  if (c.cpus && !c.cpus->empty()) w.push_back({"cpuset.cpus", *c.cpus, "cpuset", f + "cpus"});
  if (c.mems && !c.mems->empty()) w.push_back({"cpuset.mems", *c.mems, "cpuset", f + "mems"});
  return {};
}

Result<> add_block_io(const oci::BlockIoResources& b, const std::string& f,
                      const std::function<bool(const std::string&)>& exists, std::vector<FileWrite>& w) {
  if (b.leaf_weight) return fail_msg(f, "leafWeight: cgroup v2 has no leaf weight");
  // BFQ takes the blkio weight as it is (1..1000); without BFQ, io.weight
  // (iocost) has the 1..10000 range.
  if (b.weight && *b.weight != 0) {
    if (exists("io.bfq.weight")) w.push_back({"io.bfq.weight", std::to_string(*b.weight), "io", f + "weight"});
    else w.push_back({"io.weight", std::to_string(blkio_to_io_weight(*b.weight)), "io", f + "weight"});
  }
  // Per-device weights exist only with BFQ, as crun and runc write them; the
  // write fails naming io.bfq.weight when the scheduler is not BFQ.
  for (size_t i = 0; i < b.weight_device.size(); ++i) {
    const auto& d = b.weight_device[i];
    if (!d.weight) continue;  // leafWeight alone: nothing on v2
    w.push_back({"io.bfq.weight", device(d.major, d.minor) + " " + std::to_string(*d.weight), "io",
                 cat(f, "weightDevice[", i, "]")});
  }
  // io.max: one line per device with all its limits. A rate of 0 is "no
  // limit" in OCI (as in v1) but ERANGE for the kernel: write "max".
  std::map<std::pair<int64_t, int64_t>, std::string> lines;
  std::map<std::pair<int64_t, int64_t>, std::string> fields;
  auto add = [&](const std::vector<oci::ThrottleDevice>& v, const char* key, const char* name) {
    for (size_t i = 0; i < v.size(); ++i) {
      auto dev = std::make_pair(v[i].major, v[i].minor);
      lines[dev] += cat(' ', key, '=', v[i].rate ? std::to_string(v[i].rate) : std::string("max"));
      if (fields[dev].empty()) fields[dev] = cat(f, name, '[', i, ']');
    }
  };
  add(b.throttle_read_bps_device, "rbps", "throttleReadBpsDevice");
  add(b.throttle_write_bps_device, "wbps", "throttleWriteBpsDevice");
  add(b.throttle_read_iops_device, "riops", "throttleReadIOPSDevice");
  add(b.throttle_write_iops_device, "wiops", "throttleWriteIOPSDevice");
  for (const auto& [dev, limits] : lines)
    w.push_back({"io.max", device(dev.first, dev.second) + limits, "io", fields[dev]});
  return {};
}

// Natural log and exp by series, so husk needs no libm: it would be a second
// shared library to load at every start, for this one conversion.
constexpr double kLn2 = 0.69314718055994530942;
constexpr double kLn10 = 2.30258509299404568402;

double log2_of(double x) {  // x >= 1
  int e = 0;
  while (x >= 2) {
    x /= 2;
    ++e;
  }
  // ln(x) = 2 atanh((x-1)/(x+1)), |z| <= 1/3 for x in [1, 2).
  double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
  for (int k = 1; k < 60; k += 2) {
    sum += term / k;
    term *= z2;
  }
  return e + 2 * sum / kLn2;
}

double exp_of(double x) {  // 0 <= x < 20
  int k = static_cast<int>(x / kLn2);
  double r = x - k * kLn2, term = 1, sum = 1;  // exp(x) = 2^k exp(r), 0 <= r < ln 2
  for (int n = 1; n < 30; ++n) {
    term *= r / n;
    sum += term;
  }
  while (k-- > 0) sum *= 2;
  return sum;
}

}  // namespace

uint64_t shares_to_weight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  // log2(shares) runs 1..18; this parabola maps it onto log10(weight) 0..4
  // through (10, 2), so 1024 shares -> weight 100, the defaults of both.
  double l = log2_of(static_cast<double>(shares));
  double exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0;
  double weight = exp_of(exponent * kLn10);
  // ceil, forgiving the last bits of rounding so that 1024 gives 100.
  auto w = static_cast<uint64_t>(weight);
  if (weight - static_cast<double>(w) > 1e-9) ++w;
  return w;
}

uint64_t blkio_to_io_weight(uint64_t weight) {
  if (weight == 0) return 0;
  if (weight < 10) weight = 10;
  if (weight > 1000) weight = 1000;
  return 1 + ((weight - 10) * 9999) / 990;
}

bool is_unlimited(const FileWrite& w) {
  // memory.low "max" protects everything: only the *.max files lift a limit.
  return w.value == "max" && w.file.ends_with(".max");
}

Result<std::vector<FileWrite>> translate(const oci::Resources& r, const std::function<bool(const std::string&)>& exists) {
  std::vector<FileWrite> w;
  const std::string base = "linux.resources.";
  if (r.memory) TRYV(add_memory(*r.memory, base + "memory.", w));
  if (r.cpu) TRYV(add_cpu(*r.cpu, base + "cpu.", w));
  // limit <= 0 is unlimited (the OCI spec says so of -1; podman sends 0).
  if (r.pids) w.push_back({"pids.max", r.pids->limit > 0 ? std::to_string(r.pids->limit) : "max", "pids", base + "pids.limit"});
  if (r.block_io) TRYV(add_block_io(*r.block_io, base + "blockIO.", exists, w));
  for (size_t i = 0; i < r.hugepage_limits.size(); ++i) {
    const auto& h = r.hugepage_limits[i];
    std::string field = cat(base, "hugepageLimits[", i, "]");
    if (h.page_size.empty() || h.page_size.find('/') != std::string::npos || h.page_size.find("..") != std::string::npos)
      return fail_msg(field, ".pageSize: invalid page size \"", h.page_size, "\"");
    w.push_back({"hugetlb." + h.page_size + ".max", std::to_string(h.limit), "hugetlb", field});
    // Reservations (5.7+) are charged separately; runc limits both.
    if (exists("hugetlb." + h.page_size + ".rsvd.max"))
      w.push_back({"hugetlb." + h.page_size + ".rsvd.max", std::to_string(h.limit), "hugetlb", field});
  }
  for (const auto& [dev, lim] : r.rdma) {
    if (!lim.hca_handles && !lim.hca_objects) continue;
    std::string v = dev;
    if (lim.hca_handles) v += " hca_handle=" + std::to_string(*lim.hca_handles);
    if (lim.hca_objects) v += " hca_object=" + std::to_string(*lim.hca_objects);
    w.push_back({"rdma.max", v, "rdma", base + "rdma." + dev});
  }
  if (r.network && (r.network->class_id || !r.network->priorities.empty()))
    return fail_msg(base, "network: net_cls and net_prio do not exist in cgroup v2");
  // unified last, so it overrides what the fields above wrote (crun's order).
  for (const auto& [key, value] : r.unified) {
    std::string field = base + "unified." + key;
    if (key.empty() || key.find('/') != std::string::npos || key.find("..") != std::string::npos)
      return fail_msg(base, "unified: \"", key, "\" is not a file name of the cgroup");
    size_t dot = key.find('.');
    if (dot == std::string::npos || dot == 0)
      return fail_msg(field, ": the key is not of the form <controller>.<file>");
    std::string ctrl = key.substr(0, dot);
    if (ctrl == "cgroup") ctrl.clear();
    // A multi-line value (io.max for two devices) is one write per line.
    size_t pos = 0;
    while (pos < value.size()) {
      size_t nl = value.find('\n', pos);
      if (nl == std::string::npos) nl = value.size();
      if (nl > pos) w.push_back({key, value.substr(pos, nl - pos), ctrl, field});
      pos = nl + 1;
    }
  }
  return w;
}

}  // namespace husk::cgroups
