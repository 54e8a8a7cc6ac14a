// A decoded configuration value: what Nomad sends as cty msgpack
// (TaskConfig.msgpack_driver_config, SetConfig.msgpack_config), as a tree.
// Dynamic (`any`) attributes arrive as [type-json, value] pairs and are
// unwrapped by decode_msgpack, so users of a Value never see that encoding.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace husk::driver {

struct SpecNode;

class Value {
 public:
  enum class Kind { Null, Bool, Int, Float, String, Array, Map };

  Value() = default;
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value array(std::vector<Value> items);
  static Value map(std::vector<std::pair<std::string, Value>> entries);  // keys in input order

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Float ? static_cast<int64_t>(d_) : i_; }
  double as_float() const { return kind_ == Kind::Int ? static_cast<double>(i_) : d_; }
  const std::string& as_string() const { return s_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  // Map member by name; a null Value when absent (or when this is no map).
  const Value& operator[](std::string_view key) const;

 private:
  Kind kind_ = Kind::Null;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> entries_;
};

// Decodes cty msgpack. With a schema, attributes of type `any` are unwrapped
// from their [type, value] form; errors name the attribute path
// ("config.entrypoint: ...").
Result<Value> decode_msgpack(std::string_view bytes, const SpecNode* schema = nullptr);

// Encodes a Value as cty msgpack would (maps with sorted keys). Used by tests
// and by driver_state.
std::string encode_msgpack(const Value& v);

}  // namespace husk::driver
