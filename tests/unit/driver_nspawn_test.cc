// The nspawn flavor's pure logic: its schemas against the reference field
// list (driver-fields.md §3), plugin options, the support table, and
// plan(): what each task config field of nomad-driver-nspawn turns into as
// an OCI spec and root filesystem mode, and the errors naming the field
// that cannot be honoured. Also GPT root partition lookup, SHA256SUMS, the
// private_users grammar and image_download over a loopback HTTP server.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "driver/disk_image.h"
#include "driver/flavor.h"
#include "driver/hclspec.h"
#include "driver/nspawn_flavor.h"
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

void write(const std::string& p, const std::string& s) {
  fs::create_directories(fs::path(p).parent_path());
  std::ofstream(p, std::ios::binary) << s;
}
std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- schemas ------------------------------------------------------------------

struct Field {
  const char* name;
  SpecNode::Kind kind;
  const char* type;
  const char* dflt;
  bool required;
};
using K = SpecNode::Kind;

const SpecNode* unwrap(const SpecNode* n, std::string* dflt) {
  if (n->kind == K::Default) {
    if (dflt) *dflt = n->children[1].second->literal;
    return n->children[0].second.get();
  }
  return n;
}

void expect_fields(const SpecNode& obj, const std::vector<Field>& want, const std::string& where) {
  ASSERT_EQ(obj.kind, K::Object);
  EXPECT_EQ(obj.children.size(), want.size()) << where;
  for (const auto& w : want) {
    auto it = std::find_if(obj.children.begin(), obj.children.end(), [&](const auto& c) { return c.first == w.name; });
    ASSERT_NE(it, obj.children.end()) << where << ": missing " << w.name;
    std::string dflt;
    const SpecNode* n = unwrap(it->second.get(), &dflt);
    EXPECT_EQ(n->kind, w.kind) << where << "." << w.name;
    if (w.kind == K::Attr) {
      EXPECT_EQ(n->type, w.type) << w.name;
    }
    EXPECT_EQ(n->required, w.required) << where << "." << w.name;
    EXPECT_EQ(dflt, w.dflt ? w.dflt : "") << where << "." << w.name;
  }
}

TEST(NspawnSchema, TaskConfigHasEveryReferenceField) {
  // driver-fields.md §3.1: 25 top-level fields, 4 in image_download.
  std::vector<Field> want = {
      {"image", K::Attr, "string", nullptr, true},
      {"image_download", K::Block, "", nullptr, false},
      {"boot", K::Attr, "bool", "true", false},
      {"process_two", K::Attr, "bool", nullptr, false},
      {"command", K::Attr, "list(string)", nullptr, false},
      {"ephemeral", K::Attr, "bool", nullptr, false},
      {"read_only", K::Attr, "bool", nullptr, false},
      {"volatile", K::Attr, "string", nullptr, false},
      {"user_namespacing", K::Attr, "bool", "true", false},
      {"private_users", K::Attr, "string", nullptr, false},
      {"private_users_ownership", K::Attr, "string", nullptr, false},
      {"console", K::Attr, "string", nullptr, false},
      {"pivot_root", K::Attr, "string", nullptr, false},
      {"resolv_conf", K::Attr, "string", nullptr, false},
      {"user", K::Attr, "string", nullptr, false},
      {"working_directory", K::Attr, "string", nullptr, false},
      {"bind", K::Attr, "list(map(string))", nullptr, false},
      {"bind_read_only", K::Attr, "list(map(string))", nullptr, false},
      {"environment", K::Attr, "list(map(string))", nullptr, false},
      {"capability", K::Attr, "list(string)", nullptr, false},
      {"ports", K::Attr, "list(string)", nullptr, false},
      {"port_map", K::Attr, "list(map(number))", nullptr, false},
      {"network_veth", K::Attr, "bool", "true", false},
      {"network_bridge", K::Attr, "string", nullptr, false},
      {"network_zone", K::Attr, "string", nullptr, false},
  };
  ASSERT_EQ(want.size(), 25u);
  Spec s = nspawn::task_schema();
  expect_fields(*s, want, "task");
  const SpecNode* dl = nullptr;
  for (const auto& [k, c] : s->children)
    if (k == "image_download") dl = unwrap(c.get(), nullptr)->children[0].second.get();
  ASSERT_NE(dl, nullptr);
  expect_fields(*dl,
                {{"url", K::Attr, "string", nullptr, true},
                 {"type", K::Attr, "string", "\"tar\"", false},
                 {"force", K::Attr, "bool", "false", false},
                 {"verify", K::Attr, "string", "\"no\"", false}},
                "task.image_download");
}

TEST(NspawnSchema, PluginConfigHasBothOptions) {
  expect_fields(*nspawn::plugin_schema(),
                {{"enabled", K::Attr, "bool", "true", false}, {"volumes", K::Attr, "bool", "true", false}}, "plugin");
}

TEST(NspawnSchema, SupportTableHasOneRowPerFieldInSchemaOrder) {
  auto f = make_nspawn_flavor();
  EXPECT_EQ(f->name(), "nspawn");
  std::vector<std::string> want;
  Spec task = f->task_schema(), plugin = f->plugin_schema();
  for (const auto& [k, c] : task->children) {
    if (k == "image_download") {
      want.push_back("config.image_download");
      for (const auto& [n, _] : unwrap(c.get(), nullptr)->children[0].second->children)
        want.push_back("config.image_download." + n);
      continue;
    }
    want.push_back("config." + k);
  }
  for (const auto& [k, c] : plugin->children) want.push_back("plugin." + k);
  std::vector<std::string> got;
  for (const auto& r : f->support()) {
    got.push_back(r.field);
    EXPECT_FALSE(r.note.empty()) << r.field;
  }
  EXPECT_EQ(got, want);
}

// ---- plugin options -------------------------------------------------------------

TEST(NspawnOptions, DefaultsAndValues) {
  auto d = nspawn::parse_options(Value());
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_TRUE(d->enabled);
  EXPECT_TRUE(d->volumes);
  auto o = nspawn::parse_options(M({{"enabled", B(false)}, {"volumes", B(false)}}));
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->enabled);
  EXPECT_FALSE(o->volumes);
  auto bad = nspawn::parse_options(M({{"volumes", S("maybe")}}));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().what().find("volumes"), std::string::npos) << bad.error().what();
}

