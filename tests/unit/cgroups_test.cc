// linux.resources -> cgroup v2 files, and the fs manager on a fake tree.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "cgroups/events.h"
#include "cgroups/manager.h"
#include "cgroups/resources.h"
#include "cgroups/rootless.h"
#include "cgroups/stats.h"
#include "cgroups/systemd_manager.h"

using namespace husk;
using namespace husk::cgroups;

namespace {

std::map<std::string, std::string> files_of(const oci::Resources& r, bool bfq = false) {
  auto w = translate(r, [&](const std::string& f) { return bfq && f == "io.bfq.weight"; });
  EXPECT_TRUE(w) << w.error().str();
  std::map<std::string, std::string> out;
  for (const auto& x : *w) out[x.file] += (out[x.file].empty() ? "" : "|") + x.value;
  return out;
}

struct FakeTree {
  std::string root;
  FakeTree() {
    char t[] = "/tmp/husk-cg-XXXXXX";
    root = mkdtemp(t);
    put("cgroup.controllers", "cpuset cpu io memory pids");
    put("cgroup.subtree_control", "");
  }
  ~FakeTree() { std::filesystem::remove_all(root); }
  void put(const std::string& rel, const std::string& v) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + rel).parent_path());
    std::ofstream(root + "/" + rel) << v;
  }
  std::string get(const std::string& rel) {
    std::ifstream in(root + "/" + rel);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
};

}  // namespace

TEST(Resources, Memory) {
  oci::Resources r;
  r.memory = oci::MemoryResources{};
  r.memory->limit = 1 << 20;
  r.memory->reservation = 1024;
  r.memory->swap = 3 << 20;
  auto f = files_of(r);
  EXPECT_EQ(f["memory.max"], "1048576");
  EXPECT_EQ(f["memory.low"], "1024");
  EXPECT_EQ(f["memory.swap.max"], std::to_string(2 << 20));  // OCI swap is memory+swap
  r.memory->limit = -1;
  r.memory->swap = -1;
  f = files_of(r);
  EXPECT_EQ(f["memory.max"], "max");
  EXPECT_EQ(f["memory.swap.max"], "max");
}

TEST(Resources, SwapBelowLimitIsAnError) {
  oci::Resources r;
  r.memory = oci::MemoryResources{};
  r.memory->limit = 2 << 20;
  r.memory->swap = 1 << 20;
  auto w = translate(r, [](const std::string&) { return false; });
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().str().find("linux.resources.memory.swap"), std::string::npos);
}

TEST(Resources, Cpu) {
  oci::Resources r;
  r.cpu = oci::CpuResources{};
  r.cpu->shares = 1024;
  r.cpu->quota = 50000;
  r.cpu->period = 100000;
  r.cpu->burst = 1000;
  r.cpu->cpus = "0-1";
  r.cpu->mems = "0";
  r.cpu->idle = 1;
  auto f = files_of(r);
  EXPECT_EQ(f["cpu.weight"], "100");  // crun's mapping: the defaults meet
  EXPECT_EQ(f["cpu.max"], "50000 100000");
  EXPECT_EQ(f["cpu.max.burst"], "1000");
  EXPECT_EQ(f["cpuset.cpus"], "0-1");
  EXPECT_EQ(f["cpuset.mems"], "0");
  EXPECT_EQ(f["cpu.idle"], "1");
  r.cpu = oci::CpuResources{};
  r.cpu->period = 20000;
  EXPECT_EQ(files_of(r)["cpu.max"], "max 20000");
  EXPECT_EQ(shares_to_weight(2), 1u);
  EXPECT_EQ(shares_to_weight(262144), 10000u);
}

TEST(Resources, PidsIoHugetlbRdmaUnified) {
  oci::Resources r;
  r.pids = oci::PidsResources{100};
  r.block_io = oci::BlockIoResources{};
  r.block_io->weight = 500;
  r.block_io->throttle_read_bps_device = {{8, 0, 1000}};
  r.block_io->throttle_write_iops_device = {{8, 0, 20}};
  r.hugepage_limits = {{"2MB", 4096}};
  r.rdma["mlx"] = oci::RdmaLimit{2, 3};
  r.unified["memory.high"] = "5000";
  auto f = files_of(r);
  EXPECT_EQ(f["pids.max"], "100");
  EXPECT_EQ(f["io.weight"], "4950");  // 1 + (500-10)*9999/990
  EXPECT_EQ(f["io.max"], "8:0 rbps=1000 wiops=20");
  EXPECT_EQ(f["hugetlb.2MB.max"], "4096");
  EXPECT_EQ(f["rdma.max"], "mlx hca_handle=2 hca_object=3");
  EXPECT_EQ(f["memory.high"], "5000");
  EXPECT_EQ(files_of(r, true)["io.bfq.weight"], "500");
  r = oci::Resources{};
  r.pids = oci::PidsResources{0};
  EXPECT_EQ(files_of(r)["pids.max"], "max");
}

