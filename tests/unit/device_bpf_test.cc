// Device rules -> the cgroup device eBPF program, checked by behaviour: a
// small interpreter runs the generated instructions on (type, major, minor,
// access) as the kernel would and the tests look at allow or deny.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>

#include "cgroups/device_bpf.h"
#include "cgroups/manager.h"
#include "oci/config.h"

using namespace husk;
using namespace husk::cgroups;

namespace {

// Runs a program on struct bpf_cgroup_dev_ctx. Knows only the instructions a
// device filter needs, and fails the test on anything else, on a backward or
// out-of-range jump, or on a load through a register that is not the context.
std::optional<uint64_t> run(const std::vector<struct bpf_insn>& prog, uint32_t access_type, uint32_t major,
                            uint32_t minor) {
  const uint32_t ctx[3] = {access_type, major, minor};
  uint64_t r[11] = {};
  bool is_ctx[11] = {};
  is_ctx[1] = true;
  size_t pc = 0;
  for (int steps = 0; steps < 4096; ++steps) {
    if (pc >= prog.size()) {
      ADD_FAILURE() << "ran off the end at " << pc;
      return std::nullopt;
    }
    const auto& i = prog[pc];
    uint8_t cls = BPF_CLASS(i.code);
    auto jump = [&](bool taken) -> bool {
      if (i.off < 0) {
        ADD_FAILURE() << "backward jump at " << pc;
        return false;
      }
      pc += 1 + (taken ? static_cast<size_t>(i.off) : 0);
      return true;
    };
    if (i.code == (BPF_LDX | BPF_MEM | BPF_W)) {
      if (!is_ctx[i.src_reg] || i.off < 0 || i.off % 4 != 0 || i.off > 8) {
        ADD_FAILURE() << "bad context load at " << pc;
        return std::nullopt;
      }
      r[i.dst_reg] = ctx[i.off / 4];
      is_ctx[i.dst_reg] = false;
      ++pc;
    } else if (cls == BPF_ALU) {
      uint32_t src = BPF_SRC(i.code) == BPF_X ? static_cast<uint32_t>(r[i.src_reg]) : static_cast<uint32_t>(i.imm);
      uint32_t dst = static_cast<uint32_t>(r[i.dst_reg]);
      switch (BPF_OP(i.code)) {
        case BPF_MOV:
          dst = src;
          break;
        case BPF_AND:
          dst &= src;
          break;
        case BPF_RSH:
          dst >>= src;
          break;
        default:
          ADD_FAILURE() << "unexpected ALU op at " << pc;
          return std::nullopt;
      }
      r[i.dst_reg] = dst;  // 32-bit ALU zero-extends
      is_ctx[i.dst_reg] = false;
      ++pc;
    } else if (i.code == (BPF_JMP | BPF_EXIT)) {
      return r[0];
    } else if ((cls == BPF_JMP32 || cls == BPF_JMP) && BPF_OP(i.code) == BPF_JNE) {
      uint64_t a = r[i.dst_reg];
      uint64_t b = BPF_SRC(i.code) == BPF_X ? r[i.src_reg] : static_cast<uint64_t>(static_cast<int64_t>(i.imm));
      if (cls == BPF_JMP32) {
        a = static_cast<uint32_t>(a);
        b = static_cast<uint32_t>(b);
      }
      if (!jump(a != b)) return std::nullopt;
    } else {
      ADD_FAILURE() << "unexpected instruction 0x" << std::hex << int(i.code) << " at " << std::dec << pc;
      return std::nullopt;
    }
  }
  ADD_FAILURE() << "no exit";
  return std::nullopt;
}

struct Filter {
  std::vector<struct bpf_insn> prog;
  // "c 1 3 rw" style: is this access allowed?
  bool allows(char type, uint32_t major, uint32_t minor, const std::string& access) const {
    uint32_t acc = 0;
    for (char c : access) acc |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
    uint32_t t = type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    auto v = run(prog, (acc << 16) | t, major, minor);
    EXPECT_TRUE(v.has_value());
    EXPECT_TRUE(!v || *v == 0 || *v == 1) << "verdict " << *v;
    return v.value_or(0) == 1;
  }
};

oci::DeviceRule rule(bool allow, std::optional<char> type, std::optional<int64_t> major, std::optional<int64_t> minor,
                     std::optional<std::string> access) {
  return oci::DeviceRule{allow, type, major, minor, access};
}
oci::DeviceRule deny_all() { return rule(false, std::nullopt, std::nullopt, std::nullopt, "rwm"); }
oci::DeviceRule allow_all() { return rule(true, 'a', std::nullopt, std::nullopt, "rwm"); }

Filter filter(const std::vector<oci::DeviceRule>& rules, const std::vector<oci::Device>& devices = {}) {
  auto p = device_policy(rules, devices);
  EXPECT_TRUE(p) << p.error().str();
  return Filter{p ? device_program(*p) : std::vector<struct bpf_insn>{}};
}

std::string error_of(const std::vector<oci::DeviceRule>& rules) {
  auto p = device_policy(rules, {});
  return p ? "" : p.error().str();
}

void expect_default_devices_allowed(const Filter& f) {
  for (auto [maj, min] :
       {std::pair{1u, 3u}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 2}, {136, 0}, {136, 41}, {10, 200}})
    EXPECT_TRUE(f.allows('c', maj, min, "rw")) << maj << ":" << min;
}

