// The names of a network's containers, as husk's network setup keeps them
// for husk-dns: a directory with one file per container, ID.rec, each line
// "ADDRESS NAME..." or "owner PID START" (the container's init), written
// with a temporary file and a rename, removed when the container leaves the
// network. A container whose init is gone (stopped, not yet deleted) is not
// answered. A container's own name, the one a reverse (PTR) lookup of its
// addresses gets, is its id (the file's name) when the id is one of its
// names; else (an id that is no host name, or too long for a DNS label)
// the first name listed that fits, its first alias.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dns/message.h"

namespace husk::dns {

inline constexpr const char* kRecordSuffix = ".rec";

struct RecordFile {
  std::string id;  // the container's, from the file's name ("" when parsed alone)
  pid_t pid = 0;   // 0: no owner line, always answered
  uint64_t start = 0;
  Records records;
  std::vector<std::string> names;  // in the order of the file, once each
  std::vector<Address> addresses;  // the container's, once each
  // The name its addresses' PTR records give, without the domain; "" when
  // none fits in a DNS message under dns.husk.
  std::string own_name() const;
};

// A container's address and its own name: what a PTR query of it gets.
struct AddressName {
  Address address;
  std::string name;
};

// The lines of one file (names lower-cased; bad lines skipped).
RecordFile parse_record_file(const std::string& text, const std::string& id = "");
void parse_records(const std::string& text, Records& into);
// Every ID.rec file of dir; a file that vanishes meanwhile is skipped.
std::vector<RecordFile> load_record_files(const std::string& dir);
// The records of the files whose owner still runs.
Records live_records(const std::vector<RecordFile>& files, const std::function<bool(pid_t, uint64_t)>& alive);
// The addresses and own names of the files whose owner still runs.
std::vector<AddressName> live_address_names(const std::vector<RecordFile>& files,
                                            const std::function<bool(pid_t, uint64_t)>& alive);

}  // namespace husk::dns
