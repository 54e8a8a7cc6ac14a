// fetch_image: reference -> manifest (through an index for the platform)
// -> config and layers, each blob under its store lock.
#include "image/fetch.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

namespace husk::image {

namespace {

Result<> fetch_locked(RegistryClient& client, const BlobStore& store, const Descriptor& d,
                      std::optional<Clock::time_point> deadline, const PullProgressFn& progress) {
  auto report = [&](PullEvent::Kind k, uint64_t done) {
    if (progress) progress(PullEvent{k, d.digest, done, d.size, nullptr});
  };
  if (store.has(d.digest)) {
    report(PullEvent::kBlobExists, static_cast<uint64_t>(std::max<int64_t>(d.size, 0)));
    return {};
  }
  // Another pull may be fetching it: wait for its lock, then look again.
  UniqueFd lock = deadline ? TRY(store.lock(d.digest, *deadline)) : TRY(store.lock(d.digest));
  if (store.has(d.digest)) {
    report(PullEvent::kBlobExists, static_cast<uint64_t>(std::max<int64_t>(d.size, 0)));
    return {};
  }
  report(PullEvent::kBlobStart, 0);
  TRYV(client.fetch_blob(store, d,
                         [&](const Digest&, uint64_t done, int64_t) { report(PullEvent::kBlobProgress, done); }));
  report(PullEvent::kBlobDone, store.size(d.digest).value_or(0));
  return {};
}

// The blobs, up to `parallel` at a time (podman fetches layers in parallel
// too): workers take the next blob in order, each with its own client (a
// curl handle) sharing the tokens. The first failure cancels the others'
// transfers and is the one reported.
Result<> fetch_parallel(RegistryClient& client, const BlobStore& store, const std::vector<Descriptor>& blobs,
                        int parallel, std::optional<Clock::time_point> deadline, std::atomic<bool>& cancel,
                        const PullProgressFn& progress) {
  size_t workers = std::min<size_t>(static_cast<size_t>(parallel), blobs.size());
  std::vector<RegistryClient> clients;
  for (size_t w = 1; w < workers; ++w) clients.push_back(TRY(client.clone()));
  std::mutex mu;  // progress calls and the first error
  PullProgressFn locked;
  if (progress)
    locked = [&](const PullEvent& e) {
      std::lock_guard g(mu);
      progress(e);
    };
  std::optional<Error> first_error;
  std::atomic<size_t> next{0};
  auto work = [&](RegistryClient& c) {
    for (size_t i; !cancel.load() && (i = next++) < blobs.size();) {
      auto r = fetch_locked(c, store, blobs[i], deadline, locked);
      if (!r) {
        std::lock_guard g(mu);
        if (!first_error) first_error = std::move(r.error());
        cancel.store(true);
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (RegistryClient& c : clients) threads.emplace_back(work, std::ref(c));
  work(client);
  for (std::thread& t : threads) t.join();
  if (first_error) return fail(std::move(*first_error));
  return {};
}

// Media types a manifest's config and layers may have; anything else is
// not an image this store can run (helm charts, signatures, wasm).
Result<> check_image_manifest(const ManifestDoc& m, std::string_view what) {
  const std::string& ct = m.config.media_type;
  if (!ct.empty() && ct != oci::media::kOciConfig && ct != oci::media::kDockerConfig)
    return fail_msg(what, ": config media type \"", ct, "\" is not a container image config");
  return {};
}

}  // namespace

Result<FetchedImage> fetch_image(const Reference& ref, const FetchOptions& o, const BlobStore& store) {
  std::string what = cat("pull ", ref.str());
  RegistryOptions ro;
  ro.tls_verify = o.tls_verify;
  ro.timeout = o.timeout;
  if (o.timeout.count() > 0) ro.deadline = Clock::now() + o.timeout;
  if (o.deadline && *o.deadline < ro.deadline) {
    ro.deadline = *o.deadline;
    ro.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*o.deadline - Clock::now());
  }
  ro.activity_timeout = o.activity_timeout;
  ro.retry_stalled = o.retry_stalled;
  ro.activity_timeout_name = o.activity_timeout_name;
  std::optional<Clock::time_point> deadline;
  if (ro.deadline != Clock::time_point::max()) deadline = ro.deadline;
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  ro.cancel = cancel;
  ro.credentials = TRY_CTX(find_credentials(o.auth, ref.registry, ref.repository), what);
  ro.tls = TRY_CTX(registry_tls(ref.api_host(), o.cert_dir, o.auth.is_root ? "" : o.auth.home), what);

  FetchedImage out;
  out.platform = o.platform.value_or(oci::host_platform());
  RegistryClient client = TRY_CTX(RegistryClient::connect(ref.api_host(), ref.repository, std::move(ro)), what);

  FetchedManifest fm = TRY_CTX(client.manifest(ref.manifest_reference()), what);
  ManifestDoc doc = TRY_CTX(parse_manifest(fm.bytes, fm.content_type, cat("manifest ", fm.digest.str())), what);
  if (doc.kind == ManifestDoc::kIndex) {
    out.index_digest = fm.digest;
    Descriptor chosen = TRY_CTX(select_platform(doc, out.platform, cat("index ", fm.digest.str())), what);
    fm = TRY_CTX(client.manifest(chosen.digest.str()), what);
    doc = TRY_CTX(parse_manifest(fm.bytes, fm.content_type, cat("manifest ", fm.digest.str())), what);
    if (doc.kind != ManifestDoc::kImage)
      return fail_msg(what, ": index ", out.index_digest->str(), " entry ", chosen.digest.str(),
                      " is an index again, not an image manifest");
  }
  TRYV_CTX(check_image_manifest(doc, cat("manifest ", fm.digest.str())), what);

  std::vector<Descriptor> blobs;
  blobs.push_back(doc.config);
  blobs.insert(blobs.end(), doc.layers.begin(), doc.layers.end());
  if (o.progress) o.progress(PullEvent{PullEvent::kResolved, fm.digest, 0, -1, &blobs});
  TRYV_CTX(fetch_parallel(client, store, blobs, std::max(1, o.parallel), deadline, *cancel, o.progress), what);
  // The manifest last: its presence says the image's blobs are all there.
  {
    // Under its lock like any blob: a concurrent pull stores the same bytes.
    UniqueFd lock = deadline ? TRY_CTX(store.lock(fm.digest, *deadline), what) : TRY_CTX(store.lock(fm.digest), what);
    TRYV_CTX(store.put(fm.digest, fm.bytes), what, ": store manifest");
  }

  out.manifest_digest = fm.digest;
  out.manifest = std::move(fm.bytes);
  out.media_type = doc.media_type;
  out.config_descriptor = doc.config;
  out.layers = doc.layers;
  out.config = TRY_CTX(store.read(doc.config.digest), what, ": read config");
  return out;
}

}  // namespace husk::image
