// Local image transports into the store (see import.h).
#include "image/import.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <functional>
#include <map>
#include <memory>

#include "common/fd.h"

namespace husk::image {

namespace {

constexpr size_t kMaxJson = 16 << 20;
constexpr std::string_view kRefName = "org.opencontainers.image.ref.name";

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// An archive member's name without "./" prefixes.
std::string member_name(const char* raw) {
  std::string_view n = raw ? raw : "";
  while (n.starts_with("./")) n.remove_prefix(2);
  while (n.starts_with("/")) n.remove_prefix(1);
  return std::string(n);
}

// Calls `fn` for every entry of the tar at `path`; `fn` may read the data.
Result<> each_member(const std::string& path, const std::function<Result<>(archive*, archive_entry*)>& fn) {
  UniqueFd fd = TRY(open_fd(path, O_RDONLY));
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_none(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_fd(a.get(), fd.get(), 1 << 16) != ARCHIVE_OK)
    return fail_msg(path, ": ", archive_error_string(a.get()));
  for (;;) {
    archive_entry* e;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) return {};
    if (r < ARCHIVE_WARN) return fail_msg(path, ": ", archive_error_string(a.get()));
    TRYV_CTX(fn(a.get(), e), path, ": ", member_name(archive_entry_pathname(e)));
  }
}

// Stream the current member's data to `sink`.
Result<> read_member(archive* a, const std::function<Result<>(std::string_view)>& sink) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return {};
    if (r < ARCHIVE_WARN) return fail_msg("read: ", archive_error_string(a));
    TRYV(sink(std::string_view(static_cast<const char*>(buf), size)));
  }
}

Result<std::string> read_member_text(archive* a, archive_entry* e) {
  if (archive_entry_size(e) > static_cast<la_int64_t>(kMaxJson)) return fail_msg("larger than ", kMaxJson, " bytes");
  std::string out;
  TRYV(read_member(a, [&](std::string_view d) -> Result<> {
    out.append(d);
    return {};
  }));
  return out;
}

// A member `blobs/sha256/<hex>` into the store, verified by BlobWriter.
Result<> member_to_blob(const Store& store, archive* a, archive_entry* e, const Digest& d) {
  if (store.blobs().has(d)) return {};
  BlobWriter w = TRY(store.blobs().begin(d, archive_entry_size(e), false));
  auto r = read_member(a, [&](std::string_view data) { return w.write(data); });
  if (!r) {
    w.discard();
    return r;
  }
  return w.commit();
}

std::optional<Digest> blob_path_digest(std::string_view name) {
  if (!name.starts_with("blobs/sha256/")) return std::nullopt;
  auto d = parse_digest(cat("sha256:", name.substr(13)), "blob");
  if (!d) return std::nullopt;
  return *d;
}

// The index entry for `ref` (by ref.name annotation) or the only one.
Result<oci::Descriptor> pick_manifest(const oci::ImageIndex& index, const std::string& ref, const std::string& where) {
  if (!ref.empty()) {
    for (const auto& d : index.manifests)
      if (auto it = d.annotations.find(std::string(kRefName)); it != d.annotations.end() && it->second == ref) return d;
  } else if (index.manifests.size() == 1) {
    return index.manifests[0];
  }
  std::string refs;
  for (const auto& d : index.manifests)
    if (auto it = d.annotations.find(std::string(kRefName)); it != d.annotations.end())
      refs += (refs.empty() ? "" : ", ") + it->second;
  if (!ref.empty())
    return fail_msg(where, ": no image named \"", ref, "\" (it has: ", refs.empty() ? "none" : refs, ")");
  return fail_msg(where, ": holds ", index.manifests.size(), " images; name one with :REF (", refs, ")");
}

