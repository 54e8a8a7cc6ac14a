// Capabilities, devices, rlimits, sysctls and security_opt as podman
// translates them (see podman_security.h).
#include "driver/podman_security.h"
#include "driver/podman_fields.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "driver/podman_flavor.h"
#include "oci/tables.h"

namespace husk::driver::podman {

// --- capabilities ------------------------------------------------------------

Result<std::vector<int>> cap_list(const std::vector<std::string>& names, const std::string& field, bool& all) {
  std::vector<int> out;
  all = false;
  for (size_t i = 0; i < names.size(); i++) {
    std::string n = names[i];
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (n == "ALL") {
      all = true;
      continue;
    }
    if (!n.starts_with("CAP_")) n = "CAP_" + n;
    auto c = oci::capability_from_name(n);
    if (!c) return fail_msg(field, "[", i, "]: unknown capability \"", names[i], "\"");
    if (std::find(out.begin(), out.end(), *c) == out.end()) out.push_back(*c);
  }
  return out;
}

std::vector<int> all_capabilities() {
  std::vector<int> out;
  for (int c = 0; c <= oci::last_capability(); c++)
    if (!oci::capability_name(c).empty()) out.push_back(c);
  return out;
}

// containers/common MergeCapabilities: drop ALL keeps only the adds, add ALL
// starts from every capability, and one capability both added and dropped
// is an error.
Result<std::vector<int>> merge_capabilities(const std::vector<std::string>& add_names,
                                            const std::vector<std::string>& drop_names) {
  bool add_all = false, drop_all = false;
  auto adds = TRY(cap_list(add_names, f("cap_add"), add_all));
  auto drops = TRY(cap_list(drop_names, f("cap_drop"), drop_all));
  if (drop_all) {
    if (add_all) return fail_msg("config.cap_add: adding ALL and dropping ALL capabilities together is not allowed");
    std::sort(adds.begin(), adds.end());
    return adds;
  }
  std::vector<int> base = add_all ? all_capabilities() : default_capabilities();
  for (int c : drops)
    if (std::find(adds.begin(), adds.end(), c) != adds.end())
      return fail_msg("config.cap_drop: capability \"", oci::capability_name(c), "\" cannot be both added and dropped");
  std::vector<int> out;
  for (int c : base)
    if (std::find(drops.begin(), drops.end(), c) == drops.end()) out.push_back(c);
  for (int c : adds)
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  std::sort(out.begin(), out.end());
  return out;
}

// --- devices ------------------------------------------------------------------

oci::Device device_node(const std::string& dst, const struct stat& st) {
  oci::Device d;
  d.type = S_ISCHR(st.st_mode) ? 'c' : 'b';
  d.path = dst;
  d.major = major(st.st_rdev);
  d.minor = minor(st.st_rdev);
  d.file_mode = st.st_mode & 07777;
  d.uid = st.st_uid;
  d.gid = st.st_gid;
  return d;
}

Result<> add_device(oci::Spec& spec, const std::string& host, const std::string& dst, std::string perms,
                    const std::string& field) {
  if (perms.empty()) perms = "rwm";
  for (char c : perms)
    if (c != 'r' && c != 'w' && c != 'm') return fail_msg(field, ": device permissions \"", perms, "\" are not a subset of rwm");
  if (host.empty() || host[0] != '/') return fail_msg(field, ": device path \"", host, "\" is not absolute");
  if (dst.empty() || dst[0] != '/') return fail_msg(field, ": container device path \"", dst, "\" is not absolute");
  struct stat st;
  if (stat(host.c_str(), &st) != 0) return fail_sys(field, ": stat device ", host);
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
    return fail_msg(field, ": \"", host, "\" is not a character or block device");
  oci::Device d = device_node(dst, st);
  d.uid = 0;
  d.gid = 0;
  for (auto& existing : spec.linux->devices)
    if (existing.path == dst) return fail_msg(field, ": device \"", dst, "\" is given twice");
  spec.linux->devices.push_back(d);
  oci::DeviceRule rule;
  rule.allow = true;
  rule.type = d.type;
  rule.major = d.major;
  rule.minor = d.minor;
  rule.access = perms;
  spec.linux->resources->devices.push_back(rule);
  return {};
}

// podman's device string: host[:container][:permissions].
Result<> add_device_string(oci::Spec& spec, const std::string& s, const std::string& field) {
  auto parts = split(s, ':');
  auto looks_like_perms = [](const std::string& p) {
    return !p.empty() && p.size() <= 3 && std::all_of(p.begin(), p.end(), [](char c) { return c == 'r' || c == 'w' || c == 'm'; });
  };
  std::string host = parts[0], dst = parts[0], perms = "rwm";
  if (parts.size() == 2) {
    if (looks_like_perms(parts[1]))
      perms = parts[1];
    else
      dst = parts[1];
  } else if (parts.size() == 3) {
    dst = parts[1];
    perms = parts[2];
  } else if (parts.size() > 3) {
    return fail_msg(field, ": \"", s, "\": want host[:container][:permissions]");
  }
  return add_device(spec, host, dst, perms, field);
}

// Every device node under the host's /dev, for privileged tasks (podman's
// GetDevices skips the same directories).
void host_devices(const std::string& dir, const std::string& rel, std::vector<std::pair<std::string, std::string>>& out,
                  int depth) {
  if (depth > 4) return;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string path = dir + "/" + n, crel = rel + "/" + n;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (crel == "/pts" || crel == "/shm" || crel == "/mqueue" || crel == "/.lxc" || crel == "/.udev" || crel == "/fd")
        continue;
      host_devices(path, crel, out, depth + 1);
    } else if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && crel != "/console") {
      out.emplace_back(path, "/dev" + crel);
    }
  }
  closedir(d);
}

