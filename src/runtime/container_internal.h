// Pieces shared by the lifecycle files (create.cc, ops.cc, exec.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cgroups/manager.h"
#include "common/fd.h"
#include "oci/spec.h"
#include "runtime/container.h"
#include "runtime/state_store.h"

namespace husk::runtime {

struct CreateGuard;
class NotifyRelay;

// A container made by create_container; unless commit() is called, its
// destruction undoes everything (process, cgroup, state directory).
struct Created {
  std::string id, bundle;
  std::unique_ptr<oci::Spec> spec;
  std::unique_ptr<ContainerDir> dir;
  std::unique_ptr<cgroups::Manager> cgroup;
  std::unique_ptr<CreateGuard> guard;  // last: runs before dir/cgroup go
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd console_master;
  std::unique_ptr<NotifyRelay> notify;  // foreground run under NOTIFY_SOCKET
  ContainerRecord record;
  // Networking, once the init's netns exists (pid, netns fd); unset when
  // the bundle asks for none.
  std::function<Result<>(pid_t, int)> attach_network;

  void commit();
  Created();
  ~Created();
  Created(Created&&) noexcept;
};

Result<Created> create_container(const GlobalOptions& g, const CreateOptions& o, bool keep_console);
Result<> start_created(ContainerDir& dir, const ContainerRecord& rec, const oci::Spec& spec);

Result<StateStore> open_store(const GlobalOptions& g);
bool is_rootless(const GlobalOptions& g);
Result<oci::Spec> load_saved_spec(const ContainerDir& dir);
Result<std::unique_ptr<cgroups::Manager>> make_cgroup(const GlobalOptions& g, const oci::Spec& spec,
                                                      const std::string& id, bool rootless);
// devices: the container's linux.devices, needed only to apply device rules.
Result<std::unique_ptr<cgroups::Manager>> reopen_cgroup(const ContainerRecord& rec,
                                                        const std::vector<oci::Device>& devices = {});
// Kill (force) what is left, run poststop hooks, remove cgroup and state.
Result<> destroy_container(ContainerDir& dir, const ContainerRecord& rec, bool force);
// The "exit" file of a container directory (see ExitStatus).
Result<> record_exit_status(const ContainerDir& dir, const ExitStatus& e);
Result<std::optional<ExitStatus>> read_exit_status(const ContainerDir& dir);
Result<oci::Status> current_status(const ContainerDir& dir, const ContainerRecord& rec);
std::string get_cwd();
// Foreground: forward signals to pidfd's process, proxy the terminal master
// (-1 = none) with our stdio, reap pid and return its wait status (waitpid's).
// notify: forward its datagrams as they come (foreground run, notify.h).
Result<int> wait_foreground(pid_t pid, int pidfd, int master, NotifyRelay* notify = nullptr);
Result<std::string> state_json_for(const oci::Spec& spec, const std::string& id, pid_t pid,
                                   const std::string& bundle, oci::Status status);

}  // namespace husk::runtime
