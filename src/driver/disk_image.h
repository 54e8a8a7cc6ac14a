// Raw disk images as root filesystems, the way systemd-nspawn --image
// takes them: a bare filesystem image, or a GPT disk whose root partition
// is found by its Discoverable Partitions type (the root of this
// architecture, else the single Linux filesystem partition). The image is
// attached to a loop device read-only (autoclear: the device goes with the
// last unmount) and mounted read-only.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace husk::driver {

struct Partition {
  uint64_t offset = 0, size = 0;  // bytes; size 0 = to the end of the file
};

// Where the root filesystem lies in the image file `path`: the whole file
// when it has no GPT, else the root partition. Errors name `field`.
Result<Partition> find_root_partition(const std::string& path, const std::string& field);

// Loop-attaches `path` at `part` read-only and mounts it read-only on
// `target` (ext4, xfs, btrfs, erofs, squashfs, vfat tried in turn).
Result<> mount_disk_image(const std::string& path, const Partition& part, const std::string& target,
                          const std::string& field);

}  // namespace husk::driver
