// Value, and cty msgpack in and out through msgpack-c. The input comes from
// Nomad, but it is still checked before msgpack-c sees it: every length and
// count must fit in the bytes that are left, so a truncated or corrupted
// message is an error instead of a huge allocation or a read past the end.
#include "driver/value.h"

#include <msgpack.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "driver/hclspec.h"

namespace husk::driver {

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}
Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::Float;
  v.d_ = d;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.s_ = std::move(s);
  return v;
}
Value Value::array(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::Array;
  v.items_ = std::move(items);
  return v;
}
Value Value::map(std::vector<std::pair<std::string, Value>> entries) {
  Value v;
  v.kind_ = Kind::Map;
  v.entries_ = std::move(entries);
  return v;
}

const Value& Value::operator[](std::string_view key) const {
  static const Value null;
  if (kind_ != Kind::Map) return null;
  for (const auto& [k, v] : entries_)
    if (k == key) return v;
  return null;
}

Result<Value> merged_map(const Value& v, std::string_view path) {
  switch (v.kind()) {
    case Value::Kind::Null:
      return Value::map({});
    case Value::Kind::Map:
      return v;
    case Value::Kind::Array: {
      std::vector<std::pair<std::string, Value>> out;
      for (size_t i = 0; i < v.items().size(); i++) {
        const Value& m = v.items()[i];
        if (m.is_null()) continue;
        if (m.kind() != Value::Kind::Map) return fail_msg(path, "[", i, "]: expected a map");
        for (const auto& [k, val] : m.entries()) {
          auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == k; });
          if (it != out.end())
            it->second = val;
          else
            out.emplace_back(k, val);
        }
      }
      return Value::map(std::move(out));
    }
    default:
      return fail_msg(path, ": expected a map or a list of maps");
  }
}

namespace {

// --- structural check ------------------------------------------------------

class Checker {
 public:
  explicit Checker(std::string_view b) : b_(b) {}
  bool whole() { return value(0) && pos_ == b_.size(); }
  size_t pos() const { return pos_; }

 private:
  bool need(uint64_t n) const { return n <= b_.size() - pos_; }
  bool skip(uint64_t n) {
    if (!need(n)) return false;
    pos_ += n;
    return true;
  }
  bool be(int bytes, uint64_t& out) {
    if (!need(bytes)) return false;
    out = 0;
    for (int i = 0; i < bytes; i++) out = (out << 8) | static_cast<uint8_t>(b_[pos_++]);
    return true;
  }
  bool items(uint64_t n, int depth) {
    // Each element takes one byte at least.
    if (!need(n)) return false;
    for (uint64_t i = 0; i < n; i++)
      if (!value(depth + 1)) return false;
    return true;
  }
  bool value(int depth) {
    // msgpack-c's unpacker keeps 32 levels of containers.
    if (depth >= 31 || !need(1)) return false;
    uint8_t t = static_cast<uint8_t>(b_[pos_++]);
    uint64_t n = 0;
    if (t <= 0x7f || t >= 0xe0) return true;
    if (t <= 0x8f) return items(2 * uint64_t(t & 0x0f), depth);
    if (t <= 0x9f) return items(t & 0x0f, depth);
    if (t <= 0xbf) return skip(t & 0x1f);
    switch (t) {
      case 0xc0: case 0xc2: case 0xc3: return true;
      case 0xc4: return be(1, n) && skip(n);
      case 0xc5: return be(2, n) && skip(n);
      case 0xc6: return be(4, n) && skip(n);
      case 0xc7: return be(1, n) && skip(n + 1);
      case 0xc8: return be(2, n) && skip(n + 1);
      case 0xc9: return be(4, n) && skip(n + 1);
      case 0xca: return skip(4);
      case 0xcb: return skip(8);
      case 0xcc: case 0xd0: return skip(1);
      case 0xcd: case 0xd1: return skip(2);
      case 0xce: case 0xd2: return skip(4);
      case 0xcf: case 0xd3: return skip(8);
      case 0xd4: return skip(2);
      case 0xd5: return skip(3);
      case 0xd6: return skip(5);
      case 0xd7: return skip(9);
      case 0xd8: return skip(17);
      case 0xd9: return be(1, n) && skip(n);
      case 0xda: return be(2, n) && skip(n);
      case 0xdb: return be(4, n) && skip(n);
      case 0xdc: return be(2, n) && items(n, depth);
      case 0xdd: return be(4, n) && items(n, depth);
      case 0xde: return be(2, n) && items(2 * n, depth);
      case 0xdf: return be(4, n) && items(2 * n, depth);
      default: return false;  // 0xc1 is never used
    }
  }

