// husk-image's store commands: list, inspect, remove, prune, import. Each
// opens the store at --root (default Store::default_root()) and does one
// thing; errors name the image or the option.
#include "image/store_commands.h"

#include <dirent.h>
#include <stdio.h>
#include <time.h>

#include <charconv>
#include <climits>
#include <string>
#include <vector>

#include "common/duration.h"
#include "image/import.h"
#include "image/pull_progress.h"
#include "image/store.h"

namespace husk::image {

namespace {

// "--root DIR" / "--root=DIR" and the rest of the arguments.
struct Args {
  std::string root;
  std::vector<std::string> rest;
  std::vector<std::pair<std::string, std::string>> options;  // other --name VALUE pairs asked for
};

Result<Args> parse(const std::vector<std::string>& args, const std::vector<std::string>& valued,
                   const std::vector<std::string>& flags) {
  Args out;
  out.root = Store::default_root();
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], val;
    bool has_val = false;
    if (size_t eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_val = true;
    }
    bool is_valued = a == "--root";
    for (const auto& v : valued) is_valued = is_valued || a == v;
    bool is_flag = false;
    for (const auto& f : flags) is_flag = is_flag || a == f;
    if (is_valued) {
      if (!has_val) {
        if (i + 1 >= args.size()) return fail_msg(a, " needs a value");
        val = args[++i];
      }
      if (a == "--root") out.root = val;
      else out.options.emplace_back(a, val);
    } else if (is_flag) {
      out.options.emplace_back(a, "true");
    } else if (a.starts_with("-")) {
      return fail_msg("unknown option ", a);
    } else {
      out.rest.push_back(a);
    }
  }
  if (out.root.empty() || out.root[0] != '/') return fail_msg("--root \"", out.root, "\" is not an absolute path");
  return out;
}

// Task ids holding a lease, by image id.
std::vector<std::pair<std::string, std::string>> leases(const Store& s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string dir = s.root() + "/leases";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (auto l = s.lease(e->d_name); l && *l) out.emplace_back(**l, e->d_name);
    }
    closedir(d);
  }
  return out;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += c;
  }
  return o + "\"";
}

int report(const Error& e) {
  fprintf(stderr, "husk-image: %s\n", e.str().c_str());
  return 1;
}

}  // namespace

int cmd_list(const std::vector<std::string>& argv) {
  auto a = parse(argv, {}, {"--quiet", "-q"});
  if (!a) return report(a.error());
  auto store = Store::open(a->root);
  if (!store) return report(store.error());
  auto images = store->list();
  if (!images) return report(images.error());
  bool quiet = !a->options.empty();
  auto held = leases(*store);
  if (!quiet) printf("%-50s %-12s %10s %-20s %s\n", "NAME", "ID", "SIZE", "CREATED", "TASKS");
  uint64_t total = 0;
  for (const auto& im : *images) {
    total += im.size;
    unsigned tasks = 0;
    for (const auto& [id, task] : held) tasks += id == im.id;
    std::vector<std::string> names = im.names.empty() ? std::vector<std::string>{"<none>"} : im.names;
    for (const auto& n : names) {
      if (quiet) {
        printf("%s\n", n.c_str());
        continue;
      }
      printf("%-50s %-12s %10s %-20s %u\n", n.c_str(), im.id.substr(0, 12).c_str(), human_bytes(im.size, SizeUnits::Decimal).c_str(),
             im.created.substr(0, 19).c_str(), tasks);
    }
  }
  if (!quiet) printf("%zu images, %s of blobs, in %s\n", images->size(), human_bytes(total, SizeUnits::Decimal).c_str(), a->root.c_str());
  return 0;
}

int cmd_inspect(const std::vector<std::string>& argv) {
  auto a = parse(argv, {}, {});
  if (!a) return report(a.error());
  if (a->rest.size() != 1) return report(Error::msg("inspect: name one image (a name, an id or an id prefix)"));
  auto store = Store::open(a->root);
  if (!store) return report(store.error());
  auto im = store->lookup(a->rest[0]);
  if (!im) return report(im.error());
  auto cfg = store->config(*im);
  if (!cfg) return report(cfg.error());
  std::string out = "{\n  \"Id\": " + json_str(im->id) + ",\n  \"Names\": [";
  for (size_t i = 0; i < im->names.size(); ++i) out += (i ? ", " : "") + json_str(im->names[i]);
  out += "],\n  \"Manifest\": " + json_str(im->manifest.str()) + ",\n  \"Config\": " + json_str(im->config.str()) +
         ",\n  \"Platform\": " + json_str(cfg->platform.str()) + ",\n  \"Created\": " + json_str(im->created) +
         ",\n  \"Size\": " + std::to_string(im->size) + ",\n  \"Layers\": [";
  std::vector<std::string> dirs = store->layer_dirs(*im);
  for (size_t i = 0; i < im->diff_ids.size(); ++i)
    out += std::string(i ? "," : "") + "\n    {\"DiffID\": " + json_str(im->diff_ids[i].str()) +
           ", \"Blob\": " + json_str(i < im->layer_blobs.size() ? im->layer_blobs[i].str() : "") + "}";
  out += "\n  ],\n  \"Entrypoint\": [";
  if (cfg->entrypoint)
    for (size_t i = 0; i < cfg->entrypoint->size(); ++i) out += (i ? ", " : "") + json_str((*cfg->entrypoint)[i]);
  out += "],\n  \"Cmd\": [";
  if (cfg->cmd)
    for (size_t i = 0; i < cfg->cmd->size(); ++i) out += (i ? ", " : "") + json_str((*cfg->cmd)[i]);
  out += "],\n  \"Env\": [";
  for (size_t i = 0; i < cfg->env.size(); ++i) out += (i ? ", " : "") + json_str(cfg->env[i]);
  out += "],\n  \"WorkingDir\": " + json_str(cfg->working_dir) + ",\n  \"User\": " + json_str(cfg->user) + "\n}\n";
  fputs(out.c_str(), stdout);
  return 0;
}

