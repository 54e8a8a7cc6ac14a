// linux.resources.devices on cgroup v2: the rules as an eBPF program of
// type BPF_PROG_TYPE_CGROUP_DEVICE, attached to the container's cgroup.
//
// Semantics are runc's (libcontainer/cgroups/devices): the rules are played
// through an emulation of the cgroup v1 devices controller, and the program
// checks the state that results.
//  - The state starts as "deny everything" (a v2 cgroup with our program
//    attached), with no exceptions.
//  - A rule of type "a" (or without a type) resets the state to allow-all
//    (allow: true) or deny-all (allow: false) and drops every exception;
//    its major, minor and access do not matter (as v1's "a").
//  - Any other rule names one (type, major, minor) key, absent major or
//    minor being the wildcard "*". A rule whose allow differs from the
//    current default adds its access letters to the key's exception; one
//    whose allow equals the default removes them. Removing from a key
//    (c 1:3) while a wildcard key that covers it (c *:3, c 1:*, c *:*)
//    holds any of those letters is an error: v1 silently ignores it, which
//    would leave a hole the user thinks is closed ("cannot punch a hole").
//  - So later rules win: [deny all, allow c 1:3 rw, deny c 1:3 w] leaves
//    c 1:3 r; and exceptions for one key merge (r then w = rw).
//  - An access is allowed when some exception of a key that matches the
//    device (type c or b as asked, major and minor equal or "*") holds every
//    letter asked for (open O_RDWR asks rw; mknod asks m); otherwise the
//    default decides.
//  - After the spec's rules come runc's AllowedDevices, so they always win:
//    mknod of any c or b device (c *:* m, b *:* m), /dev/null 1:3, zero
//    1:5, full 1:7, random 1:8, urandom 1:9, tty 5:0 (rwm each), ptmx 5:2
//    and /dev/pts/* 136:* rwm, and tun/tap 10:200 rwm (runc dropped it in
//    1.2.0 and put it back in 1.2.4). A default with a path is left out when
//    linux.devices has an entry of that path (the spec's entry replaces the
//    node, as in runc's createDevices). linux.devices entries themselves
//    add no rule: runc does not either, so a device node the spec creates is
//    usable only if linux.resources.devices allows it.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "oci/spec.h"

namespace husk::cgroups {

// One exception of the emulated v1 state. type is 'c' or 'b'; -1 = "*";
// access is a mask of BPF_DEVCG_ACC_{MKNOD,READ,WRITE}.
struct DeviceException {
  char type = 'c';
  int64_t major = -1;
  int64_t minor = -1;
  uint32_t access = 0;
};

struct DevicePolicy {
  bool default_allow = false;
  // Each of them decides the other way from the default, sorted by
  // (major, minor, type) so the program is the same for the same rules.
  std::vector<DeviceException> exceptions;
};

// The rules of linux.resources.devices, then runc's default allow rules
// (minus those whose path linux.devices replaces), through the emulation.
// Errors name the rule: "linux.resources.devices[2].access: ...".
Result<DevicePolicy> device_policy(const std::vector<oci::DeviceRule>& rules,
                                   const std::vector<oci::Device>& linux_devices);

// The program that enforces a policy: reads type, access, major and minor
// from struct bpf_cgroup_dev_ctx, one block per exception, returns 1 (allow)
// or 0 (deny, EPERM for the caller).
std::vector<struct bpf_insn> device_program(const DevicePolicy& policy);

// Name given to husk's programs (bpf_prog_info.name), so an update finds and
// replaces its own program and leaves other programs on the cgroup alone.
inline constexpr const char* kDeviceProgramName = "husk_devices";

// Whether this process may load and attach device programs: CAP_SYS_ADMIN
// in the initial user namespace. A rootless husk (or one in a user
// namespace) cannot call bpf(2) for this program type; it does without a
// program, as runc and crun do: such a container cannot mknod, and the
// host's device nodes it can reach are the ones its user could open anyway.
bool can_attach_device_programs();

// Load `program` and make it the cgroup's only husk device program, with no
// moment without one: with one husk program attached it is swapped
// atomically (BPF_F_REPLACE); otherwise the new one is attached first and
// the old ones detached after. cgroup_fd is an O_RDONLY|O_DIRECTORY fd of a
// cgroup2 directory. A verifier rejection carries the verifier's log.
Result<> attach_device_program(int cgroup_fd, const std::vector<struct bpf_insn>& program);

// Ids of the device programs attached to the cgroup itself (not inherited).
Result<std::vector<uint32_t>> attached_device_programs(int cgroup_fd);

}  // namespace husk::cgroups
