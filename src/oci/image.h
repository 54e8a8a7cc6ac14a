// The OCI image formats and docker's registry formats, as pure data: image
// index / docker manifest list (with platform selection), image manifest /
// docker v2 schema 2 manifest, and the image config. Parsing validates
// media types and digests' shape; every error names the JSON path
// (`manifests[2].platform.os: expected a string`). Digests stay strings
// here: src/image/ checks them against blobs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "oci/platform.h"

namespace husk::oci {

namespace media {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip";
// Refused by pulls, with a message of their own.
inline constexpr std::string_view kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
}  // namespace media

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>" (shape checked by the caller)
  int64_t size = -1;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
};

struct ImageIndex {
  std::string media_type;  // kOciIndex or kDockerList ("" when the document omits it)
  std::vector<Descriptor> manifests;
};

struct ImageManifest {
  std::string media_type;  // kOciManifest or kDockerManifest
  Descriptor config;
  std::vector<Descriptor> layers;  // bottom first
  std::map<std::string, std::string> annotations;
};

struct ImageConfig {
  Platform platform;
  std::string created;                                      // RFC 3339, "" when absent
  std::optional<std::vector<std::string>> entrypoint, cmd;  // absent and [] differ for podman
  std::vector<std::string> env;                             // "K=V"
  std::string working_dir, user, stop_signal;
  std::map<std::string, std::string> labels;
  std::vector<std::string> exposed_ports;  // "80/tcp"
  std::vector<std::string> volumes;        // "/data"
  std::vector<std::string> diff_ids;       // rootfs.diff_ids, bottom first
};

enum class ManifestKind { kIndex, kManifest };

// What a manifest document is: by its mediaType field, else by its shape
// (an index has "manifests", a manifest "config" and "layers").
Result<ManifestKind> manifest_kind(std::string_view json);

Result<ImageIndex> parse_image_index(std::string_view json);
Result<ImageManifest> parse_image_manifest(std::string_view json);
Result<ImageConfig> parse_image_config(std::string_view json);

// The manifest of `index` for `want`, by select_platform_entry()'s rules
// (platform.h), which registry pulls follow too. Errors list the platforms
// the index has.
Result<const Descriptor*> select_platform(const ImageIndex& index, const Platform& want);

// `docker save`'s manifest.json: one entry per image, paths inside the archive.
struct DockerArchiveImage {
  std::string config;                  // "<hex>.json" or "blobs/sha256/<hex>"
  std::vector<std::string> repo_tags;  // "busybox:latest"
  std::vector<std::string> layers;     // "<id>/layer.tar" or "blobs/sha256/<hex>", bottom first
};
Result<std::vector<DockerArchiveImage>> parse_docker_archive_manifest(std::string_view json);

// An OCI image layout's `oci-layout` file: imageLayoutVersion must be 1.x.
Result<> check_oci_layout(std::string_view json);

// An OCI image manifest as JSON (what a docker archive is turned into).
std::string emit_image_manifest(const ImageManifest& m);

// Layer media types that husk unpacks (tar, tar+gzip, tar+zstd of OCI and
// docker); foreign/non-distributable layers count too (same content).
bool is_layer_media_type(std::string_view media_type);

}  // namespace husk::oci
