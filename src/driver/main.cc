// nomad-driver-husk: a Nomad task driver plugin. Its name picks the flavor
// it serves: installed (or symlinked) as nomad-driver-podman it is "podman"
// with nomad-driver-podman's schemas, as nomad-driver-docker it is "docker"
// with the docker driver's, as nomad-driver-nspawn it is "nspawn" with
// nomad-driver-nspawn's; as nomad-driver-husk it is "husk".
// `--flavor NAME` overrides, `--state-dir DIR` moves the task state
// (default /var/lib/husk-driver), `--cgroup-manager cgroupfs|systemd` says
// how husk manages the tasks' cgroups (under nomad.slice either way).
// `--apparmor-profile` prints husk-default, the AppArmor profile of the
// docker and podman flavors' tasks, for operators to read or load.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "driver/apparmor_default.h"
#include "driver/flavor.h"
#include "driver/plugin.h"

#ifndef HUSK_VERSION
#define HUSK_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kCookieKey = "NOMAD_PLUGIN_MAGIC_COOKIE";
constexpr const char* kCookieValue = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";

std::string flavor_from_name(const char* argv0) {
  std::string base = argv0;
  size_t slash = base.rfind('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  const std::string prefix = "nomad-driver-";
  if (base.starts_with(prefix)) return base.substr(prefix.size());
  return "husk";
}

int usage(FILE* f) {
  fputs("usage: nomad-driver-husk [--flavor NAME] [--state-dir DIR] [--cgroup-manager cgroupfs|systemd]\n"
        "       nomad-driver-husk --apparmor-profile\n"
        "A Nomad task driver plugin: Nomad's client agent starts it. See nomad-driver-husk(8).\n",
        f);
  return f == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string flavor = flavor_from_name(argv[0]);
  std::string state_dir = "/var/lib/husk-driver";
  std::string cgroup_manager = "cgroupfs";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      std::string prefix = std::string(name) + "=";
      if (a.starts_with(prefix)) return a.substr(prefix.size());
      if (i + 1 >= argc) {
        fprintf(stderr, "nomad-driver-husk: %s needs a value\n", name);
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--flavor" || a.starts_with("--flavor=")) flavor = value("--flavor");
    else if (a == "--state-dir" || a.starts_with("--state-dir=")) state_dir = value("--state-dir");
    else if (a == "--cgroup-manager" || a.starts_with("--cgroup-manager=")) cgroup_manager = value("--cgroup-manager");
    else if (a == "-h" || a == "--help") return usage(stdout);
    else if (a == "--apparmor-profile") {
      auto text = husk::driver::apparmor::default_profile_text();
      return fwrite(text.data(), 1, text.size(), stdout) == text.size() && fflush(stdout) == 0 ? 0 : 1;
    } else if (a == "--version") {
      printf("nomad-driver-husk %s\n", HUSK_VERSION);
      return 0;
    } else {
      fprintf(stderr, "nomad-driver-husk: unknown argument \"%s\"\n", a.c_str());
      return usage(stderr);
    }
  }
  if (cgroup_manager != "cgroupfs" && cgroup_manager != "systemd") {
    fprintf(stderr, "nomad-driver-husk: --cgroup-manager: unknown manager \"%s\" (cgroupfs or systemd)\n",
            cgroup_manager.c_str());
    return 2;
  }
  const char* cookie = getenv(kCookieKey);
  if (!cookie || strcmp(cookie, kCookieValue) != 0) {
    fputs("This binary is a plugin. These are not meant to be executed directly.\n"
          "Please execute the program that consumes these plugins, which will\n"
          "load any plugins automatically\n",
          stderr);
    return 1;
  }
  std::unique_ptr<husk::driver::Flavor> f = husk::driver::make_flavor(flavor);
  if (!f) {
    std::string known;
    for (const auto& n : husk::driver::flavor_names()) known += (known.empty() ? "" : ", ") + n;
    fprintf(stderr, "nomad-driver-husk: unknown flavor \"%s\" (%s)\n", flavor.c_str(), known.c_str());
    return 1;
  }
  std::string dir;
  if (const char* d = getenv("PLUGIN_UNIX_SOCKET_DIR"); d && *d) dir = d;
  else if (const char* t = getenv("TMPDIR"); t && *t) dir = t;
  else dir = "/tmp";
  std::string tmpl = dir + "/plugin-husk-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    fprintf(stderr, "nomad-driver-husk: cannot make a socket directory in %s: %s\n", dir.c_str(), strerror(errno));
    return 1;
  }
  husk::driver::PluginOptions o;
  o.socket_path = tmpl + "/plugin.sock";
  o.state_dir = state_dir;
  o.version = HUSK_VERSION;
  o.systemd_cgroups = cgroup_manager == "systemd";
  return husk::driver::serve(std::move(f), o);
}
