// The pull progress display of husk-image.
#include "image/progress_bar.h"

namespace husk::image {

std::string human_bytes(uint64_t n) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else
    snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

void PullProgressBar::on_event(const PullEvent& e) {
  std::string id = e.blob.hex.substr(0, 12);
  switch (e.kind) {
    case PullEvent::kResolved:
      for (const Descriptor& d : *e.blobs) {
        size_[d.digest.str()] = d.size;
        total_ += d.size > 0 ? static_cast<uint64_t>(d.size) : 0;
      }
      blobs_ = e.blobs->size();
      if (!tty_)
        fprintf(out_, "%s: manifest %s, %zu blobs, %s\n", ref_.c_str(), e.blob.str().c_str(), blobs_,
                human_bytes(total_).c_str());
      break;
    case PullEvent::kBlobExists:
      done_[e.blob.str()] = e.done;
      ++finished_;
      if (!tty_) fprintf(out_, "blob %s: already present\n", id.c_str());
      break;
    case PullEvent::kBlobStart:
      if (!tty_) fprintf(out_, "blob %s: fetching %s\n", id.c_str(), human_bytes(e.total > 0 ? e.total : 0).c_str());
      break;
    case PullEvent::kBlobProgress:
      done_[e.blob.str()] = e.done;
      break;
    case PullEvent::kBlobDone:
      done_[e.blob.str()] = e.done;
      ++finished_;
      if (!tty_) fprintf(out_, "blob %s: done\n", id.c_str());
      break;
  }
  if (tty_) redraw(e.kind != PullEvent::kBlobProgress);
  fflush(out_);
}

void PullProgressBar::redraw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  uint64_t done = 0;
  for (auto& [k, v] : done_) done += v;
  constexpr int kWidth = 30;
  int fill = total_ ? static_cast<int>(kWidth * std::min<uint64_t>(done, total_) / total_) : 0;
  std::string bar(fill, '#');
  bar.append(kWidth - fill, '-');
  fprintf(out_, "\r\033[K%s [%s] %s / %s, %zu/%zu blobs", ref_.c_str(), bar.c_str(), human_bytes(done).c_str(),
          human_bytes(total_).c_str(), finished_, blobs_);
}

void PullProgressBar::finish() {
  if (tty_ && drawn_) {
    redraw(true);
    fputc('\n', out_);
    fflush(out_);
  }
}

}  // namespace husk::image
