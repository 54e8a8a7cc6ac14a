#include "runtime/log_forward.h"

#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "runtime/log.h"
#include "runtime/log_fluentd.h"
#include "runtime/log_gelf.h"
#include "runtime/log_pump.h"
#include "runtime/log_sink.h"
#include "runtime/log_syslog.h"

namespace husk::runtime {
namespace {

// ---- journald's native protocol ------------------------------------------------------------------

void journal_field(std::string& out, std::string_view key, std::string_view value) {
  if (value.find('\n') == std::string_view::npos) {
    out.append(key).append("=").append(value).append("\n");
    return;
  }
  // Binary-safe form: KEY \n <64-bit little-endian size> VALUE \n
  uint64_t n = htole64(value.size());
  out.append(key).append("\n").append(reinterpret_cast<const char*>(&n), sizeof n).append(value).append("\n");
}

Result<UniqueFd> open_destination(SyslogConfig& c) {
  auto fd = c.endpoint.connect();
  if (fd) return fd;
  if (c.journald)
    return fail_errno(fd.error().code(), "log driver journald: ", fd.error().what(), " (is systemd-journald running?)");
  if (!c.local_syslog) return fail_errno(fd.error().code(), "log driver syslog: ", fd.error().what());
  c.endpoint.socktype = SOCK_STREAM;  // a syslog daemon that listens on a stream socket
  if (auto stream = c.endpoint.connect(); stream) return stream;
  return fail_errno(fd.error().code(), "log driver syslog: no --log-opt address, and the local syslog: ", fd.error().what());
}

// ---- the forwarder process ---------------------------------------------------------------------

// journald and syslog.
class Sender : public LogSink {
 public:
  Sender(SyslogConfig c, UniqueFd fd) : c_(std::move(c)), fd_(std::move(fd)) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) host_ = host;
    if (host_.empty()) host_ = "-";
  }

  void line(LogStream s, std::string_view text, bool partial) override {
    std::string msg = c_.journald ? journal_entry(s, text, partial) : syslog_message(c_, host_, s, text);
    if (send_once(msg)) return;
    // The receiver restarted (journald, a syslog daemon): connect again, once.
    if (auto fd = c_.endpoint.connect(); fd) {
      fd_ = std::move(*fd);
      if (send_once(msg)) return;
    }
    if (!warned_) log::warning(cat("log driver: send to ", c_.endpoint.name, ": ", strerror(errno), "; lines are lost"));
    warned_ = true;
  }

 private:
  bool send_once(const std::string& msg) {
    if (!send_message(fd_.get(), c_.endpoint.socktype, msg)) return false;
    warned_ = false;
    return true;
  }

  std::string journal_entry(LogStream s, std::string_view text, bool partial) const {
    std::string out;
    journal_field(out, "MESSAGE", text);
    journal_field(out, "PRIORITY", s == LogStream::kOut ? "6" : "3");
    journal_field(out, "CONTAINER_ID", c_.id.substr(0, 12));
    journal_field(out, "CONTAINER_ID_FULL", c_.id);
    journal_field(out, "CONTAINER_NAME", c_.name);
    journal_field(out, "CONTAINER_TAG", c_.tag);
    journal_field(out, "SYSLOG_IDENTIFIER", c_.tag);
    if (partial) journal_field(out, "CONTAINER_PARTIAL_MESSAGE", "true");
    for (const auto& [k, v] : c_.fields) journal_field(out, k, v);
    return out;
  }

  SyslogConfig c_;
  UniqueFd fd_;
  std::string host_;
  bool warned_ = false;
};

Result<std::unique_ptr<LogSink>> open_sink(const LogDriver& d, const std::string& id) {
  if (d.name == "gelf") return open_gelf(d.opts, id);
  if (d.name == "fluentd") return open_fluentd(d.opts, id);
  if (d.name != "journald" && d.name != "syslog")
    return fail_msg("--log-driver: \"", d.name, "\" is not a log driver husk has (journald, syslog, gelf, fluentd, splunk, awslogs, gcplogs)");
  SyslogConfig c = TRY(parse_syslog_config(d, id));
  UniqueFd dest = TRY(open_destination(c));
  return std::unique_ptr<LogSink>(std::make_unique<Sender>(std::move(c), std::move(dest)));
}

// The drivers that speak TLS or HTTP run in husk-log (src/logs), a
// separate binary linked with libcurl and OpenSSL: husk itself stays
// without them, because every shared library it loads costs every
// container start, while a log driver that needs them is the rare task.
bool sent_by_husk_log(const LogDriver& d) {
  if (d.name == "splunk" || d.name == "awslogs" || d.name == "gcplogs") return true;
  if (d.name != "syslog" && d.name != "fluentd") return false;
  for (const std::string& kv : d.opts)
    if (kv.starts_with(d.name == "syslog" ? "address=tcp+tls://" : "address=tls://")) return true;
  return false;
}

