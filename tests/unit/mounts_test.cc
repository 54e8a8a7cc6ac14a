// The container's root filesystem: option parsing and step planning without
// privileges; with root, setup_rootfs in a forked child's own mount
// namespace on a busybox rootfs, checked from inside and, for leaks, from
// the host.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "common/fd.h"
#include "runtime/mounts.h"
#include "runtime/paths.h"

// Not in <linux/magic.h> of this distribution; the kernel's value.
#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif

namespace fs = std::filesystem;
using husk::UniqueFd;
using namespace husk::runtime;

namespace {

MountFlags parse(std::vector<std::string> opts) {
  auto r = parse_mount_options(opts);
  EXPECT_TRUE(r.has_value());
  return r ? *r : MountFlags{};
}

}  // namespace

// --- parse_mount_options ---------------------------------------------------

TEST(MountOptions, FlagWordsBecomeMsFlags) {
  MountFlags f = parse({"nosuid", "noexec", "nodev", "ro"});
  EXPECT_EQ(f.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
  EXPECT_EQ(f.clear, 0u);
  EXPECT_TRUE(f.data.empty());
  EXPECT_FALSE(f.bind);
}

TEST(MountOptions, UnknownWordsGoToTheDataString) {
  MountFlags f = parse({"nosuid", "strictatime", "mode=755", "size=65536k"});
  EXPECT_EQ(f.flags, MS_NOSUID | MS_STRICTATIME);
  EXPECT_EQ(f.data, "mode=755,size=65536k");
  f = parse({"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"});
  EXPECT_EQ(f.flags, 0u);
  EXPECT_EQ(f.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
}

TEST(MountOptions, LaterWordWinsAndClearsAreRecorded) {
  MountFlags f = parse({"ro", "rw", "nosuid", "suid", "dev"});
  EXPECT_EQ(f.flags, 0u);
  EXPECT_EQ(f.clear, MS_RDONLY | MS_NOSUID | MS_NODEV);
  f = parse({"rw", "ro"});
  EXPECT_EQ(f.flags, MS_RDONLY);
  EXPECT_EQ(f.clear, 0u);
}

TEST(MountOptions, AtimeModesExcludeEachOther) {
  EXPECT_EQ(parse({"noatime", "strictatime"}).flags, MS_STRICTATIME);
  EXPECT_EQ(parse({"relatime", "noatime", "nodiratime"}).flags, MS_NOATIME | MS_NODIRATIME);
  EXPECT_EQ(parse({"atime"}).clear, MS_NOATIME);
}

TEST(MountOptions, OtherKernelFlags) {
  MountFlags f = parse({"sync", "dirsync", "remount", "mand", "lazytime", "nosymfollow", "silent"});
  EXPECT_EQ(f.flags, MS_SYNCHRONOUS | MS_DIRSYNC | MS_REMOUNT | MS_MANDLOCK | MS_LAZYTIME | MS_NOSYMFOLLOW | MS_SILENT);
}

TEST(MountOptions, BindAndRbind) {
  MountFlags f = parse({"bind"});
  EXPECT_TRUE(f.bind);
  EXPECT_FALSE(f.recursive);
  f = parse({"rbind", "ro"});
  EXPECT_TRUE(f.bind);
  EXPECT_TRUE(f.recursive);
  EXPECT_EQ(f.flags, MS_RDONLY);
  EXPECT_TRUE(f.data.empty());
}

TEST(MountOptions, RecursiveVariantsAreKeptApart) {
  MountFlags f = parse({"rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow", "nodiratime"});
  EXPECT_EQ(f.rec_flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NOSYMFOLLOW);
  EXPECT_EQ(f.flags, MS_NODIRATIME);
  f = parse({"rro", "rrw", "rsuid"});
  EXPECT_EQ(f.rec_flags, 0u);
  EXPECT_EQ(f.rec_clear, MS_RDONLY | MS_NOSUID);
}

TEST(MountOptions, Propagation) {
  EXPECT_EQ(parse({"shared"}).propagation, MS_SHARED);
  EXPECT_EQ(parse({"rshared"}).propagation, MS_SHARED | MS_REC);
  EXPECT_EQ(parse({"slave"}).propagation, MS_SLAVE);
  EXPECT_EQ(parse({"rslave"}).propagation, MS_SLAVE | MS_REC);
  EXPECT_EQ(parse({"private"}).propagation, MS_PRIVATE);
  EXPECT_EQ(parse({"rprivate"}).propagation, MS_PRIVATE | MS_REC);
  EXPECT_EQ(parse({"unbindable"}).propagation, MS_UNBINDABLE);
  EXPECT_EQ(parse({"runbindable"}).propagation, MS_UNBINDABLE | MS_REC);
  MountFlags f = parse({"rbind", "rprivate"});
  EXPECT_EQ(f.flags, 0u);  // never mixed into mount(2) flags
}

TEST(MountOptions, IdmapAndCopyUpAndIgnoredWords) {
  MountFlags f = parse({"idmap"});
  EXPECT_TRUE(f.idmap);
  EXPECT_FALSE(f.recursive_idmap);
  f = parse({"rbind", "ridmap"});
  EXPECT_TRUE(f.idmap);
  EXPECT_TRUE(f.recursive_idmap);
  EXPECT_TRUE(parse({"tmpcopyup"}).copy_up);
  EXPECT_FALSE(parse({"tmpcopyup", "notmpcopyup"}).copy_up);
  f = parse({"defaults", "x-systemd.automount", ""});
  EXPECT_EQ(f.flags, 0u);
  EXPECT_TRUE(f.data.empty());
}

// --- plan_rootfs -------------------------------------------------------------

namespace {

husk::oci::Mount mnt(std::string dest, std::string type, std::string source, std::vector<std::string> opts) {
  husk::oci::Mount m;
  m.destination = std::move(dest);
  if (!type.empty()) m.type = std::move(type);
  if (!source.empty()) m.source = std::move(source);
  m.options = std::move(opts);
  return m;
}

// What `runc spec` / podman give a container.
husk::oci::Spec default_spec() {
  husk::oci::Spec s;
  s.root.path = "rootfs";
  s.mounts = {
      mnt("/proc", "proc", "proc", {}),
      mnt("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mnt("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mnt("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mnt("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mnt("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mnt("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
  };
  husk::oci::Linux l;
  l.namespaces = {{husk::oci::NamespaceType::Mount, {}}, {husk::oci::NamespaceType::Network, {}}};
  husk::oci::Device fuse;
  fuse.type = 'c';
  fuse.path = "/dev/fuse";
  fuse.major = 10;
  fuse.minor = 229;
  fuse.file_mode = 0600;
  fuse.uid = 1000;
  fuse.gid = 1001;
  l.devices = {fuse};
  l.masked_paths = std::vector<std::string>{"/proc/cmdline", "/proc/does-not-exist", "/sys/firmware"};
  l.readonly_paths = std::vector<std::string>{"/proc/sys", "/proc/sysrq-trigger"};
  s.linux = l;
  return s;
}

std::vector<StepKind> kinds(const std::vector<Step>& steps) {
  std::vector<StepKind> out;
  for (const Step& s : steps) out.push_back(s.kind);
  return out;
}

size_t position(const std::vector<Step>& steps, StepKind kind) {
  for (size_t i = 0; i < steps.size(); ++i)
    if (steps[i].kind == kind) return i;
  return steps.size();
}

}  // namespace

TEST(PlanRootfs, DefaultSpecRunsInOrder) {
  husk::oci::Spec spec = default_spec();
  spec.root.readonly = true;
  RootfsOptions opts;
  opts.rootfs = "/run/bundle/rootfs";
  auto plan = plan_rootfs(spec, opts);
  ASSERT_TRUE(plan) << plan.error().str();
  using K = StepKind;
  std::vector<K> want = {K::MakeRootPrivate, K::BindRootfs, K::Mount,    K::Mount,        K::Mount,
                         K::Mount,           K::Mount,      K::Mount,    K::Mount,        K::DefaultDevices,
                         K::Device,          K::DevSymlinks, K::Pivot,   K::MaskPath,     K::MaskPath,
                         K::MaskPath,        K::ReadonlyPath, K::ReadonlyPath, K::ReadonlyRoot};
  EXPECT_EQ(kinds(*plan), want);
  // Mounts keep the spec's order and index.
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ((*plan)[2 + static_cast<size_t>(i)].index, i);
    EXPECT_EQ((*plan)[2 + static_cast<size_t>(i)].target, spec.mounts[static_cast<size_t>(i)].destination);
  }
  EXPECT_EQ((*plan)[10].target, "/dev/fuse");
  EXPECT_EQ((*plan)[10].index, 0);
  EXPECT_EQ((*plan)[13].target, "/proc/cmdline");
  EXPECT_EQ((*plan)[16].target, "/proc/sys");
}

TEST(PlanRootfs, DevicesComeAfterTheDevMountAndMasksAfterPivot) {
  RootfsOptions opts;
  opts.rootfs = "/r";
  auto plan = plan_rootfs(default_spec(), opts);
  ASSERT_TRUE(plan);
  size_t dev_mount = 0;
  for (size_t i = 0; i < plan->size(); ++i)
    if ((*plan)[i].kind == StepKind::Mount && (*plan)[i].target == "/dev") dev_mount = i;
  EXPECT_GT(position(*plan, StepKind::DefaultDevices), dev_mount);
  EXPECT_GT(position(*plan, StepKind::MaskPath), position(*plan, StepKind::Pivot));
  EXPECT_GT(position(*plan, StepKind::ReadonlyPath), position(*plan, StepKind::Pivot));
  EXPECT_EQ(position(*plan, StepKind::ReadonlyRoot), plan->size());  // root.readonly unset
}

TEST(PlanRootfs, ConsoleAndHookComeLastBeforePivot) {
  RootfsOptions opts;
  opts.rootfs = "/r";
  opts.console_path = "/dev/pts/7";
  opts.before_pivot = []() -> husk::Result<> { return {}; };
  auto plan = plan_rootfs(default_spec(), opts);
  ASSERT_TRUE(plan);
  size_t console = position(*plan, StepKind::Console);
  ASSERT_LT(console, plan->size());
  EXPECT_EQ((*plan)[console].target, "/dev/console");
  EXPECT_GT(console, position(*plan, StepKind::DevSymlinks));
  EXPECT_EQ(position(*plan, StepKind::BeforePivot), console + 1);
  EXPECT_EQ(position(*plan, StepKind::Pivot), console + 2);
}

TEST(PlanRootfs, NoPivotKeepsTheSameSteps) {
  RootfsOptions a, b;
  a.rootfs = b.rootfs = "/r";
  b.no_pivot = true;
  auto pa = plan_rootfs(default_spec(), a);
  auto pb = plan_rootfs(default_spec(), b);
  ASSERT_TRUE(pa && pb);
  EXPECT_EQ(kinds(*pa), kinds(*pb));
}

TEST(PlanRootfs, HostDevBindSkipsDeviceCreation) {
  husk::oci::Spec spec = default_spec();
  spec.mounts[1] = mnt("/dev/", "bind", "/dev", {"rbind"});
  RootfsOptions opts;
  opts.rootfs = "/r";
  auto plan = plan_rootfs(spec, opts);
  ASSERT_TRUE(plan);
  EXPECT_EQ(position(*plan, StepKind::DefaultDevices), plan->size());
  EXPECT_EQ(position(*plan, StepKind::Device), plan->size());
  EXPECT_EQ(position(*plan, StepKind::DevSymlinks), plan->size());
}

TEST(PlanRootfs, RootPropagationRightAfterPivot) {
  husk::oci::Spec spec = default_spec();
  spec.linux->rootfs_propagation = husk::oci::Propagation::RShared;
  RootfsOptions opts;
  opts.rootfs = "/r";
  auto plan = plan_rootfs(spec, opts);
  ASSERT_TRUE(plan);
  EXPECT_EQ(position(*plan, StepKind::RootPropagation), position(*plan, StepKind::Pivot) + 1);
}

TEST(PlanRootfs, RejectsRelativeRootfsAndEmptyDestination) {
  RootfsOptions opts;
  opts.rootfs = "rootfs";
  EXPECT_FALSE(plan_rootfs(default_spec(), opts));
  opts.rootfs = "/r";
  husk::oci::Spec spec = default_spec();
  spec.mounts.push_back(mnt("", "tmpfs", "tmpfs", {}));
  auto plan = plan_rootfs(spec, opts);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().str().find("mounts[7]"), std::string::npos) << plan.error().str();
}

// --- paths -------------------------------------------------------------------

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "husk-mounts-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

ino_t inode_of_fd(int fd) {
  struct stat st {};
  fstat(fd, &st);
  return st.st_ino;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  lstat(path.c_str(), &st);
  return st.st_ino;
}

using Opener = husk::Result<UniqueFd> (*)(int, const std::string&, int, mode_t);

}  // namespace

class OpenInRoot : public ::testing::TestWithParam<Opener> {};

TEST_P(OpenInRoot, SymlinksAndDotDotStayInsideTheRoot) {
  TempDir tmp;
  std::string root = tmp.path() + "/root";
  fs::create_directories(root + "/target");
  fs::create_directories(root + "/etc");
  write_text(root + "/target/file", "x");
  fs::create_symlink("/target", root + "/etc/abs");                      // absolute: root-relative
  fs::create_symlink("../../../../../target", root + "/etc/rel");         // climbs past the root
  fs::create_symlink(tmp.path(), root + "/escape");                       // the host dir, by its host path
  UniqueFd rootfd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  Opener open_fn = GetParam();

  for (const char* p : {"/etc/abs/file", "etc/rel/file", "/../../target/file", "/etc/../../target/./file"}) {
    auto fd = open_fn(rootfd.get(), p, O_RDONLY, 0);
    ASSERT_TRUE(fd) << p << ": " << fd.error().str();
    EXPECT_EQ(inode_of_fd(fd->get()), inode_of(root + "/target/file")) << p;
  }
  // The host path means nothing inside the root.
  auto esc = open_fn(rootfd.get(), "/escape/root", O_PATH, 0);
  ASSERT_FALSE(esc);
  EXPECT_EQ(esc.error().code(), ENOENT);
  // The root itself.
  auto self = open_fn(rootfd.get(), "/", O_PATH | O_DIRECTORY, 0);
  ASSERT_TRUE(self);
  EXPECT_EQ(inode_of_fd(self->get()), inode_of(root));
  // O_CREAT makes the file inside the root, through a link.
  auto created = open_fn(rootfd.get(), "/etc/abs/new", O_WRONLY | O_CREAT, 0600);
  ASSERT_TRUE(created) << created.error().str();
  EXPECT_TRUE(fs::exists(root + "/target/new"));
}

INSTANTIATE_TEST_SUITE_P(Resolvers, OpenInRoot,
                         ::testing::Values(static_cast<Opener>(&open_in_root), static_cast<Opener>(&open_in_root_walk)));

TEST(PathsInRoot, MkdirAndTouchCreateInsideTheRoot) {
  TempDir tmp;
  std::string root = tmp.path() + "/root";
  std::string host = tmp.path() + "/host";
  fs::create_directories(root + "/real");
  fs::create_directories(host);
  fs::create_symlink("/real", root + "/link");
  fs::create_symlink(host, root + "/evil");
  UniqueFd rootfd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));

  auto dir = mkdir_in_root(rootfd.get(), "/link/a/b");
  ASSERT_TRUE(dir) << dir.error().str();
  EXPECT_TRUE(fs::is_directory(root + "/real/a/b"));
  EXPECT_EQ(inode_of_fd(dir->get()), inode_of(root + "/real/a/b"));

  auto file = touch_in_root(rootfd.get(), "/link/c/d/file", 0644);
  ASSERT_TRUE(file) << file.error().str();
  EXPECT_TRUE(fs::is_regular_file(root + "/real/c/d/file"));

  // A link to a host path never makes anything on the host.
  EXPECT_FALSE(mkdir_in_root(rootfd.get(), "/evil/x"));
  EXPECT_FALSE(touch_in_root(rootfd.get(), "/evil/y"));
  EXPECT_TRUE(fs::is_empty(host));
  EXPECT_EQ(fd_path(7), "/proc/self/fd/7");
}

