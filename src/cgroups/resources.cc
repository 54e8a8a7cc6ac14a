#include "cgroups/resources.h"

#include <map>

namespace husk::cgroups {

uint64_t shares_to_weight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t blkio_to_io_weight(uint64_t weight) {
  if (weight == 0) return 0;
  if (weight < 10) weight = 10;
  if (weight > 1000) weight = 1000;
  return 1 + ((weight - 10) * 9999) / 990;
}

Result<std::vector<FileWrite>> translate(const oci::Resources& r, const std::function<bool(const std::string&)>& exists) {
  std::vector<FileWrite> w;
  const std::string base = "linux.resources.";
  if (r.memory) {
    const auto& m = *r.memory;
    const std::string f = base + "memory.";
    if (m.limit) w.push_back({"memory.max", *m.limit < 0 ? "max" : std::to_string(*m.limit), "memory", f + "limit"});
    if (m.reservation)
      w.push_back({"memory.low", *m.reservation < 0 ? "max" : std::to_string(*m.reservation), "memory", f + "reservation"});
    if (m.swap) {
      // OCI swap is memory+swap; cgroup v2 wants the swap part alone.
      std::string v;
      if (*m.swap < 0) v = "max";
      else if (!m.limit || *m.limit < 0) return fail_msg(f, "swap: needs memory.limit to be set too");
      else if (*m.swap < *m.limit) return fail_msg(f, "swap: ", *m.swap, " is below memory.limit ", *m.limit, " (OCI swap is memory+swap)");
      else v = std::to_string(*m.swap - *m.limit);
      w.push_back({"memory.swap.max", v, "memory", f + "swap"});
    }
    if (m.swappiness) return fail_msg(f, "swappiness: cgroup v2 has no per-cgroup swappiness");
    if (m.disable_oom_killer && *m.disable_oom_killer)
      return fail_msg(f, "disableOOMKiller: cgroup v2 cannot disable the OOM killer of a cgroup");
  }
  if (r.cpu) {
    const auto& c = *r.cpu;
    const std::string f = base + "cpu.";
    if (c.shares && *c.shares) w.push_back({"cpu.weight", std::to_string(shares_to_weight(*c.shares)), "cpu", f + "shares"});
    if (c.quota || c.period) {
      std::string quota = c.quota && *c.quota > 0 ? std::to_string(*c.quota) : "max";
      std::string period = std::to_string(c.period && *c.period ? *c.period : 100000);
      w.push_back({"cpu.max", quota + " " + period, "cpu", f + (c.quota ? "quota" : "period")});
    }
    if (c.burst) w.push_back({"cpu.max.burst", std::to_string(*c.burst), "cpu", f + "burst"});
    if (c.idle) w.push_back({"cpu.idle", std::to_string(*c.idle), "cpu", f + "idle"});
    if ((c.realtime_runtime && *c.realtime_runtime) || (c.realtime_period && *c.realtime_period))
      return fail_msg(f, "realtimeRuntime: cgroup v2 has no realtime CPU bandwidth");
    if (c.cpus && !c.cpus->empty()) w.push_back({"cpuset.cpus", *c.cpus, "cpuset", f + "cpus"});
    if (c.mems && !c.mems->empty()) w.push_back({"cpuset.mems", *c.mems, "cpuset", f + "mems"});
  }
  if (r.pids) w.push_back({"pids.max", r.pids->limit > 0 ? std::to_string(r.pids->limit) : "max", "pids", base + "pids.limit"});
  if (r.block_io) {
    const auto& b = *r.block_io;
    const std::string f = base + "blockIO.";
    bool bfq = exists("io.bfq.weight");
    if (b.weight) {
      if (bfq) w.push_back({"io.bfq.weight", std::to_string(*b.weight), "io", f + "weight"});
      else w.push_back({"io.weight", "default " + std::to_string(blkio_to_io_weight(*b.weight)), "io", f + "weight"});
    }
    for (size_t i = 0; i < b.weight_device.size(); ++i) {
      const auto& d = b.weight_device[i];
      if (!d.weight) continue;
      std::string dev = std::to_string(d.major) + ":" + std::to_string(d.minor);
      if (bfq) w.push_back({"io.bfq.weight", dev + " " + std::to_string(*d.weight), "io", cat(f, "weightDevice[", i, "]")});
      else w.push_back({"io.weight", dev + " " + std::to_string(blkio_to_io_weight(*d.weight)), "io", cat(f, "weightDevice[", i, "]")});
    }
    // io.max: one line per device with every limit that applies to it.
    std::map<std::string, std::string> lines;
    auto add = [&](const std::vector<oci::ThrottleDevice>& v, const char* key) {
      for (const auto& t : v) {
        std::string dev = std::to_string(t.major) + ":" + std::to_string(t.minor);
        lines[dev] += std::string(" ") + key + "=" + (t.rate ? std::to_string(t.rate) : "max");
      }
    };
    add(b.throttle_read_bps_device, "rbps");
    add(b.throttle_write_bps_device, "wbps");
    add(b.throttle_read_iops_device, "riops");
    add(b.throttle_write_iops_device, "wiops");
    for (const auto& [dev, limits] : lines) w.push_back({"io.max", dev + limits, "io", f + "throttle"});
  }
  for (size_t i = 0; i < r.hugepage_limits.size(); ++i) {
    const auto& h = r.hugepage_limits[i];
    w.push_back({"hugetlb." + h.page_size + ".max", std::to_string(h.limit), "hugetlb", cat(base, "hugepageLimits[", i, "]")});
    if (exists("hugetlb." + h.page_size + ".rsvd.max"))
      w.push_back({"hugetlb." + h.page_size + ".rsvd.max", std::to_string(h.limit), "hugetlb", cat(base, "hugepageLimits[", i, "]")});
  }
  for (const auto& [dev, lim] : r.rdma) {
    std::string v = dev;
    if (lim.hca_handles) v += " hca_handle=" + std::to_string(*lim.hca_handles);
    if (lim.hca_objects) v += " hca_object=" + std::to_string(*lim.hca_objects);
    w.push_back({"rdma.max", v, "rdma", base + "rdma." + dev});
  }
  if (r.network && (r.network->class_id || !r.network->priorities.empty()))
    return fail_msg(base, "network: net_cls and net_prio do not exist in cgroup v2");
  for (const auto& [key, value] : r.unified) {
    if (key.empty() || key.find('/') != std::string::npos || key.find("..") != std::string::npos)
      return fail_msg(base, "unified: invalid key \"", key, "\"");
    size_t dot = key.find('.');
    std::string ctrl = dot == std::string::npos ? "" : key.substr(0, dot);
    if (ctrl == "cgroup") ctrl.clear();
    if (ctrl.empty() && !exists(key)) return fail_msg(base, "unified.", key, ": no such file in the cgroup");
    w.push_back({key, value, ctrl, base + "unified." + key});
  }
  return w;
}

}  // namespace husk::cgroups
