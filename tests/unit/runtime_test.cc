// Pure logic of the runtime engine and CLI: state store, sync protocol,
// signal and argument parsing, id map text, hooks.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cli/args.h"
#include "cli/events.h"
#include "runtime/container.h"
#include "runtime/hooks.h"
#include "runtime/rootfs_overlay.h"
#include "runtime/log_fluentd.h"
#include "runtime/state_store.h"
#include "runtime/subid.h"
#include "runtime/sync.h"
#include "runtime/userns.h"

using namespace husk;
using namespace husk::runtime;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/husk-unit-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(StateStore, CreateSaveLoadRemove) {
  TempDir d;
  auto store = StateStore::open(d.path + "/root");
  ASSERT_TRUE(store) << store.error().str();
  auto dir = store->create("c1");
  ASSERT_TRUE(dir) << dir.error().str();
  ContainerRecord rec;
  rec.id = "c1";
  rec.bundle = "/b/with\nnewline";
  rec.pid = 42;
  rec.pid_start = 12345;
  rec.cgroup_path = "/sys/fs/cgroup/husk/c1";
  ASSERT_TRUE(dir->save(rec));
  auto back = dir->load();
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->bundle, rec.bundle);
  EXPECT_EQ(back->pid, 42);
  EXPECT_EQ(back->pid_start, 12345u);
  EXPECT_EQ(back->cgroup_path, rec.cgroup_path);
  auto ids = store->list();
  ASSERT_TRUE(ids);
  EXPECT_EQ(*ids, std::vector<std::string>{"c1"});
  ASSERT_TRUE(dir->remove());
  EXPECT_FALSE(std::filesystem::exists(d.path + "/root/c1"));
}

TEST(StateStore, DuplicateIdIsRefused) {
  TempDir d;
  auto store = StateStore::open(d.path);
  ASSERT_TRUE(store);
  auto first = store->create("dup");
  ASSERT_TRUE(first);
  auto second = store->create("dup");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), EEXIST);
  EXPECT_NE(second.error().str().find("already exists"), std::string::npos);
}

TEST(StateStore, OpenWaitsForTheLockAndSeesADeletedContainerAsGone) {
  TempDir d;
  auto store = StateStore::open(d.path);
  ASSERT_TRUE(store);
  auto dir = store->create("locked");
  ASSERT_TRUE(dir);
  ContainerRecord rec;
  rec.id = "locked";
  ASSERT_TRUE(dir->save(rec));
  std::thread remover([&] {
    usleep(100000);
    ASSERT_TRUE(dir->remove());
  });
  // Blocks until the remover's lock goes with the directory.
  auto opened = store->open_container("locked");
  remover.join();
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().str().find("does not exist"), std::string::npos);
}

TEST(StateStore, ContainerIds) {
  EXPECT_TRUE(validate_container_id("abc-DEF_1.2+3"));
  EXPECT_FALSE(validate_container_id(""));
  EXPECT_FALSE(validate_container_id(".."));
  EXPECT_FALSE(validate_container_id("a/b"));
  EXPECT_FALSE(validate_container_id("a b"));
}

TEST(StateStore, DerivedStatus) {
  ContainerRecord rec;
  EXPECT_EQ(derive_status(rec, false, false), oci::Status::Creating);
  rec.pid = getpid();
  rec.pid_start = process_start_time(getpid());
  ASSERT_NE(rec.pid_start, 0u);
  EXPECT_EQ(derive_status(rec, true, false), oci::Status::Created);
  EXPECT_EQ(derive_status(rec, false, false), oci::Status::Running);
  EXPECT_EQ(derive_status(rec, false, true), oci::Status::Paused);
  // A recycled pid: same number, other start time.
  rec.pid_start += 1;
  EXPECT_EQ(derive_status(rec, false, false), oci::Status::Stopped);
}

TEST(ProcessStartTime, ZombieCountsAsGone) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  usleep(100000);
  EXPECT_EQ(process_start_time(child), 0u);
  waitpid(child, nullptr, 0);
}

