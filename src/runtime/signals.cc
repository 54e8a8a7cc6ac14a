// Signal names and numbers as kill(1) and runc take them.
#include <signal.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "runtime/container.h"

namespace husk::runtime {

Result<int> parse_signal(const std::string& s) {
  if (s.empty()) return fail_msg("empty signal");
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    int n = atoi(s.c_str());
    if (n <= 0 || n >= NSIG) return fail_msg("invalid signal number ", s);
    return n;
  }
  std::string name = s;
  for (auto& c : name) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  if (name.rfind("RTMIN", 0) == 0 || name.rfind("RTMAX", 0) == 0) {
    int base = name[2] == 'M' && name[3] == 'I' ? SIGRTMIN : SIGRTMAX;
    std::string rest = name.substr(5);
    int off = rest.empty() ? 0 : atoi(rest.c_str());
    int sig = base + off;
    if (sig < SIGRTMIN || sig > SIGRTMAX) return fail_msg("invalid signal ", s);
    return sig;
  }
  for (int i = 1; i < SIGRTMIN; ++i) {
    const char* abbrev = sigabbrev_np(i);
    if (abbrev && name == abbrev) return i;
  }
  return fail_msg("unknown signal \"", s, "\"");
}

}  // namespace husk::runtime
