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
  bool operator==(const Value&) const = default;

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
// from their [type, value] form, attributes of type list(map(T)) arrive as
// one merged map (see merged_map), and numbers cty sent as decimal strings
// become numbers; errors name the attribute path, starting at `root`
// ("config.entrypoint: ..."). Malformed or truncated input is an error.
Result<Value> decode_msgpack(std::string_view bytes, const SpecNode* schema = nullptr,
                             std::string_view root = "config");

// Encodes a Value as cty msgpack would (maps with sorted keys). Used by tests
// and by driver_state.
std::string encode_msgpack(const Value& v);
// As cty would encode it for `schema`: attributes of type `any` are wrapped
// as [type-json, value], with the type cty infers from HCL (tuple, object).
std::string encode_msgpack(const Value& v, const SpecNode& schema);

// The legacy list(map(T)) form: a map as is, a list of maps merged into one
// (later keys win), null as an empty map. Anything else is an error naming
// `path`.
Result<Value> merged_map(const Value& v, std::string_view path = "");

// Typed reads of map member `key` for the flavors. A null or absent member
// yields the fallback; a member of another kind is an error naming
// `path.key` and what was expected.
Result<std::string> read_string(const Value& m, std::string_view key, std::string_view path,
                                std::string fallback = "");
Result<bool> read_bool(const Value& m, std::string_view key, std::string_view path, bool fallback = false);
// An integer (a float only when it is integral).
Result<int64_t> read_int(const Value& m, std::string_view key, std::string_view path, int64_t fallback = 0);
Result<std::vector<std::string>> read_strings(const Value& m, std::string_view key, std::string_view path);
// map(string) or its list(map(string)) form; keys in input order.
Result<std::vector<std::pair<std::string, std::string>>> read_string_map(const Value& m, std::string_view key,
                                                                          std::string_view path);

}  // namespace husk::driver