// --- setup_rootfs, as root ---------------------------------------------------

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ChildResult {
  int status = -1;
  std::string report;
};

// Runs body in a forked child in its own mount namespace; body returns the
// failures it saw ("" = all good). The child never returns into gtest.
ChildResult run_in_mount_ns(const std::function<std::string()>& body) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    std::string report;
    if (unshare(CLONE_NEWNS) < 0)
      report = "unshare(CLONE_NEWNS) failed";
    else
      report = body();
    (void)husk::write_all(p[1], report);
    _exit(report.empty() ? 0 : 1);
  }
  close(p[1]);
  UniqueFd r(p[0]);
  ChildResult out;
  auto text = husk::read_all(r.get());
  if (text) out.report = *text;
  while (waitpid(pid, &out.status, 0) < 0 && errno == EINTR) {
  }
  return out;
}

class Check {
 public:
  void expect(bool ok, const std::string& what) {
    if (!ok) out_ += what + "\n";
  }
  std::string report() const { return out_; }

 private:
  std::string out_;
};

class SetupRootfs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    mountinfo_before_ = read_text("/proc/self/mountinfo");
    rootfs_ = tmp_.path() + "/rootfs";
    host_ = tmp_.path() + "/host";
    for (const char* d : {"bin", "proc", "sys", "dev", "etc", "tmp", "masked"}) fs::create_directories(rootfs_ + "/" + d);
    fs::copy_file("/bin/busybox", rootfs_ + "/bin/busybox");
    for (const char* tool : {"sh", "cat", "ls", "test"}) fs::create_symlink("busybox", rootfs_ + "/bin/" + tool);
    write_text(rootfs_ + "/etc/secret", "secret");
    write_text(rootfs_ + "/masked/secret", "secret");
    fs::create_directories(host_ + "/data");
    write_text(host_ + "/data/hello", "hello from the host");
  }
  void TearDown() override {
    if (geteuid() != 0) return;
    // Everything happened in the child's namespace: the host's is unchanged.
    EXPECT_EQ(read_text("/proc/self/mountinfo"), mountinfo_before_);
  }

  RootfsOptions options() const {
    RootfsOptions o;
    o.rootfs = rootfs_;
    return o;
  }

  TempDir tmp_;
  std::string rootfs_, host_, mountinfo_before_;
};

