// Credentials for a registry, found the way podman and docker find them.
//
// Precedence, first match wins:
//   1. explicit credentials (husk-image --creds, a task's `auth { username
//      password }`): nothing else is read;
//   2. one auth file, when one is named (husk-image --authfile, the plugin's
//      `auth.config`), else $REGISTRY_AUTH_FILE when set: only that file;
//   3. otherwise podman's defaults, in order: $XDG_RUNTIME_DIR/containers/
//      auth.json (for root without XDG_RUNTIME_DIR: /run/containers/0/
//      auth.json), $XDG_CONFIG_HOME/containers/auth.json (default
//      ~/.config/containers/auth.json), ~/.docker/config.json; the first
//      file with an entry for the registry answers.
// Within one file (docker's config.json format): `credHelpers[registry]`
// (a docker-credential-NAME program), then an `auths` entry (base64 `auth`
// "user:password", or `username`/`password`, or `identitytoken`; the most
// specific key wins, "quay.io/org" over "quay.io"), then `credsStore` (one
// helper for every registry). Keys may be written with a scheme and
// docker's "/v1/" suffix ("https://index.docker.io/v1/"); docker.io,
// index.docker.io and registry-1.docker.io are one registry.
// No credentials is not an error: the pull goes anonymous.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace husk::image {

// The user name docker's credential helpers give with an identity token.
inline constexpr std::string_view kIdentityTokenUser = "<token>";

struct Credentials {
  std::string username;
  std::string password;
  // An OAuth2 refresh token (config.json `identitytoken`, or a helper's
  // answer with Username "<token>"); used for the token exchange.
  std::string identity_token;
  std::string source;  // where they came from, for error messages
};

struct AuthSources {
  std::optional<Credentials> explicit_creds;
  std::string authfile;  // named file; empty: $REGISTRY_AUTH_FILE or the defaults
  // Environment, filled by from_environment(); tests set them directly.
  std::string registry_auth_file, xdg_runtime_dir, xdg_config_home, home;
  bool is_root = false;
  std::chrono::milliseconds helper_timeout{10000};

  static AuthSources from_environment();
};

// "user:password" (husk-image --creds); the password may contain ':'. The user
// "<token>" (kIdentityTokenUser) makes the rest an identity token.
Result<Credentials> parse_creds(std::string_view user_colon_password);

// The files consulted for `sources`, in order (for messages and tests).
std::vector<std::string> auth_files(const AuthSources& sources);

// Credentials for `registry` (as in Reference::registry) and `repository`.
Result<std::optional<Credentials>> find_credentials(const AuthSources& sources, std::string_view registry,
                                                    std::string_view repository);

// One file's answer (see the precedence above); nullopt when it has none.
// `path` is used in messages only.
Result<std::optional<Credentials>> credentials_from_config(std::string_view json, const std::string& path,
                                                           std::string_view registry, std::string_view repository,
                                                           std::chrono::milliseconds helper_timeout);

// Runs `docker-credential-NAME get` (found on PATH) with the server URL on
// stdin; nullopt when the helper says it has none.
Result<std::optional<Credentials>> credential_helper_get(const std::string& name, std::string_view server_url,
                                                         std::chrono::milliseconds timeout);

// The key a registry is stored under in an auths map, without scheme or
// "/v1/": "https://index.docker.io/v1/" -> "docker.io".
std::string normalize_auth_key(std::string_view key);

std::optional<std::string> base64_decode(std::string_view in);

}  // namespace husk::image