TEST(NspawnOptions, DisabledFlavorAndAttributes) {
  auto f = make_nspawn_flavor();
  EXPECT_TRUE(f->enabled());
  ASSERT_TRUE(f->configure(M({{"enabled", B(false)}, {"volumes", B(false)}})));
  EXPECT_FALSE(f->enabled());
  std::map<std::string, std::string> attrs;
  for (auto& [k, v] : f->attributes()) attrs[k] = v;
  EXPECT_EQ(attrs["version"], nspawn::kSystemdVersion);
  EXPECT_EQ(attrs["volumes"], "false");
}

// ---- small parsers ---------------------------------------------------------------

TEST(NspawnImage, PrivateUsersGrammar) {
  auto free_all = [](uint32_t, uint32_t) { return false; };
  EXPECT_FALSE(*nspawn::parse_private_users("no", "m", 0, free_all));
  auto id = *nspawn::parse_private_users("identity", "m", 0, free_all);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->first, 0u);
  EXPECT_EQ(id->second, 65536u);
  auto yes = *nspawn::parse_private_users("yes", "m", 524288, free_all);
  EXPECT_EQ(yes->first, 524288u);
  auto n = *nspawn::parse_private_users("100000:5000", "m", 0, free_all);
  EXPECT_EQ(n->first, 100000u);
  EXPECT_EQ(n->second, 5000u);
  auto pick1 = *nspawn::parse_private_users("pick", "web-1", 0, free_all);
  auto pick2 = *nspawn::parse_private_users("", "web-1", 0, free_all);
  EXPECT_EQ(pick1, pick2);  // stable per machine
  EXPECT_GE(pick1->first, 0x80000u);
  EXPECT_EQ(pick1->first % 0x10000u, 0u);
  for (const char* bad : {"maybe", "1:0", "x:5", "4294967295:2"}) {
    auto r = nspawn::parse_private_users(bad, "m", 0, free_all);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().what().find("config.private_users"), std::string::npos);
  }
}

TEST(NspawnImage, PickPrefersTheImagesOwnFreeRangeThenTheHashThenTheNextFree) {
  std::set<uint32_t> used;
  auto in_use = [&](uint32_t base, uint32_t) { return used.count(base) > 0; };
  // An image shifted to a pickable range before keeps it while it is free.
  auto own = *nspawn::parse_private_users("pick", "web-1", 0x1230000, in_use);
  EXPECT_EQ(own->first, 0x1230000u);
  used.insert(0x1230000);
  auto hashed = *nspawn::parse_private_users("pick", "web-1", 0x1230000, in_use);
  EXPECT_NE(hashed->first, 0x1230000u);
  // An unaligned or host-range owner is no pick: the hash decides.
  EXPECT_EQ((*nspawn::parse_private_users("pick", "web-1", 0, in_use))->first, hashed->first);
  EXPECT_EQ((*nspawn::parse_private_users("pick", "web-1", 0x1230001, in_use))->first, hashed->first);
  used.insert(hashed->first);
  auto next = *nspawn::parse_private_users("pick", "web-1", 0, in_use);
  EXPECT_NE(next->first, hashed->first);
  EXPECT_EQ(next->first % 0x10000u, 0u);
  auto all = nspawn::parse_private_users("pick", "web-1", 0, [](uint32_t, uint32_t) { return true; });
  ASSERT_FALSE(all);
  EXPECT_NE(all.error().what().find("in use"), std::string::npos);
}

TEST(NspawnImage, HostRangeInUseSeesALiveUserNamespace) {
  if (geteuid() != 0) GTEST_SKIP() << "writing another range's uid_map needs root";
  constexpr uint32_t kBase = 0x6FFE0000u;
  // The initial namespace's own map (every process here) is not "in use".
  ASSERT_FALSE(nspawn::host_range_in_use(kBase, 0x10000u));
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(go[0], &c, 1);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  std::ofstream("/proc/" + std::to_string(child) + "/uid_map") << "0 " << kBase + 0x8000 << " 16\n";
  bool seen = nspawn::host_range_in_use(kBase, 0x10000u);
  bool other = nspawn::host_range_in_use(kBase - 0x10000u, 0x10000u);
  (void)!::write(go[1], "x", 1);
  waitpid(child, nullptr, 0);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
  EXPECT_TRUE(seen);    // any overlap counts
  EXPECT_FALSE(other);  // the range below is free
}

TEST(NspawnImage, ChecksumFromSha256Sums) {
  std::string sums = std::string(64, 'A') + "  other.tar\n" + std::string(64, 'b') + " *image.tar.xz\r\n";
  EXPECT_EQ(*nspawn::checksum_for(sums, "image.tar.xz"), std::string(64, 'b'));
  EXPECT_EQ(*nspawn::checksum_for(sums, "other.tar"), std::string(64, 'a'));
  EXPECT_FALSE(nspawn::checksum_for(sums, "missing.raw"));
}

TEST(NspawnImage, DownloadBlockIsValidated) {
  EXPECT_FALSE(*nspawn::parse_download(Value()));
  auto d = nspawn::parse_download(M({{"url", S("https://example.org/i.tar")}}));
  ASSERT_TRUE(d && *d);
  EXPECT_EQ((*d)->type, "tar");
  EXPECT_EQ((*d)->verify, "no");
  for (auto [k, v, field] : std::vector<std::tuple<const char*, const char*, const char*>>{
           {"type", "zip", "image_download.type"},
           {"verify", "gpg", "image_download.verify"},
           {"url", "ftp://example.org/i.tar", "image_download.url"}}) {
    std::vector<std::pair<std::string, Value>> e = {{"url", S("https://example.org/i.tar")}};
    std::erase_if(e, [&](auto& x) { return x.first == k; });
    e.push_back({k, S(v)});
    auto r = nspawn::parse_download(M(e));
    ASSERT_FALSE(r) << k;
    EXPECT_NE(r.error().what().find(field), std::string::npos) << r.error().what();
  }
}

