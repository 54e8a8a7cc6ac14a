// driver-probe: a test client that plays the parts of Nomad's client the
// harness does not (tty exec, arbitrary task configs, exec in a running
// task): it starts a driver plugin binary like Nomad does, then reads JSON
// commands one a line on stdin and answers each with one JSON line:
//   {"op":"start","id":ID,"config":{...},"env":{...},"user":U,"memory_mb":N,"cpu_shares":N,"dir":ALLOCDIR,"alloc":ALLOCID}
//   {"op":"exec","id":ID,"cmd":[...],"tty":B,"stdin":S,"close":B,"rows":R,"cols":C,"timeout":SECONDS}
//   {"op":"stop","id":ID}   StopTask(5 s), WaitTask, DestroyTask(force)
//   {"op":"wait","id":ID,"timeout":SECONDS}  WaitTask alone: {"ok":true,
//                            "exit_code":N,"signal":N,"oom_killed":B}
//   {"op":"stats","id":ID}  the first TaskStats message: {"ok":true,"memory":
//                            {"rss":N,"usage":N,"max_usage":N,"fields":[...]},
//                            "cpu":{"total_ticks":N,"fields":[...]}}
//   {"op":"events","id":ID}  the task events of ID received so far (TaskEvents,
//                            streamed from SetConfig on): {"ok":true,"events":
//                            [{"message":M,"annotations":{...}},...]}
// $PROBE_PLUGIN_CONFIG is the plugin config as JSON (default {}); the
// first answer line is SetConfig's.
// Answers: {"ok":true,...} or {"ok":false,"error":"..."}. Task configs are
// given as JSON and encoded as cty msgpack with the flavor's own schema.
// The flavor (its schemas) follows the plugin's name: nomad-driver-docker is
// the docker flavor, nomad-driver-nspawn nspawn, nomad-driver-podman podman.
// usage: driver-probe PLUGIN [PLUGIN-ARG...]
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <mutex>
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "base.grpc.pb.h"
#include "driver.grpc.pb.h"
#include "driver/flavor.h"
#include "driver/value.h"
#include "oci/json_reader.h"
#include "oci/json_writer.h"

namespace {

using namespace husk;
using namespace husk::driver;
namespace drv = hashicorp::nomad::plugins::drivers::proto;
namespace base = hashicorp::nomad::plugins::base::proto;

Value value_of(yajl_val v) {
  if (!v || YAJL_IS_NULL(v)) return Value();
  if (YAJL_IS_TRUE(v)) return Value::boolean(true);
  if (YAJL_IS_FALSE(v)) return Value::boolean(false);
  if (YAJL_IS_INTEGER(v)) return Value::integer(YAJL_GET_INTEGER(v));
  if (YAJL_IS_NUMBER(v)) return Value::number(YAJL_GET_DOUBLE(v));
  if (YAJL_IS_STRING(v)) return Value::string(YAJL_GET_STRING(v));
  if (YAJL_IS_ARRAY(v)) {
    std::vector<Value> items;
    for (size_t i = 0; i < v->u.array.len; ++i) items.push_back(value_of(v->u.array.values[i]));
    return Value::array(std::move(items));
  }
  std::vector<std::pair<std::string, Value>> entries;
  for (size_t i = 0; i < v->u.object.len; ++i) entries.emplace_back(v->u.object.keys[i], value_of(v->u.object.values[i]));
  return Value::map(std::move(entries));
}

std::string str(const oci::J& j, const char* key, std::string fallback = "") {
  auto m = j[key];
  return m.present() && YAJL_IS_STRING(m.v) ? YAJL_GET_STRING(m.v) : fallback;
}
int64_t num(const oci::J& j, const char* key, int64_t fallback = 0) {
  auto m = j[key];
  return m.present() && YAJL_IS_INTEGER(m.v) ? YAJL_GET_INTEGER(m.v) : fallback;
}
bool flag(const oci::J& j, const char* key) { return j[key].present() && YAJL_IS_TRUE(j[key].v); }

std::string fail_line(const std::string& e) { return "{\"ok\":false,\"error\":" + oci::json_quote(e) + "}"; }

class Probe {
 public:
  Probe(std::shared_ptr<grpc::Channel> ch, std::unique_ptr<Flavor> f)
      : driver_(drv::Driver::NewStub(ch)), base_(base::BasePlugin::NewStub(ch)), flavor_(std::move(f)) {}

