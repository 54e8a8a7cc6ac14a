// Safe layer unpacking (see unpack.h). Two libarchive readers in a chain:
// the outer one only decompresses (gzip, zstd or none, by magic, "raw"
// format), the inner one reads tar from the outer one's bytes through a
// callback that also hashes them, so the diff_id is checked on exactly the
// stream that was unpacked. Files are made with *at() calls on directory
// fds that were opened with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; libarchive's
// own disk writer is not used (its checks are path-string based).
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string_view>

#include "common/fd.h"

namespace husk::image {

namespace {

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

// The outer reader's decompressed bytes, hashed as the inner reader pulls them.
struct Stream {
  archive* outer = nullptr;
  Sha256 hash;
  uint64_t bytes = 0;
};

la_ssize_t pull(archive* inner, void* client, const void** buf) {
  auto* s = static_cast<Stream*>(client);
  size_t size = 0;
  la_int64_t offset = 0;
  int r = archive_read_data_block(s->outer, buf, &size, &offset);
  if (r == ARCHIVE_EOF) return 0;
  if (r < ARCHIVE_WARN) {
    archive_set_error(inner, archive_errno(s->outer), "%s", archive_error_string(s->outer));
    return -1;
  }
  s->hash.update(std::string_view(static_cast<const char*>(*buf), size));
  s->bytes += size;
  return static_cast<la_ssize_t>(size);
}

Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
  if (fd < 0) return fail_sys("open ", rel);
  return UniqueFd(fd);
}

// An entry's path as components, refusing what would leave the root.
Result<std::vector<std::string>> components(std::string_view path, std::string_view what) {
  if (path.starts_with("/")) return fail_msg(what, " \"", path, "\": absolute path");
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); i++) {
    if (i < path.size() && path[i] != '/') continue;
    std::string_view c = path.substr(start, i - start);
    start = i + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") return fail_msg(what, " \"", path, "\": \"..\" component");
    out.emplace_back(c);
  }
  return out;
}

std::string join(const std::vector<std::string>& comps, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i++) {
    if (i) out += '/';
    out += comps[i];
  }
  return out.empty() ? "." : out;
}

// The directory holding comps[0..n), made (0755, root-owned as tar does for
// implied parents) where the layer did not list it. A symlink on the way is
// refused: it was made by the layer (the root starts empty).
Result<UniqueFd> open_parent(int root, const std::vector<std::string>& comps, size_t n, const std::string& entry,
                             bool create) {
  UniqueFd cur = TRY(open_beneath(root, ".", O_PATH | O_DIRECTORY));
  for (size_t i = 0; i < n; i++) {
    auto next = open_beneath(cur.get(), comps[i], O_PATH | O_DIRECTORY);
    if (!next && next.error().code() == ENOENT && create) {
      if (mkdirat(cur.get(), comps[i].c_str(), 0755) < 0 && errno != EEXIST)
        return fail_sys("entry \"", entry, "\": create directory ", join(comps, i + 1));
      next = open_beneath(cur.get(), comps[i], O_PATH | O_DIRECTORY);
    }
    if (!next) {
      int e = next.error().code();
      if (e == ELOOP) return fail_msg("entry \"", entry, "\": ", join(comps, i + 1), " is a symlink; not followed");
      if (e == ENOTDIR) return fail_msg("entry \"", entry, "\": ", join(comps, i + 1), " is not a directory");
      return fail(std::move(next.error()).with_context(cat("entry \"", entry, "\"")));
    }
    cur = std::move(*next);
  }
  return cur;
}

Result<> remove_at(int dirfd, const std::string& name);

Result<> remove_children(int dirfd) {
  int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return fail_sys("dup directory fd");
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    return fail_sys("read directory");
  }
  std::vector<std::string> names;
  while (dirent* de = readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  closedir(d);
  for (const auto& n : names) TRYV(remove_at(dirfd, n));
  return {};
}

Result<> remove_at(int dirfd, const std::string& name) {
  struct stat st;
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return {};
    return fail_sys("stat ", name);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name.c_str(), 0) < 0 && errno != ENOENT) return fail_sys("remove ", name);
    return {};
  }
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail_sys("open ", name);
  UniqueFd dir(fd);
  // A directory the layer made 0500 still has to be emptied.
  if (!(st.st_mode & S_IWUSR)) fchmod(dir.get(), st.st_mode | S_IRWXU);
  TRYV_CTX(remove_children(dir.get()), "remove ", name);
  if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) return fail_sys("remove ", name);
  return {};
}

