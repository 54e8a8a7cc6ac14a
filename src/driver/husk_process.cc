#include "driver/husk_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "common/fd.h"

extern char** environ;

namespace husk::driver {

Result<pid_t> spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  if (argv.empty()) return fail_msg("spawn: empty command line");
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  if (o.stdin_fd >= 0) posix_spawn_file_actions_adddup2(&fa, o.stdin_fd, 0);
  else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (o.stdout_fd >= 0) posix_spawn_file_actions_adddup2(&fa, o.stdout_fd, 1);
  else posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (o.stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, o.stderr_fd, 2);
  else posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  // gRPC threads block signals; the child starts with none blocked and
  // every signal at its default.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  char** env = environ;
  if (!o.extra_env.empty()) {
    for (char** e = environ; *e; ++e) {
      std::string_view kv = *e;
      bool replaced = false;
      for (const auto& x : o.extra_env) replaced = replaced || kv.substr(0, kv.find('=') + 1) == x.substr(0, x.find('=') + 1);
      if (!replaced) envp.push_back(*e);
    }
    env_store = o.extra_env;
    for (auto& x : env_store) envp.push_back(x.data());
    envp.push_back(nullptr);
    env = envp.data();
  }
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, args.data(), env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail_errno(rc, "start ", argv[0]);
  return pid;
}

namespace {

// `name` beside the driver binary, or at one of `rel` from its directory.
std::string beside_self(const std::vector<std::string>& rel) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  self[n] = 0;
  std::string dir(self);
  dir = dir.substr(0, dir.rfind('/'));
  for (const auto& r : rel)
    if (std::string p = dir + r; access(p.c_str(), X_OK) == 0) return p;
  return "";
}

}  // namespace

std::string husk_image_binary() {
  if (const char* env = getenv("HUSK_IMAGE_BINARY"); env && *env) return env;
  if (std::string p = beside_self({"/husk-image", "/../image/husk-image"}); !p.empty()) return p;
  for (const char* p : {"/usr/local/bin/husk-image", "/usr/bin/husk-image"})
    if (access(p, X_OK) == 0) return p;
  return "husk-image";
}

std::string husk_binary() {
  if (const char* env = getenv("HUSK_BINARY"); env && *env) return env;
  if (std::string p = beside_self({"/husk", "/../cli/husk"}); !p.empty()) return p;
  for (const char* p : {"/usr/local/bin/husk", "/usr/bin/husk"})
    if (access(p, X_OK) == 0) return p;
  return "husk";
}

}  // namespace husk::driver
