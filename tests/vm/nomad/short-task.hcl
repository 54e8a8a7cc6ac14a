# The harness's short task, on the host network until husk networking is
# wired into the driver (podman's default is a bridge).
image        = "${HARNESS_IMAGE}"
command      = "/bin/sh"
args         = ["-c", "echo hello-from-task; echo err-line 1>&2; exit 3"]
network_mode = "host"
