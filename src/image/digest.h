// Content digests ("sha256:<64 hex>"), as OCI descriptors name blobs, and
// an incremental SHA-256 (OpenSSL's libcrypto; the image code is not part
// of the lean husk binary).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

namespace husk::image {

struct Digest {
  std::string algorithm;  // "sha256"
  std::string hex;        // lower-case, 64 digits
  std::string str() const { return algorithm + ":" + hex; }
  bool operator==(const Digest&) const = default;
};

// Parses and validates "sha256:<hex>"; other algorithms are refused with
// an error naming `what` (e.g. "manifest layers[2].digest").
Result<Digest> parse_digest(std::string_view s, std::string_view what);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  Digest finish();  // once

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

Digest sha256_of(std::string_view data);

}  // namespace husk::image
