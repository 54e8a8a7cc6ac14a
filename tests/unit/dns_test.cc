// husk-dns's pure pieces: the question of a query, the local answers, what
// is answered, forwarded or refused, and the record files.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include "dns/message.h"
#include "dns/records.h"
#include "dns/reverse.h"

using namespace husk::dns;

namespace {

std::string query(const std::string& name, uint16_t type, uint16_t id = 0x1234) {
  std::string m = {static_cast<char>(id >> 8), static_cast<char>(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t at = 0;
  while (at <= name.size()) {
    size_t dot = name.find('.', at);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<char>(dot - at));
    m += name.substr(at, dot - at);
    at = dot + 1;
  }
  m.push_back(0);
  m += {static_cast<char>(type >> 8), static_cast<char>(type & 0xff), 0, 1};
  return m;
}

Address v4(const char* s) { return *parse_address(s); }

// The ip6.arpa name of an IPv6 address, least significant nibble first.
std::string ip6_arpa(const char* text) {
  Address a = *parse_address(text);
  std::string name;
  for (int i = 15; i >= 0; i--)
    for (int nibble : {a.bytes[i] & 0xf, a.bytes[i] >> 4}) name += std::string(1, "0123456789abcdef"[nibble]) + ".";
  return name + "ip6.arpa";
}

uint16_t u16(const std::string& m, size_t at) {
  return static_cast<uint16_t>((static_cast<unsigned char>(m[at]) << 8) | static_cast<unsigned char>(m[at + 1]));
}

}  // namespace

TEST(DnsMessage, ParsesTheQuestionInLowerCase) {
  auto q = parse_question(query("DB.dns.HUSK", kTypeA));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->name, "db.dns.husk");
  EXPECT_EQ(q->type, kTypeA);
  EXPECT_EQ(q->id, 0x1234);
  EXPECT_EQ(q->end, query("DB.dns.HUSK", kTypeA).size());
}

TEST(DnsMessage, RefusesWhatIsNotOneQuestion) {
  EXPECT_FALSE(parse_question("short"));
  std::string two = query("db", kTypeA);
  two[5] = 2;
  EXPECT_FALSE(parse_question(two));
  std::string reply = query("db", kTypeA);
  reply[2] = static_cast<char>(0x81);
  EXPECT_FALSE(parse_question(reply));
  std::string truncated = query("db", kTypeA);
  truncated.resize(truncated.size() - 3);
  EXPECT_FALSE(parse_question(truncated));
}

TEST(DnsMessage, AnswersTheAddressesOfTheType) {
  std::string qa = query("db", kTypeA);
  auto q = parse_question(qa);
  ASSERT_TRUE(q);
  std::vector<Address> addrs = {v4("10.89.1.5"), *parse_address("fd00::5")};
  std::string r = answer(qa, *q, kNoError, addrs);
  EXPECT_EQ(u16(r, 0), 0x1234);
  EXPECT_EQ(u16(r, 2) & 0x8000, 0x8000);  // a reply
  EXPECT_EQ(u16(r, 2) & 0xf, kNoError);
  EXPECT_EQ(u16(r, 6), 1);  // one answer: the A record
  std::string rr = r.substr(qa.size());
  EXPECT_EQ(u16(rr, 0), 0xc00c);
  EXPECT_EQ(u16(rr, 2), kTypeA);
  EXPECT_EQ(u16(rr, 10), 4);
  EXPECT_EQ(rr.substr(12, 4), std::string("\x0a\x59\x01\x05", 4));
  std::string q6 = query("db", kTypeAAAA);
  std::string r6 = answer(q6, *parse_question(q6), kNoError, addrs);
  EXPECT_EQ(u16(r6, 6), 1);
  EXPECT_EQ(u16(r6.substr(q6.size()), 10), 16);
  std::string nx = answer(qa, *q, kNxDomain, {});
  EXPECT_EQ(u16(nx, 2) & 0xf, kNxDomain);
  EXPECT_EQ(u16(nx, 6), 0);
}

