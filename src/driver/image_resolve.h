// The one place a task's `image` becomes a root filesystem, for every
// flavor (podman now; docker and nspawn call it too): a local root
// filesystem directory (image_dir.h), or an image through the store
// (src/image/): an OCI image layout directory, oci:DIR[:REF],
// oci-archive:FILE[:REF] or docker-archive:FILE[:TAG], imported and
// committed under the reference as written. Registry references are an
// error until the registry client is wired in.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "oci/image.h"

namespace husk::driver {

struct ImageOptions {
  std::string store_root;  // the image store (image::Store::default_root() on a host)
  oci::Platform platform;  // from the task's arch/os/variant, else the host's
};

struct ResolvedImage {
  std::vector<std::string> layers;         // top first; one for a directory image
  std::optional<oci::ImageConfig> config;  // store images only
  std::string image_id;                    // store images: what the task leases
  std::string source_path;                 // the host directory or archive it came from
};

// `field` names the task config field in errors ("config.image").
Result<ResolvedImage> resolve_image(const std::string& ref, const ImageOptions& options, const std::string& field);

}  // namespace husk::driver
