// The nspawn flavor: nomad-driver-nspawn's plugin options (SetConfig), its
// fingerprint attributes, the support table and the Flavor object the
// gRPC layer drives. The task translation is nspawn_bundle.cc, the image
// nspawn_image.cc, the schemas nspawn_schema.cc.
#include <unistd.h>

#include <climits>

#include "driver/nspawn_flavor.h"
#include "image/store.h"

namespace husk::driver::nspawn {

Options host_defaults() {
  Options o;
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof buf)) o.cwd = buf;
  o.image_store_root = image::Store::default_root();
  return o;
}

Result<Options> parse_options(const Value& cfg) {
  Options o = host_defaults();
  if (!cfg.is_null() && cfg.kind() != Value::Kind::Map) return fail_msg("plugin config: expected an object");
  o.enabled = TRY(read_bool(cfg, "enabled", "", true));
  o.volumes = TRY(read_bool(cfg, "volumes", "", true));
  return o;
}

std::vector<FieldSupport> support_table() {
  using S = FieldSupport::Status;
  return {
      {"config.image", S::kImplemented,
       "a directory, a raw disk image (loop-mounted read-only; a GPT disk's root partition), or a machine image "
       "name under /var/lib/machines; relative paths start in the plugin directory"},
      {"config.image_download", S::kImplemented,
       "fetch the image before the task starts (once, unless force); by a driver not run as root: an error"},
      {"config.image_download.url", S::kImplemented, "fetched over http(s) with libcurl into /var/lib/machines"},
      {"config.image_download.type", S::kImplemented,
       "tar (any compression, unpacked with libarchive), raw (decompressed), docker (url is an image reference: "
       "pulled into husk's image store, its merged layers copied into the machine image; verify does not apply, "
       "every blob is checked against its digest)"},
      {"config.image_download.force", S::kImplemented, "replaces an existing local copy"},
      {"config.image_download.verify", S::kImplemented,
       "checksum: SHA256SUMS beside the URL; signature: also SHA256SUMS.gpg checked with gpgv against "
       "/usr/lib/systemd/import-pubring.gpg"},
      {"config.boot", S::kImplemented,
       "the image's init (systemd) as PID 1, command as its arguments; StopTask sends SIGRTMIN+3, then kills "
       "after the timeout"},
      {"config.process_two", S::kImplemented, "a stub init from the host (catatonit or tini) as PID 1"},
      {"config.command", S::kImplemented, "the program and arguments, or the init's arguments with boot"},
      {"config.ephemeral", S::kImplemented, "an overlay with a per-task upper directory, removed with the task"},
      {"config.read_only", S::kImplemented, "a read-only root"},
      {"config.volatile", S::kImplemented,
       "yes: tmpfs root with the image's /usr read-only; state: read-only root, tmpfs /var; overlay: overlay "
       "with a tmpfs upper directory"},
      {"config.user_namespacing", S::kImplemented, "a user namespace of the task's own (off with group networking)"},
      {"config.private_users", S::kImplemented,
       "no, identity, yes (the range of the image's root owner), <uid>[:<count>], and pick (the default): the "
       "image's own 64K range if free, else one hashed from the machine name, else the next free one (a range "
       "mapped in any /proc/*/uid_map is taken)"},
      {"config.private_users_ownership", S::kImplemented,
       "off (the default but with pick), map (idmapped mounts of the image: nothing on disk changes), chown (the "
       "image directory shifted on disk once, as nspawn; not for raw, host-root or ephemeral images), auto (map "
       "where the file system takes idmapped mounts, else chown where allowed); binds, Nomad's task dirs among them, "
       "are not idmapped, as in nspawn"},
      {"config.console", S::kImplemented,
       "interactive and read-only: a pty as the container's console, its output in the task's stdout log (Nomad "
       "sends no input); pipe and passive (and autopipe): plain stdio to the task's logs"},
      {"config.pivot_root", S::kImplemented, "a directory of the image as the root, the old root optionally bound"},
      {"config.resolv_conf", S::kImplemented,
       "copy-/replace- give the task a copy, bind- a read-only bind; auto picks uplink in a private network; "
       "delete is refused (it would change the image)"},
      {"config.user", S::kImplemented, "resolved in the image's /etc/passwd; not with boot"},
      {"config.working_directory", S::kImplemented, "must be absolute"},
      {"config.bind", S::kImplemented, "host path = container path, read-write"},
      {"config.bind_read_only", S::kImplemented, "host path = container path, read-only"},
      {"config.environment", S::kImplemented, "merged with the Nomad task env, which wins"},
      {"config.capability", S::kImplemented, "added to systemd-nspawn's default set"},
      {"config.ports", S::kImplemented, "host port -> container port over husk's bridge, TCP as nspawn's -p"},
      {"config.port_map", S::kImplemented, "deprecated label = container port, TCP"},
      {"config.network_veth", S::kImplemented,
       "a veth on husk's default bridge husk0 (addressed by husk's IPAM), host0 in the container as in nspawn; "
       "false shares the host's network"},
      {"config.network_bridge", S::kImplemented,
       "an existing bridge (as nspawn): the veth joins it and host0 comes up with no address, for DHCP or whatever "
       "serves that bridge (ports are an error: husk does not know the address); a name with no interface yet: "
       "husk's bridge of that name, with its IPAM"},
      {"config.network_zone", S::kImplemented, "the husk bridge vz-<zone>, made when missing"},
      {"plugin.enabled", S::kImplemented, "false: the driver fingerprints as undetected (\"disabled\")"},
      {"plugin.volumes", S::kImplemented, "false: a task with Nomad volume mounts fails to start"},
  };
}

namespace {

class NspawnFlavor final : public Flavor {
 public:
  NspawnFlavor() : opts_(host_defaults()) {}

  std::string name() const override { return "nspawn"; }
  Spec plugin_schema() const override { return nspawn::plugin_schema(); }
  Spec task_schema() const override { return nspawn::task_schema(); }

  Result<> configure(const Value& plugin_config) override {
    opts_ = TRY(parse_options(plugin_config));
    return {};
  }

  std::vector<std::pair<std::string, std::string>> attributes() const override {
    // nomad-driver-nspawn reports the systemd major version as .version.
    return {
        {"version", kSystemdVersion},
        {"volumes", opts_.volumes ? "true" : "false"},
    };
  }

  Result<BundlePlan> plan(const TaskSpec& task, const Value& task_config, const std::string& container_id,
                          const std::string& task_dir) const override {
    return nspawn::plan(opts_, task, task_config, container_id, task_dir);
  }

  std::vector<FieldSupport> support() const override { return support_table(); }
  bool enabled() const override { return opts_.enabled; }

 private:
  Options opts_;
};

}  // namespace
}  // namespace husk::driver::nspawn

namespace husk::driver {
std::unique_ptr<Flavor> make_nspawn_flavor() { return std::make_unique<nspawn::NspawnFlavor>(); }
}  // namespace husk::driver
