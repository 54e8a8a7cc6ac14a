// Registry credentials: docker config.json / containers auth.json parsing,
// podman's file lookup order and docker-credential helpers.
#include "image/auth.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/fd.h"
#include "oci/json_reader.h"

extern char** environ;

namespace husk::image {

using oci::J;
using oci::JsonDoc;

namespace {

std::string env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Docker's helpers store Docker Hub under its v1 URL; every other registry
// under its host.
std::string helper_server_url(std::string_view registry) {
  return registry == "docker.io" ? "https://index.docker.io/v1/" : std::string(registry);
}

Result<std::optional<Credentials>> creds_of_entry(const J& e, const std::string& where) {
  Credentials c;
  c.source = where;
  if (auto auth = TRY(oci::opt_string(e["auth"])); auth && !auth->empty()) {
    auto decoded = base64_decode(*auth);
    if (!decoded) return oci::bad(e["auth"], "not valid base64");
    size_t colon = decoded->find(':');
    if (colon == std::string::npos) return oci::bad(e["auth"], "does not decode to \"username:password\"");
    c.username = decoded->substr(0, colon);
    c.password = decoded->substr(colon + 1);
  }
  if (auto u = TRY(oci::opt_string(e["username"])); u && !u->empty()) c.username = *u;
  if (auto p = TRY(oci::opt_string(e["password"])); p && !p->empty()) c.password = *p;
  if (auto t = TRY(oci::opt_string(e["identitytoken"])); t) c.identity_token = *t;
  if (c.username.empty() && c.password.empty() && c.identity_token.empty()) return std::nullopt;  // a placeholder
  return c;
}

// Path-component prefixes of registry/repository, longest first:
// "quay.io/a/b", "quay.io/a", "quay.io".
std::vector<std::string> scopes_of(std::string_view registry, std::string_view repository) {
  std::vector<std::string> out;
  std::string full = cat(registry, "/", repository);
  while (true) {
    out.push_back(full);
    size_t slash = full.rfind('/');
    if (slash == std::string::npos || full.size() <= registry.size()) break;
    full.resize(slash);
    if (full.size() < registry.size()) break;
  }
  return out;
}

}  // namespace

AuthSources AuthSources::from_environment() {
  AuthSources s;
  s.registry_auth_file = env("REGISTRY_AUTH_FILE");
  s.xdg_runtime_dir = env("XDG_RUNTIME_DIR");
  s.xdg_config_home = env("XDG_CONFIG_HOME");
  s.home = env("HOME");
  s.is_root = geteuid() == 0;
  return s;
}

namespace {

// The user "<token>" (docker's credential helpers' way, and husk-image's
// --creds): the password is an identity token.
void take_identity_token(Credentials& c) {
  if (c.username != kIdentityTokenUser) return;
  c.identity_token = std::move(c.password);
  c.username.clear();
  c.password.clear();
}

}  // namespace

Result<Credentials> parse_creds(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return fail_msg("credentials \"", s.substr(0, colon), "...\": want USERNAME:PASSWORD");
  Credentials c;
  c.username = std::string(s.substr(0, colon));
  c.password = std::string(s.substr(colon + 1));
  take_identity_token(c);
  c.source = "--creds";
  return c;
}

std::vector<std::string> auth_files(const AuthSources& s) {
  if (!s.authfile.empty()) return {s.authfile};
  if (!s.registry_auth_file.empty()) return {s.registry_auth_file};
  std::vector<std::string> out;
  if (!s.xdg_runtime_dir.empty())
    out.push_back(s.xdg_runtime_dir + "/containers/auth.json");
  else if (s.is_root)
    out.push_back("/run/containers/0/auth.json");
  if (!s.xdg_config_home.empty())
    out.push_back(s.xdg_config_home + "/containers/auth.json");
  else if (!s.home.empty())
    out.push_back(s.home + "/.config/containers/auth.json");
  if (!s.home.empty()) out.push_back(s.home + "/.docker/config.json");
  return out;
}

std::string normalize_auth_key(std::string_view key) {
  for (std::string_view scheme : {"https://", "http://"})
    if (key.starts_with(scheme)) key.remove_prefix(scheme.size());
  while (key.ends_with('/')) key.remove_suffix(1);
  for (std::string_view suffix : {"/v1", "/v2"})
    if (key.ends_with(suffix)) key.remove_suffix(suffix.size());
  std::string k(key);
  for (std::string_view alias : {"index.docker.io", "registry-1.docker.io"})
    if (k == alias || k.starts_with(std::string(alias) + "/")) k = "docker.io" + k.substr(alias.size());
  return k;
}

Result<std::optional<Credentials>> credentials_from_config(std::string_view json, const std::string& path,
                                                           std::string_view registry, std::string_view repository,
                                                           std::chrono::milliseconds helper_timeout) {
  JsonDoc doc = TRY_CTX(JsonDoc::parse(json), "auth file ", path);
  J root = doc.root();
  TRYV_CTX(oci::need_object(root), "auth file ", path);
  std::vector<std::string> scopes = scopes_of(registry, repository);

  // credHelpers: a helper for this registry.
  if (J helpers = root["credHelpers"]; helpers.present()) {
    TRYV_CTX(oci::need_object(helpers), "auth file ", path);
    for (const std::string& key : helpers.keys()) {
      if (normalize_auth_key(key) != registry) continue;
      std::string name = TRY_CTX(oci::get_string(helpers[key.c_str()]), "auth file ", path);
      return TRY_CTX(credential_helper_get(name, helper_server_url(registry), helper_timeout), "auth file ", path,
                     ": credHelpers[\"", key, "\"]");
    }
  }
  // auths: the most specific key.
  if (J auths = root["auths"]; auths.present()) {
    TRYV_CTX(oci::need_object(auths), "auth file ", path);
    std::vector<std::string> keys = auths.keys();
    for (const std::string& scope : scopes) {
      for (const std::string& key : keys) {
        if (normalize_auth_key(key) != scope) continue;
        J entry = auths[key.c_str()];
        TRYV_CTX(oci::need_object(entry), "auth file ", path);
        auto c = TRY_CTX(creds_of_entry(entry, path), "auth file ", path);
        if (c) return c;
      }
    }
  }
  // credsStore: one helper for all.
  if (auto store = TRY_CTX(oci::opt_string(root["credsStore"]), "auth file ", path); store && !store->empty())
    return TRY_CTX(credential_helper_get(*store, helper_server_url(registry), helper_timeout), "auth file ", path,
                   ": credsStore");
  return std::nullopt;
}

Result<std::optional<Credentials>> find_credentials(const AuthSources& s, std::string_view registry,
                                                    std::string_view repository) {
  if (s.explicit_creds) return s.explicit_creds;
  bool named = !s.authfile.empty() || !s.registry_auth_file.empty();
  for (const std::string& path : auth_files(s)) {
    if (!named && !file_exists(path)) continue;
    std::string text = TRY_CTX(read_file(path), "auth file");
    auto c = TRY(credentials_from_config(text, path, registry, repository, s.helper_timeout));
    if (c) return c;
  }
  return std::nullopt;
}

Result<std::optional<Credentials>> credential_helper_get(const std::string& name, std::string_view server_url,
                                                         std::chrono::milliseconds timeout) {
  if (name.empty() || name.find('/') != std::string::npos)
    return fail_msg("credential helper name \"", name, "\" is not valid");
  std::string prog = "docker-credential-" + name;
  int in[2], out[2], err[2];
  // stdin is a socket, not a pipe: a helper that exits without reading it
  // must not SIGPIPE us (send() with MSG_NOSIGNAL; callers may not ignore
  // SIGPIPE).
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) return fail_sys("socketpair");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
  // Its own process group, so a timeout kills whatever the helper started.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  char* argv[] = {prog.data(), const_cast<char*>("get"), nullptr};
  pid_t pid;
  int rc = posix_spawnp(&pid, prog.c_str(), &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail_errno(rc, "run credential helper ", prog, " (is it on PATH?)");
  in_r.reset();
  out_w.reset();
  err_w.reset();

  // The server URL is far smaller than a socket buffer: this cannot block.
  (void)send(in_w.get(), server_url.data(), server_url.size(), MSG_NOSIGNAL);
  shutdown(in_w.get(), SHUT_WR);
  in_w.reset();

  std::string sout, serr;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (out_r || err_r) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      UniqueFd& fd = i == 0 ? out_r : err_r;
      char buf[4096];
      ssize_t got = read(fd.get(), buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && errno == EINTR) continue;
        fd.reset();
      } else if ((i == 0 ? sout : serr).size() < (1 << 20)) {
        (i == 0 ? sout : serr).append(buf, got);
      }
    }
  }
  if (timed_out) kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return fail_msg("credential helper ", prog, " did not answer within ", timeout.count(), "ms");
  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
  };
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // Docker's helpers say so on stdout when they hold nothing for the server.
    if (sout.find("credentials not found") != std::string::npos) return std::nullopt;
    std::string why = trim(serr.empty() ? sout : serr);
    if (WIFSIGNALED(status)) return fail_msg("credential helper ", prog, " was killed by signal ", WTERMSIG(status));
    return fail_msg("credential helper ", prog, " failed (exit ", WEXITSTATUS(status), ")", why.empty() ? "" : ": ",
                    why);
  }
  auto doc = JsonDoc::parse(sout);
  if (!doc) return fail_msg("credential helper ", prog, ": its answer is not JSON: ", doc.error().str());
  J root = doc->root();
  Credentials c;
  c.username = TRY_CTX(oci::get_string(root["Username"]), "credential helper ", prog);
  c.password = TRY_CTX(oci::get_string(root["Secret"]), "credential helper ", prog);
  take_identity_token(c);
  c.source = "credential helper " + prog;
  return c;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!in.empty() && (in.back() == '=' || in.back() == '\n')) in.remove_suffix(1);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character
  return out;
}

}  // namespace husk::image
