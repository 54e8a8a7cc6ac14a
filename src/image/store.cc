// The image store (see store.h): records, layers, leases and GC.
#include "image/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <set>

#include "common/fd.h"
#include "common/text.h"

namespace husk::image {

namespace {

Result<> mkdirs(const std::string& path, mode_t mode) {
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    if (!cur.empty() && mkdir(cur.c_str(), mode) < 0 && errno != EEXIST) return fail_sys("create directory ", cur);
    i = j + 1;
  }
  return {};
}

Result<std::vector<std::string>> dir_names(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return fail_sys("read directory ", dir);
  }
  while (dirent* de = readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  closedir(d);
  return out;
}

Result<UniqueFd> flock_file(const std::string& path, int op) {
  UniqueFd fd = TRY(open_fd(path, O_RDWR | O_CREAT, 0600));
  while (flock(fd.get(), op) < 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return fail_errno(EWOULDBLOCK, "lock ", path);
    return fail_sys("lock ", path);
  }
  return fd;
}

std::string serialize(const ImageRecord& r) {
  std::string out = cat("id=", r.id, "\nmanifest=", r.manifest.str(), "\nconfig=", r.config.str(), "\n");
  for (const auto& n : r.names) out += cat("name=", n, "\n");
  for (const auto& d : r.diff_ids) out += cat("diff_id=", d.str(), "\n");
  for (const auto& d : r.layer_blobs) out += cat("layer=", d.str(), "\n");
  out += cat("size=", r.size, "\ncreated=", r.created, "\nlast_used=", r.last_used, "\n");
  return out;
}

Result<ImageRecord> deserialize(std::string_view text, const std::string& path) {
  ImageRecord r;
  for (auto line : lines_of(text)) {
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = line.substr(0, eq), v = line.substr(eq + 1);
    std::string what = cat(path, ": ", k);
    if (k == "id")
      r.id = std::string(v);
    else if (k == "manifest")
      r.manifest = TRY(parse_digest(v, what));
    else if (k == "config")
      r.config = TRY(parse_digest(v, what));
    else if (k == "name")
      r.names.emplace_back(v);
    else if (k == "diff_id")
      r.diff_ids.push_back(TRY(parse_digest(v, what)));
    else if (k == "layer")
      r.layer_blobs.push_back(TRY(parse_digest(v, what)));
    else if (k == "size")
      r.size = std::strtoull(std::string(v).c_str(), nullptr, 10);
    else if (k == "created")
      r.created = std::string(v);
    else if (k == "last_used")
      r.last_used = std::strtoll(std::string(v).c_str(), nullptr, 10);
  }
  if (r.id.size() != 64 || r.id != r.config.hex || r.diff_ids.size() != r.layer_blobs.size())
    return fail_msg(path, ": not a valid image record");
  return r;
}

// A rootless store's layer made without its device nodes, said once.
std::string skipped_devices_text(const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  std::string out = cat(paths.size(), " device node", paths.size() == 1 ? "" : "s",
                        " not made (a rootless store cannot make device nodes; containers/storage skips them too): ");
  constexpr size_t kNamed = 10;
  for (size_t i = 0; i < paths.size() && i < kNamed; i++) out += cat(i ? ", " : "", paths[i]);
  if (paths.size() > kNamed) out += cat(" and ", paths.size() - kNamed, " more");
  return out;
}

Result<> check_task_id(const std::string& task_id) {
  if (task_id.empty() || task_id[0] == '.' || task_id.find('/') != std::string::npos || task_id.size() > 200)
    return fail_msg("task id \"", task_id, "\" cannot name a lease file");
  return {};
}

std::string describe(const StoreIdMap& map) {
  if (!map.rootless()) return "none (the host's ids)";
  std::string out;
  const std::string text = format_store_id_map(map);
  for (auto line : lines_of(text)) out += cat(out.empty() ? "" : ", ", line);
  return cat("\"", out, "\"");
}

// The store's recorded map must be the caller's: layers unpacked with one
// map hold other owners under another. A store without a record holds the
// host's ids; a rootless caller records its map in a store with no layers.
Result<> check_id_map(const std::string& root, const StoreIdMap& want) {
  std::string path = root + "/idmap";
  auto text = read_file(path);
  if (!text && text.error().code() != ENOENT) return fail(std::move(text.error()));
  StoreIdMap have;
  if (text) have = TRY(parse_store_id_map(*text, path));
  if (format_store_id_map(have) == format_store_id_map(want)) return {};
  if (!text && want.rootless()) {
    bool layers = false;
    for (const auto& n : TRY(dir_names(root + "/layers"))) layers = layers || !n.starts_with(".tmp-");
    if (!layers) return write_file_atomic(path, format_store_id_map(want), 0644);
  }
  return fail_msg("image store ", root, " holds layers unpacked with the id map ", describe(have),
                  text ? cat(" (", path, ")") : std::string(), ", not this user's ", describe(want),
                  ": use a store of its own (--root, HUSK_IMAGE_STORE)");
}

}  // namespace

