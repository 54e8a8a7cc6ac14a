# The docker flavor's plugin config in the VM tests: the image is a host
# directory (outside the allocation), which needs volumes; a pids ceiling
# that the fields task stays below.
volumes {
  enabled = true
}
pids_limit = 100
allow_caps = ["audit_write", "chown", "dac_override", "fowner", "fsetid", "kill", "mknod", "net_bind_service",
              "setfcap", "setgid", "setpcap", "setuid", "sys_chroot"]
gc {
  image_delay = "3m"
  dangling_containers {
    creation_grace = "5m"
  }
}