TEST(Resources, UnsupportedOnV2AreErrors) {
  oci::Resources r;
  r.cpu = oci::CpuResources{};
  r.cpu->realtime_runtime = 1000;
  EXPECT_FALSE(translate(r, [](const std::string&) { return false; }));
  r = oci::Resources{};
  r.unified["../escape"] = "1";
  EXPECT_FALSE(translate(r, [](const std::string&) { return false; }));
}

TEST(FsManager, AppliesToAFakeTreeAndEnablesControllers) {
  FakeTree t;
  Options o;
  o.mount_point = t.root;
  o.container_id = "c1";
  auto m = make_manager(o);
  ASSERT_TRUE(m) << m.error().str();
  ASSERT_TRUE((*m)->create());
  EXPECT_EQ((*m)->path(), t.root + "/husk/c1");
  // The kernel fills each child's cgroup.controllers; a fake tree has to.
  t.put("husk/cgroup.controllers", "cpuset cpu io memory pids");
  t.put("husk/cgroup.subtree_control", "");
  t.put("husk/c1/memory.max", "max");
  t.put("husk/c1/pids.max", "max");
  oci::Resources r;
  r.memory = oci::MemoryResources{};
  r.memory->limit = 4096;
  auto a = (*m)->apply(r);
  ASSERT_TRUE(a) << a.error().str();
  EXPECT_EQ(t.get("husk/c1/memory.max"), "4096");
  // Controllers are enabled from the root down to the container's parent
  // (a fake file keeps the last write; the kernel's accumulates).
  EXPECT_EQ(t.get("cgroup.subtree_control"), "+memory");
  EXPECT_EQ(t.get("husk/cgroup.subtree_control"), "+memory");
  oci::Resources p;
  p.pids = oci::PidsResources{7};
  ASSERT_TRUE((*m)->apply(p));
  EXPECT_EQ(t.get("husk/c1/pids.max"), "7");
  EXPECT_EQ(t.get("husk/cgroup.subtree_control"), "+pids");
}

TEST(FsManager, MissingControllerIsNamed) {
  FakeTree t;
  t.put("cgroup.controllers", "hugetlb");
  Options o;
  o.mount_point = t.root;
  o.container_id = "c2";
  auto m = make_manager(o);
  ASSERT_TRUE(m);
  ASSERT_TRUE((*m)->create());
  oci::Resources r;
  r.memory = oci::MemoryResources{};
  r.memory->limit = 4096;
  auto a = (*m)->apply(r);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().str(), "linux.resources.memory.limit: the memory controller is not available in " + t.root +
                                 " (cgroup.controllers: \"hugetlb\"): Operation not supported");
}

TEST(FsManager, PathRules) {
  FakeTree t;
  Options o;
  o.mount_point = t.root;
  o.cgroups_path = "/a/b";
  EXPECT_EQ((*make_manager(o))->path(), t.root + "/a/b");
  o.cgroups_path = "/a/../../etc";
  auto bad = make_manager(o);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("linux.cgroupsPath"), std::string::npos);
  o.kind = ManagerKind::Systemd;
  EXPECT_FALSE(make_manager(o));
}

TEST(DisabledManager, RefusesLimits) {
  Options o;
  o.kind = ManagerKind::Disabled;
  auto m = make_manager(o);
  ASSERT_TRUE(m);
  EXPECT_TRUE((*m)->apply(oci::Resources{}));
  oci::Resources r;
  r.pids = oci::PidsResources{5};
  EXPECT_FALSE((*m)->apply(r));
}