Result<std::string> husk_log_binary() {
  if (const char* env = getenv("HUSK_LOG_BINARY"); env && *env) return std::string(env);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir;
  if (n > 0) {
    self[n] = 0;
    dir = self;
    dir = dir.substr(0, dir.rfind('/'));
    // installed beside husk; in a build tree, src/logs beside src/cli
    for (const char* rel : {"/husk-log", "/../logs/husk-log"})
      if (std::string p = dir + rel; access(p.c_str(), X_OK) == 0) return p;
  }
  for (const char* p : {"/usr/local/bin/husk-log", "/usr/bin/husk-log"})
    if (access(p, X_OK) == 0) return std::string(p);
  return fail_msg("husk-log, which sends the TLS and HTTP log drivers' lines, is not beside husk (", dir,
                  ") nor in /usr/local/bin or /usr/bin");
}

// Puts `fds` on 3, 4, ... in order, whatever numbers they have now.
bool place_fds(std::initializer_list<int> fds) {
  std::vector<int> high;
  for (int fd : fds) {
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 64);
    if (h < 0) return false;
    high.push_back(h);
  }
  for (size_t i = 0; i < high.size(); ++i)
    if (dup2(high[i], static_cast<int>(3 + i)) < 0) return false;
  return true;
}

// husk-log's answer on its status pipe: "ok" once its destination is open,
// else the error, before it exits.
Result<> wait_ready(int status_fd, pid_t pid, const std::string& driver) {
  std::string got;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(status_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  if (got == "ok") return {};
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!got.empty()) return fail_msg(got);
  return fail_msg("log driver ", driver, ": husk-log ended before it was ready (",
                  WIFSIGNALED(status) ? cat("signal ", WTERMSIG(status)) : cat("exit ", WEXITSTATUS(status)), ")");
}

}  // namespace

Result<LogForwarder> LogForwarder::start(const LogDriver& d, const std::string& container_id) {
  std::unique_ptr<LogSink> sink;
  std::string helper;
  if (sent_by_husk_log(d))
    helper = TRY(husk_log_binary());
  else
    sink = TRY(open_sink(d, container_id));
  int po[2], pe[2], ps[2];
  if (pipe2(po, O_CLOEXEC) < 0) return fail_sys("pipe for the log driver");
  UniqueFd out_r(po[0]), out_w(po[1]);
  if (pipe2(pe, O_CLOEXEC) < 0) return fail_sys("pipe for the log driver");
  UniqueFd err_r(pe[0]), err_w(pe[1]);
  UniqueFd status_r, status_w;
  if (!helper.empty()) {
    if (pipe2(ps, O_CLOEXEC) < 0) return fail_sys("pipe for husk-log");
    status_r.reset(ps[0]);
    status_w.reset(ps[1]);
  }
  LogForwarder f;
  int so = fcntl(1, F_DUPFD_CLOEXEC, 3), se = fcntl(2, F_DUPFD_CLOEXEC, 3);
  f.saved_out_.reset(so);
  f.saved_err_.reset(se);
  if (so < 0 || se < 0) return fail_sys("keep stdout and stderr for the log driver");
  std::vector<std::string> args = {helper, d.name, container_id};
  args.insert(args.end(), d.opts.begin(), d.opts.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork the log forwarder");
  if (pid == 0) {
    // The forwarder: it drains the pipes until every writer is gone, so
    // the signals a terminal or supervisor sends the monitor are not for it
    // (ignored signals stay ignored across husk-log's exec).
    prctl(PR_SET_NAME, "husk-log");
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) signal(sig, SIG_IGN);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    out_w.reset();
    err_w.reset();
    status_r.reset();
    if (dup2(so, 1) < 0 || dup2(se, 2) < 0) _exit(1);
    if (helper.empty()) pump_log_lines(*sink, out_r.get(), err_r.get());
    // husk-log: the output pipes on 3 and 4, the status pipe on 5.
    if (!place_fds({out_r.get(), err_r.get(), status_w.get()})) _exit(127);
    syscall(SYS_close_range, 6U, ~0U, 0U);
    execv(argv[0], argv.data());
    std::string e = cat("log driver ", d.name, ": exec ", helper, ": ", strerror(errno));
    (void)!::write(5, e.data(), e.size());
    _exit(127);
  }
  f.pid_ = pid;
  if (!helper.empty()) {
    status_w.reset();
    if (auto ready = wait_ready(status_r.get(), pid, d.name); !ready) {
      f.pid_ = -1;  // it has exited and been reaped
      return std::unexpected(ready.error());
    }
  }
  if (dup2(out_w.get(), 1) < 0 || dup2(err_w.get(), 2) < 0) {
    int e = errno;
    f.finish(0);
    return fail_errno(e, "put the log driver's pipes on stdout and stderr");
  }
  return f;
}

void LogForwarder::finish(int timeout_ms) {
  if (saved_out_) dup2(saved_out_.get(), 1);
  if (saved_err_) dup2(saved_err_.get(), 2);
  saved_out_.reset();
  saved_err_.reset();
  if (pid_ < 0) return;
  pid_t pid = std::exchange(pid_, -1);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    struct pollfd p = {pidfd, POLLIN, 0};
    while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  }
  (void)waitpid(pid, nullptr, WNOHANG);
}

}  // namespace husk::runtime
