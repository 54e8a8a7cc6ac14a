// Task images: local directories or the image store (see image_resolve.h).
#include "driver/image_resolve.h"

#include "driver/image_dir.h"
#include "image/import.h"
#include "image/store.h"

namespace husk::driver {

Result<ResolvedImage> resolve_image(const std::string& ref, const ImageOptions& options, const std::string& field) {
  ResolvedImage out;
  auto src = TRY(image::parse_image_source(ref, field));
  if (!src) {
    out.layers.push_back(TRY(resolve_image_dir(ref, field)));
    out.source_path = out.layers[0];
    return out;
  }
  // The field leads the message itself (not only its context): the task
  // event Nomad shows is the one line.
  auto named = [&](const Error& e) { return fail_msg(field, ": \"", ref, "\": ", e.str()); };
  auto store = image::Store::open(options.store_root);
  if (!store) return named(std::move(store.error()).with_context("open the image store"));
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
