// podman's userns = "auto[:size=N,uidmapping=C:H:S,gidmapping=C:H:S]" for
// a rootful driver: each task gets a user namespace of its own, ids
// allocated from the subordinate ranges of the user `containers` in
// /etc/subuid and /etc/subgid, sized from the image when no size is asked
// (its files' and /etc/passwd's and /etc/group's largest id + 1, at least
// 1024 and at most 65536, podman's auto_userns_min_size/max_size).
//
// A task's ids are recorded in its task dir (kClaimFile) while its
// allocation is made, under one flock for all the driver's tasks; the
// record goes with the task dir, so a range is free again once its task is
// destroyed. Ranges mapped by any process on the host (other containers,
// podman's) are never handed out.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::driver {

inline constexpr const char* kUsernsClaimFile = "userns-auto";
inline constexpr uint32_t kAutoUsernsMinSize = 1024, kAutoUsernsMaxSize = 65536;

struct AutoUsernsRequest {
  uint32_t size = 0;  // 0: from the image
  std::vector<oci::IdMapping> uid_extra, gid_extra;  // uidmapping=/gidmapping=: forced container->host ids
};

// The options after "auto" ("" or ":size=...,..."); errors name `field`.
Result<AutoUsernsRequest> parse_userns_auto(const std::string& value, const std::string& field);

// The largest uid and gid (+1) the image's layers use: file owners and the
// ids /etc/passwd and /etc/group list.
Result<uint32_t> image_id_span(const std::vector<std::string>& layers);

// Host id intervals some user namespace maps now (uid, gid), from
// /proc/*/uid_map and gid_map, the initial namespace's excepted.
struct MappedRanges {
  std::vector<oci::IdMapping> uid, gid;  // container_id unused
};
MappedRanges host_mapped_ranges();

struct AutoUsernsHost {
  std::string subuid_file = "/etc/subuid", subgid_file = "/etc/subgid";
  std::function<MappedRanges()> mapped = host_mapped_ranges;
};

struct AutoUserns {
  std::vector<oci::IdMapping> uid, gid;
};

// Allocates the task's maps and records them in `task_dir`/kClaimFile.
// `tasks_dir` holds every task dir of the driver (their claims are taken);
// `span` is the size the image needs when the request names none.
Result<AutoUserns> allocate_userns_auto(const AutoUsernsRequest& req, uint32_t span, const AutoUsernsHost& host,
                                        const std::string& tasks_dir, const std::string& task_dir,
                                        const std::string& field);

}  // namespace husk::driver
