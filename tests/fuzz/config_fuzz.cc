// Fuzz target for the config.json parser: anything parse_config accepts must
// emit and parse again. Built with g++ and ASan/UBSan (clang 14 cannot use
// libstdc++ 12's <expected>), with a driver (fuzz_driver.cc) that runs the
// seed corpus and then random mutations of it for a bounded time; the entry
// point is libFuzzer's, so a libFuzzer build can use the same file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "oci/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = husk::oci::parse_config(text);
  if (spec) {
    std::string out = husk::oci::emit_config(*spec);
    auto again = husk::oci::parse_config(out);
    if (!again) abort();  // we emitted something we cannot read
    if (husk::oci::emit_config(*again) != out) abort();
  }
  (void)husk::oci::parse_process(text);
  (void)husk::oci::parse_resources(text);
  (void)husk::oci::parse_state(text);
  return 0;
}
