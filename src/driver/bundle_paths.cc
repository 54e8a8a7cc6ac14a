// Paths and files shared by the flavors' bundle translations.
#include "driver/bundle_paths.h"

#include <fcntl.h>
#include <unistd.h>

namespace husk::driver {

std::string clean_path(std::string_view p) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= p.size(); i++) {
    if (i < p.size() && p[i] != '/') continue;
    std::string c(p.substr(start, i - start));
    start = i + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(c);
  }
  std::string out;
  for (auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

bool is_within(const std::string& parent, const std::string& path) {
  return path == parent || (path.size() > parent.size() && path.compare(0, parent.size(), parent) == 0 &&
                            (parent == "/" || path[parent.size()] == '/'));
}

Result<> write_task_file(const std::string& path, const std::string& content) {
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

}  // namespace husk::driver