  std::string_view b_;
  size_t pos_ = 0;
};

// --- msgpack_object -> Value -------------------------------------------------

const SpecNode* unwrap_default(const SpecNode* n) {
  while (n && n->kind == SpecNode::Kind::Default && !n->children.empty()) n = n->children[0].second.get();
  return n;
}

const SpecNode* object_child(const SpecNode* obj, std::string_view key) {
  if (!obj || obj->kind != SpecNode::Kind::Object) return nullptr;
  for (const auto& [k, c] : obj->children)
    if (k == key) return c.get();
  return nullptr;
}

std::string_view as_view(const msgpack_object_str& s) { return {s.ptr, s.size}; }

Result<Value> convert(const msgpack_object& o, const SpecNode* schema, const std::string& path);

Result<Value> convert_generic(const msgpack_object& o, const SpecNode* elem, const std::string& path,
                              bool elem_is_item_schema) {
  switch (o.type) {
    case MSGPACK_OBJECT_NIL:
      return Value();
    case MSGPACK_OBJECT_BOOLEAN:
      return Value::boolean(o.via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      if (o.via.u64 > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(o.via.u64));
      return Value::integer(static_cast<int64_t>(o.via.u64));
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      return Value::integer(o.via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      return Value::number(o.via.f64);
    case MSGPACK_OBJECT_STR:
      return Value::string(std::string(o.via.str.ptr, o.via.str.size));
    case MSGPACK_OBJECT_BIN:
      return Value::string(std::string(o.via.bin.ptr, o.via.bin.size));
    case MSGPACK_OBJECT_ARRAY: {
      std::vector<Value> items;
      items.reserve(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; i++)
        items.push_back(TRY(convert(o.via.array.ptr[i], elem_is_item_schema ? elem : nullptr, cat(path, "[", i, "]"))));
      return Value::array(std::move(items));
    }
    case MSGPACK_OBJECT_MAP: {
      std::vector<std::pair<std::string, Value>> entries;
      entries.reserve(o.via.map.size);
      for (uint32_t i = 0; i < o.via.map.size; i++) {
        const auto& kv = o.via.map.ptr[i];
        std::string key;
        if (kv.key.type == MSGPACK_OBJECT_STR)
          key.assign(kv.key.via.str.ptr, kv.key.via.str.size);
        else if (kv.key.type == MSGPACK_OBJECT_BIN)
          key.assign(kv.key.via.bin.ptr, kv.key.via.bin.size);
        else
          return fail_msg(path, ": map key ", i, " is not a string");
        std::string sub = path.empty() ? key : cat(path, ".", key);
        const SpecNode* child = elem_is_item_schema ? nullptr : object_child(elem, key);
        entries.emplace_back(key, TRY(convert(kv.val, child, sub)));
      }
      return Value::map(std::move(entries));
    }
    case MSGPACK_OBJECT_EXT:
      if (o.via.ext.type == 0) return fail_msg(path, ": unknown value (not known until the task runs)");
      return fail_msg(path, ": unexpected msgpack extension type ", static_cast<int>(o.via.ext.type));
  }
  return fail_msg(path, ": unexpected msgpack type ", static_cast<int>(o.type));
}

// cty sends a number that is neither an int64 nor a float64 as its decimal text.
Result<Value> number_from_text(std::string_view s, const std::string& path) {
  int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec == std::errc() && p == s.data() + s.size()) return Value::integer(i);
  double d = 0;
  auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 == std::errc() && p2 == s.data() + s.size()) return Value::number(d);
  return fail_msg(path, ": expected a number, got \"", s, "\"");
}

bool is_list_of_maps(std::string_view type) { return type.starts_with("list(map(") && type.ends_with("))"); }

Result<Value> convert(const msgpack_object& o, const SpecNode* schema, const std::string& path) {
  schema = unwrap_default(schema);
  if (!schema) return convert_generic(o, nullptr, path, false);
  using K = SpecNode::Kind;
  switch (schema->kind) {
    case K::Object:
      if (o.type != MSGPACK_OBJECT_MAP && o.type != MSGPACK_OBJECT_NIL) return fail_msg(path, ": expected an object");
      return convert_generic(o, schema, path, false);
    case K::Block:
      if (o.type != MSGPACK_OBJECT_MAP && o.type != MSGPACK_OBJECT_NIL) return fail_msg(path, ": expected a block");
      return convert_generic(o, schema->children.empty() ? nullptr : unwrap_default(schema->children[0].second.get()),
                             path, false);
    case K::BlockList:
    case K::BlockSet:
      if (o.type != MSGPACK_OBJECT_ARRAY && o.type != MSGPACK_OBJECT_NIL) return fail_msg(path, ": expected a list of blocks");
      return convert_generic(o, schema->children.empty() ? nullptr : schema->children[0].second.get(), path, true);
    case K::Attr: {
      if (schema->type == "any") {
        if (o.type == MSGPACK_OBJECT_NIL) return Value();
        if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 2 ||
            (o.via.array.ptr[0].type != MSGPACK_OBJECT_BIN && o.via.array.ptr[0].type != MSGPACK_OBJECT_STR))
          return fail_msg(path, ": dynamic value is not a [type, value] pair");
        return convert_generic(o.via.array.ptr[1], nullptr, path, false);
      }
      if (schema->type == "number" && o.type == MSGPACK_OBJECT_STR) return number_from_text(as_view(o.via.str), path);
      Value v = TRY(convert_generic(o, nullptr, path, false));
      if (is_list_of_maps(schema->type)) return merged_map(v, path);
      return v;
    }
    default:
      return convert_generic(o, nullptr, path, false);
  }
}

