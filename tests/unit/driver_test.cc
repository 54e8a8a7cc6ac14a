// The driver's pure logic: cty msgpack decoding (every kind, dynamic `any`,
// list(map) merging, bytes as cty writes them, malformed input), the podman
// schemas against the reference field list, plugin options, and plan():
// what a realistic podman task turns into as an OCI spec, and the errors
// naming the field that cannot be honoured.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "driver/flavor.h"
#include "driver/hclspec.h"
#include "driver/image_dir.h"
#include "driver/image_resolve.h"
#include "oci/platform.h"
#include "driver/podman_flavor.h"
#include "driver/value.h"
#include "image/digest.h"
#include "image/store.h"
#include "oci/config.h"
#include "oci/tables.h"

using namespace husk;
using namespace husk::driver;
namespace fs = std::filesystem;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}
std::string str8(std::string_view s) {  // fixstr, < 32 bytes
  return std::string(1, static_cast<char>(0xa0 | s.size())) + std::string(s);
}
Value S(std::string s) { return Value::string(std::move(s)); }
Value I(int64_t i) { return Value::integer(i); }
Value B(bool b) { return Value::boolean(b); }
Value L(std::vector<Value> v) { return Value::array(std::move(v)); }
Value M(std::vector<std::pair<std::string, Value>> e) { return Value::map(std::move(e)); }

// ---- msgpack ------------------------------------------------------------------

TEST(Msgpack, RoundTripsEveryKind) {
  Value v = M({
      {"a_nil", Value()},
      {"b_true", B(true)},
      {"c_false", B(false)},
      {"d_small", I(7)},
      {"e_big", I(int64_t(1) << 40)},
      {"f_neg", I(-3)},
      {"g_neg_big", I(-(int64_t(1) << 40))},
      {"h_float", Value::number(1.25)},
      {"i_str", S("hello")},
      {"j_empty", S("")},
      {"k_list", L({I(1), S("x"), L({}), M({})})},
      {"l_map", M({{"x", I(1)}, {"y", M({{"z", B(true)}})}})},
  });
  auto d = decode_msgpack(encode_msgpack(v));
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(*d, v);
  EXPECT_EQ((*d)["i_str"].as_string(), "hello");
  EXPECT_EQ((*d)["g_neg_big"].as_int(), -(int64_t(1) << 40));
  EXPECT_TRUE((*d)["missing"].is_null());
}

TEST(Msgpack, EncodesMapKeysSorted) {
  auto e = encode_msgpack(M({{"b", I(1)}, {"a", I(2)}}));
  EXPECT_EQ(e, bytes({0x82, 0xa1, 'a', 0x02, 0xa1, 'b', 0x01}));
}

TEST(Msgpack, DecodesFloat32Uint64BinAndLongStrings) {
  auto f32 = decode_msgpack(bytes({0xca, 0x3f, 0xc0, 0x00, 0x00}));
  ASSERT_TRUE(f32);
  EXPECT_EQ(f32->kind(), Value::Kind::Float);
  EXPECT_DOUBLE_EQ(f32->as_float(), 1.5);
  auto f64 = decode_msgpack(bytes({0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(f64);
  EXPECT_DOUBLE_EQ(f64->as_float(), 1.5);
  auto u64 = decode_msgpack(bytes({0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
  ASSERT_TRUE(u64);
  EXPECT_EQ(u64->kind(), Value::Kind::Float);
  auto i8 = decode_msgpack(bytes({0xd0, 0x80}));
  ASSERT_TRUE(i8);
  EXPECT_EQ(i8->as_int(), -128);
  auto bin = decode_msgpack(bytes({0xc4, 0x02, 'h', 'i'}));
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->as_string(), "hi");
  std::string long_str(300, 'x');
  auto s16 = decode_msgpack(encode_msgpack(S(long_str)));
  ASSERT_TRUE(s16);
  EXPECT_EQ(s16->as_string(), long_str);
}

TEST(Msgpack, UnknownValueIsAnErrorNamingThePath) {
  // {"image": <unknown>} as cty writes an unknown value: fixext1 type 0.
  std::string b = bytes({0x81}) + str8("image") + bytes({0xd4, 0x00, 0x00});
  auto d = decode_msgpack(b);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().what().find("config.image"), std::string::npos) << d.error().what();
  EXPECT_NE(d.error().what().find("unknown"), std::string::npos);
  auto other = decode_msgpack(bytes({0xd4, 0x05, 0x00}));
  ASSERT_FALSE(other);
}

// A small task config exactly as cty's msgpack marshaller writes it for
// object({args=list(string), command=string, entrypoint=any, image=string,
// labels=list(map(string)), tty=bool}): keys sorted, every attribute
// present, nil for the absent ones, the dynamic one as [type json, value].
TEST(Msgpack, DecodesBytesAsCtyWritesThem) {
  Spec schema = object({
      {"args", attr("args", "list(string)")},
      {"command", attr("command", "string")},
      {"entrypoint", attr("entrypoint", "any")},
      {"image", attr("image", "string", true)},
      {"labels", attr("labels", "list(map(string))")},
      {"tty", attr("tty", "bool")},
  });
  std::string type = R"(["tuple",["string","string"]])";
  std::string b = bytes({0x86}) + str8("args") + bytes({0xc0}) + str8("command") + str8("ls") + str8("entrypoint") +
                  bytes({0x92, 0xc4, static_cast<int>(type.size())}) + type + bytes({0x92}) + str8("/bin/sh") +
                  str8("-c") + str8("image") + str8("/srv/img") + str8("labels") + bytes({0x92, 0x81}) + str8("a") +
                  str8("1") + bytes({0x82}) + str8("a") + str8("2") + str8("b") + str8("3") + str8("tty") +
                  bytes({0xc2});
  auto d = decode_msgpack(b, schema.get());
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_TRUE((*d)["args"].is_null());
  EXPECT_EQ((*d)["command"].as_string(), "ls");
  EXPECT_EQ((*d)["entrypoint"], L({S("/bin/sh"), S("-c")}));
  EXPECT_EQ((*d)["image"].as_string(), "/srv/img");
  EXPECT_EQ((*d)["labels"], M({{"a", S("2")}, {"b", S("3")}}));  // merged, later keys win
  EXPECT_FALSE((*d)["tty"].as_bool());

  // Without the schema the dynamic pair is visible as it is.
  auto raw = decode_msgpack(b);
  ASSERT_TRUE(raw);
  EXPECT_EQ((*raw)["entrypoint"].items().size(), 2u);
  EXPECT_EQ((*raw)["entrypoint"].items()[0].as_string(), type);
}

TEST(Msgpack, DynamicAttributesRoundTripThroughTheSchema) {
  Spec schema = object({{"entrypoint", attr("entrypoint", "any")}, {"name", attr("name", "string")}});
  for (const Value& ep : {S("/init"), L({S("a"), I(3)}), M({{"k", S("v")}}), Value(), B(true)}) {
    Value v = M({{"entrypoint", ep}, {"name", S("n")}});
    auto d = decode_msgpack(encode_msgpack(v, *schema), schema.get());
    ASSERT_TRUE(d) << d.error().str();
    EXPECT_EQ(*d, v);
  }
  // A dynamic attribute that is not a [type, value] pair names the field.
  auto bad = decode_msgpack(encode_msgpack(M({{"entrypoint", S("x")}})), schema.get());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().what().find("config.entrypoint"), std::string::npos);
}

TEST(Msgpack, DynamicInsideBlocksAndBlockLists) {
  Spec schema = object({
      {"b", block("b", object({{"x", attr("x", "any")}}))},
      {"l", block_list("l", object({{"y", attr("y", "any")}}))},
  });
  Value v = M({{"b", M({{"x", I(1)}})}, {"l", L({M({{"y", S("a")}}), M({{"y", L({S("b")})}})})}});
  auto d = decode_msgpack(encode_msgpack(v, *schema), schema.get());
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(*d, v);
}

TEST(Msgpack, ListOfMapsMerges) {
  auto m = merged_map(L({M({{"a", S("1")}, {"c", S("x")}}), M({{"a", S("2")}, {"b", S("3")}})}), "config.labels");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, M({{"a", S("2")}, {"c", S("x")}, {"b", S("3")}}));
  EXPECT_EQ(*merged_map(Value()), M({}));
  EXPECT_EQ(*merged_map(M({{"k", S("v")}})), M({{"k", S("v")}}));
  auto bad = merged_map(L({S("x")}), "config.labels");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().what().find("config.labels[0]"), std::string::npos);
  // A map form arriving through a schema stays a map.
  Spec schema = object({{"labels", attr("labels", "list(map(string))")}});
  auto d = decode_msgpack(encode_msgpack(M({{"labels", M({{"k", S("v")}})}})), schema.get());
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)["labels"], M({{"k", S("v")}}));
}

TEST(Msgpack, NumbersCtySendsAsDecimalText) {
  Spec schema = object({{"n", attr("n", "number")}});
  auto d = decode_msgpack(encode_msgpack(M({{"n", S("12345678901234567")}})), schema.get());
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)["n"].as_int(), 12345678901234567);
  auto bad = decode_msgpack(encode_msgpack(M({{"n", S("12a")}})), schema.get());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().what().find("config.n"), std::string::npos);
}

