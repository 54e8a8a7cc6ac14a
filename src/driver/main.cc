// nomad-driver-husk: a Nomad task driver plugin. Its name picks the flavor
// it serves: installed (or symlinked) as nomad-driver-podman it is "podman"
// with nomad-driver-podman's schemas, as nomad-driver-nspawn it is "nspawn"
// with nomad-driver-nspawn's; as nomad-driver-husk it is "husk".
// `--flavor NAME` overrides, `--state-dir DIR` moves the task state
// (default /var/lib/husk-driver).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

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
  fputs("usage: nomad-driver-husk [--flavor husk|podman|nspawn] [--state-dir DIR]\n"
        "A Nomad task driver plugin: Nomad's client agent starts it. See nomad-driver-husk(8).\n",
        f);
  return f == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string flavor = flavor_from_name(argv[0]);
  std::string state_dir = "/var/lib/husk-driver";
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
    else if (a == "-h" || a == "--help") return usage(stdout);
    else if (a == "--version") {
      printf("nomad-driver-husk %s\n", HUSK_VERSION);
      return 0;
    } else {
      fprintf(stderr, "nomad-driver-husk: unknown argument \"%s\"\n", a.c_str());
      return usage(stderr);
    }
  }
  const char* cookie = getenv(kCookieKey);
  if (!cookie || strcmp(cookie, kCookieValue) != 0) {
    fputs("This binary is a plugin. These are not meant to be executed directly.\n"
          "Please execute the program that consumes these plugins, which will\n"
          "load any plugins automatically\n",
          stderr);
    return 1;
  }
  std::unique_ptr<husk::driver::Flavor> f;
  if (flavor == "podman" || flavor == "husk") {
    f = husk::driver::make_podman_flavor(flavor);
  } else if (flavor == "nspawn") {
    f = husk::driver::make_nspawn_flavor();
  } else {
    fprintf(stderr, "nomad-driver-husk: unknown flavor \"%s\" (husk, podman or nspawn)\n", flavor.c_str());
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
  return husk::driver::serve(std::move(f), o);
}
