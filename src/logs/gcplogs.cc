#include "logs/gcplogs.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/duration.h"
#include "common/text.h"
#include "logs/http.h"
#include "oci/json_reader.h"
#include "oci/json_writer.h"
#include "runtime/log.h"

namespace husk::logs {
namespace {

using runtime::LogStream;

// The Go client's bundler, which docker's driver uses: a batch goes after
// a second or at 1000 entries; 8 MiB of entries at most in one request.
constexpr long long kBatchDelayMs = 1000;
constexpr size_t kMaxBatchEntries = 1000;
constexpr size_t kMaxBatchBytes = 8 << 20;
constexpr long kRequestTimeoutMs = 30000;
constexpr long kMetadataTimeoutMs = 3000;
// A token is fetched again this long before it expires.
constexpr int64_t kTokenEarlySeconds = 60;

constexpr const char* kLogName = "gcplogs-docker-driver";
constexpr const char* kWriteUrl = "https://logging.googleapis.com/v2/entries:write";
constexpr const char* kWriteScope = "https://www.googleapis.com/auth/logging.write";
constexpr const char* kDefaultTokenUri = "https://oauth2.googleapis.com/token";

std::string env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

// application/x-www-form-urlencoded
std::string form_escape(std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Google's JSON error {"error": {"message": ...}} or OAuth's
// {"error": "...", "error_description": "..."}, else the body.
std::string google_error(const HttpResponse& r) {
  if (auto doc = oci::JsonDoc::parse(r.body)) {
    oci::J root = doc->root();
    if (auto m = oci::opt_string(root["error"]["message"]); m && *m) return cat(r.status, ": ", **m);
    if (auto e = oci::opt_string(root["error"]); e && *e) {
      auto d = oci::opt_string(root["error_description"]);
      return cat(r.status, ": ", **e, d && *d ? ": " + **d : "");
    }
  }
  return cat(r.status, " ", one_line(r.body));
}

// ---- the GCE metadata server ----------------------------------------------------------------------

// GCE_METADATA_HOST, else the link-local server when the machine says it
// is Google's; "" off GCE.
std::string metadata_host() {
  if (std::string h = env("GCE_METADATA_HOST"); !h.empty()) return h;
  std::ifstream in("/sys/class/dmi/id/product_name");
  std::string product;
  std::getline(in, product);
  return product.starts_with("Google") ? "169.254.169.254" : "";
}

Result<std::string> metadata_get(HttpClient& http, const std::string& host, const std::string& path) {
  std::string url = cat("http://", host, "/computeMetadata/v1/", path);
  auto r = TRY_CTX(http.request("GET", url, {"Metadata-Flavor: Google"}, ""), "the GCE metadata server");
  if (r.status != 200) return fail_msg("the GCE metadata server: ", url, " answered ", google_error(r));
  return rtrim(r.body);
}

// ---- credentials ----------------------------------------------------------------------------------

struct Credentials {
  enum class Kind { kServiceAccount, kAuthorizedUser, kMetadata } kind = Kind::kMetadata;
  std::string source;  // the file, or the metadata server
  std::string client_email, private_key, private_key_id, token_uri;
  std::string client_id, client_secret, refresh_token;
  std::string metadata_host;
};

Result<Credentials> read_credentials_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail_errno(errno, "log driver gcplogs: open the credentials file ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string what = cat("log driver gcplogs: the credentials file ", path);
  auto doc = oci::JsonDoc::parse(ss.str());
  if (!doc) return fail_msg(what, ": ", doc.error().str());
  oci::J root = doc->root();
  Credentials c;
  c.source = path;
  auto field = [&](const char* k, std::string& out) -> Result<> {
    auto v = TRY_CTX(oci::opt_string(root[k]), what);
    if (v) out = *v;
    return {};
  };
  std::string type;
  TRYV(field("type", type));
  TRYV(field("token_uri", c.token_uri));
  if (c.token_uri.empty()) c.token_uri = kDefaultTokenUri;
  // The fields a credential of this type cannot be without.
  auto need = [&](std::initializer_list<std::pair<const char*, std::string*>> want) -> Result<> {
    for (auto [k, out] : want) {
      TRYV(field(k, *out));
      if (out->empty()) return fail_msg(what, ": a ", type, " has a \"", k, "\"; this one has none");
    }
    return {};
  };
  if (type == "service_account") {
    c.kind = Credentials::Kind::kServiceAccount;
    TRYV(need({{"client_email", &c.client_email}, {"private_key", &c.private_key}}));
    TRYV(field("private_key_id", c.private_key_id));
  } else if (type == "authorized_user") {
    c.kind = Credentials::Kind::kAuthorizedUser;
    TRYV(need({{"client_id", &c.client_id}, {"client_secret", &c.client_secret},
               {"refresh_token", &c.refresh_token}}));
  } else {
    return fail_msg(what, ": \"type\": \"", type, "\" is not credentials husk can use (service_account, ",
                    "authorized_user)");
  }
  UrlParts u;
  if (!split_url(c.token_uri, &u) || (u.scheme != "https" && u.scheme != "http"))
    return fail_msg(what, ": \"token_uri\": \"", c.token_uri, "\" is not an http(s) URL");
  return c;
}

// Google's application default credentials, in their order.
Result<Credentials> find_credentials(const std::string& metadata) {
  if (std::string f = env("GOOGLE_APPLICATION_CREDENTIALS"); !f.empty()) return read_credentials_file(f);
  std::string dir = env("CLOUDSDK_CONFIG");
  if (dir.empty() && !env("HOME").empty()) dir = env("HOME") + "/.config/gcloud";
  std::string well_known = dir.empty() ? "" : dir + "/application_default_credentials.json";
  if (!well_known.empty() && access(well_known.c_str(), F_OK) == 0) return read_credentials_file(well_known);
  if (!metadata.empty()) {
    Credentials c;
    c.kind = Credentials::Kind::kMetadata;
    c.source = "the GCE metadata server " + metadata;
    c.metadata_host = metadata;
    return c;
  }
  return fail_msg("log driver gcplogs: no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, ",
                  well_known.empty() ? std::string("gcloud's application_default_credentials.json") : well_known,
                  " does not exist, and this is not a GCE instance (no GCE_METADATA_HOST)");
}

Result<std::string> rs256(const std::string& pem, std::string_view data) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr, EVP_PKEY_free);
  if (!key) {
    ERR_clear_error();
    return fail_msg("\"private_key\" is not a PEM private key");
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA)
    return fail_msg("\"private_key\" is not an RSA key (a service account's key signs with RS256)");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  std::string sig;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  bool ok = ctx && EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestSign(ctx.get(), nullptr, &len, p, data.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, p, data.size()) == 1;
    sig.resize(len);
  }
  if (!ok) {
    ERR_clear_error();
    return fail_msg("signing the token request with \"private_key\" failed");
  }
  return sig;
}

