#include "cli/commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <map>

#include "cli/args.h"
#include "cli/events.h"
#include "common/fd.h"
#include "oci/config.h"
#include "runtime/log.h"
#include "runtime/mount_api.h"
#include "runtime/userns.h"

namespace husk::cli {
namespace {

using runtime::GlobalOptions;

int report(const Error& e) {
  log::error(e.str());
  return 1;
}

template <typename T>
int done(const Result<T>& r) {
  if (!r) return report(r.error());
  return 0;
}

Result<Parsed> parse_cmd(const std::vector<std::string>& args, size_t at, std::vector<OptSpec> specs, size_t min_pos,
                         size_t max_pos, const char* usage, bool stop_at_positional = false) {
  const std::string& cmd = args[at];
  specs.push_back({"help", 'h', false});
  Parsed p = TRY(parse(args, at + 1, specs, cmd, stop_at_positional));
  if (p.has("help")) {
    printf("usage: husk %s %s\n", cmd.c_str(), usage);
    exit(0);
  }
  if (p.positional.size() < min_pos || p.positional.size() > max_pos)
    return fail_msg(cmd, ": wrong number of arguments; usage: husk ", cmd, " ", usage);
  return p;
}

Result<int> parse_int(const std::string& flag, const std::string& v) {
  char* end;
  long n = strtol(v.c_str(), &end, 10);
  if (v.empty() || *end) return fail_msg("--", flag, ": not a number: \"", v, "\"");
  return static_cast<int>(n);
}

Result<runtime::CreateOptions> create_options(const Parsed& p) {
  runtime::CreateOptions o;
  o.id = p.positional.at(0);
  o.bundle = p.get("bundle", ".");
  o.config = p.get("config");
  o.console_socket = p.get("console-socket");
  o.pid_file = p.get("pid-file");
  o.preserve_fds = TRY(parse_int("preserve-fds", p.get("preserve-fds", "0")));
  o.no_pivot = p.has("no-pivot");
  o.no_new_keyring = p.has("no-new-keyring");
  o.detach = p.has("detach");
  o.keep = p.has("keep");
  if (p.values.count("network")) o.network.network = p.get("network");
  o.network.publish = p.all("publish");
  o.network.dns = p.all("dns");
  o.network.add_hosts = p.all("add-host");
  if (p.values.count("mac-address")) o.network.mac = p.get("mac-address");
  o.network.aliases = p.all("network-alias");
  if (p.values.count("ip")) o.network.ip = p.get("ip");
  if (p.values.count("ip6")) o.network.ip6 = p.get("ip6");
  if (p.values.count("log-driver")) o.log.name = p.get("log-driver");
  o.log.opts = p.all("log-opt");
  if (!o.log.opts.empty() && o.log.name.empty()) return fail_msg("--log-opt needs a --log-driver");
  return o;
}

const std::vector<OptSpec> kCreateOpts = {
    {"bundle", 'b', true},     {"config", 'f', true},   {"console-socket", 0, true}, {"pid-file", 0, true},
    {"preserve-fds", 0, true}, {"no-pivot", 0, false},  {"no-new-keyring", 0, false}, {"no-subreaper", 0, false},
    // husk's own: the container's network (written into its annotations)
    {"network", 0, true},      {"publish", 'p', true, true}, {"dns", 0, true, true}, {"add-host", 0, true, true},
    {"mac-address", 0, true}, {"ip", 0, true}, {"ip6", 0, true}, {"network-alias", 0, true, true},
};

int cmd_create(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, kCreateOpts, 1, 1, "[options] CONTAINER-ID");
  if (!p) return report(p.error());
  auto o = create_options(*p);
  if (!o) return report(o.error());
  return done(runtime::create(g, *o));
}

int cmd_run(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto specs = kCreateOpts;
  specs.push_back({"detach", 'd', false});
  specs.push_back({"keep", 0, false});
  specs.push_back({"log-driver", 0, true});
  specs.push_back({"log-opt", 0, true, true});
  auto p = parse_cmd(args, at, specs, 1, 1, "[options] CONTAINER-ID");
  if (!p) return report(p.error());
  auto o = create_options(*p);
  if (!o) return report(o.error());
  auto r = runtime::run(g, *o);
  if (!r) return report(r.error());
  return *r;
}

int cmd_start(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {}, 1, 1, "CONTAINER-ID");
  if (!p) return report(p.error());
  return done(runtime::start(g, p->positional[0]));
}

