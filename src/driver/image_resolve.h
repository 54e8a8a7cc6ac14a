// The one place a task's `image` becomes a root filesystem, for every
// flavor (podman now; docker and nspawn call it too): a local root
// filesystem directory (image_dir.h), or an image through the store
// (src/image/): an OCI image layout directory, oci:DIR[:REF],
// oci-archive:FILE[:REF] or docker-archive:FILE[:TAG], imported and
// committed under the reference as written; or a registry reference
// (docker.io/library/redis:7, redis:7), pulled into the store
// (image/pull.h) unless the store has it or `pull.force`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "image/auth.h"
#include "oci/image.h"

namespace husk::driver {

// How a registry image is pulled: the task's auth/force_pull/
// image_pull_timeout/auth_soft_fail and the plugin's auth options.
struct PullOptions {
  std::optional<image::Credentials> credentials;  // the task's auth block
  std::string auth_file;                          // the plugin's auth.config (docker config.json format)
  std::string auth_helper;                        // the plugin's auth.helper: docker-credential-<helper>
  bool tls_verify = true;
  bool force = false;
  bool auth_soft_fail = false;
  int64_t timeout_ms = 5 * 60 * 1000;  // the whole pull
  int64_t activity_timeout_ms = 0;     // no bytes for this long: retry (docker's pull_activity_timeout)
};

struct ImageOptions {
  std::string store_root;  // the image store (image::Store::default_root() on a host)
  oci::Platform platform;  // from the task's arch/os/variant, else the host's
  PullOptions pull;
};

struct ResolvedImage {
  std::vector<std::string> layers;         // top first; one for a directory image
  std::optional<oci::ImageConfig> config;  // store images only
  std::string image_id;                    // store images: what the task leases
  std::string source_path;                 // the host directory or archive it came from; "" when pulled
  std::string pulled;                      // a registry image: what happened, for a task event
};

// `field` names the task config field in errors ("config.image").
Result<ResolvedImage> resolve_image(const std::string& ref, const ImageOptions& options, const std::string& field);

}  // namespace husk::driver
