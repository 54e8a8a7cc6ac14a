// Parse, validate and emit the OCI runtime spec (config.json), the OCI state,
// runc/crun's `update -r` resources file and `exec --process` file, and the
// `features` document. Every rejection names the JSON path and the value:
//   process.capabilities.bounding[3]: unknown capability "CAP_FOO"
// Unknown object members are ignored, as the spec requires; unknown enum
// values (capabilities, namespace types, seccomp actions...) are errors.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::oci {

Result<Spec> parse_config(std::string_view json);
Result<Spec> load_config(const std::string& path);  // error prefixed with path
std::string emit_config(const Spec& spec);          // pretty, 2-space indent

// A process object alone (`husk exec --process FILE`): same rules and paths
// as config.json's "process", but paths are reported from the root ("args").
Result<Process> parse_process(std::string_view json);
// A linux.resources object alone (`husk update -r FILE`).
Result<Resources> parse_resources(std::string_view json);

std::string emit_state(const State& state);  // compact
Result<State> parse_state(std::string_view json);
const char* status_name(Status s);  // "created", "running", ...

// `husk spec`: the default config, as runc/crun write it (rootless variant
// maps the caller's uid/gid, drops the network namespace and binds /sys).
Spec default_spec(bool rootless, uint32_t uid = 0, uint32_t gid = 0);

// `husk features`: generated from the same tables validation uses.
std::string features_json();

}  // namespace husk::oci
