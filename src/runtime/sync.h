// The sync socket between husk and a process it cloned: small typed
// messages, an errno and text for errors, and fds passed with SCM_RIGHTS.
// The child never prints: it sends Error and exits, the parent prints.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/fd.h"

namespace husk::runtime {

enum class SyncType : uint32_t {
  Error = 1,        // child failed: errno + message
  NamespacesReady,  // child made its namespaces: parent writes id maps
  IdMapsWritten,    // parent -> child
  RunCreateRuntime, // child ready for createRuntime hooks (parent runs them)
  HooksDone,        // parent -> child
  ConsoleFd,        // child -> parent: pty master
  NotifyFd,         // child -> parent: seccomp notify fd
  InitPid,          // stage child -> parent: host pid of the init (payload)
  Ready,            // child set up, waiting on exec.fifo / about to exec
  Continue,         // parent -> child: generic go-ahead
  CgroupReady,      // parent -> child: the init is in its (systemd) cgroup
  MountFuseOverlay, // child -> parent: its root goes on fuse-overlayfs (payload: why native
                    // overlayfs was refused, "" when asked for); Continue brings the /dev/fuse fd
  FuseMounted,      // child -> parent: mounted on it; Continue once the server runs
};

struct SyncMsg {
  SyncType type = SyncType::Error;
  int32_t err = 0;
  std::string payload;
  UniqueFd fd;  // received fd, if any
};

Result<> sync_send(int sock, SyncType type, const std::string& payload = {}, int pass_fd = -1, int32_t err = 0);
Result<SyncMsg> sync_recv(int sock);
// Receive and expect one type; an Error message becomes the returned error.
Result<SyncMsg> sync_expect(int sock, SyncType type);
// Child side: report a failure (best effort) — used right before _exit.
void sync_send_error(int sock, const Error& e);

// Connect a SOCK_STREAM unix socket to path (errors name the path).
Result<UniqueFd> connect_unix(const std::string& path);

// Send/receive one fd with a small payload over any unix socket.
Result<> send_fd(int sock, int fd, const std::string& payload);
Result<UniqueFd> recv_fd(int sock, std::string* payload);

}  // namespace husk::runtime