// Copy a blob of a layout directory into the store (no symlink out of it).
Result<> copy_layout_blob(const Store& store, int layout, const Digest& d, int64_t size) {
  if (store.blobs().has(d)) return {};
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  std::string rel = cat("blobs/sha256/", d.hex);
  int fd = static_cast<int>(syscall(SYS_openat2, layout, rel.c_str(), &how, sizeof how));
  if (fd < 0) return fail_sys("open ", rel);
  UniqueFd f(fd);
  BlobWriter w = TRY(store.blobs().begin(d, size, false));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(f.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      w.discard();
      return fail_sys("read ", rel);
    }
    if (n == 0) break;
    auto r = w.write(std::string_view(buf, static_cast<size_t>(n)));
    if (!r) {
      w.discard();
      return r;
    }
  }
  return w.commit();
}

// The manifest (or index, then the platform's manifest), config and layers
// of `desc`, copied from the layout.
Result<> copy_image(const Store& store, int layout, const oci::Descriptor& desc, const oci::Platform& platform) {
  Digest d = TRY(parse_digest(desc.digest, "manifest digest"));
  TRYV(copy_layout_blob(store, layout, d, desc.size));
  std::string text = TRY(store.blobs().read(d));
  if (TRY(oci::manifest_kind(text)) == oci::ManifestKind::kIndex) {
    auto index = TRY_CTX(oci::parse_image_index(text), "image index ", d.str());
    const oci::Descriptor* child = TRY_CTX(oci::select_platform(index, platform), "image index ", d.str());
    return copy_image(store, layout, *child, platform);
  }
  auto m = TRY_CTX(oci::parse_image_manifest(text), "manifest ", d.str());
  Digest config = TRY(parse_digest(m.config.digest, "config.digest"));
  TRYV(copy_layout_blob(store, layout, config, m.config.size));
  for (size_t i = 0; i < m.layers.size(); i++) {
    Digest layer = TRY(parse_digest(m.layers[i].digest, cat("layers[", i, "].digest")));
    TRYV(copy_layout_blob(store, layout, layer, m.layers[i].size));
  }
  return {};
}

Result<ImageRecord> import_layout(Store& store, const ImageSource& src, const std::string& name,
                                  const oci::Platform& platform, CommitStats* stats) {
  UniqueFd layout = TRY(open_fd(src.path, O_PATH | O_DIRECTORY));
  auto marker = TRY_CTX(read_file_at(layout.get(), "oci-layout"), src.path, ": not an OCI image layout");
  TRYV_CTX(oci::check_oci_layout(marker), src.path);
  auto index_text = TRY_CTX(read_file_at(layout.get(), "index.json"), src.path);
  auto index = TRY_CTX(oci::parse_image_index(index_text), src.path, "/index.json");
  oci::Descriptor desc = TRY(pick_manifest(index, src.ref, src.path));
  TRYV_CTX(copy_image(store, layout.get(), desc, platform), "import ", src.path);
  Digest manifest = TRY(parse_digest(desc.digest, "manifest digest"));
  return store.commit_image(name, manifest, platform, stats);
}

Result<ImageRecord> import_oci_archive(Store& store, const ImageSource& src, const std::string& name,
                                       const oci::Platform& platform, CommitStats* stats) {
  std::optional<std::string> marker, index_text;
  auto store_member = [&](archive* a, archive_entry* e) -> Result<> {
    if (archive_entry_filetype(e) != AE_IFREG) return {};
    std::string n = member_name(archive_entry_pathname(e));
    if (n == "oci-layout")
      marker = TRY(read_member_text(a, e));
    else if (n == "index.json")
      index_text = TRY(read_member_text(a, e));
    else if (auto d = blob_path_digest(n))
      return member_to_blob(store, a, e, *d);
    return {};
  };
  TRYV(each_member(src.path, store_member));
  if (!marker || !index_text) return fail_msg(src.path, ": not an OCI archive (no oci-layout or index.json)");
  TRYV_CTX(oci::check_oci_layout(*marker), src.path);
  auto index = TRY_CTX(oci::parse_image_index(*index_text), src.path, ": index.json");
  oci::Descriptor desc = TRY(pick_manifest(index, src.ref, src.path));
  Digest manifest = TRY(parse_digest(desc.digest, "manifest digest"));
  return TRY_CTX(store.commit_image(name, manifest, platform, stats), "import ", src.path);
}

struct Member {
  Digest digest;
  int64_t size = 0;
  std::string magic;  // first bytes: tells the layer's compression
};

