// Pulling an image into the BlobStore: fetch_image() resolves a reference
// (an index to the manifest for one platform), and leaves that manifest,
// its config and its layers in the store, each verified against its digest.
// Blobs already in the store are not fetched again; the others are fetched
// a few at a time (FetchOptions::parallel), each under the store's
// per-digest lock, so concurrent pulls of one image (in
// one process or several) download every blob once: the others wait, then
// find it present. What to do with the result is the image store's
// (Store::commit_image(name, digest, platform)).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/error.h"
#include "image/auth.h"
#include "image/blobs.h"
#include "image/manifest_json.h"
#include "image/reference.h"
#include "image/registry.h"

namespace husk::image {

struct PullEvent {
  enum Kind {
    kResolved,  // the manifest is known: `layers` lists what will be fetched
    kBlobStart,
    kBlobProgress,
    kBlobDone,
    kBlobExists,  // already in the store, skipped
  } kind;
  Digest blob;
  uint64_t done = 0;
  int64_t total = -1;
  // kResolved: every blob of the image (config first) with its size.
  const std::vector<Descriptor>* blobs = nullptr;
};
using PullProgressFn = std::function<void(const PullEvent&)>;

struct FetchOptions {
  std::optional<oci::Platform> platform;  // default: oci::host_platform()
  AuthSources auth;                  // where credentials come from
  bool tls_verify = true;
  std::string cert_dir;                  // instead of the per-host certs.d directories
  std::chrono::milliseconds timeout{0};  // whole pull, from the call; 0: none
  // An absolute bound set by the caller (e.g. a task's image_pull_timeout
  // counted from when the task started); the earlier of the two applies.
  std::optional<Clock::time_point> deadline;
  std::chrono::milliseconds activity_timeout{0};  // no bytes for this long: retry; 0: none
  bool retry_stalled = true;                      // false: a stall fails the pull (RegistryOptions)
  std::string activity_timeout_name = "the progress timeout";  // for the error
  int parallel = 4;                               // blobs fetched at once
  // Called from the fetching threads, one call at a time.
  PullProgressFn progress;
};

struct FetchedImage {
  Digest manifest_digest;
  std::string manifest;  // raw bytes, as stored
  std::string media_type;
  std::string config;  // raw bytes of the config blob
  Descriptor config_descriptor;
  std::vector<Descriptor> layers;
  std::optional<Digest> index_digest;  // when the reference named an index
  oci::Platform platform;              // asked for (an index chose by it)
};

Result<FetchedImage> fetch_image(const Reference& ref, const FetchOptions& options, const BlobStore& store);

}  // namespace husk::image
