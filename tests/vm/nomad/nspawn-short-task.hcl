# The harness's short task for the nspawn flavor: boot = false runs the
# command itself (nspawn's default is to boot the image's init).
image   = "${HARNESS_IMAGE}"
boot    = false
command = ["/bin/sh", "-c", "echo hello-from-task; echo err-line 1>&2; exit 3"]
