#include "image/digest.h"

#include <openssl/evp.h>

namespace husk::image {

Result<Digest> parse_digest(std::string_view s, std::string_view what) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos)
    return fail_msg(what, ": \"", s, "\" is not a digest (want sha256:<64 hex digits>)");
  std::string_view algo = s.substr(0, colon), hex = s.substr(colon + 1);
  if (algo != "sha256") return fail_msg(what, ": \"", s, "\": digest algorithm \"", algo, "\" is not supported (only sha256)");
  if (hex.size() != 64) return fail_msg(what, ": \"", s, "\": a sha256 digest has 64 hex digits");
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return fail_msg(what, ": \"", s, "\": a digest has lower-case hex digits only");
  return Digest{std::string(algo), std::string(hex)};
}

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;

void Sha256::update(std::string_view data) { EVP_DigestUpdate(ctx_->md, data.data(), data.size()); }

Digest Sha256::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &n);
  static const char* xd = "0123456789abcdef";
  std::string hex;
  hex.reserve(n * 2);
  for (unsigned i = 0; i < n; ++i) {
    hex.push_back(xd[out[i] >> 4]);
    hex.push_back(xd[out[i] & 15]);
  }
  return Digest{"sha256", std::move(hex)};
}

Digest sha256_of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

}  // namespace husk::image
