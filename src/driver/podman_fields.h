// Field names of the podman task config in error messages ("config.cap_add[1]"),
// and the separator splitting podman's "a:b:c" strings, shared by the podman
// flavor's translation files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace husk::driver::podman {

inline std::string f(std::string_view name) { return cat("config.", name); }
inline std::string fi(std::string_view name, size_t i) { return cat("config.", name, "[", i, "]"); }

inline std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); i++)
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

}  // namespace husk::driver::podman
