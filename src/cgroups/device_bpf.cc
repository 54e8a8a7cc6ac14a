#include "cgroups/device_bpf.h"

#include "cgroups/hierarchy.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <map>
#include <tuple>

namespace husk::cgroups {
namespace {

constexpr uint32_t kAllAccess = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

// One rule as the emulation takes it; `field` names it in errors.
struct Rule {
  bool allow = false;
  char type = 'a';
  int64_t major = -1, minor = -1;
  uint32_t access = 0;
  std::string field;
};

struct DefaultDevice {
  const char* path;  // nullptr: a rule only, no node
  char type;
  int64_t major, minor;
  const char* access;
};

// runc's AllowedDevices (libcontainer/specconv), in its order.
constexpr DefaultDevice kDefaults[] = {
    {nullptr, 'c', -1, -1, "m"},       {nullptr, 'b', -1, -1, "m"},        {"/dev/null", 'c', 1, 3, "rwm"},
    {"/dev/random", 'c', 1, 8, "rwm"}, {"/dev/full", 'c', 1, 7, "rwm"},    {"/dev/tty", 'c', 5, 0, "rwm"},
    {"/dev/zero", 'c', 1, 5, "rwm"},   {"/dev/urandom", 'c', 1, 9, "rwm"}, {nullptr, 'c', 136, -1, "rwm"},
    {nullptr, 'c', 5, 2, "rwm"},       {nullptr, 'c', 10, 200, "rwm"},
};

uint32_t access_mask(const std::string& letters) {
  uint32_t m = 0;
  for (char c : letters)
    m |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : c == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
  return m;
}

std::string describe(char type, int64_t major, int64_t minor) {
  auto num = [](int64_t v) { return v < 0 ? std::string("*") : std::to_string(v); };
  return cat(type, ' ', num(major), ':', num(minor));
}

// oci/parse.cc has checked the type ("a", "c", "b") and the access letters
// (r, w, m) of every rule husk reads (config.json and update -r alike);
// what is left to check is what only matters here.
Result<Rule> from_spec(const oci::DeviceRule& r, size_t i) {
  Rule out;
  out.field = cat("linux.resources.devices[", i, "]");
  out.allow = r.allow;
  out.type = r.type.value_or('a');  // runc: no type = "a"
  out.major = r.major.value_or(-1);
  out.minor = r.minor.value_or(-1);
  if (out.major > UINT32_MAX) return fail_msg(out.field, ".major: ", out.major, " is not a device major number");
  if (out.minor > UINT32_MAX) return fail_msg(out.field, ".minor: ", out.minor, " is not a device minor number");
  out.access = access_mask(r.access.value_or(""));
  // runc refuses an empty access on every rule, "a" ones included.
  if (out.access == 0) return fail_msg(out.field, ".access: must not be empty (a subset of \"rwm\")");
  return out;
}

using Key = std::tuple<char, int64_t, int64_t>;

class Emulator {
 public:
  Result<> apply(const Rule& r) {
    if (r.type != 'c' && r.type != 'b') {  // type a
      default_allow_ = r.allow;
      exceptions_.clear();
      return {};
    }
    Key key{r.type, r.major, r.minor};
    if (r.allow != default_allow_) {
      exceptions_[key] |= r.access;
      return {};
    }
    // Taking letters out of an exception that a wildcard exception also
    // grants would change nothing for the wildcard's devices.
    for (const Key& wide : {Key{r.type, -1, r.minor}, Key{r.type, r.major, -1}, Key{r.type, -1, -1}}) {
      if (wide == key) continue;
      auto it = exceptions_.find(wide);
      if (it != exceptions_.end() && (it->second & r.access))
        return fail_msg(r.field, ": ", r.allow ? "allow " : "deny ", describe(r.type, r.major, r.minor),
                        " cannot punch a hole in the earlier ", r.allow ? "deny " : "allow ",
                        describe(r.type, std::get<1>(wide), std::get<2>(wide)),
                        " (cgroup v1 semantics: the wildcard rule stays in force)");
    }
    auto it = exceptions_.find(key);
    if (it != exceptions_.end()) {
      it->second &= ~r.access;
      if (it->second == 0) exceptions_.erase(it);
    }
    return {};
  }

  DevicePolicy policy() const {
    DevicePolicy p;
    p.default_allow = default_allow_;
    for (const auto& [key, access] : exceptions_)
      p.exceptions.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), access});
    std::sort(p.exceptions.begin(), p.exceptions.end(), [](const DeviceException& a, const DeviceException& b) {
      return std::tie(a.major, a.minor, a.type) < std::tie(b.major, b.minor, b.type);
    });
    return p;
  }

 private:
  bool default_allow_ = false;
  std::map<Key, uint32_t> exceptions_;
};

// --- instructions ------------------------------------------------------------

constexpr uint8_t R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;

struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  struct bpf_insn i {};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
struct bpf_insn load_ctx_u32(uint8_t dst, int16_t off) {
  return insn(BPF_LDX | BPF_MEM | BPF_W, dst, R1, off, 0);
}
struct bpf_insn alu32_imm(uint8_t op, uint8_t dst, int32_t imm) {
  return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
struct bpf_insn mov32_reg(uint8_t dst, uint8_t src) {
  return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
}
// 32-bit compares (BPF_JMP32, 5.1+): a major or minor above 2^31 must not
// be sign-extended against the zero-extended context field.
struct bpf_insn jne32_imm(uint8_t dst, uint32_t imm, int16_t off) {
  return insn(BPF_JMP32 | BPF_JNE | BPF_K, dst, 0, off, static_cast<int32_t>(imm));
}
struct bpf_insn jne32_reg(uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_JMP32 | BPF_JNE | BPF_X, dst, src, off, 0);
}
struct bpf_insn exit_insn() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// --- bpf(2) ------------------------------------------------------------------

long sys_bpf(int cmd, union bpf_attr* attr) {
  long r;
  do {
    r = syscall(SYS_bpf, cmd, attr, sizeof(*attr));
  } while (r < 0 && errno == EINTR);
  return r;
}

uint64_t ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

Result<UniqueFd> load_program(const std::vector<struct bpf_insn>& program) {
  static const char license[] = "Apache-2.0";  // no GPL-only helper is called
  auto attempt = [&](char* log, uint32_t log_size) {
    union bpf_attr attr {};
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = ptr(program.data());
    attr.insn_cnt = static_cast<uint32_t>(program.size());
    attr.license = ptr(license);
    attr.log_buf = ptr(log);
    attr.log_size = log_size;
    attr.log_level = log ? 1 : 0;
    __builtin_memcpy(attr.prog_name, kDeviceProgramName, __builtin_strlen(kDeviceProgramName));
    return static_cast<int>(sys_bpf(BPF_PROG_LOAD, &attr));
  };
  int fd = attempt(nullptr, 0);
  if (fd >= 0) return UniqueFd(fd);
  int err = errno;
  if (err == EPERM)
    return fail_errno(err, "load the device program (bpf BPF_PROG_LOAD needs CAP_SYS_ADMIN or CAP_BPF)");
  // Load again with a log only on failure: a log too small for a verbose
  // verifier would fail a good program with ENOSPC.
  std::string log(64 * 1024, '\0');
  fd = attempt(log.data(), static_cast<uint32_t>(log.size()));
  if (fd >= 0) return UniqueFd(fd);
  err = errno;
  log.resize(__builtin_strlen(log.c_str()));
  while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
  for (auto& c : log)
    if (c == '\n') c = ';';
  if (log.empty()) return fail_errno(err, "load the device program (bpf BPF_PROG_LOAD)");
  return fail_errno(err, "load the device program (bpf BPF_PROG_LOAD): the verifier says: ", log);
}

Result<UniqueFd> program_fd(uint32_t id) {
  union bpf_attr attr {};
  attr.prog_id = id;
  int fd = static_cast<int>(sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr));
  if (fd < 0) return fail_sys("open device program ", id, " (bpf BPF_PROG_GET_FD_BY_ID)");
  return UniqueFd(fd);
}

bool is_ours(int prog_fd) {
  struct bpf_prog_info info {};
  union bpf_attr attr {};
  attr.info.bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.info.info_len = sizeof(info);
  attr.info.info = ptr(&info);
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) return false;
  return __builtin_strncmp(info.name, kDeviceProgramName, sizeof(info.name)) == 0;
}

Result<> attach(int cgroup_fd, int prog_fd, int replace_fd) {
  union bpf_attr attr {};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (replace_fd >= 0) {
    attr.attach_flags |= BPF_F_REPLACE;
    attr.replace_bpf_fd = static_cast<uint32_t>(replace_fd);
  }
  if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0) {
    std::string what = replace_fd >= 0
                           ? "replace the device program of the cgroup (bpf BPF_PROG_ATTACH, BPF_F_REPLACE)"
                           : "attach the device program to the cgroup (bpf BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI)";
    // A program attached above us without BPF_F_ALLOW_MULTI forbids any below.
    if (errno == EPERM) what += "; an ancestor cgroup may hold a device program that does not allow more";
    return fail_sys(what);
  }
  return {};
}

Result<> detach(int cgroup_fd, int prog_fd, uint32_t id) {
  union bpf_attr attr {};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (sys_bpf(BPF_PROG_DETACH, &attr) < 0 && errno != ENOENT)
    return fail_sys("detach the old device program ", id, " from the cgroup (bpf BPF_PROG_DETACH)");
  return {};
}

}  // namespace

