// GPT parsing for the root partition and read-only loop mounts.
#include "driver/disk_image.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/fd.h"

namespace husk::driver {

namespace {

uint64_t le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
uint32_t le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// A GPT type GUID as text, from its mixed-endian on-disk form.
std::string guid_text(const unsigned char* g) {
  static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
  std::string out;
  char buf[3];
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    snprintf(buf, sizeof buf, "%02x", g[order[i]]);
    out += buf;
  }
  return out;
}

// The Discoverable Partitions Specification's root partition types.
const char* native_root_type() {
#if defined(__x86_64__)
  return "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
#elif defined(__aarch64__)
  return "b921b045-1df0-41c3-af44-4c6f280d3fae";
#elif defined(__i386__)
  return "44479540-f297-41b2-9af7-d131d5f0458a";
#else
  return "";
#endif
}
constexpr const char* kLinuxData = "0fc63daf-8483-4772-8e79-3d69d8477de4";

Result<> read_at(int fd, void* buf, size_t n, uint64_t off, const std::string& what) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail_sys("read ", what);
    if (r == 0) return fail_msg("read ", what, ": truncated");
    done += static_cast<size_t>(r);
  }
  return {};
}

}  // namespace

Result<Partition> find_root_partition(const std::string& path, const std::string& field) {
  UniqueFd fd = TRY_CTX(open_fd(path, O_RDONLY | O_CLOEXEC), field);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return fail_sys(field, ": stat ", path);
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  for (uint64_t sector : {512u, 4096u}) {
    unsigned char hdr[92];
    if (file_size < sector * 2 + sizeof hdr) break;
    TRYV_CTX(read_at(fd.get(), hdr, sizeof hdr, sector, path), field);
    if (memcmp(hdr, "EFI PART", 8) != 0) continue;
    uint64_t entries_lba = le64(hdr + 72);
    uint32_t count = le32(hdr + 80), entry_size = le32(hdr + 84);
    if (entry_size < 128 || entry_size > 4096 || count == 0 || count > 1024)
      return fail_msg(field, ": \"", path, "\": GPT header with a bad partition table (", count, " entries of ",
                      entry_size, " bytes)");
    std::vector<unsigned char> table(static_cast<size_t>(count) * entry_size);
    TRYV_CTX(read_at(fd.get(), table.data(), table.size(), entries_lba * sector, path), field);
    std::vector<Partition> native, data;
    for (uint32_t i = 0; i < count; i++) {
      const unsigned char* e = table.data() + static_cast<size_t>(i) * entry_size;
      std::string type = guid_text(e);
      uint64_t first = le64(e + 32), last = le64(e + 40);
      if (type == "00000000-0000-0000-0000-000000000000" || last < first) continue;
      Partition p{first * sector, (last - first + 1) * sector};
      if (p.offset + p.size > file_size)
        return fail_msg(field, ": \"", path, "\": partition ", i + 1, " lies beyond the end of the image");
      if (type == native_root_type())
        native.push_back(p);
      else if (type == kLinuxData)
        data.push_back(p);
    }
    if (!native.empty()) return native.front();
    if (data.size() == 1) return data.front();
    return fail_msg(field, ": \"", path, "\": a GPT disk image without a root partition for this architecture (",
                    native_root_type(), ") nor a single Linux filesystem partition (", data.size(), " found)");
  }
  return Partition{0, 0};
}

Result<> mount_disk_image(const std::string& path, const Partition& part, const std::string& target,
                          const std::string& field) {
  UniqueFd image = TRY_CTX(open_fd(path, O_RDONLY | O_CLOEXEC), field);
  UniqueFd control = TRY_CTX(open_fd("/dev/loop-control", O_RDWR | O_CLOEXEC), field, ": loop devices");
  UniqueFd loop;
  std::string dev;
  for (int attempt = 0;; attempt++) {
    int n = ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return fail_sys(field, ": find a free loop device");
    dev = cat("/dev/loop", n);
    // A device GET_FREE just made shows up in devtmpfs a moment later.
    for (int wait = 0;; wait++) {
      auto opened = open_fd(dev, O_RDONLY | O_CLOEXEC);
      if (opened) {
        loop = std::move(*opened);
        break;
      }
      if (opened.error().code() != ENOENT || wait == 100) return fail(std::move(opened.error()).with_context(field));
      usleep(10000);
    }
    loop_config cfg{};
    cfg.fd = static_cast<uint32_t>(image.get());
    cfg.info.lo_offset = part.offset;
    cfg.info.lo_sizelimit = part.size;
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    if (ioctl(loop.get(), LOOP_CONFIGURE, &cfg) == 0) break;
    // Another process took the device between GET_FREE and CONFIGURE.
    if (errno != EBUSY || attempt == 10) return fail_sys(field, ": attach ", path, " to ", dev);
  }
  std::string tried;
  for (const char* type : {"ext4", "xfs", "btrfs", "erofs", "squashfs", "vfat"}) {
    if (mount(dev.c_str(), target.c_str(), type, MS_RDONLY | MS_NODEV, nullptr) == 0) return {};
    tried += cat(tried.empty() ? "" : ", ", type, " (", strerror(errno), ")");
  }
  // Closing the loop fd with nothing mounted frees the device (autoclear).
  return fail_msg(field, ": \"", path, "\": no file system found in the image: ", tried);
}

}  // namespace husk::driver
