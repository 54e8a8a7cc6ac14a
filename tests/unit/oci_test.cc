// config.json parsing, validation messages, emit round trip, state, features.
#include <gtest/gtest.h>

#include "oci/config.h"
#include "oci/tables.h"

using namespace husk;
using namespace husk::oci;

namespace {

const char* kFull = R"({
  "ociVersion": "1.2.0",
  "process": {
    "terminal": true, "consoleSize": {"height": 24, "width": 80},
    "user": {"uid": 1, "gid": 2, "umask": 18, "additionalGids": [5, 6]},
    "args": ["sh", "-c", "true"], "env": ["A=1"], "cwd": "/work",
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "inheritable": [],
                     "permitted": ["CAP_KILL", "CAP_CHOWN"], "ambient": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
    "noNewPrivileges": true, "apparmorProfile": "p", "oomScoreAdj": -5, "selinuxLabel": "l",
    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 3},
    "scheduler": {"policy": "SCHED_BATCH", "nice": 2, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
    "execCPUAffinity": {"initial": "0", "final": "0-1"}
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "h", "domainname": "d",
  "mounts": [{"destination": "/data", "type": "bind", "source": "/src", "options": ["rbind", "ro"],
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}],
  "hooks": {"prestart": [{"path": "/bin/a"}], "createRuntime": [{"path": "/bin/b", "args": ["b", "x"], "env": ["E=1"], "timeout": 5}],
            "createContainer": [{"path": "/c"}], "startContainer": [{"path": "/d"}], "poststart": [{"path": "/e"}],
            "poststop": [{"path": "/f"}]},
  "annotations": {"k": "v"},
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}, {"type": "mount"}, {"type": "user"},
                   {"type": "time"}],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "timeOffsets": {"monotonic": {"secs": 10, "nanosecs": 5}},
    "devices": [{"type": "c", "path": "/dev/x", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}],
    "cgroupsPath": "/a/b",
    "resources": {
      "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
      "memory": {"limit": 1048576, "reservation": 1024, "swap": 2097152, "checkBeforeUpdate": true},
      "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0-1", "mems": "0", "idle": 0},
      "pids": {"limit": 100},
      "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
                  "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
      "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
      "rdma": {"mlx": {"hcaHandles": 2, "hcaObjects": 3}},
      "unified": {"memory.high": "5000"}
    },
    "rootfsPropagation": "rslave",
    "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/l", "listenerMetadata": "m",
                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                              "args": [{"index": 0, "value": 18446744073709551615, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]},
    "sysctl": {"net.ipv4.ip_forward": "1"},
    "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "mountLabel": "ml",
    "intelRdt": {"closID": "c", "schemata": ["L3:0=f"]},
    "personality": {"domain": "LINUX32"},
    "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
    "netDevices": {"eth9": {"name": "eth0"}}
  }
})";

std::string error_of(const std::string& json) {
  auto r = parse_config(json);
  return r ? std::string("(accepted)") : r.error().str();
}

std::string with(const std::string& process_extra, const std::string& linux_extra = "") {
  return R"({"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"args": ["a"])" + process_extra + R"(},
            "linux": {"namespaces": [{"type": "mount"}])" + linux_extra + "}}";
}

}  // namespace

TEST(Config, ParsesEveryField) {
  auto r = parse_config(kFull);
  ASSERT_TRUE(r) << r.error().str();
  const Spec& s = *r;
  EXPECT_EQ(s.process->user.additional_gids, (std::vector<uint32_t>{5, 6}));
  EXPECT_EQ(*s.process->capabilities->permitted, (std::vector<int>{5, 0}));
  EXPECT_EQ(s.process->rlimits[0].hard, 20u);
  EXPECT_EQ(s.process->scheduler->policy, SchedPolicy::Batch);
  EXPECT_EQ(s.mounts[0].uid_mappings[0].host_id, 1000u);
  EXPECT_EQ(s.hooks->create_runtime[0].timeout, 5);
  EXPECT_EQ(*s.linux->namespaces[1].path, "/run/netns/x");
  EXPECT_EQ(s.linux->time_offsets.at("monotonic").secs, 10);
  EXPECT_EQ(s.linux->resources->cpu->shares, 1024u);
  EXPECT_EQ(s.linux->seccomp->syscalls[0].args[0].value, UINT64_MAX);
  EXPECT_EQ(s.linux->rootfs_propagation, Propagation::RSlave);
  EXPECT_EQ(s.linux->net_devices.at("eth9").name, "eth0");
}

TEST(Config, EmitParsesBackToTheSameSpec) {
  auto first = parse_config(kFull);
  ASSERT_TRUE(first);
  std::string once = emit_config(*first);
  auto second = parse_config(once);
  ASSERT_TRUE(second) << second.error().str() << "\n" << once;
  EXPECT_EQ(emit_config(*second), once);
}

