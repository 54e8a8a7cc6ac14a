// husk-dns's pure pieces: the question of a query, the local answers, what
// is answered, forwarded or refused, and the record files.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include "dns/message.h"
#include "dns/records.h"

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
