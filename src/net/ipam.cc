#include "net/ipam.h"
#include "common/text.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>

namespace husk::net {

uint32_t Subnet::first() const {
  uint32_t v;
  memcpy(&v, network.bytes, 4);
  return ntohl(v);
}

IpAddress Subnet::at(uint32_t offset) const {
  IpAddress a;
  a.family = AF_INET;
  uint32_t v = htonl(first() + offset);
  memcpy(a.bytes, &v, 4);
  return a;
}

bool Subnet::contains(const IpAddress& a) const {
  if (a.family != AF_INET) return false;
  uint32_t v;
  memcpy(&v, a.bytes, 4);
  v = ntohl(v);
  return v >= first() && v - first() < size();
}

std::string Subnet::str() const { return cat(network.str(), "/", prefix); }

Result<Subnet> parse_subnet(const std::string& cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) return fail_errno(EINVAL, "subnet \"", cidr, "\": expected ADDRESS/PREFIX");
  Subnet s;
  auto ip = parse_ip(cidr.substr(0, slash));
  if (!ip || ip->family != AF_INET) return fail_errno(EINVAL, "subnet \"", cidr, "\": not an IPv4 network");
  char* end = nullptr;
  long p = strtol(cidr.c_str() + slash + 1, &end, 10);
  if (*end || p < 8 || p > 30) return fail_errno(EINVAL, "subnet \"", cidr, "\": prefix must be 8..30");
  s.prefix = static_cast<int>(p);
  uint32_t v;
  memcpy(&v, ip->bytes, 4);
  uint32_t mask = 0xffffffffu << (32 - s.prefix);
  if ((ntohl(v) & ~mask) != 0) return fail_errno(EINVAL, "subnet \"", cidr, "\": host bits are set");
  s.network = *ip;
  return s;
}

IpAddress Subnet6::at(uint32_t offset) const {
  IpAddress a = prefix;
  uint32_t v = htonl(offset);
  memcpy(a.bytes + 12, &v, 4);
  return a;
}

std::string Subnet6::str() const { return cat(prefix.str(), "/", length); }

Result<Subnet6> parse_subnet6(const std::string& cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) return fail_errno(EINVAL, "subnet \"", cidr, "\": expected PREFIX/LENGTH");
  auto ip = parse_ip(cidr.substr(0, slash));
  if (!ip || ip->family != AF_INET6) return fail_errno(EINVAL, "subnet \"", cidr, "\": not an IPv6 prefix");
  char* end = nullptr;
  long len = strtol(cidr.c_str() + slash + 1, &end, 10);
  if (*end || len < 64 || len > 120) return fail_errno(EINVAL, "subnet \"", cidr, "\": length must be 64..120");
  for (int bit = static_cast<int>(len); bit < 128; ++bit)
    if (ip->bytes[bit / 8] & (0x80 >> (bit % 8))) return fail_errno(EINVAL, "subnet \"", cidr, "\": host bits are set");
  Subnet6 s;
  s.prefix = *ip;
  s.length = static_cast<int>(len);
  return s;
}

std::string format_lease(const Lease& l) {
  return cat(l.address.str(), " ", l.id, " ", l.pid, " ", l.start, " ", l.ports.empty() ? "-" : l.ports, "\n");
}

