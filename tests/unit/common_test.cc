#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/copy_tree.h"
#include "common/duration.h"
#include "common/error.h"
#include "common/fd.h"
#include "common/idshift.h"
#include "common/overlay.h"
#include "common/program.h"

using namespace husk;

namespace {

Result<int> fails_with_enoent() { return fail_errno(ENOENT, "open /nope"); }

Result<int> adds_context() {
  int v = TRY_CTX(fails_with_enoent(), "load config");
  return v + 1;
}

}  // namespace

TEST(Error, ChainPrintsOutermostContextFirstAndErrnoLast) {
  auto r = adds_context();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOENT);
  EXPECT_EQ(r.error().str(), "load config: open /nope: No such file or directory");
}

TEST(Error, MessageWithoutErrnoHasNoErrnoText) {
  Error e = Error::msg("bad value");
  e.context("root.path");
  EXPECT_EQ(e.str(), "root.path: bad value");
}

namespace {
int64_t ns_of(std::string_view s) {
  auto d = parse_go_duration(s, "t");
  EXPECT_TRUE(d) << s << ": " << d.error().str();
  return d ? d->count() : -1;
}
}  // namespace

TEST(GoDuration, TakesWhatGoTimeParseDurationTakes) {
  EXPECT_EQ(ns_of("0"), 0);
  EXPECT_EQ(ns_of("-0"), 0);
  EXPECT_EQ(ns_of("+0"), 0);
  EXPECT_EQ(ns_of("0s"), 0);
  EXPECT_EQ(ns_of("5m"), 300'000'000'000);
  EXPECT_EQ(ns_of("1h2m3.5s"), 3'723'500'000'000);
  EXPECT_EQ(ns_of("300ms"), 300'000'000);
  EXPECT_EQ(ns_of("1.5h"), 5'400'000'000'000);
  EXPECT_EQ(ns_of(".5s"), 500'000'000);
  EXPECT_EQ(ns_of("5.s"), 5'000'000'000);
  EXPECT_EQ(ns_of("-2h45m"), -9'900'000'000'000);
  EXPECT_EQ(ns_of("+1s"), 1'000'000'000);
  EXPECT_EQ(ns_of("7ns"), 7);
  EXPECT_EQ(ns_of("3us"), 3000);
  EXPECT_EQ(ns_of("3\u00b5s"), 3000);  // micro sign
  EXPECT_EQ(ns_of("3\u03bcs"), 3000);  // Greek mu
  EXPECT_EQ(ns_of("1h1m1s1ms1us1ns"), 3'661'001'001'001);
  EXPECT_EQ(ns_of("1s1s"), 2'000'000'000);  // Go adds repeated units
  // Go's own edge cases: the int64 bounds, and fractions rounded as it does.
  EXPECT_EQ(ns_of("9223372036854775807ns"), INT64_MAX);
  EXPECT_EQ(ns_of("9223372036854775.807us"), INT64_MAX);
  EXPECT_EQ(ns_of("2562047h47m16.854775807s"), INT64_MAX);
  EXPECT_EQ(ns_of("-9223372036854775808ns"), INT64_MIN);
  EXPECT_EQ(ns_of("-2562047h47m16.854775808s"), INT64_MIN);
  EXPECT_EQ(ns_of("0.3333333333333333333h"), 1'200'000'000'000);
  EXPECT_EQ(ns_of("9007199254740993ns"), (int64_t{1} << 53) + 1);
  EXPECT_EQ(ns_of("0.100000000000000000000h"), 360'000'000'000);
}

TEST(GoDuration, RefusesWhatGoRefusesNamingTheFieldAndValue) {
  for (const char* s : {"", "5", "5x", ".", "s", "-", "+", "1.2.3s", " 5s", "5s ", "1e3s", "00", "-.s",
                        "9223372036854775808ns", "9223372036854775.808us", "9223372036854ms775us808ns",
                        "-9223372036854775809ns", "106751d"})
    EXPECT_FALSE(parse_go_duration(s, "t")) << s;
  auto unit = parse_go_duration("5x", "image_pull_timeout");
  ASSERT_FALSE(unit);
  EXPECT_EQ(unit.error().str(), "image_pull_timeout: unknown unit \"x\" in duration \"5x\" (units: ns, us, ms, s, m, h)");
  auto missing = parse_go_duration("90", "--timeout");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().str(), "--timeout: missing unit in duration \"90\" (units: ns, us, ms, s, m, h)");
  auto empty = parse_go_duration("", "gc.image_delay");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().str(), "gc.image_delay: invalid duration \"\" (e.g. 90s, 1m30s, 500ms)");
}

TEST(Fd, AtomicWriteReplacesAndLeavesNoTemporaryFile) {
  char dir[] = "/tmp/husk-fd-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/state.json";
  ASSERT_TRUE(write_file_atomic(path, "one"));
  ASSERT_TRUE(write_file_atomic(path, "two"));
  auto content = read_file(path);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "two");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(unlink(path.c_str()), 0);
  EXPECT_EQ(rmdir(dir), 0) << "a temporary file was left behind";
}

TEST(Fd, ReadMissingFileNamesThePath) {
  auto r = read_file("/nonexistent/husk");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(), "open /nonexistent/husk: No such file or directory");
}

TEST(RunCaptured, StdinStdoutStderrAndExitCode) {
  auto c = run_captured({"/bin/sh", "-c", "read x; echo out:$x; echo err >&2; exit 7"}, "ping\n");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->out, "out:ping\n");
  EXPECT_EQ(c->err, "err\n");
  EXPECT_EQ(exit_code_of(c->status), 7);
  EXPECT_EQ(describe_wait_status(c->status), "exit 7");
  EXPECT_FALSE(c->timed_out);
}

