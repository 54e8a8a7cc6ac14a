// Small text helpers for the line-based files husk reads and writes (state,
// exit status, leases, /proc and cgroup files).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace husk {

// The lines of a text, without their '\n'; a last line without one counts,
// an empty text has none.
std::vector<std::string_view> lines_of(std::string_view text);

// The fields of `s` between every `sep` ("a::b" has an empty middle field;
// "" is one empty field).
std::vector<std::string_view> split_views(std::string_view s, char sep);

// "key=value" lines into a map: the first '=' splits, lines without one are
// skipped, a later key wins.
std::map<std::string, std::string> key_values(std::string_view text);

// `s` without its trailing spaces and line ends (a program's answer, a
// file of one value).
std::string rtrim(std::string s);

// What a program wrote, as one line of an error: trimmed, its line ends
// spaces.
std::string one_line(std::string s);

}  // namespace husk
