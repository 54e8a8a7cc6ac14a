// Test helper: an OCI image layout on disk, as skopeo or a registry pull
// would leave it, for the tests that import images through husk's store.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "image/digest.h"

namespace husk::testing {

// `layers` are uncompressed tar streams, bottom first; `config` is the
// image config's "config" object (JSON). The manifest is tagged `ref`.
// Returns the config's digest ("sha256:<hex>": the image id is its hex).
inline std::string write_oci_layout(const std::string& layout, const std::vector<std::string>& layers,
                             const std::string& config, const std::string& ref) {
  std::filesystem::create_directories(layout + "/blobs/sha256");
  auto put = [](const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; };
  auto blob = [&](const std::string& data) {
    std::string hex = husk::image::sha256_of(data).hex;
    put(layout + "/blobs/sha256/" + hex, data);
    return "sha256:" + hex;
  };
  std::string diff_ids, descs;
  for (const auto& layer : layers) {
    std::string d = blob(layer);
    diff_ids += (diff_ids.empty() ? "\"" : ",\"") + d + "\"";
    descs += std::string(descs.empty() ? "" : ",") + R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
             d + "\",\"size\":" + std::to_string(layer.size()) + "}";
  }
  std::string cfg_json = R"({"architecture":"amd64","os":"linux","config":)" + config +
                         R"(,"rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
  std::string cfg = blob(cfg_json);
  std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)"
                         R"({"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + cfg +
                         "\",\"size\":" + std::to_string(cfg_json.size()) + "},\"layers\":[" + descs + "]}";
  std::string m = blob(manifest);
  put(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  put(layout + "/index.json", R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.)"
                              R"(manifest.v1+json","digest":")" + m + "\",\"size\":" + std::to_string(manifest.size()) +
                              R"(,"annotations":{"org.opencontainers.image.ref.name":")" + ref + "\"}}]}");
  return cfg;
}

}  // namespace husk::testing
