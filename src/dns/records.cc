#include "dns/records.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "common/fd.h"
#include "common/text.h"

namespace husk::dns {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return out;
}

struct AddressLine {
  Address address;
  std::vector<std::string> names;  // lower case
};

// "ADDRESS NAME...": nullopt for an owner line or a bad one.
std::optional<AddressLine> parse_address_line(std::string_view line) {
  std::vector<std::string_view> words;
  for (std::string_view w : split_views(line, ' '))
    if (!w.empty()) words.push_back(w);
  if (words.size() < 2 || words[0] == "owner") return std::nullopt;
  auto addr = parse_address(std::string(words[0]));
  if (!addr) return std::nullopt;
  AddressLine l{*addr, {}};
  for (size_t i = 1; i < words.size(); i++) l.names.push_back(lower(words[i]));
  return l;
}

}  // namespace

RecordFile parse_record_file(const std::string& text, const std::string& id) {
  RecordFile f;
  f.id = id;
  parse_records(text, f.records);
  for (std::string_view line : lines_of(text)) {
    if (line.starts_with("owner ")) {
      unsigned long long start = 0;
      int pid = 0;
      if (sscanf(std::string(line).c_str(), "owner %d %llu", &pid, &start) == 2 && pid > 0) {
        f.pid = pid;
        f.start = start;
      }
      continue;
    }
    auto l = parse_address_line(line);
    if (!l) continue;
    if (std::none_of(f.addresses.begin(), f.addresses.end(),
                     [&](const Address& a) { return same_address(a, l->address); }))
      f.addresses.push_back(l->address);
    for (auto& name : l->names)
      if (std::find(f.names.begin(), f.names.end(), name) == f.names.end()) f.names.push_back(std::move(name));
  }
  return f;
}

void parse_records(const std::string& text, Records& into) {
  for (std::string_view line : lines_of(text))
    if (auto l = parse_address_line(line))
      for (const auto& name : l->names) into[name].push_back(l->address);
}

std::vector<RecordFile> load_record_files(const std::string& dir) {
  std::vector<RecordFile> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return out;
  while (struct dirent* e = readdir(d.get())) {
    std::string name = e->d_name;
    if (name.size() <= 4 || !name.ends_with(kRecordSuffix)) continue;
    if (auto text = read_file(dir + "/" + name))
      out.push_back(parse_record_file(*text, name.substr(0, name.size() - strlen(kRecordSuffix))));
  }
  return out;
}

std::string RecordFile::own_name() const {
  std::vector<std::string> candidates;
  if (std::string own = lower(id); records.count(own)) candidates.push_back(own);
  candidates.insert(candidates.end(), names.begin(), names.end());
  for (const auto& name : candidates)
    if (is_domain_name(name + "." + kDomain)) return name;
  return "";
}

Records live_records(const std::vector<RecordFile>& files, const std::function<bool(pid_t, uint64_t)>& alive) {
  Records out;
  for (const auto& f : files) {
    if (f.pid > 0 && !alive(f.pid, f.start)) continue;
    for (const auto& [name, addrs] : f.records) out[name].insert(out[name].end(), addrs.begin(), addrs.end());
  }
  return out;
}

std::vector<AddressName> live_address_names(const std::vector<RecordFile>& files,
                                            const std::function<bool(pid_t, uint64_t)>& alive) {
  std::vector<AddressName> out;
  for (const auto& f : files) {
    if (f.pid > 0 && !alive(f.pid, f.start)) continue;
    std::string name = f.own_name();
    if (name.empty()) continue;
    for (const auto& a : f.addresses) out.push_back({a, name});
  }
  return out;
}

}  // namespace husk::dns
