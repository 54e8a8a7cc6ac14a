// Reading a certs.d directory: CA files into one PEM bundle for curl, and
// the first client certificate/key pair.
#include "image/certs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/fd.h"

namespace husk::image {

namespace {

// Debian's bundle (ca-certificates); curl's own default on this system.
constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::vector<std::string>> names_in(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return fail_sys("open directory ", dir);
  while (dirent* e = readdir(d)) out.emplace_back(e->d_name);
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Result<RegistryTls> registry_tls(const std::string& host, const std::string& cert_dir, const std::string& home) {
  std::vector<std::string> dirs;
  if (!cert_dir.empty()) {
    if (!is_dir(cert_dir)) return fail_msg("certificate directory ", cert_dir, ": not a directory");
    dirs.push_back(cert_dir);
  } else {
    if (!home.empty()) dirs.push_back(home + "/.config/containers/certs.d/" + host);
    dirs.push_back("/etc/containers/certs.d/" + host);
    dirs.push_back("/etc/docker/certs.d/" + host);
  }
  RegistryTls tls;
  std::string extra;
  for (const std::string& dir : dirs) {
    if (!is_dir(dir)) continue;
    std::vector<std::string> names = TRY(names_in(dir));
    for (const std::string& n : names) {
      std::string path = dir + "/" + n;
      if (n.ends_with(".crt")) {
        std::string pem = TRY_CTX(read_file(path), "CA certificate");
        if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
          return fail_msg("CA certificate ", path, ": no PEM certificate in it");
        extra += pem;
        if (!pem.ends_with('\n')) extra += '\n';
        tls.ca_files.push_back(path);
      } else if (n.ends_with(".cert") && tls.client_cert.empty()) {
        std::string key = dir + "/" + n.substr(0, n.size() - 5) + ".key";
        struct stat st;
        if (stat(key.c_str(), &st) < 0) return fail_msg("client certificate ", path, ": no matching key ", key);
        tls.client_cert = path;
        tls.client_key = key;
      }
    }
  }
  if (!extra.empty()) {
    // curl takes one bundle: the system's CAs stay trusted.
    if (auto sys = read_file(kSystemBundle)) tls.ca_pem = *sys + "\n";
    tls.ca_pem += extra;
  }
  return tls;
}

}  // namespace husk::image