TEST(Msgpack, MalformedInputIsAnErrorNeverACrash) {
  Spec schema = podman::task_schema();
  Value v = M({{"image", S("/srv/img")},
               {"entrypoint", L({S("/bin/sh"), S("-c")})},
               {"labels", L({M({{"a", S("1")}})})},
               {"ulimit", M({{"nofile", S("1:2")}})},
               {"memory_swappiness", Value::number(0.5)},
               {"cpu_cfs_period", I(100000)},
               {"args", L({S(std::string(200, 'a'))})}});
  std::string good = encode_msgpack(v, *schema);
  ASSERT_TRUE(decode_msgpack(good, schema.get()));
  for (size_t n = 0; n < good.size(); n++) {
    auto d = decode_msgpack(std::string_view(good).substr(0, n), schema.get());
    EXPECT_FALSE(d) << "prefix of " << n << " bytes decoded";
  }
  EXPECT_FALSE(decode_msgpack(good + "x"));  // trailing bytes
  // Corrupt single bytes: any outcome but a crash is fine.
  uint32_t seed = 12345;
  for (int round = 0; round < 2000; round++) {
    std::string b = good;
    for (int k = 0; k < 3; k++) {
      seed = seed * 1103515245 + 12345;
      b[(seed >> 8) % b.size()] = static_cast<char>(seed >> 24);
    }
    (void)decode_msgpack(b, schema.get());
    (void)decode_msgpack(b);
  }
  // Counts far beyond the input, and nesting deeper than msgpack-c keeps.
  EXPECT_FALSE(decode_msgpack(bytes({0xdd, 0xff, 0xff, 0xff, 0xff})));
  EXPECT_FALSE(decode_msgpack(bytes({0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0})));
  EXPECT_FALSE(decode_msgpack(bytes({0xc6, 0xff, 0xff, 0xff, 0xff, 'x'})));
  EXPECT_FALSE(decode_msgpack(std::string(100, static_cast<char>(0x91)) + bytes({0xc0})));
  EXPECT_FALSE(decode_msgpack(bytes({0xc1})));
  EXPECT_FALSE(decode_msgpack(""));
}

TEST(Msgpack, TypedReadsNameTheField) {
  Value m = M({{"s", I(1)}, {"l", L({S("a"), I(2)})}, {"f", Value::number(2.5)}});
  auto s = read_string(m, "s", "config");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().what().find("config.s"), std::string::npos);
  auto l = read_strings(m, "l", "config");
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().what().find("config.l[1]"), std::string::npos);
  auto f = read_int(m, "f", "config");
  ASSERT_FALSE(f);
  EXPECT_EQ(*read_int(m, "absent", "config", 9), 9);
  EXPECT_EQ(*read_bool(m, "absent", "config", true), true);
}

// ---- schemas ------------------------------------------------------------------

struct Field {
  const char* name;
  SpecNode::Kind kind;
  const char* type;  // Attr/BlockAttrs type, "" for blocks
  const char* dflt;  // HCL default literal, nullptr for none
  bool required;
};

const SpecNode* unwrap(const SpecNode* n, std::string* dflt) {
  if (n->kind == SpecNode::Kind::Default) {
    if (dflt) *dflt = n->children[1].second->literal;
    return n->children[0].second.get();
  }
  return n;
}

void expect_fields(const SpecNode& obj, const std::vector<Field>& want, const std::string& where) {
  ASSERT_EQ(obj.kind, SpecNode::Kind::Object);
  EXPECT_EQ(obj.children.size(), want.size()) << where;
  for (const auto& w : want) {
    auto it = std::find_if(obj.children.begin(), obj.children.end(), [&](const auto& c) { return c.first == w.name; });
    ASSERT_NE(it, obj.children.end()) << where << ": missing " << w.name;
    std::string dflt;
    const SpecNode* n = unwrap(it->second.get(), &dflt);
    EXPECT_EQ(n->kind, w.kind) << where << "." << w.name;
    EXPECT_EQ(n->name, w.name) << where << "." << w.name;
    if (w.kind == SpecNode::Kind::Attr || w.kind == SpecNode::Kind::BlockAttrs) {
      EXPECT_EQ(n->type, w.type) << w.name;
    }
    EXPECT_EQ(n->required, w.required) << where << "." << w.name;
    if (w.dflt) {
      EXPECT_EQ(dflt, w.dflt) << where << "." << w.name;
    } else {
      EXPECT_EQ(dflt, "") << where << "." << w.name << " has a default";
    }
  }
}

using K = SpecNode::Kind;

const SpecNode& nested(const SpecNode& obj, const char* name) {
  for (const auto& [k, c] : obj.children)
    if (k == name) return *unwrap(unwrap(c.get(), nullptr)->children[0].second.get(), nullptr);
  static SpecNode none;
  ADD_FAILURE() << "no " << name;
  return none;
}

TEST(PodmanSchema, TaskConfigHasEveryReferenceField) {
  // driver-fields.md §1.1: 49 top-level fields, 3 in auth, 2 in logging.
  std::vector<Field> want = {
      {"image", K::Attr, "string", nullptr, true},
      {"arch", K::Attr, "string", nullptr, false},
      {"os", K::Attr, "string", nullptr, false},
      {"variant", K::Attr, "string", nullptr, false},
      {"auth", K::Block, "", nullptr, false},
      {"auth_soft_fail", K::Attr, "bool", nullptr, false},
      {"force_pull", K::Attr, "bool", nullptr, false},
      {"image_pull_timeout", K::Attr, "string", "\"5m\"", false},
      {"entrypoint", K::Attr, "any", nullptr, false},
      {"command", K::Attr, "string", nullptr, false},
      {"args", K::Attr, "list(string)", nullptr, false},
      {"working_dir", K::Attr, "string", nullptr, false},
      {"hostname", K::Attr, "string", nullptr, false},
      {"tty", K::Attr, "bool", nullptr, false},
      {"init", K::Attr, "bool", nullptr, false},
      {"init_path", K::Attr, "string", nullptr, false},
      {"labels", K::Attr, "list(map(string))", nullptr, false},
      {"cap_add", K::Attr, "list(string)", nullptr, false},
      {"cap_drop", K::Attr, "list(string)", nullptr, false},
      {"privileged", K::Attr, "bool", nullptr, false},
      {"readonly_rootfs", K::Attr, "bool", nullptr, false},
      {"apparmor_profile", K::Attr, "string", nullptr, false},
      {"selinux_opts", K::Attr, "list(string)", nullptr, false},
      {"security_opt", K::Attr, "list(string)", nullptr, false},
      {"userns", K::Attr, "string", nullptr, false},
      {"devices", K::Attr, "list(string)", nullptr, false},
      {"volumes", K::Attr, "list(string)", nullptr, false},
      {"tmpfs", K::Attr, "list(string)", nullptr, false},
      {"sysctl", K::Attr, "list(map(string))", nullptr, false},
      {"ulimit", K::Attr, "list(map(string))", nullptr, false},
      {"memory_reservation", K::Attr, "string", nullptr, false},
      {"memory_swap", K::Attr, "string", nullptr, false},
      {"memory_swappiness", K::Attr, "number", nullptr, false},
      {"oom_score_adj", K::Attr, "number", nullptr, false},
      {"pids_limit", K::Attr, "number", nullptr, false},
      {"shm_size", K::Attr, "string", nullptr, false},
      {"cpu_hard_limit", K::Attr, "bool", nullptr, false},
      {"cpu_cfs_period", K::Attr, "number", nullptr, false},
      {"network_mode", K::Attr, "string", nullptr, false},
      {"ipc_mode", K::Attr, "string", nullptr, false},
      {"ipv4_address", K::Attr, "string", nullptr, false},
      {"ipv6_address", K::Attr, "string", nullptr, false},
      {"static_ips", K::Attr, "list(string)", nullptr, false},
      {"static_mac", K::Attr, "string", nullptr, false},
      {"extra_hosts", K::Attr, "list(string)", nullptr, false},
      {"ports", K::Attr, "list(string)", nullptr, false},
      {"port_map", K::Attr, "list(map(number))", nullptr, false},
      {"logging", K::Block, "", nullptr, false},
      {"socket", K::Attr, "string", "\"default\"", false},
  };
  ASSERT_EQ(want.size(), 49u);
  Spec s = podman::task_schema();
  expect_fields(*s, want, "task");
  expect_fields(nested(*s, "auth"),
                {{"username", K::Attr, "string", nullptr, false},
                 {"password", K::Attr, "string", nullptr, false},
                 {"tls_verify", K::Attr, "bool", "true", false}},
                "task.auth");
  expect_fields(nested(*s, "logging"),
                {{"driver", K::Attr, "string", nullptr, false}, {"options", K::Attr, "list(map(string))", nullptr, false}},
                "task.logging");
}

TEST(PodmanSchema, PluginConfigHasEveryReferenceOption) {
  // driver-fields.md §1.2: 12 top-level options.
  std::vector<Field> want = {
      {"socket_path", K::Attr, "string", nullptr, false},
      {"socket", K::BlockList, "", nullptr, false},
      {"auth", K::Block, "", nullptr, false},
      {"volumes", K::Block, "", "{ enabled = true }", false},
      {"gc", K::Block, "", "{ container = true }", false},
      {"recover_stopped", K::Attr, "bool", "false", false},
      {"extra_labels", K::Attr, "list(string)", nullptr, false},
      {"logging", K::Block, "", "{ driver = \"nomad\", options = {} }", false},
      {"networking", K::Block, "", "{ default_rootless_mode = \"\" }", false},
      {"disable_log_collection", K::Attr, "bool", "false", false},
      {"client_http_timeout", K::Attr, "string", nullptr, false},
      {"dns_servers", K::Attr, "list(string)", nullptr, false},
      // husk's additions, with defaults that keep podman's behaviour.
      {"allow_caps", K::Attr, "list(string)", nullptr, false},
      {"allow_privileged", K::Attr, "bool", "true", false},
      {"image_store", K::Attr, "string", nullptr, false},
  };
  Spec s = podman::plugin_schema();
  expect_fields(*s, want, "plugin");
  expect_fields(nested(*s, "socket"),
                {{"name", K::Attr, "string", nullptr, false}, {"socket_path", K::Attr, "string", nullptr, true}},
                "plugin.socket");
  expect_fields(nested(*s, "auth"),
                {{"config", K::Attr, "string", nullptr, false}, {"helper", K::Attr, "string", nullptr, false}},
                "plugin.auth");
  expect_fields(nested(*s, "volumes"),
                {{"enabled", K::Attr, "bool", "true", false}, {"selinuxlabel", K::Attr, "string", nullptr, false}},
                "plugin.volumes");
  expect_fields(nested(*s, "gc"), {{"container", K::Attr, "bool", "true", false}}, "plugin.gc");
  expect_fields(nested(*s, "logging"),
                {{"driver", K::Attr, "string", "\"nomad\"", false}, {"options", K::BlockAttrs, "string", nullptr, false}},
                "plugin.logging");
  expect_fields(nested(*s, "networking"), {{"default_rootless_mode", K::Attr, "string", nullptr, false}},
                "plugin.networking");
}