TEST(DnsMessage, ErrorReplyEchoesIdAndQuestion) {
  std::string qa = query("example.com", kTypeA, 0xbeef);
  std::string r = error_reply(qa, kServFail);
  EXPECT_EQ(u16(r, 0), 0xbeef);
  EXPECT_EQ(u16(r, 2) & 0xf, kServFail);
  EXPECT_EQ(r.size(), qa.size());
}

TEST(DnsDecide, NetworkNamesAreAnsweredOthersForwardedOrRefused) {
  Records rec;
  parse_records("10.89.1.5 web-1 DB\nfd00::5 web-1 db\n", rec);
  std::vector<Address> found;
  EXPECT_EQ(decide(rec, "db", found), Verdict::Answer);
  EXPECT_EQ(found.size(), 2u);
  EXPECT_EQ(decide(rec, "db.dns.husk", found), Verdict::Answer);
  EXPECT_EQ(decide(rec, "web-1", found), Verdict::Answer);
  EXPECT_EQ(decide(rec, "other", found), Verdict::NxDomain);
  EXPECT_EQ(decide(rec, "other.dns.husk", found), Verdict::NxDomain);
  EXPECT_EQ(decide(rec, "example.com", found), Verdict::Forward);
  EXPECT_EQ(decide(rec, "db.example.com", found), Verdict::Forward);
  EXPECT_EQ(decide(rec, "dns.husk", found), Verdict::Answer);
  EXPECT_TRUE(found.empty());
}

TEST(DnsRecords, AContainerWhoseInitIsGoneIsNotAnswered) {
  std::vector<RecordFile> files = {parse_record_file("10.0.0.1 db\nowner 10 5\n"),
                                   parse_record_file("10.0.0.2 web\nowner 11 6\n")};
  EXPECT_EQ(files[0].pid, 10);
  EXPECT_EQ(files[0].start, 5u);
  Records live = live_records(files, [](pid_t pid, uint64_t) { return pid == 11; });
  EXPECT_EQ(live.count("db"), 0u);
  EXPECT_EQ(live.count("web"), 1u);
  // Two containers with one alias: both addresses.
  files.push_back(parse_record_file("10.0.0.3 web\n"));
  EXPECT_EQ(live_records(files, [](pid_t, uint64_t) { return true; }).at("web").size(), 2u);
}

TEST(DnsRecords, BadLinesAreSkipped) {
  Records rec;
  parse_records("not-an-ip db\n10.0.0.1\n\n10.0.0.2 a b\n", rec);
  EXPECT_EQ(rec.size(), 2u);
  EXPECT_EQ(rec.count("a"), 1u);
  EXPECT_EQ(rec.count("db"), 0u);
}

TEST(DnsMessage, AnswersAReverseNameWithItsPtrRecord) {
  std::string qp = query("5.1.89.10.in-addr.arpa", kTypePTR);
  auto q = parse_question(qp);
  ASSERT_TRUE(q);
  std::string r = answer_ptr(qp, *q, "web-1.dns.husk");
  EXPECT_EQ(u16(r, 2) & 0xf, kNoError);
  EXPECT_EQ(u16(r, 6), 1);
  std::string rr = r.substr(qp.size());
  EXPECT_EQ(u16(rr, 0), 0xc00c);
  EXPECT_EQ(u16(rr, 2), kTypePTR);
  EXPECT_EQ(u16(rr, 10), 16);
  EXPECT_EQ(rr.substr(12), std::string("\5web-1\3dns\4husk\0", 16));
  // Another type of the same name: the name exists, no record of that type.
  std::string qa = query("5.1.89.10.in-addr.arpa", kTypeA);
  std::string ra = answer_ptr(qa, *parse_question(qa), "web-1.dns.husk");
  EXPECT_EQ(u16(ra, 2) & 0xf, kNoError);
  EXPECT_EQ(u16(ra, 6), 0);
  EXPECT_EQ(ra.size(), qa.size());
}

TEST(DnsMessage, DomainNamesHaveLabelsOf1To63) {
  EXPECT_TRUE(is_domain_name("web-1.dns.husk"));
  EXPECT_FALSE(is_domain_name(""));
  EXPECT_FALSE(is_domain_name("a..b"));
  EXPECT_FALSE(is_domain_name(std::string(64, 'a') + ".dns.husk"));
  EXPECT_TRUE(is_domain_name(std::string(63, 'a') + ".dns.husk"));
}

