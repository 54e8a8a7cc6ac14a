// Shifting a directory tree's ownership into a user namespace's 64K id
// range on disk, as systemd-nspawn --private-users-ownership=chown does: every
// inode's uid and gid keep their offset in their 64K range and take the new
// range's base (base | id & 0xFFFF, nspawn's arithmetic, which makes a rerun
// after an interruption converge). The root directory's owner records the
// range the tree is in, so a later shift to another range starts from there
// instead of shifting twice; the root is changed last. chown(2) clears
// setuid/setgid bits and security.capability: both are put back, and the
// uids in POSIX ACLs and in a v3 file capability (its root id) are shifted
// too.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace husk::idshift {

inline constexpr uint32_t kRangeSize = 0x10000;

// id moved into the 64K range starting at base (base is 64K-aligned).
constexpr uint32_t shift_id(uint32_t id, uint32_t base) { return base | (id & (kRangeSize - 1)); }

// The range a tree is in, read from its root directory's owner: uid and gid
// must be the same 64K-aligned number. Errors name `what` (the image).
Result<uint32_t> tree_base(uid_t root_uid, gid_t root_gid, const std::string& what);

// An id as a user namespace's map moves it.
using IdMapFn = std::function<uint32_t(uint32_t)>;

// A "system.posix_acl_access"/"system.posix_acl_default" value with its
// named user entries moved by uid and its named group entries by gid;
// nullopt when it is not an ACL this code knows (left as it is).
std::optional<std::string> map_acl(std::string_view raw, const IdMapFn& uid, const IdMapFn& gid);
// A "security.capability" value as it is put back after chown: a v3 value's
// root id moved by uid, a v2 value as it was; nullopt when unknown.
std::optional<std::string> map_file_caps(std::string_view raw, const IdMapFn& uid);

// The same, every id shifted to the 64K range at base.
std::optional<std::string> shift_acl(std::string_view raw, uint32_t base);
std::optional<std::string> shift_file_caps(std::string_view raw, uint32_t base);

struct ShiftResult {
  uint32_t from = 0;       // the range the tree was in
  uint64_t inodes = 0;     // entries looked at
  uint64_t changed = 0;    // entries whose owner changed
};

// Shift the tree at root (a directory; other filesystems mounted inside are
// left alone) to the range at base. Nothing happens when the root says it is
// there already.
Result<ShiftResult> shift_tree(const std::string& root, uint32_t base);

}  // namespace husk::idshift
