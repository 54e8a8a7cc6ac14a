// The registry client's pure parts: image references, credentials lookup
// and precedence, WWW-Authenticate challenges, manifest parsing and
// platform selection; a pull's progress accounting and report spacing.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/fd.h"
#include "image/auth.h"
#include "image/challenge.h"
#include "image/manifest_json.h"
#include "image/pull_progress.h"
#include "image/reference.h"

namespace husk::image {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/husk-registry-test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kDigest = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const char* kDigest2 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string ref_str(const char* s) {
  auto r = parse_reference(s);
  return r ? r->str() : "error: " + r.error().str();
}

std::string err_of(const char* s) {
  auto r = parse_reference(s);
  return r ? "" : r.error().str();
}

TEST(Reference, DockerShortNames) {
  EXPECT_EQ(ref_str("alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(ref_str("alpine:3.19"), "docker.io/library/alpine:3.19");
  EXPECT_EQ(ref_str("library/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(ref_str("bitnami/redis:7"), "docker.io/bitnami/redis:7");
  EXPECT_EQ(ref_str("index.docker.io/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(ref_str("docker.io/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(ref_str("quay.io/podman/stable"), "quay.io/podman/stable:latest");
  // A single component on another registry gets no library/.
  EXPECT_EQ(ref_str("quay.io/busybox"), "quay.io/busybox:latest");
  EXPECT_EQ(ref_str("localhost/x"), "localhost/x:latest");
  EXPECT_EQ(parse_reference("alpine")->api_host(), "registry-1.docker.io");
}

TEST(Reference, PortsTagsAndDigests) {
  auto r = parse_reference("127.0.0.1:5000/team/app:v1.2");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "team/app");
  EXPECT_EQ(r->tag, "v1.2");
  EXPECT_EQ(r->api_host(), "127.0.0.1:5000");
  // A port is not a tag.
  r = parse_reference("localhost:5000/app");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "localhost:5000");
  EXPECT_EQ(r->tag, "latest");
  r = parse_reference(std::string("alpine@").append(kDigest));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->tag.empty());
  EXPECT_EQ(r->digest->str(), kDigest);
  EXPECT_EQ(r->manifest_reference(), kDigest);
  EXPECT_EQ(r->str(), std::string("docker.io/library/alpine@") + kDigest);
  r = parse_reference(std::string("host:1/a:t@").append(kDigest));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->tag, "t");
  EXPECT_EQ(r->manifest_reference(), kDigest);  // the digest pins it
  EXPECT_EQ(ref_str("[::1]:5000/x:y"), "[::1]:5000/x:y");
}

TEST(Reference, ErrorsNameTheBadPart) {
  EXPECT_NE(err_of("").find("empty"), std::string::npos);
  EXPECT_NE(err_of("Alpine").find("\"Alpine\""), std::string::npos);
  EXPECT_NE(err_of("quay.io/Org/app").find("must be lower case"), std::string::npos);
  EXPECT_NE(err_of("alpine:-x").find("tag \"-x\""), std::string::npos);
  EXPECT_NE(err_of("alpine@sha256:abc").find("64 hex digits"), std::string::npos);
  EXPECT_NE(err_of("alpine@md5:abc").find("md5"), std::string::npos);
  EXPECT_NE(err_of("a..b/c").find("registry host \"a..b\""), std::string::npos);
  EXPECT_NE(err_of("host:port/x").find("registry host \"host:port\""), std::string::npos);
  EXPECT_NE(err_of("https://quay.io/x").find("no URL scheme"), std::string::npos);
  EXPECT_NE(err_of("quay.io/a//b").find("component \"\""), std::string::npos);
  EXPECT_NE(err_of("quay.io/").find("no repository"), std::string::npos);
  EXPECT_NE(err_of("a/-b").find("component \"-b\""), std::string::npos);
  EXPECT_EQ(err_of("a/b__c/d-e.f_g---h"), "");
}

TEST(Challenge, BearerWithQuotedParams) {
  auto cs = parse_challenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull")");
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "bearer");
  EXPECT_EQ(cs[0].param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ(cs[0].param("service"), "registry.docker.io");
  EXPECT_EQ(cs[0].param("scope"), "repository:library/alpine:pull");
}

TEST(Challenge, SeveralChallengesTokensAndEscapes) {
  auto cs = parse_challenges(R"(Basic realm="a \"b\" c", BEARER Realm=http://x/t, error="insufficient_scope")");
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[0].scheme, "basic");
  EXPECT_EQ(cs[0].param("realm"), "a \"b\" c");
  EXPECT_EQ(cs[1].scheme, "bearer");
  EXPECT_EQ(cs[1].param("realm"), "http://x/t");
  EXPECT_EQ(cs[1].param("error"), "insufficient_scope");
  EXPECT_TRUE(parse_challenges("").empty());
  EXPECT_EQ(parse_challenges("Basic").at(0).params.size(), 0u);
}

TEST(Auth, Base64AndKeys) {
  EXPECT_EQ(*base64_decode("YWxpY2U6czNjcmV0"), "alice:s3cret");
  EXPECT_EQ(*base64_decode("YQ=="), "a");
  EXPECT_FALSE(base64_decode("a*b"));
  EXPECT_EQ(normalize_auth_key("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(normalize_auth_key("registry-1.docker.io"), "docker.io");
  EXPECT_EQ(normalize_auth_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
  EXPECT_EQ(normalize_auth_key("quay.io/org"), "quay.io/org");
}

Result<std::optional<Credentials>> from(const std::string& json, const char* registry, const char* repo) {
  return credentials_from_config(json, "/x/auth.json", registry, repo, std::chrono::milliseconds(2000));
}

TEST(Auth, ConfigAuthsEntries) {
  auto c = from(R"({"auths":{"https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcmV0"}}})", "docker.io", "library/a");
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_TRUE(*c);
  EXPECT_EQ((*c)->username, "alice");
  EXPECT_EQ((*c)->password, "s3cret");
  EXPECT_EQ((*c)->source, "/x/auth.json");
  c = from(R"({"auths":{"q.io":{"username":"u","password":"p:w"}}})", "q.io", "a");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->password, "p:w");
  // The most specific key wins; another registry's entry does not count.
  c = from(R"({"auths":{"q.io":{"auth":"YTpi"},"q.io/org":{"auth":"Yzpk"},"r.io":{"auth":"ZTpm"}}})", "q.io",
           "org/app");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->username, "c");
  c = from(R"({"auths":{"q.io":{"auth":"YTpi"},"q.io/org":{"auth":"Yzpk"}}})", "q.io", "other/app");
  EXPECT_EQ((*c)->username, "a");
  c = from(R"({"auths":{"r.io":{"auth":"YTpi"}}})", "q.io", "a");
  ASSERT_TRUE(c);
  EXPECT_FALSE(*c);
  // A placeholder entry (what docker writes with a credsStore) is no answer.
  c = from(R"({"auths":{"q.io":{}}})", "q.io", "a");
  EXPECT_FALSE(*c);
  c = from(R"({"auths":{"q.io":{"identitytoken":"tok"}}})", "q.io", "a");
  EXPECT_EQ((*c)->identity_token, "tok");
}

TEST(Auth, ConfigErrorsNameFileAndField) {
  auto c = from(R"({"auths":{"q.io":{"auth":"!!"}}})", "q.io", "a");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("/x/auth.json"), std::string::npos);
  EXPECT_NE(c.error().str().find("auths.q.io.auth"), std::string::npos) << c.error().str();
  c = from(R"({"auths":{"q.io":{"auth":"bm9jb2xvbg=="}}})", "q.io", "a");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("username:password"), std::string::npos);
  c = from("{not json", "q.io", "a");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("/x/auth.json"), std::string::npos);
}

