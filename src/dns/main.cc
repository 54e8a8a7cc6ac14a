// husk-dns: the DNS server of one husk bridge network (podman's
// aardvark-dns, docker's embedded DNS). husk starts it when the network's
// first container joins and stops it when the last leaves; it listens on
// the bridge's gateway address(es), port 53, UDP and TCP, answers the
// names of the network's containers from the record directory, and the
// reverse names of their addresses, NXDOMAIN for the reverse names of the
// network's subnets that no container has, and forwards every other query
// to the host's resolvers (the nameservers of /etc/resolv.conf, loopback
// ones included: it runs on the host).
//
//   husk-dns --records DIR --listen ADDR [--listen ADDR6]
//            [--subnet CIDR [--subnet CIDR6]] [--resolv-conf FILE] [--ready-fd N]
//
// --ready-fd gets "ready PID\n" once every socket is bound, or the error.
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.h"
#include "common/program.h"
#include "common/text.h"
#include "dns/message.h"
#include "dns/records.h"
#include "dns/reverse.h"

namespace husk::dns {
namespace {

constexpr int kMaxInflight = 128;
constexpr int kUpstreamTimeoutMs = 2000;

union SockAddr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
  struct sockaddr_storage ss;
};

socklen_t to_sockaddr(const Address& a, uint16_t port, SockAddr& out) {
  memset(&out, 0, sizeof out);
  if (a.family == AF_INET) {
    out.in.sin_family = AF_INET;
    out.in.sin_port = htons(port);
    memcpy(&out.in.sin_addr, a.bytes, 4);
    return sizeof out.in;
  }
  out.in6.sin6_family = AF_INET6;
  out.in6.sin6_port = htons(port);
  memcpy(&out.in6.sin6_addr, a.bytes, 16);
  return sizeof out.in6;
}

class Server {
 public:
  Server(std::string records_dir, std::vector<Address> listen, std::vector<Prefix> subnets, std::string resolv_conf)
      : dir_(std::move(records_dir)),
        listen_(std::move(listen)),
        subnets_(std::move(subnets)),
        resolv_conf_(std::move(resolv_conf)) {}

  // The reply to one query ("" = none: not a DNS message).
  std::string handle(const std::string& query, bool tcp) {
    if (query.size() < 12) return "";
    auto q = parse_question(query);
    if (!q) {
      uint16_t flags =
          static_cast<uint16_t>((static_cast<unsigned char>(query[2]) << 8) | static_cast<unsigned char>(query[3]));
      if (flags & 0x8000) return "";  // a reply: never answer one
      return error_reply(query, ((flags >> 11) & 0xf) != 0 ? kNotImp : kFormErr);
    }
    std::vector<Address> found;
    std::string target;  // a reverse name's PTR
    Verdict v;
    {
      std::lock_guard<std::mutex> g(mu_);
      refresh();
      auto reverse = decide_reverse(live_address_names(files_, process_alive), subnets_, q->name, target);
      v = reverse ? *reverse : decide(live_records(files_, process_alive), q->name, found);
      // A name several containers share (an alias) gets all their
      // addresses in a new order each time, as docker's embedded DNS
      // shuffles them: a client that takes the first spreads over them.
      std::shuffle(found.begin(), found.end(), rng_);
    }
    if (v == Verdict::Answer && !target.empty()) return answer_ptr(query, *q, target);
    if (v == Verdict::Answer) return answer(query, *q, kNoError, found);
    if (v == Verdict::NxDomain) return answer(query, *q, kNxDomain, {});
    return forward(query, tcp);
  }

  std::atomic<int> inflight{0};

 private:
  std::minstd_rand rng_{std::random_device{}()};  // under mu_
  // The records again when the directory changed (a rename into it or an
  // unlink changes its mtime).
  void refresh() {
    struct stat st;
    struct timespec m = {};
    if (stat(dir_.c_str(), &st) == 0) m = st.st_mtim;
    if (loaded_ && m.tv_sec == mtime_.tv_sec && m.tv_nsec == mtime_.tv_nsec) return;
    files_ = load_record_files(dir_);
    mtime_ = m;
    loaded_ = true;
  }