std::string layer_media_type(std::string_view magic) {
  if (magic.starts_with("\x1f\x8b")) return std::string(oci::media::kOciLayerGzip);
  if (magic.starts_with("\x28\xb5\x2f\xfd")) return std::string(oci::media::kOciLayerZstd);
  return std::string(oci::media::kOciLayer);
}

// docker save: every file is hashed in a first pass (the archive names
// layers by path, not digest), the referenced ones are stored in a second,
// checked against the first pass's digest, then an OCI manifest is written
// for them.
Result<ImageRecord> import_docker_archive(Store& store, const ImageSource& src, const std::string& name,
                                          const oci::Platform& platform, CommitStats* stats) {
  std::optional<std::string> manifest_text;
  std::map<std::string, Member> members;
  std::map<std::string, std::string> links;  // symlinked members (newer docker: to blobs/sha256/...)
  auto hash_member = [&](archive* a, archive_entry* e) -> Result<> {
    std::string n = member_name(archive_entry_pathname(e));
    if (archive_entry_filetype(e) == AE_IFLNK || archive_entry_hardlink(e)) {
      const char* t = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : archive_entry_symlink(e);
      std::string target = member_name(t);
      if (archive_entry_symlink(e) && !archive_entry_hardlink(e)) {
        size_t slash = n.rfind('/');
        std::string dir = slash == std::string::npos ? "" : n.substr(0, slash);
        while (target.starts_with("../") && !dir.empty()) {
          target.erase(0, 3);
          size_t s = dir.rfind('/');
          dir = s == std::string::npos ? "" : dir.substr(0, s);
        }
        if (!dir.empty()) target = dir + "/" + target;
      }
      links[n] = target;
      return {};
    }
    if (archive_entry_filetype(e) != AE_IFREG) return {};
    if (n == "manifest.json") {
      manifest_text = TRY(read_member_text(a, e));
      return {};
    }
    Sha256 h;
    Member m;
    TRYV(read_member(a, [&](std::string_view d) -> Result<> {
      if (m.magic.size() < 4) m.magic.append(d.substr(0, 4 - m.magic.size()));
      h.update(d);
      m.size += static_cast<int64_t>(d.size());
      return {};
    }));
    m.digest = h.finish();
    members[n] = std::move(m);
    return {};
  };
  TRYV(each_member(src.path, hash_member));
  if (!manifest_text) return fail_msg(src.path, ": not a docker archive (no manifest.json)");
  auto images = TRY_CTX(oci::parse_docker_archive_manifest(*manifest_text), src.path);
  const oci::DockerArchiveImage* img = nullptr;
  if (!src.ref.empty()) {
    for (const auto& i : images)
      for (const auto& t : i.repo_tags)
        if (t == src.ref || t == "docker.io/" + src.ref || t == "docker.io/library/" + src.ref ||
            t == "localhost/" + src.ref)
          img = &i;
  } else if (images.size() == 1) {
    img = &images[0];
  }
  if (!img) {
    std::string tags;
    for (const auto& i : images)
      for (const auto& t : i.repo_tags) tags += (tags.empty() ? "" : ", ") + t;
    return fail_msg(src.path, ": ",
                    src.ref.empty() ? cat("holds ", images.size(), " images; name one with :TAG")
                                    : cat("no image tagged \"", src.ref, "\""),
                    " (it has: ", tags.empty() ? "no tags" : tags, ")");
  }
  auto find = [&](const std::string& path, const std::string& what) -> Result<std::pair<std::string, Member>> {
    std::string p = member_name(path.c_str());
    for (int hops = 0; hops < 8 && links.count(p); hops++) p = links[p];
    auto it = members.find(p);
    if (it == members.end())
      return fail_msg(src.path, ": manifest.json ", what, " \"", path, "\" is not in the archive");
    return std::pair{p, it->second};
  };
  std::map<std::string, Member> wanted;
  oci::ImageManifest m;
  m.media_type = std::string(oci::media::kOciManifest);
  auto [cpath, cfg] = TRY(find(img->config, "Config"));
  // Config names carry their digest ("<hex>.json"): check it.
  std::string cbase = cpath.substr(cpath.rfind('/') + 1);
  if (cbase.size() == 64 + 5 && cbase.ends_with(".json") && cbase.substr(0, 64) != cfg.digest.hex)
    return fail_msg(src.path, ": ", cpath, " has digest ", cfg.digest.str(), ", not the one its name says");
  if (auto d = blob_path_digest(cpath); d && !(*d == cfg.digest))
    return fail_msg(src.path, ": ", cpath, " has digest ", cfg.digest.str(), ", not the one its name says");
  m.config = oci::Descriptor{std::string(oci::media::kOciConfig), cfg.digest.str(), cfg.size, {}, {}};
  wanted[cpath] = cfg;
  for (size_t i = 0; i < img->layers.size(); i++) {
    auto [lpath, layer] = TRY(find(img->layers[i], cat("Layers[", i, "]")));
    m.layers.push_back(oci::Descriptor{layer_media_type(layer.magic), layer.digest.str(), layer.size, {}, {}});
    wanted[lpath] = layer;
  }
  // Second pass: the wanted members into the blob store, each checked
  // against the digest the first pass computed.
  auto store_wanted = [&](archive* a, archive_entry* e) -> Result<> {
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) return {};
    auto it = wanted.find(member_name(archive_entry_pathname(e)));
    if (it == wanted.end()) return {};
    return member_to_blob(store, a, e, it->second.digest);
  };
  TRYV(each_member(src.path, store_wanted));
  Digest manifest = TRY(store.blobs().put(oci::emit_image_manifest(m)));
  return TRY_CTX(store.commit_image(name, manifest, platform, stats), "import ", src.path);
}

}  // namespace