class Helpers : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string bin = dir.path() + "/bin";
    mkdir(bin.c_str(), 0755);
    // Answers for q.io only; records what it was asked.
    write_helper(bin + "/docker-credential-good",
                 "read -r s; echo \"$s\" >> " + dir.path() +
                     "/asked\n"
                     "if [ \"$s\" = q.io ] || [ \"$s\" = https://index.docker.io/v1/ ]; then\n"
                     "  printf '{\"ServerURL\":\"%s\",\"Username\":\"helper\",\"Secret\":\"pw\"}' \"$s\"\n"
                     "else echo credentials not found in native keychain; exit 1; fi\n");
    write_helper(bin + "/docker-credential-broken", "echo 'keychain locked' >&2; exit 3\n");
    write_helper(bin + "/docker-credential-slow", "sleep 30; echo late\n");  // sleep is a grandchild
    write_helper(bin + "/docker-credential-token",
                 "read -r s; printf '{\"ServerURL\":\"%s\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}' \"$s\"\n");
    old_path = getenv("PATH");
    setenv("PATH", (bin + ":" + old_path).c_str(), 1);
  }
  void TearDown() override { setenv("PATH", old_path.c_str(), 1); }
  void write_helper(const std::string& p, const std::string& body) {
    ASSERT_TRUE(write_file_atomic(p, "#!/bin/sh\n" + body, 0755));
  }
  TempDir dir;
  std::string old_path;
};

