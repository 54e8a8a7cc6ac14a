#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>

#include "common/error.h"
#include "common/fd.h"
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
