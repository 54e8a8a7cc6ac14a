// What husk-image pull shows while it works: on a terminal one line
// redrawn in place (bytes of the image's layers, layers done, a bar); on
// anything else plain lines, one per blob event, so logs stay readable; or
// (--progress json) one JSON object per event, with the blob's bytes and the
// image's totals, for programs that follow a pull; or (--progress summary)
// "progress: " and PullProgress::summary(), the line of Nomad's docker
// driver, at most once a second once the manifest is known (what a
// rootless driver's pull child reports). The totals come from
// PullProgress, the accounting the driver's task events use too.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "image/fetch.h"
#include "image/pull_progress.h"

namespace husk::image {

class PullProgressBar {
 public:
  enum class Mode { kBar, kLines, kJson, kSummary };
  PullProgressBar(FILE* out, Mode mode, std::string ref) : out_(out), mode_(mode), ref_(std::move(ref)) {}
  void on_event(const PullEvent& e);
  void finish();  // ends the redrawn line

 private:
  void redraw(bool force);
  void json(const PullEvent& e);
  FILE* out_;
  Mode mode_;
  std::string ref_;
  PullProgress progress_;
  std::chrono::steady_clock::time_point last_;
  bool drawn_ = false;
  ReportThrottle summary_throttle_{std::chrono::seconds(1)};
};

}  // namespace husk::image
