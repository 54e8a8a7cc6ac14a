#include "runtime/subid.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/fd.h"

namespace husk::runtime {
namespace {

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

std::string range_text(uint64_t start, uint64_t count) { return cat(start, "-", start + count - 1); }

std::string login_name(uid_t uid) {
  struct passwd* pw = getpwuid(uid);
  return pw && pw->pw_name ? std::string(pw->pw_name) : std::string();
}

IdOwner owner_of(const char* file, uint32_t id) {
  IdOwner o;
  o.user = login_name(geteuid());
  o.id = id;
  o.file = file;
  o.ranges = parse_subid(read_file(file).value_or(""), o.user, id);
  return o;
}

}  // namespace

std::vector<SubIdRange> parse_subid(std::string_view text, const std::string& user, uint32_t id) {
  std::vector<SubIdRange> out;
  const std::string numeric = std::to_string(id);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos || line.starts_with('#')) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view name = line.substr(0, c1);
    if (!(name == numeric || (!user.empty() && name == user))) continue;
    SubIdRange r;
    if (!parse_u64(line.substr(c1 + 1, c2 - c1 - 1), r.start) || !parse_u64(line.substr(c2 + 1), r.count) ||
        r.count == 0)
      continue;
    out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const SubIdRange& a, const SubIdRange& b) { return a.start < b.start; });
  std::vector<SubIdRange> merged;
  for (const auto& r : out) {
    if (!merged.empty() && r.start <= merged.back().start + merged.back().count) {
      auto& m = merged.back();
      m.count = std::max(m.start + m.count, r.start + r.count) - m.start;
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

bool only_own_id(const std::vector<oci::IdMapping>& maps, uint32_t own) {
  return maps.size() == 1 && maps[0].size == 1 && maps[0].host_id == own;
}

Result<> check_mappings(const std::vector<oci::IdMapping>& maps, const IdOwner& owner, const std::string& field) {
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    if (m.size == 0) return fail_msg(field, "[", i, "]: size is 0");
    if (m.size == 1 && m.host_id == owner.id) continue;
    uint64_t lo = m.host_id, hi = lo + m.size;
    bool inside = false;
    for (const auto& r : owner.ranges) inside = inside || (lo >= r.start && hi <= r.start + r.count);
    if (inside) continue;
    std::string who = owner.user.empty() ? cat("id ", owner.id) : cat("user \"", owner.user, "\"");
    std::string has;
    for (const auto& r : owner.ranges) has += (has.empty() ? "" : ", ") + range_text(r.start, r.count);
    return fail_msg(field, "[", i, "]: host ids ", range_text(lo, m.size), " are not in ", owner.file, " for ", who,
                    " (", has.empty() ? std::string("it has no range there") : "it has " + has, "; only ", owner.id,
                    " itself may be mapped without one)");
  }
  return {};
}

IdOwner uid_owner() { return owner_of("/etc/subuid", static_cast<uint32_t>(geteuid())); }
IdOwner gid_owner() { return owner_of("/etc/subgid", static_cast<uint32_t>(getegid())); }

}  // namespace husk::runtime