bool is_fs(const char* path, long magic) {
  struct statfs st;
  return statfs(path, &st) == 0 && st.f_type == magic;
}

int write_errno(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

std::string readlink_text(const char* path) {
  char buf[256];
  ssize_t n = readlink(path, buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

// Runs a command with the rootfs's busybox; its exit status.
int run_busybox(const char* script) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/busybox", "sh", "-c", script, static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = -1;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

TEST_F(SetupRootfs, DefaultSpecGivesAWorkingContainerRoot) {
  husk::oci::Spec spec = default_spec();
  spec.root.readonly = true;
  spec.mounts.push_back(mnt("/data", "bind", host_ + "/data", {"rbind", "ro"}));
  spec.mounts.push_back(mnt("/etc/hostfile", "", host_ + "/data/hello", {"bind"}));
  spec.linux->masked_paths->push_back("/etc/secret");
  spec.linux->masked_paths->push_back("/masked");
  RootfsOptions opts = options();
  bool hook_ran = false;
  opts.before_pivot = [&]() -> husk::Result<> {
    hook_ran = true;
    return {};
  };
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, opts);
    if (!done) return "setup_rootfs: " + done.error().str();
    Check c;
    c.expect(hook_ran, "before_pivot did not run");
    c.expect(fs::exists("/bin/busybox") && !fs::exists(rootfs_), "/ is not the rootfs");
    c.expect(is_fs("/proc", PROC_SUPER_MAGIC), "/proc is not procfs");
    c.expect(is_fs("/sys", SYSFS_MAGIC), "/sys is not sysfs");
    c.expect(is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC), "/sys/fs/cgroup is not cgroup2");
    c.expect(is_fs("/dev/pts", DEVPTS_SUPER_MAGIC), "/dev/pts is not devpts");
    c.expect(is_fs("/dev/mqueue", MQUEUE_MAGIC), "/dev/mqueue is not mqueue");
    struct statvfs dev;
    c.expect(statvfs("/dev", &dev) == 0 && dev.f_blocks * dev.f_frsize == 65536ull * 1024, "/dev tmpfs size is not 64M");
    c.expect((dev.f_flag & ST_NOSUID) != 0, "/dev is not nosuid");
    struct statvfs sys;
    c.expect(statvfs("/sys", &sys) == 0 && (sys.f_flag & ST_RDONLY), "/sys is not read-only");

    struct stat st;
    c.expect(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3,
             "/dev/null is not char 1:3");
    c.expect((st.st_mode & 0777) == 0666 && st.st_uid == 0, "/dev/null is not 0666 root");
    c.expect(stat("/dev/fuse", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(10, 229) &&
                 (st.st_mode & 0777) == 0600 && st.st_uid == 1000 && st.st_gid == 1001,
             "/dev/fuse is not char 10:229 0600 1000:1001");
    c.expect(readlink_text("/dev/fd") == "/proc/self/fd", "/dev/fd link");
    c.expect(readlink_text("/dev/stderr") == "/proc/self/fd/2", "/dev/stderr link");
    c.expect(readlink_text("/dev/ptmx") == "pts/ptmx", "/dev/ptmx link");

    c.expect(read_text("/proc/cmdline").empty(), "masked /proc/cmdline is not empty");
    c.expect(read_text("/etc/secret").empty(), "masked /etc/secret is not empty");
    c.expect(fs::exists("/masked") && fs::is_empty("/masked"), "masked directory is not empty");
    c.expect(write_errno("/masked/x") == EROFS, "masked directory is writable");
    c.expect(write_errno("/proc/sys/kernel/hostname") == EROFS, "readonly /proc/sys is writable");
    c.expect(write_errno("/newfile") == EROFS, "root.readonly: / is writable");
    c.expect(write_errno("/dev/shm/ok") == 0, "/dev/shm is not writable");

    c.expect(read_text("/data/hello") == "hello from the host", "rbind /data does not show the host file");
    c.expect(write_errno("/data/new") == EROFS, "ro bind /data is writable");
    c.expect(read_text("/etc/hostfile") == "hello from the host", "file bind does not show the host file");
    c.expect(run_busybox("test -c /dev/null && test -d /proc/self && cat /data/hello >/dev/null") == 0,
             "busybox in the container failed");
    return c.report();
  });
  EXPECT_EQ(r.status, 0) << r.report;
  EXPECT_FALSE(fs::exists(host_ + "/data/new"));
}

