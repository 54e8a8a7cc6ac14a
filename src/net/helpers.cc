#include "net/helpers.h"

#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/fd.h"
#include "common/program.h"
#include "common/text.h"
#include "net/command.h"

namespace husk::net {
namespace {

// Fds a helper inherits, at these numbers.
constexpr int kNetnsFd = 3, kUsernsFd = 4, kExitFd = 5, kReadyFd = 6;

// The user namespace owning netns_fd, when it is not ours (rootless
// containers): the helper must join it to configure the netns.
Result<UniqueFd> foreign_userns(int netns_fd) {
  int fd = ioctl(netns_fd, NS_GET_USERNS);
  if (fd < 0) return fail_sys("find the user namespace of the container's network namespace");
  UniqueFd owner(fd);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (TRY(is_own_namespace(fd, "user"))) return UniqueFd();
  return owner;
}

// fork + exec with the given fds at fixed numbers, stdout/stderr to log.
Result<pid_t> spawn(const std::vector<std::string>& argv, const std::vector<std::pair<int, int>>& fds,
                    const std::string& log) {
  UniqueFd log_fd = TRY(open_fd(log, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork for ", argv[0]);
  if (pid == 0) {
    setsid();
    default_signals();
    // Move every source fd above the targets first, then into place.
    std::vector<std::pair<int, int>> moved;
    for (const auto& [src, dst] : fds) moved.emplace_back(fcntl(src, F_DUPFD, 100), dst);
    int null = ::open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(log_fd.get(), 1);
    dup2(log_fd.get(), 2);
    for (const auto& [src, dst] : moved) dup2(src, dst);  // dup2 clears FD_CLOEXEC
    for (const auto& [src, dst] : moved) ::close(src);
    execv(av[0], av.data());
    _exit(127);
  }
  return pid;
}

std::string read_log(const std::string& log) {
  return one_line(read_file(log).value_or(""));
}

// The host's default IPv4 gateway, from /proc/net/route.
std::optional<IpAddress> default_gateway() {
  std::string text = read_file("/proc/net/route").value_or("");
  size_t pos = text.find('\n');
  while (pos != std::string::npos && pos + 1 < text.size()) {
    size_t nl = text.find('\n', pos + 1);
    std::string line = text.substr(pos + 1, nl == std::string::npos ? std::string::npos : nl - pos - 1);
    pos = nl;
    char iface[64];
    unsigned dest = 0, gw = 0, flags = 0;
    if (sscanf(line.c_str(), "%63s %x %x %x", iface, &dest, &gw, &flags) == 4 && dest == 0 && gw != 0) {
      IpAddress a;
      memcpy(a.bytes, &gw, 4);  // already network order in memory
      return a;
    }
  }
  return std::nullopt;
}

// The host's first non-loopback IPv4 address.
std::optional<IpAddress> host_address() {
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) < 0) return std::nullopt;
  std::optional<IpAddress> out;
  for (auto* i = list; i && !out; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    IpAddress a;
    memcpy(a.bytes, &reinterpret_cast<struct sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    if (!a.is_loopback()) out = a;
  }
  freeifaddrs(list);
  return out;
}

Result<> slirp_request(const std::string& socket_path, const std::string& json) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_sys("socket");
  UniqueFd owned(fd);
  struct sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof sa.sun_path) return fail_errno(ENAMETOOLONG, "slirp4netns API socket ", socket_path);
  memcpy(sa.sun_path, socket_path.c_str(), socket_path.size());
  if (::connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0)
    return fail_sys("connect to the slirp4netns API socket ", socket_path);
  TRYV(write_all(fd, json));
  shutdown(fd, SHUT_WR);
  std::string reply = TRY(read_all(fd));
  if (reply.find("\"error\"") != std::string::npos) return fail_msg("slirp4netns refused ", json, ": ", reply);
  return {};
}

// pasta outlives neither the container nor a husk killed halfway: a small
// process of ours (forked, no exec) waits on both pidfds and kills pasta
// when the init is gone. pasta itself would keep the netns alive.
Result<> watch_helper(pid_t init, pid_t helper) {
  int ipfd = static_cast<int>(syscall(SYS_pidfd_open, init, 0));
  if (ipfd < 0) return fail_sys("pidfd_open the container init");
  UniqueFd init_fd(ipfd);
  int hpfd = static_cast<int>(syscall(SYS_pidfd_open, helper, 0));
  if (hpfd < 0) return fail_sys("pidfd_open pasta");
  UniqueFd helper_fd(hpfd);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork pasta's watcher");
  if (pid > 0) return {};
  setsid();
  default_signals();
  int null = ::open("/dev/null", O_RDWR);
  dup2(null, 0);
  dup2(null, 1);
  dup2(null, 2);
  dup2(init_fd.get(), 3);
  dup2(helper_fd.get(), 4);
  syscall(SYS_close_range, 5U, ~0U, 0U);  // nothing of husk's: no lock, no pipe of our caller
  struct pollfd fds[2] = {{3, POLLIN, 0}, {4, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if (fds[0].revents) syscall(SYS_pidfd_send_signal, 4, SIGKILL, nullptr, 0);
  _exit(0);
}

// Both helpers open /dev/net/tun as the caller: say so before they fail
// with a message of their own.
Result<> check_tun(const char* helper) {
  if (access("/dev/net/tun", R_OK | W_OK) == 0) return {};
  return fail_sys(helper, " needs /dev/net/tun, which this user may not open (Debian makes it 0666)");
}

}  // namespace

std::vector<std::string> pasta_port_args(const std::vector<PortForward>& ports) {
  std::vector<std::string> args;
  bool tcp = false, udp = false;
  for (const auto& p : ports) {
    std::string spec = cat(p.host_ip ? p.host_ip->str() + "/" : std::string(), p.host_port, ":", p.container_port);
    args.push_back(p.protocol == Protocol::Udp ? "-u" : "-t");
    args.push_back(spec);
    (p.protocol == Protocol::Udp ? udp : tcp) = true;
  }
  // Nothing else is forwarded, either way.
  if (!tcp) args.insert(args.end(), {"-t", "none"});
  if (!udp) args.insert(args.end(), {"-u", "none"});
  args.insert(args.end(), {"-T", "none", "-U", "none"});
  return args;
}

std::string slirp_hostfwd_request(const PortForward& p) {
  return cat("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"", protocol_name(p.protocol),
             "\", \"host_addr\": \"", p.host_ip ? p.host_ip->str() : std::string("0.0.0.0"),
             "\", \"host_port\": ", p.host_port, ", \"guest_addr\": \"", kSlirpGuest,
             "\", \"guest_port\": ", p.container_port, "}}");
}

Result<Helper> start_pasta(const HelperRequest& req) {
  std::string pasta = TRY(find_program("pasta", "passt"));
  TRYV(check_tun("pasta"));
  UniqueFd userns = TRY(foreign_userns(req.netns_fd));
  std::string pid_file = req.state_dir + "/pasta.pid", log = req.state_dir + "/pasta.log";
  std::vector<std::string> argv = {pasta, "--config-net", "--quiet", "--netns", cat("/proc/self/fd/", kNetnsFd)};
  std::vector<std::pair<int, int>> fds = {{req.netns_fd, kNetnsFd}};
  if (userns) {
    argv.insert(argv.end(), {"--userns", cat("/proc/self/fd/", kUsernsFd)});
    fds.emplace_back(userns.get(), kUsernsFd);
  } else {
    // As root pasta would switch to "nobody", who may not enter the netns.
    argv.insert(argv.end(), {"--runas", "0"});
  }
  for (const auto& a : pasta_port_args(req.ports)) argv.push_back(a);
  argv.insert(argv.end(), {"--dns-forward", kPastaDns, "-P", pid_file});
  if (req.mtu) argv.insert(argv.end(), {"-m", std::to_string(*req.mtu)});
  pid_t child = TRY(spawn(argv, fds, log));
  // pasta forks to the background once the namespace is configured.
  int status = 0;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return fail_sys("wait for pasta");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail_msg("pasta failed to set up the container's network: ", read_log(log));
  std::string pid_text = TRY_CTX(read_file(pid_file), "read pasta's pid");
  Helper h;
  h.pid = static_cast<pid_t>(atoi(pid_text.c_str()));
  if (h.pid <= 0) return fail_msg("pasta wrote no pid to ", pid_file);
  if (auto w = watch_helper(req.init_pid, h.pid); !w) {
    ::kill(h.pid, SIGKILL);
    return fail(std::move(w.error()));
  }
  h.host_address = default_gateway();
  h.dns_forwarder = TRY(parse_ip(kPastaDns));
  return h;
}

Result<Helper> start_slirp4netns(const HelperRequest& req) {
  std::string slirp = TRY(find_program("slirp4netns", "slirp4netns"));
  TRYV(check_tun("slirp4netns"));
  UniqueFd userns = TRY(foreign_userns(req.netns_fd));
  int pfd = static_cast<int>(syscall(SYS_pidfd_open, req.init_pid, 0));
  if (pfd < 0) return fail_sys("pidfd_open the container init");
  UniqueFd init_pidfd(pfd);
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  std::string sock = req.state_dir + "/slirp4netns.sock", log = req.state_dir + "/slirp4netns.log";
  ::unlink(sock.c_str());
  std::vector<std::string> argv = {slirp,
                                   "--configure",
                                   cat("--mtu=", req.mtu.value_or(65520)),
                                   "--disable-host-loopback",
                                   cat("--exit-fd=", kExitFd),
                                   cat("--ready-fd=", kReadyFd),
                                   "--api-socket",
                                   sock,
                                   "--netns-type=path"};
  std::vector<std::pair<int, int>> fds = {
      {req.netns_fd, kNetnsFd}, {init_pidfd.get(), kExitFd}, {ready_w.get(), kReadyFd}};
  if (userns) {
    argv.push_back(cat("--userns-path=/proc/self/fd/", kUsernsFd));
    fds.emplace_back(userns.get(), kUsernsFd);
  }
  argv.insert(argv.end(), {cat("/proc/self/fd/", kNetnsFd), "tap0"});
  Helper h;
  h.pid = TRY(spawn(argv, fds, log));
  ready_w.reset();
  auto stop = [&] {
    ::kill(h.pid, SIGKILL);
    waitpid(h.pid, nullptr, 0);
  };
  char c = 0;
  struct pollfd p = {ready_r.get(), POLLIN, 0};
  int n;
  do n = poll(&p, 1, 10000);
  while (n < 0 && errno == EINTR);
  if (n <= 0 || ::read(ready_r.get(), &c, 1) != 1 || c != '1') {
    stop();
    return fail_msg("slirp4netns failed to set up the container's network: ", n == 0 ? "timed out" : read_log(log));
  }
  for (const auto& port : req.ports) {
    auto r = slirp_request(sock, slirp_hostfwd_request(port));
    if (!r) {
      stop();
      return fail(std::move(r.error()).with_context(cat("publish port ", port.str())));
    }
  }
  h.own_address = TRY(parse_ip(kSlirpGuest));
  h.host_address = host_address();
  h.dns_forwarder = TRY(parse_ip(kSlirpDns));
  return h;
}

}  // namespace husk::net
