// The id ranges an unprivileged user owns (/etc/subuid, /etc/subgid, as
// shadow's newuidmap/newgidmap read them), and checking a spec's
// uidMappings/gidMappings against them before anything is cloned, so the
// error names the mapping and the missing range instead of a helper's exit
// status.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::runtime {

struct SubIdRange {
  uint64_t start = 0, count = 0;
};

// The ranges of `file`'s text ("name:start:count" lines, name or numeric id)
// that belong to user (name) or id, sorted with adjacent ones merged.
std::vector<SubIdRange> parse_subid(std::string_view text, const std::string& user, uint32_t id);

// Whose ranges: the caller's, looked up once.
struct IdOwner {
  std::string user;  // login name ("" when the uid has no passwd entry)
  uint32_t id = 0;   // the caller's own uid (or gid)
  std::vector<SubIdRange> ranges;
  std::string file;  // "/etc/subuid"
};

// What newuidmap allows: each mapping is the caller's own id (size 1) or
// lies inside their ranges. field is "linux.uidMappings".
Result<> check_mappings(const std::vector<oci::IdMapping>& maps, const IdOwner& owner, const std::string& field);

// True when the mappings are just the caller's own id: written without a
// setuid helper.
bool only_own_id(const std::vector<oci::IdMapping>& maps, uint32_t own);

// The caller's uid and gid owners from /etc/subuid and /etc/subgid.
IdOwner uid_owner();
IdOwner gid_owner();

}  // namespace husk::runtime
