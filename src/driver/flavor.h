// A flavor is one upstream driver husk stands in for (podman, docker, nspawn):
// later): the name it serves under, its plugin-config and task-config
// schemas, and the translation of a task into an OCI bundle. The gRPC layer
// (plugin.cc, tasks.cc) is the same for every flavor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "driver/hclspec.h"
#include "driver/log_drivers.h"
#include "driver/task_spec.h"
#include "driver/value.h"
#include "oci/spec.h"

namespace husk::driver {

// What StartTask needs to run a task: the OCI config and where its root
// filesystem comes from. The caller mounts `image_layers` (read only, top
// first) at `<task_dir>/rootfs` as `rootfs_mode` says (an overlay with a
// per-task upper directory by default), which is what spec.root.path names,
// takes a lease on a store image (`image_id` in `image_store`), writes
// config.json and runs husk. resolve_image() (image_resolve.h) fills the
// image fields.
enum class RootfsMode {
  kOverlay,          // overlay, upper directory on disk in the task dir (thrown away with the task)
  kImage,            // the image directory itself, bound: writes land in the image (nspawn without --ephemeral)
  kVolatileOverlay,  // overlay whose upper directory is on a tmpfs (nspawn --volatile=overlay)
  kVolatileRoot,     // a tmpfs root with the image's /usr bound read-only (nspawn --volatile=yes)
};

// How the image's on-disk ownership meets the task's user namespace (the
// nspawn flavor's private_users_ownership): the image's ids [from,
// from+count) are to be seen as [to, to+count). kMap does it with
// idmapped mounts of the image (nothing on disk changes); kChown shifts the
// image tree on disk first (src/common/idshift.h); kAuto is kMap where the
// image's file system takes idmapped mounts, else kChown when `chown_ok`,
// else an error. `to` also owns what the task dir adds to the root (the
// overlay's upper directory, a volatile tmpfs root).
struct OwnershipPlan {
  enum class Mode { kOff, kMap, kChown, kAuto };
  Mode mode = Mode::kOff;
  uint32_t from = 0, to = 0, count = 0;
  bool chown_ok = false;
  std::string image_root;  // the tree kChown shifts (the image, before any pivot_root)
  // kMap with maps of its own (the podman flavor's userns = "auto"): the
  // task's user namespace maps, on-disk id container_id+i seen as
  // host_id+i, uids and gids apart; from/to/count are unused then.
  std::vector<oci::IdMapping> uid_map, gid_map;
  // The host ids the task's root user has (what the task dir adds to the root belongs to them).
  uint32_t root_uid() const;
  uint32_t root_gid() const;
};

struct BundlePlan {
  oci::Spec spec;
  OwnershipPlan ownership;
  std::vector<std::string> image_layers;  // top first; one for a local rootfs directory
  std::string image_store, image_id;      // set for an image of the store
  RootfsMode rootfs_mode = RootfsMode::kOverlay;
  // The plugin's gc.container = false (docker, podman): DestroyTask leaves
  // the stopped container in husk's state, with its task dir (what it
  // wrote in upper/, config.json, husk.log) but no mounts, for the operator
  // to look at and remove (TaskManager::destroy).
  bool keep_container = false;
  // StopTask's signal when Nomad names none; "" is SIGTERM. The image's
  // StopSignal; a booted systemd halts on SIGRTMIN+3.
  std::string stop_signal;
  // > 0: StartTask waits up to this long for the container's sd_notify
  // READY=1 (a booted systemd sends it when startup finished), so that
  // the task counts as started once its services are up.
  int ready_timeout_ms = 0;
  // > 0: ipc_mode "shareable": the task's /dev/shm is a tmpfs of this size
  // the driver mounts at <task_dir>/shm (kShmDir) before the container is
  // made, so that a task with ipc_mode "container:<this one>" can bind the
  // same one; unmounted when the task dir goes.
  int64_t shareable_shm_bytes = 0;
  // What StartTask tells Nomad of the task's own network (NetworkOverride,
  // the upstream drivers' DriverNetwork): the container's address on husk's
  // bridge (its IPv6 one with `ipv6`), whether services advertise it by
  // default, and the deprecated port_map's label -> container port.
  struct Advertise {
    bool enabled = false;
    bool ipv6 = false;
    bool auto_advertise = false;
    std::map<std::string, int32_t> port_map;
  } advertise;
  // The task's stdin is kept open (docker's interactive): a FIFO in the task
  // dir that the container holds open for reading and writing, so that a
  // read blocks instead of seeing end of file, whoever else comes and goes.
  bool interactive = false;
  // The task's output besides Nomad's log files: a log driver of husk's
  // monitor (`husk run --log-driver log.driver --log-opt ...`), and whether
  // Nomad's log files get it at all (disable_log_collection, docker's
  // "none" driver).
  LogPlan log;
  bool discard_output = false;
  std::vector<std::string> warnings;      // sent to Nomad as task events
};

// One row of a flavor's support table: a task config field ("config.cap_add",
// "config.mount[].type") or plugin option ("plugin.volumes.enabled"), what husk
// does with it, and a short note. The man page's and README's tables are
// generated from these rows, in schema order.
struct FieldSupport {
  enum class Status {
    kImplemented,  // does what the upstream driver does
    kAccepted,     // decodes; has a documented meaning of its own (the note says it)
    kRefused,      // decodes, but a non-default value is an error naming the field
  };
  std::string field;
  Status status = Status::kImplemented;
  std::string note;
};

// The docker driver's dangling-container reaper: every `period_ns`, husk
// containers of this driver that carry annotation `label` but belong to no
// task the plugin knows, and are older than `creation_grace_ns`, are
// killed and removed (only logged with dry_run).
struct DanglingReaper {
  int64_t period_ns = 0;
  int64_t creation_grace_ns = 0;
  bool dry_run = false;
  std::string label;
};

// Image garbage collection the plugin options ask for (the docker driver's
// gc.image and gc.image_delay): images of the store unused for `delay_ns`
// that no task holds are removed, with the layers and blobs only they used.
struct ImageGc {
  std::string store_root;
  int64_t delay_ns = 0;
};

class Flavor {
 public:
  virtual ~Flavor() = default;
  // The driver name in jobs (`driver = "podman"`).
  virtual std::string name() const = 0;
  virtual Spec plugin_schema() const = 0;
  virtual Spec task_schema() const = 0;
  // SetConfig: the decoded `plugin "<name>" { config { ... } }` body.
  // Errors name the option ("volumes.enabled: ...").
  virtual Result<> configure(const Value& plugin_config) = 0;
  // Fingerprint attributes under driver.<name> besides the ones the gRPC
  // layer sets (driver.<name> = true, .version). Keys are relative:
  // "health" becomes driver.<name>.health.
  virtual std::vector<std::pair<std::string, std::string>> attributes() const = 0;
  // StartTask: validates the task's decoded `config {}` against the plugin
  // options (allow_caps, allow_privileged, volumes...) and builds the
  // bundle. `container_id` is the husk container id chosen for the task,
  // `task_dir` a fresh directory owned by the driver for this task.
  // Errors name the task config field ("config.cap_add[1]: ...").
  virtual Result<BundlePlan> plan(const TaskSpec& task, const Value& task_config, const std::string& container_id,
                                  const std::string& task_dir) const = 0;
  // Every field of task_schema() and plugin_schema(), in schema order.
  virtual std::vector<FieldSupport> support() const { return {}; }
  // The reaper the plugin options ask for, if any (read after configure()).
  virtual std::optional<DanglingReaper> dangling_reaper() const { return std::nullopt; }
  // Image GC, if the plugin options ask for it (read after configure()).
  virtual std::optional<ImageGc> image_gc() const { return std::nullopt; }
  // False when the plugin options switch the driver off (nspawn's
  // `enabled = false`): the fingerprint says "disabled", undetected.
  virtual bool enabled() const { return true; }
};

// The podman flavor: nomad-driver-podman's task config and plugin options.
// `served_name` is "podman" when husk stands in for nomad-driver-podman, or
// "husk" for the native name (same schema).
std::unique_ptr<Flavor> make_podman_flavor(std::string served_name);

// The registry of flavors (flavors.cc): every name the binary can serve, in
// a stable order, and the flavor for a name (nullptr when unknown).
std::vector<std::string> flavor_names();
std::unique_ptr<Flavor> make_flavor(const std::string& name);

// The support table as text: an scdoc table (for the man page) or a
// markdown one (for the README), rows in the flavor's order.
std::string support_table_scdoc(const std::vector<FieldSupport>& rows);
std::string support_table_markdown(const std::vector<FieldSupport>& rows);
const char* support_status_name(FieldSupport::Status s);

// The docker flavor: Nomad's built-in docker driver's task config and plugin
// options, served as "docker" (nomad-driver-docker).
std::unique_ptr<Flavor> make_docker_flavor();

// The nspawn flavor: nomad-driver-nspawn's task config and plugin options,
// served as "nspawn", run by husk without systemd-nspawn or machined.
std::unique_ptr<Flavor> make_nspawn_flavor();

}  // namespace husk::driver
