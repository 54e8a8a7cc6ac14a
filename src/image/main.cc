// husk-image: the image store's command line. A table of subcommands, each
// a function over its own arguments; `pull` fetches an image from a
// registry into the store.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "image/fetch.h"
#include "image/pull.h"
#include "image/store_commands.h"
#include "image/progress_bar.h"

namespace husk::image {
namespace {

struct Command {
  const char* name;
  const char* usage;
  int (*run)(const std::vector<std::string>& args);
};

int usage_error(const char* cmd_usage, const std::string& msg) {
  fprintf(stderr, "husk-image: %s\nusage: husk-image %s\n", msg.c_str(), cmd_usage);
  return 2;
}

std::string default_root() { return Store::default_root(); }

// A Go duration (common/duration.h: "90s", "1m30s", "500ms", "2h") or
// plain seconds ("90"); not negative, at most 10^12 ms (a deadline
// computed from it stays in range).
Result<std::chrono::milliseconds> parse_duration(std::string_view s, std::string_view what) {
  std::string text(s);
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) text += "s";  // bare seconds
  auto d = TRY(parse_go_duration(text, what));
  if (d.count() < 0) return fail_msg(what, " \"", s, "\": a duration cannot be negative");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d);
  if (ms.count() > 1'000'000'000'000) return fail_msg(what, " \"", s, "\": want a duration such as 90s, 5m or 1h30m");
  return ms;
}

// A failed first pull into a store it created leaves no empty store behind;
// a partial download (kept for the next try to resume) keeps it.
void remove_empty_store(const std::string& root) {
  std::string locks = root + "/locks";
  if (DIR* d = opendir(locks.c_str())) {
    while (dirent* e = readdir(d))
      if (std::string_view(e->d_name).ends_with(".lock")) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
  }
  unlink((root + "/idmap").c_str());
  for (const char* sub : {"/locks", "/tmp", "/blobs/sha256", "/blobs", "/layers", "/images", "/leases", ""})
    if (rmdir((root + sub).c_str()) < 0) return;
}

constexpr const char* kPullUsage =
    "pull [--root DIR] [--tls-verify=false] [--cert-dir DIR] [--authfile FILE] [--creds USER:PASSWORD]\n"
    "       [--platform OS/ARCH[/VARIANT]] [--timeout DUR] [--progress-timeout DUR | --activity-timeout DUR]\n"
    "       [--progress bar|lines|json|summary] [--quiet] [--policy always|missing] [--auth-soft-fail]\n"
    "       [--creds-stdin [--creds-source TEXT]] [--activity-timeout-name TEXT] REFERENCE";