// Access tokens from the credentials, each kept until shortly before it
// expires.
class TokenSource {
 public:
  explicit TokenSource(Credentials c) : c_(std::move(c)) {}

  Result<std::string> get(HttpClient& http) {
    if (!token_.empty() && time(nullptr) + kTokenEarlySeconds < expiry_) return token_;
    const std::string what = cat("a token for ", c_.source);
    HttpResponse r;
    std::string url;
    if (c_.kind == Credentials::Kind::kMetadata) {
      url = cat("http://", c_.metadata_host, "/computeMetadata/v1/instance/service-accounts/default/token");
      r = TRY_CTX(http.request("GET", url, {"Metadata-Flavor: Google"}, ""), what);
    } else {
      url = c_.token_uri;
      std::string body;
      if (c_.kind == Credentials::Kind::kServiceAccount) {
        body = "grant_type=" + form_escape("urn:ietf:params:oauth:grant-type:jwt-bearer") +
               "&assertion=" + TRY_CTX(jwt(), what);
      } else {
        body = cat("grant_type=refresh_token&client_id=", form_escape(c_.client_id),
                   "&client_secret=", form_escape(c_.client_secret), "&refresh_token=", form_escape(c_.refresh_token));
      }
      r = TRY_CTX(http.request("POST", url, {"Content-Type: application/x-www-form-urlencoded"}, body), what);
    }
    if (r.status != 200) return fail_msg(what, ": ", url, " answered ", google_error(r));
    auto doc = oci::JsonDoc::parse(r.body);
    if (!doc) return fail_msg(what, ": ", url, " answered with no JSON: ", doc.error().str());
    oci::J root = doc->root();
    auto token = TRY_CTX(oci::opt_string(root["access_token"]), what);
    if (!token || token->empty()) return fail_msg(what, ": ", url, " answered without an access_token");
    auto expires_in = TRY_CTX(oci::opt_int(root["expires_in"], 0, INT32_MAX), what);
    token_ = *token;
    expiry_ = time(nullptr) + (expires_in ? *expires_in : 3600);
    return token_;
  }

 private:
  // The service account's signed token request (RFC 7523), for an hour.
  Result<std::string> jwt() const {
    int64_t now = time(nullptr);
    oci::JsonWriter h(false);
    h.begin_object().key("alg").str("RS256").key("typ").str("JWT");
    if (!c_.private_key_id.empty()) h.key("kid").str(c_.private_key_id);
    h.end_object();
    oci::JsonWriter claims(false);
    claims.begin_object()
        .key("iss").str(c_.client_email)
        .key("scope").str(kWriteScope)
        .key("aud").str(c_.token_uri)
        .key("iat").num(now)
        .key("exp").num(now + 3600)
        .end_object();
    std::string signing_input = base64url(h.take()) + "." + base64url(claims.take());
    std::string sig = TRY(rs256(c_.private_key, signing_input));
    return signing_input + "." + base64url(sig);
  }

