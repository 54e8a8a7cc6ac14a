// The one place a task's `image` becomes a root filesystem, for every
// flavor (podman now; docker and nspawn call it too): a local root
// filesystem directory (image_dir.h), or an image through the store
// (src/image/): an OCI image layout directory, oci:DIR[:REF],
// oci-archive:FILE[:REF] or docker-archive:FILE[:TAG], imported and
// committed under the reference as written; or a registry reference
// (docker.io/library/redis:7, redis:7), pulled into the store
// (image/pull.h) unless the store has it or `pull.force`.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "driver/value.h"
#include "image/auth.h"
#include "oci/image.h"
#include "oci/spec.h"

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
  int64_t activity_timeout_ms = 0;     // no bytes for this long: retry, or fail (below)
  bool retry_stalled = true;           // false: a stall fails the pull (docker's pull_activity_timeout)
  std::string activity_timeout_name = "the progress timeout";  // what the error calls it
};

// How often a running pull reports (ImageOptions::pull_progress): the
// first report when the manifest is known, then at most this often.
// (Nomad's docker driver checks its pull every 10 s.)
constexpr std::chrono::seconds kPullProgressInterval{10};

struct ImageOptions {
  std::string store_root;  // the image store (image::Store::default_root() on a host)
  oci::Platform platform;  // from the task's arch/os/variant, else the host's
  PullOptions pull;
  // While a registry pull runs: where it stands, as docker's pull progress
  // line ("Pulled 1/3 (2.0 MiB/6.0 MiB) layers: 1 waiting/1 pulling - est
  // 4.0s remaining"), at most every kPullProgressInterval. May be empty.
  std::function<void(const std::string& summary)> pull_progress;
};

struct ResolvedImage {
  std::vector<std::string> layers;         // top first; one for a directory image
  std::optional<oci::ImageConfig> config;  // store images only
  std::string image_id;                    // store images: what the task leases
  std::string source_path;                 // the host directory or archive it came from; "" when pulled
  std::string pulled;                      // a registry image: what happened, for a task event
  std::vector<std::string> warnings;       // the store's (skipped device nodes...), for task events
  // A rootless store's id map (image/store_userns.h): the task's user
  // namespace must map the same way for the layers' owners to be seen as
  // the image gives them. Empty for root's store and for directories.
  std::vector<oci::IdMapping> uid_map, gid_map;
};

// The plugin option `image_store` (husk's own, in every flavor that uses
// the store; upstream drivers have no store of their own): the store's
// root, an absolute path; unset, image::Store::default_root() ($HUSK_IMAGE_STORE,
// else /var/lib/husk/images for root).
Result<std::string> image_store_option(const Value& plugin_config);

// `field` names the task config field in errors ("config.image").
// A driver not run as root pulls and imports through a `husk-image`
// child (husk_image_binary()), which unpacks in the store's user
// namespace: this threaded process does not fork to do it. The pull's
// progress comes back from the child's `--progress summary` lines.
Result<ResolvedImage> resolve_image(const std::string& ref, const ImageOptions& options, const std::string& field);

// A rootless store image's user namespace: the task's maps are the
// store's (ResolvedImage::uid_map), so that the layers' owners are seen as
// the image gives them. `field` is the task's user namespace field and
// `mode` its value: "" and "host" (the driver's own namespace, as rootless
// podman means it) take the store's maps; any other mode would need maps
// of its own, an error naming the field. Nothing for other images.
Result<> apply_store_id_map(oci::Spec& spec, const ResolvedImage& image, const std::string& field,
                            const std::string& mode);

// "0:1000:1,1:300000:65536": maps as the error messages show them.
std::string id_map_text(const std::vector<oci::IdMapping>& maps);

}  // namespace husk::driver
