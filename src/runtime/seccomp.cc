#include "runtime/seccomp.h"

#include <fcntl.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "oci/tables.h"
#include "runtime/sync.h"

namespace husk::runtime {
namespace {

// "SCMP_ARCH_X86_64" -> libseccomp's own name "x86_64".
uint32_t arch_token(const std::string& name) {
  std::string n = name.substr(10);
  for (auto& c : n) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return seccomp_arch_resolve_name(n.c_str());
}

uint32_t action_value(oci::SeccompAction a, std::optional<uint32_t> errno_ret) {
  switch (a) {
    case oci::SeccompAction::Kill: return SCMP_ACT_KILL_THREAD;
    case oci::SeccompAction::KillProcess: return SCMP_ACT_KILL_PROCESS;
    case oci::SeccompAction::KillThread: return SCMP_ACT_KILL_THREAD;
    case oci::SeccompAction::Trap: return SCMP_ACT_TRAP;
    case oci::SeccompAction::Errno: return SCMP_ACT_ERRNO(errno_ret.value_or(EPERM));
    case oci::SeccompAction::Trace: return SCMP_ACT_TRACE(errno_ret.value_or(EPERM));
    case oci::SeccompAction::Allow: return SCMP_ACT_ALLOW;
    case oci::SeccompAction::Log: return SCMP_ACT_LOG;
    case oci::SeccompAction::Notify: return SCMP_ACT_NOTIFY;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare op_value(oci::SeccompOp op) {
  switch (op) {
    case oci::SeccompOp::NotEqual: return SCMP_CMP_NE;
    case oci::SeccompOp::LessThan: return SCMP_CMP_LT;
    case oci::SeccompOp::LessEqual: return SCMP_CMP_LE;
    case oci::SeccompOp::EqualTo: return SCMP_CMP_EQ;
    case oci::SeccompOp::GreaterEqual: return SCMP_CMP_GE;
    case oci::SeccompOp::GreaterThan: return SCMP_CMP_GT;
    case oci::SeccompOp::MaskedEqual: return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

struct Filter {
  scmp_filter_ctx ctx = nullptr;
  ~Filter() {
    if (ctx) seccomp_release(ctx);
  }
};

Result<> add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const std::vector<scmp_arg_cmp>& cmps,
                  const std::string& where) {
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(cmps.size()), cmps.data());
  if (rc < 0) return fail_errno(-rc, where, ": add rule");
  return {};
}

Result<> build(const oci::Seccomp& spec, Filter& f, bool* uses_notify) {
  uint32_t def = action_value(spec.default_action, spec.default_errno_ret);
  *uses_notify = spec.default_action == oci::SeccompAction::Notify;
  f.ctx = seccomp_init(def);
  if (!f.ctx) return fail_errno(EINVAL, "linux.seccomp.defaultAction: seccomp_init");
  // The runtime sets no_new_privileges itself, as the spec asks.
  seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_NNP, 0);
  for (size_t i = 0; i < spec.architectures.size(); ++i) {
    uint32_t a = arch_token(spec.architectures[i]);
    if (a == 0) return fail_msg("linux.seccomp.architectures[", i, "]: unsupported \"", spec.architectures[i], "\"");
    int rc = seccomp_arch_add(f.ctx, a);
    if (rc < 0 && rc != -EEXIST) return fail_errno(-rc, "linux.seccomp.architectures[", i, "] ", spec.architectures[i]);
  }
  for (size_t i = 0; i < spec.flags.size(); ++i) {
    const std::string& fl = spec.flags[i];
    int rc = 0;
    if (fl == "SECCOMP_FILTER_FLAG_TSYNC") rc = seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    else if (fl == "SECCOMP_FILTER_FLAG_LOG") rc = seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_LOG, 1);
    else if (fl == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") rc = seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_SSB, 1);
    else return fail_msg("linux.seccomp.flags[", i, "]: \"", fl, "\" is not supported by this libseccomp");
    if (rc < 0) return fail_errno(-rc, "linux.seccomp.flags[", i, "] ", fl);
  }
  for (size_t i = 0; i < spec.syscalls.size(); ++i) {
    const auto& call = spec.syscalls[i];
    uint32_t action = action_value(call.action, call.errno_ret);
    if (call.action == oci::SeccompAction::Notify) *uses_notify = true;
    if (action == def) continue;  // libseccomp refuses a rule equal to the default
    // libseccomp takes one comparison per argument in a rule: several on the
    // same argument become several rules, as runc does.
    std::vector<std::vector<scmp_arg_cmp>> rules(1);
    bool same_arg_twice = false;
    for (size_t a = 0; a < call.args.size(); ++a)
      for (size_t b = 0; b < a; ++b)
        if (call.args[a].index == call.args[b].index) same_arg_twice = true;
    if (!call.args.empty()) {
      rules.clear();
      if (same_arg_twice) {
        rules.resize(call.args.size());
      } else {
        rules.push_back({});
      }
      for (size_t a = 0; a < call.args.size(); ++a) {
        const auto& arg = call.args[a];
        scmp_arg_cmp cmp = {arg.index, op_value(arg.op), arg.value, arg.value_two.value_or(0)};
        rules[same_arg_twice ? a : 0].push_back(cmp);
      }
    }
    for (size_t n = 0; n < call.names.size(); ++n) {
      int nr = seccomp_syscall_resolve_name(call.names[n].c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: skipped, as crun does
      for (const auto& cmps : rules)
        TRYV(add_rule(f.ctx, action, nr, cmps, cat("linux.seccomp.syscalls[", i, "].names[", n, "] \"", call.names[n], "\"")));
    }
  }
  return {};
}

}  // namespace

Result<UniqueFd> load_seccomp(const oci::Seccomp& spec) {
  Filter f;
  bool notify = false;
  TRYV(build(spec, f, &notify));
  int rc = seccomp_load(f.ctx);
  if (rc < 0) return fail_errno(-rc, "linux.seccomp: load the filter");
  if (!notify) return UniqueFd();
  int fd = seccomp_notify_fd(f.ctx);
  if (fd < 0) return fail_errno(-fd, "linux.seccomp: get the notify fd");
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return fail_sys("linux.seccomp: dup the notify fd");
  return UniqueFd(dup);
}

Result<std::string> export_seccomp_bpf(const oci::Seccomp& spec) {
  Filter f;
  bool notify = false;
  TRYV(build(spec, f, &notify));
  int mfd = static_cast<int>(syscall(SYS_memfd_create, "husk-bpf", MFD_CLOEXEC));
  if (mfd < 0) return fail_sys("memfd_create");
  UniqueFd owned(mfd);
  int rc = seccomp_export_bpf(f.ctx, mfd);
  if (rc < 0) return fail_errno(-rc, "seccomp_export_bpf");
  lseek(mfd, 0, SEEK_SET);
  return read_all(mfd);
}

Result<> send_seccomp_listener(const std::string& listener_path, int notify_fd, const std::string& state_json) {
  UniqueFd sock = TRY(connect_unix(listener_path));
  return send_fd(sock.get(), notify_fd, state_json);
}

}  // namespace husk::runtime