TEST_F(Helpers, CredHelpersBeforeAuthsBeforeCredsStore) {
  std::string cfg = R"({"auths":{"q.io":{"auth":"YTpi"},"r.io":{"auth":"YTpi"}},
                        "credHelpers":{"q.io":"good"},"credsStore":"broken"})";
  auto c = from(cfg, "q.io", "x");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ((*c)->username, "helper");
  EXPECT_EQ((*c)->source, "credential helper docker-credential-good");
  // r.io has no helper of its own: its auths entry comes before credsStore.
  c = from(cfg, "r.io", "x");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ((*c)->username, "a");
  // s.io has neither: credsStore answers (here: fails, and says so).
  c = from(cfg, "s.io", "x");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("docker-credential-broken failed (exit 3): keychain locked"), std::string::npos)
      << c.error().str();
  EXPECT_NE(c.error().str().find("credsStore"), std::string::npos);
}

TEST_F(Helpers, HelperAnswersNotFoundTimesOutAndTokens) {
  auto c = credential_helper_get("good", "other.io", std::chrono::milliseconds(5000));
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(*c);
  c = from(R"({"credsStore":"good"})", "docker.io", "library/a");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ(*read_file(dir.path() + "/asked"), "other.io\nhttps://index.docker.io/v1/\n");
  auto start = std::chrono::steady_clock::now();
  c = credential_helper_get("slow", "q.io", std::chrono::milliseconds(300));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("did not answer within 300ms"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  c = credential_helper_get("token", "q.io", std::chrono::milliseconds(5000));
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->identity_token, "refresh");
  EXPECT_TRUE((*c)->username.empty());
  c = credential_helper_get("missing", "q.io", std::chrono::milliseconds(5000));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("docker-credential-missing"), std::string::npos);
}

