// The go-plugin gRPC server of nomad-driver-husk: BasePlugin, Driver,
// GRPCController, GRPCStdio and GRPCBroker (and the health service), one
// flavor behind them. Translates the wire messages to TaskSpec / TaskManager
// calls; everything about containers lives in tasks.cc and the flavors.
#pragma once

#include <memory>
#include <string>

#include "driver/flavor.h"

namespace husk::driver {

struct PluginOptions {
  std::string socket_path;  // where to listen
  std::string state_dir;    // task and container state
  std::string version;      // plugin_version (semver)
  bool systemd_cgroups = false;  // --cgroup-manager systemd
};

// Serves until GRPCController.Shutdown or SIGTERM/SIGINT; prints the
// go-plugin handshake line to stdout once listening. Returns the exit status.
int serve(std::unique_ptr<Flavor> flavor, const PluginOptions& options);

}  // namespace husk::driver