Result<std::optional<ImageSource>> parse_image_source(std::string_view s, std::string_view what) {
  ImageSource src;
  std::string_view rest;
  if (s.starts_with("oci:")) {
    src.kind = ImageSource::Kind::kOciLayout;
    rest = s.substr(4);
  } else if (s.starts_with("oci-archive:")) {
    src.kind = ImageSource::Kind::kOciArchive;
    rest = s.substr(12);
  } else if (s.starts_with("docker-archive:")) {
    src.kind = ImageSource::Kind::kDockerArchive;
    rest = s.substr(15);
  } else if (s.starts_with("/")) {
    std::string dir(s);
    struct stat st;
    if (!is_dir(dir) || stat((dir + "/oci-layout").c_str(), &st) != 0) return std::optional<ImageSource>();
    src.kind = ImageSource::Kind::kOciLayout;
    src.path = dir;
    return std::optional<ImageSource>(src);
  } else {
    return std::optional<ImageSource>();
  }
  size_t colon = rest.find(':');
  src.path = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) {
    src.ref = std::string(rest.substr(colon + 1));
    if (src.ref.empty()) return fail_msg(what, ": \"", s, "\": empty reference after ':'");
  }
  if (src.path.empty() || src.path[0] != '/') return fail_msg(what, ": \"", s, "\": the path must be absolute");
  struct stat st;
  if (stat(src.path.c_str(), &st) != 0) return fail_sys(what, ": \"", s, "\": ", src.path);
  bool want_dir = src.kind == ImageSource::Kind::kOciLayout;
  if (want_dir != S_ISDIR(st.st_mode))
    return fail_msg(what, ": \"", s, "\": ", src.path, want_dir ? " is not a directory" : " is not a file");
  return std::optional<ImageSource>(src);
}

Result<ImageRecord> import_image(Store& store, const ImageSource& src, const std::string& name,
                                 const oci::Platform& platform, CommitStats* stats) {
  switch (src.kind) {
    case ImageSource::Kind::kOciLayout:
      return import_layout(store, src, name, platform, stats);
    case ImageSource::Kind::kOciArchive:
      return import_oci_archive(store, src, name, platform, stats);
    case ImageSource::Kind::kDockerArchive:
      return import_docker_archive(store, src, name, platform, stats);
  }
  return fail_msg("unknown image source");
}

}  // namespace husk::image
