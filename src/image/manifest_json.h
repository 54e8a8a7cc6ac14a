// The parts of OCI image indexes / docker manifest lists and of image
// manifests (OCI and docker schema 2) that a pull needs: descriptors and
// platforms. Also the platform a pull asks for and how an index entry is
// chosen for it. (The image store's own format parsing lives in src/oci/.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "image/digest.h"

namespace husk::image {

namespace media {
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr const char* kDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
}  // namespace media

struct Platform {
  std::string os = "linux";
  std::string architecture;  // GOARCH names: amd64, arm64, arm, 386, ppc64le, s390x, riscv64
  std::string variant;       // v8 for arm64 (also when empty), v7/v6 for arm
  std::string str() const;   // os/arch[/variant]
};

// "linux/arm64", "linux/arm/v7", "arm64" (os linux). Errors name `what`.
Result<Platform> parse_platform(std::string_view s, std::string_view what = "platform");
// The machine this was built for, in GOARCH terms.
Platform host_platform();

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = -1;
  std::optional<Platform> platform;  // index entries only
};

struct ManifestDoc {
  enum Kind { kIndex, kImage } kind;
  std::string media_type;
  std::vector<Descriptor> manifests;  // kIndex
  Descriptor config;                  // kImage
  std::vector<Descriptor> layers;     // kImage
};

// Parses a manifest or index. `content_type` is the registry's Content-Type
// (used when the document has no mediaType field); `what` prefixes errors.
Result<ManifestDoc> parse_manifest(std::string_view json, std::string_view content_type, std::string_view what);

// The index entry for `want`: same os and architecture; a variant asked for
// must match (arm64's "" and "v8" are one); without one, an entry without
// variant (or the normalised default) is preferred, then the first.
// The error lists the platforms the index offers.
Result<Descriptor> select_platform(const ManifestDoc& index, const Platform& want, std::string_view what);

}  // namespace husk::image
