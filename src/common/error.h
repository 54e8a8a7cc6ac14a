// One error type for the whole tree: what failed, the errno (0 when the
// failure is not a syscall's), and the context added on the way up.
// Result<T> is std::expected<T, Error>. Nothing is thrown.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace husk {

// Concatenate strings, characters and integers: cat("mount ", src, " on ", dst).
// Plain appends, not an ostringstream: iostreams and locales would cost every
// husk process startup time and resident memory.
namespace detail {
inline void append(std::string& out, std::string_view v) { out.append(v.data(), v.size()); }
inline void append(std::string& out, const std::string& v) { out.append(v); }
inline void append(std::string& out, const char* v) { out.append(v, __builtin_strlen(v)); }
inline void append(std::string& out, char c) { out.push_back(c); }
template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, bool>)
void append(std::string& out, T v) {
  out.append(std::to_string(v));
}
inline void append(std::string& out, bool v) { out.push_back(v ? '1' : '0'); }
}  // namespace detail

template <typename... Args>
std::string cat(Args&&... args) {
  std::string out;
  (detail::append(out, std::forward<Args>(args)), ...);
  return out;
}

class Error {
 public:
  Error(int err, std::string what) : errno_(err), what_(std::move(what)) {}

  // A failed syscall: reads errno now, so call it right after the failure.
  static Error sys(std::string what) { return Error(errno, std::move(what)); }
  static Error msg(std::string what) { return Error(0, std::move(what)); }

  int code() const { return errno_; }
  const std::string& what() const { return what_; }

  // Add the caller's view: "create container: mount proc ...: EPERM".
  Error& context(std::string ctx) {
    context_.push_back(std::move(ctx));
    return *this;
  }
  Error&& with_context(std::string ctx) && {
    context_.push_back(std::move(ctx));
    return std::move(*this);
  }

  // One line, outermost context first, errno text last (crun's shape).
  std::string str() const;

 private:
  int errno_;
  std::string what_;
  std::vector<std::string> context_;  // innermost first
};

template <typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Error e) { return std::unexpected(std::move(e)); }
template <typename... Args>
std::unexpected<Error> fail_msg(Args&&... args) {
  return std::unexpected(Error::msg(cat(std::forward<Args>(args)...)));
}
template <typename... Args>
std::unexpected<Error> fail_sys(Args&&... args) {
  return std::unexpected(Error::sys(cat(std::forward<Args>(args)...)));
}
template <typename... Args>
std::unexpected<Error> fail_errno(int err, Args&&... args) {
  return std::unexpected(Error(err, cat(std::forward<Args>(args)...)));
}

}  // namespace husk

// Propagate an error, yielding the value otherwise (GNU statement expression).
#define TRY(expr)                                                   \
  ({                                                                \
    auto&& husk_try_r_ = (expr);                                    \
    if (!husk_try_r_) return std::unexpected(std::move(husk_try_r_.error())); \
    std::move(*husk_try_r_);                                        \
  })

// Propagate an error from a Result<void>.
#define TRYV(expr)                                                  \
  do {                                                              \
    auto&& husk_try_r_ = (expr);                                    \
    if (!husk_try_r_) return std::unexpected(std::move(husk_try_r_.error())); \
  } while (0)

// Propagate with context added: TRYV_CTX(mount(...), "mount proc").
#define TRYV_CTX(expr, ...)                                         \
  do {                                                              \
    auto&& husk_try_r_ = (expr);                                    \
    if (!husk_try_r_)                                               \
      return std::unexpected(std::move(husk_try_r_.error()).with_context(::husk::cat(__VA_ARGS__))); \
  } while (0)

#define TRY_CTX(expr, ...)                                          \
  ({                                                                \
    auto&& husk_try_r_ = (expr);                                    \
    if (!husk_try_r_)                                               \
      return std::unexpected(std::move(husk_try_r_.error()).with_context(::husk::cat(__VA_ARGS__))); \
    std::move(*husk_try_r_);                                        \
  })