int cmd_kill(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {{"all", 'a', false}}, 1, 2, "[--all] CONTAINER-ID [SIGNAL]");
  if (!p) return report(p.error());
  auto sig = runtime::parse_signal(p->positional.size() > 1 ? p->positional[1] : "SIGTERM");
  if (!sig) return report(sig.error());
  return done(runtime::kill(g, p->positional[0], *sig, p->has("all")));
}

int cmd_delete(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {{"force", 'f', false}}, 1, 1, "[--force] CONTAINER-ID");
  if (!p) return report(p.error());
  return done(runtime::remove(g, p->positional[0], p->has("force")));
}

std::string rfc3339(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%09lldZ", static_cast<long long>(ns % 1000000000));
  return buf;
}

int cmd_state(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {}, 1, 1, "CONTAINER-ID");
  if (!p) return report(p.error());
  auto info = runtime::state(g, p->positional[0]);
  if (!info) return report(info.error());
  printf("%s\n", oci::emit_state(info->state).c_str());
  return 0;
}

int cmd_list(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {{"quiet", 'q', false}, {"format", 'f', true}}, 0, 0, "[-q] [--format table|json]");
  if (!p) return report(p.error());
  std::string fmt = p->get("format", "table");
  if (fmt != "table" && fmt != "json") return report(Error::msg("list: --format must be table or json, got \"" + fmt + "\""));
  auto all = runtime::list(g);
  if (!all) return report(all.error());
  if (p->has("quiet")) {
    for (const auto& c : *all) printf("%s\n", c.state.id.c_str());
    return 0;
  }
  if (fmt == "json") {
    std::string out = "[";
    for (size_t i = 0; i < all->size(); ++i) {
      const auto& c = (*all)[i];
      out += cat(i ? "," : "", "{\"ociVersion\":\"", log::json_escape(c.state.oci_version), "\",\"id\":\"",
                 log::json_escape(c.state.id), "\",\"pid\":", c.state.pid, ",\"status\":\"",
                 oci::status_name(c.state.status), "\",\"bundle\":\"", log::json_escape(c.state.bundle),
                 "\",\"rootfs\":\"", log::json_escape(c.rootfs), "\",\"created\":\"", rfc3339(c.created_ns),
                 "\",\"owner\":\"", c.owner, "\"}");
    }
    printf("%s]\n", out.c_str());
    return 0;
  }
  printf("%-20s %-8s %-10s %-40s %-31s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
  for (const auto& c : *all)
    printf("%-20s %-8d %-10s %-40s %-31s %u\n", c.state.id.c_str(), c.state.pid, oci::status_name(c.state.status),
           c.state.bundle.c_str(), rfc3339(c.created_ns).c_str(), c.owner);
  return 0;
}

