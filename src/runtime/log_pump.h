// The forwarder's loop, shared by husk's own forwarder (log_forward.h) and
// husk-log (src/logs): it reads the container's stdout and stderr from two
// pipes, copies every byte to fds 1 and 2, splits the output into lines
// and hands each to a sink, until both pipes are closed.
#pragma once

#include "runtime/log_sink.h"

namespace husk::runtime {

// Never returns: it exits 0 once both pipes are done and the sink closed.
[[noreturn]] void pump_log_lines(LogSink& sink, int in_out, int in_err);

}  // namespace husk::runtime
