// Image references as docker and podman read them ("alpine",
// "quay.io/org/app:1.2", "localhost:5000/x@sha256:..."): the registry host
// (docker.io when the first component is not a host), the repository
// (library/ added for docker.io's one-component names), a tag, a digest or
// both. parse_reference() errors name the part that is wrong.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "image/digest.h"

namespace husk::image {

inline constexpr const char* kDockerHub = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "quay.io", "127.0.0.1:5000"
  std::string repository;  // "library/alpine"
  std::string tag;         // empty when only a digest was given
  std::optional<Digest> digest;

  // registry/repository[:tag][@digest], the fully qualified name.
  std::string str() const;
  // What to ask the registry's manifests endpoint for: the digest when there
  // is one (it pins the content, the tag is then informational), else the tag.
  std::string manifest_reference() const;
  // The host to connect to: docker.io's API lives on registry-1.docker.io.
  std::string api_host() const;
};

// Parses `text`; without tag or digest the tag is "latest".
Result<Reference> parse_reference(std::string_view text);

}  // namespace husk::image
