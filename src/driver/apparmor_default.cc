#include "driver/apparmor_default.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "common/fd.h"
#include "common/program.h"
#include "common/text.h"
#include "image/digest.h"
#include "net/command.h"
#include "runtime/apparmor.h"

namespace husk::driver::apparmor {

// apparmor_default_text.cc, generated from contrib/apparmor/husk-default.
extern const unsigned char kDefaultProfileText[];
extern const size_t kDefaultProfileText_size;

std::string_view default_profile_text() {
  return {reinterpret_cast<const char*>(kDefaultProfileText), kDefaultProfileText_size};
}

namespace {


bool loaded(const Host& h) {
  auto list = read_file(h.securityfs + "/profiles");
  if (!list) return false;
  for (std::string_view line : lines_of(*list))
    if (line.substr(0, line.rfind(" (")) == kDefaultProfile) return true;
  return false;
}

// The kernel's hash of the loaded husk-default (policy/profiles/NAME.N/sha1),
// "" where the kernel keeps none.
std::string kernel_hash(const Host& h) {
  std::string dir = h.securityfs + "/policy/profiles";
  DIR* d = opendir(dir.c_str());
  if (!d) return {};
  std::string found;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (!n.starts_with(std::string(kDefaultProfile) + ".")) continue;
    auto name = read_file(dir + "/" + n + "/name");
    if (!name || rtrim(*name) != kDefaultProfile) continue;
    if (auto sum = read_file(dir + "/" + n + "/sha1")) found = rtrim(*sum);
    break;
  }
  closedir(d);
  return found;
}

std::string stamp_of(const std::string& text_digest, const std::string& kernel) {
  return cat("text ", text_digest, "\nkernel ", kernel, "\n");
}

Result<std::string> parser_path(const Host& h) {
  if (!h.parser.empty()) return h.parser;
  if (const char* env = getenv("HUSK_APPARMOR_PARSER"); env && *env) return std::string(env);
  return net::find_program("apparmor_parser", "apparmor");
}

}  // namespace

Result<> ensure_default_profile(const Host& h) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::string_view text = default_profile_text();
  std::string digest = image::sha256_of(text).hex;
  auto stamp = read_file(h.stamp);
  if (loaded(h) && stamp && *stamp == stamp_of(digest, kernel_hash(h))) return {};

  std::string parser = TRY(parser_path(h));
  if (access(parser.c_str(), X_OK) != 0) return fail_sys("apparmor_parser ", parser);
  // -K: no cache, read or written (/var may be read-only; the text is small).
  Captured c = TRY(run_captured({parser, "--replace", "--skip-cache", "--quiet"}, std::string(text), 120000));
  if (c.timed_out) return fail_msg(parser, " did not finish within 120 s");
  if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
    std::string why = rtrim(c.err);
    for (auto& ch : why)
      if (ch == '\n') ch = ' ';
    return fail_msg(parser, " --replace failed (", describe_wait_status(c.status), ")", why.empty() ? "" : ": ", why);
  }
  if (!loaded(h)) return fail_msg(parser, " exited 0 but ", h.securityfs, "/profiles does not list ", kDefaultProfile);
  // Without a stamp the next task loads it again: slower, still right.
  size_t slash = h.stamp.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdir(h.stamp.substr(0, slash).c_str(), 0700);
  (void)write_file_atomic(h.stamp, stamp_of(digest, kernel_hash(h)), 0600);
  return {};
}

Result<std::optional<std::string>> task_profile(const HostPolicy& host, const std::string& named, bool privileged,
                                                const std::string& field, const std::string& opt_out) {
  if (privileged || named == "unconfined") return std::optional<std::string>{};
  if (!named.empty()) {
    TRYV(runtime::check_apparmor_profile(named, field));
    return std::optional<std::string>{named};
  }
  // As dockerd: nothing where the host runs no AppArmor.
  if (!host.enabled) return std::optional<std::string>{};
  if (auto r = host.ensure ? host.ensure() : Result<>{}; !r)
    return fail_msg(field, ": AppArmor is enabled on this host and the task names no profile, so it runs under ",
                    "husk's default profile \"", kDefaultProfile, "\", which could not be loaded: ", r.error().str(),
                    " (install apparmor_parser, or load it yourself: nomad-driver-husk --apparmor-profile | "
                    "apparmor_parser -r; or run the task unconfined with ",
                    opt_out, ")");
  return std::optional<std::string>{kDefaultProfile};
}

HostPolicy host_policy() {
  HostPolicy p;
  p.enabled = geteuid() == 0 && runtime::apparmor_enabled();
  p.ensure = [] { return ensure_default_profile(Host{}); };
  return p;
}

}  // namespace husk::driver::apparmor