TEST(Auth, FileOrderAndPrecedence) {
  TempDir t;
  AuthSources s;
  s.home = t.path() + "/home";
  s.xdg_runtime_dir = t.path() + "/run";
  EXPECT_EQ(auth_files(s), (std::vector<std::string>{t.path() + "/run/containers/auth.json",
                                                     t.path() + "/home/.config/containers/auth.json",
                                                     t.path() + "/home/.docker/config.json"}));
  std::filesystem::create_directories(t.path() + "/run/containers");
  std::filesystem::create_directories(t.path() + "/home/.docker");
  ASSERT_TRUE(write_file_atomic(t.path() + "/run/containers/auth.json", R"({"auths":{"q.io":{"auth":"cnVuOng="}}})"));
  ASSERT_TRUE(write_file_atomic(t.path() + "/home/.docker/config.json",
                                R"({"auths":{"q.io":{"auth":"ZG9ja2VyOng="},"r.io":{"auth":"ZG9ja2VyOng="}}})"));
  // The runtime auth.json first; a registry it lacks falls through to docker's.
  EXPECT_EQ((*find_credentials(s, "q.io", "a"))->username, "run");
  EXPECT_EQ((*find_credentials(s, "r.io", "a"))->username, "docker");
  EXPECT_FALSE(*find_credentials(s, "s.io", "a"));
  // REGISTRY_AUTH_FILE replaces the defaults; a named file replaces both.
  ASSERT_TRUE(write_file_atomic(t.path() + "/env.json", R"({"auths":{"q.io":{"auth":"ZW52Ong="}}})"));
  s.registry_auth_file = t.path() + "/env.json";
  EXPECT_EQ((*find_credentials(s, "q.io", "a"))->username, "env");
  EXPECT_FALSE(*find_credentials(s, "r.io", "a"));
  s.authfile = t.path() + "/missing.json";
  auto missing = find_credentials(s, "q.io", "a");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().str().find("missing.json"), std::string::npos);
  // Explicit credentials win over every file.
  s.explicit_creds = *parse_creds("me:pa:ss");
  EXPECT_EQ((*find_credentials(s, "q.io", "a"))->password, "pa:ss");
  EXPECT_FALSE(parse_creds("nocolon"));
  EXPECT_FALSE(parse_creds(":pw"));
  // The user "<token>": an identity token, as credential helpers give one.
  auto tok = *parse_creds("<token>:refresh:1");
  EXPECT_EQ(tok.identity_token, "refresh:1");
  EXPECT_EQ(tok.username, "");
  EXPECT_EQ(tok.password, "");
  AuthSources root;
  root.is_root = true;
  EXPECT_EQ(auth_files(root).at(0), "/run/containers/0/auth.json");
}

TEST(Platform, ParseAndHost) {
  auto p = oci::parse_platform("linux/arm/v7");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->architecture, "arm");
  EXPECT_EQ(p->variant, "v7");
  EXPECT_EQ(oci::parse_platform("arm64")->str(), "linux/arm64");
  EXPECT_EQ(oci::parse_platform("linux/x86_64")->str(), "linux/amd64");
  auto bad = oci::parse_platform("linux//x", "--platform");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("--platform \"linux//x\""), std::string::npos);
  EXPECT_FALSE(oci::parse_platform("a/b/c/d"));
#if defined(__x86_64__)
  EXPECT_EQ(oci::host_platform().str(), "linux/amd64");
#endif
}

std::string index_json() {
  return std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)") +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + kDigest +
         R"(","size":10,"platform":{"os":"linux","architecture":"amd64"}},)" +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + kDigest2 +
         R"(","size":11,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},)" +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + kDigest +
         R"(","size":12,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},)" +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + kDigest2 +
         R"(","size":13,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},)" +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + kDigest +
         R"(","size":14,"platform":{"os":"unknown","architecture":"unknown"}}]})";
}

TEST(Platform, IndexSelection) {
  auto idx = parse_manifest(index_json(), "", "index");
  ASSERT_TRUE(idx) << idx.error().str();
  ASSERT_EQ(idx->kind, ManifestDoc::kIndex);
  ASSERT_EQ(idx->manifests.size(), 5u);
  auto pick = [&](const char* p) -> int64_t {
    auto d = select_platform(*idx, *oci::parse_platform(p), "index");
    return d ? d->size : -1;
  };
  EXPECT_EQ(pick("linux/amd64"), 10);
  EXPECT_EQ(pick("linux/arm64"), 11);  // "" and v8 are one for arm64
  EXPECT_EQ(pick("linux/arm64/v8"), 11);
  EXPECT_EQ(pick("linux/arm/v7"), 13);
  EXPECT_EQ(pick("linux/arm"), 12);  // no variant asked: the first arm
  EXPECT_EQ(pick("linux/arm/v5"), -1);
  auto none = select_platform(*idx, *oci::parse_platform("windows/amd64"), "index sha256:x");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("no image for platform windows/amd64"), std::string::npos);
  EXPECT_NE(none.error().str().find("linux/amd64, linux/arm64/v8, linux/arm/v6, linux/arm/v7)"), std::string::npos)
      << none.error().str();
}

