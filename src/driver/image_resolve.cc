// Task images: local directories or the image store (see image_resolve.h).
#include "driver/image_resolve.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common/text.h"
#include "driver/bundle_files.h"
#include "driver/husk_process.h"
#include "driver/image_dir.h"
#include "image/import.h"
#include "image/pull.h"
#include "image/pull_progress.h"
#include "image/store.h"

namespace husk::driver {

namespace {

// The credentials a pull uses when the task has none: the plugin's helper
// answers for every registry (podman's auth.helper).
Result<std::optional<image::Credentials>> pull_credentials(const std::string& ref, const PullOptions& p) {
  if (p.credentials) return p.credentials;
  if (p.auth_helper.empty()) return std::optional<image::Credentials>();
  image::Reference r = TRY(image::parse_reference(ref));
  return TRY_CTX(image::credential_helper_get(p.auth_helper, r.registry, std::chrono::seconds(10)), "auth.helper \"",
                 p.auth_helper, "\"");
}

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
  if (auto c = TRY(pull_credentials(ref, p))) req.fetch.auth.explicit_creds = std::move(*c);
  return image::pull_image(store, req);
}

// husk-image ARGS... for a rootless driver: its stdout, or the error it
// printed (its last "husk-image: " line, without the prefix).
// Its warnings go to `warnings` (for task events).
Result<std::string> run_husk_image(std::vector<std::string> args, const std::string& stdin_data, int timeout_ms,
                                   std::vector<std::string>& warnings,
                                   const std::function<void(const std::string&)>& on_line = {},
                                   const std::function<void()>& on_idle = {}) {
  args.insert(args.begin(), husk_image_binary());
  std::string why;
  constexpr std::string_view kWarning = "husk-image: warning: ";
  auto line = [&](const std::string& l) {
    if (l.starts_with(kWarning))
      warnings.push_back(l.substr(kWarning.size()));
    else if (l.starts_with("husk-image: "))
      why = l.substr(12);
    if (on_line) on_line(l);
  };
  Captured c = TRY_CTX(run_captured(args, stdin_data, timeout_ms, {line, on_idle}), "run ", args[0]);
  if (c.timed_out)
    return fail_errno(ETIMEDOUT, "husk-image ", args[1], " did not finish within ", timeout_ms / 1000, " s");
  if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
    return fail_msg(why.empty() ? cat("husk-image ", args[1], ": ", describe_wait_status(c.status)) : why);
  return c.out;
}

struct ChildPull {
  bool fetched = false;
  unsigned unpacked = 0, reused = 0;
  std::string image_id, name;
  std::vector<std::string> warnings;
};

// pull(), for a rootless driver: `husk-image pull --policy missing` (the
// same rules: the store's image unless force) with the same options.
Result<ChildPull> pull_in_child(const std::string& ref, const ImageOptions& options) {
  const PullOptions& p = options.pull;
  std::vector<std::string> args = {"pull", "--root", options.store_root, "--platform", options.platform.str()};
  args.insert(args.end(), {"--progress", "summary", "--policy", p.force ? "always" : "missing"});
  args.insert(args.end(), {"--timeout", cat(p.timeout_ms, "ms")});
  if (!p.tls_verify) args.push_back("--tls-verify=false");
  if (!p.auth_file.empty()) args.insert(args.end(), {"--authfile", p.auth_file});
  if (p.auth_soft_fail) args.push_back("--auth-soft-fail");
  if (p.activity_timeout_ms > 0)
    args.insert(args.end(), {p.retry_stalled ? "--progress-timeout" : "--activity-timeout",
                             cat(p.activity_timeout_ms, "ms"), "--activity-timeout-name", p.activity_timeout_name});
  std::string creds_text;
  if (auto creds = TRY(pull_credentials(ref, p))) {
    // On stdin: a command line is readable by every user of the host. An
    // identity token goes as docker's credential helpers give one: the
    // user name "<token>".
    creds_text = creds->identity_token.empty() ? creds->username + ":" + creds->password
                                               : std::string(image::kIdentityTokenUser) + ":" + creds->identity_token;
    args.insert(args.end(), {"--creds-stdin", "--creds-source", creds->source});
  }
  args.push_back(ref);
  ChildPull out;
  std::string latest;  // the child's last progress summary
  image::ReportThrottle throttle{kPullProgressInterval};
  auto report = [&] {
    if (options.pull_progress && !latest.empty() && throttle.due(image::Clock::now())) options.pull_progress(latest);
  };
  auto on_line = [&](const std::string& l) {
    if (l.starts_with("progress: ")) {
      latest = l.substr(10);
      report();
    } else if (l.starts_with("pulled: ")) {
      char how[16] = {}, id[80] = {}, name[1024] = {};
      if (sscanf(l.c_str() + 8, "%15s %u %u %79s %1023s", how, &out.unpacked, &out.reused, id, name) == 5) {
        out.fetched = std::string_view(how) == "fetched";
        out.image_id = id;
        out.name = name;
      }
    }
  };
  // The child bounds the transfer itself; the margin is for unpacking.
  int bound = p.timeout_ms > 0 ? static_cast<int>(std::min<int64_t>(p.timeout_ms + 10 * 60 * 1000, INT32_MAX)) : -1;
  TRYV(run_husk_image(args, creds_text, bound, out.warnings, on_line, report));
  if (out.image_id.empty()) return fail_msg("husk-image pull did not say which image it stored");
  return out;
}

}  // namespace

