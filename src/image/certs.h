// Extra TLS trust for a registry, where podman and docker look for it: a
// directory per registry host, /etc/containers/certs.d/HOST[:PORT]/ and
// /etc/docker/certs.d/HOST[:PORT]/ (and, as a user,
// ~/.config/containers/certs.d/HOST/), or one directory given instead
// (husk-image --cert-dir, podman's --cert-dir). In it, *.crt files are CA
// certificates trusted in addition to the system's, and a NAME.cert with
// its NAME.key is a client certificate.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace husk::image {

struct RegistryTls {
  std::string ca_pem;                   // the system bundle followed by the extra CAs; empty: none extra
  std::vector<std::string> ca_files;    // the extra CAs' paths, for messages
  std::string client_cert, client_key;  // paths; empty: none
};

// `cert_dir` non-empty: only that directory. Otherwise the per-host ones
// under `home` (empty: none) and /etc. Missing directories are fine.
Result<RegistryTls> registry_tls(const std::string& host, const std::string& cert_dir, const std::string& home);

}  // namespace husk::image
