// Capabilities within allow_caps, security_opt, and docker seccomp profile
// files as OCI filters (see docker_security.h).
#include "driver/docker_security.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "driver/bundle_files.h"
#include "driver/docker_flavor.h"
#include "driver/podman_security.h"
#include "oci/config.h"
#include "oci/json_reader.h"
#include "oci/tables.h"

namespace husk::driver::docker {

namespace {
bool has(const std::vector<int>& v, int c) { return std::find(v.begin(), v.end(), c) != v.end(); }
}  // namespace

// The docker driver's rule (Nomad's capabilities.Delta): a cap_add entry
// outside allow_caps is an error, docker-default capabilities outside
// allow_caps are dropped, "all" in cap_add needs allow_caps to cover every
// capability, "all" in cap_drop keeps only what cap_add names.
Result<std::vector<int>> task_capabilities(const std::vector<int>& allow_caps, const std::vector<std::string>& add,
                                           const std::vector<std::string>& drop) {
  bool add_all = false, drop_all = false;
  auto adds = TRY(podman::cap_list(add, "config.cap_add", add_all));
  auto drops = TRY(podman::cap_list(drop, "config.cap_drop", drop_all));
  if (add_all) {
    for (int c : podman::all_capabilities())
      if (!has(allow_caps, c))
        return fail_msg("config.cap_add: \"all\" is not allowed: the plugin's allow_caps lacks ",
                        oci::capability_name(c));
    adds = podman::all_capabilities();
  }
  for (size_t i = 0; i < adds.size() && !add_all; i++)
    if (!has(allow_caps, adds[i])) {
      size_t at = 0;
      for (size_t j = 0; j < add.size(); j++) {
        bool all = false;
        auto one = podman::cap_list({add[j]}, "config.cap_add", all);
        if (one && !one->empty() && one->front() == adds[i]) at = j;
      }
      return fail_msg("config.cap_add[", at, "]: capability \"", add[at],
                      "\" is not in the plugin's allow_caps; the operator must allow it");
    }
  std::vector<int> out;
  if (!drop_all)
    for (int c : docker_default_capabilities())
      if (has(allow_caps, c) && !has(drops, c)) out.push_back(c);
  for (int c : adds)
    if (!has(out, c) && (drop_all || !has(drops, c))) out.push_back(c);
  std::sort(out.begin(), out.end());
  return out;
}

Result<SecurityOpts> parse_security_opts(const std::vector<std::string>& opts, const std::vector<int>& caps) {
  SecurityOpts s;
  for (size_t i = 0; i < opts.size(); i++) {
    std::string field = cat("config.security_opt[", i, "]");
    const std::string& o = opts[i];
    if (o == "no-new-privileges") {
      s.no_new_privileges = true;
      continue;
    }
    size_t sep = o.find_first_of("=:");
    if (sep == std::string::npos) return fail_msg(field, ": \"", o, "\": want key=value, key:value or no-new-privileges");
    std::string key = o.substr(0, sep), val = o.substr(sep + 1);
    if (key == "no-new-privileges") {
      if (val != "true" && val != "false") return fail_msg(field, ": \"", o, "\": want true or false");
      s.no_new_privileges = val == "true";
    } else if (key == "seccomp") {
      if (val == "unconfined") {
        s.seccomp_unconfined = true;
        s.seccomp.reset();
      } else {
        // The docker driver reads the file on the client; so does husk.
        s.seccomp = TRY(load_seccomp_profile(val, caps, field));
        s.seccomp_unconfined = false;
      }
    } else if (key == "apparmor") {
      s.apparmor = val;
    } else if (key == "label") {
      if (val != "disable" && val != "disable=true")
        return fail_msg(field, ": \"", o, "\": husk does not implement SELinux labels (only label=disable)");
    } else if (key == "systempaths") {
      if (val != "unconfined") return fail_msg(field, ": \"", o, "\": only systempaths=unconfined is known");
      s.unmask_all = true;
    } else {
      return fail_msg(field, ": unknown security option \"", key,
                      "\" (no-new-privileges, seccomp, apparmor, label, systempaths)");
    }
  }
  return s;
}

Result<oci::Seccomp> load_seccomp_profile(const std::string& path, const std::vector<int>& caps,
                                          const std::string& field) {
  if (path.empty() || path[0] != '/')
    return fail_msg(field, ": seccomp profile \"", path, "\": want an absolute path on the client (or unconfined)");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_sys(field, ": open seccomp profile ", path);
  close(fd);
  std::string text = read_host_file(path);
  auto doc = oci::JsonDoc::parse(text);
  if (!doc) return fail_msg(field, ": seccomp profile ", path, ": ", doc.error().what());
  oci::J root = doc->root();
  if (!root["defaultAction"].present()) return fail_msg(field, ": seccomp profile ", path, ": no defaultAction");

  // The OCI parser validates actions, operators and architectures; the
  // profile's own members (archMap, includes, excludes) are docker's and
  // applied here.
  auto spec = oci::parse_config(cat("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"linux\":{\"seccomp\":",
                                    text, "}}"));
  if (!spec) return fail_msg(field, ": seccomp profile ", path, ": ", spec.error().what());
  if (!spec->linux || !spec->linux->seccomp) return fail_msg(field, ": seccomp profile ", path, ": not an object");
  oci::Seccomp sc = *spec->linux->seccomp;

  if (sc.architectures.empty()) {
    oci::J am = root["archMap"];
    for (size_t i = 0; i < am.size(); i++) {
      auto arch = oci::get_string(am.at(i)["architecture"]);
      if (!arch) return fail_msg(field, ": seccomp profile ", path, ": ", arch.error().what());
      sc.architectures.push_back(*arch);
      auto subs = oci::get_strings(am.at(i)["subArchitectures"]);
      if (am.at(i)["subArchitectures"].present() && !subs)
        return fail_msg(field, ": seccomp profile ", path, ": ", subs.error().what());
      if (subs)
        for (auto& s : *subs) sc.architectures.push_back(s);
    }
    for (size_t i = 0; i < sc.architectures.size(); i++)
      if (!oci::seccomp_arch_known(sc.architectures[i]))
        return fail_msg(field, ": seccomp profile ", path, ": archMap: unknown architecture \"", sc.architectures[i], "\"");
  }

  oci::J rules = root["syscalls"];
  std::vector<oci::SeccompSyscall> kept;
  for (size_t i = 0; i < rules.size() && i < sc.syscalls.size(); i++) {
    oci::J r = rules.at(i);
    bool applies = true;
    for (const char* which : {"includes", "excludes"}) {
      oci::J w = r[which];
      for (const auto& k : w.keys()) {
        if (k == "caps") {
          auto names = oci::get_strings(w["caps"]);
          if (!names) return fail_msg(field, ": seccomp profile ", path, ": ", names.error().what());
          bool any = false, all = true;
          for (auto& n : *names) {
            auto c = oci::capability_from_name(n);
            if (!c) return fail_msg(field, ": seccomp profile ", path, ": ", w["caps"].path, ": unknown capability \"", n, "\"");
            bool present = has(caps, *c);
            any = any || present;
            all = all && present;
          }
          if (std::string_view(which) == "includes" ? !all : any) applies = false;
        } else if (k == "arches") {
          // Rules for other architectures than this one never apply here.
          auto arches = oci::get_strings(w["arches"]);
          if (!arches) return fail_msg(field, ": seccomp profile ", path, ": ", arches.error().what());
#if defined(__x86_64__)
          const char* mine[] = {"amd64", "x86_64", "x32", "386"};
#elif defined(__aarch64__)
          const char* mine[] = {"arm64", "aarch64", "arm"};
#else
          const char* mine[] = {""};
#endif
          bool match = false;
          for (auto& a : *arches)
            for (auto* m : mine) match = match || a == m;
          if (std::string_view(which) == "includes" ? !match : match) applies = false;
        } else if (k == "minKernel") {
          // Only docker's default profile uses this; a kernel new enough
          // for husk is new enough for those rules.
        } else {
          return fail_msg(field, ": seccomp profile ", path, ": ", w.path, ".", k, ": not understood by husk");
        }
      }
    }
    if (applies) kept.push_back(sc.syscalls[i]);
  }
  sc.syscalls = std::move(kept);
  return sc;
}

}  // namespace husk::driver::docker
