#include "image/pull.h"

namespace husk::image {

Result<PullResult> pull_image(Store& store, const PullRequest& req) {
  Reference ref = TRY(parse_reference(req.reference));
  PullResult out;
  out.name = ref.str();
  if (!req.force) {
    // A digest names exact content; a tag is taken as the store has it, as
    // podman's "missing" pull policy does.
    if (auto have = store.lookup(out.name)) {
      auto cfg = store.config(*have);
      if (cfg && cfg->platform.os == req.platform.os && cfg->platform.architecture == req.platform.architecture) {
        out.image = std::move(*have);
        return out;
      }
    }
  }
  FetchOptions fo = req.fetch;
  fo.platform = req.platform;
  auto fetched = fetch_image(ref, fo, store.blobs());
  if (!fetched && req.auth_soft_fail && fo.auth.explicit_creds) {
    // Only a refusal of the credentials is softened; the anonymous try
    // reports its own error if it fails too.
    FetchOptions anon = fo;
    anon.auth.explicit_creds.reset();
    auto retry = fetch_image(ref, anon, store.blobs());
    if (!retry)
      return fail(std::move(fetched.error())
                      .with_context(cat("pull ", out.name, " (also without credentials: ", retry.error().str(), ")")));
    fetched = std::move(retry);
  }
  if (!fetched) return fail(std::move(fetched.error()).with_context(cat("pull ", out.name)));
  out.image = TRY_CTX(store.commit_image(out.name, fetched->manifest_digest, req.platform, &out.stats),
                      "store ", out.name);
  out.fetched = true;
  return out;
}

}  // namespace husk::image
