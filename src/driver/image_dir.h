// Images as local directories: what `config.image` may name besides the
// store's transports (a root filesystem directory, or a bundle-like
// directory with rootfs/), and reading the image's /etc/passwd and
// /etc/group, across an image's layers, without letting a symlink in the
// image reach host files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk::driver {

// The rootfs directory for the absolute directory `image` (the value of
// `field`, e.g. "config.image"); plan() makes a relative one absolute.
// Registry references and other transports are errors that say which
// forms work (the store's transports are resolve_image()'s, image_resolve.h).
Result<std::string> resolve_image_dir(const std::string& image, const std::string& field);

// A file inside `rootfs`, resolved with the rootfs as "/" (openat2
// RESOLVE_IN_ROOT); nullopt when it does not exist. At most `max_bytes`.
Result<std::optional<std::string>> read_in_root(const std::string& rootfs, const std::string& path,
                                                size_t max_bytes = 4 << 20);

// A file as the overlay of `layers` (top first) shows it: the topmost layer
// that has it wins, a whiteout (0:0 character device) hides it, an opaque
// parent directory hides the layers below. Each layer is read with
// read_in_root (a symlink resolves inside that layer only, never outside).
Result<std::optional<std::string>> read_in_layers(const std::vector<std::string>& layers, const std::string& path,
                                                  size_t max_bytes = 4 << 20);

struct ResolvedUser {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home;  // "" when the user has no passwd entry
};

// A task `user` ("", "name", "uid", "name:group", "uid:gid") against the
// image's /etc/passwd and /etc/group, as podman does: a numeric uid without
// a passwd entry is fine (gid 0), a name must exist. Errors name `field`.
Result<ResolvedUser> resolve_user(const std::vector<std::string>& layers, const std::string& user,
                                  const std::string& field);

}  // namespace husk::driver
