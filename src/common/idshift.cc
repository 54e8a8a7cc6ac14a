#include "common/idshift.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.h"

namespace husk::idshift {

namespace {

constexpr uint16_t kAclUser = 0x02, kAclGroup = 0x08;
constexpr uint32_t kAclVersion = 2;
constexpr uint32_t kCapRevisionMask = 0xFF000000, kCapRevision2 = 0x02000000, kCapRevision3 = 0x03000000;

uint32_t get32(std::string_view s, size_t at) {
  uint32_t v;
  memcpy(&v, s.data() + at, 4);
  return v;  // little-endian on disk, as on every host husk runs on
}
void put32(std::string& s, size_t at, uint32_t v) { memcpy(s.data() + at, &v, 4); }

// An xattr of the entry `name` in the directory dirfd, without following a
// symlink there: nullopt when it has none.
Result<std::optional<std::string>> get_xattr(const std::string& path, const char* key) {
  char buf[4096];
  ssize_t n = lgetxattr(path.c_str(), key, buf, sizeof buf);
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) return std::optional<std::string>();
    return fail_sys("read ", key, " of ", path);
  }
  return std::optional<std::string>(std::string(buf, static_cast<size_t>(n)));
}

class Shifter {
 public:
  Shifter(uint32_t base, dev_t dev) : base_(base), dev_(dev) {}

  // One entry of dirfd (name "" = dirfd itself, the root), then its
  // children when it is a directory on the same filesystem.
  Result<> entry(int dirfd, const char* name, const std::string& shown, bool is_root) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW | (is_root ? AT_EMPTY_PATH : 0)) < 0)
      return fail_sys("stat ", shown);
    if (st.st_dev != dev_) return {};  // another filesystem mounted here
    result_.inodes++;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd dir = is_root ? TRY(open_at(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
                             : TRY(open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      TRYV(children(dir.get(), shown));
      // The root last: its owner says the whole tree is in the new range.
      return fix(dir.get(), "", shown, st);
    }
    return fix(dirfd, name, shown, st);
  }

  ShiftResult result_;

 private:
  Result<> children(int dirfd, const std::string& shown) {
    int copy = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return fail_sys("dup ", shown);
    DIR* d = fdopendir(copy);
    if (!d) {
      close(copy);
      return fail_sys("read the directory ", shown);
    }
    struct Closer {
      DIR* d;
      ~Closer() { closedir(d); }
    } closer{d};
    errno = 0;
    while (struct dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      TRYV(entry(dirfd, e->d_name, shown + "/" + e->d_name, false));
      errno = 0;
    }
    if (errno != 0) return fail_sys("read the directory ", shown);
    return {};
  }

  Result<> fix(int dirfd, const char* name, const std::string& shown, const struct stat& st) {
    uid_t uid = shift_id(static_cast<uint32_t>(st.st_uid), base_);
    gid_t gid = shift_id(static_cast<uint32_t>(st.st_gid), base_);
    // xattr calls take a path: the entry through the directory's fd.
    std::string path = *name ? cat("/proc/self/fd/", dirfd, "/", name) : cat("/proc/self/fd/", dirfd);
    const bool link = S_ISLNK(st.st_mode);
    if (uid != st.st_uid || gid != st.st_gid) {
      std::optional<std::string> caps;
      if (S_ISREG(st.st_mode)) caps = TRY(get_xattr(path, "security.capability"));
      if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0)
        return fail_sys("chown ", shown, " to ", uid, ":", gid);
      result_.changed++;
      // chown dropped the setuid/setgid bits of a regular file: put them back.
      if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
          fchmodat(dirfd, name, st.st_mode & 07777, 0) < 0)
        return fail_sys("restore the mode ", st.st_mode & 07777, " of ", shown);
      if (caps) {
        auto value = shift_file_caps(*caps, base_);
        if (value && lsetxattr(path.c_str(), "security.capability", value->data(), value->size(), 0) < 0)
          return fail_sys("restore the file capabilities of ", shown);
      }
    }
    if (!link) {
      for (const char* key : {"system.posix_acl_access", "system.posix_acl_default"}) {
        auto acl = TRY(get_xattr(path, key));
        if (!acl) continue;
        auto value = shift_acl(*acl, base_);
        if (value && *value != *acl && lsetxattr(path.c_str(), key, value->data(), value->size(), 0) < 0)
          return fail_sys("shift the ACL ", key, " of ", shown);
      }
    }
    return {};
  }

  uint32_t base_;
  dev_t dev_;
};

}  // namespace

Result<uint32_t> tree_base(uid_t root_uid, gid_t root_gid, const std::string& what) {
  if (root_uid != root_gid || (root_uid & (kRangeSize - 1)) != 0)
    return fail_msg(what, ": the root directory is owned by ", root_uid, ":", root_gid,
                    ", which is not the start of a 64K id range (uid and gid the same multiple of 65536), so "
                    "the range the image is in is unknown");
  return static_cast<uint32_t>(root_uid);
}

std::optional<std::string> map_acl(std::string_view raw, const IdMapFn& uid, const IdMapFn& gid) {
  // struct posix_acl_xattr_header { u32 version; } then entries of
  // { u16 tag; u16 perm; u32 id; }.
  if (raw.size() < 4 || (raw.size() - 4) % 8 != 0 || get32(raw, 0) != kAclVersion) return std::nullopt;
  std::string out(raw);
  for (size_t at = 4; at < out.size(); at += 8) {
    uint16_t tag;
    memcpy(&tag, out.data() + at, 2);
    if (tag == kAclUser) put32(out, at + 4, uid(get32(out, at + 4)));
    if (tag == kAclGroup) put32(out, at + 4, gid(get32(out, at + 4)));
  }
  return out;
}

std::optional<std::string> map_file_caps(std::string_view raw, const IdMapFn& uid) {
  // struct vfs_ns_cap_data { u32 magic_etc; { u32 permitted, inheritable; } data[2]; u32 rootid; }
  // (v2 has no rootid).
  if (raw.size() < 4) return std::nullopt;
  uint32_t revision = get32(raw, 0) & kCapRevisionMask;
  if (revision == kCapRevision2 && raw.size() == 20) return std::string(raw);
  if (revision == kCapRevision3 && raw.size() == 24) {
    std::string out(raw);
    put32(out, 20, uid(get32(raw, 20)));
    return out;
  }
  return std::nullopt;
}

std::optional<std::string> shift_acl(std::string_view raw, uint32_t base) {
  auto to = [base](uint32_t id) { return shift_id(id, base); };
  return map_acl(raw, to, to);
}

std::optional<std::string> shift_file_caps(std::string_view raw, uint32_t base) {
  return map_file_caps(raw, [base](uint32_t id) { return shift_id(id, base); });
}

Result<ShiftResult> shift_tree(const std::string& root, uint32_t base) {
  if ((base & (kRangeSize - 1)) != 0) return fail_msg("shift ", root, ": ", base, " is not a multiple of 65536");
  UniqueFd dir = TRY(open_fd(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st;
  if (fstat(dir.get(), &st) < 0) return fail_sys("stat ", root);
  uint32_t from = TRY(tree_base(st.st_uid, st.st_gid, root));
  ShiftResult none;
  none.from = from;
  if (from == base) return none;
  Shifter s(base, st.st_dev);
  s.result_.from = from;
  TRYV(s.entry(dir.get(), "", root, true));
  return s.result_;
}

}  // namespace husk::idshift
