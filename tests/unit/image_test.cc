// The image store's pure parts: digests and the blob store's rules.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "image/blobs.h"
#include "image/digest.h"
#include "image/import.h"
#include "image/store_userns.h"

namespace husk::image {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/husk-image-test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(Digest, Sha256OfKnownInputs) {
  EXPECT_EQ(sha256_of("").str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_of("abc").str(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Digest, ParseRejectsWhatIsNotASha256) {
  EXPECT_TRUE(parse_digest("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "d"));
  auto algo = parse_digest("sha512:abcd", "layers[1].digest");
  ASSERT_FALSE(algo);
  EXPECT_NE(algo.error().str().find("layers[1].digest"), std::string::npos);
  EXPECT_NE(algo.error().str().find("sha512"), std::string::npos);
  EXPECT_FALSE(parse_digest("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", "d"));
  EXPECT_FALSE(parse_digest("sha256:abc", "d"));
  EXPECT_FALSE(parse_digest("nodigest", "d"));
  EXPECT_FALSE(parse_digest("sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "d"));
}

TEST(BlobStore, CommittedBlobIsReadBackVerified) {
  TempDir t;
  auto s = BlobStore::open(t.path() + "/store");
  ASSERT_TRUE(s) << s.error().str();
  Digest d = *s->put("hello");
  EXPECT_TRUE(s->has(d));
  EXPECT_EQ(*s->size(d), 5u);
  EXPECT_EQ(*s->read(d), "hello");
  // Tampering on disk is caught at read.
  ASSERT_TRUE(write_file(s->path(d), "jello"));
  auto r = s->read(d);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("does not match its digest"), std::string::npos);
}

TEST(BlobStore, MismatchedContentIsNeverStored) {
  TempDir t;
  auto s = *BlobStore::open(t.path());
  Digest want = sha256_of("the real layer");
  auto w = s.begin(want, -1, false);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->write("a corrupted layer"));
  auto c = w->commit();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("digest mismatch"), std::string::npos);
  EXPECT_FALSE(s.has(want));
  EXPECT_TRUE(std::filesystem::is_empty(t.path() + "/tmp"));
}

TEST(BlobStore, SizeFromTheDescriptorIsEnforced) {
  TempDir t;
  auto s = *BlobStore::open(t.path());
  Digest d = sha256_of("12345");
  auto w = *s.begin(d, 3, false);
  EXPECT_FALSE(w.write("12345"));
  auto w2 = *s.begin(d, 6, false);
  ASSERT_TRUE(w2.write("12345"));
  EXPECT_FALSE(w2.commit());
  EXPECT_FALSE(s.has(d));
}

TEST(BlobStore, ResumeHashesThePartialAgain) {
  TempDir t;
  auto s = *BlobStore::open(t.path());
  Digest d = sha256_of("first half, second half");
  {
    auto w = *s.begin(d, 23, false);
    ASSERT_TRUE(w.write("first half, "));
  }  // interrupted: the partial file stays
  auto w = *s.begin(d, 23, true);
  EXPECT_EQ(w.size(), 12u);
  ASSERT_TRUE(w.write("second half"));
  ASSERT_TRUE(w.commit());
  EXPECT_EQ(*s.read(d), "first half, second half");
}

TEST(BlobStore, LockIsExclusiveAcrossProcesses) {
  TempDir t;
  auto s = *BlobStore::open(t.path());
  Digest d = sha256_of("x");
  auto held = s.lock(d);
  ASSERT_TRUE(held);
  pid_t pid = fork();
  if (pid == 0) {
    // flock locks belong to the open file description: a fresh open in the
    // child must not get it while the parent holds it.
    UniqueFd fd = *open_fd(t.path() + "/locks/sha256-" + d.hex + ".lock", O_RDWR | O_CLOEXEC);
    _exit(flock(fd.get(), LOCK_EX | LOCK_NB) == 0 ? 1 : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ImageSource, TransportsPathsAndReferences) {
  TempDir dir;
  std::string layout = dir.path() + "/layout", archive = dir.path() + "/img.tar";
  ASSERT_EQ(mkdir(layout.c_str(), 0700), 0);
  ASSERT_TRUE(write_file_atomic(archive, "x"));
  auto oci = parse_image_source("oci:" + layout + ":v1", "config.image");
  ASSERT_TRUE(oci && *oci) << (oci ? "" : oci.error().str());
  EXPECT_EQ((*oci)->kind, ImageSource::Kind::kOciLayout);
  EXPECT_EQ((*oci)->path, layout);
  EXPECT_EQ((*oci)->ref, "v1");
  auto docker = parse_image_source("docker-archive:" + archive + ":example/app:v1", "config.image");
  ASSERT_TRUE(docker && *docker);
  EXPECT_EQ((*docker)->kind, ImageSource::Kind::kDockerArchive);
  EXPECT_EQ((*docker)->ref, "example/app:v1");
  // A plain directory is an OCI layout only with oci-layout in it.
  auto plain = parse_image_source(layout, "config.image");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(*plain);
  ASSERT_TRUE(write_file_atomic(layout + "/oci-layout", "{}"));
  auto marked = parse_image_source(layout, "config.image");
  ASSERT_TRUE(marked && *marked);
  // Registry references are not local transports.
  auto reg = parse_image_source("docker.io/library/busybox:latest", "config.image");
  ASSERT_TRUE(reg);
  EXPECT_FALSE(*reg);
  for (const std::string& bad :
       std::vector<std::string>{"oci-archive:relative.tar", "oci-archive:" + layout, "oci:" + archive,
                                "docker-archive:" + dir.path() + "/missing.tar", "oci:" + layout + ":"}) {
    auto r = parse_image_source(bad, "config.image");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().str().find("config.image"), std::string::npos) << r.error().str();
  }
}

TEST(StoreIdMap, RecordRoundTripsAndCountsTheMappedIds) {
  StoreIdMap m;
  m.uids = {{0, 1000, 1}, {1, 300000, 65536}};
  m.gids = {{0, 1000, 1}, {1, 300000, 65536}};
  std::string text = format_store_id_map(m);
  EXPECT_EQ(text, "uid 0 1000 1\nuid 1 300000 65536\ngid 0 1000 1\ngid 1 300000 65536\n");
  auto back = parse_store_id_map(text, "idmap");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(format_store_id_map(*back), text);
  EXPECT_EQ(back->count(), 65537u);
  EXPECT_FALSE(parse_store_id_map("", "idmap")->rootless());
  EXPECT_FALSE(parse_store_id_map("uid 0 1000 1\n", "idmap"));
  EXPECT_FALSE(parse_store_id_map("xid 0 1 1\ngid 0 1 1\n", "idmap"));
}

}  // namespace
}  // namespace husk::image