// --- Value -> msgpack ---------------------------------------------------------

int write_sbuffer(void* data, const char* buf, size_t len) { return msgpack_sbuffer_write(data, buf, len); }

std::string type_json(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Null: return "\"dynamic\"";
    case Value::Kind::Bool: return "\"bool\"";
    case Value::Kind::Int:
    case Value::Kind::Float: return "\"number\"";
    case Value::Kind::String: return "\"string\"";
    case Value::Kind::Array: {
      std::string s = "[\"tuple\",[";
      for (size_t i = 0; i < v.items().size(); i++) s += (i ? "," : "") + type_json(v.items()[i]);
      return s + "]]";
    }
    case Value::Kind::Map: {
      auto entries = v.entries();
      std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::string s = "[\"object\",{";
      for (size_t i = 0; i < entries.size(); i++)
        s += cat(i ? "," : "", "\"", entries[i].first, "\":", type_json(entries[i].second));
      return s + "}]";
    }
  }
  return "\"dynamic\"";
}

void pack(msgpack_packer* pk, const Value& v, const SpecNode* schema) {
  schema = unwrap_default(schema);
  if (schema && schema->kind == SpecNode::Kind::Attr && schema->type == "any" && !v.is_null()) {
    std::string t = type_json(v);
    msgpack_pack_array(pk, 2);
    msgpack_pack_bin(pk, t.size());
    msgpack_pack_bin_body(pk, t.data(), t.size());
    pack(pk, v, nullptr);
    return;
  }
  switch (v.kind()) {
    case Value::Kind::Null: msgpack_pack_nil(pk); return;
    case Value::Kind::Bool: v.as_bool() ? msgpack_pack_true(pk) : msgpack_pack_false(pk); return;
    case Value::Kind::Int: msgpack_pack_int64(pk, v.as_int()); return;
    case Value::Kind::Float: msgpack_pack_double(pk, v.as_float()); return;
    case Value::Kind::String:
      msgpack_pack_str(pk, v.as_string().size());
      msgpack_pack_str_body(pk, v.as_string().data(), v.as_string().size());
      return;
    case Value::Kind::Array: {
      const SpecNode* elem = nullptr;
      if (schema && (schema->kind == SpecNode::Kind::BlockList || schema->kind == SpecNode::Kind::BlockSet) &&
          !schema->children.empty())
        elem = schema->children[0].second.get();
      msgpack_pack_array(pk, v.items().size());
      for (const auto& item : v.items()) pack(pk, item, elem);
      return;
    }
    case Value::Kind::Map: {
      const SpecNode* obj = schema;
      if (obj && obj->kind == SpecNode::Kind::Block && !obj->children.empty())
        obj = unwrap_default(obj->children[0].second.get());
      auto entries = v.entries();
      std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      msgpack_pack_map(pk, entries.size());
      for (const auto& [k, val] : entries) {
        msgpack_pack_str(pk, k.size());
        msgpack_pack_str_body(pk, k.data(), k.size());
        pack(pk, val, object_child(obj, k));
      }
      return;
    }
  }
}