// More than a pipe holds in both directions at once: cat writes its stdout
// while we still write its stdin.
TEST(RunCaptured, LargeInputAndOutputDoNotDeadlock) {
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = '\n';
  auto c = run_captured({"/bin/sh", "-c", "cat; cat /dev/null >&2"}, big, 30000);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->out.size(), big.size());
  EXPECT_TRUE(c->out == big);
  EXPECT_EQ(exit_code_of(c->status), 0);
}

// A program that exits without reading its stdin: the write fails with
// EPIPE, no SIGPIPE kills the caller or stays pending for it.
TEST(RunCaptured, ProgramThatIgnoresItsStdinDoesNotRaiseSigpipe) {
  std::string big(4 << 20, 'y');
  auto c = run_captured({"/bin/sh", "-c", "echo done"}, big, 30000);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->out, "done\n");
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

// The child gets no blocked signal, whatever the caller blocks, and none
// of the caller's close-on-exec fds.
TEST(RunCaptured, ChildStartsWithNoBlockedSignalsAndNoCloexecFd) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  int extra = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(extra, 0);
  auto c = run_captured(
      {"/bin/sh", "-c", cat("grep SigBlk /proc/self/status; test -e /proc/self/fd/", extra, " && echo leaked; true")});
  close(extra);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->out, "SigBlk:\t0000000000000000\n");
}

TEST(RunCaptured, TimeoutKillsAndMissingProgramIsAnError) {
  auto slow = run_captured({"/bin/sleep", "10"}, "", 100);
  ASSERT_TRUE(slow);
  EXPECT_TRUE(slow->timed_out);
  EXPECT_EQ(exit_code_of(slow->status), 128 + 9);
  EXPECT_EQ(describe_wait_status(slow->status), "signal 9");
  auto missing = run_captured({"/nonexistent/binary"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().str(), "start /nonexistent/binary: No such file or directory");
  EXPECT_FALSE(run_captured({}));
}

// The callbacks: stderr's lines as they come (the first before the program
// ends), the last one without its newline too, and on_idle about once a
// second while it runs.
TEST(RunCaptured, StderrLinesAsTheyComeAndIdleCalls) {
  std::vector<std::pair<std::string, int64_t>> lines;
  int idle = 0;
  int64_t started = clock_ms();
  CaptureCallbacks cb{[&](const std::string& l) { lines.emplace_back(l, clock_ms() - started); }, [&] { ++idle; }};
  auto c = run_captured({"/bin/sh", "-c", "echo one >&2; sleep 2.2; echo out; printf 'two\\nthree' >&2"}, "", 10000, cb);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->out, "out\n");
  EXPECT_EQ(c->err, "one\ntwo\nthree");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].first, "one");
  EXPECT_LT(lines[0].second, 1500);  // not held until the end
  EXPECT_EQ(lines[1].first, "two");
  EXPECT_EQ(lines[2].first, "three");
  int64_t elapsed_s = (clock_ms() - started) / 1000;
  EXPECT_GE(idle, 2);
  EXPECT_LE(idle, elapsed_s + 1);  // once a second, not at every poll
  // A deadline still kills it when on_idle keeps being called.
  auto slow = run_captured({"/bin/sleep", "10"}, "", 1500, CaptureCallbacks{{}, [&] { ++idle; }});
  ASSERT_TRUE(slow);
  EXPECT_TRUE(slow->timed_out);
}