std::string Store::default_root() {
  if (const char* env = getenv("HUSK_IMAGE_STORE"); env && *env == '/') return env;
  if (geteuid() == 0) return "/var/lib/husk/images";
  if (const char* x = getenv("XDG_DATA_HOME"); x && *x == '/') return cat(x, "/husk/images");
  const char* home = getenv("HOME");
  return cat(home ? home : "", "/.local/share/husk/images");
}

Result<Store> Store::open(const std::string& root, UnpackOptions unpack) {
  if (root.empty() || root[0] != '/') return fail_msg("image store root \"", root, "\" is not an absolute path");
  // Before anything exists: a user who cannot have a rootless store gets
  // the reason, and no empty store.
  StoreIdMap idmap = TRY_CTX(caller_store_id_map(), "image store ", root);
  TRYV(mkdirs(root, 0700));
  for (const char* sub : {"/layers", "/images", "/leases", "/locks"}) TRYV(mkdirs(root + sub, 0700));
  // Layers are overlay lower directories: the container's users must be
  // able to traverse them (rootless: the mapped uids).
  if (chmod((root + "/layers").c_str(), 0711) < 0) return fail_sys("chmod ", root, "/layers");
  BlobStore blobs = TRY(BlobStore::open(root));
  TRYV(check_id_map(root, idmap));
  if (idmap.rootless()) {
    // The kernel maps the owners; an id the namespace has no owner for is
    // refused by name (map_id) instead of by fchown's EINVAL.
    unpack.rootless = unpack.userxattr = true;
    unpack.uid_map = unpack.gid_map = {IdRange{0, 0, idmap.count()}};
  }
  return Store(root, std::move(blobs), std::move(unpack), std::move(idmap));
}

Result<UniqueFd> Store::store_lock() const { return flock_file(root_ + "/locks/store.lock", LOCK_EX); }

