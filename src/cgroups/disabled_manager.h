// The "disabled" manager (--cgroup-manager disabled): no cgroup at all.
// Every operation succeeds doing nothing, except asking for a limit, which
// would silently not hold.
#pragma once

#include <memory>

#include "cgroups/manager.h"

namespace husk::cgroups {

std::unique_ptr<Manager> make_disabled_manager();

}  // namespace husk::cgroups
