#include "driver/exec_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/fd.h"
#include "driver/husk_process.h"
#include "runtime/sync.h"
#include "runtime/terminal.h"

namespace husk::driver {
namespace {

namespace drv = hashicorp::nomad::plugins::drivers::proto;

// One exec's private directory: the console socket husk connects to and the
// pid file naming the exec'd process (to kill it when the client goes away).
// Under /tmp, not the state dir: a socket path must fit in sun_path.
struct ExecDir {
  std::string path;
  ~ExecDir() {
    if (path.empty()) return;
    unlink(socket().c_str());
    unlink(pid_file().c_str());
    rmdir(path.c_str());
  }
  std::string socket() const { return path + "/console.sock"; }
  std::string pid_file() const { return path + "/exec.pid"; }
};

Result<UniqueFd> listen_unix(const std::string& path) {
  struct sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return fail_msg("console socket path too long: ", path);
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail_sys("socket");
  UniqueFd sock(s);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof a) < 0) return fail_sys("bind ", path);
  if (listen(s, 1) < 0) return fail_sys("listen ", path);
  return sock;
}

// Waits for husk to connect and hand over the pty master. An empty fd means
// husk exited first (it failed; its stderr says why).
Result<UniqueFd> accept_master(int listener, pid_t husk, grpc::ServerContext* ctx) {
  for (int waited_ms = 0; waited_ms < 60000; waited_ms += 100) {
    struct pollfd p = {listener, POLLIN, 0};
    int n = poll(&p, 1, 100);
    if (n < 0 && errno != EINTR) return fail_sys("poll the console socket");
    if (n > 0) {
      int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return fail_sys("accept on the console socket");
      UniqueFd conn(c);
      std::string payload;
      return runtime::recv_fd(conn.get(), &payload);
    }
    if (ctx->IsCancelled()) return fail_msg("exec: the client went away before the terminal was ready");
    // Exited (left unreaped for the caller's waitpid)?
    siginfo_t info = {};
    if (waitid(P_PID, static_cast<id_t>(husk), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == husk)
      return UniqueFd();
  }
  return fail_errno(ETIMEDOUT, "exec: husk did not hand over the terminal within 60 s");
}

void kill_exec(const ExecDir& dir, pid_t husk) {
  // The exec'd process is not husk's to outlive: kill it first, then husk.
  auto text = read_file(dir.pid_file());
  if (text) {
    pid_t p = static_cast<pid_t>(atoi(text->c_str()));
    if (p > 1) kill(p, SIGKILL);
  }
  kill(husk, SIGKILL);
}

// One read from fd relayed as stdout or stderr data; false at EOF or error
// (EIO on a pty master: every slave is closed).
bool relay(ExecStream* stream, int fd, bool to_stdout) {
  char buf[16384];
  ssize_t r = read(fd, buf, sizeof buf);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (r <= 0) return false;
  drv::ExecTaskStreamingResponse resp;
  (to_stdout ? resp.mutable_stdout() : resp.mutable_stderr())->set_data(std::string(buf, static_cast<size_t>(r)));
  stream->Write(resp);
  return true;
}

}  // namespace

