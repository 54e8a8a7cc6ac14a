#include "driver/userns_auto.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "common/fd.h"
#include "common/text.h"
#include "driver/bundle_files.h"
#include "runtime/subid.h"

namespace husk::driver {
namespace {

std::optional<uint32_t> number(std::string_view s) {
  uint32_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return n;
}

// CONTAINER:HOST:SIZE
Result<oci::IdMapping> parse_mapping(std::string_view v, const std::string& what) {
  auto parts = split(v, ':');
  if (parts.size() == 3) {
    auto c = number(parts[0]), h = number(parts[1]), n = number(parts[2]);
    if (c && h && n && *n > 0 && uint64_t{*c} + *n <= 0xFFFFFFFFull && uint64_t{*h} + *n <= 0xFFFFFFFFull)
      return oci::IdMapping{*c, *h, *n};
  }
  return fail_msg(what, ": \"", v, "\" is not CONTAINER_ID:HOST_ID:SIZE");
}

uint64_t end_of(const oci::IdMapping& m) { return uint64_t{m.host_id} + m.size; }

// Adds the ids of "name:x:ID:..." lines (passwd: uid and gid; group: gid).
void passwd_ids(const std::string& text, bool group, uint32_t& span) {
  for (std::string_view line : lines_of(text)) {
    auto f = split(line, ':');
    for (size_t i : group ? std::vector<size_t>{2} : std::vector<size_t>{2, 3})
      if (i < f.size())
        if (auto id = number(f[i]); id && *id < 0xFFFFFFFEu) span = std::max(span, *id + 1);
  }
}

thread_local uint32_t walk_span = 0;
int walk_one(const char*, const struct stat* st, int, struct FTW*) {
  walk_span = std::max({walk_span, st->st_uid + 1, st->st_gid + 1});
  return 0;
}

// Container ids [0, size) not covered by `extra`, mapped in order onto
// host ids from `base`; then the extra mappings.
std::vector<oci::IdMapping> fill(uint32_t size, const std::vector<oci::IdMapping>& extra, uint32_t base) {
  std::vector<oci::IdMapping> out;
  std::vector<oci::IdMapping> sorted = extra;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.container_id < b.container_id; });
  uint64_t next = 0;
  auto gap = [&](uint64_t to) {
    if (to <= next) return;
    out.push_back(oci::IdMapping{static_cast<uint32_t>(next), base, static_cast<uint32_t>(to - next)});
    base += static_cast<uint32_t>(to - next);
  };
  for (const auto& e : sorted) {
    gap(std::min<uint64_t>(e.container_id, size));
    next = std::max<uint64_t>(next, uint64_t{e.container_id} + e.size);
  }
  gap(size);
  out.insert(out.end(), sorted.begin(), sorted.end());
  return out;
}

uint32_t uncovered(uint32_t size, const std::vector<oci::IdMapping>& extra) {
  uint64_t n = 0;
  for (const auto& m : fill(size, extra, 0)) n += m.size;
  for (const auto& m : extra) n -= m.size;
  return static_cast<uint32_t>(n);
}

// The first `need` consecutive ids of `ranges` none of `busy` holds.
std::optional<uint32_t> first_fit(const std::vector<runtime::SubIdRange>& ranges, std::vector<oci::IdMapping> busy,
                                  uint32_t need) {
  std::sort(busy.begin(), busy.end(), [](const auto& a, const auto& b) { return a.host_id < b.host_id; });
  for (const auto& r : ranges) {
    uint64_t at = r.start, end = std::min<uint64_t>(r.start + r.count, 0xFFFFFFFFull);
    for (const auto& b : busy) {
      if (at + need > end) break;
      if (end_of(b) <= at) continue;
      if (b.host_id >= at + need) break;
      at = end_of(b);  // overlaps: try after it
    }
    if (at + need <= end) return static_cast<uint32_t>(at);
  }
  return std::nullopt;
}

void read_claim(const std::string& path, MappedRanges& into) {
  const std::string text = read_host_file(path);
  for (std::string_view line : lines_of(text)) {
    auto f = split(line, ' ');
    if (f.size() != 3) continue;
    auto h = number(f[1]), n = number(f[2]);
    if (!h || !n) continue;
    (f[0] == "uid" ? into.uid : into.gid).push_back(oci::IdMapping{0, *h, *n});
  }
}

std::string range_text(const std::vector<oci::IdMapping>& maps) {
  std::string s;
  for (const auto& m : maps) s += cat(s.empty() ? "" : ", ", m.container_id, "->", m.host_id, "+", m.size);
  return s;
}

}  // namespace

Result<AutoUsernsRequest> parse_userns_auto(const std::string& value, const std::string& field) {
  AutoUsernsRequest r;
  if (value.empty()) return r;
  const std::string at = cat(field, ": \"auto:", value, "\"");
  for (const auto& opt : split(value, ',')) {
    size_t eq = opt.find('=');
    std::string key = opt.substr(0, eq), v = eq == std::string::npos ? "" : opt.substr(eq + 1);
    if (key == "size") {
      auto n = number(v);
      if (!n || *n == 0) return fail_msg(at, ": size \"", v, "\" is not a positive number of ids");
      r.size = *n;
    } else if (key == "uidmapping") {
      r.uid_extra.push_back(TRY(parse_mapping(v, at + ": uidmapping")));
    } else if (key == "gidmapping") {
      r.gid_extra.push_back(TRY(parse_mapping(v, at + ": gidmapping")));
    } else {
      return fail_msg(at, ": unknown option \"", key, "\" (size, uidmapping, gidmapping)");
    }
  }
  for (const auto* extra : {&r.uid_extra, &r.gid_extra})
    for (size_t i = 0; i < extra->size(); ++i)
      for (size_t j = 0; j < i; ++j) {
        const auto &a = (*extra)[i], &b = (*extra)[j];
        if (uint64_t{a.container_id} < uint64_t{b.container_id} + b.size &&
            uint64_t{b.container_id} < uint64_t{a.container_id} + a.size)
          return fail_msg(at, ": ", extra == &r.uid_extra ? "uidmapping" : "gidmapping", "s ", b.container_id, ":",
                          b.host_id, ":", b.size, " and ", a.container_id, ":", a.host_id, ":", a.size,
                          " map the same container ids");
      }
  return r;
}