  Credentials c_;
  std::string token_;
  int64_t expiry_ = 0;
};

// ---- options --------------------------------------------------------------------------------------

struct GcpConfig {
  std::string project, resource;  // resource: the MonitoredResource's JSON
  GcpPayloadShape shape;
  std::string metadata;  // the metadata server's host; "" off GCE
};

Result<GcpConfig> parse(const std::vector<std::string>& opts, const std::string& id) {
  GcpConfig c;
  c.shape.id = id;
  c.shape.name = id;
  c.shape.created = log::rfc3339_now();
  bool log_cmd = false;
  std::string command;
  std::map<std::string, std::string> meta;  // meta-zone, meta-name, meta-id
  for (const std::string& kv : opts) {
    auto [k, v] = TRY(runtime::split_log_opt(kv));
    std::string what = "--log-opt " + k;
    if (k == "project") {
      if (v.empty() || v.find_first_of("/?#% \t\n") != std::string::npos)
        return fail_msg(what, ": \"", v, "\" is not a Google Cloud project id");
      c.project = v;
    } else if (k == "log-cmd") {
      log_cmd = TRY(runtime::parse_log_bool(v, what));
    } else if (k == "meta-zone" || k == "meta-name" || k == "meta-id") {
      if (!v.empty()) meta[k.substr(5)] = v;
    } else if (k == "name") {
      c.shape.name = v;
    } else if (k == "id") {
      c.shape.id = v;
    } else if (k == "image-name") {
      c.shape.image_name = v;
    } else if (k == "image-id") {
      c.shape.image_id = v;
    } else if (k == "created") {
      c.shape.created = v;
    } else if (k == "command") {
      command = v;
    } else if (k == "field") {
      auto [fk, fv] = TRY(runtime::split_field_opt(v, what));
      c.shape.metadata[fk] = fv;  // a later one wins, as docker's env over a label
    } else {
      return fail_msg(what, ": not an option of the gcplogs log driver (project, log-cmd, meta-zone, meta-name, ",
                      "meta-id, name, id, image-name, image-id, created, command, field)");
    }
  }
  if (log_cmd) c.shape.command = command;
  if (!meta.empty()) c.shape.instance = meta;  // off GCE; on GCE the metadata server's
  c.metadata = metadata_host();
  return c;
}

// What docker reads from the metadata server on GCE: the project, and the
// instance its entries name. As docker, a value it cannot read is left out.
Result<> read_instance(GcpConfig& c, bool project_given) {
  if (c.metadata.empty()) return {};
  // A metadata server answers at once; one that does not is given up on
  // soon, not after the API's timeout for each value.
  HttpClient http = TRY(HttpClient::make({}, kMetadataTimeoutMs));
  if (!project_given)
    if (auto p = metadata_get(http, c.metadata, "project/project-id")) c.project = *p;
  std::map<std::string, std::string> inst;
  if (auto z = metadata_get(http, c.metadata, "instance/zone")) inst["zone"] = z->substr(z->rfind('/') + 1);
  if (auto n = metadata_get(http, c.metadata, "instance/name")) inst["name"] = *n;
  if (auto i = metadata_get(http, c.metadata, "instance/id")) inst["id"] = *i;
  c.shape.instance = inst;
  return {};
}

std::string monitored_resource(const GcpConfig& c) {
  oci::JsonWriter w(false);
  w.begin_object();
  if (c.shape.instance) {
    // docker: gce_instance with the instance's id and zone
    const auto& inst = *c.shape.instance;
    auto get = [&](const char* k) { auto it = inst.find(k); return it == inst.end() ? std::string() : it->second; };
    w.key("type").str("gce_instance").key("labels").begin_object();
    w.key("instance_id").str(get("id")).key("zone").str(get("zone")).end_object();
  } else {
    w.key("type").str("global").key("labels").begin_object().key("project_id").str(c.project).end_object();
  }
  w.end_object();
  return w.take();
}

// ---- writing entries ------------------------------------------------------------------------------

class CloudLogging {
 public:
  CloudLogging(GcpConfig c, TokenSource tokens, HttpClient http)
      : c_(std::move(c)), tokens_(std::move(tokens)), http_(std::move(http)) {}

  const GcpConfig& config() const { return c_; }

  // entries:write of `entries` (JSON objects, comma separated) to `log`.
  Result<> write(const std::string& log, const std::string& resource, const std::string& entries) {
    std::string token = TRY(tokens_.get(http_));
    std::string body = cat("{\"logName\":", oci::json_quote(cat("projects/", c_.project, "/logs/", log)),
                           ",\"resource\":", resource, ",\"entries\":[", entries, "]}");
    auto r = TRY(http_.request("POST", kWriteUrl,
                               {"Content-Type: application/json", "Authorization: Bearer " + token}, body));
    if (r.status != 200) return fail_msg(kWriteUrl, " answered ", google_error(r));
    return {};
  }