TEST(PodmanSchema, FlavorServesBothNames) {
  auto p = make_podman_flavor("podman");
  auto h = make_podman_flavor("husk");
  EXPECT_EQ(p->name(), "podman");
  EXPECT_EQ(h->name(), "husk");
  EXPECT_EQ(p->task_schema()->children.size(), h->task_schema()->children.size());
}

// ---- plugin options -------------------------------------------------------------

TEST(PodmanOptions, DefaultsWhenEverythingIsNil) {
  auto o = podman::parse_options(Value());
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_TRUE(o->volumes_enabled);
  EXPECT_TRUE(o->gc_container);
  EXPECT_EQ(o->logging_driver, "nomad");
  ASSERT_EQ(o->sockets.size(), 1u);
  EXPECT_EQ(o->sockets[0].name, "default");
  EXPECT_EQ(o->client_http_timeout_ns, 0);
}

TEST(PodmanOptions, ParsesAndValidates) {
  Value cfg = M({{"socket", L({M({{"name", S("")}, {"socket_path", S("unix:///run/a.sock")}}),
                               M({{"name", S("user")}, {"socket_path", S("unix:///run/b.sock")}})})},
                 {"volumes", M({{"enabled", B(false)}, {"selinuxlabel", Value()}})},
                 {"gc", M({{"container", B(false)}})},
                 {"extra_labels", L({S("job_*"), S("task_name")})},
                 {"client_http_timeout", S("1m30s")},
                 {"dns_servers", L({S("1.1.1.1"), S("2606:4700::1111")})}});
  auto o = podman::parse_options(cfg);
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_FALSE(o->volumes_enabled);
  EXPECT_FALSE(o->gc_container);
  ASSERT_EQ(o->sockets.size(), 2u);
  EXPECT_EQ(o->sockets[0].name, "default");
  EXPECT_EQ(o->sockets[1].name, "user");
  EXPECT_EQ(o->client_http_timeout_ns, 90'000'000'000);

  auto both = podman::parse_options(M({{"socket_path", S("unix:///x")}, {"socket", L({M({{"socket_path", S("unix:///y")}})})}}));
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().what().find("socket_path"), std::string::npos);
  auto timeout = podman::parse_options(M({{"client_http_timeout", S("soon")}}));
  ASSERT_FALSE(timeout);
  EXPECT_NE(timeout.error().what().find("client_http_timeout"), std::string::npos);
  auto dns = podman::parse_options(M({{"dns_servers", L({S("1.1.1.1"), S("dns.example")})}}));
  ASSERT_FALSE(dns);
  EXPECT_NE(dns.error().what().find("dns_servers[1]"), std::string::npos);
  auto log = podman::parse_options(M({{"logging", M({{"driver", S("syslog")}})}}));
  ASSERT_FALSE(log);
  EXPECT_NE(log.error().what().find("logging.driver"), std::string::npos);
  auto no_path = podman::parse_options(M({{"socket", L({M({{"name", S("x")}})})}}));
  ASSERT_FALSE(no_path);
  EXPECT_NE(no_path.error().what().find("socket[0].socket_path"), std::string::npos);
}

TEST(PodmanOptions, ImageStoreRoot) {
  // Unset: the store's default ($HUSK_IMAGE_STORE, else /var/lib/husk/images for root).
  EXPECT_EQ(podman::parse_options(Value())->image_store_root, image::Store::default_root());
  auto set = podman::parse_options(M({{"image_store", S("/srv/husk//images/")}}));
  ASSERT_TRUE(set) << set.error().str();
  EXPECT_EQ(set->image_store_root, "/srv/husk/images");
  auto rel = podman::parse_options(M({{"image_store", S("images")}}));
  ASSERT_FALSE(rel);
  EXPECT_EQ(rel.error().what(), "image_store: \"images\" is not an absolute path");
}

// Durations: common_test's GoDuration tests (one parser for every flavor).
TEST(PodmanOptions, Sizes) {
  EXPECT_EQ(*podman::parse_size("64m"), 64 << 20);
  EXPECT_EQ(*podman::parse_size("2g"), int64_t(2) << 30);
  EXPECT_EQ(*podman::parse_size("10b"), 10);
  EXPECT_FALSE(podman::parse_size("64"));   // podman's parser wants a unit
  EXPECT_FALSE(podman::parse_size("-1"));
  EXPECT_FALSE(podman::parse_size("64M"));
}

TEST(PodmanOptions, AttributesNameTheDriver) {
  auto p = make_podman_flavor("podman");
  ASSERT_TRUE(p->configure(Value()));
  auto attrs = p->attributes();
  auto find = [&](const std::string& k) {
    for (auto& [key, v] : attrs)
      if (key == k) return v;
    return std::string("<none>");
  };
  EXPECT_EQ(find("socketName"), "default");
  EXPECT_EQ(find("capabilities"),
            "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,NET_BIND_SERVICE,SETFCAP,SETGID,SETPCAP,SETUID,SYS_CHROOT");
}

// ---- plan ------------------------------------------------------------------------

class PodmanPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-driver-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    image_ = root_ + "/image";
    fs::create_directories(image_ + "/rootfs/etc");
    write(image_ + "/rootfs/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    write(image_ + "/rootfs/etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\n");
    alloc_ = root_ + "/alloc/0123";
    fs::create_directories(alloc_ + "/alloc/data");
    fs::create_directories(alloc_ + "/web/local");
    fs::create_directories(alloc_ + "/web/secrets");
    task_dir_ = root_ + "/taskdir";
    fs::create_directories(task_dir_);
    write(root_ + "/resolv.conf", "nameserver 192.0.2.53\n");
    write(root_ + "/hosts", "127.0.0.1 localhost\n192.0.2.1 hosthost\n");

    opts_ = *podman::parse_options(Value());
    opts_.rootless = false;
    opts_.apparmor = {};  // AppArmor off; the tests that want it on say so
    opts_.can_raise_rlimits = true;
    opts_.selinux_enabled = false;
    opts_.online_cpus = 4;
    opts_.host_resolv_conf = root_ + "/resolv.conf";
    opts_.host_hosts = root_ + "/hosts";
    opts_.host_dev = root_ + "/nodev";
    opts_.image_store_root = root_ + "/store";

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
    task_.network_mode = NetworkMode::Group;
    task_.netns_path = "/var/run/netns/0123";
  }
  void TearDown() override { fs::remove_all(root_); }

  static void write(const std::string& p, const std::string& s) { std::ofstream(p) << s; }

  Result<BundlePlan> plan(std::vector<std::pair<std::string, Value>> extra) {
    std::vector<std::pair<std::string, Value>> cfg = {{"image", S(image_)}, {"command", S("/bin/server")}};
    for (auto& e : extra) {
      std::erase_if(cfg, [&](const auto& c) { return c.first == e.first; });
      cfg.push_back(e);
    }
    // Through the real wire form: encode as cty would and decode with the schema.
    Spec schema = podman::task_schema();
    auto decoded = decode_msgpack(encode_msgpack(Value::map(cfg), *schema), schema.get());
    if (!decoded) return std::unexpected(decoded.error());
    return podman::plan(opts_, task_, *decoded, "c0ffee0123456789abcdef", task_dir_);
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

  std::string root_, image_, alloc_, task_dir_;
  podman::Options opts_;
  TaskSpec task_;
};