TEST(FsManager, NoLimitNeedsNoController) {
  FakeTree t;
  t.put("cgroup.controllers", "hugetlb");
  Options o;
  o.mount_point = t.root;
  o.container_id = "c3";
  auto m = make_manager(o);
  ASSERT_TRUE(m);
  ASSERT_TRUE((*m)->create());
  oci::Resources r;
  r.pids = oci::PidsResources{0};  // unlimited, as podman sends by default
  auto a = (*m)->apply(r);
  EXPECT_TRUE(a) << a.error().str();
  r.pids = oci::PidsResources{10};
  EXPECT_FALSE((*m)->apply(r));
}

TEST(Stats, ReadsEveryControllerOfAFakeCgroup) {
  FakeTree t;
  t.put("c/memory.current", "1000\n");
  t.put("c/memory.peak", "2000\n");
  t.put("c/memory.max", "max\n");
  t.put("c/memory.swap.current", "0\n");
  t.put("c/memory.stat", "anon 600\nfile 300\nkernel 100\nsock 0\n");
  t.put("c/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
  t.put("c/cpu.stat", "usage_usec 50\nuser_usec 30\nsystem_usec 20\nnr_periods 9\nnr_throttled 3\nthrottled_usec 70\n");
  t.put("c/pids.current", "3\n");
  t.put("c/pids.max", "max\n");
  t.put("c/io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
  t.put("c/hugetlb.2MB.current", "0\n");
  t.put("c/hugetlb.2MB.max", "4194304\n");
  t.put("c/hugetlb.2MB.events", "max 2\n");
  t.put("c/hugetlb.2MB.rsvd.current", "0\n");
  t.put("c/hugetlb.1GB.current", "0\n");
  Stats st = read_stats(t.root + "/c");
  ASSERT_TRUE(st.memory);
  EXPECT_EQ(st.memory->usage, 1000u);
  EXPECT_EQ(st.memory->max_usage, 2000u);
  EXPECT_EQ(st.memory->limit, kUnlimited);
  EXPECT_EQ(st.memory->anon, 600u);
  EXPECT_EQ(st.memory->file, 300u);
  EXPECT_EQ(st.memory->kernel, 100u);
  EXPECT_EQ(st.memory->oom_kill, 1u);
  EXPECT_EQ(st.memory->max, 4u);
  EXPECT_EQ(st.memory->stat.at("sock"), 0u);
  ASSERT_TRUE(st.cpu);
  EXPECT_EQ(st.cpu->nr_throttled, 3u);
  EXPECT_EQ(st.cpu->throttled_usec, 70u);
  EXPECT_EQ(st.pids_current, 3u);
  EXPECT_EQ(st.pids_limit, kUnlimited);
  ASSERT_EQ(st.io.size(), 2u);
  EXPECT_EQ(st.io[0].major, 8u);
  EXPECT_EQ(st.io[0].wbytes, 8192u);
  EXPECT_EQ(st.io[1].minor, 1u);
  ASSERT_EQ(st.hugetlb.size(), 2u);  // rsvd is not a page size
  EXPECT_EQ(st.hugetlb[0].page_size, "1GB");
  EXPECT_EQ(st.hugetlb[1].page_size, "2MB");
  EXPECT_EQ(st.hugetlb[1].limit, 4194304u);
  EXPECT_EQ(st.hugetlb[1].failcnt, 2u);
}

TEST(Stats, MissingControllersLeaveTheirPartEmpty) {
  FakeTree t;
  t.put("c/cpu.stat", "usage_usec 5\n");
  Stats st = read_stats(t.root + "/c");
  EXPECT_FALSE(st.memory);
  EXPECT_TRUE(st.cpu);
  EXPECT_FALSE(st.pids_current);
  EXPECT_TRUE(st.io.empty());
}

TEST(EventWatcher, WakesOnAnOomKillAndOnEmptiness) {
  FakeTree t;
  t.put("c/cgroup.events", "populated 1\nfrozen 0\n");
  t.put("c/memory.events", "oom 0\noom_kill 2\n");  // earlier kills are not news
  auto w = EventWatcher::open(t.root + "/c");
  ASSERT_TRUE(w) << w.error().str();
  EXPECT_TRUE(w->has_memory_events());
  auto quiet = w->wait(50);
  ASSERT_TRUE(quiet);
  EXPECT_EQ(quiet->new_ooms, 0u);
  EXPECT_FALSE(quiet->empty);
  std::thread writer([&] {
    usleep(100 * 1000);
    t.put("c/memory.events", "oom 1\noom_kill 3\n");
  });
  auto oom = w->wait(10000);  // woken by the write, long before the timeout
  writer.join();
  ASSERT_TRUE(oom);
  EXPECT_EQ(oom->new_ooms, 1u);
  t.put("c/cgroup.events", "populated 0\nfrozen 0\n");
  auto gone = w->wait(10000);
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->empty);
}

TEST(EventWatcher, WithoutMemoryEventsOnlyEmptinessIsWatched) {
  FakeTree t;
  t.put("c/cgroup.events", "populated 0\n");
  auto w = EventWatcher::open(t.root + "/c");
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->has_memory_events());
  EXPECT_TRUE(w->wait(-1)->empty);
  EXPECT_FALSE(EventWatcher::open(t.root + "/nonexistent"));
}

