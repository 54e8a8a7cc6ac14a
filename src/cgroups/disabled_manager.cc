#include "cgroups/disabled_manager.h"

#include "cgroups/resources.h"

namespace husk::cgroups {
namespace {

class DisabledManager : public Manager {
 public:
  Result<> create() override { return {}; }
  // No cgroup: an invalid fd, so the caller clones without CLONE_INTO_CGROUP.
  Result<UniqueFd> open_dir() override { return UniqueFd(); }
  Result<> add_process(pid_t) override { return {}; }

  Result<> apply(const oci::Resources& r) override {
    const std::string why = "cgroups are disabled but linux.resources asks for ";
    if (r.network && (r.network->class_id || !r.network->priorities.empty())) return fail_msg(why, "network");
    // Device rules are not a cgroup file here (an eBPF program elsewhere).
    auto writes = translate(r, [](const std::string&) { return false; });
    if (!writes) return fail(std::move(writes.error()).with_context(why + "a limit"));
    // "No limit" asks for nothing: podman sends pids.limit 0 by default.
    for (const auto& w : *writes)
      if (!is_unlimited(w)) return fail_msg(why, w.field, " (", w.file, " \"", w.value, "\")");
    return {};
  }

  Result<> freeze(bool) override { return {}; }
  Result<bool> frozen() override { return false; }
  Result<> kill_all(int) override { return {}; }
  Result<std::vector<pid_t>> pids() override { return std::vector<pid_t>{}; }
  Result<Stats> stats() override { return Stats{}; }
  Result<> destroy() override { return {}; }
  std::string path() const override { return ""; }
};

}  // namespace

std::unique_ptr<Manager> make_disabled_manager() { return std::make_unique<DisabledManager>(); }

}  // namespace husk::cgroups
