#include "runtime/network.h"

#include "net/network.h"
#include "oci/config.h"
#include "runtime/log.h"

namespace husk::runtime {

Result<net::Config> network_config(const net::Flags& flags, oci::Spec& spec, std::string& raw, bool rootless) {
  if (!flags.empty()) {
    TRYV(net::apply_flags(flags, spec.annotations));
    raw = oci::emit_config(spec);
  }
  return net::parse_config(spec.annotations, rootless);
}

Result<> plan_network(const net::Config& cfg, oci::Spec& spec, const StateStore& store, const ContainerDir& dir) {
  std::string join = cfg.path;
  if (cfg.mode == net::Mode::Container) {
    std::string label = cat("annotations.", net::kNetworkAnnotation, ": container:", cfg.path);
    if (cfg.path == std::string(dir.path().substr(dir.path().rfind('/') + 1)))
      return fail_errno(EINVAL, label, ": a container cannot share its own network namespace");
    ContainerDir other = TRY_CTX(store.open_container(cfg.path), label);
    ContainerRecord rec = TRY_CTX(other.load(), label);
    if (!process_alive(rec.pid, rec.pid_start)) return fail_errno(ESRCH, label, ": that container is not running");
    join = cat("/proc/", rec.pid, "/ns/net");
  }
  return net::plan(cfg, spec, dir.path(), join);
}

Result<> attach_network(const net::Config& cfg, const oci::Spec& spec, const StateStore& store, const ContainerDir& dir,
                        const std::string& id, bool rootless, pid_t pid, int netns_fd) {
  net::Context ctx;
  ctx.id = id;
  ctx.state_dir = dir.path();
  ctx.ipam_root = store.root() + "/.networks";
  ctx.rootless = rootless;
  ctx.alive = process_alive;
  ctx.start_time = process_start_time;
  TRYV_CTX(net::attach(cfg, ctx, spec, pid, process_start_time(pid), netns_fd), "set up the container's network");
  return {};
}

void detach_network(const std::string& dir_path, const std::string& id) {
  if (auto r = net::detach(dir_path, id, process_alive); !r) log::warning(r.error().str());
}

}  // namespace husk::runtime
