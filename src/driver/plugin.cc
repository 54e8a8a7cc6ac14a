#include "driver/plugin.h"

#include "image/store.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "base.grpc.pb.h"
#include "cgroups/manager.h"
#include "common/fd.h"
#include "common/text.h"
#include "driver.grpc.pb.h"
#include "driver/bundle_files.h"
#include "driver/exec_stream.h"
#include "driver/husk_process.h"
#include "driver/log.h"
#include "driver/tasks.h"
#include "net/network.h"
#include "goplugin.grpc.pb.h"
#include "rpc_status.pb.h"
#include "structs.pb.h"
#include "oci/json_writer.h"

namespace husk::driver {
namespace {

namespace base = hashicorp::nomad::plugins::base::proto;
namespace drv = hashicorp::nomad::plugins::drivers::proto;
namespace hcl = hashicorp::nomad::plugins::shared::hclspec;
namespace structs = hashicorp::nomad::plugins::shared::structs;

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void set_time(google::protobuf::Timestamp* t, int64_t ns) {
  t->set_seconds(ns / 1000000000);
  t->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

int64_t duration_ms(const google::protobuf::Duration& d) { return d.seconds() * 1000 + d.nanos() / 1000000; }

grpc::Status error_status(const Error& e, grpc::StatusCode code = grpc::StatusCode::UNKNOWN) {
  if (code == grpc::StatusCode::UNKNOWN && e.code() == ENOENT) code = grpc::StatusCode::NOT_FOUND;
  return grpc::Status(code, e.str());
}

// StartTask failures carry Nomad's RecoverableError detail (§4 of the fact
// sheet): bad configs are final, everything else may be retried.
grpc::Status start_error(const Error& e, bool recoverable) {
  google::rpc::Status st;
  st.set_code(grpc::StatusCode::FAILED_PRECONDITION);
  st.set_message(e.str());
  structs::RecoverableError re;
  re.set_recoverable(recoverable);
  st.add_details()->PackFrom(re, "type.googleapis.com");
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, e.str(), st.SerializeAsString());
}

void to_proto(const SpecNode& n, hcl::Spec* out) {
  switch (n.kind) {
    case SpecNode::Kind::Object: {
      auto* o = out->mutable_object();
      for (const auto& [name, child] : n.children) to_proto(*child, &(*o->mutable_attributes())[name]);
      break;
    }
    case SpecNode::Kind::Array: {
      auto* a = out->mutable_array();
      for (const auto& [name, child] : n.children) to_proto(*child, a->add_values());
      break;
    }
    case SpecNode::Kind::Attr: {
      auto* a = out->mutable_attr();
      a->set_name(n.name);
      a->set_type(n.type);
      a->set_required(n.required);
      break;
    }
    case SpecNode::Kind::Block: {
      auto* b = out->mutable_block_value();
      b->set_name(n.name);
      b->set_required(n.required);
      if (!n.children.empty()) to_proto(*n.children[0].second, b->mutable_nested());
      break;
    }
    case SpecNode::Kind::BlockList: {
      auto* b = out->mutable_block_list();
      b->set_name(n.name);
      b->set_min_items(n.min_items);
      b->set_max_items(n.max_items);
      if (!n.children.empty()) to_proto(*n.children[0].second, b->mutable_nested());
      break;
    }
    case SpecNode::Kind::BlockSet: {
      auto* b = out->mutable_block_set();
      b->set_name(n.name);
      b->set_min_items(n.min_items);
      b->set_max_items(n.max_items);
      if (!n.children.empty()) to_proto(*n.children[0].second, b->mutable_nested());
      break;
    }
    case SpecNode::Kind::BlockAttrs: {
      auto* b = out->mutable_block_attrs();
      b->set_name(n.name);
      b->set_type(n.type);
      b->set_required(n.required);
      break;
    }
    case SpecNode::Kind::BlockMap: {
      auto* b = out->mutable_block_map();
      b->set_name(n.name);
      for (const auto& l : n.labels) b->add_labels(l);
      if (!n.children.empty()) to_proto(*n.children[0].second, b->mutable_nested());
      break;
    }
    case SpecNode::Kind::Default: {
      auto* d = out->mutable_default_();
      if (n.children.size() > 0) to_proto(*n.children[0].second, d->mutable_primary());
      if (n.children.size() > 1) to_proto(*n.children[1].second, d->mutable_default_());
      break;
    }
    case SpecNode::Kind::Literal:
      out->mutable_literal()->set_value(n.literal);
      break;
  }
}

TaskSpec task_spec_of(const drv::TaskConfig& c) {
  TaskSpec t;
  t.id = c.id();
  t.name = c.name();
  t.alloc_id = c.alloc_id();
  t.job_name = c.job_name();
  t.job_id = c.job_id();
  t.task_group = c.task_group_name();
  t.namespace_ = c.namespace_();
  t.node_name = c.node_name();
  t.node_id = c.node_id();
  for (const auto& [k, v] : c.env()) t.env[k] = v;
  for (const auto& [k, v] : c.device_env()) t.device_env[k] = v;
  t.user = c.user();
  t.alloc_dir = c.alloc_dir();
  t.stdout_path = c.stdout_path();
  t.stderr_path = c.stderr_path();
  const auto& r = c.resources();
  t.cpu_shares_mhz = r.allocated_resources().cpu().cpu_shares();
  t.memory_mb = r.allocated_resources().memory().memory_mb();
  t.memory_max_mb = r.allocated_resources().memory().memory_max_mb();
  const auto& lr = r.linux_resources();
  t.linux_cpu_shares = lr.cpu_shares();
  t.memory_limit_bytes = lr.memory_limit_bytes();
  t.cpu_period = lr.cpu_period();
  t.cpu_quota = lr.cpu_quota();
  t.oom_score_adj = lr.oom_score_adj();
  t.cpuset_cpus = lr.cpuset_cpus();
  t.percent_ticks = lr.percentticks();
  for (const auto& p : r.ports()) t.ports.push_back({p.label(), p.value(), p.to(), p.host_ip()});
  for (const auto& m : c.mounts()) t.mounts.push_back({m.task_path(), m.host_path(), m.readonly(), m.propagation_mode()});
  for (const auto& d : c.devices()) t.devices.push_back({d.task_path(), d.host_path(), d.cgroup_permissions()});
  if (c.has_network_isolation_spec()) {
    const auto& n = c.network_isolation_spec();
    switch (n.mode()) {
      case drv::NetworkIsolationSpec::GROUP: t.network_mode = NetworkMode::Group; break;
      case drv::NetworkIsolationSpec::TASK: t.network_mode = NetworkMode::Task; break;
      case drv::NetworkIsolationSpec::NONE: t.network_mode = NetworkMode::None; break;
      default: t.network_mode = NetworkMode::Host; break;
    }
    t.netns_path = n.path();
    t.hosts_hostname = n.hostsconfig().hostname();
    t.hosts_address = n.hostsconfig().address();
  }
  for (const auto& s : c.dns().servers()) t.dns_servers.push_back(s);
  for (const auto& s : c.dns().searches()) t.dns_searches.push_back(s);
  for (const auto& s : c.dns().options()) t.dns_options.push_back(s);
  return t;
}

// Task events go to every open TaskEvents stream.
class EventBus {
 public:
  void publish(drv::DriverTaskEvent e) {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }
  // Waits for events after `seen`, up to 500 ms.
  std::vector<drv::DriverTaskEvent> next(size_t& seen) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(500), [&] { return events_.size() > seen; });
    std::vector<drv::DriverTaskEvent> out(events_.begin() + static_cast<long>(seen), events_.end());
    seen = events_.size();
    return out;
  }
  size_t size() {
    std::lock_guard<std::mutex> l(mu_);
    return events_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<drv::DriverTaskEvent> events_;
};

struct Shared {
  std::unique_ptr<Flavor> flavor;
  PluginOptions opts;
  TaskManager tasks;
  EventBus events;
  // SetConfig writes the flavor's options; everything else only reads them,
  // concurrently (a StartTask pulling an image must not hold up the others).
  std::shared_mutex config_mu;
  bool configured = false;
  int shutdown_fd = -1;  // eventfd: written by GRPCController.Shutdown
  std::atomic<bool> stopping{false};
  Shared(std::unique_ptr<Flavor> f, PluginOptions o)
      : flavor(std::move(f)), opts(std::move(o)), tasks(opts.state_dir) {
    if (opts.systemd_cgroups) tasks.set_cgroup_manager(cgroups::ManagerKind::Systemd);
  }
};

class BaseService final : public base::BasePlugin::Service {
 public:
  explicit BaseService(Shared& s) : s_(s) {}
  grpc::Status PluginInfo(grpc::ServerContext*, const base::PluginInfoRequest*, base::PluginInfoResponse* r) override {
    r->set_type(base::DRIVER);
    r->add_plugin_api_versions("v0.1.0");
    r->set_plugin_version(s_.opts.version);
    r->set_name(s_.flavor->name());
    return grpc::Status::OK;
  }
  grpc::Status ConfigSchema(grpc::ServerContext*, const base::ConfigSchemaRequest*,
                            base::ConfigSchemaResponse* r) override {
    to_proto(*s_.flavor->plugin_schema(), r->mutable_spec());
    return grpc::Status::OK;
  }
  grpc::Status SetConfig(grpc::ServerContext*, const base::SetConfigRequest* req, base::SetConfigResponse*) override {
    Spec schema = s_.flavor->plugin_schema();
    auto v = decode_msgpack(req->msgpack_config(), schema.get());
    if (!v) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "plugin config: " + v.error().str());
    std::unique_lock<std::shared_mutex> l(s_.config_mu);
    if (auto r = s_.flavor->configure(*v); !r)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "plugin config: " + r.error().str());
    s_.configured = true;
    log_info("configured the " + s_.flavor->name() + " driver");
    return grpc::Status::OK;
  }

 private:
  Shared& s_;
};