  // The agent's `plugin { config {} }` body, as JSON ("{}" when none).
  std::string set_config(const std::string& json) {
    auto doc = oci::JsonDoc::parse(json);
    if (!doc) return doc.error().str();
    grpc::ClientContext ctx;
    base::SetConfigRequest req;
    base::SetConfigResponse resp;
    Spec schema = flavor_->plugin_schema();
    Value cfg = value_of(doc->root().v);
    req.set_msgpack_config(encode_msgpack(cfg.is_null() ? Value::map({}) : cfg, *schema));
    req.set_plugin_api_version("0.1.0");
    auto st = base_->SetConfig(&ctx, req, &resp);
    return st.ok() ? "" : st.error_message();
  }

  std::string start(const oci::J& j) {
    drv::TaskConfig t;
    std::string id = str(j, "id");
    t.set_id(id);
    t.set_name(str(j, "name", "probe"));
    t.set_alloc_id(str(j, "alloc", "probe-alloc"));
    t.set_job_name("probe-job");
    t.set_task_group_name("probe-group");
    t.set_user(str(j, "user"));
    std::string dir = str(j, "dir");
    t.set_alloc_dir(dir);
    std::string log = id;  // Nomad-style ids have slashes: one file in the alloc dir
    std::replace(log.begin(), log.end(), '/', '_');
    t.set_stdout_path(dir + "/" + log + ".stdout");
    t.set_stderr_path(dir + "/" + log + ".stderr");
    // What Nomad's client makes before StartTask: the shared alloc dir, the
    // task's local and secrets dirs, the log files (FIFOs there).
    std::string task_dir = dir + "/" + t.name();
    for (const auto& d : {dir + "/alloc", task_dir, task_dir + "/local", task_dir + "/secrets"}) mkdir(d.c_str(), 0755);
    for (const auto& p : {t.stdout_path(), t.stderr_path()}) close(open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    for (const auto& k : j["env"].keys()) (*t.mutable_env())[k] = str(j["env"], k.c_str());
    int64_t mb = num(j, "memory_mb", 128);
    auto* r = t.mutable_resources();
    r->mutable_allocated_resources()->mutable_memory()->set_memory_mb(mb);
    r->mutable_allocated_resources()->mutable_memory()->set_memory_max_mb(num(j, "memory_max_mb", 0));
    // "cpu_shares": 0 asks for none (a host without the cpu controller).
    int64_t shares = num(j, "cpu_shares", 100);
    r->mutable_allocated_resources()->mutable_cpu()->set_cpu_shares(shares);
    r->mutable_linux_resources()->set_cpu_shares(shares);
    r->mutable_linux_resources()->set_memory_limit_bytes(mb << 20);
    Spec schema = flavor_->task_schema();
    t.set_msgpack_driver_config(encode_msgpack(value_of(j["config"].v), *schema));
    grpc::ClientContext ctx;
    drv::StartTaskRequest req;
    *req.mutable_task() = t;
    drv::StartTaskResponse resp;
    auto st = driver_->StartTask(&ctx, req, &resp);
    if (!st.ok()) return fail_line(st.error_message());
    if (!resp.has_network_override()) return "{\"ok\":true}";
    // The DriverNetwork Nomad would get.
    const auto& n = resp.network_override();
    std::string ports;
    for (const auto& [label, port] : n.port_map())
      ports += (ports.empty() ? "" : ",") + oci::json_quote(label) + ":" + std::to_string(port);
    return "{\"ok\":true,\"network\":{\"addr\":" + oci::json_quote(n.addr()) + ",\"auto_advertise\":" +
           (n.auto_advertise() ? "true" : "false") + ",\"port_map\":{" + ports + "}}}";
  }

  // Nomad's client reads TaskEvents all along; so does the probe, from
  // SetConfig until quit.
  void watch_events() {
    events_thread_ = std::thread([this] {
      drv::TaskEventsRequest req;
      auto reader = driver_->TaskEvents(&events_ctx_, req);
      drv::DriverTaskEvent e;
      while (reader->Read(&e)) {
        std::lock_guard g(events_mu_);
        events_.push_back(e);
      }
      (void)reader->Finish();
    });
  }
  void stop_events() {
    events_ctx_.TryCancel();
    if (events_thread_.joinable()) events_thread_.join();
  }

  std::string events(const oci::J& j) {
    std::string id = str(j, "id"), out = "{\"ok\":true,\"events\":[";
    std::lock_guard g(events_mu_);
    bool first = true;
    for (const auto& e : events_) {
      if (e.task_id() != id) continue;
      out += first ? "" : ",";
      first = false;
      out += "{\"message\":" + oci::json_quote(e.message()) + ",\"annotations\":{";
      bool a1 = true;
      for (const auto& [k, v] : e.annotations()) {
        out += (a1 ? "" : ",") + oci::json_quote(k) + ":" + oci::json_quote(v);
        a1 = false;
      }
      out += "}}";
    }
    return out + "]}";
  }

  std::string exec(const oci::J& j) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(num(j, "timeout", 120)));
    auto stream = driver_->ExecTaskStreaming(&ctx);
    drv::ExecTaskStreamingRequest setup;
    setup.mutable_setup()->set_task_id(str(j, "id"));
    auto cmd = j["cmd"];
    for (size_t i = 0; i < cmd.size(); ++i) setup.mutable_setup()->add_command(YAJL_GET_STRING(cmd.at(i).v));
    setup.mutable_setup()->set_tty(flag(j, "tty"));
    stream->Write(setup);
    if (num(j, "rows") > 0) {
      drv::ExecTaskStreamingRequest size;
      size.mutable_tty_size()->set_height(static_cast<int32_t>(num(j, "rows")));
      size.mutable_tty_size()->set_width(static_cast<int32_t>(num(j, "cols")));
      stream->Write(size);
    }
    if (!str(j, "stdin").empty()) {
      drv::ExecTaskStreamingRequest in;
      in.mutable_stdin()->set_data(str(j, "stdin"));
      stream->Write(in);
    }
    if (flag(j, "close")) {
      drv::ExecTaskStreamingRequest in;
      in.mutable_stdin()->set_close(true);
      stream->Write(in);
    }
    std::string out, err;
    int code = -1;
    bool exited = false;
    drv::ExecTaskStreamingResponse resp;
    while (stream->Read(&resp)) {
      out += resp.stdout().data();
      err += resp.stderr().data();
      if (resp.exited()) {
        exited = true;
        code = resp.result().exit_code();
        break;
      }
    }
    stream->WritesDone();
    auto st = stream->Finish();
    if (!st.ok()) return fail_line(st.error_message() + " (stderr: " + err + ")");
    if (!exited) return fail_line("the stream ended without an exit message");
    return "{\"ok\":true,\"stdout\":" + oci::json_quote(out) + ",\"stderr\":" + oci::json_quote(err) +
           ",\"exit_code\":" + std::to_string(code) + "}";
  }