int cmd_ps(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {{"format", 'f', true}}, 1, 64, "[--format table|json] CONTAINER-ID [ps options]");
  if (!p) return report(p.error());
  auto pids = runtime::pids(g, p->positional[0]);
  if (!pids) return report(pids.error());
  std::string fmt = p->get("format", "table");
  if (fmt == "json") {
    std::string out = "[";
    for (size_t i = 0; i < pids->size(); ++i) out += cat(i ? "," : "", (*pids)[i]);
    printf("%s]\n", out.c_str());
    return 0;
  }
  if (fmt != "table") return report(Error::msg("ps: --format must be table or json, got \"" + fmt + "\""));
  // Like runc: run ps(1) with the given options (default -ef) and keep the
  // header and the container's lines.
  std::vector<std::string> ps_args = {"ps"};
  if (p->positional.size() > 1) ps_args.insert(ps_args.end(), p->positional.begin() + 1, p->positional.end());
  else ps_args.push_back("-ef");
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return report(Error::sys("pipe"));
  pid_t child = fork();
  if (child == 0) {
    dup2(pipefd[1], 1);
    std::vector<char*> av;
    for (auto& a : ps_args) av.push_back(a.data());
    av.push_back(nullptr);
    execvp("ps", av.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string out = read_all(pipefd[0]).value_or("");
  close(pipefd[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return report(Error::msg("ps: running ps(1) failed"));
  size_t nl = out.find('\n');
  std::string header = out.substr(0, nl);
  // Find the PID column from the header.
  int pid_col = -1, col = 0;
  for (size_t i = 0; i < header.size();) {
    while (i < header.size() && header[i] == ' ') ++i;
    size_t j = header.find(' ', i);
    if (header.substr(i, j - i) == "PID") pid_col = col;
    ++col;
    i = j == std::string::npos ? header.size() : j;
  }
  if (pid_col < 0) return report(Error::msg("ps: the output of ps(1) has no PID column"));
  printf("%s\n", header.c_str());
  size_t pos = nl + 1;
  while (pos < out.size()) {
    size_t e = out.find('\n', pos);
    std::string line = out.substr(pos, e - pos);
    pos = e == std::string::npos ? out.size() : e + 1;
    int c = 0;
    size_t i = 0;
    std::string field;
    while (i < line.size() && c <= pid_col) {
      while (i < line.size() && line[i] == ' ') ++i;
      size_t j = line.find(' ', i);
      field = line.substr(i, j - i);
      i = j == std::string::npos ? line.size() : j;
      ++c;
    }
    pid_t pid = static_cast<pid_t>(atoi(field.c_str()));
    for (pid_t q : *pids)
      if (q == pid) printf("%s\n", line.c_str());
  }
  return 0;
}

int cmd_pause(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {}, 1, 1, "CONTAINER-ID");
  if (!p) return report(p.error());
  return done(runtime::pause(g, p->positional[0]));
}

int cmd_resume(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {}, 1, 1, "CONTAINER-ID");
  if (!p) return report(p.error());
  return done(runtime::resume(g, p->positional[0]));
}

int cmd_spec(const GlobalOptions&, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {{"bundle", 'b', true}, {"rootless", 0, false}}, 0, 0, "[--rootless] [-b BUNDLE]");
  if (!p) return report(p.error());
  std::string path = p->get("bundle", ".") + "/config.json";
  if (access(path.c_str(), F_OK) == 0) return report(Error::msg("spec: " + path + " exists: remove it first"));
  oci::Spec spec = oci::default_spec(p->has("rootless"), geteuid(), getegid());
  if (p->has("rootless") && geteuid() != 0) {
    // The caller's own ranges, when it has some and the helpers to use them.
    runtime::RootlessMaps maps = runtime::rootless_id_maps();
    spec.linux->uid_mappings = maps.uids;
    spec.linux->gid_mappings = maps.gids;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return report(Error::sys("spec: create " + path));
  UniqueFd owned(fd);
  return done(write_all(fd, oci::emit_config(spec) + "\n"));
}

int cmd_features(const GlobalOptions&, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {}, 0, 0, "");
  if (!p) return report(p.error());
  printf("%s\n", oci::features_json().c_str());
  return 0;
}

// husk check-idmap PATH: whether PATH's filesystem takes idmapped mounts
// (the nspawn flavor's private_users_ownership = "auto" asks, since the
// driver itself never forks). Prints yes or no; exit 0, 1, or 2 on error.
int cmd_check_idmap(const GlobalOptions&, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {}, 1, 1, "PATH");
  if (!p) return report(p.error());
  auto ok = runtime::supports_idmap(p->positional[0]);
  if (!ok) {
    report(ok.error());
    return 2;
  }
  printf("%s\n", *ok ? "yes" : "no");
  return *ok ? 0 : 1;
}