TEST(Manifest, ImageManifestAndMediaTypes) {
  std::string m =
      std::string(
          R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")") +
      kDigest + R"(","size":5},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" +
      kDigest2 + R"(","size":7}]})";
  auto d = parse_manifest(m, "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8", "manifest");
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(d->kind, ManifestDoc::kImage);
  EXPECT_EQ(d->media_type, oci::media::kDockerManifest);
  EXPECT_EQ(d->config.digest.str(), kDigest);
  ASSERT_EQ(d->layers.size(), 1u);
  EXPECT_EQ(d->layers[0].size, 7);
  auto s1 = parse_manifest(R"({"schemaVersion":1})", oci::media::kDockerSchema1Signed, "manifest m");
  ASSERT_FALSE(s1);
  EXPECT_NE(s1.error().str().find("schema 1"), std::string::npos);
  auto bad = parse_manifest(R"({"layers":[{"digest":"sha256:12","size":1}],"config":{}})", "", "manifest m");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("manifest m"), std::string::npos);
  EXPECT_NE(bad.error().str().find("config.digest"), std::string::npos) << bad.error().str();
  auto neg = parse_manifest(std::string(R"({"manifests":[{"digest":")") + kDigest + R"(","size":-1}]})", "", "m");
  ASSERT_FALSE(neg);
  EXPECT_NE(neg.error().str().find("manifests[0].size"), std::string::npos) << neg.error().str();
}

Digest digest_of(char c) { return Digest{"sha256", std::string(64, c)}; }

Descriptor blob(char c, int64_t size) {
  Descriptor d;
  d.digest = digest_of(c);
  d.size = size;
  return d;
}

PullEvent ev(PullEvent::Kind k, char c, uint64_t done, int64_t total = -1) {
  return PullEvent{k, digest_of(c), done, total, nullptr};
}

// The config ('c') and three layers: 'a' is in the store, 'b' and 'd' are fetched.
TEST(PullProgress, CountsLayersStatesAndBytes) {
  Clock::time_point t0{};
  PullProgress p(t0);
  std::vector<Descriptor> blobs = {blob('c', 100), blob('a', 1024), blob('b', 2048), blob('d', 4096)};
  EXPECT_FALSE(p.resolved());
  p.on_event(PullEvent{PullEvent::kResolved, digest_of('m'), 0, -1, &blobs});
  ASSERT_TRUE(p.resolved());
  EXPECT_EQ(p.layers(), 3u);  // the config is not a layer
  EXPECT_EQ(p.bytes_total(), 1024u + 2048 + 4096);
  EXPECT_EQ(p.count(LayerProgress::kWaiting), 3u);
  EXPECT_EQ(p.summary(t0), "Pulled 0/3 (0 B/7.0 KiB) layers: 3 waiting/0 pulling");

  p.on_event(ev(PullEvent::kBlobStart, 'c', 0, 100));
  p.on_event(ev(PullEvent::kBlobDone, 'c', 100, 100));
  EXPECT_EQ(p.bytes_done(), 0u);  // config bytes count for nothing
  p.on_event(ev(PullEvent::kBlobExists, 'a', 1024, 1024));
  EXPECT_EQ(p.count(LayerProgress::kPresent), 1u);
  EXPECT_EQ(p.bytes_done(), 1024u);
  EXPECT_EQ(p.bytes_fetched(), 0u);

  p.on_event(ev(PullEvent::kBlobStart, 'b', 0, 2048));
  p.on_event(ev(PullEvent::kBlobProgress, 'b', 0, 2048));  // fetch_blob's first report: what it starts from
  p.on_event(ev(PullEvent::kBlobProgress, 'b', 1024, 2048));
  EXPECT_EQ(p.count(LayerProgress::kPulling), 1u);
  EXPECT_EQ(p.bytes_done(), 2048u);
  EXPECT_EQ(p.bytes_fetched(), 1024u);
  // 1 KiB moved in 2 s; 5 KiB left: 10 s at that rate.
  EXPECT_EQ(p.summary(t0 + std::chrono::seconds(2)),
            "Pulled 1/3 (2.0 KiB/7.0 KiB) layers: 1 waiting/1 pulling - est 10.0s remaining");
  p.on_event(ev(PullEvent::kBlobDone, 'b', 2048, 2048));
  EXPECT_EQ(p.count(LayerProgress::kPulled), 1u);

  // 'd' resumes a partial file of 1 KiB: those bytes are done, not fetched now.
  p.on_event(ev(PullEvent::kBlobStart, 'd', 0, 4096));
  p.on_event(ev(PullEvent::kBlobProgress, 'd', 1024, 4096));
  EXPECT_EQ(p.bytes_fetched(), 2048u);
  p.on_event(ev(PullEvent::kBlobProgress, 'd', 4096, 4096));
  p.on_event(ev(PullEvent::kBlobDone, 'd', 4096, 4096));
  EXPECT_EQ(p.bytes_done(), p.bytes_total());
  EXPECT_EQ(p.bytes_fetched(), 2048u + 3072);
  // Nothing left: no estimate.
  EXPECT_EQ(p.summary(t0 + std::chrono::seconds(3)), "Pulled 3/3 (7.0 KiB/7.0 KiB) layers: 0 waiting/0 pulling");
}