Result<Lease> parse_lease(const std::string& line) {
  std::vector<std::string> f;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t sp = line.find(' ', pos);
    if (sp == std::string::npos) sp = line.size();
    if (sp > pos) f.push_back(line.substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (f.size() != 5) return fail_errno(EINVAL, "bad lease line \"", line, "\"");
  Lease l;
  l.address = TRY(parse_ip(f[0]));
  l.id = f[1];
  l.pid = static_cast<pid_t>(atoi(f[2].c_str()));
  l.start = strtoull(f[3].c_str(), nullptr, 10);
  l.ports = f[4];
  return l;
}

Result<Ipam> Ipam::lock(const std::string& root, AliveFn alive) {
  if (::mkdir(root.c_str(), 0700) < 0 && errno != EEXIST) return fail_sys("mkdir ", root);
  std::string path = root + "/lock";
  UniqueFd fd = TRY(open_fd(path, O_RDWR | O_CREAT, 0600));
  while (flock(fd.get(), LOCK_EX) < 0)
    if (errno != EINTR) return fail_sys("lock ", path);
  return Ipam(root, std::move(fd), std::move(alive));
}

Result<Subnet> Ipam::subnet(const std::string& name, const std::optional<std::string>& wanted) {
  std::string dir = root_ + "/" + name;
  std::string file = dir + "/subnet";
  auto text = read_file(file);
  if (text) {
    std::string s = rtrim(*text);
    Subnet sub = TRY_CTX(parse_subnet(s), file);
    if (wanted && *wanted != sub.str())
      return fail_errno(EEXIST, "network \"", name, "\" already has subnet ", sub.str(), ", not ", *wanted);
    return sub;
  }
  if (text.error().code() != ENOENT) return fail(std::move(text.error()));
  // Subnets of the other networks: a new one must not overlap them.
  std::vector<Subnet> taken;
  if (DIR* d = opendir(root_.c_str())) {
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] == '.' || name == e->d_name) continue;
      auto t = read_file(root_ + "/" + e->d_name + "/subnet");
      if (!t) continue;
      std::string s = *t;
      while (!s.empty() && s.back() == '\n') s.pop_back();
      if (auto sub = parse_subnet(s); sub) taken.push_back(*sub);
    }
    closedir(d);
  }
  auto overlaps = [&](const Subnet& s) {
    for (const auto& t : taken)
      if (t.contains(s.network) || s.contains(t.network)) return true;
    return false;
  };
  Subnet chosen;
  if (wanted) {
    chosen = TRY(parse_subnet(*wanted));
    if (overlaps(chosen)) return fail_errno(EEXIST, "subnet ", *wanted, " overlaps another husk network's");
  } else {
    bool found = false;
    for (int n = name == "husk0" ? 0 : 1; n < 256 && !found; ++n) {
      chosen = TRY(parse_subnet(cat("10.89.", n, ".0/24")));
      found = !overlaps(chosen);
    }
    if (!found) return fail_errno(ENOSPC, "no free 10.89.N.0/24 subnet for network \"", name, "\"");
  }
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return fail_sys("mkdir ", dir);
  TRYV(write_file_atomic(file, chosen.str() + "\n", 0600));
  return chosen;
}

Result<std::optional<Subnet6>> Ipam::subnet6(const std::string& name, const std::optional<std::string>& wanted) {
  std::string file = root_ + "/" + name + "/subnet6";
  auto text = read_file(file);
  if (text) {
    std::string s = rtrim(*text);
    Subnet6 sub = TRY_CTX(parse_subnet6(s), file);
    if (wanted && *wanted != sub.str())
      return fail_errno(EEXIST, "network \"", name, "\" already has IPv6 prefix ", sub.str(), ", not ", *wanted);
    return std::optional<Subnet6>(sub);
  }
  if (text.error().code() != ENOENT) return fail(std::move(text.error()));
  if (!wanted) return std::optional<Subnet6>();
  Subnet6 sub = TRY(parse_subnet6(*wanted));
  TRYV(write_file_atomic(file, sub.str() + "\n", 0600));
  return std::optional<Subnet6>(sub);
}

Result<std::vector<Lease>> Ipam::read_leases(const std::string& name) {
  std::string file = root_ + "/" + name + "/leases";
  auto text = read_file(file);
  std::vector<Lease> out;
  if (!text) {
    if (text.error().code() == ENOENT) return out;
    return fail(std::move(text.error()));
  }
  for (std::string_view line : lines_of(*text)) {
    if (line.empty()) continue;
    out.push_back(TRY_CTX(parse_lease(std::string(line)), file));
  }
  return out;
}