// A GPT disk built byte by byte: protective MBR, header at LBA 1, entries at LBA 2.
std::string gpt_disk(const std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>>& parts,
                     uint64_t sectors) {
  std::string disk(sectors * 512, '\0');
  auto put64 = [&](size_t off, uint64_t v) {
    for (int i = 0; i < 8; i++) disk[off + i] = static_cast<char>(v >> (8 * i));
  };
  auto put32 = [&](size_t off, uint32_t v) {
    for (int i = 0; i < 4; i++) disk[off + i] = static_cast<char>(v >> (8 * i));
  };
  memcpy(&disk[512], "EFI PART", 8);
  put64(512 + 72, 2);
  put32(512 + 80, 128);
  put32(512 + 84, 128);
  for (size_t i = 0; i < parts.size(); i++) {
    size_t e = 1024 + i * 128;
    // GUID text -> mixed-endian bytes.
    std::string hex;
    for (char c : parts[i].first)
      if (c != '-') hex.push_back(c);
    unsigned char g[16];
    for (int b = 0; b < 16; b++) g[b] = static_cast<unsigned char>(std::stoi(hex.substr(b * 2, 2), nullptr, 16));
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int b = 0; b < 16; b++) disk[e + order[b]] = static_cast<char>(g[b]);
    put64(e + 32, parts[i].second.first);
    put64(e + 40, parts[i].second.second);
  }
  return disk;
}

TEST(DiskImage, FindsTheRootPartitionOfAGptDisk) {
  char tmpl[] = "/tmp/husk-gpt-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  const std::string esp = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", data = "0fc63daf-8483-4772-8e79-3d69d8477de4";
#if defined(__x86_64__)
  const std::string root = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
#else
  const std::string root = "b921b045-1df0-41c3-af44-4c6f280d3fae";
#endif
  write(dir + "/disk.raw", gpt_disk({{esp, {40, 99}}, {data, {100, 199}}, {root, {200, 399}}}, 512));
  auto p = find_root_partition(dir + "/disk.raw", "config.image");
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->offset, 200u * 512);
  EXPECT_EQ(p->size, 200u * 512);

  write(dir + "/data.raw", gpt_disk({{esp, {40, 99}}, {data, {100, 199}}}, 512));
  auto d = find_root_partition(dir + "/data.raw", "config.image");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->offset, 100u * 512);

  write(dir + "/none.raw", gpt_disk({{esp, {40, 99}}}, 512));
  auto n = find_root_partition(dir + "/none.raw", "config.image");
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().what().find("config.image"), std::string::npos);

  write(dir + "/beyond.raw", gpt_disk({{root, {200, 9999}}}, 512));
  EXPECT_FALSE(find_root_partition(dir + "/beyond.raw", "config.image"));

  write(dir + "/plain.raw", std::string(1 << 16, '\x55'));  // a bare file system: the whole file
  auto w = find_root_partition(dir + "/plain.raw", "config.image");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->offset, 0u);
  EXPECT_EQ(w->size, 0u);
  fs::remove_all(dir);
}

// ---- plan ------------------------------------------------------------------------

class NspawnPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-nspawn-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    image_ = root_ + "/machines/debian";
    write(image_ + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    write(image_ + "/etc/group", "root:x:0:\napp:x:1000:\n");
    write(image_ + "/etc/os-release", "ID=debian\n");
    write(image_ + "/usr/lib/systemd/systemd", "#!elf\n");
    write(image_ + "/bin/sh", "#!elf\n");
    fs::create_directories(image_ + "/sysroot/etc");
    alloc_ = root_ + "/alloc/0123";
    fs::create_directories(alloc_ + "/alloc");
    fs::create_directories(alloc_ + "/web/local");
    fs::create_directories(alloc_ + "/web/secrets");
    task_dir_ = root_ + "/tasks/taskdir";  // the plugin's layout: <state>/tasks/ID beside <state>/containers
    fs::create_directories(task_dir_);
    write(root_ + "/resolv.conf", "nameserver 192.0.2.53\n");
    write(root_ + "/uplink.conf", "nameserver 198.51.100.1\n");
    write(root_ + "/stub.conf", "nameserver 127.0.0.53\n");
    write(root_ + "/catatonit", "#!elf\n");

    opts_ = *nspawn::parse_options(Value());
    opts_.machines_dir = root_ + "/machines";
    opts_.cwd = root_;
    opts_.host_resolv_conf = root_ + "/resolv.conf";
    opts_.host_resolved_upstream = root_ + "/uplink.conf";
    opts_.host_resolved_stub = root_ + "/stub.conf";
    opts_.stub_inits = {root_ + "/catatonit"};
    opts_.link_exists = [this](const std::string& name) { return links_.count(name) > 0; };

    task_.id = "6b6f7a1e-4c9d-4a3b-9f10-2a3b4c5d6e7f/web/abcd1234";
    task_.name = "web";
    task_.alloc_id = "6b6f7a1e-4c9d-4a3b-9f10-2a3b4c5d6e7f";
    task_.alloc_dir = alloc_;
    task_.env = {{"NOMAD_ALLOC_DIR", "/alloc"},
                 {"NOMAD_TASK_DIR", "/local"},
                 {"NOMAD_SECRETS_DIR", "/secrets"},
                 {"APP_MODE", "prod"}};
    task_.memory_mb = 256;
    task_.ports = {TaskPort{"http", 25000, 80, ""}, TaskPort{"admin", 25001, 0, "127.0.0.1"}};
  }
  void TearDown() override { fs::remove_all(root_); }

  Result<BundlePlan> plan(std::vector<std::pair<std::string, Value>> extra) {
    std::vector<std::pair<std::string, Value>> cfg = {{"image", S(image_)}};
    for (auto& e : extra) {
      std::erase_if(cfg, [&](const auto& c) { return c.first == e.first; });
      cfg.push_back(e);
    }
    // Through the wire form, with the schema's defaults as Nomad fills them.
    Spec schema = nspawn::task_schema();
    auto decoded = decode_msgpack(encode_msgpack(Value::map(cfg), *schema), schema.get());
    if (!decoded) return std::unexpected(decoded.error());
    return nspawn::plan(opts_, task_, *decoded, "c0ffee", task_dir_);
  }
  Result<BundlePlan> plan_ok(std::vector<std::pair<std::string, Value>> extra) {
    auto r = plan(std::move(extra));
    EXPECT_TRUE(r) << r.error().str();
    return r;
  }

  static void expect_error(const Result<BundlePlan>& r, const std::string& field) {
    ASSERT_FALSE(r) << "expected an error naming " << field;
    EXPECT_NE(r.error().what().find(field), std::string::npos) << r.error().what();
  }
  static const oci::Mount* mount_at(const oci::Spec& s, const std::string& dst) {
    const oci::Mount* found = nullptr;
    for (const auto& m : s.mounts)
      if (m.destination == dst) found = &m;
    return found;
  }
  static bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  }
  static bool has_ns(const oci::Spec& s, oci::NamespaceType t) {
    for (const auto& n : s.linux->namespaces)
      if (n.type == t) return true;
    return false;
  }
  static std::string env(const oci::Spec& s, const std::string& k) {
    for (const auto& e : s.process->env)
      if (e.starts_with(k + "=")) return e.substr(k.size() + 1);
    return "<unset>";
  }
  static int cap(const char* n) { return *oci::capability_from_name(n); }

  std::string root_, image_, alloc_, task_dir_;
  std::set<std::string> links_;  // the host's network interfaces, as plan() sees them
  nspawn::Options opts_;
  TaskSpec task_;
};

