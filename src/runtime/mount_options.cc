// parse_mount_options (declared in mounts.h): the option words of a spec
// mount, as mount(8) and runc understand them, turned into MountFlags.
#include <sys/mount.h>

#include <string_view>

#include "runtime/mounts.h"

namespace husk::runtime {

namespace {

// What one option word does: set or clear a flag, plain or recursive.
enum class Effect { Set, Clear, RecSet, RecClear, Propagation };
struct OptionWord {
  std::string_view name;
  Effect effect;
  unsigned long flag;
};

constexpr OptionWord kWords[] = {
    {"ro", Effect::Set, MS_RDONLY},
    {"rw", Effect::Clear, MS_RDONLY},
    {"nosuid", Effect::Set, MS_NOSUID},
    {"suid", Effect::Clear, MS_NOSUID},
    {"nodev", Effect::Set, MS_NODEV},
    {"dev", Effect::Clear, MS_NODEV},
    {"noexec", Effect::Set, MS_NOEXEC},
    {"exec", Effect::Clear, MS_NOEXEC},
    {"sync", Effect::Set, MS_SYNCHRONOUS},
    {"async", Effect::Clear, MS_SYNCHRONOUS},
    {"dirsync", Effect::Set, MS_DIRSYNC},
    {"remount", Effect::Set, MS_REMOUNT},
    {"mand", Effect::Set, MS_MANDLOCK},
    {"nomand", Effect::Clear, MS_MANDLOCK},
    {"noatime", Effect::Set, MS_NOATIME},
    {"atime", Effect::Clear, MS_NOATIME},
    {"relatime", Effect::Set, MS_RELATIME},
    {"norelatime", Effect::Clear, MS_RELATIME},
    {"strictatime", Effect::Set, MS_STRICTATIME},
    {"nostrictatime", Effect::Clear, MS_STRICTATIME},
    {"nodiratime", Effect::Set, MS_NODIRATIME},
    {"diratime", Effect::Clear, MS_NODIRATIME},
    {"lazytime", Effect::Set, MS_LAZYTIME},
    {"nolazytime", Effect::Clear, MS_LAZYTIME},
    {"nosymfollow", Effect::Set, MS_NOSYMFOLLOW},
    {"symfollow", Effect::Clear, MS_NOSYMFOLLOW},
    {"silent", Effect::Set, MS_SILENT},
    {"loud", Effect::Clear, MS_SILENT},
    {"rro", Effect::RecSet, MS_RDONLY},
    {"rrw", Effect::RecClear, MS_RDONLY},
    {"rnosuid", Effect::RecSet, MS_NOSUID},
    {"rsuid", Effect::RecClear, MS_NOSUID},
    {"rnodev", Effect::RecSet, MS_NODEV},
    {"rdev", Effect::RecClear, MS_NODEV},
    {"rnoexec", Effect::RecSet, MS_NOEXEC},
    {"rexec", Effect::RecClear, MS_NOEXEC},
    {"rnoatime", Effect::RecSet, MS_NOATIME},
    {"ratime", Effect::RecClear, MS_NOATIME},
    {"rrelatime", Effect::RecSet, MS_RELATIME},
    {"rnorelatime", Effect::RecClear, MS_RELATIME},
    {"rstrictatime", Effect::RecSet, MS_STRICTATIME},
    {"rnostrictatime", Effect::RecClear, MS_STRICTATIME},
    {"rnodiratime", Effect::RecSet, MS_NODIRATIME},
    {"rdiratime", Effect::RecClear, MS_NODIRATIME},
    {"rnosymfollow", Effect::RecSet, MS_NOSYMFOLLOW},
    {"rsymfollow", Effect::RecClear, MS_NOSYMFOLLOW},
    {"shared", Effect::Propagation, MS_SHARED},
    {"rshared", Effect::Propagation, MS_SHARED | MS_REC},
    {"slave", Effect::Propagation, MS_SLAVE},
    {"rslave", Effect::Propagation, MS_SLAVE | MS_REC},
    {"private", Effect::Propagation, MS_PRIVATE},
    {"rprivate", Effect::Propagation, MS_PRIVATE | MS_REC},
    {"unbindable", Effect::Propagation, MS_UNBINDABLE},
    {"runbindable", Effect::Propagation, MS_UNBINDABLE | MS_REC},
};

// The atime modes exclude each other: choosing one drops the others, so
// "noatime,strictatime" means strictatime as it does for mount(8).
constexpr unsigned long kAtimeModes = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;

void set_flag(unsigned long& set, unsigned long& clear, unsigned long flag) {
  if (flag & kAtimeModes) set &= ~kAtimeModes;
  set |= flag;
  clear &= ~flag;
}

void clear_flag(unsigned long& set, unsigned long& clear, unsigned long flag) {
  set &= ~flag;
  clear |= flag;
}

}  // namespace

Result<MountFlags> parse_mount_options(const std::vector<std::string>& options) {
  MountFlags out;
  for (const std::string& opt : options) {
    if (opt.empty() || opt == "defaults") continue;
    // mount(8) keeps x-* options for userspace helpers; the kernel must not see them.
    if (opt.starts_with("x-")) continue;
    if (opt == "bind" || opt == "rbind") {
      out.bind = true;
      out.recursive = opt == "rbind";
      continue;
    }
    if (opt == "idmap" || opt == "ridmap") {
      out.idmap = true;
      out.recursive_idmap = opt == "ridmap";
      continue;
    }
    if (opt == "tmpcopyup" || opt == "notmpcopyup") {
      out.copy_up = opt == "tmpcopyup";
      continue;
    }
    const OptionWord* word = nullptr;
    for (const OptionWord& w : kWords)
      if (w.name == opt) word = &w;
    if (!word) {
      if (!out.data.empty()) out.data += ',';
      out.data += opt;
      continue;
    }
    switch (word->effect) {
      case Effect::Set: set_flag(out.flags, out.clear, word->flag); break;
      case Effect::Clear: clear_flag(out.flags, out.clear, word->flag); break;
      case Effect::RecSet: set_flag(out.rec_flags, out.rec_clear, word->flag); break;
      case Effect::RecClear: clear_flag(out.rec_flags, out.rec_clear, word->flag); break;
      case Effect::Propagation: out.propagation = word->flag; break;
    }
  }
  return out;
}

}  // namespace husk::runtime
