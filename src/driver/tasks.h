// The driver's tasks: one husk container each, run by a small monitor
// process (`husk run --keep` in the foreground, in its own session) that
// holds the task's log FIFOs, reaps the container and records its exit
// status, so a task outlives the plugin and a new plugin can recover it.
// Nothing here knows gRPC: plugin.cc translates.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cgroups/manager.h"
#include "common/error.h"
#include "driver/flavor.h"
#include "driver/task_spec.h"
#include "runtime/container.h"

namespace husk::driver {

// Everything needed to find and re-own a task after a plugin restart; it
// travels to Nomad as TaskHandle.driver_state.
struct TaskHandleState {
  std::string task_id, task_name, alloc_id;
  std::string container_id, task_dir;
  pid_t monitor_pid = 0;
  uint64_t monitor_start = 0;  // /proc start time: a recycled pid is not ours
  int64_t started_at_ns = 0;
  bool overlay = false;        // <task_dir>/rootfs is a mount of ours (overlay, bind or tmpfs)
  std::string image_store;     // set when the task holds a lease (named container_id) there
  std::string stop_signal;     // StopTask's signal when Nomad names none ("" = SIGTERM)
  bool keep = false;           // DestroyTask leaves the stopped container (BundlePlan::keep_container)
};
std::string encode_handle_state(const TaskHandleState& s);
Result<TaskHandleState> decode_handle_state(const std::string& bytes);

// In the task dir of a container gc.container = false kept: what it is
// and how to remove it.
inline constexpr const char* kKeptFile = "kept";

struct TaskResult {
  int exit_code = 0;
  int signal = 0;
  bool oom_killed = false;
  std::string err;  // set when the exit status is unknown
};

struct TaskStatusInfo {
  std::string id, name;
  bool running = false;
  int64_t started_at_ns = 0, completed_at_ns = 0;
  TaskResult result;
};

struct ExecResult {
  std::string out, err;
  int exit_code = 0;
};

class TaskManager {
 public:
  // state_dir holds containers/ (husk's state root for tasks) and tasks/.
  explicit TaskManager(std::string state_dir);
  ~TaskManager();

  // How husk manages the tasks' cgroups (--cgroup-manager of the driver):
  // cgroupfs (default) or systemd. Either way a task's cgroup lives under
  // nomad.slice, as nomad-driver-podman places its containers.
  void set_cgroup_manager(cgroups::ManagerKind kind) { cgroup_manager_ = kind; }
  // linux.cgroupsPath for a task's container under this manager; "" for
  // husk's default (a rootless driver's cgroupfs tasks: <delegated>/husk/<id>).
  std::string cgroups_path_for(const std::string& container_id) const;

  const std::string& state_dir() const { return state_dir_; }
  runtime::GlobalOptions husk_options() const;

  // A husk container id for a Nomad task id and a fresh task directory.
  Result<std::pair<std::string, std::string>> prepare(const TaskSpec& task);
  // Undo prepare() when planning failed.
  void discard(const std::string& task_dir);
  // Mounts the rootfs, writes config.json, opens the log FIFOs and starts
  // the monitor; returns once the container runs (or already ended).
  Result<TaskHandleState> start(const TaskSpec& task, BundlePlan plan, const std::string& container_id,
                                const std::string& task_dir);
  // Re-own a task of an earlier plugin instance. A task known already is fine.
  Result<> recover(const TaskHandleState& h);

  // Blocks until the task has exited (or cancelled() turns true).
  Result<TaskResult> wait(const std::string& task_id, const std::function<bool()>& cancelled);
  Result<> stop(const std::string& task_id, int64_t timeout_ms, const std::string& signal);
  Result<> destroy(const std::string& task_id, bool force);
  Result<TaskStatusInfo> inspect(const std::string& task_id);
  Result<> signal(const std::string& task_id, const std::string& signal);
  Result<cgroups::Stats> stats(const std::string& task_id);
  Result<ExecResult> exec(const std::string& task_id, const std::vector<std::string>& argv, int64_t timeout_ms);
  // `husk exec` argv for a command in the task's container; husk_options
  // (e.g. --console-socket, --pid-file) go before the container id.
  Result<std::vector<std::string>> exec_argv(const std::string& task_id, const std::vector<std::string>& argv,
                                             bool tty, const std::vector<std::string>& husk_options = {});
  bool known(const std::string& task_id);
  // The dangling-container reaper (dangling.cc): containers under our root
  // carrying annotation `label` that no known task owns and that were
  // created more than `grace_ns` before `now_ns`. Unless dry_run they are
  // killed, deleted and their task directory removed. Returns their ids.
  // A container kept by gc.container = false (its task dir holds
  // kKeptFile) is the operator's, never reaped.
  Result<std::vector<std::string>> reap_dangling(const std::string& label, int64_t grace_ns, bool dry_run,
                                                 int64_t now_ns);

 private:
  struct Task {
    TaskHandleState h;
    std::mutex mu;
    std::condition_variable cv;
    bool exited = false;
    int64_t completed_at_ns = 0;
    TaskResult result;
    std::thread waiter;
  };
  Result<std::shared_ptr<Task>> find(const std::string& task_id);
  void watch(std::shared_ptr<Task> t, bool our_child);
  void finish(Task& t, std::optional<int> monitor_status);
  Result<> keep_container(const Task& t);
  std::vector<std::string> husk_argv() const;

  std::string state_dir_;
  cgroups::ManagerKind cgroup_manager_ = cgroups::ManagerKind::Fs;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Task>> tasks_;
};

}  // namespace husk::driver
