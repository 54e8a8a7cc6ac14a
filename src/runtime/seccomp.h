// Seccomp from the spec's linux.seccomp, through libseccomp: every action
// (errnoRet included), every operator, architectures, filter flags, and the
// notify listener (SCMP_ACT_NOTIFY) whose fd is handed to listenerPath.
// Syscall names libseccomp does not know are skipped (as crun and runc do:
// podman's profile names syscalls newer than this libseccomp); everything
// else that cannot be honoured is an error naming the spec path.
#pragma once

#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "oci/spec.h"

namespace husk::runtime {

// Build the filter and load it into the calling process (the container
// init, just before exec). Returns the notify fd when any rule (or the
// default) is SCMP_ACT_NOTIFY, an invalid UniqueFd otherwise.
Result<UniqueFd> load_seccomp(const oci::Seccomp& spec);

// The BPF program load_seccomp would load, without loading it (tests).
Result<std::string> export_seccomp_bpf(const oci::Seccomp& spec);

// Connect to listenerPath and send the notify fd with SCM_RIGHTS together
// with the container process state JSON (the OCI "seccomp state" object:
// ociVersion, fds ["seccompFd"], pid, metadata, state).
Result<> send_seccomp_listener(const std::string& listener_path, int notify_fd, const std::string& state_json);

}  // namespace husk::runtime