std::string encode(const Value& v, const SpecNode* schema) {
  msgpack_sbuffer sbuf;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sbuf, write_sbuffer);
  pack(&pk, v, schema);
  std::string out(sbuf.data ? sbuf.data : "", sbuf.size);
  msgpack_sbuffer_destroy(&sbuf);
  return out;
}

}  // namespace

Result<Value> decode_msgpack(std::string_view bytes, const SpecNode* schema, std::string_view root) {
  std::string path(root);
  if (bytes.empty()) return fail_msg(path, ": empty msgpack message");
  Checker check(bytes);
  if (!check.whole())
    return fail_msg(path, ": malformed msgpack (truncated, corrupt, nested too deep or trailing bytes near byte ",
                    check.pos(), " of ", bytes.size(), ")");
  msgpack_unpacked msg;
  msgpack_unpacked_init(&msg);
  size_t off = 0;
  auto rc = msgpack_unpack_next(&msg, bytes.data(), bytes.size(), &off);
  if (rc != MSGPACK_UNPACK_SUCCESS) {
    msgpack_unpacked_destroy(&msg);
    return fail_msg(path, ": malformed msgpack (unpack status ", static_cast<int>(rc), ")");
  }
  auto v = convert(msg.data, schema, path);
  msgpack_unpacked_destroy(&msg);
  return v;
}

namespace {
std::string field(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : cat(path, ".", key);
}
const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return "a bool";
    case Value::Kind::Int: return "an integer";
    case Value::Kind::Float: return "a number";
    case Value::Kind::String: return "a string";
    case Value::Kind::Array: return "a list";
    case Value::Kind::Map: return "a map";
  }
  return "?";
}
}  // namespace

Result<std::string> read_string(const Value& m, std::string_view key, std::string_view path, std::string fallback) {
  const Value& v = m[key];
  if (v.is_null()) return fallback;
  if (v.kind() != Value::Kind::String) return fail_msg(field(path, key), ": expected a string, got ", kind_name(v.kind()));
  return v.as_string();
}

Result<bool> read_bool(const Value& m, std::string_view key, std::string_view path, bool fallback) {
  const Value& v = m[key];
  if (v.is_null()) return fallback;
  if (v.kind() == Value::Kind::Bool) return v.as_bool();
  if (v.kind() == Value::Kind::String && (v.as_string() == "true" || v.as_string() == "false"))
    return v.as_string() == "true";
  return fail_msg(field(path, key), ": expected a bool, got ", kind_name(v.kind()));
}

Result<int64_t> read_int(const Value& m, std::string_view key, std::string_view path, int64_t fallback) {
  const Value& v = m[key];
  if (v.is_null()) return fallback;
  if (v.kind() == Value::Kind::Int) return v.as_int();
  if (v.kind() == Value::Kind::Float) {
    double d = v.as_float();
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18) return static_cast<int64_t>(d);
    return fail_msg(field(path, key), ": expected an integer, got ", std::to_string(d));
  }
  return fail_msg(field(path, key), ": expected a number, got ", kind_name(v.kind()));
}

Result<std::vector<std::string>> read_strings(const Value& m, std::string_view key, std::string_view path) {
  const Value& v = m[key];
  std::vector<std::string> out;
  if (v.is_null()) return out;
  if (v.kind() != Value::Kind::Array) return fail_msg(field(path, key), ": expected a list of strings, got ", kind_name(v.kind()));
  for (size_t i = 0; i < v.items().size(); i++) {
    const Value& e = v.items()[i];
    if (e.kind() != Value::Kind::String)
      return fail_msg(field(path, key), "[", i, "]: expected a string, got ", kind_name(e.kind()));
    out.push_back(e.as_string());
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> read_string_map(const Value& m, std::string_view key,
                                                                          std::string_view path) {
  std::string f = field(path, key);
  Value merged = TRY(merged_map(m[key], f));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : merged.entries()) {
    if (v.kind() == Value::Kind::String)
      out.emplace_back(k, v.as_string());
    else if (v.kind() == Value::Kind::Int)
      out.emplace_back(k, std::to_string(v.as_int()));
    else if (v.kind() == Value::Kind::Bool)
      out.emplace_back(k, v.as_bool() ? "true" : "false");
    else if (v.is_null())
      out.emplace_back(k, "");
    else
      return fail_msg(f, ".", k, ": expected a string, got ", kind_name(v.kind()));
  }
  return out;
}

std::string encode_msgpack(const Value& v) { return encode(v, nullptr); }
std::string encode_msgpack(const Value& v, const SpecNode& schema) { return encode(v, &schema); }

}  // namespace husk::driver