Result<uint32_t> map_id(uint32_t id, const std::vector<IdRange>& map, const char* kind, const std::string& entry) {
  if (map.empty()) return id;
  for (const auto& r : map)
    if (id >= r.inner && id - r.inner < r.count) return r.outer + (id - r.inner);
  return fail_msg("entry \"", entry, "\": ", kind, " ", id, " is outside the store's id mapping");
}

// Overlay xattrs from a layer would steer overlayfs (redirects, metacopy);
// they are the store's to set, never the layer's.
bool is_overlay_xattr(std::string_view name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

// What a rootless store keeps: user.* and file capabilities (the kernel
// writes them for the namespace's root). trusted.* needs the host's
// CAP_SYS_ADMIN, and a security label is the host's to give; podman drops
// both too.
bool rootless_keeps(std::string_view name) {
  return name.starts_with("user.") || name == "security.capability";
}

Result<> set_xattrs(int fd, archive_entry* e, const std::string& entry, const UnpackOptions& opts) {
  const bool userxattr = opts.userxattr;
  const char* name;
  const void* value;
  size_t size;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (is_overlay_xattr(name)) continue;
    if (opts.rootless && !rootless_keeps(name)) continue;
    if (fsetxattr(fd, name, value, size, 0) < 0) {
      // A rootless store can only write user.* (and file capabilities
      // inside its user namespace); the rest is dropped, as podman does.
      if (userxattr && (errno == EPERM || errno == ENOTSUP)) continue;
      return fail_sys("entry \"", entry, "\": set xattr ", name);
    }
  }
  return {};
}

struct DirTimes {
  std::string path;
  timespec times[2];
};

class Unpacker {
 public:
  Unpacker(int root, const UnpackOptions& opts) : root_(root), opts_(opts) {}
  Result<> entry(archive* a, archive_entry* e);
  Result<> finish();
  std::vector<std::string> skipped_devices;

 private:
  Result<> whiteout(int parent, const std::string& name, const std::string& path);
  Result<> regular(archive* a, archive_entry* e, int parent, const std::string& name, uint32_t uid, uint32_t gid,
                   const std::string& path);
  int root_;
  const UnpackOptions& opts_;
  std::vector<DirTimes> dirs_;
  std::set<std::string> skipped_;  // skipped_devices, as normalized paths
};

Result<> Unpacker::whiteout(int parent, const std::string& name, const std::string& path) {
  if (name == ".wh..wh..opq") {
    UniqueFd dir = TRY(open_beneath(parent, ".", O_RDONLY | O_DIRECTORY));
    const char* key = opts_.userxattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
    if (fsetxattr(dir.get(), key, "y", 1, 0) < 0) return fail_sys("entry \"", path, "\": set ", key);
    return {};
  }
  std::string hidden = name.substr(4);
  if (hidden.empty() || hidden == "." || hidden == "..") return fail_msg("entry \"", path, "\": whiteout of nothing");
  TRYV_CTX(remove_at(parent, hidden), "entry \"", path, "\"");
  if (mknodat(parent, hidden.c_str(), S_IFCHR | 0, makedev(0, 0)) < 0)
    return fail_sys("entry \"", path, "\": make the overlay whiteout for ", hidden);
  return {};
}

