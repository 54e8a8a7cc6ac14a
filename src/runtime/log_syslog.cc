#include "runtime/log_syslog.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace husk::runtime {
namespace {

bool valid_journal_field(std::string_view k) {
  if (k.empty() || k.size() > 64 || k[0] == '_' || (k[0] >= '0' && k[0] <= '9')) return false;
  for (char c : k)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// ---- facilities and times ----------------------------------------------------------------------------------------

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

}  // namespace

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

Result<SyslogConfig> parse_syslog_config(const LogDriver& d, const std::string& id) {
  SyslogConfig c;
  c.id = id;
  c.tag = id.substr(0, 12);
  c.name = id;
  c.journald = d.name == "journald";
  std::string address;
  std::string tls_opt;  // the first tls-* option, for its error
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
    } else if (!c.journald && (k == "tls-ca-cert" || k == "tls-cert" || k == "tls-key")) {
      if (v.empty()) return fail_msg(what, ": the file is empty");
      if (access(v.c_str(), R_OK) != 0) return fail_sys(what, ": ", v);
      (k == "tls-ca-cert" ? c.tls_ca_cert : k == "tls-cert" ? c.tls_cert : c.tls_key) = v;
      if (tls_opt.empty()) tls_opt = k;
    } else if (!c.journald && k == "tls-skip-verify") {
      c.tls_skip_verify = TRY(parse_log_bool(v, what));
      if (tls_opt.empty()) tls_opt = k;
    } else {
      return fail_msg(what, ": not an option of the ", d.name, " log driver (",
                      c.journald ? "tag, name, field"
                                 : "address, facility, format, tag, tls-ca-cert, tls-cert, tls-key, tls-skip-verify",
                      ")");
    }
  }
  if (c.journald) {
    c.endpoint = TRY(unix_endpoint("/run/systemd/journal/socket", SOCK_DGRAM, "journald (/run/systemd/journal/socket)"));
    return c;
  }
  bool tls = address.starts_with("tcp+tls://");
  if (!tls_opt.empty() && !tls) return fail_msg("--log-opt ", tls_opt, ": only for a tcp+tls:// address");
  if (c.tls_cert.empty() != c.tls_key.empty())
    return fail_msg("--log-opt ", c.tls_cert.empty() ? "tls-key" : "tls-cert", ": give tls-cert and tls-key together");
  if (address.empty()) {
    c.local_syslog = true;
    c.endpoint = TRY(unix_endpoint("/dev/log", SOCK_DGRAM, "the local syslog (/dev/log)"));
    return c;
  }
  const std::string what = "--log-opt address";
  size_t sep = address.find("://");
  if (sep == std::string::npos)
    return fail_msg(what, ": \"", address, "\": expected udp://HOST:PORT, tcp://HOST:PORT, tcp+tls://HOST:PORT, unix://PATH or unixgram://PATH");
  std::string scheme = address.substr(0, sep), rest = address.substr(sep + 3);
  if (scheme == "udp") c.endpoint = TRY(inet_endpoint(rest, 514, SOCK_DGRAM, address, what));
  else if (scheme == "tcp") c.endpoint = TRY(inet_endpoint(rest, 514, SOCK_STREAM, address, what));
  else if (scheme == "unix") c.endpoint = TRY(unix_endpoint(rest, SOCK_STREAM, address));
  else if (scheme == "unixgram") c.endpoint = TRY(unix_endpoint(rest, SOCK_DGRAM, address));
  else if (scheme == "tcp+tls") {
    c.endpoint = TRY(inet_endpoint(rest, 514, SOCK_STREAM, address, what));
    c.tls = true;
    c.tls_host = host_of(rest);  // the name the server's certificate must have
  } else
    return fail_msg(what, ": \"", address, "\": unknown transport \"", scheme, "\" (udp, tcp, tcp+tls, unix, unixgram)");
  return c;
}

std::string syslog_message(const SyslogConfig& c, const std::string& host, LogStream s, std::string_view text) {
  int pri = c.facility * 8 + (s == LogStream::kOut ? 6 : 3);
  std::string t = syslog_time(c.format);
  std::string pid = std::to_string(getpid());
  std::string out;
  switch (c.format) {
    case SyslogFormat::kUnix: out = cat("<", pri, ">", t, " ", c.tag, "[", pid, "]: "); break;
    case SyslogFormat::kRfc3164: out = cat("<", pri, ">", t, " ", host, " ", c.tag, "[", pid, "]: "); break;
    case SyslogFormat::kRfc5424:
    case SyslogFormat::kRfc5424Micro:
      out = cat("<", pri, ">1 ", t, " ", host, " ", c.tag, " ", pid, " ", c.tag, " - ");
      break;
  }
  out.append(text);
  bool rfc5424 = c.format == SyslogFormat::kRfc5424 || c.format == SyslogFormat::kRfc5424Micro;
  // RFC 5425 (syslog over TLS) frames a message by its length, as docker
  // does for rfc5424 over tcp+tls; other streams end it with '\n'.
  if (c.tls && rfc5424) return cat(out.size(), " ", out);
  if (c.endpoint.socktype == SOCK_STREAM) out += '\n';
  return out;
}

}  // namespace husk::runtime