class DriverService final : public drv::Driver::Service {
 public:
  explicit DriverService(Shared& s) : s_(s) {}

  grpc::Status TaskConfigSchema(grpc::ServerContext*, const drv::TaskConfigSchemaRequest*,
                                drv::TaskConfigSchemaResponse* r) override {
    to_proto(*s_.flavor->task_schema(), r->mutable_spec());
    return grpc::Status::OK;
  }

  grpc::Status Capabilities(grpc::ServerContext*, const drv::CapabilitiesRequest*,
                            drv::CapabilitiesResponse* r) override {
    auto* c = r->mutable_capabilities();
    c->set_send_signals(true);
    c->set_exec(true);
    c->set_fs_isolation(drv::DriverCapabilities::IMAGE);
    c->add_network_isolation_modes(drv::NetworkIsolationSpec::HOST);
    c->add_network_isolation_modes(drv::NetworkIsolationSpec::GROUP);
    c->add_network_isolation_modes(drv::NetworkIsolationSpec::TASK);
    c->set_must_create_network(false);
    c->set_mount_configs(drv::DriverCapabilities::ANY_MOUNTS);
    return grpc::Status::OK;
  }

  grpc::Status Fingerprint(grpc::ServerContext* ctx, const drv::FingerprintRequest*,
                           grpc::ServerWriter<drv::FingerprintResponse>* w) override {
    std::string last;
    int64_t next = 0;
    while (!ctx->IsCancelled() && !s_.stopping) {
      int64_t now = now_ns();
      if (now >= next) {
        drv::FingerprintResponse f = fingerprint();
        std::string ser = f.SerializeAsString();
        // First at once, then whenever it changes (checked every 30 s).
        if (ser != last && !w->Write(f)) break;
        last = ser;
        next = now + 30 * 1000000000LL;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return grpc::Status::OK;
  }

  grpc::Status RecoverTask(grpc::ServerContext*, const drv::RecoverTaskRequest* req,
                           drv::RecoverTaskResponse*) override {
    std::string id = req->task_id().empty() ? req->handle().config().id() : req->task_id();
    if (s_.tasks.known(id)) return grpc::Status::OK;
    auto h = decode_handle_state(req->handle().driver_state());
    if (!h) return error_status(std::move(h.error()).with_context(cat("recover task ", id)));
    if (h->task_id.empty()) h->task_id = id;
    if (auto r = s_.tasks.recover(*h); !r) return error_status(r.error());
    log_info("recovered task " + id);
    return grpc::Status::OK;
  }

  grpc::Status StartTask(grpc::ServerContext*, const drv::StartTaskRequest* req, drv::StartTaskResponse* resp) override {
    const drv::TaskConfig& cfg = req->task();
    TaskSpec task = task_spec_of(cfg);
    if (s_.tasks.known(task.id))
      return start_error(Error::msg(cat("task ", task.id, " is already started")), false);
    Spec schema = s_.flavor->task_schema();
    auto config = decode_msgpack(cfg.msgpack_driver_config(), schema.get());
    if (!config) return start_error(std::move(config.error()).with_context("task config"), false);
    // The flavor's image pull reports through task events while it runs.
    task.emit_event = [this, id = task.id, alloc = task.alloc_id, name = task.name](
                          const std::string& message, const std::map<std::string, std::string>& annotations) {
      event(id, alloc, name, message, annotations);
    };
    auto prepared = s_.tasks.prepare(task);
    if (!prepared) return start_error(prepared.error(), true);
    auto [cid, dir] = *prepared;
    Result<BundlePlan> plan = [&]() -> Result<BundlePlan> {
      std::shared_lock<std::shared_mutex> l(s_.config_mu);
      return s_.flavor->plan(task, *config, cid, dir);
    }();
    if (!plan) {
      s_.tasks.discard(dir);
      return start_error(plan.error(), false);
    }
    for (const auto& w : plan->warnings) event(task, w);
    BundlePlan::Advertise advertise = plan->advertise;
    auto h = s_.tasks.start(task, std::move(*plan), cid, dir);
    if (!h) return start_error(std::move(h.error()).with_context(cat("start task ", task.id)), true);
    if (advertise.enabled) {
      // The container's address from husk's record of its network.
      auto rec = key_values(read_host_file(s_.tasks.state_dir() + "/containers/" + cid + "/" + net::kRecordFile));
      std::string addr = advertise.ipv6 ? rec["address6"] : rec["address"];
      if (!addr.empty()) {
        auto* n = resp->mutable_network_override();
        n->set_addr(addr);
        n->set_auto_advertise(advertise.auto_advertise);
        for (const auto& [label, port] : advertise.port_map) (*n->mutable_port_map())[label] = port;
      } else if (advertise.ipv6) {
        event(task, "config.advertise_ipv6_address: the task's network has no IPv6 address (no subnet6)");
      }
    }
    auto* handle = resp->mutable_handle();
    handle->set_version(1);
    *handle->mutable_config() = cfg;
    handle->set_state(drv::RUNNING);
    handle->set_driver_state(encode_handle_state(*h));
    log_info("started task " + task.id + " as container " + cid);
    return grpc::Status::OK;
  }

  grpc::Status WaitTask(grpc::ServerContext* ctx, const drv::WaitTaskRequest* req, drv::WaitTaskResponse* r) override {
    auto res = s_.tasks.wait(req->task_id(), [&] { return ctx->IsCancelled() || s_.stopping.load(); });
    if (!res) {
      if (res.error().code() == ECANCELED) return grpc::Status(grpc::StatusCode::CANCELLED, res.error().str());
      return error_status(res.error());
    }
    auto* e = r->mutable_result();
    e->set_exit_code(res->exit_code);
    e->set_signal(res->signal);
    e->set_oom_killed(res->oom_killed);
    r->set_err(res->err);
    return grpc::Status::OK;
  }

  grpc::Status StopTask(grpc::ServerContext*, const drv::StopTaskRequest* req, drv::StopTaskResponse*) override {
    int64_t timeout = req->has_timeout() ? duration_ms(req->timeout()) : 5000;
    if (auto r = s_.tasks.stop(req->task_id(), timeout, req->signal()); !r) return error_status(r.error());
    return grpc::Status::OK;
  }

  grpc::Status DestroyTask(grpc::ServerContext*, const drv::DestroyTaskRequest* req,
                           drv::DestroyTaskResponse*) override {
    if (auto r = s_.tasks.destroy(req->task_id(), req->force()); !r)
      return error_status(r.error(), r.error().code() == ENOENT ? grpc::StatusCode::NOT_FOUND
                                                                 : grpc::StatusCode::FAILED_PRECONDITION);
    log_info("destroyed task " + req->task_id());
    return grpc::Status::OK;
  }

  grpc::Status InspectTask(grpc::ServerContext*, const drv::InspectTaskRequest* req,
                           drv::InspectTaskResponse* r) override {
    auto s = s_.tasks.inspect(req->task_id());
    if (!s) return error_status(s.error());
    auto* t = r->mutable_task();
    t->set_id(s->id);
    t->set_name(s->name);
    t->set_state(s->running ? drv::RUNNING : drv::EXITED);
    set_time(t->mutable_started_at(), s->started_at_ns);
    set_time(t->mutable_completed_at(), s->completed_at_ns);
    auto* e = t->mutable_result();
    e->set_exit_code(s->result.exit_code);
    e->set_signal(s->result.signal);
    e->set_oom_killed(s->result.oom_killed);
    r->mutable_driver();
    return grpc::Status::OK;
  }

  grpc::Status TaskStats(grpc::ServerContext* ctx, const drv::TaskStatsRequest* req,
                         grpc::ServerWriter<drv::TaskStatsResponse>* w) override {
    int64_t interval = req->has_collection_interval() ? duration_ms(req->collection_interval()) : 1000;
    if (interval < 100) interval = 100;
    if (!s_.tasks.known(req->task_id()))
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "task not found for given id \"" + req->task_id() + "\"");
    uint64_t prev_usage = 0, prev_user = 0, prev_sys = 0;
    int64_t prev_t = 0;
    while (!ctx->IsCancelled() && !s_.stopping) {
      auto st = s_.tasks.stats(req->task_id());
      if (!st) break;  // exited or destroyed: the stream ends
      int64_t t = now_ns();
      drv::TaskStatsResponse resp;
      auto* stats = resp.mutable_stats();
      stats->set_id(req->task_id());
      set_time(stats->mutable_timestamp(), t);
      auto* u = stats->mutable_agg_resource_usage();
      auto* mem = u->mutable_memory();
      if (st->memory) {
        mem->set_rss(st->memory->anon);
        mem->set_cache(st->memory->file);
        mem->set_usage(st->memory->usage);
        mem->set_max_usage(st->memory->max_usage);
        mem->set_swap(st->memory->swap_usage);
        mem->set_kernel_usage(st->memory->kernel);
        for (auto f : {drv::MemoryUsage::RSS, drv::MemoryUsage::CACHE, drv::MemoryUsage::USAGE,
                       drv::MemoryUsage::MAX_USAGE, drv::MemoryUsage::SWAP, drv::MemoryUsage::KERNEL_USAGE})
          mem->add_measured_fields(f);
      }
      auto* cpu = u->mutable_cpu();
      if (st->cpu) {
        // Percent of one CPU over the last interval, as docker stats shows it.
        double wall_us = prev_t ? static_cast<double>(t - prev_t) / 1000.0 : 0;
        auto pct = [&](uint64_t now_v, uint64_t prev_v) {
          return wall_us > 0 && now_v >= prev_v ? static_cast<double>(now_v - prev_v) * 100.0 / wall_us : 0.0;
        };
        double total = pct(st->cpu->usage_usec, prev_usage);
        cpu->set_percent(total);
        cpu->set_user_mode(pct(st->cpu->user_usec, prev_user));
        cpu->set_system_mode(pct(st->cpu->system_usec, prev_sys));
        cpu->set_total_ticks(total / 100.0 * cpu_mhz());
        cpu->set_throttled_periods(st->cpu->nr_throttled);
        cpu->set_throttled_time(st->cpu->throttled_usec * 1000);
        for (auto f : {drv::CPUUsage::SYSTEM_MODE, drv::CPUUsage::USER_MODE, drv::CPUUsage::TOTAL_TICKS,
                       drv::CPUUsage::THROTTLED_PERIODS, drv::CPUUsage::THROTTLED_TIME, drv::CPUUsage::PERCENT})
          cpu->add_measured_fields(f);
        prev_usage = st->cpu->usage_usec;
        prev_user = st->cpu->user_usec;
        prev_sys = st->cpu->system_usec;
      }
      prev_t = t;
      if (!w->Write(resp)) break;
      for (int64_t slept = 0; slept < interval && !ctx->IsCancelled() && !s_.stopping; slept += 100)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return grpc::Status::OK;
  }

  grpc::Status TaskEvents(grpc::ServerContext* ctx, const drv::TaskEventsRequest*,
                          grpc::ServerWriter<drv::DriverTaskEvent>* w) override {
    size_t seen = s_.events.size();
    while (!ctx->IsCancelled() && !s_.stopping) {
      for (auto& e : s_.events.next(seen))
        if (!w->Write(e)) return grpc::Status::OK;
    }
    return grpc::Status::OK;
  }

  grpc::Status SignalTask(grpc::ServerContext*, const drv::SignalTaskRequest* req, drv::SignalTaskResponse*) override {
    if (auto r = s_.tasks.signal(req->task_id(), req->signal()); !r) return error_status(r.error());
    return grpc::Status::OK;
  }

  grpc::Status ExecTask(grpc::ServerContext*, const drv::ExecTaskRequest* req, drv::ExecTaskResponse* r) override {
    std::vector<std::string> argv(req->command().begin(), req->command().end());
    int64_t timeout = req->has_timeout() ? duration_ms(req->timeout()) : 0;
    auto res = s_.tasks.exec(req->task_id(), argv, timeout);
    if (!res) return error_status(res.error());
    r->set_stdout(res->out);
    r->set_stderr(res->err);
    r->mutable_result()->set_exit_code(res->exit_code);
    return grpc::Status::OK;
  }

  grpc::Status ExecTaskStreaming(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<drv::ExecTaskStreamingResponse, drv::ExecTaskStreamingRequest>* stream) override;

  grpc::Status CreateNetwork(grpc::ServerContext*, const drv::CreateNetworkRequest*,
                             drv::CreateNetworkResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "husk does not create networks (must_create_network is false)");
  }
  grpc::Status DestroyNetwork(grpc::ServerContext*, const drv::DestroyNetworkRequest*,
                              drv::DestroyNetworkResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "husk does not create networks (must_create_network is false)");
  }

