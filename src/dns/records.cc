#include "dns/records.h"

#include <dirent.h>

#include <cctype>
#include <cstdio>
#include <memory>

#include "common/fd.h"
#include "common/text.h"

namespace husk::dns {

RecordFile parse_record_file(const std::string& text) {
  RecordFile f;
  parse_records(text, f.records);
  for (std::string_view line : lines_of(text))
    if (line.starts_with("owner ")) {
      unsigned long long start = 0;
      int pid = 0;
      if (sscanf(std::string(line).c_str(), "owner %d %llu", &pid, &start) == 2 && pid > 0) {
        f.pid = pid;
        f.start = start;
      }
    }
  return f;
}

void parse_records(const std::string& text, Records& into) {
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string> words;
    for (std::string_view w : split_views(line, ' '))
      if (!w.empty()) words.emplace_back(w);
    if (words.size() < 2 || words[0] == "owner") continue;
    auto addr = parse_address(words[0]);
    if (!addr) continue;
    for (size_t i = 1; i < words.size(); i++) {
      std::string name = words[i];
      for (auto& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      into[name].push_back(*addr);
    }
  }
}

std::vector<RecordFile> load_record_files(const std::string& dir) {
  std::vector<RecordFile> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return out;
  while (struct dirent* e = readdir(d.get())) {
    std::string name = e->d_name;
    if (name.size() <= 4 || !name.ends_with(kRecordSuffix)) continue;
    if (auto text = read_file(dir + "/" + name)) out.push_back(parse_record_file(*text));
  }
  return out;
}

Records live_records(const std::vector<RecordFile>& files, const std::function<bool(pid_t, uint64_t)>& alive) {
  Records out;
  for (const auto& f : files) {
    if (f.pid > 0 && !alive(f.pid, f.start)) continue;
    for (const auto& [name, addrs] : f.records) out[name].insert(out[name].end(), addrs.begin(), addrs.end());
  }
  return out;
}

}  // namespace husk::dns
