/* bench/runner: runs commands for bench/compare and reports their rusage.
 * A tiny C process, so nothing of the measuring side shows in the runtime's
 * peak RSS (the kernel records the pre-exec mm's peak in ru_maxrss).
 * stdin: one command per line, arguments separated by tabs.
 * stdout: "exit-code wall-seconds cpu-seconds maxrss-KiB" per command.
 * argv[1] == "private": first unshare the mount namespace and detach the
 * cgroup2 mount at /sys/fs/cgroup/unified (for crun on a hybrid host).
 * "user UID GID" (after "private", if both): then drop to that uid and gid
 * (no supplementary groups), to time rootless runtimes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int arg = 1;
  if (argc > arg && strcmp(argv[arg], "private") == 0) {
    arg++;
    if (unshare(CLONE_NEWNS) < 0) { perror("unshare"); return 1; }
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0) { perror("umount cgroup2"); return 1; }
  }
  if (argc > arg + 2 && strcmp(argv[arg], "user") == 0) {
    uid_t uid = (uid_t)strtoul(argv[arg + 1], NULL, 10);
    gid_t gid = (gid_t)strtoul(argv[arg + 2], NULL, 10);
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
      perror("drop to the rootless user");
      return 1;
    }
  }
  int devnull = open("/dev/null", O_RDWR);
  char line[65536];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    char *args[256];
    int n = 0;
    for (char *tok = strtok(line, "\t"); tok && n < 255; tok = strtok(NULL, "\t")) args[n++] = tok;
    args[n] = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      execv(args[0], args);
      _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    } /* orphaned containers */
    double wall = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("%d %.6f %.6f %ld\n", rc, wall, cpu, ru.ru_maxrss);
    fflush(stdout);
  }
  return 0;
}
