// Image reference parsing with docker's short-name rules (the grammar of
// distribution's reference package, written from its documentation).
#include "image/reference.h"

#include <vector>

namespace husk::image {

namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A path component: [a-z0-9]+ joined by one of "." "_" "__" or runs of "-".
bool valid_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !is_lower_alnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// [\w][\w.-]{0,127}
bool valid_tag(std::string_view t) {
  auto word = [](char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (t.empty() || t.size() > 128 || !word(t[0])) return false;
  for (char c : t)
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}

// A registry host: a DNS name or IPv4 address, or [IPv6], with an optional port.
bool valid_host(std::string_view h) {
  std::string_view name = h, port;
  if (!h.empty() && h[0] == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) return false;
    name = h.substr(1, close - 1);
    std::string_view rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    if (name.empty() || name.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) return false;
  } else {
    size_t colon = h.rfind(':');
    if (colon != std::string_view::npos) {
      name = h.substr(0, colon);
      port = h.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (name.empty()) return false;
    for (std::string_view label : {name}) {
      size_t start = 0;
      while (start <= label.size()) {
        size_t dot = label.find('.', start);
        std::string_view l = label.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (l.empty()) return false;
        for (char c : l)
          if (!(is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-')) return false;
        if (l.front() == '-' || l.back() == '-') return false;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
      }
    }
  }
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return false;
  return true;
}

}  // namespace

std::string Reference::str() const {
  std::string s = cat(registry, "/", repository);
  if (!tag.empty()) s += cat(":", tag);
  if (digest) s += cat("@", digest->str());
  return s;
}

std::string Reference::manifest_reference() const { return digest ? digest->str() : tag; }

std::string Reference::api_host() const { return registry == kDockerHub ? "registry-1.docker.io" : registry; }

Result<Reference> parse_reference(std::string_view text) {
  auto bad = [&](auto&&... why) { return fail_msg("image reference \"", text, "\": ", why...); };
  if (text.empty()) return bad("empty");
  if (text.size() > 4096) return bad("longer than 4096 characters");
  if (text.find("://") != std::string_view::npos)
    return bad("a reference has no URL scheme (drop \"", text.substr(0, text.find("://") + 3), "\")");

  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = TRY_CTX(parse_digest(rest.substr(at + 1), "digest"), "image reference \"", text, "\"");
    rest = rest.substr(0, at);
  }
  // The tag is after the last ':' of the last path component, so a port
  // ("host:5000/x") is not mistaken for one.
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!valid_tag(tag))
      return bad("tag \"", tag,
                 "\" is not valid (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("no repository name");

  // The first component is a registry host when it looks like one: it has a
  // '.' or a ':' (a port), or it is "localhost". Docker's rule, so
  // "library/alpine" stays on docker.io while "example.com/x" does not.
  std::string_view repo = rest;
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
        first.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
      if (!valid_host(first)) return bad("registry host \"", first, "\" is not a valid host[:port]");
      ref.registry = std::string(first);
      repo = rest.substr(slash + 1);
    }
  }
  if (ref.registry.empty() || ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io")
    ref.registry = kDockerHub;
  if (repo.empty()) return bad("no repository name after the registry host");

  size_t start = 0;
  while (true) {
    size_t end = repo.find('/', start);
    std::string_view comp = repo.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!valid_component(comp)) {
      if (comp.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos)
        return bad("repository name \"", repo, "\" must be lower case");
      return bad("repository name component \"", comp,
                 "\" is not valid (lower-case letters and digits, separated by '.', '_', '__' or '-')");
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  ref.repository = std::string(repo);
  if (ref.registry == kDockerHub && ref.repository.find('/') == std::string::npos)
    ref.repository = "library/" + ref.repository;
  if (ref.registry.size() + 1 + ref.repository.size() > 255)
    return bad("the repository name is longer than 255 characters");
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

}  // namespace husk::image