TEST(Program, SignalAndAwaitExitTakesThePidWithItsStartTime) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    pause();
    _exit(0);
  }
  uint64_t start = process_start_time(pid);
  ASSERT_NE(start, 0u);
  EXPECT_FALSE(signal_and_await_exit(pid, start, 0, 200));  // no signal: still running
  // Another start time is another process: no signal goes to this one.
  EXPECT_TRUE(signal_and_await_exit(pid, start + 1, SIGTERM, 200));
  EXPECT_EQ(kill(pid, 0), 0);
  EXPECT_TRUE(signal_and_await_exit(pid, start, SIGTERM, 5000));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_TRUE(signal_and_await_exit(pid, start, SIGKILL, 200));  // gone
}

TEST(Overlay, LowerdirValueJoinsTopFirstAndRefusesWhatItCannotCarry) {
  auto v = husk::overlay::lowerdir_value({"/s/l3", "/s/l2", "/s/l1"});
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_EQ(*v, "/s/l3:/s/l2:/s/l1");
  for (const char* bad : {"/s/a:b", "/s/a,b"}) {
    auto r = husk::overlay::lowerdir_value({"/s/ok", bad});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().str(),
              cat("the image layer ", bad, " has a ':' or ',' in its path, which a lowerdir= value cannot carry"));
  }
}

// ---- idshift: the arithmetic and the on-disk formats of an ownership shift --------

namespace {
std::string le32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string le16(uint16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); }
uint32_t at32(const std::string& s, size_t i) {
  uint32_t v;
  memcpy(&v, s.data() + i, 4);
  return v;
}
}  // namespace

TEST(IdShift, IdKeepsItsOffsetInItsRange) {
  EXPECT_EQ(idshift::shift_id(0, 0x80000), 0x80000u);
  EXPECT_EQ(idshift::shift_id(1000, 0x80000), 0x80000u + 1000);
  // From one range to another, and back to 0: the offset survives.
  EXPECT_EQ(idshift::shift_id(0x80000u + 65534, 0x2a0000), 0x2a0000u + 65534);
  EXPECT_EQ(idshift::shift_id(0x2a0000u + 5, 0), 5u);
  // Idempotent: shifting twice to the same range is shifting once.
  EXPECT_EQ(idshift::shift_id(idshift::shift_id(33, 0x90000), 0x90000), 0x90000u + 33);
}

TEST(IdShift, TheRootDirectoryRecordsTheRange) {
  EXPECT_EQ(*idshift::tree_base(0, 0, "img"), 0u);
  EXPECT_EQ(*idshift::tree_base(0x80000, 0x80000, "img"), 0x80000u);
  for (auto [u, g] : {std::pair<uid_t, gid_t>{1000, 1000}, {0x80000, 0}, {0x80001, 0x80001}}) {
    auto r = idshift::tree_base(u, g, "/var/lib/machines/x");
    ASSERT_FALSE(r) << u << ":" << g;
    EXPECT_NE(r.error().what().find("/var/lib/machines/x"), std::string::npos);
    EXPECT_NE(r.error().what().find(std::to_string(u)), std::string::npos);
  }
}

TEST(IdShift, AclNamedEntriesMoveOwnerEntriesDoNot) {
  // version 2; USER_OBJ, USER 1000, GROUP_OBJ, GROUP 50, MASK, OTHER.
  std::string acl = le32(2);
  auto entry = [&](uint16_t tag, uint32_t id) { acl += le16(tag) + le16(7) + le32(id); };
  entry(0x01, 0xFFFFFFFF);
  entry(0x02, 1000);
  entry(0x04, 0xFFFFFFFF);
  entry(0x08, 50);
  entry(0x10, 0xFFFFFFFF);
  entry(0x20, 0xFFFFFFFF);
  auto out = idshift::shift_acl(acl, 0x80000);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->size(), acl.size());
  EXPECT_EQ(at32(*out, 4 + 4), 0xFFFFFFFFu);
  EXPECT_EQ(at32(*out, 12 + 4), 0x80000u + 1000);
  EXPECT_EQ(at32(*out, 28 + 4), 0x80000u + 50);
  EXPECT_EQ(at32(*out, 44 + 4), 0xFFFFFFFFu);
  EXPECT_EQ(at32(*idshift::shift_acl(*out, 0), 12 + 4), 1000u);
  EXPECT_FALSE(idshift::shift_acl(le32(1) + le16(2) + le16(7) + le32(5), 0x80000));  // unknown version
  EXPECT_FALSE(idshift::shift_acl(le32(2) + "xyz", 0x80000));                        // truncated
}

