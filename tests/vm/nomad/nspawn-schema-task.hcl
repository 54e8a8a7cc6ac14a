# Every field of nomad-driver-nspawn's task config, decoded (not run) in the
# harness's task-config-schema scenario.
image            = "${HARNESS_IMAGE}"
boot             = false
process_two      = true
command          = ["/bin/sh", "-c", "true"]
ephemeral        = true
read_only        = false
volatile         = "no"
user_namespacing = true
private_users    = "identity"
private_users_ownership = "auto"
console          = "pipe"
pivot_root       = "/sysroot:/oldroot"
resolv_conf      = "copy-host"
user             = "root"
working_directory = "/srv"
bind             = [{ "/srv/data" = "/data" }]
bind_read_only   = [{ "/etc/passwd" = "/etc/host-passwd" }]
environment      = [{ FOO = "bar" }]
capability       = ["CAP_NET_ADMIN"]
ports            = ["http"]
port_map         = [{ http = 80 }]
network_veth     = true
network_bridge   = ""
network_zone     = "apps"
image_download {
  url    = "https://example.org/images/debian.tar.xz"
  type   = "tar"
  verify = "checksum"
  force  = false
}
