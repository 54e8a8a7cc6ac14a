#include "cgroups/hierarchy.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>

#include "common/fd.h"
#include "common/text.h"

namespace husk::cgroups {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}


std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

bool is_cgroup2(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  auto space = [](char c) { return c == ' ' || c == '\n' || c == '\t'; };
  while (i < s.size()) {
    while (i < s.size() && space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string unified_cgroup_of(std::string_view text) {
  for (std::string_view line : lines_of(text)) {
    if (line.starts_with("0::")) {
      std::string_view p = line.substr(3);
      return p.empty() ? "/" : std::string(p);
    }
  }
  return "/";
}

Result<std::string> resolve_cgroup_path(const std::string& cgroups_path, const std::string& container_id,
                                        const std::string& own_cgroup) {
  std::string p;
  if (cgroups_path.empty()) {
    if (container_id.empty()) return fail_msg("linux.cgroupsPath: no path and no container id to name the cgroup");
    p = "/husk/" + container_id;
  } else if (cgroups_path[0] == '/') {
    p = cgroups_path;
  } else {
    p = (own_cgroup == "/" ? "" : own_cgroup) + "/" + cgroups_path;
  }
  // Normalise: no empty or "." components; ".." could leave the hierarchy.
  std::string out;
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t slash = p.find('/', pos);
    if (slash == std::string::npos) slash = p.size();
    std::string comp = p.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return fail_msg("linux.cgroupsPath: \"..\" is not allowed in \"", cgroups_path, "\"");
    out += "/" + comp;
  }
  // The root holds every process on the host: destroy() would kill them.
  if (out.empty()) return fail_msg("linux.cgroupsPath: \"", cgroups_path, "\" names the root of the cgroup hierarchy");
  return out;
}

std::string mount_point_of(const std::string& dir) {
  if (!is_cgroup2(dir)) return parent_of(dir);
  struct stat st;
  if (stat(dir.c_str(), &st) < 0) return parent_of(dir);
  std::string cur = dir;
  while (cur != "/") {
    std::string up = parent_of(cur);
    struct stat ust;
    if (!is_cgroup2(up) || stat(up.c_str(), &ust) < 0 || ust.st_dev != st.st_dev) break;
    cur = up;
  }
  return cur;
}

std::vector<std::string> ancestors(const std::string& mount, const std::string& rel) {
  std::vector<std::string> out{mount};
  size_t pos = 1;
  while (true) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) break;  // what is left is the leaf
    out.push_back(mount + rel.substr(0, slash));
    pos = slash + 1;
  }
  return out;
}

Result<> delegate_controller(const std::string& mount, const std::string& rel, const std::string& controller,
                             const std::string& field) {
  for (const auto& dir : ancestors(mount, rel)) {
    std::string offered = read_file(dir + "/cgroup.controllers").value_or("");
    if (!contains(split_words(offered), controller))
      return fail_errno(ENOTSUP, field, ": the ", controller, " controller is not available in ", dir,
                        " (cgroup.controllers: \"", rtrim(offered), "\")");
    std::string sc = dir + "/cgroup.subtree_control";
    if (contains(split_words(read_file(sc).value_or("")), controller)) continue;
    if (auto r = write_file(sc, "+" + controller); !r) {
      Error e = std::move(r.error());
      std::string why = cat(field, ": enable the ", controller, " controller in ", sc);
      // The kernel refuses to delegate from a cgroup that has processes of
      // its own ("no internal processes"): say so, it is the usual cause.
      if (e.code() == EBUSY) why += " (it has processes of its own; cgroup v2 delegates only from cgroups without)";
      return fail(std::move(e).with_context(why));
    }
  }
  return {};
}

void delegate_offered_controllers(const std::string& mount, const std::string& rel) {
  auto dirs = ancestors(mount, rel);
  for (size_t i = 1; i < dirs.size(); ++i) {
    auto offered = split_words(read_file(dirs[i] + "/cgroup.controllers").value_or(""));
    std::string sc = dirs[i] + "/cgroup.subtree_control";
    auto enabled = split_words(read_file(sc).value_or(""));
    for (const auto& c : offered)
      if (!contains(enabled, c)) (void)write_file(sc, "+" + c);
  }
}

}  // namespace husk::cgroups
