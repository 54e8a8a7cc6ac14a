// The gcplogs log driver: each line as a Google Cloud Logging entry in
// docker's gcplogs shape (a jsonPayload with the instance, the container
// and the message), written in batches to the log "gcplogs-docker-driver"
// with entries:write, authorized with Google's application default
// credentials.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/log_sink.h"

namespace husk::logs {

// Options (--log-opt KEY=VALUE, docker's gcp-KEY without "gcp-"):
// project (else the GCE metadata server's project; required off GCE),
// log-cmd (default false: the container's command in the entries),
// meta-zone, meta-name, meta-id (the instance, off GCE; on GCE the
// metadata server's), name, id, image-name, image-id, created, command
// (the container's, as the driver knows them), field=NAME=VALUE
// (repeatable: the container's metadata, docker's labels and env).
// Credentials, as Google's libraries find them: the JSON file named by
// GOOGLE_APPLICATION_CREDENTIALS (a service_account key, signed into a
// token request at its token_uri, or an authorized_user's refresh token),
// else gcloud's application_default_credentials.json
// ($CLOUDSDK_CONFIG, else ~/.config/gcloud), else the GCE metadata
// server's service account. The metadata server is GCE_METADATA_HOST, else
// 169.254.169.254 when /sys/class/dmi/id/product_name says Google. Entries
// go every second or at 1000 lines, as docker's; a "ping" entry is
// written before the container starts, as docker does, so a refused
// credential or project fails the container's start.
Result<std::unique_ptr<runtime::LogSink>> open_gcplogs(const std::vector<std::string>& opts,
                                                       const std::string& container_id);

// One entry's jsonPayload as docker's gcplogs driver writes it, for tests.
struct GcpPayloadShape {
  std::optional<std::map<std::string, std::string>> instance;  // zone, name, id ("" left out)
  std::string name, id, image_name, image_id, created, command;
  std::map<std::string, std::string> metadata;
};
std::string gcp_payload(const GcpPayloadShape& s, std::string_view message);

// base64url without padding, as JWTs are written.
std::string base64url(std::string_view in);

}  // namespace husk::logs
