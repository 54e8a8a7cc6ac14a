// Descriptor and platform reading of manifests and indexes (yajl through
// oci::J, so errors carry the JSON path), and platform matching.
#include "image/manifest_json.h"

#include "oci/json_reader.h"

namespace husk::image {

using oci::J;

namespace {

Result<Descriptor> parse_descriptor(const J& j) {
  TRYV(oci::need_object(j));
  Descriptor d;
  d.media_type = TRY(oci::opt_string(j["mediaType"])).value_or("");
  std::string digest = TRY(oci::get_string(j["digest"]));
  d.digest = TRY(parse_digest(digest, j["digest"].path));
  d.size = static_cast<int64_t>(TRY(oci::get_uint(j["size"], INT64_MAX)));
  if (J p = j["platform"]; p.present()) {
    TRYV(oci::need_object(p));
    Platform pl;
    pl.os = TRY(oci::get_string(p["os"]));
    pl.architecture = TRY(oci::get_string(p["architecture"]));
    pl.variant = TRY(oci::opt_string(p["variant"])).value_or("");
    d.platform = pl;
  }
  return d;
}

// Variants that mean the same as none at all.
std::string normal_variant(const Platform& p) {
  if (p.architecture == "arm64" && (p.variant.empty() || p.variant == "v8")) return "v8";
  return p.variant;
}

}  // namespace

std::string Platform::str() const { return cat(os, "/", architecture, variant.empty() ? "" : "/", variant); }

Result<Platform> parse_platform(std::string_view s, std::string_view what) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    parts.push_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (std::string_view p : parts)
    if (p.empty() || p.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string_view::npos)
      return fail_msg(what, " \"", s, "\": want os/arch[/variant], e.g. linux/arm64 or linux/arm/v7");
  Platform pl;
  if (parts.size() == 1) {
    pl.architecture = std::string(parts[0]);
  } else if (parts.size() <= 3) {
    pl.os = std::string(parts[0]);
    pl.architecture = std::string(parts[1]);
    if (parts.size() == 3) pl.variant = std::string(parts[2]);
  } else {
    return fail_msg(what, " \"", s, "\": want os/arch[/variant], e.g. linux/arm64 or linux/arm/v7");
  }
  // Common spellings of the same machine.
  if (pl.architecture == "x86_64") pl.architecture = "amd64";
  if (pl.architecture == "aarch64") pl.architecture = "arm64";
  return pl;
}

Platform host_platform() {
  Platform p;
#if defined(__x86_64__)
  p.architecture = "amd64";
#elif defined(__aarch64__)
  p.architecture = "arm64";
#elif defined(__arm__)
  p.architecture = "arm";
  p.variant = "v7";
#elif defined(__i386__)
  p.architecture = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  p.architecture = "ppc64le";
#elif defined(__s390x__)
  p.architecture = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  p.architecture = "riscv64";
#else
  p.architecture = "amd64";
#endif
  return p;
}

Result<ManifestDoc> parse_manifest(std::string_view json, std::string_view content_type, std::string_view what) {
  auto doc = oci::JsonDoc::parse(json);
  if (!doc) return fail(std::move(doc.error()).with_context(std::string(what)));
  J root = doc->root();
  auto r = [&]() -> Result<ManifestDoc> {
    TRYV(oci::need_object(root));
    ManifestDoc m;
    m.media_type = TRY(oci::opt_string(root["mediaType"])).value_or("");
    if (m.media_type.empty()) {
      // Content-Type may carry parameters ("; charset=utf-8").
      m.media_type = std::string(content_type.substr(0, content_type.find(';')));
      while (!m.media_type.empty() && m.media_type.back() == ' ') m.media_type.pop_back();
    }
    if (m.media_type == media::kDockerSchema1 || m.media_type == media::kDockerSchema1Signed)
      return fail_msg("docker schema 1 manifests are not supported (deprecated since 2017; push the image again)");
    bool has_manifests = root["manifests"].present(), has_layers = root["layers"].present();
    if (m.media_type == media::kOciIndex || m.media_type == media::kDockerList ||
        (m.media_type.empty() && has_manifests && !has_layers)) {
      m.kind = ManifestDoc::kIndex;
      J ms = root["manifests"];
      TRYV(oci::need_array(ms));
      for (size_t i = 0; i < ms.size(); ++i) m.manifests.push_back(TRY(parse_descriptor(ms.at(i))));
      return m;
    }
    if (m.media_type == media::kOciManifest || m.media_type == media::kDockerManifest ||
        (m.media_type.empty() && has_layers)) {
      m.kind = ManifestDoc::kImage;
      m.config = TRY(parse_descriptor(root["config"]));
      J ls = root["layers"];
      TRYV(oci::need_array(ls));
      for (size_t i = 0; i < ls.size(); ++i) m.layers.push_back(TRY(parse_descriptor(ls.at(i))));
      return m;
    }
    return fail_msg("media type \"", m.media_type, "\" is not an image manifest or index");
  }();
  if (!r) return fail(std::move(r.error()).with_context(std::string(what)));
  return r;
}

Result<Descriptor> select_platform(const ManifestDoc& index, const Platform& want, std::string_view what) {
  const Descriptor* best = nullptr;
  int best_score = -1;
  std::string offered;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform) continue;
    const Platform& p = *d.platform;
    if (p.os == "unknown") continue;  // attestation manifests (buildkit)
    offered += cat(offered.empty() ? "" : ", ", p.str());
    if (p.os != want.os || p.architecture != want.architecture) continue;
    int score;
    if (!want.variant.empty()) {
      if (normal_variant(p) != normal_variant(want)) continue;
      score = 2;
    } else {
      score = (p.variant.empty() || normal_variant(p) == normal_variant(want)) ? 2 : 1;
    }
    if (score > best_score) {
      best = &d;
      best_score = score;
    }
  }
  if (!best)
    return fail_msg(what, ": no image for platform ", want.str(),
                    " (the index offers: ", offered.empty() ? "none" : offered, ")");
  return *best;
}

}  // namespace husk::image
