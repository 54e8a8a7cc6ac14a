#include "runtime/sync.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/uio.h>

#include <cstring>

namespace husk::runtime {
namespace {

struct Header {
  uint32_t type;
  int32_t err;
  uint32_t len;
};

constexpr uint32_t kMaxPayload = 1 << 20;

Result<> send_with_fd(int sock, const void* data, size_t len, int pass_fd) {
  if (pass_fd < 0) {
    // Plain write: a seccomp profile already loaded in the child may not
    // allow sendmsg, but any profile that lets a program run allows write.
    TRYV_CTX(write_all(sock, std::string_view(static_cast<const char*>(data), len)), "sync socket");
    return {};
  }
  struct iovec iov = {const_cast<void*>(data), len};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_sys("send on sync socket");
  if (static_cast<size_t>(n) != len) return fail_errno(EIO, "short send on sync socket");
  return {};
}

Result<size_t> recv_with_fd(int sock, void* data, size_t len, UniqueFd* fd_out, int flags) {
  struct iovec iov = {data, len};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_sys("receive on sync socket");
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof(int));
      if (fd_out) fd_out->reset(fd);
      else ::close(fd);
    }
  }
  return static_cast<size_t>(n);
}

}  // namespace

Result<> sync_send(int sock, SyncType type, const std::string& payload, int pass_fd, int32_t err) {
  std::string buf(sizeof(Header) + payload.size(), '\0');
  Header h{static_cast<uint32_t>(type), err, static_cast<uint32_t>(payload.size())};
  memcpy(buf.data(), &h, sizeof h);
  memcpy(buf.data() + sizeof h, payload.data(), payload.size());
  return send_with_fd(sock, buf.data(), buf.size(), pass_fd);
}

Result<SyncMsg> sync_recv(int sock) {
  Header h;
  SyncMsg msg;
  size_t n = TRY(recv_with_fd(sock, &h, sizeof h, &msg.fd, MSG_WAITALL));
  if (n == 0) return fail_errno(EPIPE, "the container process exited before it was set up");
  if (n != sizeof h || h.len > kMaxPayload) return fail_errno(EPROTO, "bad message on sync socket");
  msg.type = static_cast<SyncType>(h.type);
  msg.err = h.err;
  if (h.len > 0) {
    msg.payload.resize(h.len);
    size_t got = 0;
    while (got < h.len) {
      ssize_t r = ::recv(sock, msg.payload.data() + got, h.len - got, MSG_WAITALL);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return fail_errno(EPROTO, "truncated message on sync socket");
      got += static_cast<size_t>(r);
    }
  }
  return msg;
}

Result<SyncMsg> sync_expect(int sock, SyncType type) {
  SyncMsg msg = TRY(sync_recv(sock));
  if (msg.type == SyncType::Error) return fail(Error(msg.err, msg.payload));
  if (msg.type != type) return fail_errno(EPROTO, "unexpected message on sync socket");
  return msg;
}

void sync_send_error(int sock, const Error& e) {
  // The errno travels separately; the text is the chain without it, so the
  // parent can add its own context and print strerror once.
  std::string text = Error(0, e.str()).str();
  if (e.code() != 0) {
    // strip ": <strerror>" that str() appended
    std::string suffix = std::string(": ") + strerror(e.code());
    if (text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0)
      text.resize(text.size() - suffix.size());
  }
  (void)sync_send(sock, SyncType::Error, text, -1, e.code());
}

Result<UniqueFd> connect_unix(const std::string& path) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail_sys("socket");
  UniqueFd sock(s);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return fail_msg("socket path is too long: ", path);
  memcpy(addr.sun_path, path.c_str(), path.size());
  if (connect(s, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) return fail_sys("connect to ", path);
  return sock;
}

Result<> send_fd(int sock, int fd, const std::string& payload) {
  std::string data = payload.empty() ? std::string(1, '\0') : payload;
  return send_with_fd(sock, data.data(), data.size(), fd);
}

Result<UniqueFd> recv_fd(int sock, std::string* payload) {
  char buf[4096];
  UniqueFd fd;
  size_t n = TRY(recv_with_fd(sock, buf, sizeof buf, &fd, 0));
  if (!fd.valid()) return fail_errno(EPROTO, "no file descriptor received");
  if (payload) payload->assign(buf, n);
  return fd;
}

}  // namespace husk::runtime
