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
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>

#include "runtime/log.h"
#include "runtime/log_fluentd.h"
#include "runtime/log_gelf.h"
#include "runtime/log_sink.h"

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

bool valid_journal_field(std::string_view k) {
  if (k.empty() || k.size() > 64 || k[0] == '_' || (k[0] >= '0' && k[0] <= '9')) return false;
  for (char c : k)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// ---- syslog ----------------------------------------------------------------------------------------

struct Facility {
  const char* name;
  int code;
};
constexpr Facility kFacilities[] = {
    {"kern", 0},    {"user", 1},    {"mail", 2},    {"daemon", 3},  {"auth", 4},    {"syslog", 5},
    {"lpr", 6},     {"news", 7},    {"uucp", 8},    {"cron", 9},    {"authpriv", 10}, {"ftp", 11},
    {"local0", 16}, {"local1", 17}, {"local2", 18}, {"local3", 19}, {"local4", 20}, {"local5", 21},
    {"local6", 22}, {"local7", 23},
};

enum class SyslogFormat { kUnix, kRfc3164, kRfc5424, kRfc5424Micro };

std::string syslog_time(SyslogFormat f) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  localtime_r(&ts.tv_sec, &tm);
  char buf[64];
  if (f == SyslogFormat::kUnix || f == SyslogFormat::kRfc3164) {
    strftime(buf, sizeof buf, "%b %e %H:%M:%S", &tm);  // Go's time.Stamp: "Jan _2 15:04:05"
    return buf;
  }
  std::string out(buf, strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm));
  if (f == SyslogFormat::kRfc5424Micro) {
    snprintf(buf, sizeof buf, ".%06ld", ts.tv_nsec / 1000);
    std::string frac = buf;
    while (frac.size() > 1 && frac.back() == '0') frac.pop_back();  // Go's .999999 drops trailing zeros
    if (frac.size() > 1) out += frac;
  }
  long off = tm.tm_gmtoff;
  if (off == 0) return out + "Z";
  char sign = off < 0 ? '-' : '+';
  off = off < 0 ? -off : off;
  snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, off / 3600, (off / 60) % 60);
  return out + buf;
}

// ---- the configuration both halves share -----------------------------------------------------------

struct Config {
  bool journald = false;
  Endpoint endpoint;
  std::string id, tag, name;
  std::vector<std::pair<std::string, std::string>> fields;  // journald extras
  int facility = 3;
  SyslogFormat format = SyslogFormat::kUnix;
  bool local_syslog = false;  // no address: /dev/log, datagram first, then stream
};

