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
// remove-dir DIR...: rm -rf, in a user namespace with the caller's store
// map when rootless (a rootless task's directory, its upper dir's files
// owned by the caller's sub-ids).
int cmd_remove_dir(const std::vector<std::string>& args);

}  // namespace husk::image