 private:
  void event(const TaskSpec& task, const std::string& message) { event(task.id, task.alloc_id, task.name, message, {}); }
  void event(const std::string& task_id, const std::string& alloc_id, const std::string& task_name,
             const std::string& message, const std::map<std::string, std::string>& annotations) {
    drv::DriverTaskEvent e;
    e.set_task_id(task_id);
    e.set_alloc_id(alloc_id);
    e.set_task_name(task_name);
    set_time(e.mutable_timestamp(), now_ns());
    e.set_message(message);
    for (const auto& [k, v] : annotations) (*e.mutable_annotations())[k] = v;
    s_.events.publish(std::move(e));
  }

  static double cpu_mhz() {
    static double mhz = [] {
      auto text = read_file("/proc/cpuinfo").value_or("");
      size_t pos = text.find("cpu MHz");
      if (pos == std::string::npos) return 1000.0;
      pos = text.find(':', pos);
      return pos == std::string::npos ? 1000.0 : atof(text.c_str() + pos + 1);
    }();
    return mhz;
  }

  drv::FingerprintResponse fingerprint() {
    drv::FingerprintResponse f;
    std::string name = s_.flavor->name();
    auto& attrs = *f.mutable_attributes();
    std::string husk = husk_binary();
    bool have_husk = access(husk.c_str(), X_OK) == 0;
    std::string cg_mount = cgroups::detect_mount_point();
    bool have_cgroup2 = !cg_mount.empty();
    // Nomad always asks for cpu and memory: without their controllers (a
    // hybrid host's cgroup2 tree) every task would fail to start.
    std::string missing;
    if (have_cgroup2) {
      std::string offered = " " + read_file(cg_mount + "/cgroup.controllers").value_or("") + " ";
      for (auto& c : offered)
        if (c == '\n') c = ' ';
      for (const char* c : {"cpu", "memory", "pids"})
        if (offered.find(std::string(" ") + c + " ") == std::string::npos) missing += std::string(missing.empty() ? "" : ", ") + c;
    }
    if (!have_husk) {
      f.set_health(drv::FingerprintResponse::UNHEALTHY);
      f.set_health_description("the husk binary is not found (" + husk + "); set HUSK_BINARY");
    } else if (geteuid() != 0) {
      f.set_health(drv::FingerprintResponse::UNHEALTHY);
      f.set_health_description("nomad-driver-husk runs tasks as root only (for now)");
    } else if (!have_cgroup2) {
      f.set_health(drv::FingerprintResponse::UNHEALTHY);
      f.set_health_description("no cgroup2 hierarchy is mounted");
    } else if (!missing.empty()) {
      f.set_health(drv::FingerprintResponse::UNHEALTHY);
      f.set_health_description("the cgroup2 hierarchy at " + cg_mount + " offers no " + missing +
                               " controller (a hybrid cgroup host?): task resources cannot be enforced");
    } else {
      f.set_health(drv::FingerprintResponse::HEALTHY);
      f.set_health_description("Healthy");
    }
    {
      std::shared_lock<std::shared_mutex> l(s_.config_mu);
      if (!s_.flavor->enabled()) {
        // As nomad-driver-nspawn with enabled = false: undetected, no attributes.
        f.set_health(drv::FingerprintResponse::UNDETECTED);
        f.set_health_description("disabled");
        f.clear_attributes();
        return f;
      }
    }
    attrs["driver." + name].set_bool_val(true);
    attrs["driver." + name + ".version"].set_string_val(s_.opts.version);
    attrs["driver." + name + ".runtime"].set_string_val("husk");
    attrs["driver." + name + ".cgroupVersion"].set_string_val(have_cgroup2 ? "v2" : "none");
    std::shared_lock<std::shared_mutex> l(s_.config_mu);
    for (const auto& [k, v] : s_.flavor->attributes()) attrs["driver." + name + "." + k].set_string_val(v);
    return f;
  }