TEST_F(PodmanPlan, RealisticTask) {
  task_.user = "1000:1000";
  auto r = plan({
      {"entrypoint", L({S("/bin/tini"), S("--")})},
      {"command", S("/bin/server")},
      {"args", L({S("--port"), S("8080")})},
      {"working_dir", S("/srv")},
      {"cap_add", L({S("NET_ADMIN")})},
      {"cap_drop", L({S("ALL")})},
      {"readonly_rootfs", B(true)},
      {"sysctl", L({M({{"net.core.somaxconn", S("16384")}})})},
      {"ulimit", M({{"nofile", S("2048:4096")}, {"nproc", S("100")}})},
      {"tmpfs", L({S("/var/cache:size=10m")})},
      {"shm_size", S("128m")},
      {"memory_reservation", S("128m")},
      {"pids_limit", I(200)},
      {"labels", L({M({{"team", S("web")}})})},
      {"hostname", S("web-1")},
      {"cpu_hard_limit", B(true)},
  });
  ASSERT_TRUE(r) << r.error().str();
  const oci::Spec& s = r->spec;
  ASSERT_EQ(r->image_layers.size(), 1u);
  EXPECT_EQ(r->image_layers[0], fs::canonical(image_ + "/rootfs").string());
  EXPECT_EQ(s.root.path, task_dir_ + "/rootfs");
  EXPECT_TRUE(s.root.readonly);
  const auto& p = *s.process;
  EXPECT_EQ(p.args, (std::vector<std::string>{"/bin/tini", "--", "/bin/server", "--port", "8080"}));
  EXPECT_EQ(p.cwd, "/srv");
  EXPECT_FALSE(p.terminal);
  EXPECT_FALSE(p.no_new_privileges);
  EXPECT_TRUE(has(p.env, "APP_MODE=prod"));
  EXPECT_TRUE(has(p.env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  EXPECT_TRUE(has(p.env, "HOME=/home/app"));
  EXPECT_EQ(p.user.uid, 1000u);
  EXPECT_EQ(p.user.gid, 1000u);
  // cap_drop ALL + cap_add NET_ADMIN, non-root user: bounding and ambient hold just NET_ADMIN.
  EXPECT_EQ(*p.capabilities->bounding, std::vector<int>{cap("CAP_NET_ADMIN")});
  EXPECT_EQ(*p.capabilities->effective, std::vector<int>{cap("CAP_NET_ADMIN")});
  EXPECT_EQ(*p.capabilities->ambient, std::vector<int>{cap("CAP_NET_ADMIN")});
  EXPECT_EQ(*p.capabilities->inheritable, std::vector<int>{cap("CAP_NET_ADMIN")});
  auto rl = [&](int res) -> std::pair<uint64_t, uint64_t> {
    for (auto& x : p.rlimits)
      if (x.resource == res) return {x.soft, x.hard};
    return {0, 0};
  };
  EXPECT_EQ(rl(RLIMIT_NOFILE), (std::pair<uint64_t, uint64_t>{2048, 4096}));
  EXPECT_EQ(rl(RLIMIT_NPROC), (std::pair<uint64_t, uint64_t>{100, 100}));

  EXPECT_EQ(s.hostname, "web-1");
  EXPECT_EQ(s.annotations.at("team"), "web");
  const auto& l = *s.linux;
  EXPECT_EQ(l.sysctl.at("net.core.somaxconn"), "16384");
  ASSERT_NE(l.find_namespace(oci::NamespaceType::Network), nullptr);
  EXPECT_EQ(l.find_namespace(oci::NamespaceType::Network)->path, "/var/run/netns/0123");
  const auto& res = *l.resources;
  EXPECT_EQ(res.memory->limit, 256 << 20);
  EXPECT_EQ(res.memory->reservation, 128 << 20);
  EXPECT_EQ(res.cpu->shares, 512u);
  EXPECT_EQ(res.cpu->period, 100000u);
  EXPECT_EQ(res.cpu->quota, 12500 * 4);  // percent_ticks x period x cpus
  EXPECT_EQ(res.pids->limit, 200);

  const oci::Mount* tmp = mount_at(s, "/var/cache");
  ASSERT_NE(tmp, nullptr);
  EXPECT_EQ(tmp->type, "tmpfs");
  EXPECT_TRUE(has(tmp->options, "size=10m"));
  EXPECT_TRUE(has(tmp->options, "noexec"));
  const oci::Mount* shm = mount_at(s, "/dev/shm");
  ASSERT_NE(shm, nullptr);
  EXPECT_TRUE(has(shm->options, "size=134217728"));
  const oci::Mount* alloc = mount_at(s, "/alloc");
  ASSERT_NE(alloc, nullptr);
  EXPECT_EQ(alloc->source, alloc_ + "/alloc");
  EXPECT_TRUE(has(alloc->options, "rbind"));
  ASSERT_NE(mount_at(s, "/local"), nullptr);
  EXPECT_EQ(mount_at(s, "/local")->source, alloc_ + "/web/local");
  ASSERT_NE(mount_at(s, "/secrets"), nullptr);
  ASSERT_NE(mount_at(s, "/etc/resolv.conf"), nullptr);
  ASSERT_NE(mount_at(s, "/etc/hosts"), nullptr);

  // The spec is one husk itself accepts.
  auto reparsed = oci::parse_config(oci::emit_config(s));
  ASSERT_TRUE(reparsed) << reparsed.error().str();
}

TEST_F(PodmanPlan, RootUserGetsPodmansDefaultCapabilitiesPlusAdds) {
  auto r = plan({{"cap_add", L({S("net_admin")})}, {"cap_drop", L({S("CAP_CHOWN")})}});
  ASSERT_TRUE(r) << r.error().str();
  auto want = podman::default_capabilities();
  std::erase(want, cap("CAP_CHOWN"));
  want.push_back(cap("CAP_NET_ADMIN"));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*r->spec.process->capabilities->bounding, want);
  EXPECT_EQ(*r->spec.process->capabilities->effective, want);
  EXPECT_EQ(*r->spec.process->capabilities->permitted, want);
  EXPECT_FALSE(r->spec.process->capabilities->ambient);
  EXPECT_TRUE(r->spec.process->capabilities->inheritable->empty());
  EXPECT_EQ(r->spec.process->user.uid, 0u);
  // podman's rootful default rlimits.
  bool nofile = false;
  for (auto& x : r->spec.process->rlimits) nofile = nofile || (x.resource == RLIMIT_NOFILE && x.hard == 1048576);
  EXPECT_TRUE(nofile);
}

// husk's plugin options on top of podman's: allow_caps bounds cap_add and
// the default set; allow_privileged = false refuses privileged tasks.
TEST_F(PodmanPlan, AllowCapsAndAllowPrivilegedBoundTheTask) {
  auto bad = podman::parse_options(M({{"allow_caps", L({S("chown"), S("CAP_WARP")})}}));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("allow_caps[1]"), std::string::npos) << bad.error().str();
  auto o = podman::parse_options(M({{"allow_caps", L({S("chown"), S("kill"), S("net_bind_service"), S("net_admin")})},
                                    {"allow_privileged", B(false)}}));
  ASSERT_TRUE(o) << o.error().str();
  opts_.allow_caps = o->allow_caps;
  opts_.allow_privileged = o->allow_privileged;
  auto r = plan({{"cap_add", L({S("NET_ADMIN")})}});
  ASSERT_TRUE(r) << r.error().str();
  std::vector<int> want = {cap("CAP_CHOWN"), cap("CAP_KILL"), cap("CAP_NET_BIND_SERVICE"), cap("CAP_NET_ADMIN")};
  std::sort(want.begin(), want.end());
  auto got = *r->spec.process->capabilities->bounding;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  expect_error(plan({{"cap_add", L({S("net_admin"), S("SYS_ADMIN")})}}), "config.cap_add[1]");
  expect_error(plan({{"cap_add", L({S("ALL")})}}), "config.cap_add[0]");
  expect_error(plan({{"privileged", B(true)}}), "config.privileged");
  // The defaults: podman's behaviour.
  auto d = podman::parse_options(Value());
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->allow_caps);
  EXPECT_TRUE(d->allow_privileged);
}

TEST_F(PodmanPlan, CapabilityErrorsNameTheField) {
  expect_error(plan({{"cap_add", L({S("NET_ADMIN"), S("CAP_FLY")})}}), "config.cap_add[1]");
  expect_error(plan({{"cap_add", L({S("SYS_TIME")})}, {"cap_drop", L({S("SYS_TIME")})}}), "config.cap_drop");
  expect_error(plan({{"cap_add", L({S("ALL")})}, {"cap_drop", L({S("all")})}}), "config.cap_add");
}

TEST_F(PodmanPlan, EntrypointStringOrListAndCommandRequired) {
  auto r = plan({{"entrypoint", S("/bin/sh")}, {"command", Value()}, {"args", L({S("-c"), S("true")})}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->args, (std::vector<std::string>{"/bin/sh", "-c", "true"}));
  EXPECT_FALSE(r->warnings.empty());  // string entrypoint is deprecated
  auto nums = plan({{"entrypoint", L({S("/bin/sleep"), I(5)})}, {"command", Value()}});
  ASSERT_TRUE(nums) << nums.error().str();
  EXPECT_EQ(nums->spec.process->args, (std::vector<std::string>{"/bin/sleep", "5"}));
  expect_error(plan({{"command", Value()}}), "config.command");
  expect_error(plan({{"entrypoint", M({{"a", S("b")}})}}), "config.entrypoint");
  expect_error(plan({{"working_dir", S("srv")}}), "config.working_dir");
}

TEST_F(PodmanPlan, UserByNameFromTheImage) {
  task_.user = "app";
  auto r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->user.uid, 1000u);
  EXPECT_EQ(r->spec.process->user.gid, 1000u);
  EXPECT_EQ(r->spec.process->user.additional_gids, std::vector<uint32_t>{10});
  task_.user = "app:wheel";
  auto g = plan({});
  ASSERT_TRUE(g) << g.error().str();
  EXPECT_EQ(g->spec.process->user.gid, 10u);
  task_.user = "4242";
  auto n = plan({});
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_EQ(n->spec.process->user.uid, 4242u);
  EXPECT_EQ(n->spec.process->user.gid, 0u);
  task_.user = "nobody-here";
  expect_error(plan({}), "user");
  task_.user = "app:nogroup";
  expect_error(plan({}), "user");
}

TEST_F(PodmanPlan, UserLookupDoesNotFollowSymlinksOutOfTheImage) {
  // /etc/passwd in the image points at a host file naming a user "evil".
  write(root_ + "/host-passwd", "evil:x:0:0::/:/bin/sh\n");
  fs::remove(image_ + "/rootfs/etc/passwd");
  fs::create_symlink("../../../../../../.." + root_ + "/host-passwd", image_ + "/rootfs/etc/passwd");
  task_.user = "evil";
  expect_error(plan({}), "user");
  fs::remove(image_ + "/rootfs/etc/passwd");
  fs::create_symlink(root_ + "/host-passwd", image_ + "/rootfs/etc/passwd");
  expect_error(plan({}), "user");
}

