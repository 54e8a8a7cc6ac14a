// husk-image's commands on the store (store_commands.cc); `pull` is in
// main.cc. Each takes its arguments after the command name and returns the
// exit status.
#pragma once

#include <string>
#include <vector>

namespace husk::image {

int cmd_list(const std::vector<std::string>& args);
int cmd_inspect(const std::vector<std::string>& args);
int cmd_remove(const std::vector<std::string>& args);
int cmd_prune(const std::vector<std::string>& args);
int cmd_import(const std::vector<std::string>& args);

}  // namespace husk::image