TEST(Sync, MessagesErrorsAndFds) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_TRUE(sync_send(a.get(), SyncType::ConsoleFd, "payload", devnull));
  close(devnull);
  auto msg = sync_expect(b.get(), SyncType::ConsoleFd);
  ASSERT_TRUE(msg) << msg.error().str();
  EXPECT_EQ(msg->payload, "payload");
  ASSERT_TRUE(msg->fd.valid());
  struct stat st;
  ASSERT_EQ(fstat(msg->fd.get(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));

  Error e(ENOENT, "open /x");
  e.context("mounts[2]");
  sync_send_error(a.get(), e);
  auto err = sync_expect(b.get(), SyncType::Ready);
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().code(), ENOENT);
  EXPECT_EQ(err.error().str(), "mounts[2]: open /x: No such file or directory");

  a.reset();
  auto eof = sync_recv(b.get());
  ASSERT_FALSE(eof);
  EXPECT_NE(eof.error().str().find("exited before it was set up"), std::string::npos);
}

TEST(Signals, NamesAndNumbers) {
  EXPECT_EQ(*parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(*parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("sigusr1"), SIGUSR1);
  EXPECT_EQ(*parse_signal("9"), 9);
  EXPECT_EQ(*parse_signal("RTMIN+2"), SIGRTMIN + 2);
  EXPECT_FALSE(parse_signal("NOPE"));
  EXPECT_FALSE(parse_signal("0"));
  EXPECT_FALSE(parse_signal("999"));
}

TEST(IdMaps, Format) {
  std::vector<oci::IdMapping> maps = {{0, 100000, 65536}, {65536, 5, 1}};
  EXPECT_EQ(format_id_map(maps), "0 100000 65536\n65536 5 1\n");
}

TEST(Args, LongShortInlineAndSingleDash) {
  std::vector<cli::OptSpec> specs = {{"bundle", 'b', true}, {"detach", 'd', false}, {"env", 'e', true, true}};
  std::vector<std::string> args = {"husk", "run", "--bundle=/x", "-d", "-e", "A=1", "--env", "B=2", "id"};
  auto p = cli::parse(args, 2, specs, "run", false);
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->get("bundle"), "/x");
  EXPECT_TRUE(p->has("detach"));
  EXPECT_EQ(p->all("env"), (std::vector<std::string>{"A=1", "B=2"}));
  EXPECT_EQ(p->positional, std::vector<std::string>{"id"});
  std::vector<std::string> urfave = {"husk", "create", "-bundle", "/y", "id"};
  auto q = cli::parse(urfave, 2, specs, "create", false);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->get("bundle"), "/y");
}

TEST(Args, ExecStopsAtTheCommand) {
  std::vector<cli::OptSpec> specs = {{"tty", 't', false}};
  std::vector<std::string> args = {"husk", "exec", "-t", "id", "ls", "-l", "--tty"};
  auto p = cli::parse(args, 2, specs, "exec", true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->positional, (std::vector<std::string>{"id", "ls", "-l", "--tty"}));
}

TEST(Args, Errors) {
  std::vector<cli::OptSpec> specs = {{"bundle", 'b', true}, {"detach", 'd', false}};
  std::vector<std::string> a1 = {"husk", "run", "--nope"};
  EXPECT_EQ(cli::parse(a1, 2, specs, "run", false).error().str(), "run: unknown option \"--nope\"");
  std::vector<std::string> a2 = {"husk", "run", "--bundle"};
  EXPECT_EQ(cli::parse(a2, 2, specs, "run", false).error().str(), "run: option --bundle needs a value");
  std::vector<std::string> a3 = {"husk", "run", "--detach=maybe"};
  EXPECT_FALSE(cli::parse(a3, 2, specs, "run", false));
}

