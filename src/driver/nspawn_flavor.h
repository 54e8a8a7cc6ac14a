// Inside the nspawn flavor: its plugin options, the two schemas
// (nspawn_schema.cc), the image (nspawn_image.cc: a directory, a raw disk
// image, a machine image name, image_download) and the task -> OCI bundle
// translation (nspawn_bundle.cc). flavor.h has the public face
// (make_nspawn_flavor).
#pragma once

#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "driver/flavor.h"

namespace husk::driver::nspawn {

// nomad-driver-nspawn's task config and plugin option schemas, field for
// field (reference: driver-fields.md §3.1, §3.2).
Spec task_schema();
Spec plugin_schema();

// The systemd version whose systemd-nspawn husk stands in for: what
// driver.nspawn.version reports, so job constraints on it keep working.
inline constexpr const char* kSystemdVersion = "252";

// Whether host ids [base, base+count) are mapped into some user namespace
// now (any /proc/PID/uid_map or gid_map but the initial namespace's).
using RangeInUse = std::function<bool(uint32_t base, uint32_t count)>;
bool host_range_in_use(uint32_t base, uint32_t count);
// Whether an interface of that name exists in the plugin's network namespace.
bool host_link_exists(const std::string& name);

struct Options {
  bool enabled = true;
  bool volumes = true;

  // Facts about the host, not options; tests set them.
  std::string machines_dir = "/var/lib/machines";  // machined's image directory
  std::string cwd;                                 // relative images start here (the plugin dir)
  std::string host_resolv_conf = "/etc/resolv.conf";
  std::string host_resolved_stub = "/run/systemd/resolve/stub-resolv.conf";
  std::string host_resolved_upstream = "/run/systemd/resolve/resolv.conf";
  std::vector<std::string> stub_inits = {"/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/bin/tini",
                                         "/usr/sbin/tini", "/sbin/tini"};
  std::string import_keyring = "/usr/lib/systemd/import-pubring.gpg";
  std::string image_store_root;  // image_download type docker: image::Store::default_root()
  RangeInUse range_in_use = host_range_in_use;  // private_users = "pick"
  // Whether the host has a network interface of that name (network_bridge).
  std::function<bool(const std::string&)> link_exists = host_link_exists;
};

Options host_defaults();
// SetConfig: errors name the option ("volumes: ...").
Result<Options> parse_options(const Value& plugin_config);

Result<BundlePlan> plan(const Options& opts, const TaskSpec& task, const Value& config, const std::string& container_id,
                        const std::string& task_dir);

std::vector<FieldSupport> support_table();

// ---- the image (nspawn_image.cc) ---------------------------------------------

// What config.image names once resolved.
struct ImageSource {
  enum class Kind { kDirectory, kRawFile, kHostRoot };
  Kind kind = Kind::kDirectory;
  std::string path;  // absolute, symlinks resolved
};

// image as nspawn takes it: an absolute path, a path relative to opts.cwd,
// or the name of a machine image in opts.machines_dir (<name>/ or
// <name>.raw). Errors name config.image.
Result<ImageSource> resolve_image(const Options& opts, const std::string& image);

// image_download: where the image is kept and how it is fetched.
struct Download {
  std::string url;
  std::string type = "tar";   // tar, raw, docker
  std::string verify = "no";  // no, checksum, signature
  bool force = false;
};
Result<std::optional<Download>> parse_download(const Value& block);
// Fetches `d` into opts.machines_dir as the machine image `name` (a
// directory for tar, <name>.raw for raw) unless it is there already and
// not `force`d; checksum/signature verification as importd's `verify`.
Result<> download_image(const Options& opts, const std::string& name, const Download& d);
// "SHA256SUMS" content: the hex digest listed for `file`, or an error.
Result<std::string> checksum_for(std::string_view sums, std::string_view file);

// The private_users value: nullopt for "no", else the first host uid and
// the count of the user namespace's mapping. "pick" (and "") picks a free 64K
// range as nspawn does: the range the image's root is owned by when that is
// one of the pickable ranges (0x80000..0x6FFEFFFF) and free, else the one a
// hash of the machine name gives, else the next free one after it; never the
// host's range 0. All taken is an error.
Result<std::optional<std::pair<uint32_t, uint32_t>>> parse_private_users(const std::string& v,
                                                                         const std::string& machine,
                                                                         uint32_t image_root_uid,
                                                                         const RangeInUse& in_use);

}  // namespace husk::driver::nspawn
