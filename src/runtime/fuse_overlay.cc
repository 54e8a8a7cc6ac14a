#include "runtime/fuse_overlay.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/program.h"
#include "common/text.h"
#include "net/command.h"
#include "runtime/sync.h"

namespace husk::runtime {

Result<OverlayMount> parse_overlay_mount(std::string_view value) {
  if (value.empty() || value == "auto") return OverlayMount::kAuto;
  if (value == "native") return OverlayMount::kNative;
  if (value == "fuse-overlayfs") return OverlayMount::kFuse;
  return fail_msg("annotations.", kRootfsOverlayMountAnnotation, ": \"", value,
                  "\" is not auto, native or fuse-overlayfs");
}

namespace {

constexpr int kServerFuseFd = 3;

}  // namespace

Result<> mount_fuse_root(const std::string& target, int fuse_fd) {
  std::string data = cat("fd=", fuse_fd, ",rootmode=40000,user_id=", geteuid(), ",group_id=", getegid(),
                         ",allow_other,default_permissions");
  if (::mount("fuse-overlayfs", target.c_str(), "fuse.fuse-overlayfs", MS_NODEV, data.c_str()) < 0)
    return fail_sys("mount a FUSE file system for fuse-overlayfs on ", target);
  return {};
}

// The server's side of the control socket: "E<step><errno>" on failure,
// the /dev/fuse fd with "F" when open; then it waits for one byte, "G".
Result<FuseLaunch> FuseLaunch::prepare(int userns_fd, const overlay::OverlaySpec& spec, const std::string& log) {
  std::string program = TRY(net::find_program("fuse-overlayfs", "fuse-overlayfs"));
  std::string opts = cat("lowerdir=", TRY_CTX(overlay::lowerdir_value(spec.lower), "fuse-overlayfs"));
  if (!spec.upper.empty()) opts += cat(",upperdir=", spec.upper, ",workdir=", spec.work);
  std::vector<std::string> argv = {program, "-f", "-o", opts, cat("/dev/fd/", kServerFuseFd)};
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  UniqueFd logfd = TRY(open_fd(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  bool join = userns_fd >= 0 && !TRY(is_own_namespace(userns_fd, "user"));
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return fail_sys("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork for fuse-overlayfs");
  if (pid == 0) {
    ours.reset();
    setsid();
    default_signals();
    const int ctl = theirs.get();
    auto die = [&](char step) {
      std::string m = cat("E", step, errno);
      (void)!write(ctl, m.data(), m.size());
      _exit(127);
    };
    if (join && setns(userns_fd, CLONE_NEWUSER) < 0) die('u');
    int fuse = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fuse < 0) die('o');
    if (!send_fd(ctl, fuse, "F")) _exit(127);
    char go = 0;
    if (::read(ctl, &go, 1) != 1 || go != 'G') _exit(0);  // husk gave up
    int null = ::open("/dev/null", O_RDWR);
    int moved = fcntl(fuse, F_DUPFD, 100), c = fcntl(ctl, F_DUPFD_CLOEXEC, 100);
    if (null < 0 || moved < 0 || c < 0) die('f');
    dup2(null, 0);
    dup2(null, 1);
    dup2(logfd.get(), 2);
    dup2(moved, kServerFuseFd);  // clears FD_CLOEXEC
    dup2(c, kServerFuseFd + 1);
    fcntl(kServerFuseFd + 1, F_SETFD, FD_CLOEXEC);
    syscall(SYS_close_range, kServerFuseFd + 2U, ~0U, 0U);  // nothing of husk's: no lock, no pipe of our caller
    execv(av[0], av.data());
    std::string m = cat("Ex", errno);
    (void)!write(kServerFuseFd + 1, m.data(), m.size());
    _exit(127);
  }
  theirs.reset();
  FuseLaunch l;
  l.server_.pid = pid;
  l.control_ = std::move(ours);
  std::string said;
  auto fd = recv_fd(l.control_.get(), &said);
  if (!fd || said != "F") {
    int err = said.size() > 2 && said[0] == 'E' ? atoi(said.c_str() + 2) : EPROTO;
    const char* step = said.size() > 1 && said[1] == 'u' ? "join the container's user namespace"
                       : said.size() > 1 && said[1] == 'o'
                           ? "open /dev/fuse (the fuse module, and a /dev/fuse this user may open: Debian makes it 0666)"
                           : "start";
    return fail_errno(err, "fuse-overlayfs (", program, "): ", step);
  }
  l.fuse_ = std::move(*fd);
  l.server_.start = process_start_time(pid);
  return l;
}

Result<FuseServer> FuseLaunch::go() {
  fuse_.reset();
  if (::write(control_.get(), "G", 1) != 1) return fail_sys("start fuse-overlayfs");
  // EOF: it exec'd (the socket is close-on-exec there); else why not.
  std::string said = read_all(control_.get()).value_or("");
  control_.reset();
  if (!said.empty()) {
    FuseServer s = std::exchange(server_, FuseServer{});
    waitpid(s.pid, nullptr, 0);
    return fail_errno(said.size() > 2 ? atoi(said.c_str() + 2) : EPROTO, "exec fuse-overlayfs");
  }
  return std::exchange(server_, FuseServer{});
}

FuseLaunch::~FuseLaunch() {
  if (server_.pid <= 0) return;
  ::kill(server_.pid, SIGKILL);
  waitpid(server_.pid, nullptr, 0);
}

std::string fuse_overlayfs_log(const std::string& log) {
  std::string why = read_file(log).value_or("");
  std::string out;
  for (std::string_view line : lines_of(why)) {
    if (line.empty() || line.starts_with("unknown argument ignored")) continue;  // its noise about lazytime
    out += cat(out.empty() ? "" : "; ", line);
  }
  return out;
}

void stop_fuse_overlayfs(const FuseServer& s) {
  if (s.pid <= 0) return;
  if (!signal_and_await_exit(s.pid, s.start, SIGTERM, 1000)) (void)signal_and_await_exit(s.pid, s.start, SIGKILL, 1000);
  waitpid(s.pid, nullptr, WNOHANG);  // ours when husk run started it
}

}  // namespace husk::runtime
