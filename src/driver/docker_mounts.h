// The docker flavor's filesystem view: the alloc/local/secrets binds,
// `volumes` strings, `mount` blocks (bind, tmpfs, volume), Nomad's own
// volume mounts, and `devices` blocks, with the plugin's volumes policy.
// Named volumes are directories under the driver's state directory
// (<state>/volumes/<name>, kept across tasks as docker keeps them);
// anonymous ones live in the task directory and go with the task.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "driver/docker_flavor.h"
#include "driver/task_spec.h"
#include "driver/value.h"
#include "oci/spec.h"

namespace husk::driver::docker {

// A volume directory plan() makes once every field has been checked, so a
// rejected task leaves none behind.
struct PendingVolume {
  std::string dir;          // host directory to create
  std::string image_path;   // copy the image's content from here ("" = none)
};

struct MountContext {
  const Options& opts;
  const TaskSpec& task;
  std::string own_dir;       // <alloc_dir>/<task>: relative sources resolve here
  std::string task_dir;      // the driver's per-task directory
  std::string volumes_root;  // <state>/volumes
  std::string image_rootfs;
};

// Appends every mount of the task to spec.mounts; volume directories still
// to make go to `pending`.
Result<> add_task_mounts(const MountContext& ctx, const Value& cfg, oci::Spec& spec, std::vector<PendingVolume>& pending);
// `devices` blocks: each host node into linux.devices with its cgroup rule.
Result<> add_device_blocks(const Value& cfg, oci::Spec& spec);
// Makes the pending volume directories, copying the image's content into a
// new one as docker does (unless volume_options.no_copy).
Result<> create_volumes(const std::vector<PendingVolume>& pending, const std::vector<std::string>& layers);

}  // namespace husk::driver::docker
