// Local image directories and safe reads of the image's account files.
#include "driver/image_dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstdlib>
#include <string_view>

#include "common/fd.h"
#include "common/text.h"

namespace husk::driver {

namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

std::optional<uint32_t> parse_id(std::string_view s) {
  uint32_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Lines of a colon-separated account file, comments and blanks skipped.
std::vector<std::vector<std::string_view>> records(std::string_view text) {
  std::vector<std::vector<std::string_view>> out;
  for (auto line : split_views(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    out.push_back(split_views(line, ':'));
  }
  return out;
}

}  // namespace

Result<std::string> resolve_image_dir(const std::string& image, const std::string& field) {
  const char* works = "husk runs local images: a root filesystem directory (or one holding rootfs/), an OCI "
                      "image layout directory, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:TAG], "
                      "as absolute paths (a directory may be relative to the task directory)";
  if (image.empty()) return fail_msg(field, ": image name required");
  for (std::string_view t : {"docker://", "containers-storage:", "dir:", "docker-daemon:", "http://", "https://"})
    if (std::string_view(image).starts_with(t))
      return fail_msg(field, ": \"", image, "\": transport \"", t.substr(0, t.find(':')), "\" is not supported; ",
                      works);
  if (image[0] != '/')
    return fail_msg(field, ": \"", image, "\": registry images come with the registry client, which husk does not "
                    "have yet; ", works);
  if (!is_dir(image)) return fail_msg(field, ": \"", image, "\": no such directory");
  // An OCI image layout is the store's (image_resolve.cc takes it first).
  if (exists(image + "/oci-layout"))
    return fail_msg(field, ": \"", image, "\" is an OCI image layout; it is imported through the image store");
  std::string rootfs = is_dir(image + "/rootfs") ? image + "/rootfs" : image;
  char resolved[PATH_MAX];
  if (!realpath(rootfs.c_str(), resolved)) return fail_sys(field, ": resolve \"", rootfs, "\"");
  // The host's own root as an image would hand the task every host file.
  if (std::string_view(resolved) == "/") return fail_msg(field, ": \"", image, "\" is the host's root directory");
  return std::string(resolved);
}

Result<std::optional<std::string>> read_in_root(const std::string& rootfs, const std::string& path, size_t max_bytes) {
  int rootfd = open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return fail_sys("open ", rootfs);
  UniqueFd root(rootfd);
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  std::string rel = path;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  int fd = static_cast<int>(syscall(SYS_openat2, root.get(), rel.c_str(), &how, sizeof how));
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return fail_sys("open ", path, " in ", rootfs);
  }
  UniqueFd f(fd);
  struct stat st;
  if (fstat(f.get(), &st) != 0) return fail_sys("stat ", path, " in ", rootfs);
  if (!S_ISREG(st.st_mode)) return fail_msg(path, " in ", rootfs, " is not a regular file");
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(f.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("read ", path, " in ", rootfs);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) return fail_msg(path, " in ", rootfs, " is larger than ", max_bytes, " bytes");
  }
  return std::optional<std::string>(std::move(out));
}

namespace {

// What a layer holds at `rel` (no leading '/'), looked at without following
// any symlink: kAbsent, a whiteout, or something else.
enum class LayerEntry { kAbsent, kWhiteout, kPresent };

LayerEntry layer_entry(int layer, const std::string& rel) {
  open_how how{};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(syscall(SYS_openat2, layer, rel.c_str(), &how, sizeof how));
  if (fd < 0) return LayerEntry::kAbsent;
  UniqueFd f(fd);
  struct stat st;
  if (fstat(f.get(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return LayerEntry::kWhiteout;
  return LayerEntry::kPresent;
}

bool is_opaque_dir(int layer, const std::string& rel) {
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(syscall(SYS_openat2, layer, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
  if (fd < 0) return false;
  UniqueFd f(fd);
  char v[2];
  for (const char* key : {"trusted.overlay.opaque", "user.overlay.opaque"})
    if (fgetxattr(f.get(), key, v, sizeof v) == 1 && v[0] == 'y') return true;
  return false;
}

}  // namespace

Result<std::optional<std::string>> read_in_layers(const std::vector<std::string>& layers, const std::string& path,
                                                  size_t max_bytes) {
  std::string rel = path;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  for (const auto& layer : layers) {
    int lfd = open(layer.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0) return fail_sys("open layer ", layer);
    UniqueFd l(lfd);
    // A whiteout of the file or of a directory above it hides it from here down.
    bool hidden = false, opaque = false;
    for (size_t slash = 0;; slash++) {
      slash = rel.find('/', slash);
      std::string prefix = rel.substr(0, slash);
      if (layer_entry(l.get(), prefix) == LayerEntry::kWhiteout) hidden = true;
      if (slash == std::string::npos) break;
      if (is_opaque_dir(l.get(), prefix)) opaque = true;
    }
    if (hidden) return std::optional<std::string>();
    auto got = TRY(read_in_root(layer, path, max_bytes));
    if (got || opaque) return got;
  }
  return std::optional<std::string>();
}

Result<ResolvedUser> resolve_user(const std::vector<std::string>& layers, const std::string& user,
                                  const std::string& field) {
  ResolvedUser r;
  if (user.empty()) {
    r.home = "/root";
    return r;
  }
  std::string_view u = user, g;
  bool has_group = false;
  if (auto colon = u.find(':'); colon != std::string_view::npos) {
    g = u.substr(colon + 1);
    u = u.substr(0, colon);
    has_group = true;
    if (g.empty()) return fail_msg(field, ": \"", user, "\": empty group");
  }
  if (u.empty()) return fail_msg(field, ": \"", user, "\": empty user");

  auto passwd = TRY_CTX(read_in_layers(layers, "/etc/passwd"), field, ": read the image's /etc/passwd");
  auto group = TRY_CTX(read_in_layers(layers, "/etc/group"), field, ": read the image's /etc/group");

  std::string name;
  bool found = false;
  auto uid = parse_id(u);
  if (passwd) {
    for (const auto& rec : records(*passwd)) {
      if (rec.size() < 7) continue;
      auto rec_uid = parse_id(rec[2]);
      auto rec_gid = parse_id(rec[3]);
      if (!rec_uid || !rec_gid) continue;
      if ((uid && *rec_uid == *uid) || (!uid && rec[0] == u)) {
        r.uid = *rec_uid;
        r.gid = *rec_gid;
        r.home = std::string(rec[5]);
        name = std::string(rec[0]);
        found = true;
        break;
      }
    }
  }
  if (!found) {
    if (!uid) return fail_msg(field, ": user \"", u, "\" is not in the image's /etc/passwd");
    r.uid = *uid;
    r.gid = 0;
  }

  if (has_group) {
    auto gid = parse_id(g);
    if (gid) {
      r.gid = *gid;
    } else {
      bool gfound = false;
      if (group)
        for (const auto& rec : records(*group))
          if (rec.size() >= 3 && rec[0] == g)
            if (auto id = parse_id(rec[2])) {
              r.gid = *id;
              gfound = true;
              break;
            }
      if (!gfound) return fail_msg(field, ": group \"", g, "\" is not in the image's /etc/group");
    }
  } else if (group && !name.empty()) {
    // Supplementary groups of a named user, as podman gives them.
    for (const auto& rec : records(*group)) {
      if (rec.size() < 4) continue;
      auto id = parse_id(rec[2]);
      if (!id || *id == r.gid) continue;
      for (auto member : split_views(rec[3], ','))
        if (member == name) {
          r.additional_gids.push_back(*id);
          break;
        }
    }
  }
  return r;
}

}  // namespace husk::driver
