// Durations in Go's time.ParseDuration syntax, as Nomad, docker, podman and
// runc write them ("90s", "1m30s", "1.5h", "300ms", "-2h45m", "0"): the one
// parser behind every duration husk reads (task config, plugin options,
// `husk-image` and `husk events` flags).
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/error.h"

namespace husk {

// Exactly what Go accepts: an optional sign, then one or more decimal
// numbers, each with an optional fraction and a unit (ns, us, µs, ms, s,
// m, h), or a bare "0"; at most 2^63-1 ns either way. Callers check the
// sign and range they allow. Errors name `what` and the value:
// `image_pull_timeout: unknown unit "x" in duration "5x" (units: ns, us, ms, s, m, h)`.
Result<std::chrono::nanoseconds> parse_go_duration(std::string_view s, std::string_view what);

// The clock's time in milliseconds (CLOCK_MONOTONIC for deadlines and
// periods, CLOCK_REALTIME for timestamps).
int64_t clock_ms(clockid_t clock = CLOCK_MONOTONIC);

}  // namespace husk
