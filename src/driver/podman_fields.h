// Field names of the podman task config in error messages ("config.cap_add[1]"),
// and the separator splitting podman's "a:b:c" strings, shared by the podman
// flavor's translation files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "driver/bundle_files.h"

namespace husk::driver::podman {

inline std::string f(std::string_view name) { return cat("config.", name); }
inline std::string fi(std::string_view name, size_t i) { return cat("config.", name, "[", i, "]"); }

using driver::split;

}  // namespace husk::driver::podman