TEST_F(NspawnPlan, DefaultsBootTheImageLikeSystemdNspawn) {
  auto r = plan_ok({});
  ASSERT_TRUE(r);
  const oci::Spec& s = r->spec;
  // boot = true: the image's systemd as PID 1; stopped with SIGRTMIN+3.
  EXPECT_EQ(s.process->args, std::vector<std::string>{"/usr/lib/systemd/systemd"});
  EXPECT_EQ(r->stop_signal, "SIGRTMIN+3");
  EXPECT_GT(r->ready_timeout_ms, 0);  // systemd: StartTask waits for its READY=1
  // Not ephemeral: the image directory itself is the root.
  EXPECT_EQ(r->rootfs_mode, RootfsMode::kImage);
  EXPECT_EQ(r->image_layers.front(), fs::canonical(image_).string());
  EXPECT_FALSE(s.root.readonly);
  // Machine name and id.
  EXPECT_EQ(*s.hostname, "web-6b6f7a1e-4c9d-4a3b-9f10-2a3b4c5d6e7f");
  EXPECT_EQ(slurp(task_dir_ + "/machine-id"), "6b6f7a1e4c9d4a3b9f102a3b4c5d6e7f\n");
  ASSERT_NE(mount_at(s, "/etc/machine-id"), nullptr);
  EXPECT_EQ(env(s, "container"), "systemd-nspawn");
  EXPECT_EQ(env(s, "container_uuid"), "6b6f7a1e-4c9d-4a3b-9f10-2a3b4c5d6e7f");
  EXPECT_EQ(env(s, "APP_MODE"), "prod");
  // /run and /tmp tmpfs; the cgroup tree writable for the booted systemd, in its cgroup namespace.
  EXPECT_EQ(*mount_at(s, "/run")->type, "tmpfs");
  EXPECT_EQ(*mount_at(s, "/tmp")->type, "tmpfs");
  EXPECT_FALSE(has(mount_at(s, "/sys/fs/cgroup")->options, "ro"));
  EXPECT_TRUE(has_ns(s, oci::NamespaceType::Cgroup));
  // network_veth = true: a network namespace on husk's bridge, with CAP_NET_ADMIN as nspawn gives.
  EXPECT_TRUE(has_ns(s, oci::NamespaceType::Network));
  EXPECT_EQ(s.annotations.at("run.husk.network"), "bridge");
  const auto& caps = *s.process->capabilities->bounding;
  for (const char* c : {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_MKNOD", "CAP_SYS_BOOT", "CAP_AUDIT_CONTROL"})
    EXPECT_NE(std::find(caps.begin(), caps.end(), cap(c)), caps.end()) << c;
  EXPECT_EQ(std::find(caps.begin(), caps.end(), cap("CAP_SYS_MODULE")), caps.end());
  EXPECT_TRUE(s.linux->seccomp.has_value());
  // user_namespacing = true, private_users unset ("pick"): a picked 64K
  // range, the image's ownership shifted to it (auto).
  EXPECT_TRUE(has_ns(s, oci::NamespaceType::User));
  ASSERT_EQ(s.linux->uid_mappings.size(), 1u);
  EXPECT_GE(s.linux->uid_mappings[0].host_id, 0x80000u);
  EXPECT_EQ(s.linux->uid_mappings[0].size, 65536u);
  EXPECT_EQ(r->ownership.mode, OwnershipPlan::Mode::kAuto);
  EXPECT_TRUE(r->warnings.empty());
  // resolv_conf unset = auto: in a private network, the uplink servers, as a copy.
  EXPECT_EQ(slurp(task_dir_ + "/resolv.conf"), "nameserver 198.51.100.1\n");
  // Nomad's task directories and memory.
  EXPECT_NE(mount_at(s, "/alloc"), nullptr);
  EXPECT_NE(mount_at(s, "/local"), nullptr);
  EXPECT_EQ(*s.linux->resources->memory->limit, 256 * 1024 * 1024);
}

TEST_F(NspawnPlan, CommandWithAndWithoutBoot) {
  auto b = plan_ok({{"command", L({S("--log-level=debug"), S("systemd.unit=rescue.target")})}});
  EXPECT_EQ(b->spec.process->args,
            (std::vector<std::string>{"/usr/lib/systemd/systemd", "--log-level=debug", "systemd.unit=rescue.target"}));
  auto p = plan_ok({{"boot", B(false)}, {"command", L({S("/bin/sleep"), S("60")})}});
  EXPECT_EQ(p->spec.process->args, (std::vector<std::string>{"/bin/sleep", "60"}));
  EXPECT_EQ(p->stop_signal, "");
  EXPECT_EQ(p->ready_timeout_ms, 0);
  EXPECT_TRUE(has(mount_at(p->spec, "/sys/fs/cgroup")->options, "ro"));
  auto shell = plan_ok({{"boot", B(false)}});
  EXPECT_EQ(shell->spec.process->args, std::vector<std::string>{"/bin/sh"});
  fs::remove(image_ + "/usr/lib/systemd/systemd");
  expect_error(plan({}), "config.boot");
}

TEST_F(NspawnPlan, ProcessTwoRunsAStubInit) {
  auto r = plan_ok({{"boot", B(false)}, {"process_two", B(true)}, {"command", L({S("/bin/app")})}});
  EXPECT_EQ(r->spec.process->args, (std::vector<std::string>{"/run/husk-stub-init", "--", "/bin/app"}));
  EXPECT_EQ(*mount_at(r->spec, "/run/husk-stub-init")->source, root_ + "/catatonit");
  expect_error(plan({{"process_two", B(true)}}), "config.process_two");  // with boot = true
  opts_.stub_inits = {root_ + "/nothing"};
  expect_error(plan({{"boot", B(false)}, {"process_two", B(true)}}), "config.process_two");
}

TEST_F(NspawnPlan, RootFilesystemModes) {
  EXPECT_EQ(plan_ok({{"ephemeral", B(true)}})->rootfs_mode, RootfsMode::kOverlay);
  auto ro = plan_ok({{"read_only", B(true)}});
  EXPECT_EQ(ro->rootfs_mode, RootfsMode::kImage);
  EXPECT_TRUE(ro->spec.root.readonly);
  EXPECT_EQ(plan_ok({{"volatile", S("yes")}})->rootfs_mode, RootfsMode::kVolatileRoot);
  EXPECT_EQ(plan_ok({{"volatile", S("overlay")}})->rootfs_mode, RootfsMode::kVolatileOverlay);
  auto state = plan_ok({{"volatile", S("state")}});
  EXPECT_EQ(state->rootfs_mode, RootfsMode::kImage);
  EXPECT_TRUE(state->spec.root.readonly);
  EXPECT_EQ(*mount_at(state->spec, "/var")->type, "tmpfs");
  EXPECT_EQ(plan_ok({{"volatile", S("no")}})->rootfs_mode, RootfsMode::kImage);
  expect_error(plan({{"volatile", S("sometimes")}}), "config.volatile");
  expect_error(plan({{"volatile", S("yes")}, {"ephemeral", B(true)}}), "config.volatile");
  expect_error(plan({{"private_users_ownership", S("chown")}, {"read_only", B(true)}}),
               "config.private_users_ownership");
  expect_error(plan({{"private_users_ownership", S("shift")}}), "config.private_users_ownership");
}

TEST_F(NspawnPlan, ImageByPathRelativePathMachineNameOrHostRoot) {
  EXPECT_EQ(plan_ok({{"image", S("machines/debian")}})->image_layers.front(), fs::canonical(image_).string());
  EXPECT_EQ(plan_ok({{"image", S("debian")}})->image_layers.front(), fs::canonical(image_).string());
  expect_error(plan({{"image", S("nonesuch")}}), "config.image");
  expect_error(plan({{"image", S("/")}}), "config.image");
  auto host = plan({{"image", S("/")}, {"volatile", S("yes")}, {"boot", B(false)}, {"command", L({S("/bin/true")})}});
  ASSERT_TRUE(host) << host.error().str();
  EXPECT_EQ(host->rootfs_mode, RootfsMode::kVolatileRoot);
  EXPECT_EQ(host->image_layers.front(), "/");
  write(root_ + "/machines/broken.raw", "");  // a raw image without a file system
  EXPECT_FALSE(plan({{"image", S("broken")}}));
}

TEST_F(NspawnPlan, PivotRoot) {
  write(image_ + "/sysroot/usr/lib/systemd/systemd", "#!elf\n");
  auto r = plan_ok({{"pivot_root", S("/sysroot:/oldroot")}});
  EXPECT_EQ(r->image_layers.front(), fs::canonical(image_ + "/sysroot").string());
  EXPECT_EQ(*mount_at(r->spec, "/oldroot")->source, fs::canonical(image_).string());
  EXPECT_EQ(plan_ok({{"pivot_root", S("/sysroot")}})->spec.mounts.size(), r->spec.mounts.size() - 1);
  expect_error(plan({{"pivot_root", S("sysroot")}}), "config.pivot_root");
  expect_error(plan({{"pivot_root", S("/sysroot:old")}}), "config.pivot_root");
  expect_error(plan({{"pivot_root", S("/missing")}}), "config.pivot_root");
  fs::create_symlink("../../../..", image_ + "/escape");  // cannot leave the image
  expect_error(plan({{"pivot_root", S("/escape/tmp")}}), "config.pivot_root");
}

TEST_F(NspawnPlan, UserNamespacing) {
  EXPECT_FALSE(has_ns(plan_ok({{"user_namespacing", B(false)}})->spec, oci::NamespaceType::User));
  EXPECT_FALSE(has_ns(plan_ok({{"private_users", S("no")}})->spec, oci::NamespaceType::User));
  auto id = plan_ok({{"private_users", S("identity")}});
  EXPECT_TRUE(has_ns(id->spec, oci::NamespaceType::User));
  EXPECT_TRUE(id->warnings.empty());
  expect_error(plan({{"private_users", S("bogus")}}), "config.private_users");
  // A range the image is not owned by, ownership off (the default but with
  // pick): mapped as asked, with a warning that files show as nobody.
  auto off = plan_ok({{"private_users", S("524288:65536")}});
  EXPECT_EQ(off->spec.linux->uid_mappings.front().host_id, 524288u);
  EXPECT_EQ(off->ownership.mode, OwnershipPlan::Mode::kOff);
  ASSERT_EQ(off->warnings.size(), 1u);
  EXPECT_NE(off->warnings[0].find("nobody"), std::string::npos);
  // Group networking turns user namespacing off, as upstream.
  task_.network_mode = NetworkMode::Group;
  task_.netns_path = "/var/run/netns/x";
  EXPECT_FALSE(has_ns(plan_ok({})->spec, oci::NamespaceType::User));
}

TEST_F(NspawnPlan, PrivateUsersPickAndOwnership) {
  // pick (the default) takes a free range and shifts the image to it: auto.
  std::set<uint32_t> used;
  opts_.range_in_use = [&](uint32_t base, uint32_t) { return used.count(base) > 0; };
  auto r = plan_ok({});
  const auto& m = r->spec.linux->uid_mappings;
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].container_id, 0u);
  EXPECT_GE(m[0].host_id, 0x80000u);
  EXPECT_EQ(m[0].size, 65536u);
  EXPECT_EQ(r->ownership.mode, OwnershipPlan::Mode::kAuto);
  EXPECT_EQ(r->ownership.from, 0u);
  EXPECT_EQ(r->ownership.to, m[0].host_id);
  EXPECT_TRUE(r->ownership.chown_ok);  // a directory image used as the root itself
  // Taken by a live user namespace: the next range.
  used.insert(m[0].host_id);
  EXPECT_NE(plan_ok({})->spec.linux->uid_mappings[0].host_id, m[0].host_id);
  used.clear();
  // Explicit modes.
  EXPECT_EQ(plan_ok({{"private_users_ownership", S("map")}})->ownership.mode, OwnershipPlan::Mode::kMap);
  EXPECT_EQ(plan_ok({{"private_users_ownership", S("chown")}})->ownership.mode, OwnershipPlan::Mode::kChown);
  EXPECT_EQ(plan_ok({{"private_users_ownership", S("off")}})->ownership.mode, OwnershipPlan::Mode::kOff);
  // chown would change the image every ephemeral task shares.
  expect_error(plan({{"ephemeral", B(true)}, {"private_users_ownership", S("chown")}}),
               "config.private_users_ownership");
  auto eph = plan_ok({{"ephemeral", B(true)}});
  EXPECT_EQ(eph->ownership.mode, OwnershipPlan::Mode::kAuto);
  EXPECT_FALSE(eph->ownership.chown_ok);
  // An image in the range already needs no shift (identity: range 0).
  EXPECT_EQ(plan_ok({{"private_users", S("identity")}, {"private_users_ownership", S("map")}})->ownership.mode,
            OwnershipPlan::Mode::kOff);
  // An image whose root is not a range's root cannot be shifted.
  if (geteuid() == 0) {
    ASSERT_EQ(chown(image_.c_str(), 1000, 1000), 0);
    expect_error(plan({{"private_users_ownership", S("map")}}), "config.private_users_ownership");
    ASSERT_EQ(chown(image_.c_str(), 0, 0), 0);
  }
}