Result<uint32_t> image_id_span(const std::vector<std::string>& layers) {
  uint32_t span = 1;
  for (const auto& layer : layers) {
    walk_span = 0;
    if (nftw(layer.c_str(), walk_one, 32, FTW_PHYS | FTW_MOUNT) != 0) return fail_sys("read the ids of ", layer);
    span = std::max(span, walk_span);
    passwd_ids(read_host_file(layer + "/etc/passwd"), false, span);
    passwd_ids(read_host_file(layer + "/etc/group"), true, span);
  }
  return span;
}

MappedRanges host_mapped_ranges() {
  MappedRanges out;
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    for (bool uid : {true, false}) {
      std::string text = read_host_file(cat("/proc/", e->d_name, uid ? "/uid_map" : "/gid_map"));
      for (std::string_view line : lines_of(text)) {
        unsigned long long inside, outside, n;
        if (sscanf(std::string(line).c_str(), "%llu %llu %llu", &inside, &outside, &n) != 3) continue;
        if (inside == 0 && outside == 0 && n == 4294967295ull) continue;  // the initial namespace
        if (outside > 0xFFFFFFFFull || n > 0xFFFFFFFFull) continue;
        (uid ? out.uid : out.gid).push_back(oci::IdMapping{0, static_cast<uint32_t>(outside), static_cast<uint32_t>(n)});
      }
    }
  }
  closedir(proc);
  return out;
}

Result<AutoUserns> allocate_userns_auto(const AutoUsernsRequest& req, uint32_t span, const AutoUsernsHost& host,
                                        const std::string& tasks_dir, const std::string& task_dir,
                                        const std::string& field) {
  const std::string at = cat(field, ": \"auto\"");
  uint32_t size = req.size;
  if (size == 0) {
    size = std::max(span, kAutoUsernsMinSize);
    for (const auto* extra : {&req.uid_extra, &req.gid_extra})
      for (const auto& m : *extra) size = std::max<uint32_t>(size, m.container_id + m.size);
    if (size > kAutoUsernsMaxSize)
      return fail_msg(at, ": the image uses ids up to ", size - 1, ", more than a user namespace of at most ",
                      kAutoUsernsMaxSize, " ids holds (set auto:size=N)");
  }

  // The user `containers` (by name, or by its uid if it has one).
  struct passwd* pw = getpwnam("containers");
  const uint32_t cid = pw ? pw->pw_uid : 0xFFFFFFFFu;
  auto ranges = [&](const std::string& file) { return runtime::parse_subid(read_host_file(file), "containers", cid); };
  std::vector<runtime::SubIdRange> uids = ranges(host.subuid_file), gids = ranges(host.subgid_file);
  for (auto [r, file] : {std::pair{&uids, &host.subuid_file}, std::pair{&gids, &host.subgid_file}})
    if (r->empty())
      return fail_msg(at, ": ", *file, " has no range for the user \"containers\" (podman's auto allocates from "
                      "it, e.g. containers:2147483647:2147483648)");

  std::string lock_path = tasks_dir.substr(0, tasks_dir.rfind('/')) + "/userns-auto.lock";
  int lfd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lfd < 0) return fail_sys(at, ": open ", lock_path);
  UniqueFd lock(lfd);
  if (flock(lock.get(), LOCK_EX) < 0) return fail_sys(at, ": lock ", lock_path);

  MappedRanges busy = host.mapped();
  if (DIR* d = opendir(tasks_dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') read_claim(cat(tasks_dir, "/", e->d_name, "/", kUsernsClaimFile), busy);
    closedir(d);
  }
  AutoUserns out;
  for (bool uid : {true, false}) {
    const auto& extra = uid ? req.uid_extra : req.gid_extra;
    uint32_t need = uncovered(size, extra);
    uint32_t base = 0;
    if (need > 0) {
      auto b = first_fit(uid ? uids : gids, uid ? busy.uid : busy.gid, need);
      if (!b)
        return fail_msg(at, ": no ", need, " free ", uid ? "uids" : "gids", " left in the ranges of \"containers\" in ",
                        uid ? host.subuid_file : host.subgid_file, " (the other tasks' and user namespaces' hold the rest)");
      base = *b;
    }
    (uid ? out.uid : out.gid) = fill(size, extra, base);
  }
  std::string claim;
  for (const auto& m : out.uid) claim += cat("uid ", m.host_id, " ", m.size, "\n");
  for (const auto& m : out.gid) claim += cat("gid ", m.host_id, " ", m.size, "\n");
  TRYV_CTX(write_file(task_dir + "/" + kUsernsClaimFile, claim), at, ": record the task's ids (",
           range_text(out.uid), ")");
  return out;
}

}  // namespace husk::driver