TEST(FsManager, DeviceRulesAreCheckedBeforeAnyWrite) {
  FakeTree t;
  Options o;
  o.mount_point = t.root;
  o.container_id = "c4";
  auto m = make_manager(o);
  ASSERT_TRUE(m);
  ASSERT_TRUE((*m)->create());
  t.put("husk/cgroup.controllers", "cpuset cpu io memory pids");
  t.put("husk/cgroup.subtree_control", "");
  t.put("husk/c4/pids.max", "max");
  oci::Resources r;
  r.pids = oci::PidsResources{9};
  r.devices = {oci::DeviceRule{false, std::nullopt, std::nullopt, std::nullopt, "rwm"},
               oci::DeviceRule{true, 'c', 10, std::nullopt, "rwm"}, oci::DeviceRule{false, 'c', 10, 237, "rw"}};
  auto a = (*m)->apply(r);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().str().find("linux.resources.devices[2]: deny c 10:237 cannot punch a hole"), std::string::npos)
      << a.error().str();
  EXPECT_EQ(t.get("husk/c4/pids.max"), "max");
  // Good rules on a tree that is not cgroup2: checked, no program.
  r.devices.pop_back();
  a = (*m)->apply(r);
  EXPECT_TRUE(a) << a.error().str();
  EXPECT_EQ(t.get("husk/c4/pids.max"), "9");
}

TEST(SystemdPath, SlicePrefixName) {
  auto s = parse_systemd_cgroups_path("system.slice:husk:abc", "id", false);
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_EQ(s->slice, "system.slice");
  EXPECT_EQ(s->unit, "husk-abc.scope");
  EXPECT_EQ(s->slice_path, "/system.slice");
  // No prefix: the name alone.
  s = parse_systemd_cgroups_path("machine.slice::abc", "id", false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->unit, "abc.scope");
}

TEST(SystemdPath, DefaultsFollowRunc) {
  // No cgroupsPath is ":husk:<id>"; an empty slice is system.slice for root
  // and user.slice rootless.
  auto s = parse_systemd_cgroups_path("", "c1", false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->slice, "system.slice");
  EXPECT_EQ(s->unit, "husk-c1.scope");
  s = parse_systemd_cgroups_path("", "c1", true);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->slice, "user.slice");
  EXPECT_EQ(s->slice_path, "/user.slice");
  s = parse_systemd_cgroups_path(":crio:xyz", "c1", false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->slice, "system.slice");
  EXPECT_EQ(s->unit, "crio-xyz.scope");
}

TEST(SystemdPath, SubSlicesAndRootSlice) {
  auto s = parse_systemd_cgroups_path("machine-pod-a.slice:p:n", "id", false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->slice_path, "/machine.slice/machine-pod.slice/machine-pod-a.slice");
  s = parse_systemd_cgroups_path("-:p:n", "id", false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->slice, "-.slice");
  EXPECT_EQ(s->slice_path, "/");
  s = parse_systemd_cgroups_path("-.slice:p:n", "id", false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->slice_path, "/");
}

TEST(SystemdPath, BadPathsNameTheFieldAndValue) {
  for (const char* bad : {"a:b", "a:b:c:d", "/husk/x", "system:husk:x", "sys/tem.slice:husk:x", "a--b.slice:p:n",
                          "-a.slice:p:n", "system.slice:husk:", "system.slice:husk:pod.slice", "system.slice:hu/sk:x",
                          "system.slice:husk:a b"}) {
    auto s = parse_systemd_cgroups_path(bad, "id", false);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().str().rfind("linux.cgroupsPath: ", 0), 0u) << s.error().str();
    EXPECT_NE(s.error().str().find(bad), std::string::npos) << s.error().str();
  }
  std::string long_name(300, 'x');
  EXPECT_FALSE(parse_systemd_cgroups_path("system.slice:husk:" + long_name, "id", false));
}

