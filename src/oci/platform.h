// Platforms as image indexes and registries name them (os, GOARCH
// architecture, variant): the host's, the `--platform` text, the platform
// object of an index entry or image config, and which entry of an index
// serves a wanted platform. One type for the image store (src/oci/image.h)
// and for registry pulls (src/image/).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "oci/json_reader.h"

namespace husk::oci {

struct Platform {
  std::string architecture;  // GOARCH names: amd64, arm64, arm, 386, ppc64le, s390x, riscv64
  std::string os = "linux";
  std::string variant;  // v7/v6 for arm; "" when none (arm64's "" and "v8" match alike)
  bool operator==(const Platform&) const = default;  // as written, not as matched
  std::string str() const;                           // os/arch[/variant]
};

// The machine this was built for, in GOARCH terms (arm64 without variant).
Platform host_platform();

// "linux/arm64", "linux/arm/v7", or a bare "arm64" (os linux); x86_64 and
// aarch64 are taken for amd64 and arm64. Errors name `what`.
Result<Platform> parse_platform(std::string_view s, std::string_view what = "platform");

// A platform object ({"architecture", "os", "variant"}: an index entry's
// "platform", or an image config's top level). Errors name the JSON path.
Result<Platform> read_platform(const J& j);

// Which of an index's entries serves `want`; `offered[i]` is entry i's
// platform, nullptr when it names none. Same os and architecture; a variant
// asked for must match (arm64's "" and "v8" are one); without one, an entry
// without variant (or with the normalised default) is preferred, then the
// first. Entries for os "unknown" (buildkit's attestations) never serve. The
// error lists the platforms the index offers.
Result<size_t> select_platform_entry(const std::vector<const Platform*>& offered, const Platform& want);

}  // namespace husk::oci
