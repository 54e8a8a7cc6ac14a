// The flavors' registry and support tables: every registered flavor's
// support() names each field of its task schema and plugin schema, in
// schema order, and nothing else; the scdoc and markdown renderings.
#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <vector>

#include "driver/flavor.h"
#include "driver/hclspec.h"

using namespace husk::driver;

namespace {

// "config.auth", "config.auth.username", "config.mount[].type", ...: every
// attribute and block of a schema, a block before its members; the members
// of a repeatable block are spelled "[].".
void walk(const SpecNode& n, const std::string& prefix, std::vector<std::string>& out) {
  using K = SpecNode::Kind;
  switch (n.kind) {
    case K::Object:
      for (const auto& [name, child] : n.children) {
        if (child->kind == K::Object) continue;
        const SpecNode* c = child.get();
        while (c->kind == K::Default) c = c->children[0].second.get();
        out.push_back(prefix + name);
        if (c->kind == K::Block)
          walk(*c->children[0].second, prefix + name + ".", out);
        else if (c->kind == K::BlockList || c->kind == K::BlockSet || c->kind == K::BlockMap)
          walk(*c->children[0].second, prefix + name + "[].", out);  // a repeatable block
      }
      break;
    default:
      break;
  }
}

std::vector<std::string> fields_of(const Flavor& f) {
  std::vector<std::string> out;
  walk(*f.task_schema(), "config.", out);
  walk(*f.plugin_schema(), "plugin.", out);
  return out;
}

}  // namespace

TEST(FlavorRegistry, NamesAndMakes) {
  auto names = flavor_names();
  ASSERT_FALSE(names.empty());
  for (const auto& n : names) {
    auto f = make_flavor(n);
    ASSERT_TRUE(f) << n;
    EXPECT_EQ(f->name(), n);
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "podman"), names.end());
  EXPECT_FALSE(make_flavor("no-such-driver"));
}

TEST(FlavorSupport, EveryFieldOfEveryFlavorInSchemaOrder) {
  for (const auto& n : flavor_names()) {
    auto f = make_flavor(n);
    std::vector<std::string> rows;
    for (const auto& r : f->support()) {
      rows.push_back(r.field);
      EXPECT_FALSE(r.note.empty()) << n << ": " << r.field << " has no note";
    }
    std::vector<std::string> want = fields_of(*f);
    for (const auto& r : rows)
      EXPECT_NE(std::find(want.begin(), want.end(), r), want.end()) << n << ": " << r << " is not in the schema";
    for (const auto& w : want)
      EXPECT_NE(std::find(rows.begin(), rows.end(), w), rows.end()) << n << ": " << w << " has no row";
    EXPECT_EQ(rows, want) << n;
  }
}

TEST(FlavorSupport, PodmanCoversTheReferenceCounts) {
  // driver-fields.md: 49 task fields + 3 in auth + 2 in logging; 13 plugin
  // options + their block members.
  auto f = make_flavor("podman");
  size_t config = 0, plugin = 0;
  for (const auto& r : f->support()) (r.field.starts_with("config.") ? config : plugin)++;
  EXPECT_EQ(config, 54u);
  EXPECT_GE(plugin, 13u);
}

TEST(FlavorSupport, TablesEscapeMarkup) {
  std::vector<FieldSupport> rows = {{"config.cap_add", FieldSupport::Status::kImplemented, "a *b* | c"},
                                    {"plugin.x", FieldSupport::Status::kRefused, "no"}};
  std::string sc = support_table_scdoc(rows);
  EXPECT_NE(sc.find("|  config.cap\\_add\n:  implemented\n:  a \\*b\\* | c\n"), std::string::npos) << sc;
  std::string md = support_table_markdown(rows);
  EXPECT_NE(md.find("| `config.cap_add` | implemented | a \\*b\\* \\| c |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| `plugin.x` | refused | no |\n"), std::string::npos) << md;
}
