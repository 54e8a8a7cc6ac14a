// A small JSON writer: objects, arrays, strings and numbers, with optional
// 2-space indentation. Enough for config.json, state and features.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace husk::oci {

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty) : pretty_(pretty) {}
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& str(std::string_view v);
  JsonWriter& num(int64_t v);
  JsonWriter& unum(uint64_t v);
  JsonWriter& boolean(bool v);
  JsonWriter& strings(const std::vector<std::string>& v);
  JsonWriter& strings(const std::vector<std::string_view>& v);
  std::string take() { return std::move(out_); }

 private:
  void before_value();
  JsonWriter& close(char bracket);
  void newline();
  bool pretty_;
  std::string out_;
  std::vector<bool> first_;  // per open container: no element yet
  bool after_key_ = false;
};

std::string json_quote(std::string_view s);

}  // namespace husk::oci
