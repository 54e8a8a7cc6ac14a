# The harness's long task for the nspawn flavor, on nspawn's defaults
# otherwise: a veth (husk's bridge) and a user namespace of its own.
image   = "${HARNESS_IMAGE}"
boot    = false
command = ["/bin/sh", "-c", "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 143' TERM INT; echo long-started; while true; do sleep 0.2; done"]
