// Running the outside programs networking needs (nft, pasta, slirp4netns):
// finding them, and running one to completion with its output captured.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace husk::net {

// The absolute path of a program from $PATH (and /usr/sbin, /sbin), or an
// error that names it and the Debian package it comes in.
Result<std::string> find_program(const std::string& name, const std::string& package);

// Run argv with `input` on its stdin; its stdout is returned. A non-zero
// exit is an error carrying the program's stderr.
Result<std::string> run_program(const std::vector<std::string>& argv, const std::string& input = {});

}  // namespace husk::net
