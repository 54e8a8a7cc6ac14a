// What husk-image pull shows while it works: on a terminal one line
// redrawn in place (bytes of the whole image, blobs done, a bar); on
// anything else plain lines, one per blob event, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "image/fetch.h"

namespace husk::image {

class PullProgressBar {
 public:
  PullProgressBar(FILE* out, bool terminal, std::string ref) : out_(out), tty_(terminal), ref_(std::move(ref)) {}
  void on_event(const PullEvent& e);
  void finish();  // ends the redrawn line

 private:
  void redraw(bool force);
  FILE* out_;
  bool tty_;
  std::string ref_;
  std::map<std::string, uint64_t> done_;  // per blob
  std::map<std::string, int64_t> size_;
  uint64_t total_ = 0;
  size_t blobs_ = 0, finished_ = 0;
  std::chrono::steady_clock::time_point last_;
  bool drawn_ = false;
};

// "12.3 MiB"
std::string human_bytes(uint64_t n);

}  // namespace husk::image
