// The names of a network's containers, as husk's network setup keeps them
// for husk-dns: a directory with one file per container, ID.rec, each line
// "ADDRESS NAME..." (written with a temporary file and a rename, removed
// when the container leaves the network).
#pragma once

#include <string>

#include "dns/message.h"

namespace husk::dns {

inline constexpr const char* kRecordSuffix = ".rec";

// The lines of one file into records (names lower-cased; bad lines skipped).
void parse_records(const std::string& text, Records& into);
// Every ID.rec file of dir; a file that vanishes meanwhile is skipped.
Records load_records(const std::string& dir);

}  // namespace husk::dns
