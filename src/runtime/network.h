// The runtime's side of src/net: which network a new container asks for
// (its run.husk.* annotations, filled from the run/create flags), and the
// calls create and delete make into src/net at the right moments.
#pragma once

#include <string>

#include "common/error.h"
#include "net/config.h"
#include "oci/spec.h"
#include "runtime/container.h"
#include "runtime/state_store.h"

namespace husk::runtime {

// Flags become annotations of the spec (and of the saved config: raw is
// re-emitted when a flag was given); then the annotations are parsed.
Result<net::Config> network_config(const net::Flags& flags, oci::Spec& spec, std::string& raw, bool rootless);

// Before the clone: namespaces and bind mounts (resolves container:ID).
Result<> plan_network(const net::Config& cfg, oci::Spec& spec, const StateStore& store, const ContainerDir& dir);

// Once the init's netns exists.
Result<> attach_network(const net::Config& cfg, const oci::Spec& spec, const StateStore& store, const ContainerDir& dir,
                        const std::string& id, bool rootless, pid_t pid, int netns_fd);

// On delete and on a failed create: never fails the caller, warns.
void detach_network(const std::string& dir_path, const std::string& id);

}  // namespace husk::runtime