TEST_F(PodmanPlan, UsernsAutoAllocatesFromTheContainersRanges) {
  // Task dirs as the driver keeps them: <state>/tasks/<cid>.
  const std::string tasks = root_ + "/state/tasks";
  auto dir_of = [&](const std::string& id) {
    fs::create_directories(tasks + "/" + id);
    return tasks + "/" + id;
  };
  opts_.userns_auto.subuid_file = root_ + "/subuid";
  opts_.userns_auto.subgid_file = root_ + "/subgid";
  MappedRanges busy;
  opts_.userns_auto.mapped = [&] { return busy; };
  task_.network_mode = NetworkMode::Host;
  task_.netns_path.clear();
  auto with = [&](const std::string& id, const std::string& userns) {
    task_dir_ = dir_of(id);
    return plan({{"userns", S(userns)}, {"network_mode", S("host")}});
  };
  auto first = [](const std::vector<oci::IdMapping>& m) { return std::tuple(m.at(0).container_id, m.at(0).host_id, m.at(0).size); };

  // No range for `containers`: an error that says which file and what.
  write(root_ + "/subuid", "someone:100000:65536\n");
  write(root_ + "/subgid", "someone:100000:65536\n");
  auto none = with("t0", "auto");
  expect_error(none, "config.userns");
  EXPECT_NE(none.error().what().find("subuid has no range for the user \"containers\""), std::string::npos)
      << none.error().what();

  write(root_ + "/subuid", "someone:1:2\ncontainers:100000:200000\n");
  write(root_ + "/subgid", "containers:300000:100000\n");
  // The image's largest id is 1000 (its /etc/passwd): podman's minimum, 1024 ids.
  auto a = with("ta", "auto");
  ASSERT_TRUE(a) << a.error().str();
  ASSERT_NE(a->spec.linux->find_namespace(oci::NamespaceType::User), nullptr);
  EXPECT_EQ(first(a->spec.linux->uid_mappings), std::tuple(0u, 100000u, 1024u));
  EXPECT_EQ(first(a->spec.linux->gid_mappings), std::tuple(0u, 300000u, 1024u));
  EXPECT_EQ(a->ownership.mode, OwnershipPlan::Mode::kMap);
  EXPECT_EQ(a->ownership.root_uid(), 100000u);
  EXPECT_EQ(a->ownership.root_gid(), 300000u);
  std::ifstream claim(tasks + "/ta/userns-auto");
  std::string text((std::istreambuf_iterator<char>(claim)), {});
  EXPECT_EQ(text, "uid 100000 1024\ngid 300000 1024\n");

  // The next task gets the next ids; ids some namespace maps are skipped.
  busy.uid = {{0, 101024, 10}};
  auto b = with("tb", "auto:size=2000");
  ASSERT_TRUE(b) << b.error().str();
  EXPECT_EQ(first(b->spec.linux->uid_mappings), std::tuple(0u, 101034u, 2000u));
  EXPECT_EQ(first(b->spec.linux->gid_mappings), std::tuple(0u, 301024u, 2000u));

  // A destroyed task's ids are free again.
  fs::remove_all(tasks + "/ta");
  busy.uid.clear();
  auto c = with("tc", "auto:uidmapping=0:5000:1");
  ASSERT_TRUE(c) << c.error().str();
  // Container uid 0 is host 5000 as asked; 1..1023 come from the range.
  const auto& um = c->spec.linux->uid_mappings;
  ASSERT_EQ(um.size(), 2u);
  EXPECT_EQ(first(um), std::tuple(1u, 100000u, 1023u));
  EXPECT_EQ(std::tuple(um[1].container_id, um[1].host_id, um[1].size), std::tuple(0u, 5000u, 1u));
  EXPECT_EQ(c->ownership.root_uid(), 5000u);
  EXPECT_EQ(first(c->spec.linux->gid_mappings), std::tuple(0u, 300000u, 1024u));

  // The range runs out.
  auto full = with("tf", "auto:size=150000");
  expect_error(full, "config.userns");
  EXPECT_NE(full.error().what().find("free gids"), std::string::npos) << full.error().what();

  // An image with ids past 65535 needs an explicit size.
  write(image_ + "/rootfs/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nbig:x:70000:70000::/:/bin/sh\n");
  auto big = with("tg", "auto");
  expect_error(big, "config.userns");
  EXPECT_NE(big.error().what().find("ids up to 70000"), std::string::npos) << big.error().what();

  for (const char* bad : {"auto:size=0", "auto:size=x", "auto:nosuch=1", "auto:uidmapping=1:2",
                          "auto:gidmapping=0:1:0", "auto:uidmapping=0:1:10,uidmapping=5:100:2", "autox"}) {
    auto r = with("tbad", bad);
    expect_error(r, "config.userns");
    EXPECT_FALSE(fs::exists(tasks + "/tbad/userns-auto")) << bad;
  }
  opts_.rootless = true;
  expect_error(with("tr", "auto"), "config.userns");
}

TEST_F(PodmanPlan, NetworkModes) {
  task_.network_mode = NetworkMode::Host;
  task_.netns_path.clear();
  auto none = plan({{"network_mode", S("none")}});
  ASSERT_TRUE(none) << none.error().str();
  ASSERT_NE(none->spec.linux->find_namespace(oci::NamespaceType::Network), nullptr);
  EXPECT_FALSE(none->spec.linux->find_namespace(oci::NamespaceType::Network)->path);
  EXPECT_TRUE(none->spec.linux->has_namespace(oci::NamespaceType::Uts));
  EXPECT_EQ(none->spec.hostname, "c0ffee012345");

  auto host = plan({{"network_mode", S("host")}});
  ASSERT_TRUE(host) << host.error().str();
  EXPECT_FALSE(host->spec.linux->has_namespace(oci::NamespaceType::Network));
  EXPECT_FALSE(host->spec.linux->has_namespace(oci::NamespaceType::Uts));  // the host's hostname, as podman
  std::ifstream hosts(task_dir_ + "/hosts");
  std::string content((std::istreambuf_iterator<char>(hosts)), {});
  EXPECT_NE(content.find("hosthost"), std::string::npos);
  expect_error(plan({{"network_mode", S("host")}, {"sysctl", M({{"net.core.somaxconn", S("1")}})}}),
               "config.sysctl.net.core.somaxconn");

  auto ns = plan({{"network_mode", S("ns:/run/netns/x")}});
  ASSERT_TRUE(ns) << ns.error().str();
  EXPECT_EQ(ns->spec.linux->find_namespace(oci::NamespaceType::Network)->path, "/run/netns/x");

  // Unset is podman's default, a bridge (root): husk's own network, with
  // the task's ports forwarded, TCP and UDP.
  task_.ports = {{"http", 28080, 80, "127.0.0.1"}, {"metrics", 29090, 0, ""}};
  auto bridge = plan({{"ports", L({S("http"), S("metrics")})}});
  ASSERT_TRUE(bridge) << bridge.error().str();
  ASSERT_NE(bridge->spec.linux->find_namespace(oci::NamespaceType::Network), nullptr);
  EXPECT_FALSE(bridge->spec.linux->find_namespace(oci::NamespaceType::Network)->path);
  EXPECT_EQ(bridge->spec.annotations.at("run.husk.network"), "bridge");
  EXPECT_EQ(bridge->spec.annotations.at("run.husk.ports"),
            "127.0.0.1:28080:80/tcp,127.0.0.1:28080:80/udp,29090:29090/tcp,29090:29090/udp");
  auto slirp = plan({{"network_mode", S("slirp4netns")}, {"port_map", L({M({{"http", I(8080)}})})}});
  ASSERT_TRUE(slirp) << slirp.error().str();
  EXPECT_EQ(slirp->spec.annotations.at("run.husk.network"), "slirp4netns");
  EXPECT_EQ(slirp->spec.annotations.at("run.husk.ports"), "127.0.0.1:28080:8080/tcp,127.0.0.1:28080:8080/udp");
  expect_error(plan({{"network_mode", S("slirp4netns")}, {"port_map", L({M({{"nope", I(1)}})})}}),
               "config.port_map.nope");
  task_.ports.clear();
  expect_error(plan({{"network_mode", S("wi fi")}}), "config.network_mode");
  {
    // userns: ns:PATH joins that user namespace; the rootless modes are errors as root.
    auto u = plan({{"userns", S("ns:/proc/self/ns/user")}});
    ASSERT_TRUE(u) << u.error().str();
    EXPECT_EQ(u->spec.linux->find_namespace(oci::NamespaceType::User)->path, "/proc/self/ns/user");
    EXPECT_TRUE(u->spec.linux->uid_mappings.empty());
    auto k = plan({{"userns", S("keep-id:uid=1000")}});
    expect_error(k, "config.userns");
    EXPECT_NE(k.error().what().find("rootless mode"), std::string::npos) << k.error().what();
    expect_error(plan({{"userns", S("ns:relative")}}), "config.userns");
    expect_error(plan({{"userns", S("ns:/no/such/ns")}}), "config.userns");
    expect_error(plan({{"userns", S("private")}}), "config.userns");
  }
  {
    auto e = plan({{"network_mode", S("task:db")}});  // no such task running
    expect_error(e, "config.network_mode");
    EXPECT_NE(e.error().what().find("db-" + task_.alloc_id), std::string::npos) << e.error().what();
    e = plan({{"ipc_mode", S("task:db")}});
    expect_error(e, "config.ipc_mode");
    auto shareable = plan({{"ipc_mode", S("shareable")}, {"shm_size", S("16m")}});
    ASSERT_TRUE(shareable) << shareable.error().str();
    EXPECT_EQ(shareable->shareable_shm_bytes, 16 << 20);
  }
  // A network name (podman network create): husk's bridge of that name,
  // with the static addresses and MAC podman applies in bridge mode.
  auto named = plan({{"network_mode", S("backend")}, {"ipv4_address", S("172.20.0.5")},
                     {"static_ips", L({S("fd20::5")})}, {"static_mac", S("02:42:ac:14:00:05")}});
  ASSERT_TRUE(named) << named.error().str();
  EXPECT_EQ(named->spec.annotations.at("run.husk.network"), "bridge:backend");
  EXPECT_EQ(named->spec.annotations.at("run.husk.ip"), "172.20.0.5");
  EXPECT_EQ(named->spec.annotations.at("run.husk.ip6"), "fd20::5");
  EXPECT_EQ(named->spec.annotations.at("run.husk.mac"), "02:42:ac:14:00:05");
  EXPECT_TRUE(named->warnings.empty());
  auto dflt = plan({{"ipv6_address", S("fd89::7")}});
  ASSERT_TRUE(dflt) << dflt.error().str();
  EXPECT_EQ(dflt->spec.annotations.at("run.husk.ip6"), "fd89::7");
  expect_error(plan({{"ipv4_address", S("10.89.0.5")}, {"static_ips", L({S("10.89.0.6")})}}), "config.static_ips[0]");
  expect_error(plan({{"ipv4_address", S("10.89.0.300")}}), "config.ipv4_address");
  expect_error(plan({{"ipv6_address", S("10.89.0.3")}}), "config.ipv6_address");
  expect_error(plan({{"static_mac", S("ff:ff:ff:ff:ff:ff")}}), "config.static_mac");
  auto slirp_ip = plan({{"network_mode", S("slirp4netns")}, {"ipv4_address", S("10.0.2.5")}});
  ASSERT_TRUE(slirp_ip) << slirp_ip.error().str();
  EXPECT_EQ(slirp_ip->spec.annotations.count("run.husk.ip"), 0u);
  ASSERT_EQ(slirp_ip->warnings.size(), 1u);
  EXPECT_NE(slirp_ip->warnings[0].find("config.ipv4_address is ignored"), std::string::npos);
  expect_error(plan({{"network_mode", S("container:abc")}}), "config.network_mode");

  // A group network wins over network_mode, as in nomad-driver-podman.
  task_.network_mode = NetworkMode::Group;
  task_.netns_path = "/var/run/netns/0123";
  auto group = plan({{"network_mode", S("bridge")}});
  ASSERT_TRUE(group) << group.error().str();
  EXPECT_EQ(group->spec.linux->find_namespace(oci::NamespaceType::Network)->path, "/var/run/netns/0123");
}