TEST_F(SetupRootfs, NoPivotMovesTheRootfs) {
  husk::oci::Spec spec;
  spec.mounts = {mnt("/proc", "proc", "proc", {}), mnt("/tmp", "tmpfs", "tmpfs", {"size=1m", "mode=1777"})};
  RootfsOptions opts = options();
  opts.no_pivot = true;
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, opts);
    if (!done) return "setup_rootfs: " + done.error().str();
    Check c;
    c.expect(fs::exists("/bin/busybox"), "/ is not the rootfs");
    c.expect(is_fs("/proc", PROC_SUPER_MAGIC), "/proc is not procfs");
    struct statvfs t;
    c.expect(statvfs("/tmp", &t) == 0 && t.f_blocks * t.f_frsize == 1024 * 1024, "/tmp tmpfs is not 1m");
    struct stat st;
    c.expect(stat("/tmp", &st) == 0 && (st.st_mode & 07777) == 01777, "/tmp mode is not 1777");
    return c.report();
  });
  EXPECT_EQ(r.status, 0) << r.report;
}

TEST_F(SetupRootfs, IdmappedBindShowsMappedOwners) {
  fs::create_directories(host_ + "/owned");
  write_text(host_ + "/owned/file", "x");
  ASSERT_EQ(chown((host_ + "/owned/file").c_str(), 0, 0), 0);
  husk::oci::Spec spec;
  husk::oci::Mount m = mnt("/owned", "bind", host_ + "/owned", {"rbind"});
  m.uid_mappings = {{0, 1000, 10}};
  m.gid_mappings = {{0, 2000, 10}};
  spec.mounts = {m};
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, options());
    if (!done) return "setup_rootfs: " + done.error().str();
    struct stat st;
    if (stat("/owned/file", &st) < 0) return "stat /owned/file failed";
    if (st.st_uid != 1000 || st.st_gid != 2000)
      return husk::cat("/owned/file is owned by ", st.st_uid, ":", st.st_gid, ", want 1000:2000");
    return "";
  });
  EXPECT_EQ(r.status, 0) << r.report;
  struct stat st;
  ASSERT_EQ(stat((host_ + "/owned/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // the host's view is untouched
}

TEST_F(SetupRootfs, TmpCopyUpKeepsTheImageFiles) {
  fs::create_directories(rootfs_ + "/var/lib/app/sub");
  write_text(rootfs_ + "/var/lib/app/sub/conf", "image conf");
  fs::create_symlink("sub/conf", rootfs_ + "/var/lib/app/link");
  ASSERT_EQ(chmod((rootfs_ + "/var/lib/app").c_str(), 0750), 0);
  husk::oci::Spec spec;
  spec.mounts = {mnt("/var/lib/app", "tmpfs", "tmpfs", {"tmpcopyup", "size=1m"})};
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, options());
    if (!done) return "setup_rootfs: " + done.error().str();
    Check c;
    c.expect(is_fs("/var/lib/app", TMPFS_MAGIC), "/var/lib/app is not tmpfs");
    c.expect(read_text("/var/lib/app/sub/conf") == "image conf", "copied file differs");
    c.expect(readlink_text("/var/lib/app/link") == "sub/conf", "copied symlink differs");
    struct stat st;
    c.expect(stat("/var/lib/app", &st) == 0 && (st.st_mode & 07777) == 0750, "mount point mode not copied");
    c.expect(write_errno("/var/lib/app/new") == 0, "tmpfs not writable");
    return c.report();
  });
  EXPECT_EQ(r.status, 0) << r.report;
  EXPECT_FALSE(fs::exists(rootfs_ + "/var/lib/app/new"));  // writes went to the tmpfs
}

