// `husk events`, and the duration syntax of its --interval.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/container.h"

namespace husk::cli {

// Go's time.Duration syntax, as runc's --interval: "5s", "100ms", "1m30s".
Result<int64_t> parse_duration_ms(const std::string& flag, const std::string& value);

int events_command(const runtime::GlobalOptions& g, const std::vector<std::string>& args, size_t at);

}  // namespace husk::cli
