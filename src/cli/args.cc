#include "cli/args.h"

namespace husk::cli {

Result<Parsed> parse(const std::vector<std::string>& args, size_t from, const std::vector<OptSpec>& specs,
                     const std::string& command, bool stop_at_positional, size_t* next) {
  Parsed out;
  size_t i = from;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      for (++i; i < args.size(); ++i) out.positional.push_back(args[i]);
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      if (next) break;  // global flags stop at the command name
      out.positional.push_back(a);
      if (stop_at_positional) {
        for (++i; i < args.size(); ++i) out.positional.push_back(args[i]);
        break;
      }
      continue;
    }
    std::string body = a[1] == '-' ? a.substr(2) : a.substr(1);
    std::optional<std::string> inline_value;
    if (auto eq = body.find('='); eq != std::string::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    const OptSpec* spec = nullptr;
    for (const auto& s : specs) {
      if (s.name == body || (a[1] != '-' && body.size() == 1 && s.short_name == body[0])) spec = &s;
    }
    if (!spec) return fail_msg(command, ": unknown option \"", a, "\"");
    std::string value;
    if (spec->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else {
        if (i + 1 >= args.size()) return fail_msg(command, ": option --", spec->name, " needs a value");
        value = args[++i];
      }
    } else {
      value = inline_value.value_or("true");
      if (value != "true" && value != "false")
        return fail_msg(command, ": option --", spec->name, " takes true or false, got \"", value, "\"");
    }
    auto& vals = out.values[spec->name];
    if (!spec->repeatable) vals.clear();
    vals.push_back(value);
  }
  if (next) *next = i;
  return out;
}

}  // namespace husk::cli