TEST(Hooks, StateOnStdinArgsEnvAndFailures) {
  TempDir d;
  std::string out = d.path + "/out";
  oci::Hook h;
  h.path = "/bin/sh";
  h.args = {"sh", "-c", "read -r s; echo \"$s $HV\" > " + out};
  h.env = {"HV=x"};
  ASSERT_TRUE(run_hooks({h}, "prestart", "{\"id\":\"c\"}"));
  EXPECT_EQ(*read_file(out), "{\"id\":\"c\"} x\n");

  oci::Hook bad;
  bad.path = "/bin/sh";
  bad.args = {"sh", "-c", "exit 4"};
  auto r = run_hooks({h, bad}, "createRuntime", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(), "hooks.createRuntime[1] \"/bin/sh\": exited with status 4");

  oci::Hook slow;
  slow.path = "/bin/sleep";
  slow.args = {"sleep", "10"};
  slow.timeout = 1;
  auto t = run_hooks({slow}, "poststop", "{}");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code(), ETIMEDOUT);

  oci::Hook missing;
  missing.path = "/nonexistent/hook";
  auto m = run_hooks({missing}, "prestart", "{}");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().str().find("cannot execute"), std::string::npos);
}

TEST(Events, IntervalTakesGoDurations) {
  EXPECT_EQ(*husk::cli::parse_duration_ms("interval", "5s"), 5000);
  EXPECT_EQ(*husk::cli::parse_duration_ms("interval", "250ms"), 250);
  EXPECT_EQ(*husk::cli::parse_duration_ms("interval", "1m30s"), 90000);
  EXPECT_EQ(*husk::cli::parse_duration_ms("interval", "1.5s"), 1500);
  EXPECT_EQ(*husk::cli::parse_duration_ms("interval", "1h"), 3600000);
  auto bad = husk::cli::parse_duration_ms("interval", "5x");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("--interval: unknown unit \"x\""), std::string::npos);
  EXPECT_FALSE(husk::cli::parse_duration_ms("interval", ""));
  EXPECT_FALSE(husk::cli::parse_duration_ms("interval", "s"));
  EXPECT_FALSE(husk::cli::parse_duration_ms("interval", "10us"));  // below 1 ms
}

// /etc/subuid ranges and the rootless id map check.
TEST(SubId, ParsesTheUsersRangesByNameOrIdAndMergesAdjacentOnes) {
  std::string text = "# comment\nalice:100000:65536\nbob:200000:65536\n1000:165536:10\nalice:bad:1\nalice:5:0\n";
  auto r = parse_subid(text, "alice", 1000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].start, 100000u);
  EXPECT_EQ(r[0].count, 65546u);
  EXPECT_TRUE(parse_subid(text, "carol", 1001).empty());
}

TEST(SubId, MappingsMustBeTheOwnIdOrInsideARange) {
  IdOwner alice{"alice", 1000, {{100000, 65536}}, "/etc/subuid"};
  std::vector<oci::IdMapping> ok = {{0, 1000, 1}, {1, 100000, 65536}};
  EXPECT_TRUE(check_mappings(ok, alice, "linux.uidMappings"));
  std::vector<oci::IdMapping> keep_id = {{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}};
  EXPECT_TRUE(check_mappings(keep_id, alice, "linux.uidMappings"));
  std::vector<oci::IdMapping> bad = {{0, 1000, 1}, {1, 100000, 65537}};
  auto e = check_mappings(bad, alice, "linux.uidMappings");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().str(),
            "linux.uidMappings[1]: host ids 100000-165536 are not in /etc/subuid for user \"alice\" (it has "
            "100000-165535; only 1000 itself may be mapped without one)");
  std::vector<oci::IdMapping> other = {{0, 1001, 1}};
  EXPECT_FALSE(check_mappings(other, IdOwner{"alice", 1000, {}, "/etc/subuid"}, "linux.uidMappings"));
}

TEST(SubId, InitialUserNamespaceMap) {
  EXPECT_TRUE(is_initial_id_map("         0          0 4294967295\n"));
  EXPECT_FALSE(is_initial_id_map("         0       1000          1\n"));
  EXPECT_FALSE(is_initial_id_map(""));
}

