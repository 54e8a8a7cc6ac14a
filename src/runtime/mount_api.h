// The kernel's fd-based mount API (open_tree, move_mount, mount_setattr,
// fsopen/fsconfig/fsmount) as raw syscalls, and what the rootfs code builds
// from it: detached bind trees, attribute changes that keep a user
// namespace's locked flags, and the throwaway user namespace an idmapped
// mount needs. Every target is an fd, never a path the kernel re-resolves.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "oci/spec.h"

namespace husk::runtime {

// open_tree(OPEN_TREE_CLONE) of what fd refers to: a detached copy of that
// mount (and its submounts when recursive), ready to be configured.
Result<UniqueFd> clone_tree(int fd, bool recursive);
// Same for a host path (followed as usual: host paths come from the caller).
Result<UniqueFd> clone_tree_at(const std::string& host_path, bool recursive);
// Attach a detached tree on top of the mount point target (an O_PATH fd).
Result<> attach_tree(int tree, int target);

// Set and clear MS_* flags (ro, nosuid, nodev, noexec, atime modes,
// nosymfollow) on the mount fd refers to, recursively or not. Flags the
// mount already has are never cleared when keep_locked is set: in a user
// namespace the kernel locks them (clearing one is EPERM), like runc's
// statfs dance for MS_REMOUNT.
Result<> set_mount_flags(int fd, unsigned long set, unsigned long clear, bool recursive, bool keep_locked);
// MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC) on fd's mount.
Result<> set_propagation(int fd, unsigned long propagation);
// Make fd's tree (detached) an idmapped mount for userns_fd.
Result<> set_idmap(int tree, int userns_fd, bool recursive);

// A user namespace with these mappings, held by a short-lived child that is
// reaped before returning; the fd keeps the namespace alive.
Result<UniqueFd> make_idmap_userns(const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids);

// The container's root as an idmapped mount (annotation
// run.husk.rootfs.idmap): a detached clone of the mount at rootfs, idmapped
// with the user namespace userns_fd (the container's own, its maps written),
// for the init to attach over its rootfs. A filesystem without idmapped
// mount support is an error that says so.
inline constexpr const char* kRootfsIdmapAnnotation = "run.husk.rootfs.idmap";
Result<UniqueFd> idmapped_rootfs(const std::string& rootfs, int userns_fd);
// Whether the filesystem under path takes idmapped mounts: tried on a
// detached clone with a throwaway user namespace; nothing is left behind.
// An error other than "not supported" is returned as an error.
Result<bool> supports_idmap(const std::string& path);

// Attach at dst an idmapped clone of the tree at src (recursive), mapping
// on-disk ids as `maps` say (container_id = id on disk, host_id = id seen):
// the nspawn flavor's overlay over an image in a user namespace's range.
Result<> mount_idmapped(const std::string& src, const std::string& dst, const std::vector<oci::IdMapping>& maps);
// The same with uids and gids mapped apart (the podman flavor's userns =
// "auto" maps the image's layers as the task's user namespace does).
Result<> mount_idmapped(const std::string& src, const std::string& dst, const std::vector<oci::IdMapping>& uids,
                        const std::vector<oci::IdMapping>& gids);

// An empty read-only tmpfs, detached (for masking a directory).
Result<UniqueFd> make_empty_tmpfs(bool readonly);

}  // namespace husk::runtime
