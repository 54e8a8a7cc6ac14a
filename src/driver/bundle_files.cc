// Path, file and mount helpers of the flavors' translations (bundle_files.h).
#include "driver/bundle_files.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "common/program.h"
#include "common/text.h"
#include "net/config.h"

namespace husk::driver {

std::string clean_path(std::string_view p) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= p.size(); i++) {
    if (i != p.size() && p[i] != '/') continue;
    std::string_view c = p.substr(start, i - start);
    start = i + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(c);
  }
  std::string out;
  for (auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

bool is_within(const std::string& parent, const std::string& path) {
  return path == parent || (path.size() > parent.size() && path.compare(0, parent.size(), parent) == 0 &&
                            (parent == "/" || path[parent.size()] == '/'));
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

Result<> write_file(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return fail_sys("create ", tmp);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return fail_errno(e, "write ", tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return fail_sys("close ", tmp);
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail_sys("rename ", tmp, " to ", path);
  return {};
}

std::string read_host_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() < (1 << 20)) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

oci::Mount bind_mount(std::string src, std::string dst, std::vector<std::string> opts) {
  oci::Mount m;
  m.destination = std::move(dst);
  m.type = "bind";
  m.source = std::move(src);
  m.options = std::move(opts);
  return m;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (std::string_view f : split_views(s, sep)) out.emplace_back(f);
  return out;
}

int online_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return n < 1 ? 1 : n;
}

bool selinux_enabled() {
  struct stat st;
  return stat("/sys/fs/selinux/enforce", &st) == 0;
}

void set_namespace(oci::Spec& spec, oci::NamespaceType t, bool present, std::optional<std::string> path) {
  auto& ns = spec.linux->namespaces;
  std::erase_if(ns, [&](const oci::Namespace& n) { return n.type == t; });
  if (present) ns.push_back(oci::Namespace{t, std::move(path)});
}

Result<std::string> port_forwards(const TaskSpec& task, const std::vector<std::string>& labels,
                                  const std::vector<std::pair<std::string, int64_t>>& port_map,
                                  const std::string& port_map_field) {
  std::string forwards;
  auto forward = [&](const TaskPort& p, int64_t container_port) {
    for (const char* proto : {"tcp", "udp"}) {
      if (!forwards.empty()) forwards += ",";
      if (!p.host_ip.empty()) forwards += (p.host_ip.find(':') != std::string::npos ? "[" + p.host_ip + "]" : p.host_ip) + ":";
      forwards += cat(p.host_port, ":", container_port, "/", proto);
    }
  };
  for (const auto& label : labels)
    for (const auto& p : task.ports)
      if (p.label == label) forward(p, p.container_port ? p.container_port : p.host_port);
  for (const auto& [label, to] : port_map) {
    bool found = false;
    for (const auto& p : task.ports)
      if (p.label == label) {
        forward(p, to);
        found = true;
      }
    if (!found) return fail_msg(port_map_field, ".", label, ": the task has no port labelled \"", label, "\"");
  }
  return forwards;
}

Result<> add_nomad_mounts(oci::Spec& spec, const TaskSpec& task) {
  for (size_t i = 0; i < task.mounts.size(); i++) {
    const auto& m = task.mounts[i];
    std::vector<std::string> mopts = {"rbind"};
    if (m.readonly) mopts.push_back("ro");
    if (m.propagation == "private" || m.propagation.empty())
      mopts.push_back("rprivate");
    else if (m.propagation == "host-to-task")
      mopts.push_back("rslave");
    else if (m.propagation == "bidirectional")
      mopts.push_back("rshared");
    else
      return fail_msg("mounts[", i, "].propagation: unknown mode \"", m.propagation, "\"");
    spec.mounts.push_back(bind_mount(m.host_path, m.task_path, mopts));
  }
  return {};
}

void add_nomad_labels(oci::Spec& spec, const TaskSpec& task, const std::vector<std::string>& patterns) {
  const std::pair<const char*, const std::string*> keys[] = {
      {"job_name", &task.job_name},   {"job_id", &task.job_id},       {"task_group_name", &task.task_group},
      {"task_name", &task.name},      {"namespace", &task.namespace_}, {"node_name", &task.node_name},
      {"node_id", &task.node_id},
  };
  for (const auto& pattern : patterns)
    for (const auto& [key, value] : keys)
      if (fnmatch(pattern.c_str(), key, 0) == 0) spec.annotations[cat("com.hashicorp.nomad.", key)] = *value;
}

Result<> add_task_labels(oci::Spec& spec, const Value& cfg, std::string_view field, const TaskSpec& task,
                         const std::vector<std::string>& extra_labels, bool alloc_id) {
  for (auto& [k, v] : TRY(read_string_map(cfg, "labels", field))) spec.annotations[k] = v;
  if (alloc_id) spec.annotations["com.hashicorp.nomad.alloc_id"] = task.alloc_id;
  add_nomad_labels(spec, task, extra_labels);
  return {};
}

Result<> add_etc_files(oci::Spec& spec, const TaskSpec& task, const std::string& task_dir, const EtcFiles& etc) {
  for (size_t i = 0; i < etc.servers.size(); i++)
    if (!is_ip(etc.servers[i]))
      return fail_msg(etc.servers_field, "[", i, "]: \"", etc.servers[i], "\" is not an IP address");
  std::string resolv;
  if (etc.servers.empty() && etc.searches.empty() && etc.options.empty()) {
    resolv = read_host_file(etc.host_resolv_conf);
    // systemd-resolved's stub listens on the host's loopback, which a task
    // with its own network namespace cannot reach: use its upstream list,
    // as podman and docker do.
    if (!etc.host_net && resolv.find("nameserver 127.0.0.53") != std::string::npos) {
      std::string upstream = read_host_file(etc.host_resolved_upstream);
      if (!upstream.empty()) resolv = upstream;
    }
  } else {
    for (auto& s : etc.servers) resolv += "nameserver " + s + "\n";
    if (!etc.searches.empty()) {
      resolv += "search";
      for (auto& s : etc.searches) resolv += " " + s;
      resolv += "\n";
    }
    if (!etc.options.empty()) {
      resolv += "options";
      for (auto& s : etc.options) resolv += " " + s;
      resolv += "\n";
    }
  }

  std::string hosts;
  if (etc.host_net) {
    hosts = read_host_file(etc.host_hosts);
    if (!hosts.empty() && hosts.back() != '\n') hosts += "\n";
  } else {
    hosts = "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  }
  if (!task.hosts_address.empty() && !task.hosts_hostname.empty())
    hosts += task.hosts_address + "\t" + task.hosts_hostname + "\n";
  if (spec.hostname && !etc.host_net && *spec.hostname != task.hosts_hostname)
    hosts += (etc.netns_none ? "127.0.0.1\t" : "127.0.1.1\t") + *spec.hostname + "\n";
  for (size_t i = 0; i < etc.extra_hosts.size(); i++) {
    const std::string& e = etc.extra_hosts[i];
    auto colon = e.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == e.size())
      return fail_msg(etc.extra_hosts_field, "[", i, "]: \"", e, "\": want host:ip");
    std::string host = e.substr(0, colon), ip = e.substr(colon + 1);
    if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
    if (!is_ip(ip)) return fail_msg(etc.extra_hosts_field, "[", i, "]: \"", ip, "\" is not an IP address");
    hosts += ip + "\t" + host + "\n";
  }

  TRYV_CTX(write_file(task_dir + "/resolv.conf", resolv), "write the task's resolv.conf");
  TRYV_CTX(write_file(task_dir + "/hosts", hosts), "write the task's hosts file");
  spec.mounts.push_back(bind_mount(task_dir + "/resolv.conf", "/etc/resolv.conf", {"bind", "ro", "nosuid", "nodev", "noexec"}));
  spec.mounts.push_back(bind_mount(task_dir + "/hosts", "/etc/hosts", {"bind", "ro", "nosuid", "nodev", "noexec"}));
  spec.annotations[net::kHostsFileAnnotation] = task_dir + "/hosts";  // husk adds network aliases' lines to it
  // No servers of the task's own: on a network with husk-dns husk points
  // the file at it.
  if (etc.servers.empty()) spec.annotations[net::kResolvFileAnnotation] = task_dir + "/resolv.conf";
  if (spec.hostname) {
    TRYV_CTX(write_file(task_dir + "/hostname", *spec.hostname + "\n"), "write the task's hostname file");
    spec.mounts.push_back(bind_mount(task_dir + "/hostname", "/etc/hostname", {"bind", "ro", "nosuid", "nodev", "noexec"}));
  }
  return {};
}

std::string task_env_or(const TaskSpec& task, const char* key, const char* fallback) {
  auto it = task.env.find(key);
  return it != task.env.end() && !it->second.empty() ? it->second : std::string(fallback);
}

void add_task_dir_mounts(oci::Spec& spec, const TaskSpec& task) {
  const std::string own_dir = task.alloc_dir + "/" + task.name;
  spec.mounts.push_back(
      bind_mount(task.alloc_dir + "/alloc", task_env_or(task, "NOMAD_ALLOC_DIR", "/alloc"), {"rbind", "rw"}));
  spec.mounts.push_back(bind_mount(own_dir + "/local", task_env_or(task, "NOMAD_TASK_DIR", "/local"), {"rbind", "rw"}));
  spec.mounts.push_back(
      bind_mount(own_dir + "/secrets", task_env_or(task, "NOMAD_SECRETS_DIR", "/secrets"), {"rbind", "rw"}));
}

// `network_mode = "container:NAME"` (docker, podman; podman's task:NAME is
// container:NAME-<alloc id>): NAME is a husk container of this driver (its
// id), or the docker and podman drivers' container name "<task>-<alloc id>",
// which is the husk container "<alloc id>-<task>-<8 hex>" of that task (the
// newest, when the task restarted).
Result<std::string> container_named(const std::string& containers_root, const std::string& name,
                                    const std::string& field) {
  struct stat st;
  if (name.find('/') == std::string::npos && name != "." && name != ".." &&
      stat((containers_root + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return name;
  std::string best;
  int64_t best_time = -1;
  if (DIR* d = opendir(containers_root.c_str())) {
    while (auto* e = readdir(d)) {
      std::string id = e->d_name;
      // <alloc>-<task>-<8 hex>  <->  <task>-<alloc>: Nomad's alloc ids are uuids (36 characters).
      if (id.size() < 36 + 1 + 1 + 9) continue;
      std::string alloc = id.substr(0, 36), task = id.substr(37, id.size() - 37 - 9);
      if (id[36] != '-' || id[id.size() - 9] != '-' || name != task + "-" + alloc) continue;
      if (stat((containers_root + "/" + id).c_str(), &st) == 0 && st.st_mtime > best_time) {
        best = id;
        best_time = st.st_mtime;
      }
    }
    closedir(d);
  }
  if (best.empty())
    return fail_msg(field, ": \"container:", name, "\": no container of this driver has that name (a husk ",
                    "container id, or the docker name <task>-<alloc id>)");
  return best;
}

// The init of a running husk container of this driver (for pid_mode and
// ipc_mode = "container:NAME"): its namespaces are joined by path. Read from
// husk's record of it (state: pid and its start time, runtime/state_store.h).
Result<RunningContainer> running_init(const std::string& containers_root, const std::string& name,
                                      const std::string& field) {
  std::string id = TRY(container_named(containers_root, name, field));
  auto kv = key_values(read_host_file(containers_root + "/" + id + "/state"));
  pid_t pid = static_cast<pid_t>(strtol(kv["pid"].c_str(), nullptr, 10));
  if (!process_alive(pid, strtoull(kv["pid_start"].c_str(), nullptr, 10)))
    return fail_msg(field, ": \"container:", name, "\": container ", id, " is not running");
  return RunningContainer{id, pid};
}

std::string containers_root_of(const std::string& task_dir) {
  std::string tasks = task_dir.substr(0, task_dir.rfind('/'));
  return tasks.substr(0, tasks.rfind('/')) + "/containers";
}

void share_dev_shm(oci::Spec& spec, const std::string& task_dir, int64_t bytes, int64_t& plan_bytes) {
  std::erase_if(spec.mounts, [](const oci::Mount& m) { return m.destination == "/dev/shm"; });
  spec.mounts.push_back(bind_mount(task_dir + kShmDir, "/dev/shm", {"rbind", "nosuid", "nodev", "noexec"}));
  plan_bytes = bytes;
}

bool join_dev_shm(oci::Spec& spec, const std::string& containers_root, const std::string& other_id) {
  std::string state = containers_root.substr(0, containers_root.rfind('/'));
  std::string shm = state + "/tasks/" + other_id + kShmDir, dir = state + "/tasks/" + other_id;
  struct stat a, b;
  if (stat(shm.c_str(), &a) != 0 || stat(dir.c_str(), &b) != 0 || a.st_dev == b.st_dev) return false;
  std::erase_if(spec.mounts, [](const oci::Mount& m) { return m.destination == "/dev/shm"; });
  spec.mounts.push_back(bind_mount(shm, "/dev/shm", {"rbind", "nosuid", "nodev", "noexec"}));
  return true;
}

}  // namespace husk::driver