// runc CVE-2021-30465 class: a symlink in the image must not send a mount
// (or a mkdir) to the host.
TEST_F(SetupRootfs, SymlinkInImageCannotRedirectAMountToTheHost) {
  std::string hostdir = tmp_.path() + "/hostdir";
  fs::create_directories(hostdir);
  write_text(hostdir + "/marker", "host");
  fs::create_symlink(hostdir, rootfs_ + "/evil");                                  // absolute host path
  fs::create_symlink("../../../../../../../../" + hostdir, rootfs_ + "/evil2");  // climbing out
  fs::create_directories(rootfs_ + hostdir);  // so the in-root target exists and the mounts succeed

  husk::oci::Spec spec;
  spec.mounts = {mnt("/evil/x", "tmpfs", "tmpfs", {"size=1m"}),
                 mnt("/evil2/y", "bind", host_ + "/data", {"rbind"})};
  RootfsOptions opts = options();
  std::string seen_before_pivot;
  opts.before_pivot = [&]() -> husk::Result<> {
    // The host's paths are still reachable here: nothing may be on them.
    if (fs::exists(hostdir + "/x") || fs::exists(hostdir + "/y")) seen_before_pivot = "host dir got x or y";
    if (is_fs(hostdir.c_str(), TMPFS_MAGIC)) seen_before_pivot = "host dir is a tmpfs";
    return {};
  };
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, opts);
    if (!done) return "setup_rootfs: " + done.error().str();
    Check c;
    c.expect(seen_before_pivot.empty(), seen_before_pivot);
    c.expect(is_fs((hostdir + "/x").c_str(), TMPFS_MAGIC), "tmpfs did not land inside the rootfs");
    c.expect(read_text(hostdir + "/y/hello") == "hello from the host", "bind did not land inside the rootfs");
    c.expect(!fs::exists(hostdir + "/marker"), "the container sees the host dir");
    return c.report();
  });
  EXPECT_EQ(r.status, 0) << r.report;
  EXPECT_TRUE(fs::is_directory(rootfs_ + hostdir + "/x"));
  EXPECT_FALSE(fs::exists(hostdir + "/x"));
  EXPECT_FALSE(fs::exists(hostdir + "/y"));
}

