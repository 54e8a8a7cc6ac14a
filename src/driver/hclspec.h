// Task and plugin config schemas as a tree of hclspec nodes (Nomad's
// plugins/shared/hclspec), independent of protobuf: the flavors declare
// their schemas with these, and the gRPC layer converts them to the wire
// message for ConfigSchema / TaskConfigSchema.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace husk::driver {

struct SpecNode {
  enum class Kind { Object, Attr, Block, BlockList, BlockSet, BlockAttrs, BlockMap, Default, Literal, Array };
  Kind kind = Kind::Object;
  std::string name;      // Attr, Block*, BlockAttrs: the HCL name
  std::string type;      // Attr, BlockAttrs: HCL type expression ("string", "list(map(string))", "any")
  bool required = false;
  uint64_t min_items = 0, max_items = 0;  // BlockList/BlockSet
  std::vector<std::string> labels;         // BlockMap
  std::string literal;   // Literal: an HCL expression in source form ("\"5m\"", "true", "[]")
  // Object: named children (output attribute names); Block*/Default: children[0]
  // (Default: children[0] primary, children[1] default); Array: values.
  std::vector<std::pair<std::string, std::shared_ptr<SpecNode>>> children;
};

using Spec = std::shared_ptr<SpecNode>;

Spec object(std::vector<std::pair<std::string, Spec>> attributes);
Spec attr(std::string name, std::string type, bool required = false);
Spec block(std::string name, Spec nested, bool required = false);
Spec block_list(std::string name, Spec nested);
Spec block_attrs(std::string name, std::string type, bool required = false);
Spec literal(std::string hcl_expression);
Spec with_default(Spec primary, Spec fallback);
// with_default(attr("x", "bool"), literal("true")) spelled shorter:
Spec attr_default(std::string name, std::string type, std::string hcl_default);

// The flavors' schema files spell object members tersely: a("image",
// "string", true) is {"image", attr("image", "string", true)}, d(...) the
// same with a default. `using namespace husk::driver::members;` brings them in.
namespace members {
inline std::pair<std::string, Spec> a(std::string name, std::string type, bool required = false) {
  return {name, attr(name, std::move(type), required)};
}
inline std::pair<std::string, Spec> d(std::string name, std::string type, std::string dflt) {
  return {name, attr_default(name, std::move(type), std::move(dflt))};
}
}  // namespace members

}  // namespace husk::driver
