// Running an outside program to completion with its output captured: the
// one helper behind the runtime's nft runs and the driver's husk commands.
// It uses posix_spawn, never fork, so it is safe in the multi-threaded
// driver as in the single-threaded husk; the child starts with no signal
// blocked and every signal at its default.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk {

struct Captured {
  int status = 0;  // as waitpid reports it
  std::string out, err;
  bool timed_out = false;
};

// Runs argv (argv[0] a path, the caller's environment) with `stdin_data`
// on its stdin and its stdout and stderr captured. After timeout_ms (-1:
// none) it is killed with SIGKILL and timed_out set. An error only when it
// cannot be started or waited for; a non-zero exit is in `status`.
Result<Captured> run_captured(const std::vector<std::string>& argv, const std::string& stdin_data = {},
                              int timeout_ms = -1);

// What run_captured calls while the program runs: `on_stderr_line` with
// each line of its stderr as it comes (the lines are also in `err`), and
// `on_idle` about once a second.
struct CaptureCallbacks {
  std::function<void(const std::string& line)> on_stderr_line;
  std::function<void()> on_idle;
};
Result<Captured> run_captured(const std::vector<std::string>& argv, const std::string& stdin_data, int timeout_ms,
                              const CaptureCallbacks& callbacks);

// Exit code as a shell reports it: 128+signal for a killed process.
int exit_code_of(int wait_status);

// "exit 3" / "signal 9", for messages.
std::string describe_wait_status(int wait_status);

// Start time of a process from /proc/<pid>/stat (clock ticks since boot),
// 0 when it does not exist. A zombie counts as not existing: it can no
// longer run anything. A pid is taken with its start time, so that a
// recycled pid is never taken for the process it was.
uint64_t process_start_time(pid_t pid);

// In a forked child about to exec a helper (or to live as one): no signal
// blocked, every disposition the default (pasta refuses SIGPIPE ignored).
void default_signals();
bool process_alive(pid_t pid, uint64_t start_time);

// Sends `sig` (0: none) to the process `pid` that started at `start_time`
// and waits up to timeout_ms for it to be gone; it need not be our child.
// True when it is gone, or was before.
bool signal_and_await_exit(pid_t pid, uint64_t start_time, int sig, int timeout_ms);

}  // namespace husk