  std::string wait(const oci::J& j) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(num(j, "timeout", 60)));
    drv::WaitTaskRequest req;
    drv::WaitTaskResponse resp;
    req.set_task_id(str(j, "id"));
    auto st = driver_->WaitTask(&ctx, req, &resp);
    if (!st.ok()) return fail_line("WaitTask: " + st.error_message());
    if (!resp.err().empty()) return fail_line("WaitTask: " + resp.err());
    const auto& r = resp.result();
    return "{\"ok\":true,\"exit_code\":" + std::to_string(r.exit_code()) + ",\"signal\":" +
           std::to_string(r.signal()) + ",\"oom_killed\":" + (r.oom_killed() ? "true" : "false") + "}";
  }

  std::string stats(const oci::J& j) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    drv::TaskStatsRequest req;
    req.set_task_id(str(j, "id"));
    req.mutable_collection_interval()->set_seconds(1);
    auto reader = driver_->TaskStats(&ctx, req);
    drv::TaskStatsResponse resp;
    if (!reader->Read(&resp)) {
      auto st = reader->Finish();
      return fail_line("TaskStats: " + (st.ok() ? std::string("no stats") : st.error_message()));
    }
    ctx.TryCancel();
    (void)reader->Finish();
    const auto& u = resp.stats().agg_resource_usage();
    auto fields = [](const auto& list) {
      std::string out = "[";
      for (int i = 0; i < list.size(); i++) out += (i ? "," : "") + std::to_string(list.Get(i));
      return out + "]";
    };
    return "{\"ok\":true,\"memory\":{\"rss\":" + std::to_string(u.memory().rss()) + ",\"usage\":" +
           std::to_string(u.memory().usage()) + ",\"max_usage\":" + std::to_string(u.memory().max_usage()) +
           ",\"fields\":" + fields(u.memory().measured_fields()) + "},\"cpu\":{\"total_ticks\":" +
           std::to_string(u.cpu().total_ticks()) + ",\"fields\":" + fields(u.cpu().measured_fields()) + "}}";
  }

  std::string stop(const oci::J& j) {
    std::string id = str(j, "id");
    {
      grpc::ClientContext ctx;
      drv::StopTaskRequest req;
      drv::StopTaskResponse resp;
      req.set_task_id(id);
      req.mutable_timeout()->set_seconds(5);
      auto st = driver_->StopTask(&ctx, req, &resp);
      if (!st.ok()) return fail_line("StopTask: " + st.error_message());
    }
    int code = -1;
    {
      grpc::ClientContext ctx;
      drv::WaitTaskRequest req;
      drv::WaitTaskResponse resp;
      req.set_task_id(id);
      auto st = driver_->WaitTask(&ctx, req, &resp);
      if (!st.ok()) return fail_line("WaitTask: " + st.error_message());
      code = resp.result().exit_code();
    }
    grpc::ClientContext ctx;
    drv::DestroyTaskRequest req;
    drv::DestroyTaskResponse resp;
    req.set_task_id(id);
    req.set_force(true);
    auto st = driver_->DestroyTask(&ctx, req, &resp);
    if (!st.ok()) return fail_line("DestroyTask: " + st.error_message());
    return "{\"ok\":true,\"exit_code\":" + std::to_string(code) + "}";
  }

 private:
  std::unique_ptr<drv::Driver::Stub> driver_;
  std::unique_ptr<base::BasePlugin::Stub> base_;
  std::unique_ptr<Flavor> flavor_;
  grpc::ClientContext events_ctx_;
  std::thread events_thread_;
  std::mutex events_mu_;
  std::vector<drv::DriverTaskEvent> events_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fputs("usage: driver-probe PLUGIN [PLUGIN-ARG...]\n", stderr);
    return 2;
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return 1;
  pid_t plugin = fork();
  if (plugin == 0) {
    dup2(out[1], 1);
    setenv("NOMAD_PLUGIN_MAGIC_COOKIE", "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255", 1);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  close(out[1]);
  // The handshake line: 1|2|unix|PATH|grpc|
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  std::vector<std::string> parts;
  for (size_t at = 0;;) {
    size_t bar = line.find('|', at);
    parts.push_back(line.substr(at, bar - at));
    if (bar == std::string::npos) break;
    at = bar + 1;
  }
  if (parts.size() < 5 || parts[2] != "unix") {
    fprintf(stderr, "driver-probe: bad handshake line \"%s\"\n", line.c_str());
    kill(plugin, SIGKILL);
    waitpid(plugin, nullptr, 0);
    return 1;
  }
  // The flavor the plugin serves, from its name as the plugin reads it
  // (nomad-driver-NAME; any other name is the native husk flavor).
  std::string base_name = argv[1];
  base_name = base_name.substr(base_name.rfind('/') + 1);
  const std::string prefix = "nomad-driver-";
  std::string flavor_name = base_name.starts_with(prefix) ? base_name.substr(prefix.size()) : "husk";
  std::unique_ptr<Flavor> flavor = make_flavor(flavor_name);
  if (!flavor) {
    fprintf(stderr, "driver-probe: no flavor \"%s\" (from the plugin's name %s)\n", flavor_name.c_str(),
            base_name.c_str());
    kill(plugin, SIGKILL);
    waitpid(plugin, nullptr, 0);
    return 2;
  }
  Probe probe(grpc::CreateChannel("unix:" + parts[3], grpc::InsecureChannelCredentials()), std::move(flavor));
  const char* plugin_config = getenv("PROBE_PLUGIN_CONFIG");
  std::string err = probe.set_config(plugin_config && *plugin_config ? plugin_config : "{}");
  if (err.empty()) probe.watch_events();
  std::cout << (err.empty() ? "{\"ok\":true}" : fail_line("SetConfig: " + err)) << std::endl;
  while (std::getline(std::cin, line)) {
    auto doc = oci::JsonDoc::parse(line);
    if (!doc) {
      std::cout << fail_line(doc.error().str()) << std::endl;
      continue;
    }
    oci::J j = doc->root();
    std::string op = str(j, "op");
    if (op == "quit") break;
    if (op == "start") std::cout << probe.start(j) << std::endl;
    else if (op == "exec") std::cout << probe.exec(j) << std::endl;
    else if (op == "stop") std::cout << probe.stop(j) << std::endl;
    else if (op == "events") std::cout << probe.events(j) << std::endl;
    else if (op == "wait") std::cout << probe.wait(j) << std::endl;
    else if (op == "stats") std::cout << probe.stats(j) << std::endl;
    else std::cout << fail_line("unknown op \"" + op + "\"") << std::endl;
  }
  probe.stop_events();
  // As Nomad's client does on shutdown: the plugin gets SIGTERM... then KILL.
  kill(plugin, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (waitpid(plugin, nullptr, WNOHANG) == plugin) return 0;
    usleep(100000);
  }
  kill(plugin, SIGKILL);
  waitpid(plugin, nullptr, 0);
  return 0;
}
