// The docker flavor's pure logic: its schemas against the reference field
// list (driver-fields.md §2), the support table covering them, plugin
// options and their errors, and plan(): what each task config field puts
// into the OCI spec, and the error naming the field where husk cannot do
// what dockerd would.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "driver/docker_flavor.h"
#include "driver/flavor.h"
#include "driver/hclspec.h"
#include "driver/value.h"
#include "image/digest.h"
#include "oci_layout.h"
#include "oci/tables.h"

using namespace husk;
using namespace husk::driver;
namespace fs = std::filesystem;

namespace {

Value S(std::string s) { return Value::string(std::move(s)); }
Value I(int64_t i) { return Value::integer(i); }
Value B(bool b) { return Value::boolean(b); }
Value L(std::vector<Value> v) { return Value::array(std::move(v)); }
Value M(std::vector<std::pair<std::string, Value>> e) { return Value::map(std::move(e)); }
using K = SpecNode::Kind;

const SpecNode* unwrap(const SpecNode* n, std::string* dflt = nullptr) {
  if (n->kind == K::Default) {
    if (dflt) *dflt = n->children[1].second->literal;
    return n->children[0].second.get();
  }
  return n;
}

// "name:kind:type:default" rows of an object, for comparison with the reference.
std::vector<std::string> rows(const SpecNode& obj) {
  std::vector<std::string> out;
  for (const auto& [k, c] : obj.children) {
    std::string dflt;
    const SpecNode* n = unwrap(c.get(), &dflt);
    const char* kind = n->kind == K::Attr ? "attr" : n->kind == K::Block ? "block" : n->kind == K::BlockList ? "blocks"
                       : n->kind == K::BlockAttrs ? "attrs" : "?";
    out.push_back(cat(k, ":", kind, ":", n->type, ":", dflt, n->required ? ":required" : ""));
  }
  return out;
}
const SpecNode& nested(const SpecNode& obj, const char* name) {
  for (const auto& [k, c] : obj.children)
    if (k == name) return *unwrap(unwrap(c.get())->children[0].second.get());
  static SpecNode none;
  ADD_FAILURE() << "no " << name;
  return none;
}

// Every field path of a schema as the support table spells it.
void field_paths(const SpecNode& obj, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& [k, c] : obj.children) {
    const SpecNode* n = unwrap(c.get());
    out.push_back(prefix + k);
    if (n->kind == K::Block || n->kind == K::BlockList) {
      std::string p = prefix + k + (n->kind == K::BlockList ? "[]." : ".");
      field_paths(*unwrap(n->children[0].second.get()), p, out);
    }
  }
}

TEST(DockerSchema, TaskConfigHasEveryReferenceField) {
  // driver-fields.md §2.1: 58 top-level fields.
  std::vector<std::string> want = {
      "image:attr:string::required", "image_pull_timeout:attr:string:", "advertise_ipv6_address:attr:bool:",
      "args:attr:list(string):", "auth:block::", "auth_soft_fail:attr:bool:", "cap_add:attr:list(string):",
      "cap_drop:attr:list(string):", "cgroupns:attr:string:", "command:attr:string:",
      "container_exists_attempts:attr:number:", "cpuset_cpus:attr:string:", "cpu_hard_limit:attr:bool:",
      "cpu_cfs_period:attr:number:100000", "devices:blocks::", "dns_search_domains:attr:list(string):",
      "dns_options:attr:list(string):", "dns_servers:attr:list(string):", "entrypoint:attr:list(string):",
      "extra_hosts:attr:list(string):", "force_pull:attr:bool:", "group_add:attr:list(string):",
      "healthchecks:block::", "hostname:attr:string:", "init:attr:bool:", "interactive:attr:bool:",
      "ipc_mode:attr:string:", "ipv4_address:attr:string:", "ipv6_address:attr:string:", "isolation:attr:string:",
      "labels:attr:list(map(string)):", "load:attr:string:", "logging:block::", "mac_address:attr:string:",
      "memory_hard_limit:attr:number:", "mount:blocks::", "mounts:blocks::", "network_aliases:attr:list(string):",
      "network_mode:attr:string:", "oom_score_adj:attr:number:", "pids_limit:attr:number:", "pid_mode:attr:string:",
      "port_map:attr:list(map(number)):", "ports:attr:list(string):", "privileged:attr:bool:",
      "readonly_rootfs:attr:bool:", "runtime:attr:string:", "security_opt:attr:list(string):",
      "shm_size:attr:number:", "storage_opt:attrs:string:", "sysctl:attr:list(map(string)):", "tty:attr:bool:",
      "ulimit:attr:list(map(string)):", "uts_mode:attr:string:", "userns_mode:attr:string:",
      "volumes:attr:list(string):", "volume_driver:attr:string:", "work_dir:attr:string:"};
  auto schema = docker::task_schema();
  EXPECT_EQ(rows(*schema), want);
  EXPECT_EQ(want.size(), 58u);
  EXPECT_EQ(rows(nested(*schema, "auth")), (std::vector<std::string>{"username:attr:string:", "password:attr:string:",
                                                                     "email:attr:string:", "server_address:attr:string:"}));
  EXPECT_EQ(rows(nested(*schema, "logging")),
            (std::vector<std::string>{"type:attr:string:", "driver:attr:string:", "config:attr:list(map(string)):"}));
  EXPECT_EQ(rows(nested(*schema, "devices")), (std::vector<std::string>{"host_path:attr:string:", "container_path:attr:string:",
                                                                        "cgroup_permissions:attr:string:"}));
  EXPECT_EQ(rows(nested(*schema, "healthchecks")), (std::vector<std::string>{"disable:attr:bool:"}));
  const SpecNode& mount = nested(*schema, "mount");
  EXPECT_EQ(rows(mount), (std::vector<std::string>{"type:attr:string:\"volume\"", "target:attr:string:",
                                                   "source:attr:string:", "readonly:attr:bool:", "bind_options:block::",
                                                   "tmpfs_options:block::", "volume_options:block::"}));
  EXPECT_EQ(rows(nested(mount, "tmpfs_options")), (std::vector<std::string>{"size:attr:number:", "mode:attr:number:"}));
  EXPECT_EQ(rows(nested(mount, "volume_options")),
            (std::vector<std::string>{"no_copy:attr:bool:", "labels:attr:list(map(string)):", "driver_config:block::"}));
  EXPECT_EQ(rows(nested(*schema, "mounts")), rows(mount));
}

TEST(DockerSchema, PluginConfigHasEveryReferenceOption) {
  // driver-fields.md §2.2: 21 top-level options, and husk's image_store.
  auto schema = docker::plugin_schema();
  auto r = rows(*schema);
  ASSERT_EQ(r.size(), 22u);
  EXPECT_EQ(r.back(), "image_store:attr:string:");
  for (const char* w : {"endpoint:attr:string:", "volumes:block::{ enabled = false }", "allow_privileged:attr:bool:false",
                        "allow_runtimes:attr:list(string):[\"runc\", \"nvidia\"]", "nvidia_runtime:attr:string:\"nvidia\"",
                        "infra_image:attr:string:\"registry.k8s.io/pause-amd64:3.3\"",
                        "image_pull_timeout:attr:string:\"5m\"", "pull_activity_timeout:attr:string:\"2m\"",
                        "container_exists_attempts:attr:number:5", "pids_limit:attr:number:0",
                        "disable_log_collection:attr:bool:false", "allowed_modes:block::", "extra_labels:attr:list(string):"})
    EXPECT_NE(std::find(r.begin(), r.end(), w), r.end()) << w;
  EXPECT_EQ(rows(nested(*schema, "gc")),
            (std::vector<std::string>{"image:attr:bool:true", "image_delay:attr:string:\"3m\"", "container:attr:bool:true",
                                      "dangling_containers:block::{ enabled = true, period = \"5m\", creation_grace = \"5m\" }"}));
  EXPECT_EQ(rows(nested(nested(*schema, "gc"), "dangling_containers")),
            (std::vector<std::string>{"enabled:attr:bool:true", "period:attr:string:\"5m\"",
                                      "creation_grace:attr:string:\"5m\"", "dry_run:attr:bool:false"}));
  EXPECT_EQ(rows(nested(*schema, "logging")), (std::vector<std::string>{"type:attr:string:", "config:attrs:string:"}));
}

