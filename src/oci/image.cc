// Parsing the OCI and docker image formats (see image.h).
#include "oci/image.h"

#include "oci/json_reader.h"
#include "oci/json_writer.h"

namespace husk::oci {

namespace {

Result<std::string> opt_str(const J& j) {
  auto v = TRY(opt_string(j));
  return v ? *v : std::string();
}

Result<std::map<std::string, std::string>> opt_map(const J& j) {
  if (!j.present()) return std::map<std::string, std::string>();
  return get_string_map(j);
}

Result<Descriptor> parse_descriptor(const J& j) {
  TRYV(need_object(j));
  Descriptor d;
  d.media_type = TRY(opt_str(j["mediaType"]));
  d.digest = TRY(get_string(j["digest"]));
  if (!d.digest.starts_with("sha256:") || d.digest.size() != 7 + 64)
    return bad(j["digest"], "\"", d.digest, "\" is not a sha256 digest");
  d.size = TRY(get_int(j["size"], 0, INT64_MAX));
  if (j["platform"].present()) d.platform = TRY(read_platform(j["platform"]));
  d.annotations = TRY(opt_map(j["annotations"]));
  return d;
}

// Keys of an object used as a set ("ExposedPorts": {"80/tcp": {}}).
Result<std::vector<std::string>> key_set(const J& j) {
  if (!j.present()) return std::vector<std::string>();
  TRYV(need_object(j));
  return j.keys();
}

Result<std::optional<std::vector<std::string>>> opt_strings(const J& j) {
  if (!j.present()) return std::optional<std::vector<std::string>>();
  return std::optional<std::vector<std::string>>(TRY(get_strings(j)));
}

Result<> check_schema_version(const J& root) {
  auto v = TRY(opt_int(root["schemaVersion"], INT64_MIN, INT64_MAX));
  if (v && *v != 2) return bad(root["schemaVersion"], "schema version ", *v, " is not supported (only 2)");
  return {};
}

}  // namespace

Result<ManifestKind> manifest_kind(std::string_view json) {
  auto doc = TRY(JsonDoc::parse(json));
  J root = doc.root();
  TRYV(need_object(root));
  std::string mt = TRY(opt_str(root["mediaType"]));
  if (mt == media::kOciIndex || mt == media::kDockerList) return ManifestKind::kIndex;
  if (mt == media::kOciManifest || mt == media::kDockerManifest) return ManifestKind::kManifest;
  if (!mt.empty()) return bad(root["mediaType"], "unsupported manifest media type \"", mt, "\"");
  if (root["manifests"].present()) return ManifestKind::kIndex;
  if (root["config"].present() && root["layers"].present()) return ManifestKind::kManifest;
  return bad(root, "neither an image index (\"manifests\") nor an image manifest (\"config\", \"layers\")");
}

Result<ImageIndex> parse_image_index(std::string_view json) {
  auto doc = TRY(JsonDoc::parse(json));
  J root = doc.root();
  TRYV(need_object(root));
  TRYV(check_schema_version(root));
  ImageIndex idx;
  idx.media_type = TRY(opt_str(root["mediaType"]));
  if (!idx.media_type.empty() && idx.media_type != media::kOciIndex && idx.media_type != media::kDockerList)
    return bad(root["mediaType"], "\"", idx.media_type, "\" is not an image index media type");
  J ms = root["manifests"];
  TRYV(need_array(ms));
  for (size_t i = 0; i < ms.size(); i++) idx.manifests.push_back(TRY(parse_descriptor(ms.at(i))));
  return idx;
}

Result<ImageManifest> parse_image_manifest(std::string_view json) {
  auto doc = TRY(JsonDoc::parse(json));
  J root = doc.root();
  TRYV(need_object(root));
  TRYV(check_schema_version(root));
  ImageManifest m;
  m.media_type = TRY(opt_str(root["mediaType"]));
  if (m.media_type.empty()) m.media_type = std::string(media::kOciManifest);
  if (m.media_type != media::kOciManifest && m.media_type != media::kDockerManifest)
    return bad(root["mediaType"], "\"", m.media_type, "\" is not an image manifest media type");
  m.config = TRY(parse_descriptor(root["config"]));
  J layers = root["layers"];
  TRYV(need_array(layers));
  for (size_t i = 0; i < layers.size(); i++) {
    Descriptor d = TRY(parse_descriptor(layers.at(i)));
    if (!is_layer_media_type(d.media_type))
      return bad(layers.at(i)["mediaType"], "unsupported layer media type \"", d.media_type, "\"");
    m.layers.push_back(std::move(d));
  }
  m.annotations = TRY(opt_map(root["annotations"]));
  return m;
}

Result<ImageConfig> parse_image_config(std::string_view json) {
  auto doc = TRY(JsonDoc::parse(json));
  J root = doc.root();
  TRYV(need_object(root));
  ImageConfig c;
  c.platform = TRY(read_platform(root));
  c.created = TRY(opt_str(root["created"]));
  J cfg = root["config"];
  if (cfg.present()) {
    TRYV(need_object(cfg));
    c.entrypoint = TRY(opt_strings(cfg["Entrypoint"]));
    c.cmd = TRY(opt_strings(cfg["Cmd"]));
    if (cfg["Env"].present()) c.env = TRY(get_strings(cfg["Env"]));
    for (size_t i = 0; i < c.env.size(); i++)
      if (c.env[i].find('=') == std::string::npos) return bad(cfg["Env"].at(i), "\"", c.env[i], "\" is not KEY=VALUE");
    c.working_dir = TRY(opt_str(cfg["WorkingDir"]));
    c.user = TRY(opt_str(cfg["User"]));
    c.stop_signal = TRY(opt_str(cfg["StopSignal"]));
    c.labels = TRY(opt_map(cfg["Labels"]));
    c.exposed_ports = TRY(key_set(cfg["ExposedPorts"]));
    c.volumes = TRY(key_set(cfg["Volumes"]));
  }
  J rootfs = root["rootfs"];
  TRYV(need_object(rootfs));
  std::string type = TRY(get_string(rootfs["type"]));
  if (type != "layers") return bad(rootfs["type"], "\"", type, "\" is not \"layers\"");
  J ids = rootfs["diff_ids"];
  c.diff_ids = TRY(get_strings(ids));
  for (size_t i = 0; i < c.diff_ids.size(); i++)
    if (!c.diff_ids[i].starts_with("sha256:") || c.diff_ids[i].size() != 7 + 64)
      return bad(ids.at(i), "\"", c.diff_ids[i], "\" is not a sha256 digest");
  return c;
}

Result<const Descriptor*> select_platform(const ImageIndex& index, const Platform& want) {
  std::vector<const Platform*> offered;
  for (const auto& d : index.manifests) offered.push_back(d.platform ? &*d.platform : nullptr);
  size_t i = TRY(select_platform_entry(offered, want));
  return &index.manifests[i];
}

Result<std::vector<DockerArchiveImage>> parse_docker_archive_manifest(std::string_view json) {
  auto doc = TRY(JsonDoc::parse(json));
  J root = doc.root("manifest.json");
  TRYV(need_array(root));
  std::vector<DockerArchiveImage> out;
  for (size_t i = 0; i < root.size(); i++) {
    J e = root.at(i);
    TRYV(need_object(e));
    DockerArchiveImage img;
    img.config = TRY(get_string(e["Config"]));
    if (e["RepoTags"].present()) img.repo_tags = TRY(get_strings(e["RepoTags"]));
    img.layers = TRY(get_strings(e["Layers"]));
    out.push_back(std::move(img));
  }
  if (out.empty()) return bad(root, "no images");
  return out;
}

Result<> check_oci_layout(std::string_view json) {
  auto doc = TRY(JsonDoc::parse(json));
  J root = doc.root("oci-layout");
  TRYV(need_object(root));
  std::string v = TRY(get_string(root["imageLayoutVersion"]));
  if (!v.starts_with("1.")) return bad(root["imageLayoutVersion"], "version \"", v, "\" is not supported (1.x)");
  return {};
}

std::string emit_image_manifest(const ImageManifest& m) {
  JsonWriter w(false);
  auto desc = [&](const Descriptor& d) {
    w.begin_object().key("mediaType").str(d.media_type).key("digest").str(d.digest).key("size").num(d.size);
    w.end_object();
  };
  w.begin_object().key("schemaVersion").num(2).key("mediaType").str(m.media_type).key("config");
  desc(m.config);
  w.key("layers").begin_array();
  for (const auto& l : m.layers) desc(l);
  w.end_array().end_object();
  return w.take();
}

bool is_layer_media_type(std::string_view mt) {
  for (std::string_view ok : {media::kOciLayer, media::kOciLayerGzip, media::kOciLayerZstd, media::kDockerLayer,
                              std::string_view("application/vnd.oci.image.layer.nondistributable.v1.tar"),
                              std::string_view("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
                              std::string_view("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"),
                              std::string_view("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")})
    if (mt == ok) return true;
  return false;
}

}  // namespace husk::oci
