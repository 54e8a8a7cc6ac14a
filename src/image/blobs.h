// The blob half of the image store: every blob (manifest, index, config,
// layer) under <root>/blobs/sha256/<hex>, the layout of an OCI image
// layout directory. A blob is there only after every byte was checked
// against its digest: writers stream into <root>/tmp/ and commit() renames
// the file into place after the check, so a crash mid-pull leaves only
// partial files in tmp/, which nothing trusts (they are resumed or removed).
//
// Concurrent fetches of one blob coalesce through lock(): an flock on
// <root>/locks/sha256-<hex>.lock, held by the process that fetches; the
// others wait for it and then find has() true.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fd.h"
#include "image/digest.h"

namespace husk::image {

class BlobWriter;

class BlobStore {
 public:
  // Creates <root>/{blobs/sha256,tmp,locks} (0700) when missing.
  static Result<BlobStore> open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string path(const Digest& d) const;  // <root>/blobs/sha256/<hex>
  bool has(const Digest& d) const;
  std::optional<uint64_t> size(const Digest& d) const;

  // Blocks until this process holds the digest's lock; released when the
  // fd closes (also when the process dies).
  Result<UniqueFd> lock(const Digest& d) const;
  // The same, giving up at `deadline` (a pull's timeout also bounds the
  // wait for another pull of the blob).
  Result<UniqueFd> lock(const Digest& d, std::chrono::steady_clock::time_point deadline) const;

  // A writer for `d`. With `resume`, an earlier partial file is kept and its
  // bytes hashed again (the caller asks the server for the rest with a
  // Range request from writer.size()); without, it starts empty.
  // `expected_size` (from the descriptor, -1 when unknown) is enforced:
  // writing past it, or committing short of it, is an error.
  Result<BlobWriter> begin(const Digest& d, int64_t expected_size, bool resume) const;

  // Small blobs (manifests, configs): verify `bytes` against `d`, store.
  Result<> put(const Digest& d, std::string_view bytes) const;
  // Store `bytes` under their own digest.
  Result<Digest> put(std::string_view bytes) const;
  // Read a stored blob of at most `max_bytes`, checked against its digest
  // again (a blob on disk may have been tampered with).
  Result<std::string> read(const Digest& d, size_t max_bytes = 16 << 20) const;
  // Remove a blob (the image store's GC decides which).
  Result<> remove(const Digest& d) const;

 private:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

class BlobWriter {
 public:
  BlobWriter(BlobWriter&&) = default;
  BlobWriter& operator=(BlobWriter&&) = default;
  ~BlobWriter();  // an uncommitted writer keeps its partial file for resume

  Result<> write(std::string_view data);
  uint64_t size() const { return size_; }
  // Checks size and digest; on success the blob is in the store. On a
  // mismatch the partial file is deleted and the error names both digests.
  Result<> commit();
  // Drop the partial file (a failed fetch that must not be resumed).
  void discard();

 private:
  friend class BlobStore;
  BlobWriter() = default;
  Digest digest_;
  std::string tmp_path_, final_path_;
  UniqueFd fd_;
  std::unique_ptr<Sha256> hash_;
  uint64_t size_ = 0;
  int64_t expected_size_ = -1;
};

}  // namespace husk::image
