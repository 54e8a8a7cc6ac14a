// husk-log's pure parts: SigV4 against AWS's own test vector, splunk's
// event shapes, URL splitting.
#include <gtest/gtest.h>

#include <algorithm>

#include "logs/http.h"
#include "logs/sigv4.h"
#include "logs/splunk.h"
#include "runtime/log_sink.h"

namespace husk::logs {
namespace {

// "post-vanilla" of AWS's Signature Version 4 test suite.
TEST(SigV4, SignsAwsTestSuitePostVanilla) {
  AwsCredentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  SignedRequest r = sigv4_sign(creds, "us-east-1", "service", "example.amazonaws.com", "/", {}, "", "20150830T123600Z");
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers.back(),
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  EXPECT_NE(std::find(r.headers.begin(), r.headers.end(), "x-amz-date: 20150830T123600Z"), r.headers.end());
  EXPECT_NE(std::find(r.headers.begin(), r.headers.end(), "Host: example.amazonaws.com"), r.headers.end());
}

TEST(SigV4, SessionTokenIsSigned) {
  AwsCredentials creds{"AKID", "secret", "tok"};
  SignedRequest r = sigv4_sign(creds, "eu-west-1", "logs", "h:1", "/", {{"x-amz-target", "T"}}, "{}",
                               "20261204T000000Z");
  EXPECT_NE(r.headers.back().find("SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target,"),
            std::string::npos)
      << r.headers.back();
  EXPECT_NE(std::find(r.headers.begin(), r.headers.end(), "x-amz-security-token: tok"), r.headers.end());
}

TEST(Splunk, InlineEventIsDockersShape) {
  SplunkEventShape s;
  s.host = "h";
  s.source = "src";
  s.tag = "web";
  s.attrs = {{"a", "1"}, {"b", "\"q\""}};
  EXPECT_EQ(splunk_event(s, "hi\tthere", false, 1700000000, 42),
            R"({"event":{"line":"hi\tthere","source":"stdout","tag":"web","attrs":{"a":"1","b":"\"q\""}},)"
            R"("time":"1700000000.000042","host":"h","source":"src"})");
  s.tag.clear();
  s.attrs.clear();
  s.source.clear();
  s.index = "main";
  EXPECT_EQ(splunk_event(s, "\xff", true, 1, 0),
            "{\"event\":{\"line\":\"\xef\xbf\xbd\",\"source\":\"stderr\"},\"time\":\"1.000000\",\"host\":\"h\","
            "\"index\":\"main\"}");
}

TEST(Splunk, JsonAndRawFormats) {
  SplunkEventShape s;
  s.host = "h";
  s.format = "json";
  EXPECT_EQ(splunk_event(s, " {\"k\": 1} ", false, 1, 0),
            R"({"event":{"line":{"k": 1},"source":"stdout"},"time":"1.000000","host":"h"})");
  EXPECT_EQ(splunk_event(s, "{not json", false, 1, 0),
            R"({"event":{"line":"{not json","source":"stdout"},"time":"1.000000","host":"h"})");
  s.format = "raw";
  s.tag = "t";
  s.attrs = {{"k", "v"}};
  EXPECT_EQ(splunk_event(s, "x", false, 1, 0), R"({"event":"t k=v x","time":"1.000000","host":"h"})");
}

TEST(Http, SplitsUrls) {
  UrlParts u;
  ASSERT_TRUE(split_url("https://hec.example:8088/", &u));
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "hec.example");
  EXPECT_EQ(u.port, "8088");
  EXPECT_EQ(u.path, "/");
  ASSERT_TRUE(split_url("http://[::1]/p", &u));
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, "80");
  EXPECT_EQ(u.path, "/p");
  EXPECT_FALSE(split_url("hec:8088", &u));
  EXPECT_FALSE(split_url("https://:8088", &u));
  EXPECT_FALSE(split_url("https://h:80x", &u));
}

// The name a TLS destination's certificate must have.
TEST(Http, HostOfAnAddress) {
  EXPECT_EQ(runtime::host_of("logs.example:6514"), "logs.example");
  EXPECT_EQ(runtime::host_of("logs.example"), "logs.example");
  EXPECT_EQ(runtime::host_of("[::1]:6514"), "::1");
  EXPECT_EQ(runtime::host_of("::1"), "::1");
}

}  // namespace
}  // namespace husk::logs