grpc::Status exec_streaming(TaskManager& tasks, grpc::ServerContext* ctx, ExecStream* stream) {
  drv::ExecTaskStreamingRequest first;
  if (!stream->Read(&first) || !first.has_setup())
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "exec: the first message must carry the setup");
  const auto& setup = first.setup();
  const bool tty = setup.tty();
  std::vector<std::string> cmd(setup.command().begin(), setup.command().end());

  ExecDir dir;
  char tmpl[] = "/tmp/husk-exec-XXXXXX";
  if (!mkdtemp(tmpl)) return grpc::Status(grpc::StatusCode::INTERNAL, std::string("exec: mkdtemp: ") + strerror(errno));
  dir.path = tmpl;
  std::vector<std::string> opts = {"--pid-file", dir.pid_file()};
  UniqueFd listener;
  if (tty) {
    auto l = listen_unix(dir.socket());
    if (!l) return grpc::Status(grpc::StatusCode::INTERNAL, l.error().str());
    listener = std::move(*l);
    opts.insert(opts.end(), {"--console-socket", dir.socket()});
  }
  auto argv = tasks.exec_argv(setup.task_id(), cmd, tty, opts);
  if (!argv) return grpc::Status(argv.error().code() == ENOENT ? grpc::StatusCode::NOT_FOUND : grpc::StatusCode::UNKNOWN,
                                 argv.error().str());

  // Pipes: the command's stdin, stdout, stderr. With a tty the command has
  // the pty and the err pipe carries only husk's own messages.
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2];
  if ((!tty && (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)) || pipe2(err, O_CLOEXEC) < 0)
    return grpc::Status(grpc::StatusCode::INTERNAL, "exec: pipe failed");
  UniqueFd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  SpawnOptions so;
  so.stdin_fd = in_r ? in_r.get() : -1;
  so.stdout_fd = out_w ? out_w.get() : err_w.get();
  so.stderr_fd = err_w.get();
  so.new_session = false;
  auto pid = spawn(*argv, so);
  if (!pid) return grpc::Status(grpc::StatusCode::INTERNAL, pid.error().str());
  in_r.reset();
  out_w.reset();
  err_w.reset();

  UniqueFd master;
  if (tty) {
    auto m = accept_master(listener.get(), *pid, ctx);
    if (!m) {
      kill_exec(dir, *pid);
      waitpid(*pid, nullptr, 0);
      // husk is gone: its messages so far end at EOF.
      std::string said;
      char buf[4096];
      for (ssize_t r; (r = read(err_r.get(), buf, sizeof buf)) > 0;) said.append(buf, static_cast<size_t>(r));
      return grpc::Status(grpc::StatusCode::INTERNAL, m.error().str() + (said.empty() ? "" : "; husk said: " + said));
    }
    master = std::move(*m);
    listener.reset();
  }

  // stdin and resizes, read on a thread of their own; the input fd is shared
  // with the end of the exec below, hence the mutex.
  std::mutex input_mu;
  int input_fd = tty ? master.get() : in_w.get();
  std::atomic<bool> reader_done{false};
  std::thread reader([&] {
    drv::ExecTaskStreamingRequest req;
    while (stream->Read(&req)) {
      std::lock_guard<std::mutex> l(input_mu);
      if (input_fd < 0) continue;
      if (req.has_tty_size() && tty && req.tty_size().height() > 0 && req.tty_size().width() > 0)
        (void)runtime::set_window_size(input_fd, static_cast<unsigned>(req.tty_size().height()),
                                       static_cast<unsigned>(req.tty_size().width()));
      if (!req.has_stdin()) continue;
      if (!req.stdin().data().empty()) (void)write_all(input_fd, req.stdin().data());
      if (req.stdin().close()) {
        if (tty) {
          // A terminal has no half-close: EOT ends input for a reader in
          // canonical mode, as ^D typed on a terminal does.
          (void)write_all(input_fd, "\x04");
        } else {
          in_w.reset();
          input_fd = -1;
        }
      }
    }
    reader_done = true;
  });

  int status = 0;
  bool reaped = false;
  auto reap = [&](int flags) {
    if (!reaped && waitpid(*pid, &status, flags) == *pid) reaped = true;
    return reaped;
  };
  int out_fd = tty ? master.get() : out_r.get();
  bool out_open = true;
  while (out_open || err_r) {
    if (ctx->IsCancelled()) {
      kill_exec(dir, *pid);
      break;
    }
    struct pollfd fds[2] = {{out_open ? out_fd : -1, POLLIN, 0}, {err_r ? err_r.get() : -1, POLLIN, 0}};
    int n = poll(fds, 2, 200);
    if (n < 0 && errno != EINTR) break;
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) out_open = relay(stream, out_fd, true);
    if (err_r && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !relay(stream, err_r.get(), false)) err_r.reset();
    // Background processes of the command may hold the terminal open: with
    // a pty the exec ends when husk (waiting for the command) does.
    if (tty && out_open && reap(WNOHANG)) {
      for (;;) {
        struct pollfd p = {out_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0 || !(p.revents & POLLIN) || !relay(stream, out_fd, true)) break;
      }
      out_open = false;
    }
  }
  reap(0);
  {
    std::lock_guard<std::mutex> l(input_mu);
    input_fd = -1;
    in_w.reset();
  }
  drv::ExecTaskStreamingResponse done;
  done.set_exited(true);
  done.mutable_result()->set_exit_code(exit_code_of(status));
  stream->Write(done);
  // The client ends its side after the exit message; if it does not within
  // 2 s, cancel the call so that the reader's Read returns.
  for (int i = 0; i < 40 && !reader_done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!reader_done) ctx->TryCancel();
  reader.join();
  return grpc::Status::OK;
}

}  // namespace husk::driver
