// Command-line parsing in the shape runc/crun callers use: global flags
// before the command, "--flag value", "--flag=value" and "-flag value"
// (urfave/cli accepts single-dash long names), boolean flags with optional
// "=true|false", and "--" ending the options.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk::cli {

struct OptSpec {
  std::string name;    // long name without dashes
  char short_name = 0;  // 0 = none
  bool takes_value = false;
  bool repeatable = false;
};

struct Parsed {
  std::map<std::string, std::vector<std::string>> values;  // name -> values ("true" for booleans)
  std::vector<std::string> positional;

  bool has(const std::string& n) const { return values.count(n) && values.at(n).back() != "false"; }
  std::string get(const std::string& n, const std::string& def = "") const {
    auto it = values.find(n);
    return it == values.end() ? def : it->second.back();
  }
  std::vector<std::string> all(const std::string& n) const {
    auto it = values.find(n);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
};

// Parse args[from..]. With stop_at_positional, the first positional argument
// and everything after it are positional (exec's command line).
Result<Parsed> parse(const std::vector<std::string>& args, size_t from, const std::vector<OptSpec>& specs,
                     const std::string& command, bool stop_at_positional, size_t* next = nullptr);

}  // namespace husk::cli
