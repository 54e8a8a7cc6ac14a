// husk-default, the docker and podman flavors' AppArmor profile: loading it
// against a fake securityfs and a fake apparmor_parser (a script that does
// what the real one does to the kernel's lists), and the rule that picks a
// task's profile.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "driver/apparmor_default.h"

namespace fs = std::filesystem;
using namespace husk;
using namespace husk::driver;

namespace {

std::string read(const std::string& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write(const std::string& p, const std::string& s) { std::ofstream(p) << s; }

class DefaultProfileLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-aa-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    host_.securityfs = root_ + "/securityfs";
    host_.parser = root_ + "/apparmor_parser";
    host_.stamp = root_ + "/run/stamp";
    fs::create_directories(host_.securityfs + "/policy/profiles");
    write(host_.securityfs + "/profiles", "other (enforce)\n");
    // Like apparmor_parser --replace of husk-default from stdin: the
    // profile listed and its policy directory with a fresh hash.
    write(host_.parser,
          "#!/bin/sh\n"
          "r=" +
              root_ +
              "\n"
              "echo \"$@\" >>$r/args\n"
              "cat >$r/stdin\n"
              "[ -f $r/fail ] && { echo 'AppArmor parser error: syntax' >&2; exit 1; }\n"
              "p=$r/securityfs; grep -q '^husk-default ' $p/profiles || echo 'husk-default (enforce)' >>$p/profiles\n"
              "mkdir -p $p/policy/profiles/husk-default.0\n"
              "echo husk-default >$p/policy/profiles/husk-default.0/name\n"
              "echo sum-$(wc -l <$r/args) >$p/policy/profiles/husk-default.0/sha1\n");
    chmod(host_.parser.c_str(), 0755);
  }
  void TearDown() override { fs::remove_all(root_); }
  int runs() {
    std::ifstream in(root_ + "/args");
    int n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    return n;
  }
  std::string root_;
  apparmor::Host host_;
};

}  // namespace

TEST_F(DefaultProfileLoad, LoadedOnceFromItsTextAndAgainOnlyWhenTheKernelsCopyIsNotThatText) {
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  EXPECT_EQ(runs(), 1);
  EXPECT_EQ(read(root_ + "/stdin"), apparmor::default_profile_text());
  EXPECT_EQ(read(root_ + "/args"), "--replace --skip-cache --quiet\n");
  // Loaded and unchanged: no second run.
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  EXPECT_EQ(runs(), 1);
  // Replaced by someone else (the kernel's hash moved): ours again.
  write(host_.securityfs + "/policy/profiles/husk-default.0/sha1", "someone-elses\n");
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  EXPECT_EQ(runs(), 2);
  // Unloaded: loaded again.
  write(host_.securityfs + "/profiles", "other (enforce)\n");
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  EXPECT_EQ(runs(), 3);
  // Loaded from another text (an older husk's stamp): reloaded.
  std::string stamp = read(host_.stamp);
  ASSERT_NE(stamp.find("text "), std::string::npos) << stamp;
  write(host_.stamp, "text 0000\nkernel sum-3\n");
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  EXPECT_EQ(runs(), 4);
  ASSERT_TRUE(apparmor::ensure_default_profile(host_));
  EXPECT_EQ(runs(), 4);
}

TEST_F(DefaultProfileLoad, NoParserOrAFailingOneIsAnError) {
  write(root_ + "/fail", "");
  auto r = apparmor::ensure_default_profile(host_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("AppArmor parser error: syntax"), std::string::npos) << r.error().str();
  EXPECT_FALSE(fs::exists(host_.stamp));
  host_.parser = root_ + "/no-such-parser";
  r = apparmor::ensure_default_profile(host_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("no-such-parser"), std::string::npos) << r.error().str();
}

TEST(DefaultProfileText, IsHuskDefaultAndDeniesWhatDockerDefaultDenies) {
  std::string text(apparmor::default_profile_text());
  EXPECT_NE(text.find("profile husk-default flags=(attach_disconnected,mediate_deleted) {"), std::string::npos);
  for (const char* rule :
       {"deny mount,", "umount,", "signal (receive) peer=unconfined,",
        "ptrace (trace, read, tracedby, readby) peer=husk-default,", "deny /proc/{kcore,kmem,mem,sysrq-trigger} rwklx,",
        "deny /sys/firmware/** rwklx,", "deny /sys/kernel/security/** rwklx,"})
    EXPECT_NE(text.find(rule), std::string::npos) << rule;
}

TEST(TaskProfile, DefaultWhereTheHostRunsAppArmorUnlessPrivilegedUnconfinedOrNamed) {
  int loads = 0;
  apparmor::HostPolicy on{true, [&]() -> Result<> {
                            ++loads;
                            return {};
                          }};
  auto r = apparmor::task_profile(on, "", false, "config.security_opt", "OPT");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, std::optional<std::string>("husk-default"));
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(*apparmor::task_profile(on, "", true, "f", "OPT"), std::nullopt);
  EXPECT_EQ(*apparmor::task_profile(on, "unconfined", false, "f", "OPT"), std::nullopt);
  EXPECT_EQ(loads, 1);
  // AppArmor off: nothing, no error (as dockerd).
  apparmor::HostPolicy off{false, [&]() -> Result<> {
                             ++loads;
                             return fail_msg("not called");
                           }};
  EXPECT_EQ(*apparmor::task_profile(off, "", false, "f", "OPT"), std::nullopt);
  EXPECT_EQ(loads, 1);
  // A default that cannot be loaded fails the task, naming the way out.
  apparmor::HostPolicy broken{true, []() -> Result<> { return fail_msg("apparmor_parser is not installed"); }};
  auto e = apparmor::task_profile(broken, "", false, "config.apparmor_profile", "apparmor_profile = \"unconfined\"");
  ASSERT_FALSE(e);
  std::string msg = e.error().str();
  for (const char* part : {"config.apparmor_profile: ", "\"husk-default\"", "apparmor_parser is not installed",
                           "apparmor_profile = \"unconfined\""})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in " << msg;
  EXPECT_EQ(*apparmor::task_profile(broken, "", true, "f", "OPT"), std::nullopt);
}