TEST_F(PodmanPlan, VolumesFollowThePluginPolicy) {
  auto ok = plan({{"volumes", L({S("local/data:/data:ro,noexec"), S("/srv/host:/host")})}});
  ASSERT_TRUE(ok) << ok.error().str();
  const oci::Mount* data = mount_at(ok->spec, "/data");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->source, alloc_ + "/web/local/data");
  EXPECT_TRUE(has(data->options, "ro"));
  EXPECT_TRUE(has(data->options, "noexec"));
  ASSERT_NE(mount_at(ok->spec, "/host"), nullptr);

  opts_.volumes_enabled = false;
  // With volumes disabled the image itself must come from the allocation.
  fs::create_directories(alloc_ + "/web/local/img/etc");
  fs::copy(image_ + "/rootfs/etc", alloc_ + "/web/local/img/etc", fs::copy_options::recursive);
  std::pair<std::string, Value> img = {"image", S("local/img")};
  expect_error(plan({{"volumes", L({S("/srv/host:/host")})}}), "config.image");
  expect_error(plan({img, {"volumes", L({S("/srv/host:/host")})}}), "config.volumes[0]");
  expect_error(plan({img, {"volumes", L({S("local/../../../../etc:/host")})}}), "config.volumes[0]");
  // A symlink planted in the task's own directory does not get out either.
  fs::create_symlink("/etc", alloc_ + "/web/local/escape");
  expect_error(plan({img, {"volumes", L({S("local/escape:/host")})}}), "config.volumes[0]");
  auto inside = plan({img, {"volumes", L({S("local:/data")})}});
  ASSERT_TRUE(inside) << inside.error().str();
  EXPECT_EQ(inside->image_layers.at(0), fs::canonical(alloc_ + "/web/local/img").string());
  expect_error(plan({img, {"volumes", L({S("/only-one-part")})}}), "config.volumes[0]");
  // Nor does an image path that climbs out of the allocation.
  auto climb = plan({{"image", S("local/../../../../image/rootfs")}});
  expect_error(climb, "config.image");
  EXPECT_NE(climb.error().what().find("volumes are not enabled"), std::string::npos) << climb.error().what();
}

TEST_F(PodmanPlan, ReadOnlyRootGetsPodmansWritableTmpfs) {
  auto r = plan({{"readonly_rootfs", B(true)}});
  ASSERT_TRUE(r) << r.error().str();
  for (const char* dst : {"/run", "/tmp", "/var/tmp"}) {
    const oci::Mount* m = mount_at(r->spec, dst);
    ASSERT_NE(m, nullptr) << dst;
    EXPECT_EQ(m->type, "tmpfs");
  }
  auto rw = plan({});
  ASSERT_TRUE(rw);
  EXPECT_EQ(mount_at(rw->spec, "/tmp"), nullptr);
}

TEST_F(PodmanPlan, ResolvedStubIsReplacedByItsUpstreams) {
  write(root_ + "/resolv.conf", "nameserver 127.0.0.53\noptions edns0\n");
  write(root_ + "/upstream.conf", "nameserver 192.0.2.99\n");
  opts_.host_resolved_upstream = root_ + "/upstream.conf";
  auto r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  std::ifstream resolv(task_dir_ + "/resolv.conf");
  std::string rc((std::istreambuf_iterator<char>(resolv)), {});
  EXPECT_EQ(rc, "nameserver 192.0.2.99\n");
}

TEST_F(PodmanPlan, NomadMountsAndPropagation) {
  task_.mounts = {{"/data", "/srv/vol", true, "host-to-task"}, {"/shared", "/srv/shared", false, "bidirectional"}};
  auto r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  const oci::Mount* d = mount_at(r->spec, "/data");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(has(d->options, "ro"));
  EXPECT_TRUE(has(d->options, "rslave"));
  EXPECT_TRUE(has(mount_at(r->spec, "/shared")->options, "rshared"));
}

TEST_F(PodmanPlan, DnsAndExtraHosts) {
  task_.dns_servers = {"10.0.0.2"};
  task_.dns_searches = {"svc.local"};
  auto r = plan({{"extra_hosts", L({S("db.local:10.1.1.1"), S("v6.local:[::1]")})}});
  ASSERT_TRUE(r) << r.error().str();
  std::ifstream resolv(task_dir_ + "/resolv.conf");
  std::string rc((std::istreambuf_iterator<char>(resolv)), {});
  EXPECT_EQ(rc, "nameserver 10.0.0.2\nsearch svc.local\n");
  std::ifstream hosts(task_dir_ + "/hosts");
  std::string h((std::istreambuf_iterator<char>(hosts)), {});
  EXPECT_NE(h.find("10.1.1.1\tdb.local"), std::string::npos);
  EXPECT_NE(h.find("::1\tv6.local"), std::string::npos);
  expect_error(plan({{"extra_hosts", L({S("nocolon")})}}), "config.extra_hosts[0]");
  task_.dns_servers = {"not-an-ip"};
  expect_error(plan({}), "dns.servers[0]");
}

