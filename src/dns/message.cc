#include "dns/message.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstring>

namespace husk::dns {
namespace {

uint16_t get16(const std::string& m, size_t at) {
  return static_cast<uint16_t>((static_cast<unsigned char>(m[at]) << 8) | static_cast<unsigned char>(m[at + 1]));
}
void put16(std::string& m, uint16_t v) {
  m.push_back(static_cast<char>(v >> 8));
  m.push_back(static_cast<char>(v & 0xff));
}
void put32(std::string& m, uint32_t v) {
  put16(m, static_cast<uint16_t>(v >> 16));
  put16(m, static_cast<uint16_t>(v & 0xffff));
}

constexpr uint16_t kQr = 0x8000, kAa = 0x0400, kRd = 0x0100, kRa = 0x0080;

std::string header(uint16_t id, uint16_t query_flags, uint8_t rcode, uint16_t qd, uint16_t an) {
  std::string h;
  put16(h, id);
  // Opcode and RD echo the query's.
  put16(h, static_cast<uint16_t>(kQr | (query_flags & 0x7800) | kAa | (query_flags & kRd) | kRa | (rcode & 0xf)));
  put16(h, qd);
  put16(h, an);
  put16(h, 0);
  put16(h, 0);
  return h;
}

// In class IN (or ANY): what the records of a local answer are in.
bool internet_class(const Question& q) { return q.klass == 1 || q.klass == kTypeANY; }

void put_name(std::string& m, const std::string& name) {
  size_t at = 0;
  while (at < name.size()) {
    size_t dot = name.find('.', at);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<char>(dot - at));
    m.append(name, at, dot - at);
    at = dot + 1;
  }
  m.push_back(0);
}

}  // namespace

std::optional<Address> parse_address(const std::string& text) {
  Address a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) return a;
  a.family = AF_INET6;
  if (inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) return a;
  return std::nullopt;
}

bool same_address(const Address& a, const Address& b) {
  return a.family == b.family && memcmp(a.bytes, b.bytes, a.family == AF_INET ? 4 : 16) == 0;
}

bool is_domain_name(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  size_t at = 0;
  for (;;) {
    size_t dot = name.find('.', at);
    size_t len = (dot == std::string::npos ? name.size() : dot) - at;
    if (len == 0 || len > 63) return false;
    if (dot == std::string::npos) return true;
    at = dot + 1;
  }
}

std::optional<Question> parse_question(const std::string& msg) {
  if (msg.size() < 12) return std::nullopt;
  Question q;
  q.id = get16(msg, 0);
  q.flags = get16(msg, 2);
  if ((q.flags & kQr) || ((q.flags >> 11) & 0xf) != 0) return std::nullopt;  // a reply, or not QUERY
  if (get16(msg, 4) != 1) return std::nullopt;
  size_t at = 12;
  for (;;) {
    if (at >= msg.size()) return std::nullopt;
    unsigned len = static_cast<unsigned char>(msg[at++]);
    if (len == 0) break;
    if (len > 63 || at + len > msg.size()) return std::nullopt;  // a pointer in a question: not from a resolver
    if (!q.name.empty()) q.name += '.';
    for (size_t i = 0; i < len; i++) q.name += static_cast<char>(tolower(static_cast<unsigned char>(msg[at + i])));
    at += len;
    if (q.name.size() > 253) return std::nullopt;
  }
  if (at + 4 > msg.size()) return std::nullopt;
  q.type = get16(msg, at);
  q.klass = get16(msg, at + 2);
  q.end = at + 4;
  return q;
}

Verdict decide(const Records& records, const std::string& name, std::vector<Address>& found) {
  found.clear();
  const std::string domain = kDomain;
  std::string base = name;
  bool in_domain = false;
  if (name == domain) return Verdict::Answer;  // the domain itself: no address
  if (name.size() > domain.size() + 1 && name.ends_with("." + domain)) {
    base = name.substr(0, name.size() - domain.size() - 1);
    in_domain = true;
  }
  if (auto it = records.find(base); it != records.end()) {
    found = it->second;
    return Verdict::Answer;
  }
  if (in_domain || (!name.empty() && name.find('.') == std::string::npos)) return Verdict::NxDomain;
  return Verdict::Forward;
}

std::string answer(const std::string& query, const Question& q, uint8_t rcode, const std::vector<Address>& addresses) {
  std::vector<const Address*> matching;
  if (internet_class(q))
    for (const auto& a : addresses)
      if ((q.type == kTypeA && a.family == AF_INET) || (q.type == kTypeAAAA && a.family == AF_INET6) ||
          q.type == kTypeANY)
        matching.push_back(&a);
  std::string out = header(q.id, q.flags, rcode, 1, static_cast<uint16_t>(matching.size()));
  out.append(query, 12, q.end - 12);
  for (const Address* a : matching) {
    put16(out, 0xc00c);  // the question's name
    put16(out, a->family == AF_INET ? kTypeA : kTypeAAAA);
    put16(out, 1);
    put32(out, kTtl);
    size_t len = a->family == AF_INET ? 4 : 16;
    put16(out, static_cast<uint16_t>(len));
    out.append(reinterpret_cast<const char*>(a->bytes), len);
  }
  return out;
}

std::string answer_ptr(const std::string& query, const Question& q, const std::string& target) {
  bool with_record = internet_class(q) && (q.type == kTypePTR || q.type == kTypeANY) && is_domain_name(target);
  std::string out = header(q.id, q.flags, kNoError, 1, with_record ? 1 : 0);
  out.append(query, 12, q.end - 12);
  if (!with_record) return out;
  std::string rdata;
  put_name(rdata, target);
  put16(out, 0xc00c);
  put16(out, kTypePTR);
  put16(out, 1);
  put32(out, kTtl);
  put16(out, static_cast<uint16_t>(rdata.size()));
  out += rdata;
  return out;
}

std::string error_reply(const std::string& query, uint8_t rcode) {
  uint16_t id = query.size() >= 2 ? get16(query, 0) : 0;
  uint16_t flags = query.size() >= 4 ? get16(query, 2) : 0;
  if (auto q = parse_question(query)) {
    std::string out = header(id, flags, rcode, 1, 0);
    out.append(query, 12, q->end - 12);
    return out;
  }
  return header(id, flags & 0x7900, rcode, 0, 0);
}

}  // namespace husk::dns