 private:
  GcpConfig c_;
  TokenSource tokens_;
  HttpClient http_;
};

class GcpLogsSink : public runtime::LogSink {
 public:
  explicit GcpLogsSink(CloudLogging api) : api_(std::move(api)) {
    resource_ = monitored_resource(api_.config());
    next_post_ms_ = clock_ms() + kBatchDelayMs;
  }

  void line(LogStream /*s*/, std::string_view text, bool /*partial*/) override {
    std::string entry = cat("{\"timestamp\":\"", log::rfc3339_now(), "\",\"jsonPayload\":",
                            gcp_payload(api_.config().shape, runtime::valid_utf8(text)), "}");
    if (count_ >= kMaxBatchEntries || pending_.size() + entry.size() + 1 > kMaxBatchBytes) post(false);
    pending_ += (pending_.empty() ? "" : ",") + entry;
    ++count_;
  }

  int wait_ms() const override { return static_cast<int>(std::max(0LL, next_post_ms_ - clock_ms())); }

  void tick() override {
    if (clock_ms() < next_post_ms_) return;
    next_post_ms_ = clock_ms() + kBatchDelayMs;
    post(false);
  }

  void close() override { post(true); }

 private:
  void post(bool last) {
    if (count_ == 0) return;
    auto r = api_.write(kLogName, resource_, pending_);
    if (r) {
      warned_ = false;
    } else {
      if (!warned_ || last) log::warning(cat("log driver gcplogs: ", r.error().str()));
      warned_ = true;
      // As the Go client's OnError in docker: the batch is dropped.
      log::warning(cat("log driver gcplogs: ", count_, " lines are lost"));
    }
    pending_.clear();
    count_ = 0;
  }

  CloudLogging api_;
  std::string resource_, pending_;
  size_t count_ = 0;
  long long next_post_ms_ = 0;
  bool warned_ = false;
};

}  // namespace

std::string base64url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string gcp_payload(const GcpPayloadShape& s, std::string_view message) {
  // Go's encoding/json of docker's dockerLogEntry: fields in its order,
  // the empty ones left out (omitempty), map keys sorted.
  oci::JsonWriter w(false);
  w.begin_object();
  if (s.instance) {
    w.key("instance").begin_object();
    for (const char* k : {"zone", "name", "id"})
      if (auto it = s.instance->find(k); it != s.instance->end() && !it->second.empty()) w.key(k).str(it->second);
    w.end_object();
  }
  w.key("container").begin_object();
  auto opt = [&](const char* k, const std::string& v) {
    if (!v.empty()) w.key(k).str(v);
  };
  opt("name", s.name);
  opt("id", s.id);
  opt("imageName", s.image_name);
  opt("imageId", s.image_id);
  w.key("created").str(s.created);  // a Go time.Time: never empty
  opt("command", s.command);
  if (!s.metadata.empty()) {
    w.key("metadata").begin_object();
    for (const auto& [k, v] : s.metadata) w.key(k).str(v);
    w.end_object();
  }
  w.end_object();
  if (!message.empty()) w.key("message").str(message);
  w.end_object();
  return w.take();
}

Result<std::unique_ptr<runtime::LogSink>> open_gcplogs(const std::vector<std::string>& opts,
                                                       const std::string& container_id) {
  GcpConfig c = TRY(parse(opts, container_id));
  HttpClient http = TRY(HttpClient::make({}, kRequestTimeoutMs));
  TRYV(read_instance(c, !c.project.empty()));
  if (c.project.empty())
    return fail_msg("--log-opt project: no project was given (docker's gcp-project) and none could be read from a ",
                    "GCE metadata server", c.metadata.empty() ? " (this is not a GCE instance)" : "");
  TokenSource tokens(TRY(find_credentials(c.metadata)));
  CloudLogging api(std::move(c), std::move(tokens), std::move(http));
  // docker's c.Ping(): one entry to the log "ping", which a wrong
  // credential, project or permission refuses.
  std::string ping = "{\"textPayload\":\"ping\",\"timestamp\":\"1970-01-01T00:00:00Z\",\"insertId\":\"ping\"}";
  GcpConfig global = api.config();
  global.shape.instance.reset();
  auto r = api.write("ping", monitored_resource(global), ping);
  if (!r) return fail_msg("log driver gcplogs: unable to connect or authenticate with Google Cloud Logging: ",
                          r.error().str());
  return std::unique_ptr<runtime::LogSink>(std::make_unique<GcpLogsSink>(std::move(api)));
}

}  // namespace husk::logs
