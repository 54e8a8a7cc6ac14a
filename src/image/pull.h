// Pulling an image into the store: fetch_image() (the registry's blobs into
// the BlobStore) then Store::commit_image() (layers unpacked, the image
// recorded under its fully qualified reference). One function for
// `husk-image pull` and the driver, so both follow the same rules: an image
// already in the store is used unless `force`, and with `auth_soft_fail` a
// pull refused with the given credentials is tried once anonymously (the
// docker and podman drivers' auth_soft_fail).
#pragma once

#include <string>

#include "common/error.h"
#include "image/fetch.h"
#include "image/store.h"
#include "oci/image.h"

namespace husk::image {

struct PullRequest {
  std::string reference;
  oci::Platform platform;  // the image's platform (an index chooses by it)
  FetchOptions fetch;      // fetch.platform is set from `platform`
  bool force = false;      // fetch even when the store has the image
  bool auth_soft_fail = false;
};

struct PullResult {
  ImageRecord image;
  bool fetched = false;  // false: the store had it
  std::string name;      // the fully qualified reference it is stored under
  CommitStats stats;
};

Result<PullResult> pull_image(Store& store, const PullRequest& request);

}  // namespace husk::image
