# The harness's long task as a docker job, on docker's default network: a
# bridge (husk's own, src/net).
image   = "${HARNESS_IMAGE}"
command = "/bin/sh"
args    = ["-c", "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 143' TERM INT; echo long-started; while true; do sleep 0.2; done"]
