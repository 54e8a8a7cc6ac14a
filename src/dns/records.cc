#include "dns/records.h"

#include <dirent.h>

#include <cctype>
#include <memory>

#include "common/fd.h"
#include "common/text.h"

namespace husk::dns {

void parse_records(const std::string& text, Records& into) {
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string> words;
    for (std::string_view w : split_views(line, ' '))
      if (!w.empty()) words.emplace_back(w);
    if (words.size() < 2) continue;
    auto addr = parse_address(words[0]);
    if (!addr) continue;
    for (size_t i = 1; i < words.size(); i++) {
      std::string name = words[i];
      for (auto& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      into[name].push_back(*addr);
    }
  }
}

Records load_records(const std::string& dir) {
  Records out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return out;
  while (struct dirent* e = readdir(d.get())) {
    std::string name = e->d_name;
    if (name.size() <= 4 || !name.ends_with(kRecordSuffix)) continue;
    if (auto text = read_file(dir + "/" + name)) parse_records(*text, out);
  }
  return out;
}

}  // namespace husk::dns
