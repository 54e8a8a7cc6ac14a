// A rootless store's user namespace (see store_userns.h).
#include "image/store_userns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/fd.h"
#include "common/program.h"
#include "common/text.h"
#include "runtime/subid.h"
#include "runtime/userns.h"

namespace husk::image {

namespace {

// podman's default for a rootless user: at most 65536 ids besides root.
constexpr uint64_t kMaxSubIds = 65536;

Result<std::vector<oci::IdMapping>> map_for(const runtime::IdOwner& owner, const char* helper, const char* kind) {
  std::string who =
      owner.user.empty() ? cat(kind, " ", owner.id) : cat("user \"", owner.user, "\" (", kind, " ", owner.id, ")");
  if (owner.ranges.empty())
    return fail_msg("a rootless image store keeps its layers' owners as ids from ", owner.file, ", and ", who,
                    " has no range there: add one (usermod --add-sub", kind, "s FIRST-LAST ", owner.user, "), or ",
                    "use the store as root");
  if (runtime::find_in_path(helper).empty())
    return fail_errno(ENOENT, "a rootless image store maps its layers' owners into ", owner.file, "'s range with ",
                      helper, ", which is not in PATH: install Debian's uidmap package");
  const auto& r = owner.ranges.front();
  return std::vector<oci::IdMapping>{
      {0, owner.id, 1}, {1, static_cast<uint32_t>(r.start), static_cast<uint32_t>(std::min(r.count, kMaxSubIds))}};
}

Result<> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("write to the pipe");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// The result frames the child writes: "O" and the value, or "E", the errno,
// a newline and the message with its context (the parent adds the errno
// text again when it prints it).
std::string error_frame(const Error& e) {
  std::string s = e.str();
  if (e.code() != 0) {
    std::string tail = cat(": ", strerror(e.code()));
    if (s.ends_with(tail)) s.resize(s.size() - tail.size());
  }
  return cat("E", e.code(), "\n", s);
}

Result<std::string> parse_frame(std::string_view frame, const std::string& what) {
  if (frame.starts_with("O")) return std::string(frame.substr(1));
  if (frame.starts_with("E")) {
    size_t nl = frame.find('\n');
    int code = atoi(std::string(frame.substr(1, nl == std::string_view::npos ? 0 : nl - 1)).c_str());
    return fail_errno(code, nl == std::string_view::npos ? std::string("?") : std::string(frame.substr(nl + 1)));
  }
  return fail_msg(what, " ended without a result");
}

int wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

[[noreturn]] void child_main(int up, int down, const std::function<Result<std::string>()>& work) {
  // A dead parent leaves nothing running: the staging directory it had is
  // a temporary one that GC removes once the layer lock is free.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (unshare(CLONE_NEWUSER) < 0) {
    (void)write_all(up, error_frame(Error::sys("unshare a user namespace for the rootless image store")));
    _exit(1);
  }
  if (!write_all(up, "U")) _exit(1);
  char go = 0;
  ssize_t n;
  while ((n = read(down, &go, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1 || go != 'G') _exit(1);  // the parent could not write our maps
  auto r = work();
  (void)write_all(up, r ? "O" + *r : error_frame(r.error()));
  _exit(r ? 0 : 1);
}

}  // namespace

uint32_t StoreIdMap::count() const {
  auto total = [](const std::vector<oci::IdMapping>& maps) {
    uint64_t next = 0;  // contiguous from 0, as caller_store_id_map makes them
    for (const auto& m : maps)
      if (m.container_id == next) next += m.size;
    return next;
  };
  return static_cast<uint32_t>(std::min(total(uids), total(gids)));
}

Result<StoreIdMap> caller_store_id_map() {
  StoreIdMap m;
  if (geteuid() == 0) return m;
  m.uids = TRY(map_for(runtime::uid_owner(), "newuidmap", "uid"));
  m.gids = TRY(map_for(runtime::gid_owner(), "newgidmap", "gid"));
  return m;
}

std::string format_store_id_map(const StoreIdMap& map) {
  std::string out;
  for (const auto& m : map.uids) out += cat("uid ", m.container_id, " ", m.host_id, " ", m.size, "\n");
  for (const auto& m : map.gids) out += cat("gid ", m.container_id, " ", m.host_id, " ", m.size, "\n");
  return out;
}

Result<StoreIdMap> parse_store_id_map(std::string_view text, const std::string& path) {
  StoreIdMap map;
  for (auto line : lines_of(text)) {
    if (line.empty()) continue;
    char kind[4] = {};
    unsigned long c = 0, h = 0, s = 0;
    std::string l(line);
    if (sscanf(l.c_str(), "%3s %lu %lu %lu", kind, &c, &h, &s) != 4 || (strcmp(kind, "uid") && strcmp(kind, "gid")))
      return fail_msg(path, ": \"", line, "\" is not \"uid|gid CONTAINER HOST SIZE\"");
    oci::IdMapping m{static_cast<uint32_t>(c), static_cast<uint32_t>(h), static_cast<uint32_t>(s)};
    (kind[0] == 'u' ? map.uids : map.gids).push_back(m);
  }
  if (map.uids.empty() != map.gids.empty()) return fail_msg(path, ": a uid map without a gid map, or the reverse");
  return map;
}

Result<std::string> run_in_store_userns(const StoreIdMap& map, const std::function<Result<std::string>()>& work) {
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd up_r(up[0]), up_w(up[1]);
  if (pipe2(down, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd down_r(down[0]), down_w(down[1]);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork the rootless image store's unpacker");
  if (pid == 0) {
    up_r.reset();
    down_w.reset();
    child_main(up_w.get(), down_r.get(), work);
  }
  up_w.reset();
  down_r.reset();
  const std::string what = cat("the rootless image store's child ", pid);
  char first = 0;
  ssize_t n;
  while ((n = read(up_r.get(), &first, 1)) < 0 && errno == EINTR) {
  }
  if (n == 1 && first == 'U') {
    auto mapped = runtime::write_id_maps(pid, map.uids, map.gids);
    if (!mapped) {
      down_w.reset();  // the child reads EOF and leaves
      wait_child(pid);
      return fail(std::move(mapped.error()).with_context("map the rootless image store's ids"));
    }
    if (auto sent = write_all(down_w.get(), "G"); !sent) {
      down_w.reset();
      wait_child(pid);
      return fail(std::move(sent.error()).with_context(what));
    }
    down_w.reset();
    std::string frame = read_all(up_r.get());
    int status = wait_child(pid);
    if (frame.empty()) return fail_msg(what, " ended without a result (", describe_wait_status(status), ")");
    return parse_frame(frame, what);
  }
  down_w.reset();
  std::string frame = n == 1 ? std::string(1, first) + read_all(up_r.get()) : std::string();
  int status = wait_child(pid);
  if (frame.empty())
    return fail_msg(what, " ended before its user namespace existed (", describe_wait_status(status), ")");
  return parse_frame(frame, what);
}

}  // namespace husk::image