TEST_F(PodmanPlan, ImageForms) {
  // A plain rootfs directory.
  auto plain = plan({{"image", S(image_ + "/rootfs")}});
  ASSERT_TRUE(plain) << plain.error().str();
  EXPECT_EQ(plain->image_layers.at(0), fs::canonical(image_ + "/rootfs").string());
  expect_error(plan({{"image", S("docker.io/library/redis:7")}}), "config.image");
  expect_error(plan({{"image", S("docker://redis")}}), "config.image");
  expect_error(plan({{"image", S("oci-archive:/tmp/x.tar")}}), "config.image");
  expect_error(plan({{"image", S("docker-archive:/tmp/x.tar")}}), "config.image");
  expect_error(plan({{"image", S(root_ + "/missing")}}), "config.image");
  expect_error(plan({{"image", S("/")}}), "config.image");
  expect_error(plan({{"image", S("")}}), "config.image");
  fs::create_directories(root_ + "/layout/blobs");
  write(root_ + "/layout/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
  write(root_ + "/layout/index.json", "{}");
  // A layout with a broken index.json is the store's to refuse.
  auto layout = plan({{"image", S(root_ + "/layout")}});
  expect_error(layout, "config.image");
  EXPECT_NE(layout.error().str().find("index.json"), std::string::npos) << layout.error().str();
}

TEST_F(PodmanPlan, UnsupportedSecurityFieldsAreErrors) {
  expect_error(plan({{"security_opt", L({S("seccomp=/etc/profile.json")})}}), "config.security_opt[0]");
  // The default filter, unless unconfined or privileged.
  auto filtered = plan({});
  ASSERT_TRUE(filtered) << filtered.error().str();
  ASSERT_TRUE(filtered->spec.linux->seccomp);
  EXPECT_EQ(filtered->spec.linux->seccomp->default_action, oci::SeccompAction::Errno);  // an allow list
  EXPECT_FALSE(filtered->spec.linux->seccomp->syscalls.empty());
  auto unconfined = plan({{"security_opt", L({S("seccomp=unconfined")})}});
  ASSERT_TRUE(unconfined) << unconfined.error().str();
  EXPECT_FALSE(unconfined->spec.linux->seccomp);
  auto privileged = plan({{"privileged", B(true)}});
  ASSERT_TRUE(privileged) << privileged.error().str();
  EXPECT_FALSE(privileged->spec.linux->seccomp);
  expect_error(plan({{"security_opt", L({S("no-new-privileges"), S("bogus=1")})}}), "config.security_opt[1]");
  expect_error(plan({{"security_opt", L({S("label=type:foo_t")})}}), "config.security_opt[0]");
  expect_error(plan({{"apparmor_profile", S("my-profile")}}), "config.apparmor_profile");
  expect_error(plan({{"selinux_opts", L({S("type:x")})}}), "config.selinux_opts");
  expect_error(plan({{"userns", S("keep-id")}}), "config.userns");
  expect_error(plan({{"init", B(true)}, {"init_path", S(root_ + "/no-init")}}), "config.init");

  auto nnp = plan({{"security_opt", L({S("no-new-privileges"), S("mask=/proc/foo"), S("unmask=/proc/kcore"),
                                        S("seccomp=unconfined"), S("apparmor=unconfined")})}});
  ASSERT_TRUE(nnp) << nnp.error().str();
  EXPECT_TRUE(nnp->spec.process->no_new_privileges);
  EXPECT_TRUE(has(*nnp->spec.linux->masked_paths, "/proc/foo"));
  EXPECT_FALSE(has(*nnp->spec.linux->masked_paths, "/proc/kcore"));
}

// As podman's containers-default: husk-default for a task that names no
// profile where the host runs AppArmor; apparmor_profile or security_opt
// "unconfined" and privileged tasks run without one.
TEST_F(PodmanPlan, TasksThatNameNoAppArmorProfileRunUnderHuskDefault) {
  int loads = 0;
  opts_.apparmor = {true, [&]() -> Result<> {
                      ++loads;
                      return {};
                    }};
  auto r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->apparmor_profile, std::optional<std::string>("husk-default"));
  for (auto unconfined : {std::pair<std::string, Value>{"apparmor_profile", S("unconfined")},
                          {"security_opt", L({S("apparmor=unconfined")})}, {"privileged", B(true)}}) {
    r = plan({unconfined});
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_FALSE(r->spec.process->apparmor_profile) << unconfined.first;
  }
  EXPECT_EQ(loads, 1);
  opts_.apparmor.ensure = []() -> Result<> { return fail_msg("apparmor_parser is not installed"); };
  r = plan({});
  expect_error(r, "config.apparmor_profile: ");
  EXPECT_NE(r.error().str().find("apparmor_profile = \"unconfined\""), std::string::npos) << r.error().str();
}

TEST_F(PodmanPlan, InitBinaryIsBoundAndRunsFirst) {
  write(root_ + "/catatonit", "#!/bin/true\n");
  auto r = plan({{"init", B(true)}, {"init_path", S(root_ + "/catatonit")}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->args, (std::vector<std::string>{"/run/podman-init", "--", "/bin/server"}));
  ASSERT_NE(mount_at(r->spec, "/run/podman-init"), nullptr);
  // With a read-only root, /run is a tmpfs: mounted before the init, or it
  // would hide it (found in the VM field test).
  auto ro = plan({{"init", B(true)}, {"init_path", S(root_ + "/catatonit")}, {"readonly_rootfs", B(true)},
                  {"volumes", L({S(root_ + ":/data")})}, {"tmpfs", L({S("/data/cache")})}});
  ASSERT_TRUE(ro) << ro.error().str();
  auto at = [&](const char* dst) {
    const auto& ms = ro->spec.mounts;
    return std::find_if(ms.begin(), ms.end(), [&](const oci::Mount& m) { return m.destination == dst; }) - ms.begin();
  };
  EXPECT_LT(at("/run"), at("/run/podman-init"));
  EXPECT_LT(at("/data"), at("/data/cache"));
  EXPECT_LT(at("/dev"), at("/dev/pts"));
  EXPECT_LT(at("/proc"), at("/run/podman-init"));
}

TEST_F(PodmanPlan, PrivilegedGetsEverything) {
  auto r = plan({{"privileged", B(true)}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.process->capabilities->bounding->size(), oci::capability_names().size());
  EXPECT_TRUE(r->spec.linux->masked_paths->empty());
  const oci::Mount* sys = mount_at(r->spec, "/sys");
  ASSERT_NE(sys, nullptr);
  EXPECT_FALSE(has(sys->options, "ro"));
  bool allow_all = false;
  for (auto& d : r->spec.linux->resources->devices) allow_all = allow_all || (d.allow && !d.type && !d.major);
  EXPECT_TRUE(allow_all);
}

TEST_F(PodmanPlan, ResourceFieldErrorsNameTheField) {
  expect_error(plan({{"ulimit", M({{"nofile", S("abc")}})}}), "config.ulimit.nofile");
  expect_error(plan({{"ulimit", M({{"nofile", S("")}})}}), "config.ulimit.nofile");
  expect_error(plan({{"ulimit", M({{"bogus", S("1")}})}}), "config.ulimit.bogus");
  expect_error(plan({{"memory_reservation", S("12")}}), "config.memory_reservation");
  expect_error(plan({{"memory_swap", S("-1")}}), "config.memory_swap");
  expect_error(plan({{"shm_size", S("64M")}}), "config.shm_size");
  expect_error(plan({{"cpu_hard_limit", B(true)}, {"cpu_cfs_period", I(2000000)}}), "config.cpu_cfs_period");
  expect_error(plan({{"oom_score_adj", I(5000)}}), "config.oom_score_adj");
  expect_error(plan({{"sysctl", M({{"vm.swappiness", S("1")}})}}), "config.sysctl.vm.swappiness");
  expect_error(plan({{"devices", L({S("/dev/definitely-missing")})}}), "config.devices[0]");
  expect_error(plan({{"ipc_mode", S("host")}, {"shm_size", S("64m")}}), "config.shm_size");
  expect_error(plan({{"logging", M({{"driver", S("syslog")}, {"options", Value()}})}}), "config.logging.driver");
  expect_error(plan({{"socket", S("other")}}), "config.socket");
  expect_error(plan({{"image_pull_timeout", S("5 minutes")}}), "config.image_pull_timeout");
  expect_error(plan({{"ports", L({S("http")})}}), "config.ports");
}

TEST_F(PodmanPlan, MemoryFollowsPodmansAlgorithm) {
  task_.memory_mb = 256;
  task_.memory_max_mb = 512;
  auto r = plan({{"memory_reservation", S("64m")}, {"memory_swap", S("1g")}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.linux->resources->memory->limit, 512 << 20);
  EXPECT_EQ(r->spec.linux->resources->memory->reservation, 64 << 20);
  EXPECT_EQ(r->spec.linux->resources->memory->swap, int64_t(1) << 30);
  task_.memory_max_mb = 0;
  auto plain = plan({});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->spec.linux->resources->memory->limit, 256 << 20);
  EXPECT_FALSE(plain->spec.linux->resources->memory->reservation);
}

TEST_F(PodmanPlan, DevicesFromConfigAndNomad) {
  auto r = plan({{"devices", L({S("/dev/null:/dev/mynull:rw"), S("/dev/zero")})}});
  ASSERT_TRUE(r) << r.error().str();
  const auto& devs = r->spec.linux->devices;
  ASSERT_EQ(devs.size(), 2u);
  EXPECT_EQ(devs[0].path, "/dev/mynull");
  EXPECT_EQ(devs[0].major, 1);
  EXPECT_EQ(devs[0].minor, 3);
  bool rule = false;
  for (auto& d : r->spec.linux->resources->devices)
    rule = rule || (d.allow && d.major == 1 && d.minor == 3 && d.access == "rw");
  EXPECT_TRUE(rule);
}

TEST_F(PodmanPlan, ExtraLabelsAsPodmanAddsThem) {
  opts_.extra_labels = {"job_*"};
  auto r = plan({});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->spec.annotations.at("com.hashicorp.nomad.alloc_id"), "0123");
  EXPECT_EQ(r->spec.annotations.at("com.hashicorp.nomad.job_name"), "shop");
  EXPECT_EQ(r->spec.annotations.count("com.hashicorp.nomad.task_name"), 0u);
}

}  // namespace

// ---- images through the store ------------------------------------------------------