int cmd_pull(const std::vector<std::string>& args) {
  std::string root = default_root(), ref_text;
  FetchOptions o;
  o.auth = AuthSources::from_environment();
  bool quiet = false;
  std::optional<PullProgressBar::Mode> mode;
  std::string stall_flag;  // --progress-timeout or --activity-timeout, whichever was given
  bool missing_only = false, auth_soft_fail = false, creds_stdin = false;
  std::string creds_source;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], val;
    bool has_val = false;
    if (size_t eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_val = true;
    }
    auto value = [&]() -> std::optional<std::string> {
      if (has_val) return val;
      if (i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    if (a == "--tls-verify") {
      std::string v = has_val ? val : "true";
      if (v != "true" && v != "false")
        return usage_error(kPullUsage, "--tls-verify wants true or false, not \"" + v + "\"");
      o.tls_verify = v == "true";
      continue;
    }
    if (a == "--quiet" || a == "-q") {
      quiet = true;
      continue;
    }
    if (a == "--auth-soft-fail" || a == "--creds-stdin") {
      (a == "--auth-soft-fail" ? auth_soft_fail : creds_stdin) = true;
      continue;
    }
    if (a == "--root" || a == "--authfile" || a == "--creds" || a == "--platform" || a == "--timeout" ||
        a == "--progress-timeout" || a == "--activity-timeout" || a == "--cert-dir" || a == "--progress" ||
        a == "--policy" || a == "--creds-source" || a == "--activity-timeout-name") {
      auto v = value();
      if (!v) return usage_error(kPullUsage, a + " needs a value");
      if (a == "--root") root = *v;
      if (a == "--creds-source") creds_source = *v;
      if (a == "--activity-timeout-name") o.activity_timeout_name = *v;
      if (a == "--policy") {
        if (*v != "always" && *v != "missing")
          return usage_error(kPullUsage, "--policy wants always or missing, not \"" + *v + "\"");
        missing_only = *v == "missing";
      }
      if (a == "--authfile") o.auth.authfile = *v;
      if (a == "--cert-dir") o.cert_dir = *v;
      if (a == "--creds") {
        auto c = parse_creds(*v);
        if (!c) return usage_error(kPullUsage, c.error().str());
        o.auth.explicit_creds = *c;
      }
      if (a == "--platform") {
        auto p = oci::parse_platform(*v, "--platform");
        if (!p) return usage_error(kPullUsage, p.error().str());
        o.platform = *p;
      }
      if (a == "--progress") {
        if (*v == "bar") mode = PullProgressBar::Mode::kBar;
        else if (*v == "lines") mode = PullProgressBar::Mode::kLines;
        else if (*v == "json") mode = PullProgressBar::Mode::kJson;
        else if (*v == "summary") mode = PullProgressBar::Mode::kSummary;
        else return usage_error(kPullUsage, "--progress wants bar, lines, json or summary, not \"" + *v + "\"");
      }
      if (a == "--timeout" || a == "--progress-timeout" || a == "--activity-timeout") {
        auto d = parse_duration(*v, a);
        if (!d) return usage_error(kPullUsage, d.error().str());
        if (a == "--timeout") {
          o.timeout = *d;
        } else {
          if (!stall_flag.empty() && stall_flag != a)
            return usage_error(kPullUsage, stall_flag + " and " + a + " exclude each other (retry a stalled transfer, or fail)");
          stall_flag = a;
          o.activity_timeout = *d;
          // --activity-timeout: a stall fails the pull, as the docker driver's pull_activity_timeout does.
          o.retry_stalled = a == "--progress-timeout";
        }
      }
      continue;
    }
    if (a.starts_with("-")) return usage_error(kPullUsage, "unknown option " + a);
    if (!ref_text.empty())
      return usage_error(kPullUsage, "one image reference only (got \"" + ref_text + "\" and \"" + a + "\")");
    ref_text = a;
  }
  if (ref_text.empty()) return usage_error(kPullUsage, "no image reference");
  if (creds_stdin) {
    // Credentials a caller does not put on a command line others can read
    // (the Nomad driver's task auth): USERNAME:PASSWORD on stdin.
    std::string text;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, stdin)) > 0;) text.append(buf, n);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto c = parse_creds(text);
    if (!c) return usage_error(kPullUsage, "--creds-stdin: " + c.error().str());
    if (!creds_source.empty()) c->source = creds_source;
    o.auth.explicit_creds = *c;
  }
  if (root.empty()) return usage_error(kPullUsage, "no --root and no HOME to put the store under");

  auto ref = parse_reference(ref_text);
  if (!ref) {
    fprintf(stderr, "husk-image: %s\n", ref.error().str().c_str());
    return 1;
  }
  if (root[0] != '/') {
    // Relative to where we run, as podman takes it.
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
      perror("husk-image: getcwd");
      return 1;
    }
    root = std::string(cwd) + "/" + root;
  }
  struct stat st;
  bool fresh_store = stat(root.c_str(), &st) < 0 && errno == ENOENT;
  auto store = Store::open(root);
  if (!store) {
    fprintf(stderr, "husk-image: store %s: %s\n", root.c_str(), store.error().str().c_str());
    return 1;
  }
  PullProgressBar bar(stderr, mode.value_or(isatty(2) ? PullProgressBar::Mode::kBar : PullProgressBar::Mode::kLines),
                      ref->str());
  if (!quiet) o.progress = [&](const PullEvent& e) { bar.on_event(e); };
  // `pull` asks the registry (podman pull's "always") unless --policy
  // missing finds the image in the store; blobs the store has are not
  // fetched again.
  PullRequest req;
  req.reference = ref_text;
  req.platform = o.platform.value_or(oci::host_platform());
  req.fetch = o;
  req.force = !missing_only;
  req.auth_soft_fail = auth_soft_fail;
  auto img = pull_image(*store, req);
  bar.finish();
  if (!img) {
    fprintf(stderr, "husk-image: %s\n", img.error().str().c_str());
    if (fresh_store) remove_empty_store(root);
    return 1;
  }
  for (const auto& w : img->stats.warnings) fprintf(stderr, "husk-image: warning: %s\n", w.c_str());
  if (mode == PullProgressBar::Mode::kSummary)
    // What the caller's "pulled ..." event says: whether the registry was
    // asked, and the layers unpacked and shared.
    fprintf(stderr, "pulled: %s %u %u %s %s\n", img->fetched ? "fetched" : "present", img->stats.layers_unpacked,
            img->stats.layers_reused, img->image.id.c_str(), img->name.c_str());
  printf("%s\n", img->image.manifest.str().c_str());
  return 0;
}

const Command kCommands[] = {
    {"pull", kPullUsage, cmd_pull},
    {"list", "list [--root DIR] [--quiet]", cmd_list},
    {"inspect", "inspect [--root DIR] NAME|ID", cmd_inspect},
    {"remove", "remove [--root DIR] NAME|ID...", cmd_remove},
    {"rm", "rm [--root DIR] NAME|ID...   (remove)", cmd_remove},
    {"prune", "prune [--root DIR] [--unused-for DUR]   (images unused that long, no task's; then unreferenced layers and blobs)", cmd_prune},
    {"import", "import [--root DIR] [--platform OS/ARCH[/VARIANT]] oci:DIR[:REF]|oci-archive:FILE[:REF]|docker-archive:FILE[:TAG] [NAME]", cmd_import},
    {"remove-dir", "remove-dir DIR...   (rm -rf in the store's user namespace: a rootless task's directory)", cmd_remove_dir},
};

int usage(FILE* out) {
  fprintf(out, "usage: husk-image COMMAND [ARGS]\ncommands:\n");
  for (const Command& c : kCommands) fprintf(out, "  %s\n", c.usage);
  return out == stdout ? 0 : 2;
}

}  // namespace
}  // namespace husk::image

int main(int argc, char** argv) {
  using namespace husk::image;
  // A peer that closes a socket or a credential helper that exits early
  // must give an error, not kill us.
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) return usage(stderr);
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") return usage(stdout);
  if (name == "--version") {
    printf("husk-image %s\n", HUSK_VERSION);
    return 0;
  }
  for (const Command& c : kCommands)
    if (name == c.name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  fprintf(stderr, "husk-image: unknown command \"%.*s\"\n", static_cast<int>(name.size()), name.data());
  return usage(stderr);
}
