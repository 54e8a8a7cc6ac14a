// Running the husk binary from the (multi-threaded) driver: posix_spawn,
// never fork, with chosen fds as stdin/stdout/stderr, in a new session so
// that the process outlives the plugin. The driver builds containers only
// this way; reads (state, stats) go through the runtime library directly.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/program.h"

namespace husk::driver {

struct SpawnOptions {
  int stdin_fd = -1;   // -1: /dev/null
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool new_session = true;
  std::vector<std::string> extra_env;  // "K=V", replacing the driver's own K
};

// Starts `argv` (argv[0] a path). Every other fd of the driver is
// close-on-exec, so only these three reach the child.
Result<pid_t> spawn(const std::vector<std::string>& argv, const SpawnOptions& o);

// Running a program to completion with its output captured, and its exit
// code: the common helper (common/program.h).
using husk::Captured;
using husk::exit_code_of;
using husk::run_captured;

// The path of the husk binary the driver runs: $HUSK_BINARY, else `husk`
// beside the driver binary, else /usr/local/bin/husk, /usr/bin/husk.
std::string husk_binary();

// The path of husk-image, which a rootless driver runs for the store's
// work that forks (unpacks and removals in the store's user namespace):
// $HUSK_IMAGE_BINARY, else `husk-image` beside the driver binary (or in
// the build tree's src/image), else /usr/local/bin/husk-image,
// /usr/bin/husk-image.
std::string husk_image_binary();

}  // namespace husk::driver