class PodmanStoreImage : public PodmanPlan {
 protected:
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
  std::string blob(const std::string& data) {
    std::string hex = image::sha256_of(data).hex;
    write(layout_ + "/blobs/sha256/" + hex, data);
    return "sha256:" + hex;
  }
  // A layer tarball of `dir` made by tar(1): {digest, size} of the blob.
  std::pair<std::string, size_t> layer(const std::string& dir) {
    std::string tarball = root_ + "/layer.tar";
    std::string cmd = "tar --numeric-owner --owner=0 --group=0 -C " + dir + " -cf " + tarball + " .";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    std::string data = slurp(tarball);
    return {blob(data), data.size()};
  }
  // Two layers: the bottom one's /etc/passwd names app as uid 1000, the
  // top one's as 2000 (the top wins); the config carries podman's defaults.
  void SetUp() override {
    PodmanPlan::SetUp();
    layout_ = root_ + "/layout";
    fs::create_directories(layout_ + "/blobs/sha256");
    fs::create_directories(root_ + "/l1/etc");
    write(root_ + "/l1/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    write(root_ + "/l1/etc/group", "root:x:0:\napp:x:1000:\n");
    fs::create_directories(root_ + "/l2/etc");
    write(root_ + "/l2/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:2000:2000::/srv:/bin/sh\n");
    auto l1 = layer(root_ + "/l1");
    auto l2 = layer(root_ + "/l2");
    std::string id1 = image::sha256_of(slurp(layout_ + "/blobs/sha256/" + l1.first.substr(7))).str();
    std::string id2 = image::sha256_of(slurp(layout_ + "/blobs/sha256/" + l2.first.substr(7))).str();
    std::string config = R"({"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/app"],"Cmd":["--serve"],)"
                         R"("Env":["PATH=/app/bin","FROM_IMAGE=1","APP_MODE=image"],"WorkingDir":"/srv","User":"app",)"
                         R"("StopSignal":"SIGQUIT"},"rootfs":{"type":"layers","diff_ids":[")" +
                         id1 + "\",\"" + id2 + "\"]}}";
    std::string cfg = blob(config);
    auto desc = [](const std::string& mt, const std::string& d, size_t n) {
      return "{\"mediaType\":\"" + mt + "\",\"digest\":\"" + d + "\",\"size\":" + std::to_string(n) + "}";
    };
    std::string manifest = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                           "\"config\":" + desc("application/vnd.oci.image.config.v1+json", cfg, config.size()) +
                           ",\"layers\":[" + desc("application/vnd.oci.image.layer.v1.tar", l1.first, l1.second) +
                           "," + desc("application/vnd.oci.image.layer.v1.tar", l2.first, l2.second) + "]}";
    std::string m = blob(manifest);
    write(layout_ + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    write(layout_ + "/index.json", "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image."
                                   "manifest.v1+json\",\"digest\":\"" + m + "\",\"size\":" +
                                   std::to_string(manifest.size()) +
                                   ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}");
    config_id_ = cfg.substr(7);
  }
  static std::string env_of(const BundlePlan& p, const std::string& key) {
    for (const auto& e : p.spec.process->env)
      if (e.starts_with(key + "=")) return e.substr(key.size() + 1);
    return "<unset>";
  }
  void expect_image_defaults(const Result<BundlePlan>& r) {
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(r->spec.process->args, (std::vector<std::string>{"/bin/app", "--serve"}));
    EXPECT_EQ(env_of(*r, "APP_MODE"), "prod");  // the task's Env wins
    EXPECT_EQ(env_of(*r, "FROM_IMAGE"), "1");
    EXPECT_EQ(env_of(*r, "PATH"), "/app/bin");
    EXPECT_EQ(r->spec.process->cwd, "/srv");
    EXPECT_EQ(r->spec.process->user.uid, 2000u);  // the top layer's /etc/passwd
    EXPECT_EQ(r->stop_signal, "SIGQUIT");
    EXPECT_EQ(r->image_id, config_id_);
    EXPECT_EQ(r->image_store, root_ + "/store");
    ASSERT_EQ(r->image_layers.size(), 2u);
    for (const auto& l : r->image_layers) EXPECT_TRUE(fs::is_directory(l)) << l;
    EXPECT_TRUE(fs::exists(r->image_layers[0] + "/etc/passwd"));
    EXPECT_FALSE(fs::exists(r->image_layers[0] + "/etc/group"));  // the bottom layer's
  }
  std::string layout_, config_id_;
};

TEST_F(PodmanStoreImage, OciLayoutAppliesTheImageConfig) {
  expect_image_defaults(plan({{"image", S("oci:" + layout_ + ":v1")}, {"command", Value()}}));
  // A plain layout directory is the same image.
  auto plain = plan({{"image", S(layout_)}, {"command", Value()}});
  ASSERT_TRUE(plain) << plain.error().str();
  EXPECT_EQ(plain->image_id, config_id_);
  // command + args replace Cmd; the task's entrypoint replaces Entrypoint and drops Cmd.
  auto cmd = plan({{"image", S(layout_)}, {"command", S("--once")}, {"args", L({S("-v")})}});
  ASSERT_TRUE(cmd) << cmd.error().str();
  EXPECT_EQ(cmd->spec.process->args, (std::vector<std::string>{"/bin/app", "--once", "-v"}));
  auto ep = plan({{"image", S(layout_)}, {"entrypoint", L({S("/bin/sh")})}, {"command", Value()}});
  ASSERT_TRUE(ep) << ep.error().str();
  EXPECT_EQ(ep->spec.process->args, std::vector<std::string>{"/bin/sh"});
  // The task's user and working_dir win over the image's.
  task_.user = "root";
  auto root = plan({{"image", S(layout_)}, {"working_dir", S("/tmp")}});
  ASSERT_TRUE(root) << root.error().str();
  EXPECT_EQ(root->spec.process->user.uid, 0u);
  EXPECT_EQ(root->spec.process->cwd, "/tmp");
  expect_error(plan({{"image", S("oci:" + layout_ + ":v2")}}), "config.image");
  expect_error(plan({{"image", S(layout_)}, {"arch", S("arm64")}}), "config.image");
}

TEST_F(PodmanStoreImage, OciArchiveAndDockerArchive) {
  std::string oci = root_ + "/img.tar", docker = root_ + "/docker.tar";
  std::string copy = "skopeo --insecure-policy copy -q oci:" + layout_ + ":v1 ";
  ASSERT_EQ(std::system((copy + "oci-archive:" + oci + ":v1").c_str()), 0);
  ASSERT_EQ(std::system((copy + "docker-archive:" + docker + ":example/app:v1").c_str()), 0);
  expect_image_defaults(plan({{"image", S("oci-archive:" + oci)}, {"command", Value()}}));
  expect_image_defaults(plan({{"image", S("docker-archive:" + docker + ":example/app:v1")}, {"command", Value()}}));
  expect_error(plan({{"image", S("docker-archive:" + docker + ":other:tag")}}), "config.image");
  expect_error(plan({{"image", S("oci-archive:relative.tar")}}), "config.image");
  // With volumes disabled, an archive outside the allocation is refused.
  opts_.volumes_enabled = false;
  expect_error(plan({{"image", S("oci-archive:" + oci)}}), "volumes are not enabled");
}

TEST_F(PodmanPlan, UserLookupAcrossLayersHonoursWhiteoutsAndOpaqueDirs) {
  // image_ + "/rootfs" (bottom) names app; an upper layer hides it.
  std::string top = root_ + "/top";
  fs::create_directories(top + "/etc");
  std::vector<std::string> layers = {top, image_ + "/rootfs"};
  auto seen = resolve_user(layers, "app", "user");
  ASSERT_TRUE(seen) << seen.error().str();
  EXPECT_EQ(seen->uid, 1000u);
  ASSERT_EQ(setxattr((top + "/etc").c_str(), "user.overlay.opaque", "y", 1, 0), 0) << strerror(errno);
  EXPECT_FALSE(resolve_user(layers, "app", "user"));  // /etc is opaque: the bottom /etc/passwd is hidden
  EXPECT_TRUE(resolve_user(layers, "1000", "user"));  // a numeric uid needs no entry
  ASSERT_EQ(removexattr((top + "/etc").c_str(), "user.overlay.opaque"), 0);
  if (geteuid() == 0) {
    ASSERT_EQ(mknod((top + "/etc/passwd").c_str(), S_IFCHR, makedev(0, 0)), 0);
    EXPECT_FALSE(resolve_user(layers, "app", "user"));  // whited out
  }
}

TEST(ResolveImage, ADriverNotRunAsRootPullsThroughHuskImage) {
  // In a child that gave up root (nobody, who has no /etc/subuid range): a
  // store image goes to a husk-image child, whose refusal names the field
  // and the missing range, and no store is left at store_root.
  char tmpl[] = "/tmp/husk-resolve-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  ASSERT_EQ(chown(tmpl, 65534, 65534), 0);
  const std::string store = std::string(tmpl) + "/store";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
      _exit(3);
    ImageOptions o{store, oci::host_platform(), {}, {}};
    auto r = resolve_image("docker.io/library/redis:7", o, "config.image");
    bool ok = !r && r.error().what().starts_with("config.image: \"docker.io/library/redis:7\": ") &&
              r.error().what().find("has no range there") != std::string::npos;
    if (!ok) fprintf(stderr, "%s\n", r ? "resolved" : r.error().str().c_str());
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_FALSE(fs::exists(store));
  fs::remove_all(tmpl);
}

TEST(ResolveImage, ARootlessStoreImageTakesTheStoresIdMap) {
  ResolvedImage img;
  img.uid_map = {{0, 1000, 1}, {1, 300000, 65536}};
  img.gid_map = {{0, 1000, 1}, {1, 400000, 65536}};
  oci::Spec spec;
  spec.linux.emplace();
  ASSERT_TRUE(apply_store_id_map(spec, img, "config.userns", "host"));
  EXPECT_EQ(id_map_text(spec.linux->uid_mappings), "0:1000:1,1:300000:65536");
  EXPECT_EQ(id_map_text(spec.linux->gid_mappings), "0:1000:1,1:400000:65536");
  bool user_ns = false;
  for (const auto& n : spec.linux->namespaces) user_ns = user_ns || (n.type == oci::NamespaceType::User && !n.path);
  EXPECT_TRUE(user_ns);
  // A mode that needs maps of its own is an error naming the field and the store's maps.
  auto bad = apply_store_id_map(spec, img, "config.userns", "keep-id");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().what().find("config.userns: \"keep-id\": a rootless driver"), std::string::npos)
      << bad.error().what();
  EXPECT_NE(bad.error().what().find("0:1000:1,1:300000:65536"), std::string::npos) << bad.error().what();
  // Root's store and directories leave the spec alone.
  oci::Spec plain;
  plain.linux.emplace();
  ASSERT_TRUE(apply_store_id_map(plain, ResolvedImage{}, "config.userns", "keep-id"));
  EXPECT_TRUE(plain.linux->uid_mappings.empty());
}