TEST_F(SetupRootfs, SymlinkToMissingInRootTargetFailsWithoutTouchingTheHost) {
  std::string hostdir = tmp_.path() + "/hostdir";
  fs::create_directories(hostdir);
  fs::create_symlink(hostdir, rootfs_ + "/evil");
  fs::remove_all(rootfs_ + "/tmp");
  husk::oci::Spec spec;
  spec.mounts = {mnt("/evil/x", "tmpfs", "tmpfs", {})};
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, options());
    if (done) return "setup_rootfs succeeded";
    std::string msg = done.error().str();
    if (msg.find("mount \"tmpfs\" on \"/evil/x\" (mounts[0])") == std::string::npos) return "bad error: " + msg;
    return "";
  });
  EXPECT_EQ(r.status, 0) << r.report;
  EXPECT_TRUE(fs::is_empty(hostdir));
}

TEST_F(SetupRootfs, ErrorsNameTheMount) {
  husk::oci::Spec spec;
  spec.mounts = {mnt("/proc", "proc", "proc", {}), mnt("/x", "no-such-fs", "thing", {})};
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    auto done = setup_rootfs(spec, options());
    if (done) return "setup_rootfs succeeded";
    std::string msg = done.error().str();
    if (msg != "mount \"thing\" on \"/x\" (mounts[1]): No such device") return "bad error: " + msg;
    return "";
  });
  EXPECT_EQ(r.status, 0) << r.report;
}

