// `husk events [--stats] [--interval D] ID`, as runc's: one JSON object a
// line. {"type":"stats","id":..,"data":{..}} every interval (once with
// --stats), {"type":"oom","id":..} as soon as the kernel OOM-kills a process
// in the container. It ends when the container's last process has exited.
#include "cli/events.h"

#include <cstdio>
#include <cstdlib>

#include "cgroups/events.h"
#include "cgroups/stats.h"
#include "cli/args.h"
#include "common/duration.h"
#include "oci/json_writer.h"
#include "runtime/container.h"
#include "runtime/log.h"

namespace husk::cli {

// Go's time.Duration syntax as runc takes it (common/duration.h), in whole
// milliseconds, at least one.
Result<int64_t> parse_duration_ms(const std::string& flag, const std::string& v) {
  std::string what = "--" + flag;
  auto d = TRY(parse_go_duration(v, what));
  if (d.count() < 0) return fail_msg(what, ": \"", v, "\" is negative");
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 1) return fail_msg(what, ": ", v, " is below the 1 ms resolution");
  return ms;
}

namespace {

// runc's types.Stats (libcontainer/cgroups/stats, as `runc events` prints
// it): CPU times in nanoseconds, memory in bytes.
std::string stats_event(const std::string& id, const cgroups::Stats& st) {
  oci::JsonWriter w(false);
  w.begin_object().key("type").str("stats").key("id").str(id).key("data").begin_object();
  if (st.cpu) {
    const auto& c = *st.cpu;
    w.key("cpu").begin_object();
    w.key("usage").begin_object();
    w.key("total").unum(c.usage_usec * 1000).key("kernel").unum(c.system_usec * 1000);
    w.key("user").unum(c.user_usec * 1000).end_object();
    w.key("throttling").begin_object();
    w.key("periods").unum(c.nr_periods).key("throttled_periods").unum(c.nr_throttled);
    w.key("throttled_time").unum(c.throttled_usec * 1000).end_object();
    w.end_object();
  }
  if (st.memory) {
    const auto& m = *st.memory;
    w.key("memory").begin_object();
    w.key("cache").unum(m.file);
    w.key("usage").begin_object().key("limit").unum(m.limit).key("usage").unum(m.usage);
    w.key("max").unum(m.max_usage).key("failcnt").unum(m.max).end_object();
    w.key("swap").begin_object().key("limit").unum(m.swap_limit).key("usage").unum(m.swap_usage).end_object();
    w.key("kernel").begin_object().key("usage").unum(m.kernel).end_object();
    w.key("raw").begin_object();
    for (const auto& [k, v] : m.stat) w.key(k).unum(v);
    w.end_object();
    w.key("events").begin_object().key("oom").unum(m.oom).key("oom_kill").unum(m.oom_kill);
    w.key("max").unum(m.max).end_object();
    w.end_object();
  }
  if (st.pids_current) {
    w.key("pids").begin_object().key("current").unum(*st.pids_current);
    if (st.pids_limit) w.key("limit").unum(*st.pids_limit == cgroups::kUnlimited ? 0 : *st.pids_limit);
    w.end_object();
  }
  if (!st.io.empty()) {
    auto entries = [&](const char* name, auto read, auto write) {
      w.key(name).begin_array();
      for (const auto& d : st.io) {
        w.begin_object().key("major").unum(d.major).key("minor").unum(d.minor).key("op").str("Read");
        w.key("value").unum(read(d)).end_object();
        w.begin_object().key("major").unum(d.major).key("minor").unum(d.minor).key("op").str("Write");
        w.key("value").unum(write(d)).end_object();
      }
      w.end_array();
    };
    w.key("blkio").begin_object();
    entries("ioServiceBytesRecursive", [](const auto& d) { return d.rbytes; }, [](const auto& d) { return d.wbytes; });
    entries("ioServicedRecursive", [](const auto& d) { return d.rios; }, [](const auto& d) { return d.wios; });
    w.end_object();
  }
  if (!st.hugetlb.empty()) {
    w.key("hugetlb").begin_object();
    for (const auto& h : st.hugetlb) {
      w.key(h.page_size).begin_object().key("usage").unum(h.usage).key("max").unum(h.limit);
      w.key("failcnt").unum(h.failcnt).end_object();
    }
    w.end_object();
  }
  w.end_object().end_object();
  return w.take();
}

std::string oom_event(const std::string& id) {
  oci::JsonWriter w(false);
  w.begin_object().key("type").str("oom").key("id").str(id).end_object();
  return w.take();
}

void emit(const std::string& line) {
  fputs(line.c_str(), stdout);
  fputc('\n', stdout);
  fflush(stdout);  // a reader (conmon, a pipe) wants each event when it happens
}

}  // namespace

int events_command(const runtime::GlobalOptions& g, const std::vector<std::string>& args, size_t at) {
  std::vector<OptSpec> specs = {{"stats", 0, false}, {"interval", 0, true}, {"help", 'h', false}};
  auto fail_out = [](const Error& e) {
    log::error(e.str());
    return 1;
  };
  auto p = parse(args, at + 1, specs, "events", false);
  if (!p) return fail_out(p.error());
  if (p->has("help")) {
    printf("usage: husk events [--stats] [--interval DURATION] CONTAINER-ID\n");
    return 0;
  }
  if (p->positional.size() != 1)
    return fail_out(Error::msg("events: usage: husk events [--stats] [--interval DURATION] CONTAINER-ID"));
  const std::string& id = p->positional[0];
  auto interval = parse_duration_ms("interval", p->get("interval", "5s"));
  if (!interval) return fail_out(interval.error());
  auto dir = runtime::cgroup_dir(g, id);
  if (!dir) return fail_out(dir.error());
  if (p->has("stats")) {
    emit(stats_event(id, cgroups::read_stats(*dir)));
    return 0;
  }
  auto watcher = cgroups::EventWatcher::open(*dir);
  if (!watcher) return fail_out(std::move(watcher.error()).with_context(cat("events of container \"", id, "\"")));
  if (!watcher->has_memory_events())
    log::warning("events: the memory controller is not enabled for container \"" + id +
                 "\": OOM kills cannot be reported");
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  auto ms_now = [&] {
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
  };
  int64_t next_stats = ms_now();
  while (true) {
    int64_t t = ms_now();
    if (t >= next_stats) {
      emit(stats_event(id, cgroups::read_stats(*dir)));
      next_stats = t + *interval;
    }
    auto change = watcher->wait(static_cast<int>(next_stats - t));
    if (!change) return fail_out(change.error());
    for (uint64_t i = 0; i < change->new_ooms; ++i) emit(oom_event(id));
    if (change->empty) return 0;
  }
}

}  // namespace husk::cli