Result<std::string> image_store_option(const Value& cfg) {
  // Not TRY: GCC 12 takes the moved-from string for uninitialized here.
  auto root = read_string(cfg, "image_store", "");
  if (!root) return fail(std::move(root.error()));
  if (root->empty()) return image::Store::default_root();
  if (!root->starts_with('/')) return fail_msg("image_store: \"", *root, "\" is not an absolute path");
  return clean_path(*root);
}

namespace {

// What a task takes of an image of the store: its config, layers and id.
Result<> take_store_image(const image::Store& store, const image::ImageRecord& rec, ResolvedImage& out) {
  out.config = TRY(store.config(rec));
  out.layers = store.layer_dirs(rec);
  out.image_id = rec.id;
  return {};
}

// The task event's words for a pull: what came, or that nothing had to.
std::string pulled_text(bool fetched, const std::string& name, size_t layers, size_t unpacked, size_t reused) {
  return fetched ? cat("pulled ", name, " (", layers, " layers, ", unpacked, " unpacked, ", reused,
                       " shared with other images)")
                 : cat("image ", name, " is in the store");
}

// A rootless driver's store image: unpacked by a husk-image child, then
// read here (lookups and leases are files; nothing forks).
Result<ResolvedImage> resolve_rootless(const std::string& ref, const std::optional<image::ImageSource>& src,
                                       const ImageOptions& options, const std::string& field) {
  auto named = [&](const Error& e) { return fail_msg(field, ": \"", ref, "\": ", e.str()); };
  ResolvedImage out;
  std::string image_id;
  if (!src) {
    auto pulled = pull_in_child(ref, options);
    if (!pulled) return named(pulled.error());
    image_id = pulled->image_id;
    out.pulled = pulled_text(pulled->fetched, pulled->name, pulled->unpacked + pulled->reused, pulled->unpacked,
                              pulled->reused);
    out.warnings = std::move(pulled->warnings);
  } else {
    auto id = run_husk_image({"import", "--root", options.store_root, "--platform", options.platform.str(), ref, ref},
                             "", -1, out.warnings);
    if (!id) return named(id.error());
    image_id = rtrim(*id);
    out.source_path = src->path;
  }
  auto store = image::Store::open(options.store_root);
  if (!store) return named(std::move(store.error()).with_context("open the image store"));
  auto rec = store->lookup(image_id);
  if (!rec) return named(rec.error());
  if (auto taken = take_store_image(*store, *rec, out); !taken) return named(taken.error());
  out.uid_map = store->id_map().uids;
  out.gid_map = store->id_map().gids;
  return out;
}

}  // namespace

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
  if (geteuid() != 0) return resolve_rootless(ref, src, options, field);
  auto store = image::Store::open(options.store_root);
  if (!store) return named(std::move(store.error()).with_context("open the image store"));
  if (!src) {
    auto pulled = pull(*store, ref, options);
    if (!pulled) return named(pulled.error());
    if (auto taken = take_store_image(*store, pulled->image, out); !taken) return named(taken.error());
    out.pulled = pulled_text(pulled->fetched, pulled->name, pulled->image.layer_blobs.size(),
                              pulled->stats.layers_unpacked, pulled->stats.layers_reused);
    out.warnings = std::move(pulled->stats.warnings);
    return out;
  }
  image::CommitStats stats;
  auto rec = image::import_image(*store, *src, ref, options.platform, &stats);
  out.warnings = std::move(stats.warnings);
  if (!rec) return named(rec.error());
  if (auto taken = take_store_image(*store, *rec, out); !taken) return named(taken.error());
  out.source_path = src->path;
  return out;
}

std::string id_map_text(const std::vector<oci::IdMapping>& maps) {
  std::string s;
  for (const auto& m : maps) s += cat(s.empty() ? "" : ",", m.container_id, ":", m.host_id, ":", m.size);
  return s;
}

Result<> apply_store_id_map(oci::Spec& spec, const ResolvedImage& image, const std::string& field,
                            const std::string& mode) {
  if (image.uid_map.empty()) return {};
  if (!mode.empty() && mode != "host")
    return fail_msg(field, ": \"", mode, "\": a rootless driver runs an image of its store in a user namespace mapped ",
                    "as the store's layers are (uids ", id_map_text(image.uid_map), ", gids ",
                    id_map_text(image.gid_map), "), so it cannot join or make another (only \"host\")");
  set_namespace(spec, oci::NamespaceType::User, true);
  if (!spec.linux) spec.linux.emplace();
  spec.linux->uid_mappings = image.uid_map;
  spec.linux->gid_mappings = image.gid_map;
  return {};
}

}  // namespace husk::driver