TEST(PullProgress, BlobsOutsideTheImageAndUnknownSizes) {
  PullProgress p;
  std::vector<Descriptor> blobs = {blob('c', 10), blob('a', -1)};
  p.on_event(ev(PullEvent::kBlobProgress, 'a', 5));  // before the manifest: nothing to count it in
  EXPECT_EQ(p.layers(), 0u);
  p.on_event(PullEvent{PullEvent::kResolved, digest_of('m'), 0, -1, &blobs});
  p.on_event(ev(PullEvent::kBlobProgress, 'z', 5));  // not a blob of the image
  EXPECT_EQ(p.bytes_done(), 0u);
  p.on_event(ev(PullEvent::kBlobStart, 'a', 0));
  p.on_event(ev(PullEvent::kBlobProgress, 'a', 0));
  p.on_event(ev(PullEvent::kBlobProgress, 'a', 300));
  EXPECT_EQ(p.bytes_done(), 300u);  // the manifest gave no size: what arrived
  p.on_event(ev(PullEvent::kBlobDone, 'a', 512));
  EXPECT_EQ(p.bytes_done(), 512u);
  EXPECT_EQ(p.count(LayerProgress::kPulled), 1u);
}

TEST(ReportThrottle, FirstAtOnceThenAtMostOncePerInterval) {
  ReportThrottle t(std::chrono::seconds(10));
  Clock::time_point t0 = Clock::now();
  EXPECT_TRUE(t.due(t0));
  EXPECT_FALSE(t.due(t0));
  EXPECT_FALSE(t.due(t0 + std::chrono::milliseconds(9999)));
  EXPECT_TRUE(t.due(t0 + std::chrono::seconds(10)));
  // Counted from the last report, not from the start.
  EXPECT_FALSE(t.due(t0 + std::chrono::seconds(15)));
  EXPECT_FALSE(t.due(t0 + std::chrono::milliseconds(19999)));
  EXPECT_TRUE(t.due(t0 + std::chrono::seconds(25)));
  int reports = 0;
  ReportThrottle u(std::chrono::seconds(10));
  for (int ms = 0; ms <= 60000; ms += 250) reports += u.due(t0 + std::chrono::milliseconds(ms));
  EXPECT_EQ(reports, 7);  // 0, 10, ..., 60 s
}

TEST(HumanBytes, Units) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(40ull << 20), "40.0 MiB");
  EXPECT_EQ(human_bytes(999, SizeUnits::Decimal), "999 B");
  EXPECT_EQ(human_bytes(1536, SizeUnits::Decimal), "1.5 kB");
  EXPECT_EQ(human_bytes(40000000, SizeUnits::Decimal), "40.0 MB");
}

}  // namespace
}  // namespace husk::image