  Shared& s_;
};

grpc::Status DriverService::ExecTaskStreaming(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<drv::ExecTaskStreamingResponse, drv::ExecTaskStreamingRequest>* stream) {
  return exec_streaming(s_.tasks, ctx, stream);
}

class ControllerService final : public plugin::GRPCController::Service {
 public:
  explicit ControllerService(Shared& s) : s_(s) {}
  grpc::Status Shutdown(grpc::ServerContext*, const plugin::Empty*, plugin::Empty*) override {
    log_info("shutdown requested");
    uint64_t one = 1;
    (void)!write(s_.shutdown_fd, &one, sizeof one);
    return grpc::Status::OK;
  }

 private:
  Shared& s_;
};

// go-plugin clients open these right after connecting. Our stdout/stderr
// are not redirected into them (stderr goes to the agent directly), so the
// streams stay open and idle until the call ends.
class StdioService final : public plugin::GRPCStdio::Service {
 public:
  explicit StdioService(Shared& s) : s_(s) {}
  grpc::Status StreamStdio(grpc::ServerContext* ctx, const google::protobuf::Empty*,
                           grpc::ServerWriter<plugin::StdioData>*) override {
    while (!ctx->IsCancelled() && !s_.stopping) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return grpc::Status::OK;
  }

 private:
  Shared& s_;
};

