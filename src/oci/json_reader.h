// Reading yajl trees with the JSON path of every value at hand, so each
// error names where it is: `linux.namespaces[2].type: unknown namespace type "x"`.
#pragma once

#include <yajl/yajl_tree.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk::oci {

struct J {
  yajl_val v = nullptr;  // nullptr: absent (or JSON null)
  std::string path;

  bool present() const { return v != nullptr && !YAJL_IS_NULL(v); }
  J operator[](const char* key) const;  // member; absent if v is not an object
  J at(size_t i) const;                 // array element
  size_t size() const;                  // array length (0 if not an array)
  std::vector<std::string> keys() const;
};

// The document: owns the tree.
class JsonDoc {
 public:
  static Result<JsonDoc> parse(std::string_view text);
  JsonDoc(JsonDoc&& o) noexcept : tree_(o.tree_) { o.tree_ = nullptr; }
  JsonDoc(const JsonDoc&) = delete;
  ~JsonDoc() { if (tree_) yajl_tree_free(tree_); }
  J root(std::string prefix = "") const { return J{tree_, std::move(prefix)}; }

 private:
  explicit JsonDoc(yajl_val t) : tree_(t) {}
  yajl_val tree_;
};

template <typename... Args>
std::unexpected<Error> bad(const J& j, Args&&... args) {
  return fail_msg(j.path.empty() ? std::string("(root)") : j.path, ": ", std::forward<Args>(args)...);
}

const char* type_name(yajl_val v);
Result<> need_object(const J& j);
Result<> need_array(const J& j);
Result<std::string> get_string(const J& j);
Result<bool> get_bool(const J& j);
Result<int64_t> get_int(const J& j, int64_t min, int64_t max);
Result<uint64_t> get_uint(const J& j, uint64_t max = UINT64_MAX);
Result<std::vector<std::string>> get_strings(const J& j);
Result<std::map<std::string, std::string>> get_string_map(const J& j);

// Optional forms: nullopt when absent.
Result<std::optional<std::string>> opt_string(const J& j);
Result<std::optional<bool>> opt_bool(const J& j);
Result<std::optional<int64_t>> opt_int(const J& j, int64_t min, int64_t max);
Result<std::optional<uint64_t>> opt_uint(const J& j, uint64_t max = UINT64_MAX);

}  // namespace husk::oci
