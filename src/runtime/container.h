// The container lifecycle that the CLI (and, through the CLI, the Nomad
// driver) drives: create, start, run, exec, kill, delete, state, list, ps,
// pause, resume. Each function takes the container's lock for its whole run.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cgroups/manager.h"
#include "common/error.h"
#include "net/config.h"
#include "oci/spec.h"
#include "runtime/log_forward.h"

namespace husk::runtime {

struct GlobalOptions {
  std::string root;  // state root; "" = default
  cgroups::ManagerKind cgroup_manager = cgroups::ManagerKind::Fs;
  std::optional<bool> rootless;  // --rootless true|false; unset = auto
};

struct CreateOptions {
  std::string id;
  std::string bundle = ".";
  std::string config;  // default <bundle>/config.json
  std::string console_socket;
  std::string pid_file;
  int preserve_fds = 0;
  bool no_pivot = false;
  bool no_new_keyring = false;
  bool detach = false;  // run only
  bool keep = false;    // run only: do not delete after exit
  net::Flags network;   // --network, --publish, --dns, --add-host
  LogDriver log;        // run only, in the foreground: --log-driver, --log-opt
};

struct ExecOptions {
  std::string id;
  std::string process_file;            // --process
  std::vector<std::string> args;       // command after the id
  bool tty = false;
  std::string console_socket;
  std::string cwd;
  std::vector<std::string> env;
  std::optional<std::pair<uint32_t, uint32_t>> user;  // --user uid[:gid]
  std::vector<uint32_t> additional_gids;
  std::vector<std::string> caps;       // --cap
  std::optional<std::string> apparmor;  // --apparmor
  bool no_new_privs = false;
  bool detach = false;
  std::string pid_file;
  int preserve_fds = 0;
};

struct ContainerInfo {
  oci::State state;
  std::string rootfs;
  int64_t created_ns = 0;
  uid_t owner = 0;
};

Result<> create(const GlobalOptions& g, const CreateOptions& o);
Result<> start(const GlobalOptions& g, const std::string& id);
// Foreground run returns the container's exit status (128+signal when killed).
Result<int> run(const GlobalOptions& g, const CreateOptions& o);
Result<int> exec(const GlobalOptions& g, const ExecOptions& o);
Result<> kill(const GlobalOptions& g, const std::string& id, int signal, bool all);
Result<> remove(const GlobalOptions& g, const std::string& id, bool force);
Result<ContainerInfo> state(const GlobalOptions& g, const std::string& id);
Result<std::vector<ContainerInfo>> list(const GlobalOptions& g);
Result<std::vector<pid_t>> pids(const GlobalOptions& g, const std::string& id);
Result<> pause(const GlobalOptions& g, const std::string& id);
Result<> update(const GlobalOptions& g, const std::string& id, const oci::Resources& resources);
Result<> resume(const GlobalOptions& g, const std::string& id);
// The cgroup directory of a container that is not stopped, for its stats
// and events. The container's lock is not kept: events may run for long.
Result<std::string> cgroup_dir(const GlobalOptions& g, const std::string& id);

// How a container's init ended, recorded by a foreground `run --keep`.
struct ExitStatus {
  int exit_code = 0;  // 128+signal when killed, as a shell reports it
  int signal = 0;
  bool oom_killed = false;
};
// The recorded exit status; nullopt while it runs, or when it ended
// without a foreground run to see it.
Result<std::optional<ExitStatus>> exit_status(const GlobalOptions& g, const std::string& id);

// Signal names and numbers as kill(1) takes them: "KILL", "SIGKILL", "9".
Result<int> parse_signal(const std::string& s);

}  // namespace husk::runtime
