// husk-log: the log drivers that need TLS or HTTP (splunk, awslogs, gcplogs, syslog
// over tcp+tls). husk's forwarder (runtime/log_forward.h) execs it in
// place of its own loop, so libcurl and OpenSSL are loaded by this small
// process and never by husk, whose start every container pays for.
//
//   husk-log DRIVER CONTAINER-ID [KEY=VALUE...]
//
// fd 3 and 4: the container's stdout and stderr pipes; fd 1 and 2 where
// their bytes are copied; fd 5: the status pipe, "ok" once the options are
// checked and the destination is open, else the error, before exiting 1.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "logs/sinks.h"
#include "runtime/log_pump.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    static const char usage[] = "usage: husk-log DRIVER CONTAINER-ID [KEY=VALUE...] (run by husk's log forwarder)\n";
    (void)!write(2, usage, sizeof usage - 1);
    return 2;
  }
  std::string driver = argv[1], id = argv[2];
  std::vector<std::string> opts(argv + 3, argv + argc);
  auto sink = husk::logs::open_sink(driver, opts, id);
  std::string status = sink ? "ok" : sink.error().str();
  (void)!husk::write_all(5, status);
  close(5);
  if (!sink) return 1;
  husk::runtime::pump_log_lines(**sink, 3, 4);
}
