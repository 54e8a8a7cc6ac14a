// A test driver for the image store API (not installed; the husk-image CLI
// is the registry client's): the host integration tests run it against
// real files, archives and overlay mounts.
//
//   image-store-tool unpack BLOB DEST DIFF_ID [--userxattr] [--shift N]
//   image-store-tool import ROOT SOURCE [NAME]
//   image-store-tool commit ROOT NAME MANIFEST_DIGEST
//   image-store-tool inspect ROOT IMAGE
//   image-store-tool mount ROOT IMAGE TARGET UPPER WORK
//   image-store-tool umount TARGET
//   image-store-tool lease ROOT TASK IMAGE | release ROOT TASK
//   image-store-tool remove ROOT IMAGE | gc ROOT UNUSED_SECONDS
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "image/import.h"
#include "common/overlay.h"
#include "image/store.h"
#include "image/unpack.h"

using namespace husk;
using namespace husk::image;
using namespace husk::overlay;

namespace {

void print_record(const ImageRecord& r, const CommitStats* s) {
  std::printf("id=%s\n", r.id.c_str());
  for (const auto& n : r.names) std::printf("name=%s\n", n.c_str());
  std::printf("manifest=%s\nlayers=%zu\nsize=%llu\n", r.manifest.str().c_str(), r.diff_ids.size(),
              static_cast<unsigned long long>(r.size));
  if (s) std::printf("unpacked=%u\nreused=%u\n", s->layers_unpacked, s->layers_reused);
}

Result<> run(const std::vector<std::string>& a) {
  auto need = [&](size_t n) -> Result<> {
    if (a.size() < n) return fail_msg("usage: see the header of tests/image/image_store_tool.cc");
    return {};
  };
  TRYV(need(2));
  const std::string& cmd = a[0];
  if (cmd == "unpack") {
    TRYV(need(4));
    UnpackOptions o;
    for (size_t i = 4; i < a.size(); i++) {
      if (a[i] == "--userxattr") o.userxattr = true;
      if (a[i] == "--shift" && i + 1 < a.size()) {
        uint32_t base = static_cast<uint32_t>(std::strtoul(a[++i].c_str(), nullptr, 10));
        o.uid_map = o.gid_map = {IdRange{0, base, 65536}};
      }
    }
    Digest d = TRY(parse_digest(a[3], "DIFF_ID"));
    auto st = TRY(unpack_layer(a[1], a[2], d, o));
    std::printf("entries=%llu\n", static_cast<unsigned long long>(st.entries));
    return {};
  }
  if (cmd == "umount") return unmount_overlay(a[1]);
  TRYV(need(3));
  Store store = TRY(Store::open(a[1]));
  if (cmd == "import") {
    auto src = TRY(parse_image_source(a[2], "SOURCE"));
    if (!src) return fail_msg("SOURCE: \"", a[2], "\" is not a local image transport");
    CommitStats s;
    auto r = TRY(import_image(store, *src, a.size() > 3 ? a[3] : a[2], oci::host_platform(), &s));
    print_record(r, &s);
    return {};
  }
  if (cmd == "commit") {
    TRYV(need(4));
    CommitStats s;
    Digest m = TRY(parse_digest(a[3], "MANIFEST_DIGEST"));
    auto r = TRY(store.commit_image(a[2], m, oci::host_platform(), &s));
    print_record(r, &s);
    return {};
  }
  if (cmd == "inspect") {
    auto r = TRY(store.lookup(a[2]));
    print_record(r, nullptr);
    for (const auto& l : store.layer_dirs(r)) std::printf("layer_dir=%s\n", l.c_str());
    auto c = TRY(store.config(r));
    if (c.entrypoint)
      for (const auto& e : *c.entrypoint) std::printf("entrypoint=%s\n", e.c_str());
    if (c.cmd)
      for (const auto& e : *c.cmd) std::printf("cmd=%s\n", e.c_str());
    for (const auto& e : c.env) std::printf("env=%s\n", e.c_str());
    return {};
  }
  if (cmd == "mount") {
    TRYV(need(6));
    auto r = TRY(store.lookup(a[2]));
    return mount_overlay(OverlaySpec{store.layer_dirs(r), a[4], a[5], false}, a[3]);
  }
  if (cmd == "lease") {
    TRYV(need(4));
    auto r = TRY(store.lookup(a[3]));
    return store.take_lease(a[2], r.id);
  }
  if (cmd == "release") return store.release_lease(a[2]);
  if (cmd == "remove") return store.remove(a[2]);
  if (cmd == "gc") {
    auto s = TRY(store.gc(std::strtoll(a[2].c_str(), nullptr, 10)));
    std::printf("images=%u\nlayers=%u\nblobs=%u\n", s.images, s.layers, s.blobs);
    return {};
  }
  return fail_msg("unknown command \"", cmd, "\"");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto r = run(args);
  if (!r) {
    std::fprintf(stderr, "image-store-tool: %s\n", r.error().str().c_str());
    return 1;
  }
  return 0;
}