TEST(DeviceFilter, DenyAllAllowsOnlyTheDefaultDevicesAndMknod) {
  Filter f = filter({deny_all()});
  expect_default_devices_allowed(f);
  EXPECT_TRUE(f.allows('c', 1, 3, "rwm"));
  EXPECT_FALSE(f.allows('c', 1, 1, "r"));      // /dev/mem
  EXPECT_FALSE(f.allows('c', 10, 237, "rw"));  // /dev/loop-control
  EXPECT_FALSE(f.allows('c', 5, 1, "w"));      // /dev/console is not a default: it is a pts
  EXPECT_FALSE(f.allows('b', 8, 0, "r"));
  // runc allows mknod of anything; opening it is what the rules decide.
  EXPECT_TRUE(f.allows('c', 1, 1, "m"));
  EXPECT_TRUE(f.allows('b', 8, 0, "m"));
  EXPECT_FALSE(f.allows('b', 8, 0, "rm"));
}

TEST(DeviceFilter, NoRulesMeansDenyAllButTheDefaults) {
  Filter f = filter({});
  expect_default_devices_allowed(f);
  EXPECT_FALSE(f.allows('c', 1, 1, "r"));
  EXPECT_FALSE(f.allows('b', 7, 0, "rw"));
}

TEST(DeviceFilter, AllowAllThenDenyOne) {
  Filter all = filter({allow_all()});
  EXPECT_TRUE(all.allows('c', 1, 1, "rwm"));
  EXPECT_TRUE(all.allows('b', 8, 0, "rw"));

  Filter f = filter({allow_all(), rule(false, 'c', 1, 1, "rw")});
  EXPECT_FALSE(f.allows('c', 1, 1, "r"));
  EXPECT_FALSE(f.allows('c', 1, 1, "w"));
  EXPECT_TRUE(f.allows('c', 1, 1, "m"));  // only rw were denied
  EXPECT_TRUE(f.allows('c', 1, 2, "rw"));
  EXPECT_TRUE(f.allows('b', 1, 1, "rw"));
}

TEST(DeviceFilter, TheLastRuleWins) {
  Filter f = filter({deny_all(), rule(true, 'c', 10, 237, "rw"), rule(false, 'c', 10, 237, "w")});
  EXPECT_TRUE(f.allows('c', 10, 237, "r"));
  EXPECT_FALSE(f.allows('c', 10, 237, "w"));
  EXPECT_FALSE(f.allows('c', 10, 237, "rw"));

  // A later type "a" rule resets everything before it.
  Filter reset = filter({rule(true, 'c', 10, 237, "rwm"), deny_all()});
  EXPECT_FALSE(reset.allows('c', 10, 237, "r"));
  Filter reopened = filter({deny_all(), rule(true, 'c', 10, 237, "rwm"), allow_all()});
  EXPECT_TRUE(reopened.allows('b', 8, 0, "rw"));
}

TEST(DeviceFilter, AccessOfOneDeviceMerges) {
  Filter f = filter({deny_all(), rule(true, 'c', 10, 237, "r"), rule(true, 'c', 10, 237, "w")});
  EXPECT_TRUE(f.allows('c', 10, 237, "rw"));  // open(O_RDWR) asks for both at once
  // Each access asked must be in one exception: r alone does not give rw.
  Filter r = filter({deny_all(), rule(true, 'c', 10, 237, "r")});
  EXPECT_TRUE(r.allows('c', 10, 237, "r"));
  EXPECT_FALSE(r.allows('c', 10, 237, "rw"));
}

