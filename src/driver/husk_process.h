// Running the husk binary from the (multi-threaded) driver: posix_spawn,
// never fork, with chosen fds as stdin/stdout/stderr, in a new session so
// that the process outlives the plugin. The driver builds containers only
// this way; reads (state, stats) go through the runtime library directly.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"

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

struct Captured {
  int status = 0;  // as waitpid reports it
  std::string out, err;
  bool timed_out = false;
};

// Runs argv to completion, capturing stdout and stderr, with `stdin_data`
// written to its stdin. After timeout_ms (-1: none) the process is killed
// and timed_out set.
Result<Captured> run_captured(const std::vector<std::string>& argv, const std::string& stdin_data, int timeout_ms);

// Exit code as a shell reports it: 128+signal for a killed process.
int exit_code_of(int wait_status);

// The path of the husk binary the driver runs: $HUSK_BINARY, else `husk`
// beside the driver binary, else /usr/local/bin/husk, /usr/bin/husk.
std::string husk_binary();

}  // namespace husk::driver