// husk mount-idmapped SRC DST BASE COUNT [FROM]: attach at DST an idmapped
// clone of SRC whose on-disk ids FROM..FROM+COUNT-1 (FROM defaults to 0) are
// seen as BASE..BASE+COUNT-1 (the nspawn flavor's root or overlay lower
// layer for a private_users range).
// husk mount-idmapped --uid-map C:H:S[,...] --gid-map C:H:S[,...] SRC DST:
// on-disk id C+i is seen as H+i, uids and gids apart (the podman flavor's
// userns = "auto" layers, mapped as the task's user namespace).
int cmd_mount_idmapped(const GlobalOptions&, const std::vector<std::string>& args, size_t at) {
  auto p = parse_cmd(args, at, {{"uid-map", 0, true}, {"gid-map", 0, true}}, 2, 5,
                     "SRC DST BASE COUNT [FROM] | --uid-map C:H:S[,...] --gid-map C:H:S[,...] SRC DST");
  if (!p) return report(p.error());
  auto number = [](const std::string& s) -> std::optional<uint32_t> {
    char* end = nullptr;
    errno = 0;
    unsigned long v = strtoul(s.c_str(), &end, 10);
    if (s.empty() || *end || errno || v > 0xFFFFFFFFul || s[0] == '-') return std::nullopt;
    return static_cast<uint32_t>(v);
  };
  if (p->values.count("uid-map") || p->values.count("gid-map")) {
    if (!p->values.count("uid-map") || !p->values.count("gid-map") || p->positional.size() != 2)
      return report(Error::msg("mount-idmapped: --uid-map and --gid-map go together, with SRC and DST"));
    auto maps = [&](const std::string& opt) -> Result<std::vector<oci::IdMapping>> {
      std::vector<oci::IdMapping> out;
      std::string v = p->get(opt);
      size_t pos = 0;
      while (pos <= v.size()) {
        size_t comma = std::min(v.find(',', pos), v.size());
        std::string one = v.substr(pos, comma - pos);
        size_t a = one.find(':'), b = a == std::string::npos ? a : one.find(':', a + 1);
        auto c = number(one.substr(0, a)), h = b == std::string::npos ? std::nullopt : number(one.substr(a + 1, b - a - 1)),
             n = b == std::string::npos ? std::nullopt : number(one.substr(b + 1));
        if (!c || !h || !n || *n == 0 || uint64_t{*c} + *n > 0x100000000ull || uint64_t{*h} + *n > 0x100000000ull)
          return fail_msg("mount-idmapped: --", opt, " \"", one, "\" is not CONTAINER:HOST:SIZE");
        out.push_back(oci::IdMapping{*c, *h, *n});
        pos = comma + 1;
      }
      return out;
    };
    auto uids = maps("uid-map");
    if (!uids) return report(uids.error());
    auto gids = maps("gid-map");
    if (!gids) return report(gids.error());
    return done(runtime::mount_idmapped(p->positional[0], p->positional[1], *uids, *gids));
  }
  if (p->positional.size() < 4) return report(Error::msg("mount-idmapped: SRC DST BASE COUNT [FROM]"));
  auto base = number(p->positional[2]), count = number(p->positional[3]);
  auto from = p->positional.size() > 4 ? number(p->positional[4]) : std::optional<uint32_t>(0);
  if (!base || !count || *count == 0)
    return report(Error::msg(cat("mount-idmapped: \"", p->positional[2], " ", p->positional[3],
                                 "\" is not a base and a count of ids")));
  if (!from || static_cast<uint64_t>(*from) + *count > 0x100000000ull ||
      static_cast<uint64_t>(*base) + *count > 0x100000000ull)
    return report(Error::msg(cat("mount-idmapped: FROM \"", p->positional.size() > 4 ? p->positional[4] : "",
                                 "\" with COUNT ", *count, " is not a range of ids")));
  return done(runtime::mount_idmapped(p->positional[0], p->positional[1], {oci::IdMapping{*from, *base, *count}}));
}

