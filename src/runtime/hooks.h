// OCI hooks: each runs with the container state JSON on stdin, its own args
// and env, and is killed when its timeout passes.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::runtime {

// Run hooks in order; the first failure stops and is returned, named as
// `hooks.createRuntime[1] "/usr/bin/x": exited with status 3`.
Result<> run_hooks(const std::vector<oci::Hook>& hooks, const char* kind, const std::string& state_json);

}  // namespace husk::runtime
