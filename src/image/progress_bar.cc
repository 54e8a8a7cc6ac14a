// The pull progress display of husk-image.
#include "image/progress_bar.h"

#include <algorithm>

namespace husk::image {

void PullProgressBar::on_event(const PullEvent& e) {
  progress_.on_event(e);
  if (mode_ == Mode::kJson) {
    json(e);
  } else if (mode_ == Mode::kSummary) {
    auto now = Clock::now();
    if (progress_.resolved() && summary_throttle_.due(now))
      fprintf(out_, "progress: %s\n", progress_.summary(now).c_str());
  } else if (mode_ == Mode::kBar) {
    redraw(e.kind != PullEvent::kBlobProgress);
  } else {
    std::string id = e.blob.hex.substr(0, 12);
    switch (e.kind) {
      case PullEvent::kResolved:
        fprintf(out_, "%s: manifest %s, %zu layers, %s\n", ref_.c_str(), e.blob.str().c_str(), progress_.layers(),
                human_bytes(progress_.bytes_total()).c_str());
        break;
      case PullEvent::kBlobExists:
        fprintf(out_, "blob %s: already present\n", id.c_str());
        break;
      case PullEvent::kBlobStart:
        fprintf(out_, "blob %s: fetching %s\n", id.c_str(), human_bytes(e.total > 0 ? e.total : 0).c_str());
        break;
      case PullEvent::kBlobProgress:
        break;
      case PullEvent::kBlobDone:
        fprintf(out_, "blob %s: done\n", id.c_str());
        break;
    }
  }
  fflush(out_);
}

void PullProgressBar::json(const PullEvent& e) {
  static const char* kinds[] = {"resolved", "start", "progress", "done", "exists"};
  // Digests and numbers only: nothing to escape.
  fprintf(out_,
          "{\"event\":\"%s\",\"blob\":\"%s\",\"done\":%llu,\"total\":%lld,\"layers\":%zu,\"layers_pulled\":%zu,"
          "\"bytes_done\":%llu,\"bytes_total\":%llu}\n",
          kinds[e.kind], e.blob.str().c_str(), static_cast<unsigned long long>(e.done), static_cast<long long>(e.total),
          progress_.layers(), progress_.count(LayerProgress::kPulled) + progress_.count(LayerProgress::kPresent),
          static_cast<unsigned long long>(progress_.bytes_done()),
          static_cast<unsigned long long>(progress_.bytes_total()));
}

void PullProgressBar::redraw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  uint64_t done = progress_.bytes_done(), total = progress_.bytes_total();
  constexpr int kWidth = 30;
  int fill = total ? static_cast<int>(kWidth * std::min<uint64_t>(done, total) / total) : 0;
  std::string bar(fill, '#');
  bar.append(kWidth - fill, '-');
  size_t finished = progress_.count(LayerProgress::kPulled) + progress_.count(LayerProgress::kPresent);
  fprintf(out_, "\r\033[K%s [%s] %s / %s, %zu/%zu layers", ref_.c_str(), bar.c_str(), human_bytes(done).c_str(),
          human_bytes(total).c_str(), finished, progress_.layers());
}

void PullProgressBar::finish() {
  if (mode_ == Mode::kBar && drawn_) {
    redraw(true);
    fputc('\n', out_);
    fflush(out_);
  }
}

}  // namespace husk::image