TEST(IdShift, FileCapabilitiesArePutBackV3RootIdShifted) {
  std::string v2 = le32(0x02000001) + le32(0x400) + le32(0) + le32(0) + le32(0);
  EXPECT_EQ(*idshift::shift_file_caps(v2, 0x80000), v2);
  std::string v3 = le32(0x03000000) + le32(0x400) + le32(0) + le32(0) + le32(0) + le32(0x70000);
  auto out = idshift::shift_file_caps(v3, 0x80000);
  ASSERT_TRUE(out);
  EXPECT_EQ(at32(*out, 20), 0x80000u);
  EXPECT_EQ(out->substr(0, 20), v3.substr(0, 20));
  EXPECT_FALSE(idshift::shift_file_caps(le32(0x02000000) + le32(1), 0));  // wrong size
  EXPECT_FALSE(idshift::shift_file_caps("ab", 0));
}

// A layer copied for a task whose ids the store's file system cannot idmap:
// what overlayfs and the container rely on must survive the copy.
TEST(CopyTree, MovesOwnersAndKeepsLinksXattrsDevicesAndSetuidBits) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (chown, mknod, trusted.* xattrs)";
  char tmpl[] = "/tmp/husk-copy-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, src = dir + "/src", dst = dir + "/dst";
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)!system(("rm -rf " + dir).c_str()); }
  } cleanup{dir};
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((src + "/d").c_str(), 0750), 0);
  ASSERT_EQ(chown((src + "/d").c_str(), 1000, 2000), 0);
  bool trusted = setxattr((src + "/d").c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0;
  ASSERT_TRUE(write_file_atomic(src + "/d/f", "hello\n", 0755));
  ASSERT_EQ(chown((src + "/d/f").c_str(), 1000, 2000), 0);
  ASSERT_EQ(chmod((src + "/d/f").c_str(), 04755), 0);
  ASSERT_EQ(link((src + "/d/f").c_str(), (src + "/g").c_str()), 0);
  ASSERT_EQ(symlink("d/f", (src + "/l").c_str()), 0);
  ASSERT_EQ(lchown((src + "/l").c_str(), 5, 5), 0);
  ASSERT_EQ(mknod((src + "/wh").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);  // an overlay whiteout
  ASSERT_EQ(chown((src + "/wh").c_str(), 70000, 70000), 0);               // unmapped

  auto shift = [](uint32_t base) {
    return [base](uint32_t id) -> uint32_t { return id < 4096 ? base + id : 65534; };
  };
  CopyOptions o{shift(400000), shift(600000), true};
  UniqueFd from(open(src.c_str(), O_RDONLY | O_DIRECTORY)), to(open(dst.c_str(), O_RDONLY | O_DIRECTORY));
  auto r = copy_tree(from.get(), to.get(), o);
  ASSERT_TRUE(r) << r.error().what();

  struct stat st, f, g;
  ASSERT_EQ(stat((dst + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 401000u);
  EXPECT_EQ(st.st_gid, 602000u);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(stat((dst + "/d/f").c_str(), &f), 0);
  EXPECT_EQ(f.st_uid, 401000u);
  EXPECT_EQ(f.st_mode & 07777, 04755u);  // chown cleared setuid; it is back
  ASSERT_EQ(stat((dst + "/g").c_str(), &g), 0);
  EXPECT_EQ(f.st_ino, g.st_ino);  // still one inode with two names
  EXPECT_EQ(*read_file(dst + "/g"), "hello\n");
  ASSERT_EQ(lstat((dst + "/l").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 400005u);
  ASSERT_EQ(lstat((dst + "/wh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(st.st_uid, 65534u);
  if (trusted) {
    char v[8] = {};
    EXPECT_EQ(getxattr((dst + "/d").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
    EXPECT_EQ(v[0], 'y');
  }
  // Without options: owners as they were, no xattrs.
  std::string plain = dir + "/plain";
  ASSERT_EQ(mkdir(plain.c_str(), 0755), 0);
  UniqueFd to2(open(plain.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(copy_tree(from.get(), to2.get()));
  ASSERT_EQ(stat((plain + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_LT(getxattr((plain + "/d").c_str(), "trusted.overlay.opaque", nullptr, 0), 0);
}