TEST(SystemdManager, ScopeIsMadeAroundTheProcess) {
  FakeTree t;
  Options o;
  o.kind = ManagerKind::Systemd;
  o.mount_point = t.root;
  o.container_id = "c9";
  auto m = make_manager(o);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ((*m)->creation(), Creation::AroundProcess);
  EXPECT_EQ((*m)->unit(), "husk-c9.scope");
  EXPECT_EQ((*m)->path(), "");
  // Nothing works on a scope that does not exist yet, and nothing to undo.
  EXPECT_FALSE((*m)->open_dir());
  EXPECT_FALSE((*m)->pids());
  EXPECT_TRUE((*m)->destroy());
}

TEST(SystemdManager, ReopensFromTheRecord) {
  FakeTree t;
  t.put("system.slice/husk-c9.scope/cgroup.procs", "42\n");
  Recorded r;
  r.kind = ManagerKind::Systemd;
  r.path = t.root + "/system.slice/husk-c9.scope";
  auto m = open_existing(r);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ((*m)->unit(), "husk-c9.scope");  // from the directory's name
  EXPECT_EQ((*m)->path(), r.path);
  auto p = (*m)->pids();
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(*p, std::vector<pid_t>{42});
  r.path = t.root + "/somewhere";
  EXPECT_FALSE(open_existing(r));  // no unit recorded and none to guess
}

// Rootless cgroupfs: the delegated subtree, and running without a cgroup.
TEST(Rootless, DelegatedRootIsTheTopmostAncestorTheUserOwns) {
  FakeTree t;
  for (const char* d : {"user-test", "user-test/runner"}) {
    t.put(std::string(d) + "/cgroup.procs", "");
    t.put(std::string(d) + "/cgroup.subtree_control", "");
  }
  EXPECT_EQ(delegated_root(t.root, "/user-test/runner", getuid()), "/user-test");
  EXPECT_EQ(delegated_root(t.root, "/user-test/runner", getuid() + 1), "");
  EXPECT_EQ(delegated_root(t.root, "/", getuid()), "");  // never the hierarchy root
  // Not delegated without its cgroup.procs.
  std::filesystem::remove(t.root + "/user-test/cgroup.procs");
  EXPECT_EQ(delegated_root(t.root, "/user-test/runner", getuid()), "/user-test/runner");
}

TEST(Rootless, DefaultCgroupGoesUnderTheDelegatedSubtree) {
  FakeTree t;
  for (const char* d : {"deleg", "deleg/runner"}) {
    t.put(std::string(d) + "/cgroup.procs", "");
    t.put(std::string(d) + "/cgroup.subtree_control", "");
  }
  Options o;
  o.mount_point = t.root;
  o.container_id = "c1";
  o.rootless = true;
  auto r = make_rootless_cgroup(o, nullptr, "/deleg/runner", getuid());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->warning.empty());
  EXPECT_EQ(r->manager->path(), t.root + "/deleg/husk/c1");
}

TEST(Rootless, NoDelegationRunsWithoutACgroupUnlessALimitIsAsked) {
  FakeTree t;
  Options o;
  o.mount_point = t.root;
  o.container_id = "c1";
  o.rootless = true;
  auto r = make_rootless_cgroup(o, nullptr, "/", getuid());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->manager->path(), "");
  EXPECT_NE(r->warning.find("no cgroup subtree of " + t.root + " is delegated to uid"), std::string::npos)
      << r->warning;

  oci::Resources unlimited;
  unlimited.pids = oci::PidsResources{0};
  EXPECT_TRUE(make_rootless_cgroup(o, &unlimited, "/", getuid()));  // podman's "no limit" asks for nothing

  oci::Resources limited;
  limited.memory = oci::MemoryResources{};
  limited.memory->limit = 64 << 20;
  auto e = make_rootless_cgroup(o, &limited, "/", getuid());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().str().find("linux.resources.memory.limit: a rootless container has no cgroup"), std::string::npos)
      << e.error().str();
}
