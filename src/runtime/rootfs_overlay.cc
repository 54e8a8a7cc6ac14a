#include "runtime/rootfs_overlay.h"

#include <string>

#include "common/text.h"

namespace husk::runtime {

Result<overlay::OverlaySpec> parse_rootfs_overlay(std::string_view value) {
  const std::string field = cat("annotations.", kRootfsOverlayAnnotation);
  overlay::OverlaySpec spec;
  bool have_lower = false;
  for (std::string_view opt : split_views(value, ',')) {
    size_t eq = opt.find('=');
    std::string_view key = opt.substr(0, eq), val = eq == std::string_view::npos ? "" : opt.substr(eq + 1);
    if (eq == std::string_view::npos || val.empty())
      return fail_msg(field, ": \"", opt, "\" is not KEY=VALUE (lowerdir, upperdir, workdir)");
    auto path = [&](std::string_view p) -> Result<std::string> {
      if (p.empty() || p[0] != '/') return fail_msg(field, ": ", key, " \"", p, "\" is not an absolute path");
      return std::string(p);
    };
    if (key == "lowerdir") {
      if (have_lower) return fail_msg(field, ": lowerdir given twice");
      have_lower = true;
      for (std::string_view l : split_views(val, ':')) spec.lower.push_back(TRY(path(l)));
    } else if (key == "upperdir" || key == "workdir") {
      std::string& dst = key == "upperdir" ? spec.upper : spec.work;
      if (!dst.empty()) return fail_msg(field, ": ", key, " given twice");
      dst = TRY(path(val));
    } else {
      return fail_msg(field, ": unknown option \"", key, "\" (lowerdir, upperdir, workdir)");
    }
  }
  if (!have_lower) return fail_msg(field, ": no lowerdir");
  if (spec.upper.empty() != spec.work.empty())
    return fail_msg(field, ": upperdir and workdir go together (neither: a read-only root)");
  return spec;
}

}  // namespace husk::runtime
