#include "net/network_dns.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "common/fd.h"
#include "common/program.h"
#include "common/text.h"
#include "net/command.h"

namespace husk::net {
namespace {

std::string dns_dir(const std::string& network_dir) { return network_dir + "/dns"; }
std::string records_dir(const std::string& network_dir) { return dns_dir(network_dir) + "/records"; }

bool make_dir(const std::string& path) { return ::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST; }

// husk-dns: $HUSK_DNS, beside the husk binary (the build tree, or a
// bin/ with everything), in ../libexec/husk (an installed husk), in $PATH.
Result<std::string> husk_dns_binary() {
  if (const char* env = getenv("HUSK_DNS"); env && *env) return std::string(env);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& p : {dir + "/husk-dns", dir + "/../libexec/husk/husk-dns"})
      if (access(p.c_str(), X_OK) == 0) return p;
  }
  return find_program("husk-dns", "husk");
}

struct Running {
  pid_t pid = 0;
  uint64_t start = 0;
};

std::optional<Running> running_server(const std::string& network_dir, const AliveFn& alive) {
  auto text = read_file(dns_dir(network_dir) + "/server");
  if (!text) return std::nullopt;
  Running r;
  if (sscanf(text->c_str(), "%d %lu", &r.pid, &r.start) != 2 || r.pid <= 0) return std::nullopt;
  if (!alive(r.pid, r.start)) return std::nullopt;
  return r;
}

// fork, setsid, fork: the server is nobody's child (no zombie in husk run,
// no tie to the driver), and tells its pid or its error on the ready pipe.
Result<Running> start_server(const std::string& network_dir, const Subnet& subnet,
                             const std::optional<Subnet6>& subnet6) {
  std::string bin = TRY(husk_dns_binary());
  std::vector<std::string> argv = {
      bin, "--records", records_dir(network_dir), "--listen", subnet.gateway().str(), "--subnet", subnet.str()};
  if (subnet6) argv.insert(argv.end(), {"--listen", subnet6->gateway().str(), "--subnet", subnet6->str()});
  argv.insert(argv.end(), {"--ready-fd", "3"});
  std::vector<char*> av;
  for (auto& a : argv) av.push_back(a.data());
  av.push_back(nullptr);
  UniqueFd log = TRY(open_fd(dns_dir(network_dir) + "/log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return fail_sys("pipe for husk-dns");
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t child = fork();
  if (child < 0) return fail_sys("fork for husk-dns");
  if (child == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    default_signals();
    int null = ::open("/dev/null", O_RDWR);
    if (chdir("/") < 0) _exit(127);
    int w = fcntl(wr.get(), F_DUPFD, 10), l = fcntl(log.get(), F_DUPFD, 10);
    dup2(null, 0);
    dup2(l, 1);
    dup2(l, 2);
    dup2(w, 3);
    syscall(SYS_close_range, 4, ~0U, 0);
    execv(av[0], av.data());
    dprintf(3, "exec %s: %s\n", av[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  wr.reset();
  std::string said;
  char buf[512];
  for (;;) {
    struct pollfd pf = {rd.get(), POLLIN, 0};
    if (poll(&pf, 1, 5000) <= 0) return fail_errno(ETIMEDOUT, "husk-dns (", bin, ") did not say it was ready in 5 s");
    ssize_t n = read(rd.get(), buf, sizeof buf);
    if (n <= 0) break;
    said.append(buf, static_cast<size_t>(n));
    if (said.find('\n') != std::string::npos) break;
  }
  while (!said.empty() && said.back() == '\n') said.pop_back();
  Running r;
  if (!said.starts_with("ready ") || (r.pid = atoi(said.c_str() + 6)) <= 0)
    return fail_msg("start husk-dns (", bin, "): ", said.empty() ? "it exited without a word" : said);
  r.start = process_start_time(r.pid);
  return r;
}

void stop_server(const Running& r, const AliveFn& alive) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, r.pid, 0));
  if (pidfd < 0) return;
  UniqueFd owned(pidfd);
  if (!alive(r.pid, r.start)) return;  // the pidfd pins it: still our server
  syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0);
  struct pollfd p = {pidfd, POLLIN, 0};
  if (poll(&p, 1, 2000) > 0) return;
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  poll(&p, 1, 2000);
}

void remove_files_of(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return;
  while (struct dirent* e = readdir(d.get())) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ::unlink((dir + "/" + name).c_str());
  }
}

}  // namespace

bool network_has_dns(const std::string& network) { return network != "husk0"; }

std::string render_dns_record(const DnsMember& m) {
  std::string names;
  for (const auto& n : m.names) names += " " + n;
  if (names.empty()) return "";
  std::string out = m.address.str() + names + "\n";
  if (m.address6) out += m.address6->str() + names + "\n";
  if (m.pid > 0) out += cat("owner ", m.pid, " ", m.start, "\n");
  return out;
}

Result<> join_network_dns(const std::string& network_dir, const DnsMember& m, const Subnet& subnet,
                          const std::optional<Subnet6>& subnet6, const AliveFn& alive) {
  if (!make_dir(dns_dir(network_dir)) || !make_dir(records_dir(network_dir)))
    return fail_sys("make the DNS directory of ", network_dir);
  TRYV_CTX(write_file_atomic(records_dir(network_dir) + "/" + m.id + ".rec", render_dns_record(m), 0644),
           "record the container's names for the network's DNS");
  if (running_server(network_dir, alive)) return {};
  Running r = TRY(start_server(network_dir, subnet, subnet6));
  TRYV_CTX(write_file_atomic(dns_dir(network_dir) + "/server", cat(r.pid, " ", r.start, "\n"), 0600),
           "record the network's husk-dns");
  return {};
}

void leave_network_dns(const std::string& network_dir, const std::string& id) {
  ::unlink((records_dir(network_dir) + "/" + id + ".rec").c_str());
}

void stop_network_dns(const std::string& network_dir, const AliveFn& alive) {
  if (auto r = running_server(network_dir, alive)) stop_server(*r, alive);
  remove_files_of(records_dir(network_dir));
  ::rmdir(records_dir(network_dir).c_str());
  remove_files_of(dns_dir(network_dir));
  ::rmdir(dns_dir(network_dir).c_str());
}

}  // namespace husk::net
