// Binds, tmpfs and volumes of a docker task (see docker_mounts.h).
#include "driver/docker_mounts.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "common/fd.h"
#include "driver/bundle_files.h"
#include "driver/podman_security.h"

namespace husk::driver::docker {

namespace {

// Host paths outside the allocation need volumes.enabled (the docker
// driver's rule); symlinks are resolved so a task cannot plant one.
Result<> check_host_path(const MountContext& ctx, const std::string& src, const std::string& field,
                         const std::string& value) {
  if (ctx.opts.volumes_enabled) return {};
  char real[PATH_MAX], real_alloc[PATH_MAX];
  std::string check = realpath(src.c_str(), real) ? std::string(real) : src;
  std::string alloc = realpath(ctx.task.alloc_dir.c_str(), real_alloc) ? std::string(real_alloc)
                                                                       : clean_path(ctx.task.alloc_dir);
  if (ctx.task.alloc_dir.empty() || !is_within(alloc, check))
    return fail_msg(field, ": \"", value, "\": volumes are not enabled (plugin volumes.enabled = false), ",
                    "so only paths inside the allocation directory can be mounted");
  return {};
}

bool valid_volume_name(const std::string& n) {
  if (n.size() < 2) return false;
  for (size_t i = 0; i < n.size(); i++) {
    char c = n[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return false;
  }
  return true;
}

const char* propagation_option(const std::string& p) {
  for (const char* o : {"private", "rprivate", "shared", "rshared", "slave", "rslave"})
    if (p == o) return o;
  return nullptr;
}

Result<std::string> host_source(const MountContext& ctx, const std::string& src, const std::string& field) {
  std::string path = src[0] == '/' ? clean_path(src) : clean_path(ctx.own_dir + "/" + src);
  TRYV(check_host_path(ctx, path, field, src));
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return fail_sys(field, ": host path ", path);
  return path;
}

Result<> add_volume_mount(const MountContext& ctx, const std::string& name, const std::string& target, bool readonly,
                          bool no_copy, const std::string& field, oci::Spec& spec, std::vector<PendingVolume>& pending) {
  if (!ctx.opts.volumes_enabled)
    return fail_msg(field, ": volume mounts need the plugin's volumes.enabled = true");
  std::string dir;
  if (name.empty()) {
    // Anonymous: removed with the task, as docker removes it with the container.
    dir = cat(ctx.task_dir, "/volumes/", pending.size());
  } else {
    if (!valid_volume_name(name))
      return fail_msg(field, ": \"", name, "\" is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
    dir = ctx.volumes_root + "/" + name;
  }
  struct stat st;
  bool fresh = stat(dir.c_str(), &st) != 0;
  for (const auto& p : pending) fresh = fresh && p.dir != dir;
  if (fresh) pending.push_back(PendingVolume{dir, no_copy ? "" : target});
  std::vector<std::string> o = {"rbind", "rprivate"};
  if (readonly) o.push_back("ro");
  spec.mounts.push_back(bind_mount(dir, target, o));
  return {};
}

// `volumes = ["src:dst[:mode]"]`.
Result<> add_volume_strings(const MountContext& ctx, const Value& cfg, oci::Spec& spec,
                            std::vector<PendingVolume>& pending) {
  auto volumes = TRY(read_strings(cfg, "volumes", "config"));
  for (size_t i = 0; i < volumes.size(); i++) {
    std::string field = cat("config.volumes[", i, "]");
    auto parts = split(volumes[i], ':');
    if (parts.size() < 2 || parts.size() > 3)
      return fail_msg(field, ": \"", volumes[i], "\": want host_path:container_path[:mode]");
    std::string src = parts[0], dst = parts[1];
    if (src.empty()) return fail_msg(field, ": \"", volumes[i], "\": empty host path");
    if (dst.empty() || dst[0] != '/') return fail_msg(field, ": container path \"", dst, "\" is not absolute");
    std::vector<std::string> mopts = {"rbind"};
    bool ro = false, nocopy = false;
    const char* propagation = "rprivate";
    std::string mode = parts.size() > 2 ? parts[2] : "";
    if (!ctx.opts.volumes_selinuxlabel.empty()) mode += (mode.empty() ? "" : ",") + ctx.opts.volumes_selinuxlabel;
    for (auto& o : split(mode, ',')) {
      if (o.empty() || o == "rw") continue;
      if (o == "ro") ro = true;
      else if (o == "nocopy") nocopy = true;
      else if (o == "z" || o == "Z") {
        if (ctx.opts.selinux_enabled) return fail_msg(field, ": option \"", o, "\": husk cannot relabel for SELinux");
      } else if (auto p = propagation_option(o)) propagation = p;
      else return fail_msg(field, ": unknown mode \"", o, "\" (ro, rw, z, Z, nocopy, [r]private, [r]shared, [r]slave)");
    }
    // With a volume_driver a relative source is a volume name (the docker
    // driver's rule); without one it is a path under the task directory.
    if (src[0] != '/' && !TRY(read_string(cfg, "volume_driver", "config")).empty()) {
      TRYV(add_volume_mount(ctx, src, dst, ro, nocopy, field, spec, pending));
      continue;
    }
    src = TRY(host_source(ctx, src, field));
    mopts.push_back(propagation);
    if (ro) mopts.push_back("ro");
    spec.mounts.push_back(bind_mount(src, dst, mopts));
  }
  return {};
}

Result<> add_mount_block(const MountContext& ctx, const Value& m, const std::string& field, oci::Spec& spec,
                         std::vector<PendingVolume>& pending) {
  std::string type = TRY(read_string(m, "type", field, "volume"));
  if (type.empty()) type = "volume";
  std::string target = TRY(read_string(m, "target", field));
  std::string source = TRY(read_string(m, "source", field));
  bool readonly = TRY(read_bool(m, "readonly", field));
  if (target.empty() || target[0] != '/') return fail_msg(field, ".target: \"", target, "\" is not an absolute path");
  const Value& bo = m["bind_options"];
  const Value& to = m["tmpfs_options"];
  const Value& vo = m["volume_options"];
  if (type != "bind" && !bo.is_null()) return fail_msg(field, ".bind_options: only for type = \"bind\"");
  if (type != "tmpfs" && !to.is_null()) return fail_msg(field, ".tmpfs_options: only for type = \"tmpfs\"");
  if (type != "volume" && !vo.is_null()) return fail_msg(field, ".volume_options: only for type = \"volume\"");
  if (type == "bind") {
    if (source.empty()) return fail_msg(field, ".source: a bind mount needs a source");
    std::string src = TRY(host_source(ctx, source, field + ".source"));
    std::string prop = TRY(read_string(bo, "propagation", field + ".bind_options"));
    const char* p = prop.empty() ? "rprivate" : propagation_option(prop);
    if (!p) return fail_msg(field, ".bind_options.propagation: \"", prop, "\" is not a propagation mode");
    std::vector<std::string> o = {"rbind", p};
    if (readonly) o.push_back("ro");
    spec.mounts.push_back(bind_mount(src, target, o));
  } else if (type == "tmpfs") {
    if (!source.empty()) return fail_msg(field, ".source: a tmpfs mount takes no source");
    int64_t size = TRY(read_int(to, "size", field + ".tmpfs_options"));
    int64_t mode = TRY(read_int(to, "mode", field + ".tmpfs_options"));
    if (size < 0) return fail_msg(field, ".tmpfs_options.size: ", size, " is negative");
    if (mode < 0 || mode > 07777) return fail_msg(field, ".tmpfs_options.mode: ", mode, " is not a file mode");
    oci::Mount t;
    t.destination = target;
    t.type = "tmpfs";
    t.source = "tmpfs";
    t.options = {"nosuid", "nodev", "noexec"};
    t.options.push_back(readonly ? "ro" : "rw");
    if (size > 0) t.options.push_back(cat("size=", size));
    if (mode > 0) {
      char buf[16];
      snprintf(buf, sizeof buf, "mode=%o", static_cast<unsigned>(mode));
      t.options.push_back(buf);
    }
    spec.mounts.push_back(t);
  } else if (type == "volume") {
    std::string drv = TRY(read_string(vo["driver_config"], "name", field + ".volume_options.driver_config"));
    if (!drv.empty() && drv != "local")
      return fail_msg(field, ".volume_options.driver_config.name: \"", drv,
                      "\": husk has only docker's \"local\" volume driver");
    auto dopts = TRY(read_string_map(vo["driver_config"], "options", field + ".volume_options.driver_config"));
    if (!dopts.empty())
      return fail_msg(field, ".volume_options.driver_config.options: husk's local volumes are plain directories; ",
                      "options (type, device, o) are not supported");
    (void)TRY(read_string_map(vo, "labels", field + ".volume_options"));  // husk keeps no volume metadata
    bool no_copy = TRY(read_bool(vo, "no_copy", field + ".volume_options"));
    TRYV(add_volume_mount(ctx, source, target, readonly, no_copy, field, spec, pending));
  } else {
    return fail_msg(field, ".type: \"", type, "\" is not a mount type (bind, tmpfs, volume)");
  }
  return {};
}

// Copies the tree at `src` (an fd inside the image) into directory fd `dst`:
// directories, regular files and symlinks, with their modes and owners.
Result<> copy_tree(int src, int dst, const std::string& where, int depth) {
  if (depth > 64) return fail_msg(where, ": directory tree too deep");
  int dup_fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return fail_sys("dup ", where);
  DIR* d = fdopendir(dup_fd);
  if (!d) {
    close(dup_fd);
    return fail_sys("read directory ", where);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> dir(d, closedir);
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string path = where + "/" + n;
    struct stat st;
    if (fstatat(src, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return fail_sys("stat ", path);
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(dst, n.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) return fail_sys("create ", path);
      UniqueFd s(openat(src, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd t(openat(dst, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!s || !t) return fail_sys("open ", path);
      TRYV(copy_tree(s.get(), t.get(), path, depth + 1));
      fchown(t.get(), st.st_uid, st.st_gid);
      fchmod(t.get(), st.st_mode & 07777);
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd s(openat(src, n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd t(openat(dst, n.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777));
      if (!s || !t) return fail_sys("copy ", path);
      char buf[65536];
      for (;;) {
        ssize_t r = read(s.get(), buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail_sys("read ", path);
        if (r == 0) break;
        for (ssize_t off = 0; off < r;) {
          ssize_t w = write(t.get(), buf + off, static_cast<size_t>(r - off));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return fail_sys("write ", path);
          off += w;
        }
      }
      fchown(t.get(), st.st_uid, st.st_gid);
      fchmod(t.get(), st.st_mode & 07777);
    } else if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t l = readlinkat(src, n.c_str(), target, sizeof target - 1);
      if (l < 0) return fail_sys("read link ", path);
      target[l] = 0;
      if (symlinkat(target, dst, n.c_str()) != 0) return fail_sys("create link ", path);
      fchownat(dst, n.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    }
    // Device nodes, FIFOs and sockets in an image directory are not copied.
  }
  return {};
}

}  // namespace

Result<> add_task_mounts(const MountContext& ctx, const Value& cfg, oci::Spec& spec,
                         std::vector<PendingVolume>& pending) {
  const TaskSpec& task = ctx.task;
  auto env_or = [&](const char* k, const char* d) {
    auto it = task.env.find(k);
    return it != task.env.end() && !it->second.empty() ? it->second : std::string(d);
  };
  spec.mounts.push_back(bind_mount(task.alloc_dir + "/alloc", env_or("NOMAD_ALLOC_DIR", "/alloc"), {"rbind", "rw"}));
  spec.mounts.push_back(bind_mount(ctx.own_dir + "/local", env_or("NOMAD_TASK_DIR", "/local"), {"rbind", "rw"}));
  spec.mounts.push_back(bind_mount(ctx.own_dir + "/secrets", env_or("NOMAD_SECRETS_DIR", "/secrets"), {"rbind", "rw"}));

  TRYV(add_volume_strings(ctx, cfg, spec, pending));
  for (const char* key : {"mount", "mounts"}) {
    const Value& blocks = cfg[key];
    if (blocks.is_null()) continue;
    if (blocks.kind() != Value::Kind::Array) return fail_msg("config.", key, ": expected a list of blocks");
    for (size_t i = 0; i < blocks.items().size(); i++)
      TRYV(add_mount_block(ctx, blocks.items()[i], cat("config.", key, "[", i, "]"), spec, pending));
  }

  TRYV(add_nomad_mounts(spec, task));
  return {};
}

Result<> add_device_blocks(const Value& cfg, oci::Spec& spec) {
  const Value& devs = cfg["devices"];
  if (devs.is_null()) return {};
  if (devs.kind() != Value::Kind::Array) return fail_msg("config.devices: expected a list of blocks");
  for (size_t i = 0; i < devs.items().size(); i++) {
    std::string field = cat("config.devices[", i, "]");
    const Value& d = devs.items()[i];
    std::string host = TRY(read_string(d, "host_path", field));
    if (host.empty()) return fail_msg(field, ".host_path: required");
    std::string dst = TRY(read_string(d, "container_path", field));
    std::string perms = TRY(read_string(d, "cgroup_permissions", field));
    TRYV(podman::add_device(spec, host, dst.empty() ? host : dst, perms, field));
  }
  return {};
}

Result<> create_volumes(const std::vector<PendingVolume>& pending, const std::vector<std::string>& layers) {
  for (const auto& v : pending) {
    std::string parent = v.dir.substr(0, v.dir.rfind('/'));
    if (mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) return fail_sys("create the volume directory ", parent);
    if (mkdir(v.dir.c_str(), 0755) != 0 && errno != EEXIST) return fail_sys("create the volume ", v.dir);
    if (v.image_path.empty()) continue;
    // The image's content at the mount point, resolved inside the image:
    // the topmost layer that has the directory (a volume is seeded from
    // that layer's copy, not a merge of the layers).
    UniqueFd src;
    for (const auto& layer : layers) {
      UniqueFd root(open(layer.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!root) return fail_sys("open ", layer);
      open_how how{};
      how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
      how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
      std::string rel = v.image_path.substr(1);
      src = UniqueFd(static_cast<int>(syscall(SYS_openat2, root.get(), rel.c_str(), &how, sizeof how)));
      if (src) break;
    }
    if (!src) continue;  // nothing in the image there: an empty volume
    UniqueFd dst(open(v.dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dst) return fail_sys("open the volume ", v.dir);
    TRYV_CTX(copy_tree(src.get(), dst.get(), v.image_path, 0), "copy the image's ", v.image_path, " into ", v.dir);
  }
  return {};
}

}  // namespace husk::driver::docker