TEST_F(NspawnPlan, UserEnvironmentAndWorkingDirectory) {
  auto r = plan_ok({{"boot", B(false)},
                    {"command", L({S("/bin/app")})},
                    {"user", S("app")},
                    {"working_directory", S("/srv")},
                    {"environment", M({{"APP_MODE", S("dev")}, {"EXTRA", S("1")}})}});
  EXPECT_EQ(r->spec.process->user.uid, 1000u);
  EXPECT_EQ(r->spec.process->user.gid, 1000u);
  EXPECT_TRUE(r->spec.process->capabilities->effective->empty());
  EXPECT_EQ(r->spec.process->cwd, "/srv");
  EXPECT_EQ(env(r->spec, "EXTRA"), "1");
  EXPECT_EQ(env(r->spec, "APP_MODE"), "prod");  // the Nomad task env wins
  EXPECT_EQ(env(r->spec, "HOME"), "/home/app");
  expect_error(plan({{"boot", B(false)}, {"user", S("nobody")}}), "config.user");
  expect_error(plan({{"user", S("app")}}), "config.user");  // not with boot
  expect_error(plan({{"working_directory", S("srv")}}), "config.working_directory");
}

TEST_F(NspawnPlan, CapabilitiesAdded) {
  auto r = plan_ok({{"capability", L({S("CAP_SYS_TIME"), S("net_raw"), S("SYS_MODULE")})}});
  const auto& caps = *r->spec.process->capabilities->bounding;
  for (const char* c : {"CAP_SYS_TIME", "CAP_SYS_MODULE"})
    EXPECT_NE(std::find(caps.begin(), caps.end(), cap(c)), caps.end()) << c;
  expect_error(plan({{"capability", L({S("CAP_SYS_ADMIN"), S("CAP_FLY")})}}), "config.capability[1]");
}

