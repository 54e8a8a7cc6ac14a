// Go's time.ParseDuration, step for step (integer arithmetic, the same
// overflow bounds), with husk's error texts (see duration.h).
#include "common/duration.h"

#include <cstdint>

namespace husk {

namespace {

constexpr uint64_t kMax = uint64_t{1} << 63;  // |min int64|; max int64 is one less
constexpr std::string_view kUnits = "ns, us, ms, s, m, h";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Leading decimal digits of s (consumed); false on overflow past kMax.
bool leading_int(std::string_view& s, uint64_t& x) {
  x = 0;
  size_t i = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (x > kMax / 10) return false;
    x = x * 10 + static_cast<uint64_t>(s[i] - '0');
    if (x > kMax) return false;
  }
  s.remove_prefix(i);
  return true;
}

// Leading digits of a fraction (consumed): their value and 10^(digits kept);
// digits past what fits are dropped, as Go does.
void leading_fraction(std::string_view& s, uint64_t& x, double& scale) {
  x = 0;
  scale = 1;
  bool overflow = false;
  size_t i = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (overflow) continue;
    if (x > (kMax - 1) / 10) {
      overflow = true;
      continue;
    }
    uint64_t y = x * 10 + static_cast<uint64_t>(s[i] - '0');
    if (y > kMax) {
      overflow = true;
      continue;
    }
    x = y;
    scale *= 10;
  }
  s.remove_prefix(i);
}

uint64_t unit_ns(std::string_view u) {
  if (u == "ns") return 1;
  if (u == "us" || u == "\xc2\xb5s" /* U+00B5 micro sign */ || u == "\xce\xbcs" /* U+03BC mu */) return 1000;
  if (u == "ms") return 1000 * 1000;
  if (u == "s") return 1000 * 1000 * 1000;
  if (u == "m") return uint64_t{60} * 1000 * 1000 * 1000;
  if (u == "h") return uint64_t{3600} * 1000 * 1000 * 1000;
  return 0;
}

}  // namespace

Result<std::chrono::nanoseconds> parse_go_duration(std::string_view s, std::string_view what) {
  const std::string_view orig = s;
  auto invalid = [&] { return fail_msg(what, ": invalid duration \"", orig, "\" (e.g. 90s, 1m30s, 500ms)"); };
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return invalid();
  uint64_t d = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || is_digit(s[0]))) return invalid();
    uint64_t v = 0, f = 0;
    double scale = 1;
    size_t before = s.size();
    if (!leading_int(s, v)) return invalid();
    bool pre = s.size() != before;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      before = s.size();
      leading_fraction(s, f, scale);
      post = s.size() != before;
    }
    if (!pre && !post) return invalid();  // "." alone
    size_t i = 0;
    while (i < s.size() && s[i] != '.' && !is_digit(s[i])) ++i;
    if (i == 0) return fail_msg(what, ": missing unit in duration \"", orig, "\" (units: ", kUnits, ")");
    std::string_view u = s.substr(0, i);
    s.remove_prefix(i);
    uint64_t unit = unit_ns(u);
    if (unit == 0)
      return fail_msg(what, ": unknown unit \"", u, "\" in duration \"", orig, "\" (units: ", kUnits, ")");
    if (v > kMax / unit) return invalid();
    v *= unit;
    if (f > 0) {
      // float64 is enough here: at most 2^63 ns, a 1e-9 relative error.
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kMax) return invalid();
    }
    d += v;
    if (d > kMax) return invalid();
  }
  if (neg) return std::chrono::nanoseconds(static_cast<int64_t>(0 - d));  // -2^63 fits
  if (d > kMax - 1) return invalid();
  return std::chrono::nanoseconds(static_cast<int64_t>(d));
}

int64_t clock_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace husk