TEST(Config, ErrorsNameThePathAndTheValue) {
  EXPECT_EQ(error_of(with(R"(, "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_KILL", "CAP_FOO"]})")),
            "process.capabilities.bounding[3]: unknown capability \"CAP_FOO\"");
  EXPECT_EQ(error_of(R"({"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"namespaces": [{"type": "mount"}, {"type": "bogus"}]}})"),
            "linux.namespaces[1].type: unknown namespace type \"bogus\"");
  EXPECT_EQ(error_of(with("", R"(, "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}])")),
            "linux.uidMappings[0].size: must be greater than 0");
  EXPECT_EQ(error_of(with(R"(, "rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}])")),
            "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"");
  EXPECT_EQ(error_of(with(R"(, "cwd": "relative")")), "process.cwd: must be an absolute path, got \"relative\"");
  EXPECT_EQ(error_of(with(R"(, "oomScoreAdj": 5000)")), "process.oomScoreAdj: value 5000 is out of range [-1000, 1000]");
  EXPECT_EQ(error_of(with(R"(, "user": {"uid": -1})")), "process.user.uid: must not be negative, got -1");
  EXPECT_EQ(error_of(with(R"(, "terminal": "yes")")), "process.terminal: expected true or false, got string");
  EXPECT_EQ(error_of(with("", R"(, "seccomp": {"defaultAction": "SCMP_ACT_NOPE"})")),
            "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_NOPE\"");
  EXPECT_EQ(error_of(with("", R"(, "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]})")),
            "linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_ALMOST\"");
  EXPECT_EQ(error_of(with("", R"(, "devices": [{"type": "x", "path": "/dev/x"}])")),
            "linux.devices[0].type: must be one of c, b, u or p, got \"x\"");
  EXPECT_EQ(error_of(with("", R"(, "resources": {"devices": [{"allow": true, "access": "rwx"}]})")),
            "linux.resources.devices[0].access: must be made of r, w and m, got \"rwx\"");
  EXPECT_EQ(error_of(R"({"ociVersion": "1.2.0"})"), "root: required");
  EXPECT_EQ(error_of(R"({"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"args": []}})"),
            "process.args: required: the command to run");
  EXPECT_NE(error_of("{\"ociVersion\": ").find("invalid JSON"), std::string::npos);
}

TEST(Config, UnknownMembersAreIgnored) {
  auto r = parse_config(R"({"ociVersion": "1.2.0", "root": {"path": "r", "future": 1}, "vm": {}, "x-extension": [1]})");
  ASSERT_TRUE(r) << r.error().str();
}

TEST(Config, RelativeMountDestinationIsMadeAbsolute) {
  auto r = parse_config(R"({"ociVersion": "1.2.0", "root": {"path": "r"}, "mounts": [{"destination": "data"}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mounts[0].destination, "/data");
}

TEST(Config, DefaultSpecsParseBack) {
  for (bool rootless : {false, true}) {
    Spec s = default_spec(rootless, 1000, 1000);
    auto back = parse_config(emit_config(s));
    ASSERT_TRUE(back) << back.error().str();
    EXPECT_EQ(back->linux->has_namespace(NamespaceType::User), rootless);
    EXPECT_EQ(back->linux->has_namespace(NamespaceType::Network), !rootless);
  }
}

TEST(State, RoundTripAndPidAlwaysPresent) {
  State st{"1.2.0", "c1", Status::Stopped, 0, "/b", {{"a", "b"}}};
  std::string json = emit_state(st);
  EXPECT_NE(json.find("\"pid\":0"), std::string::npos);
  auto back = parse_state(json);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, Status::Stopped);
  EXPECT_EQ(back->annotations.at("a"), "b");
}

TEST(Features, ListsWhatTheTablesHold) {
  std::string f = features_json();
  for (auto name : capability_names()) EXPECT_NE(f.find(std::string(name)), std::string::npos) << name;
  for (auto name : seccomp_action_names()) EXPECT_NE(f.find(std::string(name)), std::string::npos) << name;
  EXPECT_NE(f.find("\"time\""), std::string::npos);
  // And it is JSON our own reader accepts as an object.
  EXPECT_TRUE(parse_state(f).error().str().find("ociVersion") != std::string::npos);
}

TEST(Tables, Capabilities) {
  EXPECT_EQ(*capability_from_name("CAP_SYS_ADMIN"), 21);
  EXPECT_EQ(capability_name(40), "CAP_CHECKPOINT_RESTORE");
  EXPECT_FALSE(capability_from_name("SYS_ADMIN"));
  EXPECT_EQ(default_capabilities().size(), 13u);
}