TEST_F(NspawnPlan, BindsAndVolumes) {
  fs::create_directories(root_ + "/data");
  auto r = plan_ok({{"bind", M({{root_ + "/data", S("/var/lib/data")}})},
                    {"bind_read_only", L({M({{root_ + "/resolv.conf", S("/etc/upstream.conf")}})})}});
  const oci::Mount* rw = mount_at(r->spec, "/var/lib/data");
  ASSERT_NE(rw, nullptr);
  EXPECT_EQ(*rw->source, root_ + "/data");
  EXPECT_FALSE(has(rw->options, "ro"));
  EXPECT_TRUE(has(mount_at(r->spec, "/etc/upstream.conf")->options, "ro"));
  expect_error(plan({{"bind", M({{"relative", S("/x")}})}}), "config.bind.relative");
  expect_error(plan({{"bind", M({{root_ + "/data", S("x")}})}}), "config.bind.");
  expect_error(plan({{"bind_read_only", M({{root_ + "/missing", S("/x")}})}}), "config.bind_read_only.");
  task_.mounts = {TaskMount{"/srv/vol", root_ + "/data", true, ""}};
  EXPECT_TRUE(has(mount_at(plan_ok({})->spec, "/srv/vol")->options, "ro"));
  opts_.volumes = false;
  expect_error(plan({}), "mounts[0]");
}

