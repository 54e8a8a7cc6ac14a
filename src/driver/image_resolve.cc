// Task images: local directories or the image store (see image_resolve.h).
#include "driver/image_resolve.h"

#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "driver/bundle_files.h"
#include "driver/image_dir.h"
#include "image/import.h"
#include "image/pull.h"
#include "image/pull_progress.h"
#include "image/store.h"

namespace husk::driver {

namespace {

Result<image::PullResult> pull(image::Store& store, const std::string& ref, const ImageOptions& options) {
  const PullOptions& p = options.pull;
  image::PullRequest req;
  req.reference = ref;
  req.platform = options.platform;
  req.force = p.force;
  req.auth_soft_fail = p.auth_soft_fail;
  req.fetch.auth = image::AuthSources::from_environment();
  req.fetch.auth.authfile = p.auth_file;
  req.fetch.tls_verify = p.tls_verify;
  req.fetch.timeout = std::chrono::milliseconds(p.timeout_ms);
  req.fetch.activity_timeout = std::chrono::milliseconds(p.activity_timeout_ms);
  req.fetch.retry_stalled = p.retry_stalled;
  req.fetch.activity_timeout_name = p.activity_timeout_name;
  // Progress reports: on the pull's events, and from a ticker while none
  // come (a stalled transfer sends none, and Nomad's docker driver still
  // reports every 10 s), never closer together than kPullProgressInterval.
  struct Reporter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    image::PullProgress progress;
    image::ReportThrottle throttle{kPullProgressInterval};
    std::function<void(const std::string&)> sink;
    void report_if_due() {  // with mu held
      auto now = image::Clock::now();
      if (progress.resolved() && throttle.due(now)) sink(progress.summary(now));
    }
  };
  std::shared_ptr<Reporter> reporter;
  std::thread ticker;
  if (options.pull_progress) {
    reporter = std::make_shared<Reporter>();
    reporter->sink = options.pull_progress;
    req.fetch.progress = [r = reporter](const image::PullEvent& e) {
      std::lock_guard<std::mutex> l(r->mu);
      r->progress.on_event(e);
      r->report_if_due();
    };
    ticker = std::thread([r = reporter] {
      std::unique_lock<std::mutex> l(r->mu);
      while (!r->cv.wait_for(l, std::chrono::seconds(1), [&] { return r->done; })) r->report_if_due();
    });
  }
  struct StopTicker {
    std::shared_ptr<Reporter>& r;
    std::thread& t;
    ~StopTicker() {
      if (!t.joinable()) return;
      {
        std::lock_guard<std::mutex> l(r->mu);
        r->done = true;
      }
      r->cv.notify_all();
      t.join();
    }
  } stop_ticker{reporter, ticker};
  if (p.credentials) {
    req.fetch.auth.explicit_creds = p.credentials;
  } else if (!p.auth_helper.empty()) {
    // The plugin's helper answers for every registry (podman's auth.helper).
    image::Reference r = TRY(image::parse_reference(ref));
    auto c = TRY_CTX(image::credential_helper_get(p.auth_helper, r.registry, std::chrono::seconds(10)),
                     "auth.helper \"", p.auth_helper, "\"");
    if (c) req.fetch.auth.explicit_creds = std::move(*c);
  }
  return image::pull_image(store, req);
}

}  // namespace

Result<std::string> image_store_option(const Value& cfg) {
  std::string root = TRY(read_string(cfg, "image_store", ""));
  if (root.empty()) return image::Store::default_root();
  if (root[0] != '/') return fail_msg("image_store: \"", root, "\" is not an absolute path");
  return clean_path(root);
}

Result<ResolvedImage> resolve_image(const std::string& ref, const ImageOptions& options, const std::string& field) {
  ResolvedImage out;
  auto src = TRY(image::parse_image_source(ref, field));
  // The field leads the message itself (not only its context): the task
  // event Nomad shows is the one line.
  auto named = [&](const Error& e) { return fail_msg(field, ": \"", ref, "\": ", e.str()); };
  if (!src && (ref.empty() || ref[0] == '/')) {
    out.layers.push_back(TRY(resolve_image_dir(ref, field)));
    out.source_path = out.layers[0];
    return out;
  }
  // A rootless driver's task roots would be overlays its tasks mount in
  // their own user namespaces (run.husk.rootfs.overlay), and its store's
  // unpacks would fork in this threaded process: neither is done yet.
  if (geteuid() != 0)
    return fail_msg(field, ": \"", ref, "\": a driver that does not run as root takes only local root file system "
                    "directories (its image store and task overlays need root here)");
  auto store = image::Store::open(options.store_root);
  if (!store) return named(std::move(store.error()).with_context("open the image store"));
  if (!src) {
    auto pulled = pull(*store, ref, options);
    if (!pulled) return named(pulled.error());
    auto config = store->config(pulled->image);
    if (!config) return named(config.error());
    out.config = std::move(*config);
    out.layers = store->layer_dirs(pulled->image);
    out.image_id = pulled->image.id;
    out.pulled = pulled->fetched ? cat("pulled ", pulled->name, " (", pulled->image.layer_blobs.size(), " layers, ",
                                       pulled->stats.layers_unpacked, " unpacked, ", pulled->stats.layers_reused,
                                       " shared with other images)")
                                 : cat("image ", pulled->name, " is in the store");
    return out;
  }
  auto rec = image::import_image(*store, *src, ref, options.platform);
  if (!rec) return named(rec.error());
  auto config = store->config(*rec);
  if (!config) return named(config.error());
  out.config = std::move(*config);
  out.layers = store->layer_dirs(*rec);
  out.image_id = rec->id;
  out.source_path = src->path;
  return out;
}

}  // namespace husk::driver