// Rootless rules: in a user namespace mknod is refused, sysfs needs the
// network namespace, devpts's gid=5 may be unmapped, and the host's mount
// flags are locked. The child maps only root onto itself, which a process
// may do for its own namespace.
TEST_F(SetupRootfs, UserNamespaceBindsWhatItCannotMount) {
  husk::oci::Spec spec;
  spec.mounts = {
      mnt("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mnt("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mnt("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mnt("/data", "bind", host_ + "/data", {"rbind", "ro", "nosuid"}),
  };
  spec.root.readonly = true;
  husk::oci::Linux l;
  l.masked_paths = std::vector<std::string>{"/etc/secret", "/sys/firmware"};
  l.readonly_paths = std::vector<std::string>{"/dev/shm-missing", "/data"};
  spec.linux = l;
  RootfsOptions opts = options();
  opts.in_user_namespace = true;
  opts.new_net_namespace = false;
  ChildResult r = run_in_mount_ns([&]() -> std::string {
    if (unshare(CLONE_NEWUSER) < 0) return "unshare(CLONE_NEWUSER) failed";
    if (!husk::write_file("/proc/self/setgroups", "deny") || !husk::write_file("/proc/self/uid_map", "0 0 1") ||
        !husk::write_file("/proc/self/gid_map", "0 0 1"))
      return "writing the id maps failed";
    if (unshare(CLONE_NEWNS) < 0) return "unshare(CLONE_NEWNS) in the userns failed";
    auto done = setup_rootfs(spec, opts);
    if (!done) return "setup_rootfs: " + done.error().str();
    Check c;
    struct stat st;
    c.expect(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
             "/dev/null is not the host's node");
    c.expect(is_fs("/dev/pts", DEVPTS_SUPER_MAGIC), "/dev/pts is not devpts");
    c.expect(is_fs("/sys", SYSFS_MAGIC), "/sys is not the host's sysfs");
    c.expect(write_errno("/sys/kernel/new") == EROFS, "/sys is writable");
    c.expect(fs::is_empty("/sys/firmware"), "masked /sys/firmware is not empty");
    c.expect(read_text("/etc/secret").empty(), "masked /etc/secret is not empty");
    c.expect(read_text("/data/hello") == "hello from the host", "/data bind");
    c.expect(write_errno("/data/new") == EROFS, "/data is writable");
    c.expect(write_errno("/newfile") == EROFS, "root.readonly: / is writable");
    return c.report();
  });
  EXPECT_EQ(r.status, 0) << r.report;
}
