// The hclspec builders: small constructors for the SpecNode tree.
#include "driver/hclspec.h"

namespace husk::driver {

namespace {
Spec node(SpecNode::Kind kind) {
  auto n = std::make_shared<SpecNode>();
  n->kind = kind;
  return n;
}
}  // namespace

Spec object(std::vector<std::pair<std::string, Spec>> attributes) {
  auto n = node(SpecNode::Kind::Object);
  n->children = std::move(attributes);
  return n;
}

Spec attr(std::string name, std::string type, bool required) {
  auto n = node(SpecNode::Kind::Attr);
  n->name = std::move(name);
  n->type = std::move(type);
  n->required = required;
  return n;
}

Spec block(std::string name, Spec nested, bool required) {
  auto n = node(SpecNode::Kind::Block);
  n->name = std::move(name);
  n->required = required;
  n->children.emplace_back("", std::move(nested));
  return n;
}

Spec block_list(std::string name, Spec nested) {
  auto n = node(SpecNode::Kind::BlockList);
  n->name = std::move(name);
  n->children.emplace_back("", std::move(nested));
  return n;
}

Spec block_attrs(std::string name, std::string type, bool required) {
  auto n = node(SpecNode::Kind::BlockAttrs);
  n->name = std::move(name);
  n->type = std::move(type);
  n->required = required;
  return n;
}

Spec literal(std::string hcl_expression) {
  auto n = node(SpecNode::Kind::Literal);
  n->literal = std::move(hcl_expression);
  return n;
}

Spec with_default(Spec primary, Spec fallback) {
  auto n = node(SpecNode::Kind::Default);
  n->children.emplace_back("", std::move(primary));
  n->children.emplace_back("", std::move(fallback));
  return n;
}

Spec attr_default(std::string name, std::string type, std::string hcl_default) {
  return with_default(attr(std::move(name), std::move(type)), literal(std::move(hcl_default)));
}

}  // namespace husk::driver
