// systemd's sd_notify through a foreground `husk run` (a Type=notify unit's
// ExecStart). The container does not get our caller's NOTIFY_SOCKET: it gets
// a socket of husk's own in the state directory, bound at
// /run/notify/notify.sock, and husk forwards each datagram to the real
// socket. systemd then hears READY=1 from the unit's main pid (NotifyAccess=
// main works) wherever the container's cgroup is. runc's notify socket
// proxy works the same way. `create`/`run --detach` bind the caller's socket
// itself (podman's --sdnotify=container), as before.
#pragma once

#include <string>

#include "common/error.h"
#include "common/fd.h"

namespace husk::runtime {

// $NOTIFY_SOCKET when it names a socket ("/path" or "@abstract"), else "".
std::string notify_target();

class NotifyRelay {
 public:
  // Bind a datagram socket at path (mode 0666: the container's user sends)
  // that forwards to target.
  static Result<NotifyRelay> open(const std::string& path, const std::string& target);

  int fd() const { return sock_.get(); }
  const std::string& path() const { return path_; }
  // Forward what is queued. MAINPID= is dropped: it would be a pid of the
  // container's pid namespace, and husk is the main pid.
  void forward();

 private:
  NotifyRelay(UniqueFd sock, std::string path, std::string target)
      : sock_(std::move(sock)), path_(std::move(path)), target_(std::move(target)) {}
  UniqueFd sock_;
  std::string path_, target_;
};

}  // namespace husk::runtime
