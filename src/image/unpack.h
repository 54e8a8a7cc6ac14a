// Unpacking one layer blob (tar, tar+gzip or tar+zstd, told apart by their
// magic bytes) into a fresh directory, safely: every path is resolved under
// the layer root with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so no
// entry, symlink or hardlink the layer makes can put a byte outside it, and
// no symlink the layer made is ever followed. Docker/OCI whiteouts become
// overlayfs ones: `.wh.NAME` a 0:0 character device NAME, `.wh..wh..opq` the
// opaque xattr on its directory. Ownership (shifted through an id mapping
// for rootless stores), modes, mtimes, xattrs, device nodes and hardlinks
// are kept. The uncompressed stream is hashed on the way and must equal the
// config's diff_id. In a rootless store's user namespace (`rootless`) the
// kernel maps the owners, device nodes are skipped (no user namespace may
// make them; containers/storage skips them too) and listed in the stats,
// and only user.* xattrs and file capabilities are kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "image/digest.h"

namespace husk::image {

// One range of a uid or gid mapping: layer ids [inner, inner+count) are
// written as [outer, outer+count) on disk.
struct IdRange {
  uint32_t inner = 0, outer = 0, count = 0;
};

struct UnpackOptions {
  // Empty: ids as the layer has them. Otherwise an id outside every range
  // is an error (the store cannot represent it).
  std::vector<IdRange> uid_map, gid_map;
  // overlayfs mounted with userxattr (rootless): opaque dirs get
  // user.overlay.opaque instead of trusted.overlay.opaque.
  bool userxattr = false;
  // Unpacking inside a rootless store's user namespace (store_userns.h).
  bool rootless = false;
};

struct UnpackStats {
  uint64_t entries = 0;
  uint64_t tar_bytes = 0;  // the uncompressed stream's length
  // rootless: the device nodes not made (a 0:0 character device, an
  // overlay whiteout, is made: user namespaces may).
  std::vector<std::string> skipped_devices;
};

// Unpack `blob_path` into `dest`, an existing empty directory. On error
// `dest` holds a partial tree: the caller (the store) unpacks into a
// temporary directory and removes it.
Result<UnpackStats> unpack_layer(const std::string& blob_path, const std::string& dest, const Digest& diff_id,
                                 const UnpackOptions& opts);

// Remove a directory tree without following symlinks in it (rm -rf that
// stays on the tree's own filesystem entries). Missing is fine.
Result<> remove_tree(const std::string& path);

}  // namespace husk::image
