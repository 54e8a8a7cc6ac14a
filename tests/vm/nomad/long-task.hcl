image        = "${HARNESS_IMAGE}"
command      = "/bin/sh"
args         = ["-c", "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 143' TERM INT; echo long-started; while true; do sleep 0.2; done"]
network_mode = "host"
