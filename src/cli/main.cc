// husk: an OCI runtime with runc/crun's command line.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/fd.h"
#include "oci/config.h"
#include "runtime/container.h"
#include "runtime/log.h"

using namespace husk;

namespace {

const std::vector<cli::OptSpec> kGlobal = {
    {"root", 0, true},        {"log", 0, true},           {"log-format", 0, true}, {"log-level", 0, true},
    {"debug", 0, false},      {"systemd-cgroup", 0, false}, {"cgroup-manager", 0, true},
    {"rootless", 0, true},    {"version", 'v', false},    {"help", 'h', false},
};

const char* kUsage =
    "usage: husk [global options] COMMAND [options] [arguments]\n"
    "\n"
    "Commands:\n"
    "  create     create a container from a bundle (it waits for start)\n"
    "  start      start a created container\n"
    "  run        create and start a container (foreground unless --detach)\n"
    "  exec       run a process in a running container\n"
    "  kill       send a signal to a container's init (or --all its processes)\n"
    "  delete     delete a container (--force kills it first)\n"
    "  state      print a container's OCI state\n"
    "  list       list containers\n"
    "  ps         list a container's processes\n"
    "  pause      freeze a container\n"
    "  resume     thaw a paused container\n"
    "  update     change a running container's resources\n"
    "  events     stats and OOM events of a container (JSON lines)\n"
    "  spec       write a default config.json\n"
    "  features   print the OCI features document\n"
    "  image      the image store: pull, list, inspect, remove, prune, import (husk-image)\n"
    "\n"
    "Global options:\n"
    "  --root DIR                 state directory (default /run/husk, $XDG_RUNTIME_DIR/husk rootless)\n"
    "  --log FILE                 also log to FILE\n"
    "  --log-format text|json     format of --log (json is what conmon and containerd read)\n"
    "  --log-level LEVEL          debug, info, warning or error\n"
    "  --debug                    same as --log-level debug\n"
    "  --systemd-cgroup           use systemd for cgroups (= --cgroup-manager systemd)\n"
    "  --cgroup-manager MANAGER   cgroupfs, systemd or disabled\n"
    "  --rootless true|false|auto rootless mode (default: auto, from the effective uid)\n"
    "  -v, --version              print version, commit and features\n"
    "\n"
    "See husk(1) and husk-COMMAND(1).\n";

void print_version() {
  printf("husk version %s\ncommit: %s\nspec: 1.2.0\n+SECCOMP +CAP +CGROUPV2 +USERNS +IDMAP +CLONE_INTO_CGROUP\n",
         HUSK_VERSION, HUSK_COMMIT);
}

Result<runtime::GlobalOptions> global_options(const cli::Parsed& p) {
  runtime::GlobalOptions g;
  g.root = p.get("root");
  if (!g.root.empty() && g.root[0] != '/') {
    char buf[4096];
    if (getcwd(buf, sizeof buf)) g.root = std::string(buf) + "/" + g.root;
  }
  std::string mgr = p.get("cgroup-manager", p.has("systemd-cgroup") ? "systemd" : "cgroupfs");
  if (mgr == "cgroupfs") g.cgroup_manager = cgroups::ManagerKind::Fs;
  else if (mgr == "systemd") g.cgroup_manager = cgroups::ManagerKind::Systemd;
  else if (mgr == "disabled") g.cgroup_manager = cgroups::ManagerKind::Disabled;
  else return fail_msg("--cgroup-manager: unknown manager \"", mgr, "\" (cgroupfs, systemd or disabled)");
  std::string rl = p.get("rootless", "auto");
  if (rl == "true") g.rootless = true;
  else if (rl == "false") g.rootless = false;
  else if (rl != "auto") return fail_msg("--rootless: expected true, false or auto, got \"", rl, "\"");
  log::Level level = log::Level::Warning;
  if (p.has("debug")) level = log::Level::Debug;
  if (p.values.count("log-level") && !log::parse_level(p.get("log-level"), &level))
    return fail_msg("--log-level: unknown level \"", p.get("log-level"), "\"");
  std::string fmt = p.get("log-format", "text");
  if (fmt != "text" && fmt != "json") return fail_msg("--log-format: expected text or json, got \"", fmt, "\"");
  log::configure(p.get("log"), fmt == "json" ? log::Format::Json : log::Format::Text, level);
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that went away is an error return, not a death by signal.
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv, argv + argc);
  size_t next = 1;
  auto global = cli::parse(args, 1, kGlobal, "husk", false, &next);
  if (!global) {
    fprintf(stderr, "husk: %s\n", global.error().str().c_str());
    return 2;
  }
  if (global->has("version")) {
    print_version();
    return 0;
  }
  if (global->has("help") || next >= args.size()) {
    fputs(kUsage, next >= args.size() && !global->has("help") ? stderr : stdout);
    return global->has("help") ? 0 : 2;
  }
  auto g = global_options(*global);
  if (!g) {
    log::error(g.error().str());
    return 2;
  }
  return cli::dispatch(*g, args, next);
}
