// The nspawn flavor's image: what config.image names (a directory, a raw
// disk image, a machine image under /var/lib/machines, the host's root),
// image_download as systemd-importd does it (libcurl fetch, checksum or
// signature verification against SHA256SUMS, tar unpacked with libarchive,
// raw images decompressed), and private_users ranges.
#include <net/if.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "common/copy_tree.h"
#include "common/fd.h"
#include "driver/bundle_files.h"
#include "driver/image_resolve.h"
#include "common/overlay.h"
#include "oci/image.h"
#include "driver/nspawn_flavor.h"
#include "driver/userns_auto.h"
#include "image/digest.h"

extern char** environ;

namespace husk::driver::nspawn {

namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_image_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

// machined's image names: a valid hostname-ish label, no slashes or dots first.
bool valid_machine_name(const std::string& n) {
  if (n.empty() || n.size() > 64 || n[0] == '.' || n[0] == '-') return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

Result<ImageSource> source_at(const std::string& path, const std::string& image) {
  char real[PATH_MAX];
  if (!realpath(path.c_str(), real)) return fail_sys("config.image: resolve \"", image, "\" (", path, ")");
  ImageSource s;
  s.path = real;
  if (s.path == "/")
    s.kind = ImageSource::Kind::kHostRoot;
  else if (is_dir(s.path))
    s.kind = ImageSource::Kind::kDirectory;
  else if (is_image_file(s.path))
    s.kind = ImageSource::Kind::kRawFile;
  else
    return fail_msg("config.image: \"", image, "\" is neither a directory nor a disk image file");
  return s;
}

size_t write_to_fd(char* data, size_t size, size_t n, void* user) {
  int fd = *static_cast<int*>(user);
  size_t total = size * n, off = 0;
  while (off < total) {
    ssize_t w = write(fd, data + off, total - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return 0;  // curl reports a write error
    off += static_cast<size_t>(w);
  }
  return total;
}

// GET `url` into `path` (created 0600). Errors name image_download.url.
Result<> fetch(const std::string& url, const std::string& path) {
  UniqueFd out = TRY(open_fd(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  CURL* c = curl_easy_init();
  if (!c) return fail_msg("config.image_download.url: curl_easy_init failed");
  char err[CURL_ERROR_SIZE] = "";
  int fd = out.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_to_fd);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &fd);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "nomad-driver-husk (nspawn)");
  CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK)
    return fail_msg("config.image_download.url: fetch \"", url, "\": ", *err ? err : curl_easy_strerror(rc));
  if (fsync(out.get()) != 0) return fail_sys("fsync ", path);
  return {};
}

Result<std::string> sha256_file(const std::string& path) {
  UniqueFd fd = TRY(open_fd(path, O_RDONLY | O_CLOEXEC));
  image::Sha256 h;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_sys("read ", path);
    if (n == 0) break;
    h.update(std::string_view(buf, static_cast<size_t>(n)));
  }
  return h.finish().hex;
}

