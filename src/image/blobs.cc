#include "image/blobs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace husk::image {

namespace {

Result<> mkdir_p(const std::string& path, mode_t mode) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), mode) < 0 && errno != EEXIST) return fail_sys("create directory ", cur);
  }
  return {};
}

}  // namespace

Result<BlobStore> BlobStore::open(const std::string& root) {
  if (root.empty() || root[0] != '/') return fail_msg("image store root \"", root, "\" must be an absolute path");
  for (const char* sub : {"/blobs/sha256", "/tmp", "/locks"}) TRYV(mkdir_p(root + sub, 0700));
  return BlobStore(root);
}

std::string BlobStore::path(const Digest& d) const { return cat(root_, "/blobs/", d.algorithm, "/", d.hex); }

bool BlobStore::has(const Digest& d) const {
  struct stat st;
  return ::stat(path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<uint64_t> BlobStore::size(const Digest& d) const {
  struct stat st;
  if (::stat(path(d).c_str(), &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

Result<UniqueFd> BlobStore::lock(const Digest& d) const {
  std::string p = cat(root_, "/locks/", d.algorithm, "-", d.hex, ".lock");
  UniqueFd fd = TRY(open_fd(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  while (flock(fd.get(), LOCK_EX) < 0)
    if (errno != EINTR) return fail_sys("lock ", p);
  return fd;
}

Result<UniqueFd> BlobStore::lock(const Digest& d, std::chrono::steady_clock::time_point deadline) const {
  std::string p = cat(root_, "/locks/", d.algorithm, "-", d.hex, ".lock");
  UniqueFd fd = TRY(open_fd(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  // flock has no timeout: poll, a few times a second.
  while (flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return fail_sys("lock ", p);
    if (std::chrono::steady_clock::now() >= deadline)
      return fail_msg("blob ", d.str(), ": the deadline passed while another pull held its lock ", p);
    usleep(50 * 1000);
  }
  return fd;
}

Result<BlobWriter> BlobStore::begin(const Digest& d, int64_t expected_size, bool resume) const {
  BlobWriter w;
  w.digest_ = d;
  w.final_path_ = path(d);
  w.tmp_path_ = cat(root_, "/tmp/", d.algorithm, "-", d.hex, ".partial");
  w.expected_size_ = expected_size;
  w.hash_ = std::make_unique<Sha256>();
  int flags = O_RDWR | O_CREAT | O_CLOEXEC | (resume ? 0 : O_TRUNC);
  w.fd_ = TRY(open_fd(w.tmp_path_, flags, 0600));
  if (resume) {
    // Hash what an earlier try wrote, then append.
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(w.fd_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail_sys("read ", w.tmp_path_);
      if (n == 0) break;
      w.hash_->update(std::string_view(buf, n));
      w.size_ += n;
    }
    if (expected_size >= 0 && w.size_ > static_cast<uint64_t>(expected_size)) {
      // Longer than the blob can be: start over.
      if (ftruncate(w.fd_.get(), 0) < 0 || lseek(w.fd_.get(), 0, SEEK_SET) < 0) return fail_sys("truncate ", w.tmp_path_);
      w.hash_ = std::make_unique<Sha256>();
      w.size_ = 0;
    }
  }
  return w;
}

BlobWriter::~BlobWriter() = default;

Result<> BlobWriter::write(std::string_view data) {
  if (expected_size_ >= 0 && size_ + data.size() > static_cast<uint64_t>(expected_size_))
    return fail_msg("blob ", digest_.str(), ": more data than the descriptor's size ", expected_size_);
  TRYV_CTX(write_all(fd_.get(), data), "write ", tmp_path_);
  hash_->update(data);
  size_ += data.size();
  return {};
}

Result<> BlobWriter::commit() {
  if (!fd_) return fail_msg("blob ", digest_.str(), ": writer already finished");
  if (expected_size_ >= 0 && size_ != static_cast<uint64_t>(expected_size_)) {
    std::string msg = cat("blob ", digest_.str(), ": got ", size_, " bytes, the descriptor says ", expected_size_);
    discard();
    return fail_msg(msg);
  }
  Digest got = hash_->finish();
  if (got != digest_) {
    discard();
    return fail_msg("blob ", digest_.str(), ": digest mismatch: the content is ", got.str());
  }
  if (fsync(fd_.get()) < 0) return fail_sys("fsync ", tmp_path_);
  fd_.reset();
  if (rename(tmp_path_.c_str(), final_path_.c_str()) < 0) return fail_sys("rename ", tmp_path_, " to ", final_path_);
  return {};
}

void BlobWriter::discard() {
  fd_.reset();
  if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

Result<> BlobStore::put(const Digest& d, std::string_view bytes) const {
  if (has(d)) {
    return {};
  }
  BlobWriter w = TRY(begin(d, static_cast<int64_t>(bytes.size()), false));
  TRYV(w.write(bytes));
  return w.commit();
}

Result<Digest> BlobStore::put(std::string_view bytes) const {
  Digest d = sha256_of(bytes);
  TRYV(put(d, bytes));
  return d;
}

Result<std::string> BlobStore::read(const Digest& d, size_t max_bytes) const {
  std::string p = path(d);
  UniqueFd fd = TRY(open_fd(p, O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return fail_sys("stat ", p);
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return fail_msg("blob ", d.str(), " is ", st.st_size, " bytes, more than the ", max_bytes, " allowed here");
  std::string data = TRY(read_all(fd.get()));
  if (sha256_of(data) != d) return fail_msg("blob ", d.str(), " in ", p, " does not match its digest (corrupted store)");
  return data;
}

Result<> BlobStore::remove(const Digest& d) const {
  if (::unlink(path(d).c_str()) < 0 && errno != ENOENT) return fail_sys("remove ", path(d));
  return {};
}

}  // namespace husk::image
