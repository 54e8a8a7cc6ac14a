// The OCI and docker image formats: parsing, JSON paths in errors, and
// platform selection from an index or manifest list.
#include <gtest/gtest.h>

#include "oci/image.h"

namespace husk::oci {
namespace {

const std::string kD1 = "sha256:" + std::string(64, 'a');
const std::string kD2 = "sha256:" + std::string(64, 'b');
const std::string kD3 = "sha256:" + std::string(64, 'c');

std::string desc(const std::string& digest, const std::string& platform) {
  return R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest + R"(","size":100)" +
         (platform.empty() ? "" : R"(,"platform":)" + platform) + "}";
}

TEST(ImageIndex, HostPlatformIsAmd64LinuxByDefault) {
  std::string json = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
                     desc(kD1, R"({"architecture":"arm64","os":"linux","variant":"v8"})") + "," +
                     desc(kD2, R"({"architecture":"amd64","os":"linux"})") + "]}";
  auto idx = parse_image_index(json);
  ASSERT_TRUE(idx) << idx.error().str();
  ASSERT_EQ(idx->manifests.size(), 2u);
  EXPECT_EQ(*manifest_kind(json), ManifestKind::kIndex);
  EXPECT_EQ(host_platform().str(), "linux/amd64");
  auto d = select_platform(*idx, host_platform());
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->digest, kD2);
  auto arm = select_platform(*idx, *parse_platform("linux/arm64/v8", "p"));
  ASSERT_TRUE(arm);
  EXPECT_EQ((*arm)->digest, kD1);
}

TEST(ImageIndex, DockerManifestListVariantsAndMissingPlatform) {
  std::string json =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[)" +
      desc(kD1, R"({"architecture":"arm","os":"linux","variant":"v6"})") + "," +
      desc(kD2, R"({"architecture":"arm","os":"linux","variant":"v7"})") + "," +
      desc(kD3, R"({"architecture":"amd64","os":"windows"})") + "]}";
  auto idx = parse_image_index(json);
  ASSERT_TRUE(idx) << idx.error().str();
  EXPECT_EQ((*select_platform(*idx, Platform{"arm", "linux", "v7"}))->digest, kD2);
  // No variant wanted, none without one: the first arm entry.
  EXPECT_EQ((*select_platform(*idx, Platform{"arm", "linux", ""}))->digest, kD1);
  auto none = select_platform(*idx, host_platform());
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("linux/amd64"), std::string::npos);
  EXPECT_NE(none.error().str().find("windows/amd64"), std::string::npos);
  EXPECT_NE(none.error().str().find("linux/arm/v7"), std::string::npos);
}

// The store picks from an index by the same rules as a registry pull
// (oci/platform.h): arm64's "" and "v8" are one, attestations never serve.
TEST(ImageIndex, ArmVariantsAndAttestationsAsPullsTakeThem) {
  std::string json = R"({"schemaVersion":2,"manifests":[)" + desc(kD1, R"({"architecture":"arm64","os":"linux"})") +
                     "," + desc(kD2, R"({"architecture":"unknown","os":"unknown"})") + "]}";
  auto idx = parse_image_index(json);
  ASSERT_TRUE(idx) << idx.error().str();
  auto v8 = select_platform(*idx, *parse_platform("linux/arm64/v8", "p"));
  ASSERT_TRUE(v8) << v8.error().str();
  EXPECT_EQ((*v8)->digest, kD1);
  auto none = select_platform(*idx, *parse_platform("amd64", "p"));  // a bare arch is linux's
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("no image for platform linux/amd64 (the index offers: linux/arm64)"),
            std::string::npos)
      << none.error().str();
}