void make_privileged(oci::Spec& spec, const std::string& host_dev) {
  for (auto& m : spec.mounts)
    if (m.destination == "/sys" || m.destination == "/sys/fs/cgroup") std::erase(m.options, "ro");
  oci::DeviceRule all;
  all.allow = true;
  all.access = "rwm";
  spec.linux->resources->devices.push_back(all);
  std::vector<std::pair<std::string, std::string>> devs;
  host_devices(host_dev, "", devs, 0);
  std::sort(devs.begin(), devs.end());
  for (auto& [host, dst] : devs) {
    struct stat st;
    if (stat(host.c_str(), &st) != 0) continue;
    spec.linux->devices.push_back(device_node(dst, st));
  }
}

// --- rlimits and sysctls ---------------------------------------------------

Result<oci::Rlimit> parse_ulimit(const std::string& name, const std::string& value) {
  std::string field = cat("config.ulimit.", name);
  std::string up = name;
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (!up.starts_with("RLIMIT_")) up = "RLIMIT_" + up;
  auto res = oci::rlimit_from_name(up);
  if (!res) return fail_msg(field, ": unknown resource limit \"", name, "\"");
  if (value.empty()) return fail_msg(field, ": cannot be empty");
  auto parts = split(value, ':');
  if (parts.size() > 2) return fail_msg(field, ": \"", value, "\": want soft[:hard]");
  if (parts.size() == 1) parts.push_back(parts[0]);
  uint64_t lim[2];
  for (int i = 0; i < 2; i++) {
    auto [p, ec] = std::from_chars(parts[i].data(), parts[i].data() + parts[i].size(), lim[i]);
    if (parts[i].empty() || ec != std::errc() || p != parts[i].data() + parts[i].size())
      return fail_msg(field, ": \"", value, "\": the ", i == 0 ? "soft" : "hard", " limit is not an integer");
  }
  if (lim[0] > lim[1]) return fail_msg(field, ": \"", value, "\": the soft limit is above the hard limit");
  return oci::Rlimit{*res, lim[0], lim[1]};
}

// Which namespace a sysctl belongs to; podman (and runc) refuse the others.
Result<> check_sysctl(const std::string& key, bool own_netns, bool own_ipc, bool own_uts) {
  std::string field = cat("config.sysctl.", key);
  static const std::set<std::string> ipc = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                            "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
  if (ipc.count(key) || key.starts_with("fs.mqueue.")) {
    if (!own_ipc) return fail_msg(field, ": an IPC sysctl, but the task shares the host's IPC namespace");
    return {};
  }
  if (key.starts_with("net.")) {
    if (!own_netns) return fail_msg(field, ": a network sysctl, but the task shares the host's network namespace");
    return {};
  }
  if (key == "kernel.hostname" || key == "kernel.domainname") {
    if (!own_uts) return fail_msg(field, ": a UTS sysctl, but the task shares the host's UTS namespace");
    return {};
  }
  return fail_msg(field, ": not a namespaced sysctl; it would change the host");
}

// --- security_opt --------------------------------------------------------------



Result<SecurityOpts> parse_security_opts(const std::vector<std::string>& opts) {
  SecurityOpts s;
  for (size_t i = 0; i < opts.size(); i++) {
    std::string field = fi("security_opt", i);
    const std::string& o = opts[i];
    if (o == "no-new-privileges") {
      s.no_new_privileges = true;
      continue;
    }
    size_t sep = o.find_first_of("=:");
    if (sep == std::string::npos) return fail_msg(field, ": \"", o, "\": want key=value");
    std::string key = o.substr(0, sep), val = o.substr(sep + 1);
    if (key == "no-new-privileges") {
      if (val != "true" && val != "false") return fail_msg(field, ": \"", o, "\": want true or false");
      s.no_new_privileges = val == "true";
    } else if (key == "label") {
      if (val != "disable")
        return fail_msg(field, ": \"", o, "\": husk does not implement SELinux labels (only label=disable is accepted)");
    } else if (key == "apparmor") {
      s.apparmor = val;
    } else if (key == "seccomp") {
      if (val != "unconfined")
        return fail_msg(field, ": \"", o, "\": seccomp profile files are not supported by husk yet (only seccomp=unconfined)");
      s.seccomp_unconfined = true;
    } else if (key == "proc-opts") {
      for (auto& p : split(val, ','))
        if (!p.empty()) s.proc_opts.push_back(p);
    } else if (key == "mask") {
      for (auto& p : split(val, ':'))
        if (!p.empty()) {
          if (p[0] != '/') return fail_msg(field, ": mask path \"", p, "\" is not absolute");
          s.mask.push_back(p);
        }
    } else if (key == "unmask") {
      for (auto& p : split(val, ':')) {
        if (p == "ALL")
          s.unmask_all = true;
        else if (!p.empty())
          s.unmask.push_back(p);
      }
    } else if (key == "systempaths") {
      if (val != "unconfined") return fail_msg(field, ": \"", o, "\": only systempaths=unconfined is known");
      s.unmask_all = true;
    } else {
      return fail_msg(field, ": unknown security option \"", key, "\"");
    }
  }
  return s;
}

}  // namespace husk::driver::podman
