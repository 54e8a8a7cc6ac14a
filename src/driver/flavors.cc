// The flavors the driver binary can serve, by name, and their support
// tables rendered as scdoc and markdown. A new flavor adds one line to
// kFlavors; main.cc and husk-driver-fields need no change.
#include <string>

#include "driver/flavor.h"

namespace husk::driver {

namespace {

struct Registered {
  const char* name;
  std::unique_ptr<Flavor> (*make)(const char* name);
};

const Registered kFlavors[] = {
    {"husk", [](const char* n) { return make_podman_flavor(n); }},  // the native name: podman's schema
    {"podman", [](const char* n) { return make_podman_flavor(n); }},
    {"docker", [](const char*) { return make_docker_flavor(); }},
    {"nspawn", [](const char*) { return make_nspawn_flavor(); }},
};

// scdoc treats *, _ and \ as markup; a table cell must not start a new
// row or cell either, which only a leading | or : would.
std::string scdoc_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string markdown_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|' || c == '*' || c == '_' || c == '\\' || c == '<') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::vector<std::string> flavor_names() {
  std::vector<std::string> out;
  for (const auto& f : kFlavors) out.push_back(f.name);
  return out;
}

std::unique_ptr<Flavor> make_flavor(const std::string& name) {
  for (const auto& f : kFlavors)
    if (name == f.name) return f.make(f.name);
  return nullptr;
}

const char* support_status_name(FieldSupport::Status s) {
  switch (s) {
    case FieldSupport::Status::kImplemented: return "implemented";
    case FieldSupport::Status::kAccepted: return "accepted";
    case FieldSupport::Status::kRefused: return "refused";
  }
  return "?";
}

std::string support_table_scdoc(const std::vector<FieldSupport>& rows) {
  std::string out = "[[ *Field*\n:[ *Status*\n:< *Note*\n";
  for (const auto& r : rows) {
    out += "|  " + scdoc_escape(r.field) + "\n";
    out += ":  " + std::string(support_status_name(r.status)) + "\n";
    out += ":  " + scdoc_escape(r.note) + "\n";
  }
  return out;
}

std::string support_table_markdown(const std::vector<FieldSupport>& rows) {
  std::string out = "| Field | Status | Note |\n|---|---|---|\n";
  for (const auto& r : rows)
    out += "| `" + r.field + "` | " + support_status_name(r.status) + " | " + markdown_escape(r.note) + " |\n";
  return out;
}

}  // namespace husk::driver

namespace husk::driver {
namespace {
uint32_t host_of_zero(const std::vector<oci::IdMapping>& maps, uint32_t fallback) {
  for (const auto& m : maps)
    if (m.container_id == 0) return m.host_id;
  return fallback;
}
}  // namespace

uint32_t OwnershipPlan::root_uid() const { return uid_map.empty() ? to : host_of_zero(uid_map, to); }
uint32_t OwnershipPlan::root_gid() const { return gid_map.empty() ? to : host_of_zero(gid_map, to); }

}  // namespace husk::driver
