// Platform text, JSON and matching (see platform.h).
#include "oci/platform.h"

namespace husk::oci {

namespace {

// Variants that mean the same as none at all.
std::string normal_variant(const Platform& p) {
  if (p.architecture == "arm64" && (p.variant.empty() || p.variant == "v8")) return "v8";
  return p.variant;
}

}  // namespace

std::string Platform::str() const { return cat(os, "/", architecture, variant.empty() ? "" : "/", variant); }

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
#error "host_platform: add this architecture's GOARCH name"
#endif
  return p;
}

Result<Platform> parse_platform(std::string_view s, std::string_view what) {
  auto bad_text = [&] {
    return fail_msg(what, " \"", s, "\": want os/arch[/variant], e.g. linux/arm64 or linux/arm/v7");
  };
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
      return bad_text();
  Platform pl;
  if (parts.size() == 1) {
    pl.architecture = std::string(parts[0]);
  } else if (parts.size() <= 3) {
    pl.os = std::string(parts[0]);
    pl.architecture = std::string(parts[1]);
    if (parts.size() == 3) pl.variant = std::string(parts[2]);
  } else {
    return bad_text();
  }
  // Common spellings of the same machine.
  if (pl.architecture == "x86_64") pl.architecture = "amd64";
  if (pl.architecture == "aarch64") pl.architecture = "arm64";
  return pl;
}

Result<Platform> read_platform(const J& j) {
  TRYV(need_object(j));
  Platform p;
  p.architecture = TRY(get_string(j["architecture"]));
  p.os = TRY(get_string(j["os"]));
  p.variant = TRY(opt_string(j["variant"])).value_or("");
  return p;
}

Result<size_t> select_platform_entry(const std::vector<const Platform*>& offered, const Platform& want) {
  size_t best = offered.size();
  int best_score = -1;
  std::string listed;
  for (size_t i = 0; i < offered.size(); ++i) {
    if (!offered[i]) continue;
    const Platform& p = *offered[i];
    if (p.os == "unknown") continue;  // attestation manifests (buildkit)
    listed += cat(listed.empty() ? "" : ", ", p.str());
    if (p.os != want.os || p.architecture != want.architecture) continue;
    int score;
    if (!want.variant.empty()) {
      if (normal_variant(p) != normal_variant(want)) continue;
      score = 2;
    } else {
      score = (p.variant.empty() || normal_variant(p) == normal_variant(want)) ? 2 : 1;
    }
    if (score > best_score) {
      best = i;
      best_score = score;
    }
  }
  if (best == offered.size())
    return fail_msg("no image for platform ", want.str(), " (the index offers: ", listed.empty() ? "none" : listed,
                    ")");
  return best;
}

}  // namespace husk::oci
