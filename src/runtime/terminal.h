// Terminals: the container's pty (made inside the container's devpts), the
// --console-socket hand-off of its master (SCM_RIGHTS, as runc/crun/conmon
// expect), and the foreground proxy when husk itself holds the terminal.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "common/fd.h"

namespace husk::runtime {

struct Pty {
  UniqueFd master;
  UniqueFd slave;
};

// Open a pty through the given ptmx path (the container's /dev/ptmx).
Result<Pty> open_pty(const std::string& ptmx_path);
Result<> set_window_size(int fd, unsigned rows, unsigned cols);
// In the process that will exec: new session, the slave as controlling
// terminal and as fds 0, 1, 2.
Result<> attach_terminal(int slave_fd);
// Connect to --console-socket and send the master.
Result<> send_console(const std::string& socket_path, int master_fd);
// Foreground: copy between our stdio and the master until the process
// behind pidfd exits and the master has drained. Puts a tty stdin in raw mode
// for the duration.
Result<> proxy_terminal(int master_fd, int pidfd);

}  // namespace husk::runtime