TEST(StateStore, DefaultRootRootlessIsTheRuntimeDir) {
  if (geteuid() != 0) GTEST_SKIP() << "the root cases need euid 0";
  TempDir xdg;
  const char* saved = getenv("XDG_RUNTIME_DIR");
  std::string keep = saved ? saved : "";
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(*StateStore::default_root(false), "/run/husk");
  EXPECT_EQ(*StateStore::default_root(true), "/run/husk");  // root of a user namespace, no runtime dir
  setenv("XDG_RUNTIME_DIR", xdg.path.c_str(), 1);
  EXPECT_EQ(*StateStore::default_root(true), xdg.path + "/husk");  // podman's user namespace
  setenv("XDG_RUNTIME_DIR", "relative", 1);
  EXPECT_FALSE(StateStore::default_root(true));
  if (saved)
    setenv("XDG_RUNTIME_DIR", keep.c_str(), 1);
  else
    unsetenv("XDG_RUNTIME_DIR");
}

TEST(RootfsOverlay, ParsesLowerTopFirstWithUpperAndWork) {
  auto spec = parse_rootfs_overlay("lowerdir=/l/top:/l/bottom,upperdir=/t/upper,workdir=/t/work");
  ASSERT_TRUE(spec) << spec.error().str();
  EXPECT_EQ(spec->lower, (std::vector<std::string>{"/l/top", "/l/bottom"}));
  EXPECT_EQ(spec->upper, "/t/upper");
  EXPECT_EQ(spec->work, "/t/work");
  auto ro = parse_rootfs_overlay("lowerdir=/only");
  ASSERT_TRUE(ro) << ro.error().str();
  EXPECT_TRUE(ro->upper.empty() && ro->work.empty());
}

TEST(RootfsOverlay, RefusesWhatOverlayfsWouldNotMountAsMeant) {
  const std::string p = "annotations.run.husk.rootfs.overlay: ";
  auto err = [](const char* v) { return parse_rootfs_overlay(v).error().str(); };
  EXPECT_EQ(err("upperdir=/u,workdir=/w"), p + "no lowerdir");
  EXPECT_EQ(err("lowerdir=/a,upperdir=/u"), p + "upperdir and workdir go together (neither: a read-only root)");
  EXPECT_EQ(err("lowerdir=/a::/b"), p + "lowerdir \"\" is not an absolute path");
  EXPECT_EQ(err("lowerdir=a"), p + "lowerdir \"a\" is not an absolute path");
  EXPECT_EQ(err("lowerdir=/a,lowerdir=/b"), p + "lowerdir given twice");
  EXPECT_EQ(err("lowerdir=/a,redirect_dir=on"), p + "unknown option \"redirect_dir\" (lowerdir, upperdir, workdir)");
  EXPECT_EQ(err("lowerdir"), p + "\"lowerdir\" is not KEY=VALUE (lowerdir, upperdir, workdir)");
}

// The msgpack of a fluentd forward event: [tag, time, record] with the
// time as an integer or, with sub-second precision, EventTime (fixext 8,
// type 0); a chunk id adds the option map.
TEST(FluentdEvent, MessageModeInMsgpack) {
  using namespace std::string_literals;
  EXPECT_EQ(fluentd_event("t", 1, 5, false, {{"log", "hi"}}, ""), "\x93\xa1t\x01\x81\xa3log\xa2hi"s);
  EXPECT_EQ(fluentd_event("t", 1700000000, 0, false, {}, ""), "\x93\xa1t\xce\x65\x53\xf1\x00\x80"s);
  EXPECT_EQ(fluentd_event("t", 0x01020304, 0x05060708, true, {}, "c"),
            "\x94\xa1t\xd7\x00\x01\x02\x03\x04\x05\x06\x07\x08\x80\x81\xa5" "chunk\xa1" "c"s);
  std::string long_value(40, 'v');
  std::string ev = fluentd_event("t", 1, 0, false, {{"k", long_value}}, "");
  EXPECT_EQ(ev.substr(0, 8), "\x93\xa1t\x01\x81\xa1k\xd9"s);
  EXPECT_EQ(static_cast<unsigned char>(ev[8]), 40);
}
