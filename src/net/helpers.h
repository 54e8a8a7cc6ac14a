// Rootless networking through a user-space helper started against the
// container's netns: pasta (Debian "passt", the default) or slirp4netns.
// Both get the namespaces as inherited fds (/proc/self/fd/N), so neither
// needs to open the container init's /proc entries. slirp4netns exits when
// the container init does (its --exit-fd is a pidfd of the init); pasta
// is killed by a small watcher process when the init exits, and by
// detach() through the pid and start time kept in the record.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/config.h"

namespace husk::net {

struct HelperRequest {
  std::string state_dir;  // for the helper's log, pid file and API socket
  int netns_fd = -1;
  pid_t init_pid = 0;
  std::optional<int> mtu;
  std::vector<PortForward> ports;
};

struct Helper {
  pid_t pid = 0;
  // What the container's files need.
  std::optional<IpAddress> own_address;
  std::optional<IpAddress> host_address;  // host.containers.internal
  IpAddress dns_forwarder;
};

// pasta's DNS forwarder address inside the container (podman's choice).
inline constexpr const char* kPastaDns = "169.254.1.1";
// slirp4netns's fixed addresses.
inline constexpr const char* kSlirpGuest = "10.0.2.100";
inline constexpr const char* kSlirpDns = "10.0.2.3";

Result<Helper> start_pasta(const HelperRequest& req);
Result<Helper> start_slirp4netns(const HelperRequest& req);

// pasta's -t/-u arguments for the forwards ("8080:80" or "127.0.0.1/8080:80").
std::vector<std::string> pasta_port_args(const std::vector<PortForward>& ports);
// slirp4netns API request adding one forward.
std::string slirp_hostfwd_request(const PortForward& p);

}  // namespace husk::net
