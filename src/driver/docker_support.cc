// The docker flavor's support table: for every task config field and plugin
// option of the docker driver, what husk does with it. The man page's and
// README's tables are made from these rows; driver_docker_test checks they
// cover the schemas exactly, in schema order.
#include <algorithm>

#include "driver/docker_flavor.h"

namespace husk::driver::docker {

std::vector<FieldSupport> support_table() {
  using S = FieldSupport::Status;
  const S I = S::kImplemented, A = S::kAccepted, R = S::kRefused;
  std::vector<FieldSupport> rows = {
      {"config.image", I, "a registry reference pulled into husk's image store (husk-image(7)), oci:, oci-archive: or docker-archive: through the store, or a local root filesystem directory; the image config's Entrypoint, Cmd, Env, WorkingDir, User and StopSignal apply as docker applies them; a registry on the loopback may be plain HTTP, as dockerd allows; \"Docker image pull progress\" events every 10 s while a pull runs, stalled or not"},
      {"config.image_pull_timeout", I, "a bound on the whole pull (default: the plugin's image_pull_timeout)"},
      {"config.advertise_ipv6_address", I,
       "the task's IPv6 address on husk's bridge (subnet6) goes to Nomad, auto-advertised; no address: a warning"},
      {"config.args", I, "appended to the command"},
      {"config.auth", I, "registry credentials for the pull"},
      {"config.auth.username", I, "with password: the credentials (else the plugin's auth.config/auth.helper, REGISTRY_AUTH_FILE, docker's config.json)"},
      {"config.auth.password", I, "as username"},
      {"config.auth.email", A, "unused, as in the docker driver"},
      {"config.auth.server_address", A, "the registry comes from the image reference, as in the docker driver"},
      {"config.auth_soft_fail", I, "a pull refused with the given credentials is tried anonymously"},
      {"config.cap_add", I, "each entry must be in the plugin's allow_caps"},
      {"config.cap_drop", I, "\"all\" keeps only cap_add"},
      {"config.cgroupns", I, "host or private (the default)"},
      {"config.command", I, "whitespace-checked as docker does"},
      {"config.container_exists_attempts", A, "unused, as in the docker driver"},
      {"config.cpuset_cpus", A, "no effect, with a warning, as in the docker driver"},
      {"config.cpu_hard_limit", I, "CFS quota = share of the node x period x CPUs"},
      {"config.cpu_cfs_period", I, "0..1000000"},
      {"config.devices", I, "device nodes with their cgroup rules"},
      {"config.devices[].host_path", I, "required"},
      {"config.devices[].container_path", I, "defaults to host_path"},
      {"config.devices[].cgroup_permissions", I, "subset of rwm"},
      {"config.dns_search_domains", I, "the task's resolv.conf (a group dns block wins)"},
      {"config.dns_options", I, "the task's resolv.conf (a group dns block wins)"},
      {"config.dns_servers", I, "the task's resolv.conf (a group dns block wins)"},
      {"config.entrypoint", I, "argv prefix"},
      {"config.extra_hosts", I, "lines of the task's /etc/hosts"},
      {"config.force_pull", I, "pull even when the store has the image"},
      {"config.group_add", I, "numeric or named in the image's /etc/group"},
      {"config.healthchecks", A, "husk runs no image HEALTHCHECK"},
      {"config.healthchecks.disable", A, "husk runs no image HEALTHCHECK, so it is always disabled"},
      {"config.hostname", I, "UTS hostname, /etc/hostname and HOSTNAME"},
      {"config.init", I, "the host's docker-init, tini or catatonit as PID 1"},
      {"config.interactive", I,
       "the task's stdin stays open (a FIFO in the task dir nothing writes to): reads block, never end of file"},
      {"config.ipc_mode", I,
       "private, shareable (its /dev/shm a host-side tmpfs others can bind), host, none, container:NAME (a "
       "running shareable task of this driver: its IPC namespace and /dev/shm; a non-shareable one is an error, as "
       "in docker); gated by allowed_modes.ipc"},
      {"config.ipv4_address", I,
       "static address on a user-defined network (husk's bridge of that name; a network made for it gets the /24 "
       "holding it); taken by a running container, outside the subnet or on the default network: an error"},
      {"config.ipv6_address", I,
       "as ipv4_address, in the network's IPv6 prefix (the /64 holding it when made for it), at the same offset in "
       "the last 32 bits as the container's IPv4 address"},
      {"config.isolation", R, "Windows only: any value is an error"},
      {"config.labels", I, "OCI annotations"},
      {"config.load", I, "a docker save archive in the task directory, imported into the store; image names the image in it"},
      {"config.logging", I, "journald, syslog, gelf, fluentd, splunk, awslogs and gcplogs through husk's monitor (splunk, awslogs, gcplogs, syslog over tcp+tls and fluentd over tls in its husk-log process), besides Nomad's log files; none; another type an error, as under dockerd"},
      {"config.logging.type", I, "journald, syslog (udp, tcp, tcp+tls, unix, unixgram), gelf (udp, tcp: docker's has no tls either), fluentd (tcp, tls, unix), splunk (HEC over http or https), awslogs (CloudWatch Logs, SigV4), gcplogs (Cloud Logging entries:write with Google's application default credentials or the GCE metadata server), none; json-file and local are Nomad's files; etwlogs an error (Windows only, as dockerd on Linux), logentries an error (the service closed in 2022, docker v25 removed it), any other name an error, as dockerd's"},
      {"config.logging.driver", A, "alias of type"},
      {"config.logging.config", I, "tag templates, labels/env(-regex) as journal, GELF, record fields or splunk attrs, syslog-address/facility/format, syslog-tls-ca-cert/cert/key/skip-verify (with a tcp+tls:// address); gelf-address (required), gelf-compression-type/level, gelf-tcp-max-reconnect/reconnect-delay; fluentd-address, fluentd-async(-connect), fluentd-async-reconnect-interval, fluentd-buffer-limit, fluentd-retry-wait, fluentd-max-retries, fluentd-sub-second-precision, fluentd-request-ack, fluentd-write-timeout; splunk-url and splunk-token (required), splunk-source/sourcetype/index, splunk-capath/caname/insecureskipverify, splunk-format (inline, json, raw), splunk-verify-connection (checked before the task starts), splunk-gzip(-level), SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY/BATCH_SIZE and _BUFFER_MAX of the driver's environment; awslogs-group (required), awslogs-region (or AWS_REGION), awslogs-stream (default the tag, else the container id), awslogs-create-group, awslogs-create-stream, awslogs-endpoint, awslogs-datetime-format or awslogs-multiline-pattern (docker's multiline events), credentials from awslogs-credentials-endpoint (ECS's container endpoint, fetched again before they expire), else the driver's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or ~/.aws/credentials; gcp-project (else the GCE metadata server's), gcp-log-cmd, gcp-meta-zone/name/id (off GCE), labels/env(-regex) as the entries' container metadata, credentials from the driver's GOOGLE_APPLICATION_CREDENTIALS (service_account or authorized_user), gcloud's application_default_credentials.json or the GCE metadata server (GCE_METADATA_HOST), checked with docker's ping entry before the task starts; unknown keys an error (gcplogs takes no tag, as docker's)"},
      {"config.mac_address", I, "the MAC of the task's eth0 on husk's bridge (run.husk.mac); with other networks an error"},
      {"config.memory_hard_limit", I, "memory becomes the reservation, this the limit"},
      {"config.mount", I, "bind, tmpfs and volume mounts"},
      {"config.mount[].type", I, "bind, tmpfs, volume (default)"},
      {"config.mount[].target", I, "absolute path"},
      {"config.mount[].source", I, "host path (relative to the task dir) or volume name"},
      {"config.mount[].readonly", I, "the mount is read-only"},
      {"config.mount[].bind_options", I, "propagation of a bind mount"},
      {"config.mount[].bind_options.propagation", I, "rprivate (default), private, rshared, shared, rslave, slave"},
      {"config.mount[].tmpfs_options", I, "size and mode of a tmpfs mount"},
      {"config.mount[].tmpfs_options.size", I, "bytes"},
      {"config.mount[].tmpfs_options.mode", I, "file mode"},
      {"config.mount[].volume_options", I, "husk's local volumes: <state dir>/volumes/<name>"},
      {"config.mount[].volume_options.no_copy", I, "a new volume gets the image's content unless set"},
      {"config.mount[].volume_options.labels", A, "husk keeps no volume metadata"},
      {"config.mount[].volume_options.driver_config", R, "only the local driver, without options"},
      {"config.mount[].volume_options.driver_config.name", R, "only \"local\""},
      {"config.mount[].volume_options.driver_config.options", R, "any option is an error"},
      {"config.mounts", I, "deprecated spelling of mount"},
      {"config.network_aliases", I,
       "on a user-defined network: the other tasks there find this one by these names and its docker name "
       "<task>-<alloc id>, answered by the network's DNS server (husk-dns on the bridge's gateway, which forwards "
       "other names to the host's resolvers; an alias several tasks share gets all their addresses, shuffled, as "
       "docker's round robin); elsewhere an error, as in docker"},
      {"config.network_mode", I, "bridge (husk's, the default), host, none, container:<husk id or docker name "
                                 "task-alloc>, Nomad's group network, or a user-defined network NAME: husk's bridge NAME, made with "
                                 "its first container (next free 10.89.N.0/24) and removed with its last; its "
                                 "containers reach each other by address, and by name through its DNS server"},
      {"config.oom_score_adj", I, "-1000..1000"},
      {"config.pids_limit", I, "bounded by the plugin's pids_limit"},
      {"config.pid_mode", I,
       "host, private, container:NAME (a running task of this driver: its PID namespace); gated by "
       "allowed_modes.pid"},
      {"config.port_map", I, "NOMAD_PORT_<label> and the bridge's forwards"},
      {"config.ports", I, "the bridge's forwards, TCP and UDP"},
      {"config.privileged", I, "needs the plugin's allow_privileged"},
      {"config.readonly_rootfs", I, "the container's root filesystem is mounted read-only"},
      {"config.runtime", R, "must be in allow_runtimes; only runc (husk) runs"},
      {"config.security_opt", I, "no-new-privileges, seccomp=unconfined|PATH, apparmor=unconfined|PROFILE (a "
                                 "profile loaded on the host, applied at the task's exec; an error where AppArmor is "
                                 "off or the profile is not loaded; without apparmor=, where the host runs AppArmor "
                                 "and the task is not privileged, husk-default, husk's docker-default, loaded by the "
                                 "driver: an error if it cannot be), label=disable, systempaths=unconfined"},
      {"config.shm_size", I, "bytes"},
      {"config.storage_opt", R, "any entry is an error"},
      {"config.sysctl", I, "namespaced sysctls only"},
      {"config.tty", I, "the task gets a pty; its output goes to the stdout log"},
      {"config.ulimit", I, "soft[:hard]"},
      {"config.uts_mode", I, "host or private; gated by allowed_modes.uts"},
      {"config.userns_mode", R, "only host (husk does no userns remapping)"},
      {"config.volumes", I, "src:dst[:mode]; relative src under the task dir; outside the alloc dir needs "
                            "volumes.enabled"},
      {"config.volume_driver", R, "only \"local\" (husk's named volumes), with volumes.enabled"},
      {"config.work_dir", I, "absolute path"},

      {"plugin.endpoint", A, "names the docker daemon; husk has none and connects nowhere"},
      {"plugin.auth", I, "where credentials come from when a task has none"},
      {"plugin.auth.config", I, "a docker config.json (auths, credsStore, credHelpers)"},
      {"plugin.auth.helper", I, "docker-credential-<helper> answers for every registry"},
      {"plugin.tls", A, "no daemon to talk TLS to"},
      {"plugin.tls.cert", A, "unused"},
      {"plugin.tls.key", A, "unused"},
      {"plugin.tls.ca", A, "unused"},
      {"plugin.extra_labels", I, "com.hashicorp.nomad.* annotations"},
      {"plugin.logging", A, "default log driver of tasks; see config.logging"},
      {"plugin.logging.type", A, "see config.logging.type"},
      {"plugin.logging.config", I, "see config.logging.config"},
      {"plugin.gc", I, "garbage collection of containers and images"},
      {"plugin.gc.image", I, "images of the store no task holds are removed after image_delay (checked once a minute)"},
      {"plugin.gc.image_delay", I, "how long an unused image stays (default 3m)"},
      {"plugin.gc.container", I,
       "false: DestroyTask leaves the stopped container in husk's state (husk list/state) with its task dir "
       "(its changes in upper/, config.json, husk.log; no mounts); the task dir's `kept` file says how to remove "
       "it; the dangling reaper leaves it alone"},
      {"plugin.gc.dangling_containers", I, "a reaper of husk containers with the alloc_id annotation that no task owns"},
      {"plugin.gc.dangling_containers.enabled", I, "the reaper of husk containers no task owns runs"},
      {"plugin.gc.dangling_containers.period", I, "scan interval; the first scan one period after start"},
      {"plugin.gc.dangling_containers.creation_grace", I, "at least 1m"},
      {"plugin.gc.dangling_containers.dry_run", I, "only logs"},
      {"plugin.volumes", I, "host paths in tasks"},
      {"plugin.volumes.enabled", I, "host paths outside the alloc dir, image directories, volume mounts"},
      {"plugin.volumes.selinuxlabel", R, "an error on SELinux hosts (no relabelling); harmless elsewhere"},
      {"plugin.allow_privileged", I, "privileged tasks (and any namespace mode) allowed"},
      {"plugin.allow_caps", I, "bounds every task's capabilities"},
      {"plugin.allow_runtimes", I, "checked against config.runtime"},
      {"plugin.nvidia_runtime", A, "unused: no NVIDIA runtime"},
      {"plugin.infra_image", A, "unused: Nomad's group network namespace is joined directly"},
      {"plugin.infra_image_pull_timeout", A, "validated"},
      {"plugin.image_pull_timeout", I, "the default bound on a pull"},
      {"plugin.pull_activity_timeout", I, "a pull in which no byte arrives for this long fails (at least 1m)"},
      {"plugin.container_exists_attempts", A, "unused: husk container ids are unique per task"},
      {"plugin.oom_score_adj", A, "unused, as in the docker driver"},
      {"plugin.pids_limit", I, "default and ceiling of config.pids_limit"},
      {"plugin.disable_log_collection", I, "Nomad's log files get nothing; journald/syslog/gelf/fluentd/splunk/awslogs/gcplogs still do"},
      {"plugin.windows_allow_insecure_container_admin", A, "Windows only"},
      {"plugin.allowed_modes", I, "which pid/ipc/uts/userns/network modes tasks may ask for"},
      {"plugin.allowed_modes.pid", I, "globs"},
      {"plugin.allowed_modes.ipc", I, "globs"},
      {"plugin.allowed_modes.userns", I, "globs"},
      {"plugin.allowed_modes.uts", I, "globs"},
      {"plugin.image_store", I,
       "husk's addition: the image store's root directory (absolute); unset, $HUSK_IMAGE_STORE, else "
       "/var/lib/husk/images"},
  };
  // `mounts` has the body of `mount`: the same rows under its name.
  std::vector<FieldSupport> alias;
  for (const auto& r : rows)
    if (r.field.starts_with("config.mount[]."))
      alias.push_back({"config.mounts[]." + r.field.substr(15), r.status, r.note});
  auto at = std::find_if(rows.begin(), rows.end(), [](const FieldSupport& r) { return r.field == "config.mounts"; });
  rows.insert(at + 1, alias.begin(), alias.end());
  return rows;
}

}  // namespace husk::driver::docker
