// Capabilities of the container process: all five sets, with libcap.
// Called in the container init (or exec'd process) in this order:
//   drop_bounding(caps)         while still holding CAP_SETPCAP
//   prctl(PR_SET_KEEPCAPS, 1); setresgid/setgroups/setresuid (runtime)
//   apply_capabilities(caps)    effective/permitted/inheritable, then ambient
// A set that is absent from the spec is emptied (as runc/crun do).
#pragma once

#include "common/error.h"
#include "oci/spec.h"

namespace husk::runtime {

Result<> drop_bounding(const oci::Capabilities& caps);
Result<> apply_capabilities(const oci::Capabilities& caps);

}  // namespace husk::runtime