Result<Config> parse(const LogDriver& d, const std::string& id) {
  Config c;
  c.id = id;
  c.tag = id.substr(0, 12);
  c.name = id;
  c.journald = d.name == "journald";
  std::string address;
  for (const std::string& kv : d.opts) {
    auto [k, v] = TRY(split_log_opt(kv));
    std::string what = "--log-opt " + k;
    if (k == "tag") {
      if (v.empty()) return fail_msg(what, ": the tag is empty");
      c.tag = v;
    } else if (c.journald && k == "name") {
      c.name = v;
    } else if (c.journald && k == "field") {
      size_t e2 = v.find('=');
      std::string fk = v.substr(0, e2);
      if (e2 == std::string::npos || !valid_journal_field(fk))
        return fail_msg(what, "=", v, ": expected NAME=VALUE with NAME of A-Z, 0-9 and _ (not first), at most 64");
      c.fields.emplace_back(fk, v.substr(e2 + 1));
    } else if (!c.journald && k == "address") {
      address = v;
    } else if (!c.journald && k == "facility") {
      bool found = false;
      for (const Facility& f : kFacilities)
        if (v == f.name) c.facility = f.code, found = true;
      if (!found && !v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() <= 2 &&
          std::stoi(v) <= 23)
        c.facility = std::stoi(v), found = true;
      if (!found) return fail_msg(what, ": \"", v, "\" is not a syslog facility (kern, user, daemon, local0-7, ... or 0-23)");
    } else if (!c.journald && k == "format") {
      if (v.empty()) c.format = SyslogFormat::kUnix;
      else if (v == "rfc3164") c.format = SyslogFormat::kRfc3164;
      else if (v == "rfc5424") c.format = SyslogFormat::kRfc5424;
      else if (v == "rfc5424micro") c.format = SyslogFormat::kRfc5424Micro;
      else return fail_msg(what, ": \"", v, "\" is not a syslog format (rfc3164, rfc5424, rfc5424micro, or empty)");
    } else {
      return fail_msg(what, ": not an option of the ", d.name, " log driver (",
                      c.journald ? "tag, name, field" : "address, facility, format, tag", ")");
    }
  }
  if (c.journald) {
    c.endpoint = TRY(unix_endpoint("/run/systemd/journal/socket", SOCK_DGRAM, "journald (/run/systemd/journal/socket)"));
    return c;
  }
  if (address.empty()) {
    c.local_syslog = true;
    c.endpoint = TRY(unix_endpoint("/dev/log", SOCK_DGRAM, "the local syslog (/dev/log)"));
    return c;
  }
  const std::string what = "--log-opt address";
  size_t sep = address.find("://");
  if (sep == std::string::npos)
    return fail_msg(what, ": \"", address, "\": expected udp://HOST:PORT, tcp://HOST:PORT, unix://PATH or unixgram://PATH");
  std::string scheme = address.substr(0, sep), rest = address.substr(sep + 3);
  if (scheme == "udp") c.endpoint = TRY(inet_endpoint(rest, 514, SOCK_DGRAM, address, what));
  else if (scheme == "tcp") c.endpoint = TRY(inet_endpoint(rest, 514, SOCK_STREAM, address, what));
  else if (scheme == "unix") c.endpoint = TRY(unix_endpoint(rest, SOCK_STREAM, address));
  else if (scheme == "unixgram") c.endpoint = TRY(unix_endpoint(rest, SOCK_DGRAM, address));
  else if (scheme == "tcp+tls")
    return fail_msg(what, ": \"", address, "\": husk has no TLS client for syslog; use udp://, tcp://, unix:// or unixgram://");
  else
    return fail_msg(what, ": \"", address, "\": unknown transport \"", scheme, "\" (udp, tcp, unix, unixgram)");
  return c;
}

Result<UniqueFd> open_destination(Config& c) {
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
  Sender(Config c, UniqueFd fd) : c_(std::move(c)), fd_(std::move(fd)) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) host_ = host;
    if (host_.empty()) host_ = "-";
  }

  void line(LogStream s, std::string_view text, bool partial) override {
    std::string msg = c_.journald ? journal_entry(s, text, partial) : syslog_message(s, text);
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

  std::string syslog_message(LogStream s, std::string_view text) const {
    int pri = c_.facility * 8 + (s == LogStream::kOut ? 6 : 3);
    std::string t = syslog_time(c_.format);
    std::string pid = std::to_string(getpid());
    std::string out;
    switch (c_.format) {
      case SyslogFormat::kUnix: out = cat("<", pri, ">", t, " ", c_.tag, "[", pid, "]: "); break;
      case SyslogFormat::kRfc3164: out = cat("<", pri, ">", t, " ", host_, " ", c_.tag, "[", pid, "]: "); break;
      case SyslogFormat::kRfc5424:
      case SyslogFormat::kRfc5424Micro:
        out = cat("<", pri, ">1 ", t, " ", host_, " ", c_.tag, " ", pid, " ", c_.tag, " - ");
        break;
    }
    out.append(text);
    if (c_.endpoint.socktype == SOCK_STREAM) out += '\n';  // a stream needs the line's end as its frame
    return out;
  }

  Config c_;
  UniqueFd fd_;
  std::string host_;
  bool warned_ = false;
};

