// Importing images from local transports into the store, each blob checked
// against its digest on the way in, ending in Store::commit_image():
//
//   oci:DIR[:REF]             an OCI image layout directory (oci-layout,
//                             index.json, blobs/); REF picks the index entry
//                             whose org.opencontainers.image.ref.name is REF
//   DIR                       (absolute, holding oci-layout) the same as oci:DIR
//   oci-archive:FILE[:REF]    a tar (maybe gzip/zstd) of such a layout
//   docker-archive:FILE[:TAG] `docker save` output (manifest.json with
//                             Config/Layers/RepoTags); TAG picks by RepoTags
//                             ("busybox:latest")
//
// Without REF/TAG the source must hold exactly one image. Paths may not
// contain ':' (the separator, as in skopeo).
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "image/store.h"
#include "oci/image.h"

namespace husk::image {

struct ImageSource {
  enum class Kind { kOciLayout, kOciArchive, kDockerArchive };
  Kind kind = Kind::kOciLayout;
  std::string path;  // absolute
  std::string ref;   // "" when none
};

// nullopt when `s` names none of the local transports (a registry
// reference or a plain directory). Errors name `what`.
Result<std::optional<ImageSource>> parse_image_source(std::string_view s, std::string_view what);

// Import `src` and commit it as `name` for `platform`.
Result<ImageRecord> import_image(Store& store, const ImageSource& src, const std::string& name,
                                 const oci::Platform& platform, CommitStats* stats = nullptr);

}  // namespace husk::image