int cmd_exec(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  std::vector<OptSpec> specs = {
      {"tty", 't', false},      {"console-socket", 0, true}, {"cwd", 0, true},         {"env", 'e', true, true},
      {"user", 'u', true},      {"additional-gids", 'g', true, true}, {"cap", 'c', true, true},
      {"no-new-privs", 0, false}, {"detach", 'd', false},  {"pid-file", 0, true},    {"preserve-fds", 0, true},
      {"process", 'p', true},   {"process-label", 0, true}, {"apparmor", 0, true},   {"ignore-paused", 0, false},
      {"cgroup", 0, true},
  };
  auto p = parse_cmd(args, at, specs, 1, 1 << 20, "[options] CONTAINER-ID [COMMAND [ARGS...]]", true);
  if (!p) return report(p.error());
  runtime::ExecOptions o;
  o.id = p->positional[0];
  o.args.assign(p->positional.begin() + 1, p->positional.end());
  o.process_file = p->get("process");
  if (o.args.empty() && o.process_file.empty()) return report(Error::msg("exec: a command or --process is required"));
  o.tty = p->has("tty");
  o.console_socket = p->get("console-socket");
  o.cwd = p->get("cwd");
  o.env = p->all("env");
  if (p->values.count("user")) {
    std::string u = p->get("user");
    char* end;
    unsigned long uid = strtoul(u.c_str(), &end, 10);
    unsigned long gid = 0;
    if (*end == ':') gid = strtoul(end + 1, &end, 10);
    if (u.empty() || *end) return report(Error::msg("exec: --user must be UID[:GID], got \"" + u + "\""));
    o.user = std::make_pair(static_cast<uint32_t>(uid), static_cast<uint32_t>(gid));
  }
  for (const auto& gs : p->all("additional-gids")) o.additional_gids.push_back(static_cast<uint32_t>(strtoul(gs.c_str(), nullptr, 10)));
  o.caps = p->all("cap");
  o.no_new_privs = p->has("no-new-privs");
  o.detach = p->has("detach");
  o.pid_file = p->get("pid-file");
  auto n = parse_int("preserve-fds", p->get("preserve-fds", "0"));
  if (!n) return report(n.error());
  o.preserve_fds = *n;
  if (p->values.count("apparmor")) o.apparmor = p->get("apparmor");
  if (p->values.count("process-label"))
    log::warning("exec: SELinux labels are not supported by husk; --process-label ignored");
  auto r = runtime::exec(g, o);
  if (!r) return report(r.error());
  return *r;
}

// `husk image ...` is husk-image's: the image store needs libcurl,
// libarchive and libcrypto, which husk itself never loads. The binary next
// to husk's own (both are installed in bindir) goes first, then $PATH.
int cmd_image(const GlobalOptions&, const std::vector<std::string>& args, size_t at) {
  std::vector<std::string> argv = {"husk-image"};
  argv.insert(argv.end(), args.begin() + at + 1, args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    execv((dir + "/husk-image").c_str(), cargv.data());
  }
  execvp("husk-image", cargv.data());
  log::error(cat("image: cannot run husk-image (installed with husk, next to it or on PATH): ", strerror(errno)));
  return 127;
}

}  // namespace

int update_command(const runtime::GlobalOptions& g, const std::vector<std::string>& args, size_t at);

int dispatch(const GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  static const std::map<std::string, std::function<int(const GlobalOptions&, const std::vector<std::string>&, size_t)>>
      commands = {
          {"create", cmd_create}, {"start", cmd_start}, {"run", cmd_run},       {"exec", cmd_exec},
          {"kill", cmd_kill},     {"delete", cmd_delete}, {"state", cmd_state}, {"list", cmd_list},
          {"ps", cmd_ps},         {"pause", cmd_pause},  {"resume", cmd_resume}, {"spec", cmd_spec},
          {"features", cmd_features}, {"update", update_command},
          {"events", events_command}, {"image", cmd_image}, {"check-idmap", cmd_check_idmap},
          {"mount-idmapped", cmd_mount_idmapped},
      };
  auto it = commands.find(args[at]);
  if (it == commands.end()) {
    log::error("unknown command \"" + args[at] + "\"; see husk --help");
    return 2;
  }
  return it->second(g, args, at);
}

}  // namespace husk::cli
