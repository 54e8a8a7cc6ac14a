// A rootless store's user namespace. An unprivileged user cannot give files
// other owners, so a store of theirs keeps a layer's owners as the ids of a
// user namespace mapped like podman's: 0 is the user, 1..N the first range
// of /etc/subuid (/etc/subgid) for them (N at most 65536), written by
// newuidmap/newgidmap. A layer's uid 1000 is then subuid_start+999 on disk,
// and a container with the same map sees it as 1000 again. The store
// records its map (<root>/idmap) and is not used with another one. The
// work on the layers' files (unpack, removal) runs in a forked child in
// such a namespace; the parent writes the child's maps and reads its
// result back over a pipe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::image {

struct StoreIdMap {
  // Both empty: the host's ids as they are (a store written by root).
  std::vector<oci::IdMapping> uids, gids;
  bool rootless() const { return !uids.empty(); }
  // Layer ids [0, count) have an owner on disk (the smaller of the two maps).
  uint32_t count() const;
};

// The map for a store written by the caller: none for root; otherwise the
// caller's own ids and their first sub-id ranges. Without a range, or
// without newuidmap/newgidmap in PATH, the error names what is missing.
Result<StoreIdMap> caller_store_id_map();

// <root>/idmap's text ("uid CONTAINER HOST SIZE" and "gid ..." lines; empty
// for none) and back.
std::string format_store_id_map(const StoreIdMap& map);
Result<StoreIdMap> parse_store_id_map(std::string_view text, const std::string& path);

// Run `work` in a forked child inside a new user namespace with `map`, and
// return what it returned (its error with its errno and context). The
// child has nothing but `work` to do and leaves with _exit.
Result<std::string> run_in_store_userns(const StoreIdMap& map, const std::function<Result<std::string>()>& work);

}  // namespace husk::image