// Runs argv (no shell) and waits; its exit status.
Result<int> run(const std::vector<std::string>& argv) {
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  pid_t pid;
  int e = posix_spawnp(&pid, a[0], nullptr, nullptr, a.data(), environ);
  if (e != 0) return fail_errno(e, "run ", argv[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return fail_sys("wait for ", argv[0]);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// libarchive read side over a file, every compression filter.
struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};
struct ArchiveWriter {
  archive* a = archive_write_disk_new();
  ~ArchiveWriter() { archive_write_free(a); }
};

// A tar (any compression) unpacked into `dir` with libarchive's checks
// against "..", absolute names and writes through symlinks.
Result<> unpack_tar(const std::string& file, const std::string& dir) {
  ArchiveReader r;
  archive_read_support_filter_all(r.a);
  archive_read_support_format_tar(r.a);
  archive_read_support_format_gnutar(r.a);
  if (archive_read_open_filename(r.a, file.c_str(), 1 << 16) != ARCHIVE_OK)
    return fail_msg("config.image_download: open the downloaded tar: ", archive_error_string(r.a));
  ArchiveWriter w;
  archive_write_disk_set_options(w.a, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                                          ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  archive_write_disk_set_standard_lookup(w.a);
  archive_entry* e;
  for (;;) {
    int rc = archive_read_next_header(r.a, &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) return fail_msg("config.image_download: read the tar: ", archive_error_string(r.a));
    // Names are made absolute under `dir` here (the plugin is threaded: no
    // chdir), so absolute names in the tar are refused by hand.
    std::string name = archive_entry_pathname(e);
    const char* hl = archive_entry_hardlink(e);
    if (name.starts_with("/") || (hl && hl[0] == '/'))
      return fail_msg("config.image_download: the tar holds an absolute path \"", hl && hl[0] == '/' ? hl : name, "\"");
    archive_entry_set_pathname(e, (dir + "/" + name).c_str());
    if (hl) archive_entry_set_hardlink(e, (dir + "/" + std::string(hl)).c_str());
    if (archive_write_header(w.a, e) < ARCHIVE_WARN)
      return fail_msg("config.image_download: unpack \"", name, "\": ", archive_error_string(w.a));
    const void* buf;
    size_t size;
    la_int64_t off;
    while ((rc = archive_read_data_block(r.a, &buf, &size, &off)) == ARCHIVE_OK)
      if (archive_write_data_block(w.a, buf, size, off) < ARCHIVE_WARN)
        return fail_msg("config.image_download: unpack \"", name, "\": ", archive_error_string(w.a));
    if (rc != ARCHIVE_EOF) return fail_msg("config.image_download: read the tar: ", archive_error_string(r.a));
    if (archive_write_finish_entry(w.a) < ARCHIVE_WARN)
      return fail_msg("config.image_download: unpack \"", name, "\": ", archive_error_string(w.a));
  }
  return {};
}

// A raw image, decompressed when it is xz, gzip, bzip2 or zstd compressed.
Result<> unpack_raw(const std::string& file, const std::string& out_path) {
  ArchiveReader r;
  archive_read_support_filter_all(r.a);
  archive_read_support_format_raw(r.a);
  if (archive_read_open_filename(r.a, file.c_str(), 1 << 16) != ARCHIVE_OK)
    return fail_msg("config.image_download: open the downloaded image: ", archive_error_string(r.a));
  archive_entry* e;
  if (archive_read_next_header(r.a, &e) != ARCHIVE_OK)
    return fail_msg("config.image_download: read the downloaded image: ", archive_error_string(r.a));
  UniqueFd out = TRY(open_fd(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  char buf[1 << 16];
  for (;;) {
    la_ssize_t n = archive_read_data(r.a, buf, sizeof buf);
    if (n < 0) return fail_msg("config.image_download: decompress the image: ", archive_error_string(r.a));
    if (n == 0) break;
    int fd = out.get();
    if (write_to_fd(buf, 1, static_cast<size_t>(n), &fd) != static_cast<size_t>(n)) return fail_sys("write ", out_path);
  }
  if (fsync(out.get()) != 0) return fail_sys("fsync ", out_path);
  return {};
}

void remove_path(const std::string& p) {
  struct stat st;
  if (lstat(p.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    unlink(p.c_str());
    return;
  }
  (void)run({"rm", "-rf", "--one-file-system", "--", p});
}

}  // namespace

Result<ImageSource> resolve_image(const Options& opts, const std::string& image) {
  if (image.empty()) return fail_msg("config.image: required");
  if (image[0] == '/') {
    struct stat st;
    if (stat(image.c_str(), &st) != 0) return fail_sys("config.image: \"", image, "\"");
    return source_at(image, image);
  }
  // Relative: from the plugin's directory first, as nomad-driver-nspawn.
  if (!opts.cwd.empty()) {
    std::string p = clean_path(opts.cwd + "/" + image);
    struct stat st;
    if (stat(p.c_str(), &st) == 0) return source_at(p, image);
  }
  // Else a machine image registered with machined: <dir>/<name> or <name>.raw.
  if (valid_machine_name(image)) {
    for (const std::string& p : {opts.machines_dir + "/" + image, opts.machines_dir + "/" + image + ".raw"}) {
      struct stat st;
      if (stat(p.c_str(), &st) == 0) return source_at(p, image);
    }
  }
  return fail_msg("config.image: \"", image, "\": no such directory or image file (relative to ",
                  opts.cwd.empty() ? "the plugin directory" : opts.cwd, ") nor machine image in ", opts.machines_dir);
}

Result<std::optional<Download>> parse_download(const Value& block) {
  if (block.is_null()) return std::optional<Download>();
  const std::string at = "config.image_download";
  Download d;
  d.url = TRY(read_string(block, "url", at));
  d.type = TRY(read_string(block, "type", at, "tar"));
  d.verify = TRY(read_string(block, "verify", at, "no"));
  d.force = TRY(read_bool(block, "force", at));
  if (d.type.empty()) d.type = "tar";
  if (d.verify.empty()) d.verify = "no";
  if (d.url.empty()) return fail_msg(at, ".url: required");
  if (d.type != "tar" && d.type != "raw" && d.type != "docker")
    return fail_msg(at, ".type: \"", d.type, "\" is not an image type (tar, raw or docker)");
  if (d.verify != "no" && d.verify != "checksum" && d.verify != "signature")
    return fail_msg(at, ".verify: \"", d.verify, "\" is not a verify mode (no, checksum or signature)");
  if (d.type != "docker" && !d.url.starts_with("http://") && !d.url.starts_with("https://"))
    return fail_msg(at, ".url: \"", d.url, "\": a ", d.type, " image is fetched over http:// or https://");
  if (d.type == "docker" && (d.url.starts_with("http://") || d.url.starts_with("https://")))
    return fail_msg(at, ".url: \"", d.url, "\": a docker image is named by a reference (docker.io/library/debian:12), ",
                    "not a URL");
  return std::optional<Download>(d);
}

Result<std::string> checksum_for(std::string_view sums, std::string_view file) {
  // "<hex>  <name>" or "<hex> *<name>" lines, as sha256sum writes them.
  size_t pos = 0;
  while (pos < sums.size()) {
    size_t nl = sums.find('\n', pos);
    std::string_view line = sums.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? sums.size() : nl + 1;
    size_t sp = line.find(' ');
    if (sp != 64) continue;
    std::string_view name = line.substr(sp + 1);
    while (!name.empty() && (name[0] == ' ' || name[0] == '*')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.remove_suffix(1);
    if (name == file) {
      std::string hex(line.substr(0, 64));
      for (char& c : hex) {
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        if (!isxdigit(static_cast<unsigned char>(c))) return fail_msg("SHA256SUMS: bad digest for \"", file, "\"");
      }
      return hex;
    }
  }
  return fail_msg("SHA256SUMS lists no \"", file, "\"");
}

// type = "docker": the image pulled into husk's image store (as the docker
// flavor pulls), its layers merged by a read-only overlay and copied into
// `out`, which becomes the machine image directory `target`. verify does
// not apply (the store checks every blob against its digest).
Result<> download_docker(const Options& opts, const Download& d, const std::string& tmp, const std::string& out,
                         const std::string& target) {
  const std::string at = "config.image_download";
  ImageOptions io{opts.image_store_root, oci::host_platform(), {}};
  io.pull.force = d.force;
  ResolvedImage img = TRY(resolve_image(d.url, io, at + ".url"));
  if (img.layers.empty()) return fail_msg(at, ".url: \"", d.url, "\": the image has no layers");
  std::string mnt = tmp + ".mnt";
  (void)overlay::unmount_overlay(mnt);  // a crashed download's
  rmdir(mnt.c_str());
  if (mkdir(out.c_str(), 0755) != 0) return fail_sys(at, ": create ", out);
  std::string from = img.layers.front();
  bool mounted = false;
  if (img.layers.size() > 1) {
    if (mkdir(mnt.c_str(), 0700) != 0) return fail_sys(at, ": create ", mnt);
    overlay::OverlaySpec ov;
    ov.lower = img.layers;
    auto m = overlay::mount_overlay(ov, mnt);
    if (!m) {
      rmdir(mnt.c_str());
      return fail(std::move(m.error()).with_context(cat(at, ": merge the layers of ", d.url)));
    }
    mounted = true;
    from = mnt;
  }
  auto copied = [&]() -> Result<> {
    UniqueFd src = TRY(open_fd(from, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    UniqueFd dst = TRY(open_fd(out, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    TRYV(copy_tree(src.get(), dst.get()));
    struct stat st;
    if (fstat(src.get(), &st) == 0) {
      (void)fchown(dst.get(), st.st_uid, st.st_gid);
      (void)fchmod(dst.get(), st.st_mode & 07777);
    }
    return {};
  }();
  if (mounted) {
    (void)overlay::unmount_overlay(mnt);
    rmdir(mnt.c_str());
  }
  if (!copied) return fail(std::move(copied.error()).with_context(cat(at, ": copy ", d.url, " into ", out)));
  if (rename(out.c_str(), target.c_str()) != 0) return fail_sys(at, ": rename ", out, " to ", target);
  return {};
}

Result<> download_image(const Options& opts, const std::string& name, const Download& d) {
  const std::string at = "config.image_download";
  if (!valid_machine_name(name))
    return fail_msg("config.image: \"", name,
                    "\": a downloaded image needs a machine name (letters, digits, "
                    "\"-\", \"_\", \".\"), not a path");
  std::string target = opts.machines_dir + "/" + name + (d.type == "raw" ? ".raw" : "");
  struct stat st;
  if (lstat(target.c_str(), &st) == 0) {
    if (!d.force) return {};
    remove_path(target);
  }
  // A machine image holds files of many owners, which only root may make
  // (a docker image's layers in a rootless store are owned by sub-ids and
  // need a user namespace to merge); nomad-driver-nspawn runs as root too.
  if (geteuid() != 0)
    return fail_msg(at, ": a driver that does not run as root cannot download a machine image (type \"", d.type,
                    "\") into ", opts.machines_dir, ": run the driver as root, or give config.image a directory ",
                    "image the driver's user owns");
  if (mkdir(opts.machines_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return fail_sys(at, ": create ", opts.machines_dir);
  // Everything is made under dot names beside the target and renamed into
  // place last, so an interrupted download never looks like an image.
  std::string tmp = opts.machines_dir + "/.husk-download-" + name;
  std::string file = tmp + ".fetch", sums = tmp + ".SHA256SUMS", sig = tmp + ".SHA256SUMS.gpg", out = tmp + ".out";
  struct Cleanup {
    std::vector<std::string> paths;
    ~Cleanup() {
      for (auto& p : paths) remove_path(p);
    }
  } cleanup{{file, sums, sig, out}};
  for (auto& p : cleanup.paths) remove_path(p);

  if (d.type == "docker") return download_docker(opts, d, tmp, out, target);
  TRYV(fetch(d.url, file));
  if (d.verify != "no") {
    std::string base = d.url.substr(0, d.url.find_first_of("?#"));
    size_t slash = base.rfind('/');
    std::string dir = base.substr(0, slash + 1), leaf = base.substr(slash + 1);
    TRYV_CTX(fetch(dir + "SHA256SUMS", sums), at, ".verify: ", d.verify);
    if (d.verify == "signature") {
      if (access(opts.import_keyring.c_str(), R_OK) != 0)
        return fail_msg(at, ".verify: \"signature\": no keyring of trusted image signers at ", opts.import_keyring);
      TRYV_CTX(fetch(dir + "SHA256SUMS.gpg", sig), at, ".verify: signature");
      int rc = TRY_CTX(run({"gpgv", "--quiet", "--keyring", opts.import_keyring, sig, sums}), at, ".verify");
      if (rc != 0)
        return fail_msg(at, ".verify: \"signature\": SHA256SUMS next to ", d.url, " is not signed by a key in ",
                        opts.import_keyring, " (gpgv exit status ", rc, ")");
    }
    std::string want = TRY_CTX(checksum_for(read_host_file(sums), leaf), at, ".verify: ", d.verify);
    std::string got = TRY_CTX(sha256_file(file), at);
    if (got != want)
      return fail_msg(at, ".verify: \"", d.verify, "\": ", d.url, " has SHA-256 ", got, ", SHA256SUMS says ", want);
  }
  if (d.type == "raw") {
    TRYV(unpack_raw(file, out));
  } else {
    if (mkdir(out.c_str(), 0755) != 0) return fail_sys(at, ": create ", out);
    TRYV(unpack_tar(file, out));
  }
  if (rename(out.c_str(), target.c_str()) != 0) return fail_sys(at, ": rename ", out, " to ", target);
  return {};
}

bool host_link_exists(const std::string& name) { return if_nametoindex(name.c_str()) != 0; }

bool host_range_in_use(uint32_t base, uint32_t count) {
  const uint64_t lo = base, hi = static_cast<uint64_t>(base) + count;
  MappedRanges mapped = host_mapped_ranges();
  for (const auto* maps : {&mapped.uid, &mapped.gid})
    for (const auto& m : *maps)
      if (m.host_id < hi && lo < uint64_t{m.host_id} + m.size) return true;
  return false;
}

Result<std::optional<std::pair<uint32_t, uint32_t>>> parse_private_users(const std::string& v,
                                                                         const std::string& machine,
                                                                         uint32_t image_root_uid,
                                                                         const RangeInUse& in_use) {
  using R = std::optional<std::pair<uint32_t, uint32_t>>;
  const std::string field = "config.private_users";
  if (v == "no" || v == "false") return R();
  if (v == "identity") return R({0, 65536});
  if (v == "yes" || v == "true") return R({image_root_uid, 65536});
  if (v.empty() || v == "pick") {
    // nspawn picks from 0x00080000..0x6FFF0000 in 64K steps: the image's
    // own range first (a tree shifted before keeps its range), then a hash
    // of the machine name (stable for a task across restarts), then on.
    constexpr uint32_t kFirst = 0x00080000u, kEnd = 0x6FFF0000u, kSize = 0x10000u;
    constexpr uint32_t kSlots = (kEnd - kFirst) / kSize;
    if (image_root_uid >= kFirst && image_root_uid < kEnd && image_root_uid % kSize == 0 &&
        !in_use(image_root_uid, kSize))
      return R({image_root_uid, kSize});
    uint32_t h = 2166136261u;
    for (unsigned char c : machine) h = (h ^ c) * 16777619u;
    for (uint32_t i = 0, slot = h % kSlots; i < kSlots; ++i, slot = (slot + 1) % kSlots) {
      uint32_t base = kFirst + slot * kSize;
      if (!in_use(base, kSize)) return R({base, kSize});
    }
    return fail_msg(field, ": \"", v.empty() ? "pick" : v, "\": every 64K range from ", kFirst, " to ", kEnd,
                    " is in use by a user namespace");
  }
  auto number = [&](std::string_view s) -> std::optional<uint32_t> {
    uint32_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return n;
  };
  size_t colon = v.find(':');
  auto base = number(std::string_view(v).substr(0, colon));
  auto count =
      colon == std::string::npos ? std::optional<uint32_t>(65536) : number(std::string_view(v).substr(colon + 1));
  if (!base || !count || *count == 0 || static_cast<uint64_t>(*base) + *count > 0xFFFFFFFFull)
    return fail_msg(field, ": \"", v, "\" is not yes, no, pick, identity, <uid> or <uid>:<count>");
  return R({*base, *count});
}

}  // namespace husk::driver::nspawn
