// One function per husk command; dispatch() picks it by name.
#pragma once

#include <string>
#include <vector>

#include "runtime/container.h"

namespace husk::cli {

// Runs args[at] (the command name) with the rest; returns the exit status.
int dispatch(const runtime::GlobalOptions& g, const std::vector<std::string>& args, size_t at);

}  // namespace husk::cli