int cmd_remove(const std::vector<std::string>& argv) {
  auto a = parse(argv, {}, {});
  if (!a) return report(a.error());
  if (a->rest.empty()) return report(Error::msg("remove: name the images to remove"));
  auto store = Store::open(a->root);
  if (!store) return report(store.error());
  int rc = 0;
  for (const auto& name : a->rest) {
    if (auto r = store->remove(name); !r) rc = report(r.error());
    else printf("%s\n", name.c_str());
  }
  return rc;
}

namespace {

// prune's --unused-for: plain seconds ("3600"), whole days ("7d", which
// Go lacks), or a Go duration ("90m", "1h30m"); in whole seconds.
Result<int64_t> unused_for_seconds(const std::string& flag, const std::string& v) {
  bool days = v.ends_with('d');
  std::string_view digits = std::string_view(v).substr(0, v.size() - (days ? 1 : 0));
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc() || p != digits.data() + digits.size() || (days && n > INT64_MAX / 86400))
      return fail_msg(flag, " \"", v, "\": too large");
    return days ? n * 86400 : n;
  }
  auto d = TRY(parse_go_duration(v, flag));
  if (d.count() < 0) return fail_msg(flag, " \"", v, "\": a duration cannot be negative");
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

int cmd_prune(const std::vector<std::string>& argv) {
  auto a = parse(argv, {"--unused-for"}, {});
  if (!a) return report(a.error());
  int64_t unused_for = 0;
  for (const auto& [k, v] : a->options) {
    auto s = unused_for_seconds(k, v);
    if (!s) return report(s.error());
    unused_for = *s;
  }
  auto store = Store::open(a->root);
  if (!store) return report(store.error());
  auto st = store->gc(unused_for);
  if (!st) return report(st.error());
  printf("removed %u images, %u layers, %u blobs\n", st->images, st->layers, st->blobs);
  return 0;
}

int cmd_import(const std::vector<std::string>& argv) {
  auto a = parse(argv, {"--platform"}, {});
  if (!a) return report(a.error());
  oci::Platform platform = oci::host_platform();
  for (const auto& [k, v] : a->options) {
    auto p = oci::parse_platform(v, "--platform");
    if (!p) return report(p.error());
    platform = *p;
  }
  if (a->rest.empty() || a->rest.size() > 2)
    return report(Error::msg("import: SOURCE [NAME]: oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:TAG]"));
  auto src = parse_image_source(a->rest[0], "import");
  if (!src) return report(src.error());
  if (!*src) return report(Error::msg(cat("import: \"", a->rest[0], "\" is not oci:, oci-archive: or docker-archive: (pull takes registry references)")));
  auto store = Store::open(a->root);
  if (!store) return report(store.error());
  std::string name = a->rest.size() == 2 ? a->rest[1] : a->rest[0];
  CommitStats stats;
  auto rec = import_image(*store, **src, name, platform, &stats);
  if (!rec) return report(rec.error());
  for (const auto& w : stats.warnings) fprintf(stderr, "husk-image: warning: %s\n", w.c_str());
  printf("%s\n", rec->id.c_str());
  return 0;
}

int cmd_remove_dir(const std::vector<std::string>& argv) {
  auto a = parse(argv, {}, {});
  if (!a) return report(a.error());
  if (a->rest.empty()) return report(Error::msg("remove-dir: name the directories to remove"));
  for (const auto& dir : a->rest)
    if (dir.empty() || dir[0] != '/' || dir == "/")
      return report(Error::msg(cat("remove-dir: \"", dir, "\" is not an absolute path below /")));
  // The caller's store map (none for root): what a rootless task's upper
  // directory holds belongs to the caller's sub-ids, which only the root
  // of a user namespace with that map may remove.
  auto map = caller_store_id_map();
  if (!map) return report(map.error());
  auto remove_all = [&]() -> Result<std::string> {
    for (const auto& dir : a->rest) TRYV_CTX(remove_tree(dir), "remove ", dir);
    return std::string();
  };
  auto r = map->rootless() ? run_in_store_userns(*map, remove_all) : remove_all();
  if (!r) return report(r.error());
  return 0;
}

}  // namespace husk::image
