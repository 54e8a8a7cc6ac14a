// Descriptor reading of manifests and indexes (yajl through oci::J, so
// errors carry the JSON path).
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
  if (J p = j["platform"]; p.present()) d.platform = TRY(oci::read_platform(p));
  return d;
}

}  // namespace

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
    if (m.media_type == oci::media::kDockerSchema1 || m.media_type == oci::media::kDockerSchema1Signed)
      return fail_msg("docker schema 1 manifests are not supported (deprecated since 2017; push the image again)");
    bool has_manifests = root["manifests"].present(), has_layers = root["layers"].present();
    if (m.media_type == oci::media::kOciIndex || m.media_type == oci::media::kDockerList ||
        (m.media_type.empty() && has_manifests && !has_layers)) {
      m.kind = ManifestDoc::kIndex;
      J ms = root["manifests"];
      TRYV(oci::need_array(ms));
      for (size_t i = 0; i < ms.size(); ++i) m.manifests.push_back(TRY(parse_descriptor(ms.at(i))));
      return m;
    }
    if (m.media_type == oci::media::kOciManifest || m.media_type == oci::media::kDockerManifest ||
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

Result<Descriptor> select_platform(const ManifestDoc& index, const oci::Platform& want, std::string_view what) {
  std::vector<const oci::Platform*> offered;
  for (const Descriptor& d : index.manifests) offered.push_back(d.platform ? &*d.platform : nullptr);
  auto i = oci::select_platform_entry(offered, want);
  if (!i) return fail(std::move(i.error()).with_context(std::string(what)));
  return index.manifests[*i];
}

}  // namespace husk::image
