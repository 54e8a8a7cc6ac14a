// The name tables validation, emit and `features` share: capabilities,
// namespace types, rlimits, seccomp actions/operators/architectures/flags,
// propagation, mount options known to the runtime. One table each, so what
// husk accepts and what `features` reports cannot drift.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "oci/spec.h"

namespace husk::oci {

// "CAP_SYS_ADMIN" <-> 21. OCI requires the "CAP_" prefix; lookup is exact.
std::optional<int> capability_from_name(std::string_view name);
std::string_view capability_name(int cap);  // "" if unknown
std::vector<std::string_view> capability_names();  // every known, in number order
int last_capability();  // highest number husk knows (CAP_CHECKPOINT_RESTORE = 40)
// Docker's default set without NET_RAW: `husk spec` and the Nomad driver.
std::vector<int> default_capabilities();

std::optional<NamespaceType> namespace_from_name(std::string_view name);  // "pid", "network", ...
std::string_view namespace_name(NamespaceType t);
std::vector<std::string_view> namespace_names();
int namespace_clone_flag(NamespaceType t);  // CLONE_NEWPID, ...
std::string_view namespace_proc_name(NamespaceType t);  // "pid", "net", "mnt" (for /proc/<pid>/ns/)

std::optional<int> rlimit_from_name(std::string_view name);  // "RLIMIT_NOFILE"
std::string_view rlimit_name(int resource);
std::vector<std::string_view> rlimit_names();

std::optional<SeccompAction> seccomp_action_from_name(std::string_view name);  // "SCMP_ACT_ERRNO"
std::string_view seccomp_action_name(SeccompAction a);
std::vector<std::string_view> seccomp_action_names();
std::optional<SeccompOp> seccomp_op_from_name(std::string_view name);  // "SCMP_CMP_EQ"
std::string_view seccomp_op_name(SeccompOp op);
std::vector<std::string_view> seccomp_op_names();
bool seccomp_arch_known(std::string_view name);  // "SCMP_ARCH_X86_64"
std::vector<std::string_view> seccomp_arch_names();
bool seccomp_flag_known(std::string_view name);  // "SECCOMP_FILTER_FLAG_LOG"
std::vector<std::string_view> seccomp_flag_names();

std::optional<Propagation> propagation_from_name(std::string_view name);  // "rprivate"
std::string_view propagation_name(Propagation p);  // "" for Unset

// Mount options the runtime interprets (ro, nosuid, rbind, idmap, ...), for
// `features`.mountOptions. Options not listed are passed to the filesystem.
std::vector<std::string_view> known_mount_options();

}  // namespace husk::oci