TEST_F(NspawnPlan, NetworkVethBridgeZoneAndGroup) {
  auto host = plan_ok({{"network_veth", B(false)}});
  EXPECT_FALSE(has_ns(host->spec, oci::NamespaceType::Network));
  const auto& hc = *host->spec.process->capabilities->bounding;
  EXPECT_EQ(std::find(hc.begin(), hc.end(), cap("CAP_NET_ADMIN")), hc.end());
  EXPECT_EQ(slurp(task_dir_ + "/resolv.conf"), "nameserver 192.0.2.53\n");  // auto on the host network
  EXPECT_EQ(plan_ok({{"network_bridge", S("br-apps")}})->spec.annotations.at("run.husk.network"), "bridge:br-apps");
  EXPECT_EQ(plan_ok({{"network_zone", S("apps")}})->spec.annotations.at("run.husk.network"), "bridge:vz-apps");
  // An existing bridge husk did not make: the veth joins it (nspawn's way);
  // one of husk's (its IPAM has it) stays husk's.
  links_ = {"br0", "br-apps"};
  auto joined_br = plan_ok({{"network_bridge", S("br0")}});
  EXPECT_EQ(joined_br->spec.annotations.at("run.husk.network"), "veth:br0");
  EXPECT_EQ(joined_br->spec.annotations.at("run.husk.ifname"), "host0");  // nspawn's name for it
  EXPECT_TRUE(has_ns(joined_br->spec, oci::NamespaceType::Network));
  const auto& jc = *joined_br->spec.process->capabilities->bounding;
  EXPECT_NE(std::find(jc.begin(), jc.end(), cap("CAP_NET_ADMIN")), jc.end());
  fs::create_directories(root_ + "/containers/.networks/br-apps");
  write(root_ + "/containers/.networks/br-apps/subnet", "10.89.3.0/24\n");
  EXPECT_EQ(plan_ok({{"network_bridge", S("br-apps")}})->spec.annotations.at("run.husk.network"), "bridge:br-apps");
  EXPECT_EQ(plan_ok({{"network_zone", S("apps")}})->spec.annotations.at("run.husk.network"), "bridge:vz-apps");
  task_.ports = {TaskPort{"http", 25000, 80, ""}};
  auto e = plan({{"network_bridge", S("br0")}, {"ports", L({S("http")})}});
  expect_error(e, "config.ports");
  EXPECT_NE(e.error().what().find("is not husk's"), std::string::npos) << e.error().what();
  task_.ports.clear();
  links_.clear();
  expect_error(plan({{"network_zone", S("a-much-too-long-zone")}}), "config.network_zone");
  expect_error(plan({{"network_zone", S("a")}, {"network_bridge", S("b")}}), "config.network_zone");
  task_.network_mode = NetworkMode::Group;
  task_.netns_path = "/var/run/netns/x";
  auto g = plan_ok({});
  EXPECT_EQ(g->spec.annotations.count("run.husk.network"), 0u);
  bool joined = false;
  for (const auto& n : g->spec.linux->namespaces)
    joined =
        joined || (n.type == oci::NamespaceType::Network && n.path == std::optional<std::string>("/var/run/netns/x"));
  EXPECT_TRUE(joined);
  expect_error(plan({{"network_bridge", S("br0")}}), "config.network_bridge");
}

TEST_F(NspawnPlan, PortsAndPortMap) {
  auto r = plan_ok({{"ports", L({S("http"), S("admin")})}});
  EXPECT_EQ(r->spec.annotations.at("run.husk.ports"), "25000:80/tcp,127.0.0.1:25001:25001/tcp");
  auto pm = plan_ok({{"port_map", L({M({{"http", I(8080)}})})}});
  EXPECT_EQ(pm->spec.annotations.at("run.husk.ports"), "25000:8080/tcp");
  expect_error(plan({{"ports", L({S("nope")})}}), "config.ports[0]");
  expect_error(plan({{"ports", L({S("http")})}, {"port_map", M({{"http", I(1)}})}}), "config.ports");
  expect_error(plan({{"port_map", M({{"nope", I(1)}})}}), "config.port_map");
  expect_error(plan({{"ports", L({S("http")})}, {"network_veth", B(false)}}), "config.ports");
}

TEST_F(NspawnPlan, ResolvConfModes) {
  auto bind = plan_ok({{"resolv_conf", S("bind-host")}});
  EXPECT_EQ(*mount_at(bind->spec, "/etc/resolv.conf")->source, root_ + "/resolv.conf");
  EXPECT_TRUE(has(mount_at(bind->spec, "/etc/resolv.conf")->options, "ro"));
  EXPECT_EQ(*mount_at(plan_ok({{"resolv_conf", S("bind-stub")}})->spec, "/etc/resolv.conf")->source,
            root_ + "/stub.conf");
  auto copy = plan_ok({{"resolv_conf", S("copy-host")}});
  EXPECT_EQ(*mount_at(copy->spec, "/etc/resolv.conf")->source, task_dir_ + "/resolv.conf");
  EXPECT_EQ(slurp(task_dir_ + "/resolv.conf"), "nameserver 192.0.2.53\n");
  plan_ok({{"resolv_conf", S("replace-uplink")}});
  EXPECT_EQ(slurp(task_dir_ + "/resolv.conf"), "nameserver 198.51.100.1\n");
  EXPECT_EQ(mount_at(plan_ok({{"resolv_conf", S("off")}})->spec, "/etc/resolv.conf"), nullptr);
  expect_error(plan({{"resolv_conf", S("delete")}}), "config.resolv_conf");
  expect_error(plan({{"resolv_conf", S("copy-everything")}}), "config.resolv_conf");
  task_.dns_servers = {"192.0.2.99"};
  task_.dns_searches = {"svc.local"};
  plan_ok({});
  EXPECT_EQ(slurp(task_dir_ + "/resolv.conf"), "nameserver 192.0.2.99\nsearch svc.local\n");
}

TEST_F(NspawnPlan, Console) {
  EXPECT_TRUE(plan({{"console", S("pipe")}}));
  EXPECT_TRUE(plan({{"console", S("passive")}}));
  EXPECT_FALSE(plan_ok({{"console", S("pipe")}})->spec.process->terminal);
  for (const char* mode : {"interactive", "read-only"}) {
    auto t = plan_ok({{"console", S(mode)}});
    EXPECT_TRUE(t->spec.process->terminal) << mode;
    EXPECT_TRUE(has(t->spec.process->env, "TERM=vt220")) << mode;
  }
  expect_error(plan({{"console", S("tty")}}), "config.console");
}

// ---- image_download over loopback HTTP ----------------------------------------------

