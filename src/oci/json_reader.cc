#include "oci/json_reader.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/text.h"

namespace husk::oci {

J J::operator[](const char* key) const {
  std::string p = path.empty() ? std::string(key) : path + "." + key;
  if (!v || !YAJL_IS_OBJECT(v)) return J{nullptr, p};
  for (size_t i = 0; i < v->u.object.len; ++i)
    if (strcmp(v->u.object.keys[i], key) == 0) return J{v->u.object.values[i], p};
  return J{nullptr, p};
}

J J::at(size_t i) const {
  std::string p = path + "[" + std::to_string(i) + "]";
  if (!v || !YAJL_IS_ARRAY(v) || i >= v->u.array.len) return J{nullptr, p};
  return J{v->u.array.values[i], p};
}

size_t J::size() const { return v && YAJL_IS_ARRAY(v) ? v->u.array.len : 0; }

std::vector<std::string> J::keys() const {
  std::vector<std::string> out;
  if (v && YAJL_IS_OBJECT(v))
    for (size_t i = 0; i < v->u.object.len; ++i) out.emplace_back(v->u.object.keys[i]);
  return out;
}

Result<JsonDoc> JsonDoc::parse(std::string_view text) {
  std::string copy(text);
  char err[512] = {};
  yajl_val t = yajl_tree_parse(copy.c_str(), err, sizeof err);
  if (!t) {
    std::string e = one_line(err[0] ? err : "invalid JSON");
    return fail_msg("invalid JSON: ", e);
  }
  return JsonDoc(t);
}

const char* type_name(yajl_val v) {
  if (!v || YAJL_IS_NULL(v)) return "null";
  if (YAJL_IS_STRING(v)) return "string";
  if (YAJL_IS_NUMBER(v)) return "number";
  if (YAJL_IS_OBJECT(v)) return "object";
  if (YAJL_IS_ARRAY(v)) return "array";
  return "boolean";
}

Result<> need_object(const J& j) {
  if (!j.v || !YAJL_IS_OBJECT(j.v)) return bad(j, "expected an object, got ", type_name(j.v));
  return {};
}

Result<> need_array(const J& j) {
  if (!j.v || !YAJL_IS_ARRAY(j.v)) return bad(j, "expected an array, got ", type_name(j.v));
  return {};
}

Result<std::string> get_string(const J& j) {
  if (!j.v || !YAJL_IS_STRING(j.v)) return bad(j, "expected a string, got ", type_name(j.v));
  return std::string(YAJL_GET_STRING(j.v));
}

Result<bool> get_bool(const J& j) {
  if (j.v && YAJL_IS_TRUE(j.v)) return true;
  if (j.v && YAJL_IS_FALSE(j.v)) return false;
  return bad(j, "expected true or false, got ", type_name(j.v));
}

Result<int64_t> get_int(const J& j, int64_t min, int64_t max) {
  if (!j.v || !YAJL_IS_NUMBER(j.v)) return bad(j, "expected a number, got ", type_name(j.v));
  const char* raw = j.v->u.number.r;
  errno = 0;
  char* end;
  long long n = strtoll(raw, &end, 10);
  if (*end != '\0') return bad(j, "expected an integer, got ", raw);
  if (errno == ERANGE || n < min || n > max) return bad(j, "value ", raw, " is out of range [", min, ", ", max, "]");
  return static_cast<int64_t>(n);
}

Result<uint64_t> get_uint(const J& j, uint64_t max) {
  if (!j.v || !YAJL_IS_NUMBER(j.v)) return bad(j, "expected a number, got ", type_name(j.v));
  const char* raw = j.v->u.number.r;
  if (raw[0] == '-') return bad(j, "must not be negative, got ", raw);
  errno = 0;
  char* end;
  unsigned long long n = strtoull(raw, &end, 10);
  if (*end != '\0') return bad(j, "expected an integer, got ", raw);
  if (errno == ERANGE || n > max) return bad(j, "value ", raw, " is out of range [0, ", max, "]");
  return static_cast<uint64_t>(n);
}

Result<std::vector<std::string>> get_strings(const J& j) {
  if (!j.v || !YAJL_IS_ARRAY(j.v)) return bad(j, "expected an array of strings, got ", type_name(j.v));
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) out.push_back(TRY(get_string(j.at(i))));
  return out;
}

Result<std::map<std::string, std::string>> get_string_map(const J& j) {
  TRYV(need_object(j));
  std::map<std::string, std::string> out;
  for (const auto& k : j.keys()) out[k] = TRY(get_string(j[k.c_str()]));
  return out;
}

Result<std::optional<std::string>> opt_string(const J& j) {
  if (!j.present()) return std::optional<std::string>();
  return std::optional<std::string>(TRY(get_string(j)));
}
Result<std::optional<bool>> opt_bool(const J& j) {
  if (!j.present()) return std::optional<bool>();
  return std::optional<bool>(TRY(get_bool(j)));
}
Result<std::optional<int64_t>> opt_int(const J& j, int64_t min, int64_t max) {
  if (!j.present()) return std::optional<int64_t>();
  return std::optional<int64_t>(TRY(get_int(j, min, max)));
}
Result<std::optional<uint64_t>> opt_uint(const J& j, uint64_t max) {
  if (!j.present()) return std::optional<uint64_t>();
  return std::optional<uint64_t>(TRY(get_uint(j, max)));
}

}  // namespace husk::oci
