// Where a pull stands, from the PullEvents fetch_image() reports: each
// layer's state (waiting, pulling, pulled, already in the store) and bytes,
// the image's totals, and the one-line summary Nomad's docker driver puts in
// its pull progress events ("Pulled 2/5 (12.3 MiB/40.1 MiB) layers:
// 1 waiting/2 pulling - est 4.2s remaining"). husk-image's progress bar and
// the driver's task events both read it. ReportThrottle spaces out reports
// (the driver's events while a pull runs).
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "image/fetch.h"

namespace husk::image {

struct LayerProgress {
  enum State { kWaiting, kPulling, kPulled, kPresent } state = kWaiting;  // kPresent: in the store already
  uint64_t done = 0;
  uint64_t size = 0;  // from the manifest
};

class PullProgress {
 public:
  explicit PullProgress(Clock::time_point start = Clock::now()) : start_(start) {}
  // Events of the image's config blob count for nothing: like docker, the
  // layers are what is counted.
  void on_event(const PullEvent& e);

  bool resolved() const { return resolved_; }
  size_t layers() const { return layers_.size(); }
  size_t count(LayerProgress::State s) const;
  // Bytes of the image's layers: those in the store already count as done,
  // so bytes_done() only grows and reaches bytes_total() when the pull ends.
  uint64_t bytes_done() const;
  uint64_t bytes_total() const;
  // Bytes actually transferred by this pull (what the estimate's rate is of).
  uint64_t bytes_fetched() const;
  const std::map<std::string, LayerProgress>& layer_states() const { return layers_; }
  // "Pulled 1/3 (2.0 MiB/6.0 MiB) layers: 1 waiting/1 pulling - est 4.0s
  // remaining"; the estimate only once bytes moved and some are left.
  std::string summary(Clock::time_point now) const;

 private:
  Clock::time_point start_;
  bool resolved_ = false;
  std::string config_;                         // the config blob's digest
  std::map<std::string, LayerProgress> layers_;  // by digest
  std::map<std::string, uint64_t> resumed_;      // bytes a layer's fetch started with (a partial file)
};

// Says a report is due at most once per `interval`: the first as soon as
// asked (a pull's first event says it started), then only after `interval`.
class ReportThrottle {
 public:
  explicit ReportThrottle(std::chrono::milliseconds interval) : interval_(interval) {}
  bool due(Clock::time_point now);

 private:
  std::chrono::milliseconds interval_;
  bool reported_ = false;
  Clock::time_point last_;
};

// n bytes for people: binary units ("12.3 MiB", docker's pull progress) or
// decimal ones ("12.9 MB", the size column of podman images); "512 B" in both.
enum class SizeUnits { Binary, Decimal };
std::string human_bytes(uint64_t n, SizeUnits units = SizeUnits::Binary);

}  // namespace husk::image