Result<> Store::ensure_layer(const Digest& blob, const Digest& diff_id, CommitStats* stats) {
  std::string dir = cat(root_, "/layers/", diff_id.hex);
  struct stat st;
  auto reused = [&]() -> Result<> {
    if (stats) stats->layers_reused++;
    return {};
  };
  if (stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return reused();
  // One unpacker per diff_id: the others wait here and then find it done.
  UniqueFd lock = TRY(flock_file(cat(root_, "/locks/layer-", diff_id.hex, ".lock"), LOCK_EX));
  if (stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return reused();
  if (!blobs_.has(blob)) return fail_msg("layer blob ", blob.str(), " is not in the store");
  std::string tmp = cat(root_, "/layers/.tmp-", diff_id.hex, "-", getpid());
  // Rootless: in the store's user namespace, where the layer's owners are
  // ids the caller may give (the child's errors come back with context).
  auto unpack_here = [&]() -> Result<std::string> {
    TRYV(remove_tree(tmp));
    if (mkdir(tmp.c_str(), 0755) < 0) return fail_sys("create ", tmp);
    auto unpacked = unpack_layer(blobs_.path(blob), tmp, diff_id, unpack_);
    if (!unpacked) {
      (void)remove_tree(tmp);
      return fail(std::move(unpacked.error()));
    }
    return skipped_devices_text(unpacked->skipped_devices);
  };
  auto skipped = idmap_.rootless() ? run_in_store_userns(idmap_, unpack_here) : unpack_here();
  if (!skipped) return fail(std::move(skipped.error()).with_context(cat("unpack layer ", blob.str())));
  if (!skipped->empty() && stats) stats->warnings.push_back(cat("layer ", diff_id.str(), ": ", *skipped));
  // The layer must be on disk before its name says it is complete.
  UniqueFd tmpfd = TRY(open_fd(tmp, O_RDONLY | O_DIRECTORY));
  if (syncfs(tmpfd.get()) < 0) return fail_sys("sync ", tmp);
  if (rename(tmp.c_str(), dir.c_str()) < 0) {
    int e = errno;
    (void)remove_trees({tmp});
    return fail_errno(e, "rename ", tmp, " to ", dir);
  }
  if (stats) stats->layers_unpacked++;
  return {};
}

Result<> Store::remove_trees(const std::vector<std::string>& paths) const {
  auto remove_all = [&]() -> Result<std::string> {
    for (const auto& p : paths) TRYV(remove_tree(p));
    return std::string();
  };
  if (paths.empty()) return {};
  (void)TRY(idmap_.rootless() ? run_in_store_userns(idmap_, remove_all) : remove_all());
  return {};
}

Result<ImageRecord> Store::commit_image(const std::string& name, const Digest& manifest_digest,
                                        const oci::Platform& platform, CommitStats* stats) {
  if (name.empty() || name.find('\n') != std::string::npos) return fail_msg("image name \"", name, "\" is invalid");
  // GC waits while a commit is between its blobs and its record.
  UniqueFd gc_guard = TRY(flock_file(root_ + "/locks/gc.lock", LOCK_SH));
  std::string text = TRY_CTX(blobs_.read(manifest_digest), "read manifest ", manifest_digest.str());
  Digest mdigest = manifest_digest;
  auto kind = TRY_CTX(oci::manifest_kind(text), "manifest ", mdigest.str());
  if (kind == oci::ManifestKind::kIndex) {
    auto index = TRY_CTX(oci::parse_image_index(text), "image index ", mdigest.str());
    const oci::Descriptor* d = TRY_CTX(oci::select_platform(index, platform), "image index ", mdigest.str());
    mdigest = TRY(parse_digest(d->digest, "image index manifest digest"));
    text = TRY_CTX(blobs_.read(mdigest), "read the ", platform.str(), " manifest ", mdigest.str());
  }
  auto manifest = TRY_CTX(oci::parse_image_manifest(text), "manifest ", mdigest.str());
  Digest config_digest = TRY(parse_digest(manifest.config.digest, "manifest config.digest"));
  std::string config_text = TRY_CTX(blobs_.read(config_digest), "read image config ", config_digest.str());
  auto config = TRY_CTX(oci::parse_image_config(config_text), "image config ", config_digest.str());
  // A single-platform image must be for the wanted platform (an index
  // picked it above); running an arm64 image on amd64 would only fail later.
  if (config.platform.os != platform.os || config.platform.architecture != platform.architecture)
    return fail_msg("image ", mdigest.str(), " is for ", config.platform.str(), ", not ", platform.str());
  if (config.diff_ids.size() != manifest.layers.size())
    return fail_msg("image config ", config_digest.str(), " has ", config.diff_ids.size(),
                    " rootfs.diff_ids for the manifest's ", manifest.layers.size(), " layers");

  ImageRecord r;
  r.id = config_digest.hex;
  r.manifest = mdigest;
  r.config = config_digest;
  r.created = config.created;
  r.size = text.size() + config_text.size();
  for (size_t i = 0; i < manifest.layers.size(); i++) {
    Digest blob = TRY(parse_digest(manifest.layers[i].digest, cat("manifest layers[", i, "].digest")));
    Digest diff = TRY(parse_digest(config.diff_ids[i], cat("config rootfs.diff_ids[", i, "]")));
    TRYV(ensure_layer(blob, diff, stats));
    r.layer_blobs.push_back(blob);
    r.diff_ids.push_back(diff);
    r.size += static_cast<uint64_t>(manifest.layers[i].size);
  }
  r.last_used = time(nullptr);

  UniqueFd lock = TRY(store_lock());
  for (auto& other : TRY(list_locked())) {
    if (other.id == r.id) {
      for (auto& n : other.names)
        if (n != name) r.names.push_back(n);
      continue;
    }
    auto before = other.names.size();
    std::erase(other.names, name);
    if (other.names.size() != before) TRYV(write_record(other));
  }
  r.names.insert(r.names.begin(), name);
  TRYV(write_record(r));
  return r;
}

Result<> Store::write_record(const ImageRecord& r) const {
  return write_file_atomic(cat(root_, "/images/", r.id), serialize(r), 0600);
}

Result<std::vector<ImageRecord>> Store::list_locked() const {
  std::vector<ImageRecord> out;
  for (const auto& n : TRY(dir_names(root_ + "/images"))) {
    if (n.size() != 64) continue;  // temp files of an atomic write
    std::string path = cat(root_, "/images/", n);
    auto text = read_file(path);
    if (!text) {
      if (text.error().code() == ENOENT) continue;
      return fail(std::move(text.error()));
    }
    out.push_back(TRY(deserialize(*text, path)));
  }
  return out;
}

Result<std::vector<ImageRecord>> Store::list() const {
  UniqueFd lock = TRY(store_lock());
  return list_locked();
}

Result<ImageRecord> Store::lookup(const std::string& name_or_id) const {
  auto all = TRY(list());
  std::string id = name_or_id.starts_with("sha256:") ? name_or_id.substr(7) : name_or_id;
  for (auto& r : all)
    for (const auto& n : r.names)
      if (n == name_or_id) return r;
  const ImageRecord* found = nullptr;
  for (auto& r : all)
    if (r.id == id || (id.size() >= 12 && r.id.starts_with(id))) {
      if (found && r.id != id) return fail_msg("image id prefix \"", id, "\" is ambiguous");
      found = &r;
    }
  if (!found) return fail_msg("image \"", name_or_id, "\" is not in the store at ", root_);
  return *found;
}

Result<oci::ImageConfig> Store::config(const ImageRecord& image) const {
  std::string text = TRY_CTX(blobs_.read(image.config), "read image config ", image.config.str());
  return TRY_CTX(oci::parse_image_config(text), "image config ", image.config.str());
}

std::vector<std::string> Store::layer_dirs(const ImageRecord& image) const {
  std::vector<std::string> out;
  for (auto it = image.diff_ids.rbegin(); it != image.diff_ids.rend(); ++it)
    out.push_back(cat(root_, "/layers/", it->hex));
  return out;
}

Result<> Store::remove(const std::string& name_or_id) {
  ImageRecord r = TRY(lookup(name_or_id));
  UniqueFd lock = TRY(store_lock());
  for (const auto& t : TRY(dir_names(root_ + "/leases"))) {
    auto held = read_file(cat(root_, "/leases/", t));
    if (held && *held == r.id) return fail_msg("image ", name_or_id, " is in use by task ", t);
  }
  if (unlink(cat(root_, "/images/", r.id).c_str()) < 0 && errno != ENOENT)
    return fail_sys("remove the record of image ", r.id);
  return {};
}

Result<> Store::take_lease(const std::string& task_id, const std::string& image_id) {
  TRYV(check_task_id(task_id));
  UniqueFd lock = TRY(store_lock());
  std::string path = cat(root_, "/images/", image_id);
  auto text = read_file(path);
  if (!text) return fail_msg("lease for task ", task_id, ": image ", image_id, " is not in the store");
  ImageRecord r = TRY(deserialize(*text, path));
  TRYV(write_file_atomic(cat(root_, "/leases/", task_id), image_id, 0600));
  r.last_used = time(nullptr);
  return write_record(r);
}

Result<> Store::release_lease(const std::string& task_id) {
  TRYV(check_task_id(task_id));
  UniqueFd lock = TRY(store_lock());
  std::string path = cat(root_, "/leases/", task_id);
  if (auto held = read_file(path); held) {
    // Released now: the image's unused time starts here.
    std::string rec = cat(root_, "/images/", *held);
    if (auto text = read_file(rec); text)
      if (auto r = deserialize(*text, rec); r) {
        r->last_used = time(nullptr);
        TRYV(write_record(*r));
      }
  }
  if (unlink(path.c_str()) < 0 && errno != ENOENT) return fail_sys("remove lease ", path);
  return {};
}

Result<std::optional<std::string>> Store::lease(const std::string& task_id) const {
  TRYV(check_task_id(task_id));
  auto held = read_file(cat(root_, "/leases/", task_id));
  if (!held) {
    if (held.error().code() == ENOENT) return std::optional<std::string>();
    return fail(std::move(held.error()));
  }
  return std::optional<std::string>(*held);
}

Result<GcStats> Store::gc(int64_t unused_for) {
  GcStats stats;
  UniqueFd gc_guard = TRY(flock_file(root_ + "/locks/gc.lock", LOCK_EX));
  UniqueFd lock = TRY(store_lock());
  int64_t cutoff = static_cast<int64_t>(time(nullptr)) - unused_for;

  std::set<std::string> leased;
  for (const auto& t : TRY(dir_names(root_ + "/leases")))
    if (auto held = read_file(cat(root_, "/leases/", t)); held) leased.insert(*held);

  std::set<std::string> keep_blobs, keep_layers;
  for (const auto& r : TRY(list_locked())) {
    if (!leased.count(r.id) && r.last_used <= cutoff) {
      if (unlink(cat(root_, "/images/", r.id).c_str()) < 0 && errno != ENOENT)
        return fail_sys("remove the record of image ", r.id);
      stats.images++;
      continue;
    }
    keep_blobs.insert(r.manifest.hex);
    keep_blobs.insert(r.config.hex);
    for (const auto& d : r.layer_blobs) keep_blobs.insert(d.hex);
    for (const auto& d : r.diff_ids) keep_layers.insert(d.hex);
  }

  // Removed in one go (for a rootless store, one child in its namespace).
  std::vector<std::string> doomed, doomed_locks;
  std::vector<UniqueFd> held;  // the layer locks of dead unpackers' temp dirs
  for (const auto& n : TRY(dir_names(root_ + "/layers"))) {
    std::string path = cat(root_, "/layers/", n);
    if (n.starts_with(".tmp-")) {
      // A temp dir whose unpacker still holds the layer lock is in use;
      // otherwise its unpacker died and nothing will ever trust it.
      std::string hex = n.substr(5, 64);
      auto busy = flock_file(cat(root_, "/locks/layer-", hex, ".lock"), LOCK_EX | LOCK_NB);
      if (!busy) continue;
      held.push_back(std::move(*busy));
      doomed.push_back(path);
      continue;
    }
    if (keep_layers.count(n)) continue;
    doomed.push_back(path);
    doomed_locks.push_back(cat(root_, "/locks/layer-", n, ".lock"));
    stats.layers++;
  }
  TRYV(remove_trees(doomed));
  for (const auto& l : doomed_locks) unlink(l.c_str());

  for (const auto& n : TRY(dir_names(root_ + "/blobs/sha256"))) {
    if (keep_blobs.count(n)) continue;
    struct stat st;
    std::string path = cat(root_, "/blobs/sha256/", n);
    if (lstat(path.c_str(), &st) < 0 || st.st_mtime > cutoff) continue;
    if (unlink(path.c_str()) < 0 && errno != ENOENT) return fail_sys("remove blob ", path);
    stats.blobs++;
  }
  return stats;
}

}  // namespace husk::image