// Serves files from a map on 127.0.0.1 (HTTP/1.0, one request a connection).
class FileServer {
 public:
  explicit FileServer(std::map<std::string, std::string> files) : files_(std::move(files)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 8);
    thread_ = std::thread([this] { serve(); });
  }
  ~FileServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  int requests() const { return requests_; }

 private:
  void serve() {
    while (!stop_) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      requests_++;
      std::string path = req.substr(4, req.find(' ', 4) - 4);
      auto it = files_.find(path);
      std::string resp =
          it == files_.end()
              ? std::string("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
              : "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(it->second.size()) + "\r\n\r\n" + it->second;
      for (size_t off = 0; off < resp.size();) {
        ssize_t n = ::write(c, resp.data() + off, resp.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      close(c);
    }
  }
  std::map<std::string, std::string> files_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

TEST_F(NspawnPlan, ImageDownloadTarWithChecksum) {
  // A tarball of a tiny OS tree, as importd would fetch it.
  std::string tree = root_ + "/tree";
  write(tree + "/etc/os-release", "ID=tiny\n");
  write(tree + "/bin/sh", "#!elf\n");
  write(tree + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  ASSERT_EQ(system(("tar -C " + tree + " -czf " + root_ + "/tiny.tar.gz .").c_str()), 0);
  std::string tar = slurp(root_ + "/tiny.tar.gz");
  std::string sum = husk::image::sha256_of(tar).hex;
  FileServer http({{"/images/tiny.tar.gz", tar},
                   {"/images/SHA256SUMS", sum + "  tiny.tar.gz\n"},
                   {"/bad/tiny.tar.gz", tar},
                   {"/bad/SHA256SUMS", std::string(64, '0') + "  tiny.tar.gz\n"}});
  auto dl = [&](const std::string& url, const char* verify, bool force = false) {
    return plan({{"image", S("tiny")},
                 {"boot", B(false)},
                 {"image_download", M({{"url", S(url)}, {"verify", S(verify)}, {"force", B(force)}})}});
  };
  auto r = dl(http.url("/images/tiny.tar.gz"), "checksum");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->image_layers.front(), fs::canonical(root_ + "/machines/tiny").string());
  EXPECT_EQ(slurp(root_ + "/machines/tiny/etc/os-release"), "ID=tiny\n");
  EXPECT_EQ(r->spec.process->args, std::vector<std::string>{"/bin/sh"});
  int before = http.requests();
  ASSERT_TRUE(dl(http.url("/images/tiny.tar.gz"), "checksum"));  // kept: not fetched again
  EXPECT_EQ(http.requests(), before);
  ASSERT_TRUE(dl(http.url("/images/tiny.tar.gz"), "no", true));  // force: fetched again
  EXPECT_GT(http.requests(), before);

  auto bad = plan({{"image", S("other")},
                   {"image_download", M({{"url", S(http.url("/bad/tiny.tar.gz"))}, {"verify", S("checksum")}})}});
  expect_error(bad, "config.image_download.verify");
  EXPECT_FALSE(fs::exists(root_ + "/machines/other"));
  for (const auto& e : fs::directory_iterator(root_ + "/machines"))  // no partial download left
    EXPECT_FALSE(e.path().filename().string().starts_with(".husk-download")) << e.path();
  expect_error(plan({{"image", S("gone")}, {"image_download", M({{"url", S(http.url("/missing.tar"))}})}}),
               "config.image_download.url");
  expect_error(
      plan({{"image", S("d")}, {"image_download", M({{"url", S(http.url("/x.tar"))}, {"type", S("docker")}})}}),
      "config.image_download.url");  // a docker image is a reference, not a URL
  opts_.import_keyring = root_ + "/no-keyring.gpg";
  expect_error(dl(http.url("/images/tiny.tar.gz"), "signature", true), "config.image_download.verify");
}

// type = "docker": the image goes through husk's store (here an OCI layout
// it imports, as a registry pull ends the same way) and its layers, merged,
// become the machine image: the upper layer's file wins, its whiteout
// deletes, owners and modes are kept.
TEST_F(NspawnPlan, ImageDownloadDockerMergesTheLayersIntoAMachineImage) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (overlayfs)";
  opts_.image_store_root = root_ + "/store";
  std::string layout = root_ + "/layout";
  std::string low = root_ + "/low", up = root_ + "/up";
  write(low + "/etc/os-release", "ID=lower\n");
  write(low + "/etc/gone", "deleted above\n");
  write(low + "/bin/sh", "#!elf\n");
  write(low + "/srv/app/data", "x\n");
  ASSERT_EQ(chown((low + "/srv/app").c_str(), 1234, 1234), 0);
  ASSERT_EQ(chmod((low + "/bin/sh").c_str(), 0755), 0);
  write(up + "/etc/os-release", "ID=upper\n");
  write(up + "/etc/.wh.gone", "");
  std::vector<std::string> layers;
  for (const auto& dir : {low, up}) {
    std::string tarball = dir + ".tar";
    ASSERT_EQ(std::system(("tar --numeric-owner -C " + dir + " -cf " + tarball + " .").c_str()), 0);
    layers.push_back(slurp(tarball));
  }
  husk::testing::write_oci_layout(layout, layers, "{}", "v1");
  auto r = plan({{"image", S("app")},
                 {"boot", B(false)},
                 {"image_download", M({{"url", S("oci:" + layout + ":v1")}, {"type", S("docker")}})}});
  ASSERT_TRUE(r) << r.error().str();
  std::string img = root_ + "/machines/app";
  EXPECT_EQ(r->image_layers.front(), fs::canonical(img).string());
  EXPECT_EQ(slurp(img + "/etc/os-release"), "ID=upper\n");
  EXPECT_FALSE(fs::exists(img + "/etc/gone"));
  EXPECT_FALSE(fs::exists(img + "/etc/.wh.gone"));
  struct stat st;
  ASSERT_EQ(stat((img + "/srv/app").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  ASSERT_EQ(stat((img + "/bin/sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  for (const auto& e : fs::directory_iterator(root_ + "/machines"))  // no download leftovers, no mount
    EXPECT_FALSE(e.path().filename().string().starts_with(".husk-download")) << e.path();
  EXPECT_EQ(slurp("/proc/self/mountinfo").find(root_ + "/machines"), std::string::npos);
  // A bad reference: the error names the field, nothing is made.
  auto bad = plan({{"image", S("nope")},
                   {"image_download", M({{"url", S("oci:" + root_ + "/no-layout:v1")}, {"type", S("docker")}})}});
  expect_error(bad, "config.image_download.url");
  EXPECT_FALSE(fs::exists(root_ + "/machines/nope"));
}

TEST_F(NspawnPlan, ImageDownloadRawIsDecompressed) {
  std::string raw = std::string(4096, 'R');
  write(root_ + "/disk.raw", raw);
  ASSERT_EQ(system(("gzip -k " + root_ + "/disk.raw").c_str()), 0);
  FileServer http({{"/disk.raw.gz", slurp(root_ + "/disk.raw.gz")}});
  // The download lands as <name>.raw; planning then tries to loop-mount it
  // (not a file system: an error naming config.image, after the download).
  auto r =
      plan({{"image", S("disk")}, {"image_download", M({{"url", S(http.url("/disk.raw.gz"))}, {"type", S("raw")}})}});
  EXPECT_FALSE(r);
  EXPECT_EQ(slurp(root_ + "/machines/disk.raw"), raw);
}

}  // namespace
