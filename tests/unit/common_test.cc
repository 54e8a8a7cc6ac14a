#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "common/error.h"
#include "common/fd.h"

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
