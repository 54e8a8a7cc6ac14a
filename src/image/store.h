// The image store: images made of blobs (BlobStore) and unpacked layers.
//
//   <root>/blobs/sha256/<hex>   manifests, configs, layer blobs (blobs.h)
//   <root>/layers/<hex>/        a layer unpacked, named by its diff_id; made
//                               in <root>/layers/.tmp-<hex>-<pid> and renamed
//                               into place, so only complete ones are there
//   <root>/images/<id>          an image record (id = config digest hex),
//                               key=value lines, written atomically
//   <root>/leases/<task>        the id of the image a task runs
//   <root>/locks/               flocks: store.lock (records, leases, GC),
//                               layer-<hex>.lock (one unpacker per diff_id)
//   <root>/idmap                a rootless store's id map (store_userns.h);
//                               none: the layers hold the host's ids
//
// commit_image() is where a pull or an import ends: the manifest, config
// and layer blobs are in the BlobStore, and it makes them an image.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "image/blobs.h"
#include "image/store_userns.h"
#include "image/unpack.h"
#include "oci/image.h"

namespace husk::image {

struct ImageRecord {
  std::string id;  // config digest hex
  std::vector<std::string> names;
  Digest manifest, config;
  std::vector<Digest> diff_ids;  // bottom first
  std::vector<Digest> layer_blobs;
  uint64_t size = 0;      // blobs' bytes
  std::string created;    // from the config
  int64_t last_used = 0;  // unix seconds: commit, or a lease taken
};

struct CommitStats {
  unsigned layers_unpacked = 0, layers_reused = 0;
  // What the user should hear about (a rootless store's skipped device nodes).
  std::vector<std::string> warnings;
};

struct GcStats {
  unsigned images = 0, layers = 0, blobs = 0;
};

class Store {
 public:
  // Root default: $HUSK_IMAGE_STORE when set (absolute), else
  // /var/lib/husk/images for root, $XDG_DATA_HOME/husk/images
  // (~/.local/share/husk/images) otherwise.
  static std::string default_root();
  // As an unprivileged user the store is a rootless one (store_userns.h):
  // the caller's map is made first (an error, and nothing created, without
  // a sub-id range or the helpers), then compared with the one the store
  // recorded; a store is never used with a map it was not unpacked with.
  static Result<Store> open(const std::string& root, UnpackOptions unpack = {});

  const std::string& root() const { return root_; }
  const BlobStore& blobs() const { return blobs_; }
  const StoreIdMap& id_map() const { return idmap_; }

  // `manifest_digest` names an image manifest, or an index from which the
  // manifest for `platform` is taken (that manifest must be in the store
  // too). Unpacks missing layers (each diff_id once, also across processes)
  // and records the image under `name` (taken from any other image).
  Result<ImageRecord> commit_image(const std::string& name, const Digest& manifest_digest,
                                   const oci::Platform& platform, CommitStats* stats = nullptr);

  // By name, by id, or by a unique id prefix of at least 12 digits.
  Result<ImageRecord> lookup(const std::string& name_or_id) const;
  Result<std::vector<ImageRecord>> list() const;
  Result<oci::ImageConfig> config(const ImageRecord& image) const;
  // The unpacked layers, top first (overlayfs lowerdir order).
  std::vector<std::string> layer_dirs(const ImageRecord& image) const;
  // Remove an image's record; refused while a task holds a lease on it.
  // Its blobs and layers go at the next gc().
  Result<> remove(const std::string& name_or_id);

  // A task's hold on an image: GC never removes a leased image. The lease
  // is a file, so it outlives the driver (RecoverTask finds it again).
  Result<> take_lease(const std::string& task_id, const std::string& image_id);
  Result<> release_lease(const std::string& task_id);
  Result<std::optional<std::string>> lease(const std::string& task_id) const;

  // Remove images without a lease unused for longer than `unused_for`
  // seconds, then layers and blobs no image references (blobs only when
  // older than `unused_for` too, so a pull in progress keeps its blobs), and
  // leftover temporary directories of dead unpackers.
  Result<GcStats> gc(int64_t unused_for);

 private:
  Store(std::string root, BlobStore blobs, UnpackOptions unpack, StoreIdMap idmap)
      : root_(std::move(root)), blobs_(std::move(blobs)), unpack_(std::move(unpack)), idmap_(std::move(idmap)) {}
  Result<UniqueFd> store_lock() const;
  Result<> ensure_layer(const Digest& blob, const Digest& diff_id, CommitStats* stats);
  Result<std::vector<ImageRecord>> list_locked() const;
  Result<> write_record(const ImageRecord& r) const;
  // Layer trees: a rootless store's files belong to its user namespace.
  Result<> remove_trees(const std::vector<std::string>& paths) const;
  std::string root_;
  BlobStore blobs_;
  UnpackOptions unpack_;
  StoreIdMap idmap_;
};

}  // namespace husk::image