[[noreturn]] void forward(LogSink& sender, int in_out, int in_err) {
  struct Input {
    int fd;
    int copy_to;
    LogStream stream;
    std::string pending;
    bool copying = true;
  } in[2] = {{in_out, 1, LogStream::kOut, {}, true}, {in_err, 2, LogStream::kErr, {}, true}};
  char buf[65536];
  int open = 2;
  while (open > 0) {
    struct pollfd p[2] = {{in[0].fd, POLLIN, 0}, {in[1].fd, POLLIN, 0}};
    int ready = poll(p, 2, sender.wait_ms());
    if (ready < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    sender.tick();
    for (int i = 0; i < 2; ++i) {
      if (in[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(in[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      Input& x = in[i];
      if (n <= 0) {
        if (!x.pending.empty()) sender.line(x.stream, x.pending, false);
        ::close(x.fd);
        x.fd = -1;
        --open;
        continue;
      }
      std::string_view chunk(buf, static_cast<size_t>(n));
      // The reader of our own stdout may go away (a closed terminal): the
      // log driver still gets every line.
      if (x.copying && !write_all(x.copy_to, chunk)) x.copying = false;
      x.pending.append(chunk);
      size_t start = 0;
      for (size_t nl; (nl = x.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        for (size_t at = start; at < nl; at += kMaxLogLine) {
          size_t len = std::min(kMaxLogLine, nl - at);
          sender.line(x.stream, std::string_view(x.pending).substr(at, len), at + len < nl);
        }
        if (start == nl) sender.line(x.stream, "", false);
      }
      x.pending.erase(0, start);
      while (x.pending.size() >= kMaxLogLine) {
        sender.line(x.stream, std::string_view(x.pending).substr(0, kMaxLogLine), true);
        x.pending.erase(0, kMaxLogLine);
      }
    }
  }
  sender.close();
  _exit(0);
}

Result<std::unique_ptr<LogSink>> open_sink(const LogDriver& d, const std::string& id) {
  if (d.name == "gelf") return open_gelf(d.opts, id);
  if (d.name == "fluentd") return open_fluentd(d.opts, id);
  if (d.name != "journald" && d.name != "syslog")
    return fail_msg("--log-driver: \"", d.name, "\" is not a log driver husk has (journald, syslog, gelf, fluentd)");
  Config c = TRY(parse(d, id));
  UniqueFd dest = TRY(open_destination(c));
  return std::unique_ptr<LogSink>(std::make_unique<Sender>(std::move(c), std::move(dest)));
}

}  // namespace

Result<LogForwarder> LogForwarder::start(const LogDriver& d, const std::string& container_id) {
  std::unique_ptr<LogSink> sink = TRY(open_sink(d, container_id));
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) < 0) return fail_sys("pipe for the log driver");
  UniqueFd out_r(po[0]), out_w(po[1]);
  if (pipe2(pe, O_CLOEXEC) < 0) return fail_sys("pipe for the log driver");
  UniqueFd err_r(pe[0]), err_w(pe[1]);
  LogForwarder f;
  int so = fcntl(1, F_DUPFD_CLOEXEC, 3), se = fcntl(2, F_DUPFD_CLOEXEC, 3);
  f.saved_out_.reset(so);
  f.saved_err_.reset(se);
  if (so < 0 || se < 0) return fail_sys("keep stdout and stderr for the log driver");
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork the log forwarder");
  if (pid == 0) {
    // The forwarder: it drains the pipes until every writer is gone, so
    // the signals a terminal or supervisor sends the monitor are not for it.
    prctl(PR_SET_NAME, "husk-log");
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) signal(sig, SIG_IGN);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    out_w.reset();
    err_w.reset();
    if (dup2(so, 1) < 0 || dup2(se, 2) < 0) _exit(1);
    forward(*sink, out_r.get(), err_r.get());
  }
  f.pid_ = pid;
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