Result<DevicePolicy> device_policy(const std::vector<oci::DeviceRule>& rules,
                                   const std::vector<oci::Device>& linux_devices) {
  Emulator emu;
  for (size_t i = 0; i < rules.size(); ++i) {
    Rule r = TRY(from_spec(rules[i], i));
    TRYV(emu.apply(r));
  }
  for (const auto& d : kDefaults) {
    if (d.path &&
        std::any_of(linux_devices.begin(), linux_devices.end(), [&](const oci::Device& x) { return x.path == d.path; }))
      continue;
    Rule r{true,
           d.type,
           d.major,
           d.minor,
           access_mask(d.access),
           cat("linux.resources.devices: the default rule allow ", describe(d.type, d.major, d.minor), ' ', d.access,
               " (appended after the spec's rules, as runc does)")};
    TRYV(emu.apply(r));
  }
  return emu.policy();
}

std::vector<struct bpf_insn> device_program(const DevicePolicy& policy) {
  // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
  // access_type is (access << 16) | type.
  std::vector<struct bpf_insn> p = {
      load_ctx_u32(R2, 0), alu32_imm(BPF_AND, R2, 0xffff),  // r2 = type
      load_ctx_u32(R3, 0), alu32_imm(BPF_RSH, R3, 16),      // r3 = access asked
      load_ctx_u32(R4, 4),                                  // r4 = major
      load_ctx_u32(R5, 8),                                  // r5 = minor
  };
  const int32_t verdict = policy.default_allow ? 0 : 1;  // what an exception decides
  for (const auto& e : policy.exceptions) {
    bool check_access = e.access != kAllAccess;
    bool check_major = e.major >= 0, check_minor = e.minor >= 0;
    // Instructions after the first jump up to the end of the block.
    int16_t left = static_cast<int16_t>((check_access ? 3 : 0) + check_major + check_minor + 2);
    p.push_back(jne32_imm(R2, e.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, left));
    if (check_access) {
      // Every letter asked for must be in the exception: (r3 & mask) == r3.
      p.push_back(mov32_reg(R1, R3));
      p.push_back(alu32_imm(BPF_AND, R1, static_cast<int32_t>(e.access)));
      left = static_cast<int16_t>(left - 2);
      p.push_back(jne32_reg(R1, R3, --left));
    }
    if (check_major) p.push_back(jne32_imm(R4, static_cast<uint32_t>(e.major), --left));
    if (check_minor) p.push_back(jne32_imm(R5, static_cast<uint32_t>(e.minor), --left));
    p.push_back(alu32_imm(BPF_MOV, R0, verdict));
    p.push_back(exit_insn());
  }
  p.push_back(alu32_imm(BPF_MOV, R0, policy.default_allow ? 1 : 0));
  p.push_back(exit_insn());
  return p;
}

bool can_attach_device_programs() {
  // The initial user namespace maps every id onto itself.
  auto map = read_file("/proc/self/uid_map");
  if (!map) return false;
  if (split_words(*map) != std::vector<std::string>{"0", "0", "4294967295"}) return false;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) < 0) return false;
  return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

Result<std::vector<uint32_t>> attached_device_programs(int cgroup_fd) {
  std::vector<uint32_t> ids(64);
  for (int tries = 0; tries < 4; ++tries) {
    union bpf_attr attr {};
    attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = ptr(ids.data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
    if (sys_bpf(BPF_PROG_QUERY, &attr) == 0) {
      ids.resize(attr.query.prog_cnt);
      return ids;
    }
    // ENOSPC: more than fit; prog_cnt says how many there are.
    if (errno != ENOSPC) return fail_sys("list the device programs of the cgroup (bpf BPF_PROG_QUERY)");
    ids.resize(attr.query.prog_cnt + 8);
  }
  return fail_errno(ENOSPC, "list the device programs of the cgroup (bpf BPF_PROG_QUERY): the list keeps growing");
}

Result<> attach_device_program(int cgroup_fd, const std::vector<struct bpf_insn>& program) {
  UniqueFd prog = TRY(load_program(program));
  std::vector<std::pair<uint32_t, UniqueFd>> ours;
  for (uint32_t id : TRY(attached_device_programs(cgroup_fd))) {
    // Programs of others (their LSM label may even hide them from us) only
    // restrict more: they stay.
    auto fd = program_fd(id);
    if (!fd) continue;
    if (is_ours(fd->get())) ours.emplace_back(id, std::move(*fd));
  }
  if (ours.size() == 1) {
    auto r = attach(cgroup_fd, prog.get(), ours[0].second.get());
    if (r) return {};
    // EINVAL: a kernel before 5.6 without BPF_F_REPLACE; attach then detach.
    if (r.error().code() != EINVAL) return r;
  }
  TRYV(attach(cgroup_fd, prog.get(), -1));
  for (const auto& [id, fd] : ours) TRYV(detach(cgroup_fd, fd.get(), id));
  return {};
}

}  // namespace husk::cgroups