Result<> Unpacker::regular(archive* a, archive_entry* e, int parent, const std::string& name, uint32_t uid,
                           uint32_t gid, const std::string& path) {
  int fd = openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail_sys("entry \"", path, "\": create");
  UniqueFd f(fd);
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail_msg("entry \"", path, "\": read: ", archive_error_string(a));
    const char* p = static_cast<const char*>(buf);
    while (size > 0) {
      ssize_t n = pwrite(f.get(), p, size, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail_sys("entry \"", path, "\": write");
      }
      p += n;
      size -= static_cast<size_t>(n);
      offset += n;
    }
  }
  // Sparse files end in a hole that no data block covers.
  if (ftruncate(f.get(), archive_entry_size(e)) < 0) return fail_sys("entry \"", path, "\": truncate");
  if (fchown(f.get(), uid, gid) < 0) return fail_sys("entry \"", path, "\": chown");
  if (fchmod(f.get(), archive_entry_perm(e)) < 0) return fail_sys("entry \"", path, "\": chmod");
  TRYV(set_xattrs(f.get(), e, path, opts_));
  timespec ts[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                    {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
  if (futimens(f.get(), ts) < 0) return fail_sys("entry \"", path, "\": set times");
  return {};
}

Result<> Unpacker::entry(archive* a, archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  if (!raw) return fail_msg("tar entry without a name");
  std::string path = raw;
  auto comps = TRY(components(path, "entry"));
  if (comps.empty()) return {};  // "./": the root itself keeps the store's ownership
  const std::string& name = comps.back();
  UniqueFd parent = TRY(open_parent(root_, comps, comps.size() - 1, path, true));

  if (name.starts_with(".wh.")) return whiteout(parent.get(), name, path);

  mode_t type = archive_entry_filetype(e);
  const char* hardlink = archive_entry_hardlink(e);
  bool whiteout_node = type == AE_IFCHR && archive_entry_rdevmajor(e) == 0 && archive_entry_rdevminor(e) == 0;
  if (opts_.rootless && !hardlink && (type == AE_IFCHR || type == AE_IFBLK) && !whiteout_node) {
    skipped_devices.push_back(path);
    skipped_.insert(join(comps, comps.size()));
    return {};
  }

  uint32_t uid = TRY(map_id(static_cast<uint32_t>(archive_entry_uid(e)), opts_.uid_map, "uid", path));
  uint32_t gid = TRY(map_id(static_cast<uint32_t>(archive_entry_gid(e)), opts_.gid_map, "gid", path));

  // A later entry replaces an earlier one, except that a directory stays a
  // directory (its contents from this layer are kept).
  struct stat st;
  bool keep_dir = false;
  if (fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode) && type == AE_IFDIR && !hardlink)
      keep_dir = true;
    else
      TRYV_CTX(remove_at(parent.get(), name), "entry \"", path, "\"");
  }

  timespec ts[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                    {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
  if (hardlink) {
    auto tcomps = TRY(components(hardlink, cat("entry \"", path, "\": hardlink target")));
    if (tcomps.empty()) return fail_msg("entry \"", path, "\": hardlink to the layer root");
    UniqueFd tparent = TRY(open_parent(root_, tcomps, tcomps.size() - 1, path, false));
    struct stat tst;
    if (skipped_.count(join(tcomps, tcomps.size()))) {  // a link to a device node not made
      skipped_devices.push_back(path);
      skipped_.insert(join(comps, comps.size()));
      return {};
    }
    if (fstatat(tparent.get(), tcomps.back().c_str(), &tst, AT_SYMLINK_NOFOLLOW) < 0)
      return fail_sys("entry \"", path, "\": hardlink target \"", hardlink, "\"");
    if (S_ISDIR(tst.st_mode)) return fail_msg("entry \"", path, "\": hardlink to directory \"", hardlink, "\"");
    // Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink itself.
    if (linkat(tparent.get(), tcomps.back().c_str(), parent.get(), name.c_str(), 0) < 0)
      return fail_sys("entry \"", path, "\": hardlink to \"", hardlink, "\"");
    return {};
  }

  switch (type) {
    case AE_IFREG:
      return regular(a, e, parent.get(), name, uid, gid, path);
    case AE_IFDIR: {
      if (!keep_dir && mkdirat(parent.get(), name.c_str(), 0700) < 0)
        return fail_sys("entry \"", path, "\": create directory");
      UniqueFd dir = TRY_CTX(open_beneath(parent.get(), name, O_RDONLY | O_DIRECTORY), "entry \"", path, "\"");
      if (fchown(dir.get(), uid, gid) < 0) return fail_sys("entry \"", path, "\": chown");
      if (fchmod(dir.get(), archive_entry_perm(e)) < 0) return fail_sys("entry \"", path, "\": chmod");
      TRYV(set_xattrs(dir.get(), e, path, opts_));
      // Entries made inside change the mtime: set it once all are there.
      dirs_.push_back(DirTimes{join(comps, comps.size()), {ts[0], ts[1]}});
      return {};
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      // The target is stored as given: it is only ever resolved inside the
      // container's root, never by the store.
      if (!target || symlinkat(target, parent.get(), name.c_str()) < 0)
        return fail_sys("entry \"", path, "\": create symlink");
      if (fchownat(parent.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys("entry \"", path, "\": chown");
      if (utimensat(parent.get(), name.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys("entry \"", path, "\": set times");
      return {};
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      if (mknodat(parent.get(), name.c_str(), type | 0600, dev) < 0)
        return fail_sys("entry \"", path, "\": create device node");
      // Never open the node (a device's open has effects): path-based calls
      // on the entry just made, which no one else can swap (private tree).
      if (fchownat(parent.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys("entry \"", path, "\": chown");
      if (fchmodat(parent.get(), name.c_str(), archive_entry_perm(e), 0) < 0)
        return fail_sys("entry \"", path, "\": chmod");
      if (utimensat(parent.get(), name.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys("entry \"", path, "\": set times");
      return {};
    }
    case AE_IFSOCK:
      return {};  // a socket in a tar is meaningless, as in tar(1)
    default:
      return fail_msg("entry \"", path, "\": unsupported file type ", static_cast<unsigned>(type));
  }
}

Result<> Unpacker::finish() {
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    UniqueFd dir = TRY(open_beneath(root_, it->path, O_RDONLY | O_DIRECTORY));
    if (futimens(dir.get(), it->times) < 0) return fail_sys("set times of ", it->path);
  }
  return {};
}

}  // namespace

Result<UnpackStats> unpack_layer(const std::string& blob_path, const std::string& dest, const Digest& diff_id,
                                 const UnpackOptions& opts) {
  UniqueFd blob = TRY(open_fd(blob_path, O_RDONLY));
  UniqueFd root = TRY(open_fd(dest, O_PATH | O_DIRECTORY));

  ArchivePtr outer(archive_read_new());
  ArchivePtr inner(archive_read_new());
  if (!outer || !inner) return fail_msg("libarchive: out of memory");
  archive_read_support_filter_gzip(outer.get());
  archive_read_support_filter_zstd(outer.get());
  archive_read_support_filter_none(outer.get());
  archive_read_support_format_raw(outer.get());
  if (archive_read_open_fd(outer.get(), blob.get(), 1 << 16) != ARCHIVE_OK)
    return fail_msg("layer ", blob_path, ": ", archive_error_string(outer.get()));
  archive_entry* raw_entry;
  if (archive_read_next_header(outer.get(), &raw_entry) != ARCHIVE_OK)
    return fail_msg("layer ", blob_path, ": ", archive_error_string(outer.get()));

  Stream stream;
  stream.outer = outer.get();
  archive_read_support_format_tar(inner.get());
  archive_read_support_format_gnutar(inner.get());
  if (archive_read_open(inner.get(), &stream, nullptr, pull, nullptr) != ARCHIVE_OK)
    return fail_msg("layer ", blob_path, ": not a tar stream: ", archive_error_string(inner.get()));

  UnpackStats stats;
  Unpacker u(root.get(), opts);
  for (;;) {
    archive_entry* e;
    int r = archive_read_next_header(inner.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail_msg("layer ", blob_path, ": ", archive_error_string(inner.get()));
    TRYV_CTX(u.entry(inner.get(), e), "layer ", diff_id.str());
    stats.entries++;
  }
  TRYV_CTX(u.finish(), "layer ", diff_id.str());
  stats.skipped_devices = std::move(u.skipped_devices);
  // The tar reader stops at the end-of-archive blocks; the diff_id covers
  // the whole stream, padding included.
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(outer.get(), &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail_msg("layer ", blob_path, ": ", archive_error_string(outer.get()));
    stream.hash.update(std::string_view(static_cast<const char*>(buf), size));
    stream.bytes += size;
  }
  Digest got = stream.hash.finish();
  if (!(got == diff_id))
    return fail_msg("layer ", blob_path, ": uncompressed content is ", got.str(), ", the image config's diff_id is ",
                    diff_id.str());
  stats.tar_bytes = stream.bytes;
  return stats;
}

Result<> remove_tree(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return fail_sys("open ", dir);
  }
  UniqueFd d(fd);
  return remove_at(d.get(), base);
}

}  // namespace husk::image
