// A pull's progress accounting (see pull_progress.h).
#include "image/pull_progress.h"

#include <algorithm>
#include <cstdio>

namespace husk::image {

std::string human_bytes(uint64_t n, SizeUnits units) {
  static const char* binary[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  static const char* decimal[] = {"B", "kB", "MB", "GB", "TB"};
  const char** names = units == SizeUnits::Binary ? binary : decimal;
  const double step = units == SizeUnits::Binary ? 1024 : 1000;
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= step && u < 4) {
    v /= step;
    ++u;
  }
  char buf[32];
  if (u == 0)
    snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else
    snprintf(buf, sizeof buf, "%.1f %s", v, names[u]);
  return buf;
}

void PullProgress::on_event(const PullEvent& e) {
  if (e.kind == PullEvent::kResolved) {
    resolved_ = true;
    layers_.clear();
    resumed_.clear();
    for (size_t i = 0; i < e.blobs->size(); ++i) {
      const Descriptor& d = (*e.blobs)[i];
      if (i == 0) {
        config_ = d.digest.str();  // fetch_image lists the config first
        continue;
      }
      layers_[d.digest.str()].size = d.size > 0 ? static_cast<uint64_t>(d.size) : 0;
    }
    return;
  }
  std::string id = e.blob.str();
  if (id == config_) return;
  auto it = layers_.find(id);
  if (it == layers_.end()) return;  // not a blob of the resolved image
  LayerProgress& l = it->second;
  switch (e.kind) {
    case PullEvent::kResolved:
      break;
    case PullEvent::kBlobExists:
      l.state = LayerProgress::kPresent;
      l.done = l.size;
      break;
    case PullEvent::kBlobStart:
      l.state = LayerProgress::kPulling;
      l.done = 0;
      resumed_.erase(id);
      break;
    case PullEvent::kBlobProgress:
      // The first report of a fetch is what a partial file from an earlier
      // pull already holds: not transferred now.
      if (!resumed_.contains(id)) resumed_[id] = e.done;
      l.state = LayerProgress::kPulling;
      l.done = std::min<uint64_t>(e.done, l.size ? l.size : e.done);
      break;
    case PullEvent::kBlobDone:
      l.state = LayerProgress::kPulled;
      l.done = l.size ? l.size : e.done;
      break;
  }
}

size_t PullProgress::count(LayerProgress::State s) const {
  size_t n = 0;
  for (const auto& [id, l] : layers_) n += l.state == s;
  return n;
}

uint64_t PullProgress::bytes_done() const {
  uint64_t n = 0;
  for (const auto& [id, l] : layers_) n += l.done;
  return n;
}

uint64_t PullProgress::bytes_total() const {
  uint64_t n = 0;
  for (const auto& [id, l] : layers_) n += l.size;
  return n;
}

uint64_t PullProgress::bytes_fetched() const {
  uint64_t n = 0;
  for (const auto& [id, l] : layers_) {
    if (l.state == LayerProgress::kPresent) continue;
    auto r = resumed_.find(id);
    uint64_t from = r == resumed_.end() ? 0 : r->second;
    n += l.done > from ? l.done - from : 0;
  }
  return n;
}

std::string PullProgress::summary(Clock::time_point now) const {
  size_t pulled = count(LayerProgress::kPulled) + count(LayerProgress::kPresent);
  char buf[256];
  snprintf(buf, sizeof buf, "Pulled %zu/%zu (%s/%s) layers: %zu waiting/%zu pulling", pulled, layers(),
           human_bytes(bytes_done()).c_str(), human_bytes(bytes_total()).c_str(), count(LayerProgress::kWaiting),
           count(LayerProgress::kPulling));
  std::string out = buf;
  uint64_t fetched = bytes_fetched(), done = bytes_done(), total = bytes_total();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  if (fetched > 0 && done < total && elapsed > 0) {
    // At the rate of this pull's own transfers so far.
    double est = static_cast<double>(total - done) * elapsed / static_cast<double>(fetched);
    snprintf(buf, sizeof buf, " - est %.1fs remaining", est);
    out += buf;
  }
  return out;
}

bool ReportThrottle::due(Clock::time_point now) {
  if (reported_ && now - last_ < interval_) return false;
  reported_ = true;
  last_ = now;
  return true;
}

}  // namespace husk::image