Result<> Ipam::write_leases(const std::string& name, const std::vector<Lease>& leases) {
  std::string text;
  for (const auto& l : leases) text += format_lease(l);
  return write_file_atomic(root_ + "/" + name + "/leases", text, 0600);
}

Result<std::vector<Lease>> Ipam::live_leases(const std::string& name) {
  std::vector<Lease> out;
  for (auto& l : TRY(read_leases(name)))
    if (alive_(l.pid, l.start)) out.push_back(std::move(l));
  return out;
}

Result<std::vector<Lease>> Ipam::all_leases() {
  std::vector<Lease> out;
  DIR* d = opendir(root_.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d))
    if (e->d_name[0] != '.' && strcmp(e->d_name, "lock") != 0) names.emplace_back(e->d_name);
  closedir(d);
  for (const auto& n : names)
    for (auto& l : TRY(read_leases(n)))
      if (alive_(l.pid, l.start)) out.push_back(std::move(l));
  return out;
}

Result<IpAddress> Ipam::allocate(const std::string& name, const Subnet& subnet, const Lease& tmpl,
                                 std::vector<Lease>& reclaimed, std::optional<uint32_t> wanted) {
  std::vector<Lease> leases = TRY(read_leases(name));
  std::vector<Lease> live;
  for (auto& l : leases) {
    if (l.id == tmpl.id)
      return fail_errno(EEXIST, "container \"", tmpl.id, "\" already has address ", l.address.str(), " on network \"",
                        name, "\"");
    if (alive_(l.pid, l.start))
      live.push_back(std::move(l));
    else
      reclaimed.push_back(std::move(l));
  }
  std::map<uint32_t, const Lease*> used;
  for (const auto& l : live) {
    uint32_t v;
    memcpy(&v, l.address.bytes, 4);
    used[ntohl(v) - subnet.first()] = &l;
  }
  if (wanted) {
    IpAddress a = subnet.at(*wanted);
    if (*wanted < 2 || *wanted + 1 >= subnet.size())
      return fail_errno(EINVAL, "address ", a.str(), " is ",
                        *wanted == 0 ? "the network address" : *wanted == 1 ? "the gateway (the bridge's address)"
                                                                             : "not a host address",
                        " of network \"", name, "\" (", subnet.str(), ")");
    if (auto it = used.find(*wanted); it != used.end()) {
      if (!reclaimed.empty()) TRYV(write_leases(name, live));
      return fail_errno(EADDRINUSE, "address ", a.str(), " on network \"", name, "\" is held by container \"",
                        it->second->id, "\"");
    }
    Lease l = tmpl;
    l.address = a;
    live.push_back(l);
    TRYV_CTX(write_leases(name, live), "record the lease of ", l.address.str());
    return l.address;
  }
  // .0 is the network, .1 the bridge (gateway), the last the broadcast.
  for (uint32_t off = 2; off + 1 < subnet.size(); ++off) {
    if (used.count(off)) continue;
    Lease l = tmpl;
    l.address = subnet.at(off);
    live.push_back(l);
    TRYV_CTX(write_leases(name, live), "record the lease of ", l.address.str());
    return l.address;
  }
  if (!reclaimed.empty()) TRYV(write_leases(name, live));
  return fail_errno(ENOSPC, "network \"", name, "\" (", subnet.str(), ") has no free address: ", live.size(),
                    " containers hold them all");
}

Result<size_t> Ipam::release(const std::string& name, const std::string& id) {
  std::vector<Lease> leases = TRY(read_leases(name));
  std::vector<Lease> keep;
  for (auto& l : leases)
    if (l.id != id) keep.push_back(std::move(l));
  if (keep.size() != leases.size()) TRYV(write_leases(name, keep));
  return keep.size();
}

void Ipam::forget(const std::string& name) {
  std::string dir = root_ + "/" + name;
  ::unlink((dir + "/leases").c_str());
  ::unlink((dir + "/subnet").c_str());
  ::unlink((dir + "/subnet6").c_str());
  ::rmdir(dir.c_str());
}

}  // namespace husk::net
