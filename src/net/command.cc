#include "net/command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "common/program.h"
#include "common/text.h"

namespace husk::net {

Result<std::string> find_program(const std::string& name, const std::string& package) {
  const char* env = getenv("PATH");
  std::string path = cat(env ? env : "/usr/local/bin:/usr/bin:/bin", ":/usr/sbin:/sbin");
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(pos, colon - pos);
    pos = colon + 1;
    if (dir.empty()) continue;
    std::string full = dir + "/" + name;
    if (access(full.c_str(), X_OK) == 0) return full;
  }
  return fail_errno(ENOENT, name, " is not installed (Debian package \"", package, "\"): not found in $PATH");
}

Result<std::string> run_program(const std::vector<std::string>& argv, const std::string& input) {
  Captured c = TRY(run_captured(argv, input));
  if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0) return std::move(c.out);
  // One line: the program's complaint, folded.
  std::string why = one_line(c.err);
  return fail_msg(argv[0], " failed (", describe_wait_status(c.status), ")", why.empty() ? "" : ": ", why);
}

}  // namespace husk::net
