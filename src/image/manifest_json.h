// The parts of OCI image indexes / docker manifest lists and of image
// manifests (OCI and docker schema 2) that a pull needs: descriptors with
// checked digests. Platforms and media types are src/oci/'s (platform.h,
// image.h), and so are the rules by which an index entry is chosen; the
// image store's own, stricter parsing of stored manifests lives there too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "image/digest.h"
#include "oci/image.h"
#include "oci/platform.h"

namespace husk::image {

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = -1;
  std::optional<oci::Platform> platform;  // index entries only
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

// The index entry for `want`, by oci::select_platform_entry()'s rules (as
// the image store chooses). The error lists the platforms the index offers.
Result<Descriptor> select_platform(const ManifestDoc& index, const oci::Platform& want, std::string_view what);

}  // namespace husk::image