TEST(DeviceFilter, AbsentMajorOrMinorIsAWildcard) {
  Filter f = filter({deny_all(), rule(true, 'b', 7, std::nullopt, "rw"), rule(true, 'c', std::nullopt, 99, "r")});
  EXPECT_TRUE(f.allows('b', 7, 0, "rw"));
  EXPECT_TRUE(f.allows('b', 7, 12345, "r"));
  EXPECT_FALSE(f.allows('c', 7, 0, "r"));  // the type still counts
  EXPECT_FALSE(f.allows('b', 8, 0, "r"));
  EXPECT_TRUE(f.allows('c', 4000, 99, "r"));
  EXPECT_FALSE(f.allows('c', 4000, 98, "r"));
  // -1 from the JSON is the same wildcard.
  Filter g = filter({deny_all(), rule(true, 'b', 7, -1, "rw")});
  EXPECT_TRUE(g.allows('b', 7, 3, "rw"));
}

TEST(DeviceFilter, TypeAMatchesCharAndBlock) {
  Filter f = filter({deny_all(), rule(true, 'a', 1, 1, "rwm")});  // "a" is all, whatever the numbers
  EXPECT_TRUE(f.allows('c', 1, 1, "r"));
  EXPECT_TRUE(f.allows('b', 8, 0, "r"));
}

TEST(DeviceFilter, LargeNumbersAreComparedAs32Bit) {
  Filter f = filter({deny_all(), rule(true, 'c', 0x80000001LL, 0xfffffffeLL, "r")});
  EXPECT_TRUE(f.allows('c', 0x80000001u, 0xfffffffeu, "r"));
  EXPECT_FALSE(f.allows('c', 1, 0xfffffffeu, "r"));
}

TEST(DeviceFilter, LinuxDevicesReplaceTheDefaultOfTheSamePath) {
  oci::Device null_dev;
  null_dev.path = "/dev/null";
  null_dev.major = 1;
  null_dev.minor = 3;
  Filter f = filter({deny_all()}, {null_dev});
  EXPECT_FALSE(f.allows('c', 1, 3, "rw"));  // as runc: the spec's entry drops the default rule
  EXPECT_TRUE(f.allows('c', 1, 5, "rw"));
  // An entry of linux.devices adds no rule of its own.
  oci::Device loop;
  loop.path = "/dev/loop-control";
  loop.major = 10;
  loop.minor = 237;
  Filter g = filter({deny_all()}, {loop});
  EXPECT_FALSE(g.allows('c', 10, 237, "rw"));
  EXPECT_TRUE(g.allows('c', 1, 3, "rw"));
}

TEST(DeviceFilter, CannotPunchAHoleInAWildcard) {
  EXPECT_EQ(error_of({deny_all(), rule(true, 'c', 10, std::nullopt, "rwm"), rule(false, 'c', 10, 237, "rw")}),
            "linux.resources.devices[2]: deny c 10:237 cannot punch a hole in the earlier allow c 10:* "
            "(cgroup v1 semantics: the wildcard rule stays in force)");
  // Letters the wildcard does not grant can be taken away.
  EXPECT_EQ(error_of({deny_all(), rule(true, 'c', 10, std::nullopt, "r"), rule(false, 'c', 10, 237, "w")}), "");
  // The appended defaults are checked the same way.
  std::string e = error_of({allow_all(), rule(false, 'c', 1, std::nullopt, "rwm")});
  EXPECT_NE(e.find("the default rule allow c 1:3 rwm"), std::string::npos) << e;
}

