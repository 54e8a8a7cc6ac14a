// The podman flavor's support table: what husk does with each of
// nomad-driver-podman's task config fields and plugin options, in schema
// order. The man page's and README's tables are generated from it
// (husk-driver-fields), and a unit test checks it names every field.
#include "driver/podman_flavor.h"

namespace husk::driver::podman {

namespace {
constexpr auto kImpl = FieldSupport::Status::kImplemented;
constexpr auto kAccepted = FieldSupport::Status::kAccepted;
constexpr auto kRefused = FieldSupport::Status::kRefused;
}  // namespace

std::vector<FieldSupport> support_rows() {
  return {
      // ---- task config ----
      {"config.image", kImpl,
       "a registry reference pulled into husk's image store (husk-image(7)); oci:, oci-archive:, docker-archive: "
       "through the store; or a local root filesystem directory (or one holding rootfs/), relative to the task "
       "dir or absolute; the image config applies as in podman"},
      {"config.arch", kImpl, "the platform to pull or pick from a multi-platform image (a warning for a local directory)"},
      {"config.os", kImpl, "as arch"},
      {"config.variant", kImpl, "as arch"},
      {"config.auth", kImpl, "registry credentials for the pull"},
      {"config.auth.username", kImpl, "with password: the credentials (else the plugin's auth.config/auth.helper, REGISTRY_AUTH_FILE, podman's auth.json, docker's config.json)"},
      {"config.auth.password", kImpl, "as username"},
      {"config.auth.tls_verify", kImpl, "false: plain HTTP or unverified TLS to the registry"},
      {"config.auth_soft_fail", kImpl, "a pull refused with the given credentials is tried anonymously"},
      {"config.force_pull", kImpl, "pull even when the store has the image"},
      {"config.image_pull_timeout", kImpl, "a bound on the whole pull (Go duration, default 5m)"},
      {"config.entrypoint", kImpl, "a list (a string is deprecated: a warning), replaces the image's"},
      {"config.command", kImpl, "the first argument after the entrypoint"},
      {"config.args", kImpl, "appended to the command"},
      {"config.working_dir", kImpl, "absolute path, the process's cwd"},
      {"config.hostname", kImpl, "UTS namespace hostname, also in /etc/hosts"},
      {"config.tty", kImpl, "the task gets a pty; its output goes to the stdout log"},
      {"config.init", kImpl, "catatonit (or init_path) bound in as PID 1, running the command"},
      {"config.init_path", kImpl, "the init binary on the host"},
      {"config.labels", kImpl, "OCI annotations of the container"},
      {"config.cap_add", kImpl, "added to podman's default set; ambient for a non-root user"},
      {"config.cap_drop", kImpl, "removed from the set; \"all\" drops every one"},
      {"config.privileged", kImpl, "every capability and host device, no seccomp, no masked paths, rw /sys"},
      {"config.readonly_rootfs", kImpl, "read-only root with podman's writable tmpfs on /tmp, /run, /var/tmp"},
      {"config.apparmor_profile", kImpl,
       "a profile loaded on the host, applied at the task's exec; unconfined; an error where AppArmor is off or the "
       "profile is not loaded; unset (and no security_opt apparmor=), where the host runs AppArmor and the task is not "
       "privileged: husk-default, husk's containers-default, loaded by the driver (an error if it cannot be)"},
      {"config.selinux_opts", kRefused, "husk does not implement SELinux labels"},
      {"config.security_opt", kImpl,
       "no-new-privileges, seccomp=unconfined, mask=, unmask=, proc-opts=, apparmor= (as apparmor_profile); label= "
       "refused"},
      {"config.userns", kImpl,
       "host; ns:PATH (that user namespace joined); auto[:size=N,uidmapping=C:H:S,gidmapping=C:H:S] (ids of the "
       "task's own from the ranges of `containers` in /etc/subuid and /etc/subgid, sized from the image as podman "
       "does: its largest id + 1, 1024 to 65536; the image's layers idmapped with the task's maps, so a file the "
       "image gives to uid N is the task's N, or copied with the task's ids into its task dir where the store's "
       "file system takes no idmapped mounts, as podman copies and chowns; free again when the task is "
       "destroyed); keep-id and nomap are "
       "rootless modes (an error as root, as in podman)"},
      {"config.devices", kImpl, "host[:container[:rwm]] device nodes and cgroup device rules"},
      {"config.volumes", kImpl, "host:container[:ro,rw,...] bind mounts, when the plugin's volumes.enabled"},
      {"config.tmpfs", kImpl, "tmpfs mounts (path[:options])"},
      {"config.sysctl", kImpl, "namespaced sysctls only (kernel.msg*, kernel.shm*, net.* in an own netns...)"},
      {"config.ulimit", kImpl, "rlimits soft[:hard]; nofile and nproc default to podman's 1048576 for root"},
      {"config.memory_reservation", kImpl, "memory.low"},
      {"config.memory_swap", kImpl, "memory plus swap, as podman: memory.swap.max is the difference"},
      {"config.memory_swappiness", kAccepted, "validated (0..100); cgroup v2 has no per-cgroup swappiness"},
      {"config.oom_score_adj", kImpl, "the process's oom_score_adj"},
      {"config.pids_limit", kImpl, "pids.max"},
      {"config.shm_size", kImpl, "size of the private /dev/shm"},
      {"config.cpu_hard_limit", kImpl, "cpu.max quota from the task's cpu share of the host"},
      {"config.cpu_cfs_period", kImpl, "cpu.max period with cpu_hard_limit (default 100000)"},
      {"config.network_mode", kImpl,
       "bridge (husk's, with IPAM), host, none, slirp4netns, pasta, ns:PATH, Nomad's group network, a network "
       "NAME (husk's bridge NAME, made with its first container; its containers find each other by id through its "
       "DNS server, as podman's aardvark-dns answers), task:NAME and container:ID (that running task's network "
       "namespace)"},
      {"config.ipc_mode", kImpl,
       "private, shareable (a /dev/shm other tasks can share), host, none, ns:PATH, task:NAME and container:ID "
       "(that running task's IPC namespace, and its /dev/shm when shareable, else a warning)"},
      {"config.ipv4_address", kImpl,
       "static address on a bridge network (husk's IPAM: taken or outside the subnet is an error); a warning in "
       "other modes, where podman ignores it"},
      {"config.ipv6_address", kImpl,
       "as ipv4_address, in the network's IPv6 prefix at the same offset (last 32 bits) as the IPv4 address"},
      {"config.static_ips", kImpl, "one IPv4 and one IPv6 address at most, merged with ipv4_address/ipv6_address"},
      {"config.static_mac", kImpl, "the MAC of eth0 on a bridge network; a warning in other modes"},
      {"config.extra_hosts", kImpl, "host:ip lines in the task's /etc/hosts"},
      {"config.ports", kImpl, "group network port labels forwarded to the bridge"},
      {"config.port_map", kImpl, "deprecated label = port forwards; NOMAD_PORT_label set to the container port"},
      {"config.logging", kImpl, "the task's output goes to Nomad's log files"},
      {"config.logging.driver", kImpl, "nomad; journald (husk's monitor sends each line to journald, and to Nomad)"},
      {"config.logging.options", kImpl, "journald: tag (templates); others a warning"},
      {"config.socket", kAccepted, "must name a configured socket; nothing connects to it"},
      // ---- plugin options ----
      {"plugin.socket_path", kAccepted, "names the default socket; husk runs containers without a podman service"},
      {"plugin.socket", kAccepted, "named sockets a task's socket may name"},
      {"plugin.socket[].name", kAccepted, "as socket"},
      {"plugin.socket[].socket_path", kAccepted, "as socket (required)"},
      {"plugin.auth", kImpl, "where credentials come from when a task has none"},
      {"plugin.auth.config", kImpl, "a docker config.json (auths, credsStore, credHelpers)"},
      {"plugin.auth.helper", kImpl, "docker-credential-<helper> answers for every registry"},
      {"plugin.volumes", kImpl, "the host path policy for volumes and image directories"},
      {"plugin.volumes.enabled", kImpl, "false: only paths inside the allocation directory"},
      {"plugin.volumes.selinuxlabel", kRefused, "husk cannot relabel for SELinux"},
      {"plugin.gc", kImpl, "container garbage collection"},
      {"plugin.gc.container", kImpl,
       "false: DestroyTask leaves the stopped container in husk's state (husk list/state) with its task dir "
       "(its changes in upper/, config.json, husk.log; no mounts); the task dir's `kept` file says how to remove "
       "it"},
      {"plugin.recover_stopped", kAccepted, "a stopped task is never restarted; RecoverTask reports its exit"},
      {"plugin.extra_labels", kImpl, "job, task, node... labels (globs) added as annotations"},
      {"plugin.logging", kImpl, "the default for tasks without a logging block"},
      {"plugin.logging.driver", kImpl, "as config.logging.driver"},
      {"plugin.logging.options", kImpl, "as config.logging.options"},
      {"plugin.networking", kImpl, "rootless network default"},
      {"plugin.networking.default_rootless_mode", kAccepted, "rootless tasks default to slirp4netns"},
      {"plugin.disable_log_collection", kImpl, "Nomad's log files get nothing; journald still does"},
      {"plugin.client_http_timeout", kAccepted, "validated as a Go duration; no HTTP client"},
      {"plugin.dns_servers", kImpl, "the tasks' resolv.conf when the job sets no dns"},
      {"plugin.allow_caps", kImpl,
       "husk's addition (as in Nomad's docker driver): cap_add entries outside it are errors, the default set is "
       "cut to it; unset: any"},
      {"plugin.allow_privileged", kImpl, "husk's addition: false refuses privileged tasks (default true, podman's behaviour)"},
      {"plugin.image_store", kImpl,
       "husk's addition: the image store's root directory (absolute); unset, $HUSK_IMAGE_STORE, else "
       "/var/lib/husk/images"},
  };
}

}  // namespace husk::driver::podman