  // The host's resolvers, read for every forward (the file may change).
  std::vector<Address> upstreams() {
    std::vector<Address> out;
    std::string text = read_file(resolv_conf_).value_or("");
    for (std::string_view l : lines_of(text)) {
      if (!l.starts_with("nameserver")) continue;
      std::string v(l.substr(10));
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(v.begin());
      size_t end = v.find_first_of(" \t#");
      if (end != std::string::npos) v = v.substr(0, end);
      auto a = parse_address(v);  // a scoped link-local "fe80::1%eth0" does not parse: skipped
      if (!a) continue;
      bool ours = false;
      for (const auto& l2 : listen_) ours = ours || same_address(l2, *a);
      if (!ours) out.push_back(*a);
    }
    return out;
  }

  static std::string ask_udp(const SockAddr& sa, socklen_t len, const std::string& query) {
    int fd = socket(sa.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "";
    UniqueFd owned(fd);
    if (connect(fd, &sa.sa, len) < 0 || send(fd, query.data(), query.size(), 0) < 0) return "";
    char buf[65536];
    for (;;) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, kUpstreamTimeoutMs) <= 0) return "";
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0) return "";
      if (n >= 2 && buf[0] == query[0] && buf[1] == query[1]) return std::string(buf, static_cast<size_t>(n));
    }
  }

  static bool read_exact(int fd, char* buf, size_t n) {
    while (n > 0) {
      ssize_t r = recv(fd, buf, n, 0);
      if (r <= 0) return false;
      buf += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  static std::string ask_tcp(const SockAddr& sa, socklen_t len, const std::string& query) {
    int fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "";
    UniqueFd owned(fd);
    struct timeval tv = {kUpstreamTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // connect's bound too
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, &sa.sa, len) < 0) return "";
    std::string framed;
    framed.push_back(static_cast<char>(query.size() >> 8));
    framed.push_back(static_cast<char>(query.size() & 0xff));
    framed += query;
    if (!write_all(fd, framed)) return "";
    unsigned char lenbuf[2];
    if (!read_exact(fd, reinterpret_cast<char*>(lenbuf), 2)) return "";
    std::string reply((lenbuf[0] << 8) | lenbuf[1], '\0');
    if (!read_exact(fd, reply.data(), reply.size())) return "";
    return reply;
  }

  std::string forward(const std::string& query, bool tcp) {
    for (const auto& up : upstreams()) {
      SockAddr sa;
      socklen_t len = to_sockaddr(up, 53, sa);
      std::string reply = tcp ? ask_tcp(sa, len, query) : ask_udp(sa, len, query);
      if (!reply.empty()) return reply;
    }
    return error_reply(query, kServFail);
  }

  std::string dir_;
  std::vector<Address> listen_;
  std::vector<Prefix> subnets_;
  std::string resolv_conf_;
  std::mutex mu_;
  std::vector<RecordFile> files_;
  struct timespec mtime_ = {};
  bool loaded_ = false;
};

