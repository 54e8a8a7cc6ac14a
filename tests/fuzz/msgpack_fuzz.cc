// Fuzz target for the cty msgpack decoder (the bytes Nomad sends in
// SetConfig and StartTask): never crash; what decodes without a schema must
// encode and decode again to the same bytes; with the podman task schema
// (dynamic attributes, list(map) merging, blocks) it only must not crash.
// Same driver as config_fuzz: `msgpack_fuzz CORPUS SECONDS`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "driver/podman_flavor.h"
#include "driver/value.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace husk::driver;
  static const Spec task = podman::task_schema();
  static const Spec plugin = podman::plugin_schema();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto v = decode_msgpack(bytes)) {
    std::string out = encode_msgpack(*v);
    auto again = decode_msgpack(out);
    if (!again) abort();  // we encoded something we cannot read
    if (encode_msgpack(*again) != out) abort();
  }
  if (auto v = decode_msgpack(bytes, task.get())) (void)encode_msgpack(*v, *task);
  if (auto v = decode_msgpack(bytes, plugin.get())) (void)podman::parse_options(*v);
  return 0;
}