TEST(ImageIndex, ErrorsNameTheJsonPath) {
  auto bad = parse_image_index(R"({"schemaVersion":2,"manifests":[)" + desc(kD1, "") +
                               R"(,{"digest":"sha256:12","size":1}]})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("manifests[1].digest"), std::string::npos) << bad.error().str();
  auto plat = parse_image_index(R"({"manifests":[)" + desc(kD1, R"({"architecture":"amd64","os":7})") + "]}");
  ASSERT_FALSE(plat);
  EXPECT_NE(plat.error().str().find("manifests[0].platform.os"), std::string::npos) << plat.error().str();
  auto version = parse_image_index(R"({"schemaVersion":1,"manifests":[]})");
  ASSERT_FALSE(version);
  EXPECT_NE(version.error().str().find("schemaVersion"), std::string::npos);
}

TEST(ImageManifest, OciAndDockerSchema2) {
  std::string layers = R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + kD2 +
                       R"(","size":10},{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + kD3 +
                       R"(","size":20}])";
  auto oci = parse_image_manifest(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      kD1 + R"(","size":5},)" + layers + "}");
  ASSERT_TRUE(oci) << oci.error().str();
  EXPECT_EQ(oci->config.digest, kD1);
  ASSERT_EQ(oci->layers.size(), 2u);
  EXPECT_EQ(oci->layers[1].size, 20);

  std::string docker =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
      kD1 + R"(","size":5},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" +
      kD2 + R"(","size":10}]})";
  EXPECT_EQ(*manifest_kind(docker), ManifestKind::kManifest);
  auto d = parse_image_manifest(docker);
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(d->media_type, media::kDockerManifest);

  auto helm = parse_image_manifest(
      R"({"schemaVersion":2,"config":{"digest":")" + kD1 +
      R"(","size":5},"layers":[{"mediaType":"application/vnd.cncf.helm.chart","digest":")" + kD2 + R"(","size":1}]})");
  ASSERT_FALSE(helm);
  EXPECT_NE(helm.error().str().find("layers[0].mediaType"), std::string::npos) << helm.error().str();
  EXPECT_FALSE(manifest_kind(R"({"mediaType":"text/plain"})"));
}

TEST(ImageConfig, DefaultsAndDiffIds) {
  auto c = parse_image_config(R"({"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z",
    "config":{"Entrypoint":["/bin/app"],"Cmd":[],"Env":["PATH=/bin","A=b=c"],"WorkingDir":"/srv","User":"app:app",
    "StopSignal":"SIGQUIT","Labels":{"k":"v"},"ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}}},
    "rootfs":{"type":"layers","diff_ids":[")" +
                              kD1 + R"(",")" + kD2 + R"("]}})");
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_TRUE(c->entrypoint);
  EXPECT_EQ(*c->entrypoint, std::vector<std::string>{"/bin/app"});
  ASSERT_TRUE(c->cmd);  // [] is kept apart from absent
  EXPECT_TRUE(c->cmd->empty());
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/bin", "A=b=c"}));
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->user, "app:app");
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  EXPECT_EQ(c->labels.at("k"), "v");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"80/tcp", "53/udp"}));  // document order
  EXPECT_EQ(c->volumes, std::vector<std::string>{"/data"});
  EXPECT_EQ(c->diff_ids, (std::vector<std::string>{kD1, kD2}));

  auto none = parse_image_config(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->entrypoint);
  EXPECT_FALSE(none->cmd);

  auto env = parse_image_config(
      R"({"architecture":"amd64","os":"linux","config":{"Env":["NOEQUALS"]},"rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_FALSE(env);
  EXPECT_NE(env.error().str().find("config.Env[0]"), std::string::npos) << env.error().str();
  auto ids =
      parse_image_config(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["md5:00"]}})");
  ASSERT_FALSE(ids);
  EXPECT_NE(ids.error().str().find("rootfs.diff_ids[0]"), std::string::npos) << ids.error().str();
}

TEST(DockerArchive, ManifestJson) {
  auto m = parse_docker_archive_manifest(
      R"([{"Config":"abc.json","RepoTags":["busybox:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}])");
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ((*m)[0].layers.size(), 2u);
  EXPECT_EQ((*m)[0].repo_tags[0], "busybox:latest");
  auto bad = parse_docker_archive_manifest(R"([{"Config":"a.json","Layers":[1]}])");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("manifest.json[0].Layers[0]"), std::string::npos) << bad.error().str();
  EXPECT_TRUE(check_oci_layout(R"({"imageLayoutVersion":"1.0.0"})"));
  EXPECT_FALSE(check_oci_layout(R"({"imageLayoutVersion":"2.0.0"})"));
}

}  // namespace
}  // namespace husk::oci