class BrokerService final : public plugin::GRPCBroker::Service {
 public:
  grpc::Status StartStream(grpc::ServerContext*,
                           grpc::ServerReaderWriter<plugin::ConnInfo, plugin::ConnInfo>* stream) override {
    plugin::ConnInfo info;
    while (stream->Read(&info)) {
      // Nomad drivers never broker connections.
    }
    return grpc::Status::OK;
  }
};

// The flavor's dangling-container reaper, if its options ask for one: the
// first pass one period after the plugin starts, so that Nomad has
// recovered the tasks it knows before any container counts as dangling.
void reap_dangling_loop(Shared& s) {
  int64_t next = 0;
  while (!s.stopping) {
    std::optional<DanglingReaper> policy;
    {
      std::shared_lock<std::shared_mutex> l(s.config_mu);
      if (s.configured) policy = s.flavor->dangling_reaper();
    }
    int64_t now = now_ns();
    if (!policy || policy->period_ns <= 0) {
      next = 0;
    } else if (next == 0) {
      next = now + policy->period_ns;
    } else if (now >= next) {
      auto r = s.tasks.reap_dangling(policy->label, policy->creation_grace_ns, policy->dry_run, now);
      if (!r) log_error("dangling container reaper: " + r.error().str());
      next = now + policy->period_ns;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// The flavor's image GC, once a minute: images of the store unused for
// the delay that no task holds (image::Store::gc).
void image_gc_loop(Shared& s) {
  int64_t next = now_ns() + 60'000'000'000;
  while (!s.stopping) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (now_ns() < next) continue;
    next = now_ns() + 60'000'000'000;
    std::optional<ImageGc> gc;
    {
      std::shared_lock<std::shared_mutex> l(s.config_mu);
      if (s.configured) gc = s.flavor->image_gc();
    }
    if (!gc) continue;
    if (geteuid() != 0) {
      // A rootless store removes its layers in its user namespace, a fork
      // this threaded process leaves to husk-image.
      auto r = run_captured(
          {husk_image_binary(), "prune", "--root", gc->store_root, "--unused-for", cat(gc->delay_ns / 1'000'000'000)},
          {}, 600000);
      if (!r)
        log_error("image gc: " + r.error().str());
      else if (r->timed_out || !WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
        log_error("image gc: husk-image prune: " + (r->timed_out ? std::string("timed out") : r->err));
      continue;
    }
    auto store = image::Store::open(gc->store_root);
    if (!store) {
      log_error("image gc: " + store.error().str());
      continue;
    }
    auto r = store->gc(gc->delay_ns / 1'000'000'000);
    if (!r) log_error("image gc: " + r.error().str());
  }
}

}  // namespace

int serve(std::unique_ptr<Flavor> flavor, const PluginOptions& options) {
  Shared s(std::move(flavor), options);
  int efd = eventfd(0, EFD_CLOEXEC);
  if (efd < 0) {
    log_error(std::string("eventfd: ") + strerror(errno));
    return 1;
  }
  s.shutdown_fd = efd;
  // Signals are taken by the main thread only (signalfd); gRPC's threads
  // inherit the blocked mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

  BaseService base_service(s);
  DriverService driver_service(s);
  ControllerService controller(s);
  StdioService stdio(s);
  BrokerService broker;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + options.socket_path, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(INT32_MAX);
  builder.SetMaxSendMessageSize(INT32_MAX);
  builder.RegisterService(&base_service);
  builder.RegisterService(&driver_service);
  builder.RegisterService(&controller);
  builder.RegisterService(&stdio);
  builder.RegisterService(&broker);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    log_error("cannot listen on unix socket " + options.socket_path);
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("plugin", true);
  std::thread(reap_dangling_loop, std::ref(s)).detach();
  std::thread(image_gc_loop, std::ref(s)).detach();
  printf("1|2|unix|%s|grpc|\n", options.socket_path.c_str());
  fflush(stdout);

  struct pollfd fds[2] = {{efd, POLLIN, 0}, {sfd, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  s.stopping = true;
  // go-plugin SIGKILLs a plugin that has not exited 2 s after Shutdown, and
  // a graceful server shutdown waits for every open stream: give the reply
  // to Shutdown a moment to leave, then go. Tasks do not depend on us.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  unlink(options.socket_path.c_str());
  rmdir(options.socket_path.substr(0, options.socket_path.rfind('/')).c_str());
  fflush(stderr);
  // Task waiter threads may still block in waitpid: the tasks live on
  // without us, so leave without joining them.
  _exit(0);
}

}  // namespace husk::driver
