# The harness's short task as a docker job, with field groups whose effect
# the task itself records in the allocation directory (effects.txt, read by
# test_nomad_docker.py): capabilities, security options, hostname, limits,
# sysctl, mounts and /etc files. No network of its own beyond loopback.
image           = "${HARNESS_IMAGE}"
command         = "/bin/sh"
args            = ["-c", "o=$NOMAD_ALLOC_DIR/effects.txt; { echo hostname=$(hostname); echo env_hostname=$HOSTNAME; grep -E '^(CapBnd|NoNewPrivs|Seccomp|Groups):' /proc/self/status; echo nofile=$(ulimit -n); echo somaxconn=$(cat /proc/sys/net/core/somaxconn); echo pids=$(cat /sys/fs/cgroup/pids.max); echo oom=$(cat /proc/self/oom_score_adj); echo pwd=$(pwd); grep -E ' /(scratch|dev/shm|data) ' /proc/mounts; grep db.example /etc/hosts; grep nameserver /etc/resolv.conf; if touch /rootfs-write 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi; if touch /data/x 2>/dev/null; then echo data=rw; else echo data=ro; fi; } >$o 2>&1; echo hello-from-task; echo err-line 1>&2; exit 3"]
network_mode    = "none"
hostname        = "docker-fields"
work_dir        = "/local"
cap_drop        = ["all"]
cap_add         = ["chown", "kill", "setgid", "setuid"]
security_opt    = ["no-new-privileges"]
group_add       = ["44"]
readonly_rootfs = true
oom_score_adj   = 123
pids_limit      = 64
shm_size        = 33554432
dns_servers     = ["192.0.2.53"]
extra_hosts     = ["db.example:192.0.2.7"]
volumes         = ["local:/data:ro"]
labels {
  team = "husk"
}
ulimit {
  nofile = "2048:4096"
}
sysctl = [{
  "net.core.somaxconn" = "1234"
}]
mount {
  type   = "tmpfs"
  target = "/scratch"
  tmpfs_options {
    size = 1048576
  }
}
