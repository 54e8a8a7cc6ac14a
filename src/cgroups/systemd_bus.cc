#include "cgroups/systemd_bus.h"

#include <dlfcn.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include <cstdlib>
#include <utility>

namespace husk::cgroups {
namespace {

constexpr const char* kLibrary = "libsystemd.so.0";
constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kObject = "/org/freedesktop/systemd1";
constexpr const char* kInterface = "org.freedesktop.systemd1.Manager";
constexpr uint64_t kCallTimeoutUsec = static_cast<uint64_t>(kSystemdJobTimeoutSec) * 1000000;

// The sd-bus functions husk calls. The header gives their types; nothing
// is linked, so no symbol of libsystemd is referenced but through these.
struct Api {
  decltype(&sd_bus_open_system) open_system;
  decltype(&sd_bus_open_user) open_user;
  decltype(&sd_bus_flush_close_unref) flush_close_unref;
  decltype(&sd_bus_add_match) add_match;
  decltype(&sd_bus_slot_unref) slot_unref;
  decltype(&sd_bus_message_new_method_call) new_method_call;
  decltype(&sd_bus_message_append) append;
  decltype(&sd_bus_message_open_container) open_container;
  decltype(&sd_bus_message_close_container) close_container;
  decltype(&sd_bus_message_read) read;
  decltype(&sd_bus_message_unref) message_unref;
  decltype(&sd_bus_call) call;
  decltype(&sd_bus_process) process;
  decltype(&sd_bus_wait) wait;
  decltype(&sd_bus_error_free) error_free;
};

template <typename F>
bool load(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

Result<const Api*> api() {
  static Api a;
  static bool loaded = false;
  if (loaded) return &a;
  // Never unloaded: the process is short-lived and sd-bus keeps state.
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return fail_errno(ENOENT, "systemd cgroup manager: load ", kLibrary, ": ", dlerror(),
                      " (install libsystemd0, or use --cgroup-manager cgroupfs)");
  const char* missing = nullptr;
#define HUSK_LOAD(field, symbol) \
  if (!missing && !load(lib, #symbol, a.field)) missing = #symbol
  HUSK_LOAD(open_system, sd_bus_open_system);
  HUSK_LOAD(open_user, sd_bus_open_user);
  HUSK_LOAD(flush_close_unref, sd_bus_flush_close_unref);
  HUSK_LOAD(add_match, sd_bus_add_match);
  HUSK_LOAD(slot_unref, sd_bus_slot_unref);
  HUSK_LOAD(new_method_call, sd_bus_message_new_method_call);
  HUSK_LOAD(append, sd_bus_message_append);
  HUSK_LOAD(open_container, sd_bus_message_open_container);
  HUSK_LOAD(close_container, sd_bus_message_close_container);
  HUSK_LOAD(read, sd_bus_message_read);
  HUSK_LOAD(message_unref, sd_bus_message_unref);
  HUSK_LOAD(call, sd_bus_call);
  HUSK_LOAD(process, sd_bus_process);
  HUSK_LOAD(wait, sd_bus_wait);
  HUSK_LOAD(error_free, sd_bus_error_free);
#undef HUSK_LOAD
  if (missing) return fail_errno(ENOSYS, "systemd cgroup manager: ", kLibrary, " has no ", missing);
  loaded = true;
  return &a;
}

// Owners of sd-bus objects.
struct MessagePtr {
  const Api* a;
  sd_bus_message* m = nullptr;
  ~MessagePtr() {
    if (m) a->message_unref(m);
  }
};
struct BusError {
  const Api* a;
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { a->error_free(&e); }
  bool is(const char* name) const { return e.name && std::string(e.name) == name; }
};

int64_t monotonic_usec() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

std::string bus_address(bool user) {
  const char* v = getenv(user ? "DBUS_SESSION_BUS_ADDRESS" : "DBUS_SYSTEM_BUS_ADDRESS");
  if (v && *v) return v;
  if (!user) return "unix:path=/run/dbus/system_bus_socket";
  const char* run = getenv("XDG_RUNTIME_DIR");
  return run && *run ? cat("unix:path=", run, "/bus") : std::string("$XDG_RUNTIME_DIR/bus (XDG_RUNTIME_DIR is unset)");
}

struct JobResult {
  std::string job, result;
};

// The (sv) entries of an a(sv) container that is open.
int append_properties(const Api& a, sd_bus_message* m, const std::vector<UnitProperty>& props) {
  int r = 0;
  for (const auto& p : props) {
    switch (p.type) {
      case UnitProperty::Type::String:
        r = a.append(m, "(sv)", p.name.c_str(), "s", p.str.c_str());
        break;
      case UnitProperty::Type::Bool:
        r = a.append(m, "(sv)", p.name.c_str(), "b", static_cast<int>(p.num));
        break;
      case UnitProperty::Type::U64:
        r = a.append(m, "(sv)", p.name.c_str(), "t", p.num);
        break;
    }
    if (r < 0) return r;
  }
  return r;
}

}  // namespace

struct SystemdBus::Impl {
  const Api* a = nullptr;
  sd_bus* bus = nullptr;
  sd_bus_slot* match = nullptr;
  bool subscribed = false;
  std::string address;
  // JobRemoved signals seen so far: one may come before the reply that
  // names its job has been read.
  std::vector<JobResult> removed;

  ~Impl() {
    if (match) a->slot_unref(match);
    if (bus) a->flush_close_unref(bus);
  }

  static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    uint32_t id = 0;
    const char *job = nullptr, *unit = nullptr, *result = nullptr;
    if (self->a->read(m, "uoss", &id, &job, &unit, &result) >= 0 && job && result)
      self->removed.push_back({job, result});
    return 0;
  }

  // "org.freedesktop.DBus.Error.ServiceUnknown: The name ... was not
  // provided by any .service files", or the errno's text.
  static std::string describe(const sd_bus_error& e, int r) {
    if (e.name) return cat(e.name, ": ", e.message ? e.message : "");
    return strerror(-r);
  }
};

SystemdBus::SystemdBus(std::unique_ptr<Impl> impl, std::string name) : impl_(std::move(impl)), name_(std::move(name)) {}
SystemdBus::~SystemdBus() = default;

Result<std::unique_ptr<SystemdBus>> SystemdBus::connect(bool user) {
  const Api* a = TRY(api());
  auto impl = std::make_unique<Impl>();
  impl->a = a;
  impl->address = bus_address(user);
  std::string name = user ? "user bus" : "system bus";
  int r = user ? a->open_user(&impl->bus) : a->open_system(&impl->bus);
  if (r < 0) {
    impl->bus = nullptr;
    return fail_errno(-r, "systemd cgroup manager: connect to the ", name, " at ", impl->address,
                      " (is systemd running? use --cgroup-manager cgroupfs without it)");
  }
  return std::unique_ptr<SystemdBus>(new SystemdBus(std::move(impl), std::move(name)));
}

Result<> SystemdBus::subscribe() {
  Impl& s = *impl_;
  if (s.subscribed) return {};
  if (!s.match) {
    // No sender in the rule: a well-known sender name cannot be checked
    // locally; the job path is what identifies our signal.
    std::string rule = cat("type='signal',interface='", kInterface, "',member='JobRemoved',path='", kObject, "'");
    int r = s.a->add_match(s.bus, &s.match, rule.c_str(), &Impl::on_job_removed, &s);
    if (r < 0)
      return fail_errno(-r, "systemd cgroup manager: listen for JobRemoved on the ", name_, " at ", s.address,
                        " (is systemd running? use --cgroup-manager cgroupfs without it)");
  }
  MessagePtr msg{s.a}, reply{s.a};
  BusError err{s.a};
  int r = s.a->new_method_call(s.bus, &msg.m, kService, kObject, kInterface, "Subscribe");
  if (r >= 0) r = s.a->call(s.bus, msg.m, kCallTimeoutUsec, &err.e, &reply.m);
  // Already subscribed is fine (systemd answers with an error then).
  if (r < 0 && !err.is("org.freedesktop.systemd1.AlreadySubscribed")) {
    if (!err.e.name)
      return fail_errno(-r, "systemd cgroup manager: reach the ", name_, " at ", s.address,
                        " (is systemd running? use --cgroup-manager cgroupfs without it)");
    return fail_errno(-r, "systemd cgroup manager: Subscribe on the ", name_, ": ", Impl::describe(err.e, r),
                      " (use --cgroup-manager cgroupfs where systemd does not run)");
  }
  s.subscribed = true;
  return {};
}

Result<> SystemdBus::start_scope(const std::string& unit, const std::vector<UnitProperty>& props, pid_t pid,
                                 bool& started) {
  TRYV(subscribe());
  Impl& s = *impl_;
  const Api& a = *s.a;
  MessagePtr msg{s.a}, reply{s.a};
  BusError err{s.a};
  const std::string what = cat("systemd cgroup manager: StartTransientUnit ", unit);
  int r = a.new_method_call(s.bus, &msg.m, kService, kObject, kInterface, "StartTransientUnit");
  if (r >= 0) r = a.append(msg.m, "ss", unit.c_str(), "fail");
  if (r >= 0) r = a.open_container(msg.m, 'a', "(sv)");
  if (r >= 0) r = append_properties(a, msg.m, props);
  if (r >= 0) r = a.append(msg.m, "(sv)", "PIDs", "au", 1, static_cast<uint32_t>(pid));
  if (r >= 0) r = a.close_container(msg.m);
  if (r >= 0) r = a.append(msg.m, "a(sa(sv))", 0);
  if (r < 0) return fail_errno(-r, what, ": build the message");
  r = a.call(s.bus, msg.m, kCallTimeoutUsec, &err.e, &reply.m);
  if (r < 0) return fail_errno(-r, what, " on the ", name_, ": ", Impl::describe(err.e, r));
  const char* job = nullptr;
  r = a.read(reply.m, "o", &job);
  if (r < 0 || !job) return fail_errno(r < 0 ? -r : EPROTO, what, ": the reply holds no job path");
  started = true;
  return wait_job("StartTransientUnit", unit, job);
}

Result<> SystemdBus::stop_unit(const std::string& unit) {
  TRYV(subscribe());
  Impl& s = *impl_;
  MessagePtr msg{s.a}, reply{s.a};
  BusError err{s.a};
  int r = s.a->new_method_call(s.bus, &msg.m, kService, kObject, kInterface, "StopUnit");
  if (r >= 0) r = s.a->append(msg.m, "ss", unit.c_str(), "replace");
  if (r >= 0) r = s.a->call(s.bus, msg.m, kCallTimeoutUsec, &err.e, &reply.m);
  if (r < 0) {
    if (err.is("org.freedesktop.systemd1.NoSuchUnit")) return {};
    return fail_errno(-r, "systemd cgroup manager: StopUnit ", unit, " on the ", name_, ": ", Impl::describe(err.e, r));
  }
  const char* job = nullptr;
  r = s.a->read(reply.m, "o", &job);
  if (r < 0 || !job)
    return fail_errno(r < 0 ? -r : EPROTO, "systemd cgroup manager: StopUnit ", unit, ": the reply holds no job path");
  return wait_job("StopUnit", unit, job);
}

Result<> SystemdBus::set_properties(const std::string& unit, const std::vector<UnitProperty>& props) {
  Impl& s = *impl_;
  MessagePtr msg{s.a}, reply{s.a};
  BusError err{s.a};
  int r = s.a->new_method_call(s.bus, &msg.m, kService, kObject, kInterface, "SetUnitProperties");
  if (r >= 0) r = s.a->append(msg.m, "sb", unit.c_str(), 1);  // runtime: gone at reboot, as the scope
  if (r >= 0) r = s.a->open_container(msg.m, 'a', "(sv)");
  if (r >= 0) r = append_properties(*s.a, msg.m, props);
  if (r >= 0) r = s.a->close_container(msg.m);
  if (r >= 0) r = s.a->call(s.bus, msg.m, kCallTimeoutUsec, &err.e, &reply.m);
  if (r < 0)
    return fail_errno(-r, "systemd cgroup manager: SetUnitProperties ", unit, " on the ", name_, ": ",
                      Impl::describe(err.e, r));
  return {};
}

Result<> SystemdBus::reset_failed(const std::string& unit) {
  Impl& s = *impl_;
  MessagePtr msg{s.a}, reply{s.a};
  BusError err{s.a};
  int r = s.a->new_method_call(s.bus, &msg.m, kService, kObject, kInterface, "ResetFailedUnit");
  if (r >= 0) r = s.a->append(msg.m, "s", unit.c_str());
  if (r >= 0) r = s.a->call(s.bus, msg.m, kCallTimeoutUsec, &err.e, &reply.m);
  if (r < 0 && !err.is("org.freedesktop.systemd1.NoSuchUnit"))
    return fail_errno(-r, "systemd cgroup manager: ResetFailedUnit ", unit, " on the ", name_, ": ",
                      Impl::describe(err.e, r));
  return {};
}

Result<> SystemdBus::wait_job(const std::string& method, const std::string& unit, const std::string& job) {
  Impl& s = *impl_;
  const int64_t deadline = monotonic_usec() + static_cast<int64_t>(kCallTimeoutUsec);
  for (;;) {
    for (const auto& j : s.removed) {
      if (j.job != job) continue;
      if (j.result == "done") return {};
      return fail_errno(EIO, "systemd cgroup manager: ", method, " ", unit, ": job ", job, " ended with result \"",
                        j.result, "\", not \"done\"");
    }
    int r = s.a->process(s.bus, nullptr);
    if (r < 0)
      return fail_errno(-r, "systemd cgroup manager: ", method, " ", unit, ": wait for job ", job, " on the ", name_);
    if (r > 0) continue;  // more may be queued
    int64_t left = deadline - monotonic_usec();
    if (left <= 0)
      return fail_errno(ETIMEDOUT, "systemd cgroup manager: ", method, " ", unit, ": job ", job,
                        " did not finish within ", kSystemdJobTimeoutSec, " s (no JobRemoved signal)");
    r = s.a->wait(s.bus, static_cast<uint64_t>(left));
    if (r < 0 && r != -EINTR)
      return fail_errno(-r, "systemd cgroup manager: ", method, " ", unit, ": wait for job ", job, " on the ", name_);
  }
}

}  // namespace husk::cgroups