TEST(DnsRecords, AContainersOwnNameIsItsIdNotAnAlias) {
  // As network.cc writes them: the id, then the aliases.
  RecordFile f = parse_record_file("10.89.1.5 Web-1 db cache\nfd00::5 Web-1 db cache\nowner 7 1\n", "Web-1");
  EXPECT_EQ(f.own_name(), "web-1");
  EXPECT_EQ(f.names, (std::vector<std::string>{"web-1", "db", "cache"}));
  EXPECT_EQ(f.addresses.size(), 2u);
  // Listed after an alias, the id still wins.
  EXPECT_EQ(parse_record_file("10.89.1.5 db web-1\n", "web-1").own_name(), "web-1");
  // An id that is no host name is not among the names: its first alias.
  EXPECT_EQ(parse_record_file("10.89.1.6 db cache\n", "a+b").own_name(), "db");
  // A name too long for a message is skipped.
  EXPECT_EQ(parse_record_file("10.89.1.7 " + std::string(64, 'x') + " db\n", std::string(64, 'x')).own_name(), "db");
}

TEST(DnsRecords, OnlyRunningContainersHaveAddressNames) {
  std::vector<RecordFile> files = {parse_record_file("10.0.0.1 db\nowner 10 5\n", "db"),
                                   parse_record_file("10.0.0.2 web x\nfd00::2 web x\nowner 11 6\n", "web")};
  auto names = live_address_names(files, [](pid_t pid, uint64_t) { return pid == 11; });
  ASSERT_EQ(names.size(), 2u);
  EXPECT_TRUE(same_address(names[0].address, v4("10.0.0.2")));
  EXPECT_EQ(names[0].name, "web");
  EXPECT_TRUE(same_address(names[1].address, *parse_address("fd00::2")));
  EXPECT_EQ(names[1].name, "web");
}

TEST(DnsReverse, ReadsInAddrArpaAndIp6ArpaNames) {
  auto r = parse_reverse_name("5.1.89.10.in-addr.arpa");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->complete);
  EXPECT_TRUE(same_address(r->leading, v4("10.89.1.5")));
  std::string fd41_5 = ip6_arpa("fd41::5");
  EXPECT_EQ(fd41_5, "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.4.d.f.ip6.arpa");
  auto r6 = parse_reverse_name(fd41_5);
  ASSERT_TRUE(r6);
  EXPECT_TRUE(r6->complete);
  EXPECT_TRUE(same_address(r6->leading, *parse_address("fd41::5")));
  EXPECT_FALSE(parse_reverse_name("example.com"));
  EXPECT_FALSE(parse_reverse_name("x-in-addr.arpa"));
  auto partial = parse_reverse_name("1.89.10.in-addr.arpa");
  ASSERT_TRUE(partial);
  EXPECT_FALSE(partial->complete);
  EXPECT_FALSE(partial->malformed);
  EXPECT_EQ(partial->bits, 24);
  for (const char* bad :
       {"256.1.89.10.in-addr.arpa", "05.1.89.10.in-addr.arpa", "x.1.89.10.in-addr.arpa", "5.5.1.89.10.in-addr.arpa"}) {
    auto b = parse_reverse_name(bad);
    ASSERT_TRUE(b) << bad;
    EXPECT_TRUE(b->malformed) << bad;
    EXPECT_FALSE(b->complete) << bad;
    EXPECT_GE(b->bits, 24) << bad;  // the labels read before the bad one
  }
  auto ab = parse_reverse_name("ab." + fd41_5.substr(2));
  ASSERT_TRUE(ab);
  EXPECT_TRUE(ab->malformed);
  EXPECT_EQ(ab->bits, 124);
}

