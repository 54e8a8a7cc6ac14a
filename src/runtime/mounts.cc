#include "runtime/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/copy_tree.h"
#include "common/fd.h"
#include "runtime/devices.h"
#include "runtime/mount_api.h"
#include "runtime/paths.h"
#include "runtime/rootfs_overlay.h"

namespace husk::runtime {

namespace {

std::string normalized(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

bool is_bind(const oci::Mount& m, const MountFlags& f) {
  return f.bind || m.type == "bind" || m.type == "rbind";
}

// A spec that binds the host's /dev brings its own nodes: making ours would
// write into the host's /dev.
bool binds_host_dev(const oci::Spec& spec) {
  for (const oci::Mount& m : spec.mounts) {
    if (normalized(m.destination) != "/dev") continue;
    auto f = parse_mount_options(m.options);
    if (f && is_bind(m, *f)) return true;
  }
  return false;
}

unsigned long propagation_flags(oci::Propagation p) {
  switch (p) {
    case oci::Propagation::Shared: return MS_SHARED;
    case oci::Propagation::Slave: return MS_SLAVE;
    case oci::Propagation::Private: return MS_PRIVATE;
    case oci::Propagation::Unbindable: return MS_UNBINDABLE;
    case oci::Propagation::RShared: return MS_SHARED | MS_REC;
    case oci::Propagation::RSlave: return MS_SLAVE | MS_REC;
    case oci::Propagation::RPrivate: return MS_PRIVATE | MS_REC;
    case oci::Propagation::RUnbindable: return MS_UNBINDABLE | MS_REC;
    case oci::Propagation::Unset: break;
  }
  return 0;
}

std::string without_option(const std::string& data, const std::string& prefix) {
  std::string out;
  size_t i = 0;
  while (i <= data.size()) {
    size_t j = data.find(',', i);
    if (j == std::string::npos) j = data.size();
    std::string word = data.substr(i, j - i);
    if (!word.empty() && !word.starts_with(prefix)) out += (out.empty() ? "" : ",") + word;
    i = j + 1;
  }
  return out;
}

bool is_permission_error(int err) { return err == EPERM || err == EACCES; }

// Runs the steps of a plan. root is an O_PATH fd of the container's root:
// the rootfs mount before pivot_root, "/" after it.
class RootfsBuilder {
 public:
  RootfsBuilder(const oci::Spec& spec, const RootfsOptions& opts) : spec_(spec), opts_(opts) {}

  Result<> run(const Step& step) {
    switch (step.kind) {
      case StepKind::MakeRootPrivate: return make_root_private();
      case StepKind::BindRootfs: return bind_rootfs();
      case StepKind::Mount: return mount_one(static_cast<size_t>(step.index));
      case StepKind::DefaultDevices: return create_default_devices(root_.get(), opts_.in_user_namespace);
      case StepKind::Device:
        return create_device(root_.get(), spec_.linux->devices[static_cast<size_t>(step.index)],
                             opts_.in_user_namespace);
      case StepKind::DevSymlinks: return create_dev_symlinks(root_.get());
      case StepKind::Console: return bind_console(root_.get(), opts_.console_path);
      case StepKind::BeforePivot: return opts_.before_pivot();
      case StepKind::Pivot: return opts_.no_pivot ? move_root() : pivot_root();
      case StepKind::RootPropagation: return root_propagation();
      case StepKind::MaskPath: return mask_path(step.target);
      case StepKind::ReadonlyPath: return readonly_path(step.target);
      case StepKind::ReadonlyRoot: return readonly_root();
    }
    return fail_msg("unknown rootfs step");
  }

 private:
  Result<> make_root_private() {
    // Nothing we mount may propagate back to the host; with a shared or
    // slave rootfsPropagation the host's mounts may still flow in.
    unsigned long want = propagation_flags(spec_.linux ? spec_.linux->rootfs_propagation : oci::Propagation::Unset);
    unsigned long flags = (want & (MS_SHARED | MS_SLAVE)) ? MS_SLAVE | MS_REC : MS_PRIVATE | MS_REC;
    if (::mount(nullptr, "/", nullptr, flags, nullptr) < 0) return fail_sys("make / ", flags & MS_SLAVE ? "rslave" : "rprivate");
    return {};
  }

  Result<> bind_rootfs() {
    const char* rootfs = opts_.rootfs.c_str();
    if (opts_.rootfs_tree >= 0) {
      // The idmapped clone of the rootfs, made by the parent.
      UniqueFd at = TRY_CTX(open_fd(opts_.rootfs, O_PATH | O_DIRECTORY), "rootfs");
      TRYV_CTX(attach_tree(opts_.rootfs_tree, at.get()), "attach the idmapped rootfs on ", rootfs);
    } else if (opts_.overlay) {
      TRYV(mount_rootfs_overlay());
    } else if (::mount(rootfs, rootfs, nullptr, MS_BIND | MS_REC, nullptr) < 0) {
      return fail_sys("bind the rootfs ", rootfs, " onto itself");
    }
    // Opened after the bind so it names the new mount, which every later
    // mount goes under and pivot_root moves.
    root_ = TRY_CTX(open_fd(opts_.rootfs, O_PATH | O_DIRECTORY), "rootfs");
    return {};
  }

  Result<> mount_rootfs_overlay() {
    overlay::OverlaySpec spec = *opts_.overlay;
    // In a user namespace overlayfs keeps its whiteouts and opaque marks
    // in user.overlay.* (trusted.* is the host's); rootless store layers
    // are unpacked so.
    spec.userxattr = opts_.in_user_namespace;
    const std::string what = cat("annotations.", kRootfsOverlayAnnotation, ": mount the container's root on ", opts_.rootfs);
    if (opts_.overlay_mount == OverlayMount::kFuse) {
      TRYV_CTX(opts_.mount_overlay_outside(""), what);
      return {};
    }
    auto mounted = overlay::mount_overlay(spec, opts_.rootfs);
    if (mounted) return {};
    Error e = std::move(mounted.error());
    bool refused = opts_.in_user_namespace && (e.code() == EPERM || e.code() == EINVAL);
    if (refused && opts_.overlay_mount == OverlayMount::kAuto && opts_.mount_overlay_outside) {
      TRYV_CTX(opts_.mount_overlay_outside(e.str()), what);
      return {};
    }
    if (refused)
      e.context(cat("this kernel does not mount overlayfs in a user namespace (Linux 5.11 and later do; annotation ",
                    kRootfsOverlayMountAnnotation, " = \"fuse-overlayfs\" mounts it with fuse-overlayfs)"));
    return fail(std::move(e).with_context(what));
  }

  bool keep_locked() const { return opts_.in_user_namespace; }

  Result<> apply_flags(int fd, const MountFlags& f, bool all_recursive) {
    TRYV(set_mount_flags(fd, f.flags, f.clear, all_recursive, keep_locked()));
    return set_mount_flags(fd, f.rec_flags, f.rec_clear, true, keep_locked());
  }

  Result<> mount_one(size_t i) {
    const oci::Mount& m = spec_.mounts[i];
    std::string type = m.type.value_or("");
    std::string label = cat("mount \"", m.source.value_or(type), "\" on \"", m.destination, "\" (mounts[", i, "])");
    MountFlags f = TRY_CTX(parse_mount_options(m.options), label);
    if (is_bind(m, f)) return mount_bind(m, f, label);
    return mount_filesystem(m, f, type == "cgroup" ? "cgroup2" : type, label);
  }

  Result<> mount_bind(const oci::Mount& m, const MountFlags& f, const std::string& label) {
    if (!m.source) return fail_errno(EINVAL, label, ": a bind mount needs a source");
    // The source is the caller's (a host path, relative ones to the cwd).
    UniqueFd src = TRY_CTX(open_fd(*m.source, O_PATH), label);
    struct stat st;
    if (::fstat(src.get(), &st) < 0) return fail_sys(label, ": stat source");
    UniqueFd target = S_ISDIR(st.st_mode) ? TRY_CTX(mkdir_in_root(root_.get(), m.destination), label)
                                          : TRY_CTX(touch_in_root(root_.get(), m.destination), label);
    UniqueFd tree = TRY_CTX(clone_tree(src.get(), f.recursive), label);
    if (f.idmap || !m.uid_mappings.empty() || !m.gid_mappings.empty()) TRYV_CTX(idmap(tree.get(), m, f), label);
    TRYV_CTX(apply_flags(tree.get(), f, false), label);
    TRYV_CTX(attach_tree(tree.get(), target.get()), label);
    // After attaching: a shared tree cannot be moved under a shared parent.
    TRYV_CTX(set_propagation(tree.get(), f.propagation), label);
    return {};
  }

  Result<> idmap(int tree, const oci::Mount& m, const MountFlags& f) {
    // "idmap" without mappings means the container's own user namespace maps.
    const auto& uids = !m.uid_mappings.empty() || !spec_.linux ? m.uid_mappings : spec_.linux->uid_mappings;
    const auto& gids = !m.gid_mappings.empty() || !spec_.linux ? m.gid_mappings : spec_.linux->gid_mappings;
    auto made = [&]() -> Result<> {
      UniqueFd userns = TRY(make_idmap_userns(uids, gids));
      return set_idmap(tree, userns.get(), f.recursive_idmap);
    }();
    if (!made && opts_.rootless)
      return fail_msg(
          "an idmapped mount needs CAP_SYS_ADMIN in the user namespace that owns "
          "the source's filesystem, and host ids mapped in the container: a rootless container cannot "
          "idmap a host directory (bind it without \"idmap\"): ",
          made.error().str());
    return made;
  }

  // What crun does where the kernel refuses a filesystem to a user
  // namespace: bind the host's copy instead.
  Result<> bind_host(const oci::Mount& m, MountFlags f, const std::string& host_path, bool force_readonly,
                     const std::string& label) {
    if (force_readonly) f.flags |= MS_RDONLY;
    UniqueFd target = TRY_CTX(mkdir_in_root(root_.get(), m.destination), label);
    UniqueFd tree = TRY_CTX(clone_tree_at(host_path, true), label);
    TRYV_CTX(apply_flags(tree.get(), f, true), label);
    TRYV_CTX(attach_tree(tree.get(), target.get()), label);
    TRYV_CTX(set_propagation(tree.get(), f.propagation), label);
    return {};
  }

  Result<> mount_filesystem(const oci::Mount& m, const MountFlags& f, const std::string& fstype,
                            const std::string& label) {
    if (fstype.empty()) return fail_errno(EINVAL, label, ": no filesystem type");
    bool userns = opts_.in_user_namespace;
    // sysfs belongs to the network namespace: without our own, a userns may not mount it.
    if (fstype == "sysfs" && userns && !opts_.new_net_namespace) return bind_host(m, f, "/sys", false, label);
    bool cgroupns = spec_.linux && spec_.linux->has_namespace(oci::NamespaceType::Cgroup);
    if (fstype == "cgroup2" && userns && !cgroupns) return bind_host(m, f, "/sys/fs/cgroup", false, label);

    UniqueFd target = TRY_CTX(mkdir_in_root(root_.get(), m.destination), label);
    // tmpcopyup reads what the new mount is about to hide: open it first.
    UniqueFd lower;
    if (f.copy_up) lower = TRY_CTX(open_in_root(root_.get(), m.destination, O_RDONLY | O_DIRECTORY), label);

    std::string source = m.source.value_or(fstype);
    std::string data = f.data;
    int rc = ::mount(source.c_str(), fd_path(target.get()).c_str(), fstype.c_str(), f.flags,
                     data.empty() ? nullptr : data.c_str());
    if (rc < 0 && errno == EINVAL && fstype == "devpts" && userns && data.find("gid=") != std::string::npos) {
      // gid=5 (tty) is often unmapped in a user namespace.
      data = without_option(data, "gid=");
      rc = ::mount(source.c_str(), fd_path(target.get()).c_str(), fstype.c_str(), f.flags,
                   data.empty() ? nullptr : data.c_str());
    }
    if (rc < 0) {
      int err = errno;
      if (userns && (is_permission_error(err) || err == EBUSY)) {
        if (fstype == "sysfs") return bind_host(m, f, "/sys", true, label);
        if (fstype == "mqueue") return bind_host(m, f, "/dev/mqueue", false, label);
        if (fstype == "cgroup2") return bind_host(m, f, "/sys/fs/cgroup", false, label);
      }
      return fail_errno(err, label);
    }

    // The fd we mounted on is under the new mount; reach the mount itself.
    UniqueFd top = TRY_CTX(open_in_root(root_.get(), m.destination, O_PATH | O_DIRECTORY), label);
    TRYV_CTX(set_mount_flags(top.get(), f.rec_flags, f.rec_clear, true, keep_locked()), label);
    TRYV_CTX(set_propagation(top.get(), f.propagation), label);
    if (f.copy_up) TRYV_CTX(copy_up(lower.get(), m.destination), label, ": tmpcopyup");
    return {};
  }

  Result<> copy_up(int lower, const std::string& dest) {
    UniqueFd upper = TRY(open_in_root(root_.get(), dest, O_RDONLY | O_DIRECTORY));
    TRYV(copy_tree(lower, upper.get()));
    // The mount point keeps the look of the directory it covers.
    struct stat st;
    if (::fstat(lower, &st) < 0) return fail_sys("stat");
    if (::fchown(upper.get(), st.st_uid, st.st_gid) < 0) return fail_sys("chown");
    if (::fchmod(upper.get(), st.st_mode & 07777) < 0) return fail_sys("chmod");
    return {};
  }

  Result<> pivot_root() {
    UniqueFd old_root = TRY(open_fd("/", O_PATH | O_DIRECTORY));
    if (::fchdir(root_.get()) < 0) return fail_sys("chdir into the rootfs");
    // pivot_root(".", ".") stacks the old root on top of the new one, so no
    // put_old directory is needed inside the image (runc's trick).
    if (::syscall(SYS_pivot_root, ".", ".") < 0) return fail_sys("pivot_root");
    if (::fchdir(old_root.get()) < 0) return fail_sys("chdir into the old root");
    // rslave first: the detach must not propagate to the host's mounts.
    if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) return fail_sys("make the old root rslave");
    if (::umount2(".", MNT_DETACH) < 0) return fail_sys("detach the old root");
    return enter_new_root();
  }

  Result<> move_root() {
    if (::fchdir(root_.get()) < 0) return fail_sys("chdir into the rootfs");
    if (::mount(".", "/", nullptr, MS_MOVE, nullptr) < 0) return fail_sys("move the rootfs onto /");
    if (::chroot(".") < 0) return fail_sys("chroot into the rootfs");
    return enter_new_root();
  }

  Result<> enter_new_root() {
    if (::chdir("/") < 0) return fail_sys("chdir /");
    root_ = TRY(open_fd("/", O_PATH | O_DIRECTORY));
    return {};
  }

  Result<> root_propagation() {
    unsigned long flags = propagation_flags(spec_.linux->rootfs_propagation);
    if (::mount(nullptr, "/", nullptr, flags, nullptr) < 0) return fail_sys("linux.rootfsPropagation");
    return {};
  }

  Result<> mask_path(const std::string& path) {
    auto fd = open_in_root(root_.get(), path, O_PATH);
    if (!fd && (fd.error().code() == ENOENT || fd.error().code() == ENOTDIR)) return {};
    std::string label = cat("mask ", path);
    if (!fd) return fail(std::move(fd.error()).with_context(label));
    struct stat st;
    if (::fstat(fd->get(), &st) < 0) return fail_sys(label, ": stat");
    if (S_ISDIR(st.st_mode)) {
      auto tmpfs = make_empty_tmpfs(true);
      if (!tmpfs && tmpfs.error().code() == ENOSYS) {
        if (::mount("tmpfs", fd_path(fd->get()).c_str(), "tmpfs", MS_RDONLY, nullptr) < 0) return fail_sys(label);
        return {};
      }
      if (!tmpfs) return fail(std::move(tmpfs.error()).with_context(label));
      TRYV_CTX(attach_tree(tmpfs->get(), fd->get()), label);
      return {};
    }
    UniqueFd null = TRY_CTX(clone_tree_at("/dev/null", false), label);
    TRYV_CTX(attach_tree(null.get(), fd->get()), label);
    return {};
  }

  Result<> readonly_path(const std::string& path) {
    auto fd = open_in_root(root_.get(), path, O_PATH);
    if (!fd && (fd.error().code() == ENOENT || fd.error().code() == ENOTDIR)) return {};
    std::string label = cat("make ", path, " read-only");
    if (!fd) return fail(std::move(fd.error()).with_context(label));
    UniqueFd tree = TRY_CTX(clone_tree(fd->get(), true), label);
    TRYV_CTX(set_mount_flags(tree.get(), MS_RDONLY, 0, true, true), label);
    TRYV_CTX(attach_tree(tree.get(), fd->get()), label);
    return {};
  }

  Result<> readonly_root() {
    TRYV_CTX(set_mount_flags(root_.get(), MS_RDONLY, 0, false, true), "root.readonly");
    return {};
  }

  const oci::Spec& spec_;
  const RootfsOptions& opts_;
  UniqueFd root_;
};

}  // namespace

Result<std::vector<Step>> plan_rootfs(const oci::Spec& spec, const RootfsOptions& opts) {
  if (opts.rootfs.empty() || opts.rootfs[0] != '/')
    return fail_errno(EINVAL, "root.path: the rootfs must be an absolute path, got \"", opts.rootfs, "\"");
  std::vector<Step> steps;
  steps.push_back({StepKind::MakeRootPrivate, "/"});
  steps.push_back({StepKind::BindRootfs, "/"});
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    const oci::Mount& m = spec.mounts[i];
    if (m.destination.empty()) return fail_errno(EINVAL, "mounts[", i, "].destination: empty");
    TRYV_CTX(parse_mount_options(m.options), "mounts[", i, "].options");
    steps.push_back({StepKind::Mount, m.destination, static_cast<int>(i)});
  }
  if (!binds_host_dev(spec)) {
    steps.push_back({StepKind::DefaultDevices, "/dev"});
    if (spec.linux)
      for (size_t i = 0; i < spec.linux->devices.size(); ++i)
        steps.push_back({StepKind::Device, spec.linux->devices[i].path, static_cast<int>(i)});
    steps.push_back({StepKind::DevSymlinks, "/dev"});
  }
  if (!opts.console_path.empty()) steps.push_back({StepKind::Console, "/dev/console"});
  if (opts.before_pivot) steps.push_back({StepKind::BeforePivot, ""});
  steps.push_back({StepKind::Pivot, "/"});
  if (spec.linux) {
    if (spec.linux->rootfs_propagation != oci::Propagation::Unset)
      steps.push_back({StepKind::RootPropagation, "/"});
    if (spec.linux->masked_paths)
      for (const std::string& p : *spec.linux->masked_paths) steps.push_back({StepKind::MaskPath, p});
    if (spec.linux->readonly_paths)
      for (const std::string& p : *spec.linux->readonly_paths) steps.push_back({StepKind::ReadonlyPath, p});
  }
  if (spec.root.readonly) steps.push_back({StepKind::ReadonlyRoot, "/"});
  return steps;
}

Result<> setup_rootfs(const oci::Spec& spec, const RootfsOptions& opts) {
  std::vector<Step> steps = TRY(plan_rootfs(spec, opts));
  RootfsBuilder builder(spec, opts);
  for (const Step& step : steps) TRYV(builder.run(step));
  return {};
}

}  // namespace husk::runtime