TEST(DockerSchema, SupportTableHasOneRowPerFieldInSchemaOrder) {
  auto flavor = make_docker_flavor();
  EXPECT_EQ(flavor->name(), "docker");
  std::vector<std::string> want;
  field_paths(*flavor->task_schema(), "config.", want);
  field_paths(*flavor->plugin_schema(), "plugin.", want);
  std::vector<std::string> got;
  for (const auto& r : flavor->support()) {
    got.push_back(r.field);
    if (r.status != FieldSupport::Status::kImplemented) {
      EXPECT_FALSE(r.note.empty()) << r.field << " needs a note";
    }
  }
  EXPECT_EQ(got, want);
}

// ---- plugin options -------------------------------------------------------------

TEST(DockerOptions, DefaultsAreTheDockerDrivers) {
  auto o = docker::parse_options(Value());
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_FALSE(o->volumes_enabled);
  EXPECT_FALSE(o->allow_privileged);
  EXPECT_EQ(o->allow_caps, docker::default_allow_caps());
  EXPECT_EQ(o->allow_caps.size(), 13u);
  EXPECT_EQ(o->logging_type, "json-file");
  EXPECT_EQ(o->logging_config.at("max-size"), "2m");
  EXPECT_EQ(o->dangling_creation_grace_ns, 300'000'000'000);
  EXPECT_EQ(o->image_pull_timeout_ns, 300'000'000'000);
  EXPECT_EQ(o->pull_activity_timeout_ns, 120'000'000'000);
  EXPECT_EQ(docker::parse_options(M({{"image_store", S("/srv/images/")}}))->image_store_root, "/srv/images");
  auto dflt = docker::docker_default_capabilities();
  EXPECT_NE(std::find(dflt.begin(), dflt.end(), *oci::capability_from_name("CAP_NET_RAW")), dflt.end());
}

TEST(DockerOptions, ParsesAndNamesTheBadOption) {
  auto o = docker::parse_options(M({
      {"allow_caps", L({S("chown"), S("CAP_NET_RAW"), S("sys_admin")})},
      {"allow_privileged", B(true)},
      {"volumes", M({{"enabled", B(true)}})},
      {"pids_limit", I(300)},
      {"gc", M({{"dangling_containers", M({{"creation_grace", S("2m")}, {"dry_run", B(true)}})}})},
      {"allowed_modes", M({{"pid", L({S("host")})}, {"ipc", L({S("*")})}})},
      {"infra_image", S("https://registry.example/pause:1")},
  }));
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->allow_caps.size(), 3u);
  EXPECT_TRUE(o->allow_privileged && o->volumes_enabled && o->dangling_dry_run);
  EXPECT_EQ(o->pids_limit, 300);
  EXPECT_EQ(o->dangling_creation_grace_ns, 120'000'000'000);
  EXPECT_EQ(o->allowed_pid, std::vector<std::string>{"host"});
  EXPECT_EQ(o->infra_image, "registry.example/pause:1");
  auto flavor = make_docker_flavor();
  ASSERT_TRUE(flavor->configure(M({{"allow_privileged", B(true)}, {"pids_limit", I(300)}})));
  auto attrs = flavor->attributes();
  auto attr = [&](const std::string& k) {
    for (auto& [a, v] : attrs)
      if (a == k) return v;
    return std::string("<absent>");
  };
  EXPECT_EQ(attr("privileged.enabled"), "true");
  EXPECT_EQ(attr("pids.limit"), "300");
  EXPECT_EQ(attr("volumes.enabled"), "<absent>");
  EXPECT_EQ(attr("runtimes"), "husk");

  struct Bad {
    Value cfg;
    const char* names;
  } bad[] = {
      {M({{"allow_caps", L({S("chown"), S("bogus")})}}), "allow_caps[1]"},
      {M({{"gc", M({{"dangling_containers", M({{"creation_grace", S("30s")}})}})}}), "gc.dangling_containers.creation_grace"},
      {M({{"gc", M({{"image_delay", S("soon")}})}}), "gc.image_delay"},
      {M({{"pull_activity_timeout", S("10s")}}), "pull_activity_timeout"},
      {M({{"image_pull_timeout", S("5")}}), "image_pull_timeout"},
      {M({{"allowed_modes", M({{"uts", L({S("bogus")})}})}}), "allowed_modes.uts[0]"},
      {M({{"pids_limit", I(-1)}}), "pids_limit"},
      {M({{"image_store", S("var/lib/images")}}), "image_store: \"var/lib/images\""},
  };
  for (auto& b : bad) {
    auto r = docker::parse_options(b.cfg);
    ASSERT_FALSE(r) << b.names;
    EXPECT_NE(r.error().what().find(b.names), std::string::npos) << r.error().what();
  }
}

// ---- plan -----------------------------------------------------------------------------

class DockerPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-docker-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    alloc_ = root_ + "/alloc/0123";
    image_ = alloc_ + "/web/local/image";  // inside the allocation: allowed with volumes disabled
    fs::create_directories(image_ + "/etc");
    fs::create_directories(image_ + "/var/lib/app/sub");
    write(image_ + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    write(image_ + "/etc/group", "root:x:0:\napp:x:1000:\nvideo:x:44:\n");
    write(image_ + "/var/lib/app/sub/seed", "seeded\n");
    fs::create_directories(alloc_ + "/alloc/data");
    fs::create_directories(alloc_ + "/web/local/conf");
    fs::create_directories(alloc_ + "/web/secrets");
    fs::create_directories(root_ + "/state/tasks/c0ffee");
    task_dir_ = root_ + "/state/tasks/c0ffee";
    fs::create_directories(root_ + "/host/data");
    write(root_ + "/resolv.conf", "nameserver 192.0.2.53\n");
    write(root_ + "/hosts", "127.0.0.1 localhost\n");

    opts_ = *docker::parse_options(Value());
    opts_.rootless = false;
    opts_.apparmor = {};  // AppArmor off; the tests that want it on say so
    opts_.selinux_enabled = false;
    opts_.online_cpus = 4;
    opts_.host_resolv_conf = root_ + "/resolv.conf";
    opts_.host_hosts = root_ + "/hosts";
    opts_.host_dev = root_ + "/nodev";

    task_.id = "0123/web/abcd1234";
    task_.name = "web";
    task_.alloc_id = "0123";
    task_.job_name = "shop";
    task_.alloc_dir = alloc_;
    task_.env = {{"NOMAD_ALLOC_DIR", "/alloc"}, {"NOMAD_TASK_DIR", "/local"}, {"NOMAD_SECRETS_DIR", "/secrets"},
                 {"APP_MODE", "prod"}};
    task_.memory_mb = 256;
    task_.linux_cpu_shares = 512;
    task_.percent_ticks = 0.125;
  }
  void TearDown() override { fs::remove_all(root_); }

  static void write(const std::string& p, const std::string& s) { std::ofstream(p) << s; }
  static std::string read(const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  Result<BundlePlan> plan(std::vector<std::pair<std::string, Value>> extra) {
    std::vector<std::pair<std::string, Value>> cfg = {{"image", S("local/image")}, {"command", S("/bin/server")}};
    for (auto& e : extra) {
      std::erase_if(cfg, [&](const auto& c) { return c.first == e.first; });
      cfg.push_back(e);
    }
    Spec schema = docker::task_schema();
    auto decoded = decode_msgpack(encode_msgpack(Value::map(cfg), *schema), schema.get());
    if (!decoded) return std::unexpected(decoded.error());
    return docker::plan(opts_, task_, *decoded, "c0ffee0123456789abcdef", task_dir_);
  }
  static void expect_error(const Result<BundlePlan>& r, const std::string& field) {
    ASSERT_FALSE(r) << "expected an error naming " << field;
    EXPECT_NE(r.error().what().find(field), std::string::npos) << r.error().what();
  }
  static const oci::Mount* mount_at(const oci::Spec& s, const std::string& dst) {
    for (const auto& m : s.mounts)
      if (m.destination == dst) return &m;
    return nullptr;
  }
  static bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  }
  static int cap(const char* n) { return *oci::capability_from_name(n); }
  static bool has_ns(const oci::Spec& s, oci::NamespaceType t) {
    for (auto& n : s.linux->namespaces)
      if (n.type == t) return true;
    return false;
  }

  std::string root_, image_, alloc_, task_dir_;
  docker::Options opts_;
  TaskSpec task_;
};

TEST_F(DockerPlan, RealisticTask) {
  task_.user = "app";
  opts_.extra_labels = {"job_*"};
  auto r = plan({
      {"entrypoint", L({S("/bin/tini"), S("--")})},
      {"args", L({S("--port"), S("8080")})},
      {"work_dir", S("/srv")},
      {"hostname", S("web-1")},
      {"group_add", L({S("video"), S("2000")})},
      {"labels", L({M({{"team", S("web")}})})},
      {"sysctl", L({M({{"net.core.somaxconn", S("16384")}})})},
      {"ulimit", M({{"nofile", S("2048:4096")}})},
      {"shm_size", I(128 << 20)},
      {"pids_limit", I(200)},
      {"oom_score_adj", I(300)},
      {"readonly_rootfs", B(true)},
      {"tty", B(true)},
      {"dns_servers", L({S("192.0.2.1")})},
      {"dns_search_domains", L({S("corp.example")})},
      {"dns_options", L({S("ndots:2")})},
      {"extra_hosts", L({S("db:192.0.2.7")})},
  });
  ASSERT_TRUE(r) << r.error().str();
  const oci::Spec& s = r->spec;
  EXPECT_EQ(r->image_layers.front(), fs::canonical(image_).string());
  EXPECT_TRUE(s.root.readonly);
  const auto& p = *s.process;
  EXPECT_EQ(p.args, (std::vector<std::string>{"/bin/tini", "--", "/bin/server", "--port", "8080"}));
  EXPECT_EQ(p.cwd, "/srv");
  EXPECT_TRUE(p.terminal);
  EXPECT_FALSE(p.no_new_privileges);
  EXPECT_EQ(p.user.uid, 1000u);
  EXPECT_EQ(p.user.additional_gids, (std::vector<uint32_t>{44, 2000}));
  EXPECT_TRUE(has(p.env, "APP_MODE=prod"));
  EXPECT_TRUE(has(p.env, "HOSTNAME=web-1"));
  EXPECT_TRUE(has(p.env, "TERM=xterm"));
  EXPECT_TRUE(has(p.env, "HOME=/home/app"));
  EXPECT_EQ(s.hostname, "web-1");
  ASSERT_EQ(p.rlimits.size(), 1u);
  EXPECT_EQ(p.rlimits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(p.rlimits[0].soft, 2048u);
  EXPECT_EQ(p.rlimits[0].hard, 4096u);
  EXPECT_EQ(p.oom_score_adj, 300);
  EXPECT_EQ(s.linux->sysctl.at("net.core.somaxconn"), "16384");
  EXPECT_EQ(s.linux->resources->pids->limit, 200);
  EXPECT_TRUE(has(mount_at(s, "/dev/shm")->options, cat("size=", 128 << 20)));
  // docker's default set cut down to allow_caps: no NET_RAW.
  EXPECT_EQ(*p.capabilities->bounding, docker::default_allow_caps());
  EXPECT_TRUE(p.capabilities->inheritable->empty());
  ASSERT_TRUE(s.linux->seccomp);
  EXPECT_TRUE(has(*s.linux->masked_paths, "/proc/kcore"));
  EXPECT_TRUE(has(*s.linux->masked_paths, "/sys/devices/virtual/powercap"));
  EXPECT_TRUE(has(*s.linux->readonly_paths, "/proc/sys"));
  EXPECT_EQ(s.annotations.at("team"), "web");
  EXPECT_EQ(s.annotations.at("com.hashicorp.nomad.alloc_id"), "0123");
  EXPECT_EQ(s.annotations.at("com.hashicorp.nomad.job_name"), "shop");
  EXPECT_EQ(s.annotations.count("com.hashicorp.nomad.task_name"), 0u);
  EXPECT_EQ(mount_at(s, "/alloc")->source, alloc_ + "/alloc");
  EXPECT_EQ(mount_at(s, "/local")->source, alloc_ + "/web/local");
  EXPECT_EQ(mount_at(s, "/secrets")->source, alloc_ + "/web/secrets");
  EXPECT_EQ(read(task_dir_ + "/resolv.conf"), "nameserver 192.0.2.1\nsearch corp.example\noptions ndots:2\n");
  EXPECT_NE(read(task_dir_ + "/hosts").find("192.0.2.7\tdb\n"), std::string::npos);
  EXPECT_EQ(read(task_dir_ + "/hostname"), "web-1\n");
  // Default network: husk's bridge.
  EXPECT_EQ(s.annotations.at("run.husk.network"), "bridge");
  EXPECT_TRUE(has_ns(s, oci::NamespaceType::Cgroup));
}

TEST_F(DockerPlan, CapabilitiesStayWithinAllowCaps) {
  auto r = plan({{"cap_add", L({S("net_raw")})}});
  expect_error(r, "config.cap_add[0]");
  EXPECT_NE(r.error().what().find("allow_caps"), std::string::npos);
  opts_.allow_caps.push_back(cap("CAP_NET_RAW"));
  opts_.allow_caps.push_back(cap("CAP_SYS_TIME"));
  r = plan({{"cap_add", L({S("CAP_SYS_TIME")})}, {"cap_drop", L({S("chown")})}});
  ASSERT_TRUE(r) << r.error().str();
  auto& b = *r->spec.process->capabilities->bounding;
  EXPECT_TRUE(std::find(b.begin(), b.end(), cap("CAP_NET_RAW")) != b.end());  // docker's default, now allowed
  EXPECT_TRUE(std::find(b.begin(), b.end(), cap("CAP_SYS_TIME")) != b.end());
  EXPECT_TRUE(std::find(b.begin(), b.end(), cap("CAP_CHOWN")) == b.end());
  r = plan({{"cap_drop", L({S("all")})}, {"cap_add", L({S("kill")})}});
  ASSERT_TRUE(r);
  EXPECT_EQ(*r->spec.process->capabilities->bounding, std::vector<int>{cap("CAP_KILL")});
  expect_error(plan({{"cap_add", L({S("all")})}}), "config.cap_add");
  expect_error(plan({{"cap_drop", L({S("nonsense")})}}), "config.cap_drop[0]");
}

TEST_F(DockerPlan, PrivilegedNeedsTheOperator) {
  expect_error(plan({{"privileged", B(true)}}), "config.privileged");
  opts_.allow_privileged = true;
  auto r = plan({{"privileged", B(true)}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->capabilities->bounding->size(), static_cast<size_t>(oci::last_capability() + 1));
  EXPECT_FALSE(r->spec.linux->seccomp);
  EXPECT_TRUE(r->spec.linux->masked_paths->empty());
}

TEST_F(DockerPlan, NamespaceModesFollowAllowedModes) {
  expect_error(plan({{"pid_mode", S("host")}}), "config.pid_mode");
  expect_error(plan({{"ipc_mode", S("host")}}), "allowed_modes.ipc");
  opts_.allowed_pid = {"h*"};
  opts_.allowed_ipc = {"host"};
  opts_.allowed_uts = {"host"};
  opts_.allowed_userns = {"host", "private"};
  auto r = plan({{"pid_mode", S("host")}, {"ipc_mode", S("host")}, {"uts_mode", S("host")},
                 {"userns_mode", S("host")}, {"cgroupns", S("host")}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(has_ns(r->spec, oci::NamespaceType::Pid));
  EXPECT_FALSE(has_ns(r->spec, oci::NamespaceType::Ipc));
  EXPECT_FALSE(has_ns(r->spec, oci::NamespaceType::Uts));
  EXPECT_FALSE(has_ns(r->spec, oci::NamespaceType::Cgroup));
  expect_error(plan({{"userns_mode", S("private")}}), "config.userns_mode");
  expect_error(plan({{"uts_mode", S("host")}, {"hostname", S("x")}}), "config.hostname");
  expect_error(plan({{"cgroupns", S("shared")}}), "config.cgroupns");
  opts_.allow_privileged = true;  // bypasses allowed_modes, as in the docker driver
  opts_.allowed_pid.clear();
  EXPECT_TRUE(plan({{"pid_mode", S("host")}}));
}

TEST_F(DockerPlan, NetworkModesAndPorts) {
  task_.ports = {TaskPort{"http", 25000, 8080, "127.0.0.1"}, TaskPort{"admin", 25001, 0, ""}};
  auto r = plan({{"ports", L({S("http")})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.annotations.at("run.husk.ports"), "127.0.0.1:25000:8080/tcp,127.0.0.1:25000:8080/udp");
  r = plan({{"port_map", L({M({{"admin", I(9000)}})})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.annotations.at("run.husk.ports"), "25001:9000/tcp,25001:9000/udp");
  EXPECT_TRUE(has(r->spec.process->env, "NOMAD_PORT_admin=9000"));
  expect_error(plan({{"ports", L({S("nope")})}}), "config.ports[0]");

  r = plan({{"network_mode", S("host")}});
  ASSERT_TRUE(r);
  EXPECT_FALSE(has_ns(r->spec, oci::NamespaceType::Network));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(r->spec.hostname, std::string(host));
  r = plan({{"network_mode", S("none")}});
  ASSERT_TRUE(r);
  EXPECT_TRUE(has_ns(r->spec, oci::NamespaceType::Network));
  EXPECT_EQ(r->spec.annotations.count("run.husk.network"), 0u);
  expect_error(plan({{"network_mode", S("container:db")}}), "config.network_mode");
  // Another task's container, by husk id or by the docker driver's name.
  std::string alloc = "6c929dbc-1d8c-4a5e-9c3b-0123456789ab";
  fs::create_directories(root_ + "/state/containers/" + alloc + "-db-080917dc");
  for (std::string name : {alloc + "-db-080917dc", "db-" + alloc}) {
    r = plan({{"network_mode", S("container:" + name)}});
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(r->spec.annotations.at("run.husk.network"), "container:" + alloc + "-db-080917dc");
    EXPECT_TRUE(has_ns(r->spec, oci::NamespaceType::Network));
  }
  // A user-defined network: husk's bridge of that name, static addresses on it.
  r = plan({{"network_mode", S("my-net")}, {"ipv4_address", S("172.20.0.5")}, {"ipv6_address", S("fd20::5")}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.annotations.at("run.husk.network"), "bridge:my-net");
  EXPECT_EQ(r->spec.annotations.at("run.husk.ip"), "172.20.0.5");
  EXPECT_EQ(r->spec.annotations.at("run.husk.ip6"), "fd20::5");
  EXPECT_TRUE(has_ns(r->spec, oci::NamespaceType::Network));
  // Its docker name, then network_aliases: names the network's other containers know it by.
  EXPECT_EQ(r->spec.annotations.at("run.husk.aliases"), task_.name + "-" + task_.alloc_id);
  r = plan({{"network_mode", S("my-net")}, {"network_aliases", L({S("db"), S("db.internal")})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.annotations.at("run.husk.aliases"), task_.name + "-" + task_.alloc_id + ",db,db.internal");
  // The task's resolv.conf has the host's resolvers: husk may point it at
  // the network's DNS server. Not when the task names its own servers.
  auto resolv = r->spec.annotations.find("run.husk.resolv-file");
  ASSERT_NE(resolv, r->spec.annotations.end());
  EXPECT_TRUE(resolv->second.ends_with("/resolv.conf")) << resolv->second;
  auto own = plan({{"network_mode", S("my-net")}, {"dns_servers", L({S("192.0.2.1")})}});
  ASSERT_TRUE(own) << own.error().str();
  EXPECT_EQ(own->spec.annotations.count("run.husk.resolv-file"), 0u);
  expect_error(plan({{"network_mode", S("my-net")}, {"network_aliases", L({S("db"), S("not ok")})}}),
               "config.network_aliases[1]");
  EXPECT_EQ(plan({})->spec.annotations.count("run.husk.aliases"), 0u);  // the default network has no names
  // DriverNetwork: the address is reported on husk's bridge, auto-advertised
  // on a user-defined network or with advertise_ipv6_address (docker's rule).
  EXPECT_TRUE(r->advertise.enabled && r->advertise.auto_advertise && !r->advertise.ipv6);
  auto dflt = plan({});
  EXPECT_TRUE(dflt->advertise.enabled && !dflt->advertise.auto_advertise);
  auto six = plan({{"advertise_ipv6_address", B(true)}});
  EXPECT_TRUE(six->advertise.ipv6 && six->advertise.auto_advertise);
  auto hostnet = plan({{"network_mode", S("host")}, {"advertise_ipv6_address", B(true)}});
  ASSERT_TRUE(hostnet);
  EXPECT_FALSE(hostnet->advertise.enabled);
  EXPECT_FALSE(hostnet->warnings.empty());
  expect_error(plan({{"network_mode", S("a-network-name-too-long")}}), "config.network_mode");
  expect_error(plan({{"network_mode", S("bad name")}}), "config.network_mode");
  auto e = plan({{"ipv4_address", S("10.89.0.5")}});  // the default network: as dockerd, an error
  expect_error(e, "config.ipv4_address");
  EXPECT_NE(e.error().what().find("user-defined network"), std::string::npos) << e.error().what();
  expect_error(plan({{"network_mode", S("my-net")}, {"ipv4_address", S("fd20::5")}}), "config.ipv4_address");
  expect_error(plan({{"network_mode", S("my-net")}, {"ipv6_address", S("172.20.0.5")}}), "config.ipv6_address");
  expect_error(plan({{"network_mode", S("host")}, {"ipv6_address", S("fd20::5")}}), "config.ipv6_address");

  task_.network_mode = NetworkMode::Group;
  task_.netns_path = "/var/run/netns/0123";
  r = plan({});
  ASSERT_TRUE(r);
  bool joined = false;
  for (auto& n : r->spec.linux->namespaces) joined = joined || (n.type == oci::NamespaceType::Network && n.path == task_.netns_path);
  EXPECT_TRUE(joined);
  EXPECT_EQ(r->spec.annotations.count("run.husk.ports"), 0u);
}

TEST_F(DockerPlan, ShareableIpcHasADevShmOthersCanBind) {
  opts_.allowed_ipc = {"*"};
  auto r = plan({{"ipc_mode", S("shareable")}, {"shm_size", I(32 << 20)}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->shareable_shm_bytes, 32 << 20);
  const oci::Mount* shm = nullptr;
  for (const auto& m : r->spec.mounts)
    if (m.destination == "/dev/shm") shm = &m;
  ASSERT_NE(shm, nullptr);
  EXPECT_EQ(shm->type, "bind");
  EXPECT_EQ(shm->source, task_dir_ + "/shm");
  EXPECT_EQ(plan({{"ipc_mode", S("shareable")}})->shareable_shm_bytes, 64 << 20);
  EXPECT_EQ(plan({{"ipc_mode", S("private")}})->shareable_shm_bytes, 0);
  opts_.rootless = true;
  auto rl = plan({{"ipc_mode", S("shareable")}, {"network_mode", S("none")}});
  ASSERT_TRUE(rl) << rl.error().str();
  EXPECT_EQ(rl->shareable_shm_bytes, 0);
  ASSERT_FALSE(rl->warnings.empty());
  EXPECT_NE(rl->warnings.back().find("config.ipc_mode"), std::string::npos);
}

TEST_F(DockerPlan, InteractiveAndJoiningAnotherContainersNamespaces) {
  auto r = plan({{"interactive", B(true)}});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->interactive);
  EXPECT_FALSE(plan({})->interactive);
  // container:NAME needs a running task of this driver; none here.
  opts_.allowed_pid = {"*"};
  opts_.allowed_ipc = {"*"};
  for (const char* k : {"pid_mode", "ipc_mode"}) {
    auto e = plan({{k, S("container:web-0123")}});
    expect_error(e, cat("config.", k));
    EXPECT_NE(e.error().what().find("no container of this driver"), std::string::npos) << e.error().what();
  }
  expect_error(plan({{"pid_mode", S("shared")}}), "config.pid_mode");
  expect_error(plan({{"ipc_mode", S("other")}}), "config.ipc_mode");
}

TEST_F(DockerPlan, MacAddressOnTheBridge) {
  auto r = plan({{"mac_address", S("02:42:ac:11:00:02")}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.annotations["run.husk.mac"], "02:42:ac:11:00:02");
  expect_error(plan({{"mac_address", S("01:00:5e:00:00:01")}}), "config.mac_address");  // multicast
  expect_error(plan({{"mac_address", S("02:42:ac")}}), "config.mac_address");
  expect_error(plan({{"mac_address", S("02:42:ac:11:00:02")}, {"network_mode", S("host")}}), "config.mac_address");
}

TEST_F(DockerPlan, DockerdOnlyFieldsAreErrorsNamingThem) {
  std::pair<const char*, Value> refused[] = {
      {"runtime", S("runsc")},          {"isolation", S("hyperv")},       {"storage_opt", M({{"size", S("40G")}})},
      {"load", S("image.tar")},         {"network_aliases", L({S("db")})},
      {"volume_driver", S("rexray")},
  };
  for (auto& [k, v] : refused) expect_error(plan({{k, v}}), cat("config.", k));
  opts_.allow_runtimes.push_back("runsc");
  auto r = plan({{"runtime", S("runsc")}});
  expect_error(r, "config.runtime");
  EXPECT_NE(r.error().what().find("husk is the OCI runtime"), std::string::npos);
  EXPECT_TRUE(plan({{"runtime", S("runc")}}));
  expect_error(plan({{"image", S("docker.io/library/redis:7")}}), "config.image");
  expect_error(plan({{"command", S(" /bin/sh")}}), "config.command");
}

TEST_F(DockerPlan, MemoryCpuAndPids) {
  auto r = plan({});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->spec.linux->resources->memory->limit, 256 << 20);
  EXPECT_EQ(r->spec.linux->resources->memory->swap, 256 << 20);
  EXPECT_EQ(r->spec.linux->resources->cpu->shares, 512u);
  EXPECT_FALSE(r->spec.linux->resources->cpu->quota);
  r = plan({{"memory_hard_limit", I(512)}, {"cpu_hard_limit", B(true)}, {"cpu_cfs_period", I(50000)}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->spec.linux->resources->memory->limit, 512 << 20);
  EXPECT_EQ(r->spec.linux->resources->memory->reservation, 256 << 20);
  EXPECT_EQ(r->spec.linux->resources->cpu->period, 50000u);
  EXPECT_EQ(r->spec.linux->resources->cpu->quota, 25000);  // 0.125 x 50000 x 4 CPUs
  expect_error(plan({{"memory_hard_limit", I(128)}}), "config.memory_hard_limit");
  expect_error(plan({{"cpu_cfs_period", I(2000000)}}), "config.cpu_cfs_period");
  opts_.pids_limit = 100;
  expect_error(plan({{"pids_limit", I(200)}}), "config.pids_limit");
  r = plan({});
  EXPECT_EQ(r->spec.linux->resources->pids->limit, 100);
  expect_error(plan({{"oom_score_adj", I(2000)}}), "config.oom_score_adj");
  expect_error(plan({{"ulimit", M({{"nofile", S("10:5")}})}}), "config.ulimit.nofile");
  expect_error(plan({{"sysctl", M({{"kernel.panic", S("1")}})}}), "config.sysctl.kernel.panic");
}

TEST_F(DockerPlan, VolumesFollowThePluginPolicy) {
  auto r = plan({{"volumes", L({S("local/conf:/etc/app:ro")})}});
  ASSERT_TRUE(r) << r.error().str();
  const oci::Mount* m = mount_at(r->spec, "/etc/app");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->source, alloc_ + "/web/local/conf");  // relative to the task dir, as docker does
  EXPECT_TRUE(has(m->options, "ro"));
  auto bad = plan({{"volumes", L({S("local/conf:/a"), S(root_ + "/host/data:/data")})}});
  expect_error(bad, "config.volumes[1]");
  EXPECT_NE(bad.error().what().find("volumes.enabled"), std::string::npos);
  expect_error(plan({{"volumes", L({S("local/conf:/a:bogus")})}}), "config.volumes[0]");
  expect_error(plan({{"volumes", L({S("local/missing:/a")})}}), "config.volumes[0]");
  opts_.volumes_enabled = true;
  r = plan({{"volumes", L({S(root_ + "/host/data:/data:rshared")})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(has(mount_at(r->spec, "/data")->options, "rshared"));
}

TEST_F(DockerPlan, MountBlocks) {
  auto r = plan({{"mount", L({M({{"type", S("bind")}, {"source", S("local/conf")}, {"target", S("/conf")},
                                 {"readonly", B(true)}, {"bind_options", M({{"propagation", S("rslave")}})}}),
                              M({{"type", S("tmpfs")}, {"target", S("/scratch")},
                                 {"tmpfs_options", M({{"size", I(1 << 20)}, {"mode", I(0700)}})}})})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(mount_at(r->spec, "/conf")->options, (std::vector<std::string>{"rbind", "rslave", "ro"}));
  const oci::Mount* t = mount_at(r->spec, "/scratch");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->type, "tmpfs");
  EXPECT_TRUE(has(t->options, "size=1048576"));
  EXPECT_TRUE(has(t->options, "mode=700"));
  expect_error(plan({{"mount", L({M({{"type", S("tmpfs")}, {"source", S("x")}, {"target", S("/t")}})})}}),
               "config.mount[0].source");
  expect_error(plan({{"mount", L({M({{"type", S("nfs")}, {"target", S("/t")}})})}}), "config.mount[0].type");
  expect_error(plan({{"mount", L({M({{"target", S("/v")}, {"source", S("cache")}})})}}), "config.mount[0]");

  // A named volume: a directory under the state dir, seeded from the image.
  opts_.volumes_enabled = true;
  auto vol = M({{"target", S("/var/lib/app")}, {"source", S("appdata")}});
  // A bad field after the mount leaves no volume behind.
  expect_error(plan({{"mount", L({vol})}, {"extra_hosts", L({S("nocolon")})}}), "config.extra_hosts[0]");
  EXPECT_FALSE(fs::exists(root_ + "/state/volumes/appdata"));
  r = plan({{"mount", L({vol})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(mount_at(r->spec, "/var/lib/app")->source, root_ + "/state/volumes/appdata");
  EXPECT_EQ(read(root_ + "/state/volumes/appdata/sub/seed"), "seeded\n");
  r = plan({{"mount", L({M({{"target", S("/var/lib/app")}, {"volume_options", M({{"no_copy", B(true)}})}})})}});
  ASSERT_TRUE(r) << r.error().str();
  std::string anon = mount_at(r->spec, "/var/lib/app")->source.value();
  EXPECT_EQ(anon.rfind(task_dir_ + "/volumes/", 0), 0u) << anon;
  EXPECT_TRUE(fs::is_empty(anon));
  expect_error(plan({{"mount", L({M({{"target", S("/v")},
                                     {"volume_options", M({{"driver_config", M({{"name", S("rexray")}})}})}})})}}),
               "config.mount[0].volume_options.driver_config.name");
}

TEST_F(DockerPlan, DeviceBlocks) {
  auto r = plan({{"devices", L({M({{"host_path", S("/dev/null")}, {"container_path", S("/dev/mynull")},
                                   {"cgroup_permissions", S("rw")}})})}});
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->spec.linux->devices.size(), 1u);
  EXPECT_EQ(r->spec.linux->devices[0].path, "/dev/mynull");
  EXPECT_EQ(r->spec.linux->resources->devices.back().access, "rw");
  expect_error(plan({{"devices", L({M({{"host_path", S("/dev/null")}, {"cgroup_permissions", S("rwx")}})})}}),
               "config.devices[0]");
  expect_error(plan({{"devices", L({M({{"container_path", S("/dev/x")}})})}}), "config.devices[0].host_path");
}

TEST_F(DockerPlan, SecurityOptions) {
  // A docker profile: archMap, and rules that hold only with a capability.
  write(root_ + "/profile.json", R"({
    "defaultAction": "SCMP_ACT_ERRNO",
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
    "syscalls": [
      {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
      {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
    ]})");
  auto r = plan({{"security_opt", L({S("seccomp=" + root_ + "/profile.json"), S("no-new-privileges")})}});
  ASSERT_TRUE(r) << r.error().str();
  const auto& sc = *r->spec.linux->seccomp;
  EXPECT_EQ(sc.architectures, (std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
  ASSERT_EQ(sc.syscalls.size(), 2u);  // mount's rule needs CAP_SYS_ADMIN, which the task lacks
  EXPECT_EQ(sc.syscalls[1].names, std::vector<std::string>{"chown"});
  EXPECT_TRUE(r->spec.process->no_new_privileges);
  r = plan({{"security_opt", L({S("seccomp:unconfined")})}});
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->spec.linux->seccomp);
  write(root_ + "/bad.json", R"({"defaultAction": "SCMP_ACT_NOPE"})");
  expect_error(plan({{"security_opt", L({S("label=disable"), S("seccomp=" + root_ + "/bad.json")})}}),
               "config.security_opt[1]");
  expect_error(plan({{"security_opt", L({S("seccomp=" + root_ + "/missing.json")})}}), "config.security_opt[0]");
  expect_error(plan({{"security_opt", L({S("apparmor=docker-default")})}}), "config.security_opt");
  expect_error(plan({{"security_opt", L({S("bogus")})}}), "config.security_opt[0]");
  EXPECT_TRUE(plan({{"security_opt", L({S("apparmor=unconfined")})}}));
}

// As dockerd's docker-default: husk-default for every task that names no
// profile where the host runs AppArmor, loaded first; privileged and
// apparmor=unconfined tasks run without one; a default that cannot be
// loaded fails the task.
TEST_F(DockerPlan, TasksThatNameNoAppArmorProfileRunUnderHuskDefault) {
  int loads = 0;
  opts_.apparmor = {true, [&]() -> Result<> {
                      ++loads;
                      return {};
                    }};
  opts_.allow_privileged = true;
  auto r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->apparmor_profile, std::optional<std::string>("husk-default"));
  EXPECT_EQ(loads, 1);
  r = plan({{"privileged", B(true)}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->spec.process->apparmor_profile);
  r = plan({{"security_opt", L({S("apparmor=unconfined")})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->spec.process->apparmor_profile);
  EXPECT_EQ(loads, 1);

  opts_.apparmor.ensure = []() -> Result<> { return fail_msg("apparmor_parser is not installed"); };
  r = plan({{"security_opt", L({S("no-new-privileges")})}});
  expect_error(r, "config.security_opt: ");
  EXPECT_NE(r.error().str().find("husk-default"), std::string::npos) << r.error().str();
  EXPECT_NE(r.error().str().find("security_opt = [\"apparmor=unconfined\"]"), std::string::npos) << r.error().str();

  opts_.apparmor = {};  // AppArmor off: none, no error
  r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->spec.process->apparmor_profile);
}

TEST_F(DockerPlan, ImageDirectoriesOutsideTheAllocationNeedVolumes) {
  fs::create_directories(root_ + "/images/busy/etc");
  auto r = plan({{"image", S(root_ + "/images/busy")}});
  expect_error(r, "config.image");
  opts_.volumes_enabled = true;
  r = plan({{"image", S(root_ + "/images/busy")}});
  ASSERT_TRUE(r) << r.error().str();
}

TEST_F(DockerPlan, LoggingAndPullFieldsWarnOnly) {
  auto r = plan({{"force_pull", B(true)},
                 {"auth", M({{"username", S("u")}, {"password", S("p")}})},
                 {"cpuset_cpus", S("0-1")},
                 {"image_pull_timeout", S("10m")}});
  ASSERT_TRUE(r) << r.error().str();
  std::string all;
  for (auto& w : r->warnings) all += w + "\n";
  EXPECT_NE(all.find("config.cpuset_cpus"), std::string::npos) << all;
  // etwlogs: Windows's, an error here as under dockerd on Linux; logentries
  // is gone from docker (v25), and a name docker has no driver of is its
  // error too.
  expect_error(plan({{"logging", M({{"type", S("etwlogs")}})}}),
               "config.logging.type = \"etwlogs\": Event Tracing for Windows is a Windows log driver");
  expect_error(plan({{"logging", M({{"type", S("logentries")}, {"config", L({M({{"logentries-token", S("x")}})})}})}}),
               "config.logging.type = \"logentries\": the Logentries service closed on 15 November 2022");
  expect_error(plan({{"logging", M({{"type", S("lumberjack")}})}}),
               "config.logging.type = \"lumberjack\": not a docker log driver husk has (json-file, local,");
  expect_error(plan({{"image_pull_timeout", S("later")}}), "config.image_pull_timeout");
}


TEST_F(DockerPlan, JournaldAndSyslogBecomeTheMonitorsLogDriver) {
  auto r = plan({{"labels", L({M({{"com.example.team", S("payments")}, {"other", S("x")}})})},
                 {"logging", M({{"type", S("journald")},
                                {"config", L({M({{"tag", S("{{.Name}}/{{.ID}}")}, {"labels", S("com.example.team")},
                                                 {"env-regex", S("^APP_")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "journald");
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"tag=web-0123/c0ffee012345", "name=web-0123",
                                                    "field=COM_EXAMPLE_TEAM=payments", "field=APP_MODE=prod"}));
  EXPECT_FALSE(r->discard_output);

  r = plan({{"logging", M({{"type", S("syslog")},
                           {"config", L({M({{"syslog-address", S("udp://127.0.0.1:5514")},
                                            {"syslog-facility", S("local3")}, {"syslog-format", S("rfc5424")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "syslog");
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"address=udp://127.0.0.1:5514", "facility=local3",
                                                    "format=rfc5424", "tag=c0ffee012345"}));

  // The plugin's logging block is the default; disable_log_collection
  // keeps the output from Nomad's files but not from syslog.
  opts_.logging_type = "syslog";
  opts_.logging_config = {{"tag", "{{.ImageName}}"}};
  opts_.disable_log_collection = true;
  r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"tag=local/image"}));
  EXPECT_TRUE(r->discard_output);
}

// gelf and fluentd: docker's options with the driver's prefix dropped
// become husk's --log-opt, docker's fields (name, image, command) are
// filled in, and labels/env(-regex) go as extra fields with env winning.
TEST_F(DockerPlan, GelfAndFluentdBecomeTheMonitorsLogDriver) {
  auto r = plan({{"labels", L({M({{"team", S("payments")}, {"APP_MODE", S("label")}})})},
                 {"args", L({S("--port"), S("80")})},
                 {"logging", M({{"type", S("gelf")},
                                {"config", L({M({{"gelf-address", S("udp://127.0.0.1:12201")},
                                                 {"gelf-compression-type", S("zlib")},
                                                 {"gelf-compression-level", S("6")}, {"tag", S("{{.Name}}")},
                                                 {"labels", S("team,APP_MODE")}, {"env", S("APP_MODE")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "gelf");
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{
                             "address=udp://127.0.0.1:12201", "compression-level=6", "compression-type=zlib",
                             "tag=web-0123", "name=web-0123", "image-name=local/image", "image-id=",
                             "command=/bin/server --port 80", "field=APP_MODE=label", "field=team=payments",
                             "field=APP_MODE=prod"}));
  EXPECT_FALSE(r->discard_output);

  r = plan({{"logging", M({{"type", S("gelf")},
                           {"config", L({M({{"gelf-address", S("tcp://graylog:12201")},
                                            {"gelf-tcp-max-reconnect", S("5")},
                                            {"gelf-tcp-reconnect-delay", S("2")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(std::vector<std::string>(r->log.opts.begin(), r->log.opts.begin() + 4),
            (std::vector<std::string>{"address=tcp://graylog:12201", "tcp-max-reconnect=5", "tcp-reconnect-delay=2",
                                      "tag=c0ffee012345"}));

  r = plan({{"logging", M({{"type", S("fluentd")},
                           {"config", L({M({{"fluentd-address", S("unix:///run/fluentd.sock")},
                                            {"fluentd-async", S("true")},
                                            {"fluentd-async-reconnect-interval", S("2s")},
                                            {"fluentd-buffer-limit", S("8m")},
                                            {"fluentd-retry-wait", S("500ms")}, {"fluentd-max-retries", S("10")},
                                            {"fluentd-sub-second-precision", S("true")},
                                            {"fluentd-request-ack", S("true")}, {"fluentd-write-timeout", S("5s")},
                                            {"env-regex", S("^APP_")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "fluentd");
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{
                             "address=unix:///run/fluentd.sock", "async=true", "async-reconnect-interval=2s",
                             "buffer-limit=8m",
                             "max-retries=10", "request-ack=true", "retry-wait=500ms", "sub-second-precision=true",
                             "write-timeout=5s", "tag=c0ffee012345", "name=/web-0123", "field=APP_MODE=prod"}));

  // docker's default fluentd-address is husk's; an empty value is the default.
  r = plan({{"logging", M({{"type", S("fluentd")}, {"config", L({M({{"fluentd-address", S("")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"tag=c0ffee012345", "name=/web-0123"}));
}

// splunk: docker's splunk-* options without the prefix, the token passed
// even when empty, labels/env as the event's attrs, tag = "" kept (no tag).
TEST_F(DockerPlan, SplunkBecomesTheMonitorsLogDriver) {
  auto r = plan({{"labels", L({M({{"team", S("payments")}})})},
                 {"logging", M({{"type", S("splunk")},
                                {"config", L({M({{"splunk-url", S("https://hec:8088")}, {"splunk-token", S("T0K")},
                                                 {"splunk-index", S("main")}, {"splunk-capath", S("/ca.pem")},
                                                 {"splunk-format", S("json")}, {"splunk-gzip", S("true")},
                                                 {"splunk-verify-connection", S("false")}, {"labels", S("team")},
                                                 {"env", S("APP_MODE")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "splunk");
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"capath=/ca.pem", "format=json", "gzip=true", "index=main",
                                                    "token=T0K", "url=https://hec:8088", "verify-connection=false",
                                                    "tag=c0ffee012345", "field=team=payments",
                                                    "field=APP_MODE=prod"}));
  r = plan({{"logging", M({{"type", S("splunk")}, {"config", L({M({{"splunk-url", S("https://hec:8088")},
                                                                   {"splunk-token", S("")}, {"tag", S("")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"token=", "url=https://hec:8088", "tag="}));
  auto cfg = [](const char* k, const char* v) {
    return std::pair<std::string, Value>{"logging", M({{"type", S("splunk")}, {"config", L({M({{k, S(v)}})})}})};
  };
  expect_error(plan({cfg("splunk-token", "t")}), "config.logging.config.splunk-url");
  expect_error(plan({cfg("splunk-url", "https://hec:8088")}), "config.logging.config.splunk-token");
  expect_error(plan({cfg("splunk-batch", "5")}), "config.logging.config.splunk-batch");
}

// syslog over tcp+tls: syslog-tls-* as husk's tls-*, skip-verify by its
// presence as in docker; without a tcp+tls:// address docker ignores them.
TEST_F(DockerPlan, SyslogTlsOptionsGoWithATlsAddress) {
  auto r = plan({{"logging", M({{"type", S("syslog")},
                                {"config", L({M({{"syslog-address", S("tcp+tls://logs:6514")},
                                                 {"syslog-tls-ca-cert", S("/ca.pem")}, {"syslog-tls-cert", S("/c.pem")},
                                                 {"syslog-tls-key", S("/k.pem")},
                                                 {"syslog-tls-skip-verify", S("false")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"address=tcp+tls://logs:6514", "tls-ca-cert=/ca.pem",
                                                    "tls-cert=/c.pem", "tls-key=/k.pem", "tls-skip-verify=true",
                                                    "tag=c0ffee012345"}));
  r = plan({{"logging", M({{"type", S("syslog")}, {"config", L({M({{"syslog-address", S("udp://logs:514")},
                                                                   {"syslog-tls-ca-cert", S("/ca.pem")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"address=udp://logs:514", "tag=c0ffee012345"}));
}

// awslogs: docker's awslogs-* without the prefix; the stream is
// awslogs-stream, else the tag, else the full container id.
TEST_F(DockerPlan, AwslogsBecomesTheMonitorsLogDriver) {
  auto r = plan({{"logging", M({{"type", S("awslogs")},
                                {"config", L({M({{"awslogs-region", S("eu-west-1")}, {"awslogs-group", S("/app")},
                                                 {"awslogs-create-group", S("true")},
                                                 {"awslogs-endpoint", S("http://127.0.0.1:4566")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "awslogs");
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"create-group=true", "endpoint=http://127.0.0.1:4566",
                                                    "group=/app", "region=eu-west-1",
                                                    "stream=c0ffee0123456789abcdef"}));
  r = plan({{"logging", M({{"type", S("awslogs")},
                           {"config", L({M({{"awslogs-group", S("/app")}, {"tag", S("{{.Name}}")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"group=/app", "stream=web-0123"}));
  r = plan({{"logging", M({{"type", S("awslogs")}, {"config", L({M({{"awslogs-group", S("/app")}, {"tag", S("x")},
                                                                    {"awslogs-stream", S("s1")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"group=/app", "stream=s1"}));
  auto cfg = [](const char* k, const char* v) {
    return std::pair<std::string, Value>{"logging", M({{"type", S("awslogs")}, {"config", L({M({{k, S(v)}})})}})};
  };
  expect_error(plan({cfg("awslogs-region", "eu-west-1")}), "config.logging.config.awslogs-group");
  expect_error(plan({cfg("awslogs-multiline-pattern", "(")}), "config.logging.config.awslogs-multiline-pattern");
  r = plan({{"logging", M({{"type", S("awslogs")}, {"config", L({M({{"awslogs-group", S("/app")},
                                                                    {"awslogs-credentials-endpoint", S("/v2/c")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts, (std::vector<std::string>{"credentials-endpoint=/v2/c", "group=/app", "stream=c0ffee0123456789abcdef"}));
  r = plan({{"logging", M({{"type", S("awslogs")}, {"config", L({M({{"awslogs-group", S("/app")},
                                                                    {"awslogs-multiline-pattern", S("^INFO")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.opts[1], "multiline-pattern=^INFO");
  expect_error(plan({{"logging", M({{"type", S("awslogs")},
                                    {"config", L({M({{"awslogs-group", S("/app")},
                                                     {"awslogs-datetime-format", S("%Y-%m-%d")},
                                                     {"awslogs-multiline-pattern", S("^INFO")}})})}})}}),
               "config.logging.config.awslogs-multiline-pattern");
  expect_error(plan({cfg("awslogs-format", "json/emf")}), "config.logging.config.awslogs-format");
}

// gcplogs: docker's gcp-* without the prefix, and what docker's entries
// name: the container ("/" before its name), its image and command, and the
// labels and env asked for as metadata. docker's gcplogs has no tag.
TEST_F(DockerPlan, GcplogsBecomesTheMonitorsLogDriver) {
  auto r = plan({{"labels", L({M({{"team", S("payments")}, {"other", S("x")}})})},
                 {"logging", M({{"type", S("gcplogs")},
                                {"config", L({M({{"gcp-project", S("my-proj")}, {"gcp-log-cmd", S("true")},
                                                 {"gcp-meta-zone", S("europe-west1-b")}, {"labels", S("team")},
                                                 {"env", S("APP_MODE")}})})}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->log.driver, "gcplogs");
  const auto& o = r->log.opts;
  ASSERT_GE(o.size(), 7u);
  EXPECT_EQ(std::vector<std::string>(o.begin(), o.begin() + 4),
            (std::vector<std::string>{"log-cmd=true", "meta-zone=europe-west1-b", "project=my-proj", "name=/web-0123"}));
  EXPECT_TRUE(o[4].starts_with("image-name=")) << o[4];
  EXPECT_TRUE(o[6].starts_with("command=")) << o[6];
  EXPECT_EQ(std::vector<std::string>(o.end() - 2, o.end()),
            (std::vector<std::string>{"field=team=payments", "field=APP_MODE=prod"}));
  for (const auto& kv : o) EXPECT_FALSE(kv.starts_with("tag=")) << kv;
  auto cfg = [](const char* k, const char* v) {
    return std::pair<std::string, Value>{"logging", M({{"type", S("gcplogs")}, {"config", L({M({{k, S(v)}})})}})};
  };
  expect_error(plan({cfg("tag", "{{.Name}}")}), "config.logging.config.tag: not an option of docker's gcplogs log driver");
  expect_error(plan({cfg("gcp-log-cmd", "maybe")}), "config.logging.config.gcp-log-cmd");
}

TEST_F(DockerPlan, LogNoneAndBadLogOptions) {
  auto r = plan({{"logging", M({{"type", S("none")}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->discard_output);
  EXPECT_EQ(r->log.driver, "");
  r = plan({{"logging", M({{"type", S("json-file")}})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->discard_output);
  auto cfg = [](const char* type, const char* k, const char* v) {
    return std::pair<std::string, Value>{"logging", M({{"type", S(type)}, {"config", L({M({{k, S(v)}})})}})};
  };
  expect_error(plan({cfg("journald", "syslog-address", "udp://x")}), "config.logging.config.syslog-address");
  expect_error(plan({cfg("journald", "tag", "{{.Labels}}")}), "config.logging.config.tag");
  expect_error(plan({cfg("journald", "labels-regex", "(")}), "config.logging.config.labels-regex");
  expect_error(plan({cfg("gelf", "gelf-compression-type", "gzip")}), "config.logging.config.gelf-address");
  expect_error(plan({cfg("gelf", "gelf-address", "tls://graylog:12201")}), "config.logging.config.gelf-address");
  expect_error(plan({cfg("gelf", "fluentd-address", "x")}), "config.logging.config.fluentd-address");
  expect_error(plan({cfg("fluentd", "gelf-address", "udp://x:1")}), "config.logging.config.gelf-address");
  ASSERT_TRUE(plan({cfg("fluentd", "fluentd-address", "tls://x:24224")}));  // husk-log's TLS, as docker's
  expect_error(plan({cfg("fluentd", "syslog-facility", "local0")}), "config.logging.config.syslog-facility");
}

// `load`: a `docker save` archive in the task directory, imported into the
// store; the image config applies as docker applies it.
TEST_F(DockerPlan, LoadImportsADockerArchiveAndAppliesTheImageConfig) {
  opts_.image_store_root = root_ + "/store";
  std::string layout = root_ + "/layout";
  std::string tarball = root_ + "/layer.tar";
  ASSERT_EQ(std::system(("tar --numeric-owner --owner=0 --group=0 -C " + image_ + " -cf " + tarball + " .").c_str()), 0);
  std::string cfg = husk::testing::write_oci_layout(layout, {read(tarball)},
                                                    R"({"Entrypoint":["/bin/app"],"Cmd":["--serve"],)"
                                                    R"("Env":["PATH=/app/bin","APP_MODE=image"],"WorkingDir":"/srv",)"
                                                    R"("User":"app","StopSignal":"SIGQUIT"})",
                                                    "v1");
  std::string archive = alloc_ + "/web/local/app.tar";
  ASSERT_EQ(std::system(("skopeo --insecure-policy copy -q oci:" + layout + ":v1 docker-archive:" + archive +
                         ":example/app:v1").c_str()),
            0);

  auto r = plan({{"image", S("example/app:v1")}, {"load", S("local/app.tar")}, {"command", Value()}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->args, (std::vector<std::string>{"/bin/app", "--serve"}));
  EXPECT_TRUE(has(r->spec.process->env, "APP_MODE=prod"));  // the task's Env wins
  EXPECT_TRUE(has(r->spec.process->env, "PATH=/app/bin"));
  EXPECT_EQ(r->spec.process->cwd, "/srv");
  EXPECT_EQ(r->spec.process->user.uid, 1000u);  // "app" in the image's /etc/passwd
  EXPECT_EQ(r->stop_signal, "SIGQUIT");
  EXPECT_EQ(r->image_id, cfg.substr(7));
  EXPECT_EQ(r->image_store, root_ + "/store");
  ASSERT_EQ(r->image_layers.size(), 1u);
  EXPECT_TRUE(fs::exists(r->image_layers[0] + "/var/lib/app/sub/seed"));
  // docker's rules: command (with args) replaces Cmd, entrypoint stays.
  auto c = plan({{"image", S("example/app:v1")}, {"load", S("local/app.tar")}, {"command", S("--once")},
                 {"args", L({S("-v")})}});
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->spec.process->args, (std::vector<std::string>{"/bin/app", "--once", "-v"}));
  // An archive outside the task directory, or missing, is an error naming load.
  expect_error(plan({{"image", S("example/app:v1")}, {"load", S("../../../../etc/passwd")}}), "config.load");
  expect_error(plan({{"image", S("example/app:v1")}, {"load", S("local/none.tar")}}), "config.load");
  // The wrong name in the archive is an error naming the image.
  expect_error(plan({{"image", S("other/app:v2")}, {"load", S("local/app.tar")}}), "config.image");
}

}  // namespace
