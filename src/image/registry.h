// A client for one repository of an OCI distribution (docker registry v2)
// registry, over libcurl: the /v2/ ping, authentication from the
// registry's WWW-Authenticate challenge (Bearer tokens from its token
// server, fetched anonymously or with basic credentials and reused per
// scope until they expire; or Basic), manifests by tag or digest checked
// against the digest asked for or Docker-Content-Digest, and blobs streamed
// into the BlobStore with redirects followed and transient failures retried
// with Range requests that resume where the last try stopped.
//
// Time: every request runs under the pull's deadline (a bound on the whole
// pull, across retries and backoff), and optionally an activity timeout
// (no byte for that long aborts the transfer, which is then retried, or
// fails the pull when RegistryOptions::retry_stalled is false).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "image/auth.h"
#include "image/blobs.h"
#include "image/certs.h"
#include "image/manifest_json.h"

namespace husk::image {

using Clock = std::chrono::steady_clock;

// Bytes of one blob so far, of `total` (-1 unknown). Called from the
// transfer; it must be quick.
using BlobProgressFn = std::function<void(const Digest& blob, uint64_t done, int64_t total)>;

struct RegistryOptions {
  // false: HTTPS without certificate checks, falling back to plain HTTP
  // when the registry does not speak TLS (podman's --tls-verify=false).
  bool tls_verify = true;
  Clock::time_point deadline = Clock::time_point::max();
  std::chrono::milliseconds timeout{0};           // what the deadline came from, for messages
  std::chrono::milliseconds activity_timeout{0};  // 0: none
  // A transfer stalled for activity_timeout is retried like other transient
  // failures; false: it fails the pull at once (the docker driver's
  // pull_activity_timeout). `activity_timeout_name` is what errors call it.
  bool retry_stalled = true;
  std::string activity_timeout_name = "the progress timeout";
  std::optional<Credentials> credentials;
  RegistryTls tls;   // extra CAs and a client certificate (certs.d)
  int attempts = 5;  // per request, transient failures only
  // Set by the caller to stop transfers early (a parallel fetch failed).
  std::shared_ptr<std::atomic<bool>> cancel;
};

struct TokenCache;

struct FetchedManifest {
  std::string bytes;
  std::string content_type;
  Digest digest;  // of bytes, checked
};

class RegistryClient {
 public:
  // Pings https://HOST/v2/ (or http:// under tls_verify=false when TLS
  // fails) and learns how the registry wants to be authenticated.
  static Result<RegistryClient> connect(const std::string& host, const std::string& repository,
                                        RegistryOptions options);
  RegistryClient(RegistryClient&&) noexcept;
  RegistryClient& operator=(RegistryClient&&) noexcept;
  ~RegistryClient();

  // `reference` is a tag or "sha256:..."; with a digest the bytes must hash
  // to it. Without, a Docker-Content-Digest header must match the bytes.
  Result<FetchedManifest> manifest(const std::string& reference);

  // Fetches blob `d` into `store` (resuming a partial file an earlier pull
  // left) and commits it: on return it is in the store, verified.
  Result<> fetch_blob(const BlobStore& store, const Descriptor& d, const BlobProgressFn& progress);

  // Another client for the same repository with what connect() learned
  // and the same tokens, for a transfer on another thread. No ping.
  Result<RegistryClient> clone() const;

  const std::string& base_url() const { return base_; }  // "https://host"

 private:
  struct Impl;
  explicit RegistryClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string base_;
};

}  // namespace husk::image