TEST(DnsReverse, ContainersAreAnsweredTheSubnetIsOursTheRestForwarded) {
  std::vector<AddressName> names = {{v4("10.89.1.5"), "web-1"}, {*parse_address("fd41::5"), "web-1"}};
  std::vector<Prefix> subnets = {*parse_prefix("10.89.1.0/24"), *parse_prefix("fd41::/64")};
  std::string target;
  auto v = [&](const std::string& name) { return decide_reverse(names, subnets, name, target); };
  EXPECT_EQ(v("5.1.89.10.in-addr.arpa"), Verdict::Answer);
  EXPECT_EQ(target, "web-1.dns.husk");
  std::string fd41_5 = ip6_arpa("fd41::5");
  EXPECT_EQ(v(fd41_5), Verdict::Answer);
  EXPECT_EQ(target, "web-1.dns.husk");
  // The subnet's other addresses, the gateway's too: no such name.
  EXPECT_EQ(v("6.1.89.10.in-addr.arpa"), Verdict::NxDomain);
  EXPECT_EQ(v("1.1.89.10.in-addr.arpa"), Verdict::NxDomain);
  EXPECT_EQ(v(ip6_arpa("fd41::6")), Verdict::NxDomain);
  // Outside the subnets: the host's resolvers know.
  EXPECT_EQ(v("5.2.89.10.in-addr.arpa"), Verdict::Forward);
  EXPECT_EQ(v("1.2.0.192.in-addr.arpa"), Verdict::Forward);
  EXPECT_EQ(v(ip6_arpa("2001:db8::5")), Verdict::Forward);
  EXPECT_EQ(v(ip6_arpa("fd41:0:0:1::5")), Verdict::Forward);
  EXPECT_FALSE(v("web-1"));
  // Malformed inside the subnet: as an address no container has.
  for (const char* bad : {"256.1.89.10.in-addr.arpa", "05.1.89.10.in-addr.arpa", "x.1.89.10.in-addr.arpa",
                          "5.5.1.89.10.in-addr.arpa", "a.b.5.1.89.10.in-addr.arpa"})
    EXPECT_EQ(v(bad), Verdict::NxDomain) << bad;
  EXPECT_EQ(v("ab." + fd41_5.substr(2)), Verdict::NxDomain);
  EXPECT_EQ(v("0." + fd41_5), Verdict::NxDomain);
  EXPECT_EQ(v("g." + fd41_5.substr(2)), Verdict::NxDomain);
  // Malformed above or outside it: forwarded.
  for (const char* bad :
       {"5.1.089.10.in-addr.arpa", "5.1.x.10.in-addr.arpa", "x.2.89.10.in-addr.arpa", "256.2.89.10.in-addr.arpa"})
    EXPECT_EQ(v(bad), Verdict::Forward) << bad;
  // Above a container's address, inside the subnet: the name exists (NOERROR, no record).
  EXPECT_EQ(v("1.89.10.in-addr.arpa"), Verdict::Answer);
  EXPECT_EQ(target, "");
  EXPECT_EQ(v(fd41_5.substr(16)), Verdict::Answer);  // fd41::/96, above fd41::5
  EXPECT_EQ(target, "");
  // Above the subnet: not ours.
  EXPECT_EQ(v("89.10.in-addr.arpa"), Verdict::Forward);
  EXPECT_EQ(v("in-addr.arpa"), Verdict::Forward);
  // Inside a /16, below no container: NXDOMAIN.
  subnets[0] = *parse_prefix("10.89.0.0/16");
  EXPECT_EQ(v("2.89.10.in-addr.arpa"), Verdict::NxDomain);
  EXPECT_EQ(v("1.89.10.in-addr.arpa"), Verdict::Answer);
  EXPECT_EQ(v("89.10.in-addr.arpa"), Verdict::Answer);
  EXPECT_EQ(v("5.2.89.10.in-addr.arpa"), Verdict::NxDomain);
}

TEST(DnsReverse, SubnetsAreAddressSlashLength) {
  auto p = parse_prefix("10.89.1.0/24");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->length, 24);
  EXPECT_TRUE(parse_prefix("fd41::/64"));
  EXPECT_FALSE(parse_prefix("10.89.1.0"));
  EXPECT_FALSE(parse_prefix("10.89.1.0/33"));
  EXPECT_FALSE(parse_prefix("10.89.1.0/x"));
  EXPECT_FALSE(parse_prefix("fd41::/129"));
}
