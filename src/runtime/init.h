// The container init's side of `create`: from the clone to the exec. The
// parent (create.cc) drives it over the sync socket:
//   [NamespacesReady -> IdMapsWritten]  when a user namespace is made
//   [InitPid]                           staged path: the real init's pid
//   RunCreateRuntime [+ netns fd] -> HooksDone(state JSON)
//   [ConsoleFd] [NotifyFd] Ready
// then the init blocks on exec.fifo until `start`, and execs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "oci/spec.h"

namespace husk::runtime {

struct InitConfig {
  const oci::Spec* spec = nullptr;
  std::string rootfs;
  std::string bundle;  // cwd of the init: relative mount sources are bundle-relative
  int sync_fd = -1;
  int fifo_fd = -1;  // O_PATH fd of exec.fifo
  // Staged path: setns into these first (user first), then unshare
  // unshare_flags, then fork the real init (CLONE_PARENT) when a pid or
  // time namespace is new or joined.
  bool staged = false;
  std::vector<std::pair<oci::NamespaceType, int>> join;  // fds opened by the parent
  unsigned long unshare_flags = 0;
  bool new_userns = false;
  bool rootless = false;  // not root of the initial user namespace (is_rootless)
  bool terminal = false;
  int preserve_fds = 0;
  bool no_pivot = false;
  bool no_new_keyring = false;
  std::string session_keyring;  // "_ses.<id>", as runc names it
  std::vector<std::string> extra_env;  // LISTEN_FDS, NOTIFY_SOCKET
  // The cgroup is made around the init (systemd scope): wait for
  // CgroupReady first, then unshare the cgroup namespace the clone left out.
  bool wait_for_cgroup = false;
  bool unshare_cgroupns = false;
  bool send_netns = false;  // pass our netns fd with RunCreateRuntime (src/net needs it)
};

[[noreturn]] void container_init(const InitConfig& cfg);

}  // namespace husk::runtime