int bind_socket(const Address& a, int type) {
  int fd = socket(a.family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // The bridge's IPv6 address may still be tentative (DAD).
  setsockopt(fd, a.family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6, a.family == AF_INET ? IP_FREEBIND : IPV6_FREEBIND,
             &one, sizeof one);
  if (a.family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  SockAddr sa;
  socklen_t len = to_sockaddr(a, 53, sa);
  if (bind(fd, &sa.sa, len) < 0 || (type == SOCK_STREAM && listen(fd, 64) < 0)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

void serve_tcp(Server& server, int conn) {
  UniqueFd owned(conn);
  struct timeval tv = {10, 0};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  for (;;) {
    unsigned char lenbuf[2];
    ssize_t n = recv(conn, lenbuf, 2, MSG_WAITALL);
    if (n != 2) return;
    std::string query((lenbuf[0] << 8) | lenbuf[1], '\0');
    if (recv(conn, query.data(), query.size(), MSG_WAITALL) != static_cast<ssize_t>(query.size())) return;
    std::string reply = server.handle(query, true);
    if (reply.empty()) return;
    std::string framed;
    framed.push_back(static_cast<char>(reply.size() >> 8));
    framed.push_back(static_cast<char>(reply.size() & 0xff));
    framed += reply;
    if (!write_all(conn, framed)) return;
  }
}

int usage() {
  fprintf(stderr,
          "usage: husk-dns --records DIR --listen ADDR [--listen ADDR] [--subnet CIDR]... [--resolv-conf FILE] "
          "[--ready-fd N]\n");
  return 2;
}

int run(int argc, char** argv) {
  std::string dir, resolv = "/etc/resolv.conf";
  std::vector<Address> listen;
  std::vector<Prefix> subnets;
  int ready = -1;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    if (a == "--records")
      dir = v;
    else if (a == "--resolv-conf")
      resolv = v;
    else if (a == "--ready-fd")
      ready = atoi(v.c_str());
    else if (a == "--listen") {
      auto addr = parse_address(v);
      if (!addr) {
        fprintf(stderr, "husk-dns: --listen: \"%s\" is not an IP address\n", v.c_str());
        return 2;
      }
      listen.push_back(*addr);
    } else if (a == "--subnet") {
      auto prefix = parse_prefix(v);
      if (!prefix) {
        fprintf(stderr, "husk-dns: --subnet: \"%s\" is not ADDRESS/LENGTH\n", v.c_str());
        return 2;
      }
      subnets.push_back(*prefix);
    } else {
      return usage();
    }
  }
  if (dir.empty() || listen.empty()) return usage();
  auto say = [&](const std::string& text) {
    if (ready >= 0)
      (void)write_all(ready, text);
    else
      fputs(text.c_str(), stderr);
  };

  signal(SIGPIPE, SIG_IGN);
  std::vector<struct pollfd> fds;
  std::vector<bool> is_tcp;
  for (const auto& a : listen)
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
      int fd = bind_socket(a, type);
      if (fd < 0) {
        char text[INET6_ADDRSTRLEN] = {};
        inet_ntop(a.family, a.bytes, text, sizeof text);
        say(std::string("husk-dns: bind ") + (type == SOCK_DGRAM ? "udp " : "tcp ") + text +
            " port 53: " + strerror(errno) + "\n");
        return 1;
      }
      fds.push_back({fd, POLLIN, 0});
      is_tcp.push_back(type == SOCK_STREAM);
    }
  say("ready " + std::to_string(getpid()) + "\n");
  if (ready >= 0) close(ready);

  Server server(dir, listen, subnets, resolv);
  std::vector<char> buf(65536);
  for (;;) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      perror("husk-dns: poll");
      return 1;
    }
    for (size_t i = 0; i < fds.size(); i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int fd = fds[i].fd;
      if (is_tcp[i]) {
        int conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        if (server.inflight.fetch_add(1) >= kMaxInflight) {
          server.inflight--;
          close(conn);
          continue;
        }
        std::thread([&server, conn] {
          serve_tcp(server, conn);
          server.inflight--;
        }).detach();
        continue;
      }
      SockAddr from;
      socklen_t from_len = sizeof from;
      ssize_t n = recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT, &from.sa, &from_len);
      if (n <= 0) continue;
      std::string query(buf.data(), static_cast<size_t>(n));
      if (server.inflight.fetch_add(1) >= kMaxInflight) {
        server.inflight--;
        std::string busy = error_reply(query, kServFail);
        sendto(fd, busy.data(), busy.size(), 0, &from.sa, from_len);
        continue;
      }
      // Local answers are quick, a forward waits on the upstream: each
      // query gets a thread, so one slow upstream holds no other query.
      std::thread([&server, fd, query, from, from_len] {
        std::string reply = server.handle(query, false);
        if (!reply.empty()) sendto(fd, reply.data(), reply.size(), 0, &from.sa, from_len);
        server.inflight--;
      }).detach();
    }
  }
}

}  // namespace
}  // namespace husk::dns

int main(int argc, char** argv) { return husk::dns::run(argc, argv); }
