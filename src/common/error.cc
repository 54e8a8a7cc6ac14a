#include "common/error.h"

#include <cstring>

namespace husk {

std::string Error::str() const {
  std::string out;
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
    out += *it;
    out += ": ";
  }
  out += what_;
  if (errno_ != 0) {
    out += ": ";
    out += strerror(errno_);
  }
  return out;
}

}  // namespace husk
