// The names of a network's containers, as husk's network setup keeps them
// for husk-dns: a directory with one file per container, ID.rec, each line
// "ADDRESS NAME..." or "owner PID START" (the container's init), written
// with a temporary file and a rename, removed when the container leaves the
// network. A container whose init is gone (stopped, not yet deleted) is not
// answered.
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
  pid_t pid = 0;  // 0: no owner line, always answered
  uint64_t start = 0;
  Records records;
};

// The lines of one file (names lower-cased; bad lines skipped).
RecordFile parse_record_file(const std::string& text);
void parse_records(const std::string& text, Records& into);
// Every ID.rec file of dir; a file that vanishes meanwhile is skipped.
std::vector<RecordFile> load_record_files(const std::string& dir);
// The records of the files whose owner still runs.
Records live_records(const std::vector<RecordFile>& files, const std::function<bool(pid_t, uint64_t)>& alive);

}  // namespace husk::dns
