# A broad docker-style task config for the harness's task-config-schema
# scenario (decoded and encoded only, never run).
image        = "${HARNESS_IMAGE}"
command      = "/bin/sh"
args         = ["-c", "echo ${NOMAD_TASK_NAME}"]
entrypoint   = ["/bin/env"]
work_dir     = "/"
hostname     = "harness"
ports        = ["http"]
volumes      = ["/tmp:/data:ro"]
cap_add      = ["NET_ADMIN"]
cap_drop     = ["ALL"]
privileged   = false
tty          = false
init         = true
force_pull   = false
network_mode = "host"
shm_size     = 67108864
memory_hard_limit = 512
security_opt = ["no-new-privileges"]
auth {
  username = "u"
  password = "p"
}
labels {
  team = "harness"
}
ulimit {
  nofile = "2048:4096"
}
sysctl = [{
  "net.core.somaxconn" = "1024"
}]
logging {
  type = "json-file"
  config {
    max-size = "10m"
  }
}
devices {
  host_path = "/dev/null"
}
mount {
  type   = "tmpfs"
  target = "/scratch"
  tmpfs_options {
    size = 1048576
  }
}
mount {
  type   = "bind"
  source = "local"
  target = "/conf"
  bind_options {
    propagation = "rprivate"
  }
}
storage_opt {
  size = "1G"
}