TEST(DeviceFilter, InvalidRulesNameTheField) {
  EXPECT_EQ(error_of({deny_all(), rule(true, 'c', 1, 3, std::nullopt)}),
            "linux.resources.devices[1].access: must not be empty (a subset of \"rwm\")");
  EXPECT_EQ(error_of({rule(true, 'c', 1, 3, "")}),
            "linux.resources.devices[0].access: must not be empty (a subset of \"rwm\")");
  EXPECT_EQ(error_of({deny_all(), rule(true, 'c', 1LL << 33, 3, "r")}),
            "linux.resources.devices[1].major: 8589934592 is not a device major number");
  // Type and access letters are the parser's (oci/parse.cc), for
  // config.json and `update -r` alike.
  auto bad_type = oci::parse_resources(
      R"({"devices": [{"allow": true, "access": "rwm"}, {"allow": true, "type": "x", "access": "r"}]})");
  ASSERT_FALSE(bad_type);
  EXPECT_EQ(bad_type.error().str(), "devices[1].type: must be \"a\", \"c\" or \"b\", got \"x\"");
  auto bad_access = oci::parse_resources(R"({"devices": [{"allow": true, "type": "c", "access": "rx"}]})");
  ASSERT_FALSE(bad_access);
  EXPECT_EQ(bad_access.error().str(), "devices[0].access: must be made of r, w and m, got \"rx\"");
}

TEST(DeviceFilter, ProgramShape) {
  auto p = device_policy({deny_all()}, {});
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->default_allow);
  // c *:* m, b *:* m, then (major, minor, type) order: 1:3 1:5 1:7 1:8 1:9 5:0 5:2 10:200 136:*.
  ASSERT_EQ(p->exceptions.size(), 11u);
  EXPECT_EQ(p->exceptions[0].type, 'b');
  EXPECT_EQ(p->exceptions[0].major, -1);
  EXPECT_EQ(p->exceptions[2].major, 1);
  EXPECT_EQ(p->exceptions[2].minor, 3);
  EXPECT_EQ(p->exceptions.back().major, 136);
  auto prog = device_program(*p);
  // 6 loads and shifts, 2 blocks of 6 (access check), 8 of 5, 1 of 4, default.
  EXPECT_EQ(prog.size(), 6u + 2 * 6 + 8 * 5 + 4 + 2);
  EXPECT_EQ(prog.back().code, BPF_JMP | BPF_EXIT);
  auto open = device_program(DevicePolicy{true, {}});
  EXPECT_EQ(open.size(), 8u);
}

}  // namespace

namespace {

// On a real cgroup2 tree, as root only (skipped otherwise): a scratch cgroup
// with no process in it, removed at the end.
struct ScratchCgroup {
  std::string path;
  UniqueFd fd;
  ScratchCgroup() {
    std::string mount = detect_mount_point();
    if (mount.empty() || !can_attach_device_programs()) return;
    path = mount + "/husk-unit-" + std::to_string(getpid());
    if (mkdir(path.c_str(), 0755) < 0) {
      path.clear();
      return;
    }
    if (auto f = open_fd(path, O_RDONLY | O_DIRECTORY)) fd = std::move(*f);
  }
  ~ScratchCgroup() {
    fd.reset();
    if (!path.empty()) rmdir(path.c_str());
  }
};

TEST(DeviceProgram, VerifierRejectionCarriesTheLog) {
  ScratchCgroup cg;
  if (!cg.fd) GTEST_SKIP() << "needs root and a cgroup2 tree";
  // r0 is never set: the verifier refuses to exit with it uninitialised.
  std::vector<struct bpf_insn> bad(1);
  bad[0].code = BPF_JMP | BPF_EXIT;
  auto r = attach_device_program(cg.fd.get(), bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("the verifier says: "), std::string::npos) << r.error().str();
  EXPECT_NE(r.error().str().find("R0"), std::string::npos) << r.error().str();
}

TEST(DeviceProgram, UpdateReplacesTheOneHuskProgram) {
  ScratchCgroup cg;
  if (!cg.fd) GTEST_SKIP() << "needs root and a cgroup2 tree";
  auto first = device_policy({deny_all()}, {});
  ASSERT_TRUE(first);
  ASSERT_TRUE(attach_device_program(cg.fd.get(), device_program(*first)));
  auto ids = attached_device_programs(cg.fd.get());
  ASSERT_TRUE(ids) << ids.error().str();
  ASSERT_EQ(ids->size(), 1u);
  for (int i = 0; i < 2; ++i) {
    auto again = attach_device_program(cg.fd.get(), device_program(DevicePolicy{true, {}}));
    ASSERT_TRUE(again) << again.error().str();
    auto now = attached_device_programs(cg.fd.get());
    ASSERT_TRUE(now);
    ASSERT_EQ(now->size(), 1u);
    EXPECT_NE((*now)[0], (*ids)[0]);
    ids = now;
  }
}

}  // namespace
