// The registry v2 protocol over libcurl: one easy handle per client, used
// for one transfer at a time (so connections are reused), options set
// afresh for every request; no curl-wide timeouts, only the pull's deadline.
#include "image/registry.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <thread>
#include <vector>

#include "image/challenge.h"
#include "oci/image.h"
#include "oci/json_reader.h"

namespace husk::image {

namespace {

constexpr size_t kMaxManifest = 4 << 20;   // containers/image's limit too
constexpr size_t kMaxSmallBody = 1 << 20;  // tokens, error bodies

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string secs(milliseconds ms) {
  if (ms.count() % 1000 == 0) return cat(ms.count() / 1000, "s");
  return cat(ms.count(), "ms");
}

// What one HTTP exchange produced. The body goes to `sink` when set
// (blobs), else into `body` up to `max_body`.
struct Response {
  CURLcode code = CURLE_OK;
  std::string curl_error;
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, of the last response
  std::string body;
  std::string effective_url;
  bool too_big = false;
  bool deadline_passed = false;
  bool stalled = false;  // no byte for the activity timeout
  std::optional<Error> sink_error;
};

struct Request {
  std::string url;
  std::vector<std::string> headers;
  std::string userpwd_user, userpwd_pass;  // basic auth, when user is set
  bool use_basic = false;
  std::string post_fields;  // POST when not empty
  bool follow_redirects = false;
  size_t max_body = kMaxSmallBody;
  // Streaming body: called with each chunk of a 2xx answer.
  std::function<Result<>(std::string_view)> sink;
};

struct Token {
  std::string value;
  Clock::time_point expires;
};

}  // namespace

// Tokens by scope, shared by a client and its clones (parallel blob
// fetches): the lock is held across a fetch, so one scope costs one token.
struct TokenCache {
  std::mutex mu;
  std::map<std::string, Token> tokens;
};

namespace {

// The registry's own words for an error: {"errors":[{"code","message"}]}.
std::string registry_error_text(const Response& r) {
  std::string out;
  if (auto doc = oci::JsonDoc::parse(r.body)) {
    oci::J errs = doc->root()["errors"];
    for (size_t i = 0; i < errs.size(); ++i) {
      auto code = oci::opt_string(errs.at(i)["code"]);
      auto msg = oci::opt_string(errs.at(i)["message"]);
      std::string one = msg && *msg ? **msg : "";
      if (code && *code) one += cat(one.empty() ? "" : " (", **code, one.empty() ? "" : ")");
      if (!one.empty()) out += cat(out.empty() ? "" : "; ", one);
    }
    if (out.empty())
      if (auto d = oci::opt_string(doc->root()["details"]); d && *d) out = **d;
  }
  if (out.empty()) {
    std::string body = trim(r.body.substr(0, 200));
    if (!body.empty() && body.find('<') == std::string::npos) out = body;
  }
  return out;
}

std::string status_text(const Response& r) {
  std::string why = registry_error_text(r);
  return cat("HTTP ", static_cast<int64_t>(r.status), why.empty() ? "" : ": ", why);
}

bool transient_curl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_COULDNT_RESOLVE_HOST:
      return true;
    default:
      return false;
  }
}

bool transient_status(long s) { return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

bool transient(const Response& r) {
  if (r.deadline_passed || r.sink_error) return false;
  if (r.code != CURLE_OK) return r.stalled || transient_curl(r.code);
  return transient_status(r.status);
}

std::string url_escape(CURL* h, std::string_view s) {
  char* e = curl_easy_escape(h, s.data(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

}  // namespace

struct RegistryClient::Impl {
  std::string host, repository, base;
  RegistryOptions opt;
  CURL* curl = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  // How the registry wants to be authenticated, from the ping.
  enum class Auth { kNone, kBasic, kBearer } auth = Auth::kNone;
  std::string realm, service;
  std::shared_ptr<TokenCache> tokens = std::make_shared<TokenCache>();
  // The transfer in progress: bytes so far and when they last moved.
  curl_off_t last_bytes = 0;
  Clock::time_point last_activity;
  bool stalled = false;

  ~Impl() {
    if (curl) curl_easy_cleanup(curl);
  }

  std::string who() const { return cat("registry ", host); }

  // Who we were, for authentication errors: `user "alice" (credentials
  // from /root/.docker/config.json)`.
  std::string creds_text() const {
    if (!opt.credentials) return "anonymous access (no credentials found for this registry)";
    const Credentials& c = *opt.credentials;
    std::string user = c.username.empty() ? "an identity token" : cat("user \"", c.username, "\"");
    return cat(user, c.source.empty() ? "" : cat(" (credentials from ", c.source, ")"));
  }

  Result<milliseconds> time_left(const std::string& what) const {
    if (opt.deadline == Clock::time_point::max()) return milliseconds(0);
    auto left = duration_cast<milliseconds>(opt.deadline - Clock::now());
    if (left.count() <= 0) return fail_msg(what, ": the pull did not finish within its timeout of ", secs(opt.timeout));
    return left;
  }

  static size_t on_header(char* data, size_t size, size_t n, void* p) {
    auto* r = static_cast<Response*>(p);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
      r->headers.clear();  // a new response (after a redirect or 100)
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string key = lower(trim(line.substr(0, colon)));
    std::string value = trim(line.substr(colon + 1));
    auto [it, fresh] = r->headers.emplace(key, value);
    if (!fresh) it->second += ", " + value;  // WWW-Authenticate may repeat
    return size * n;
  }

  struct WriteCtx {
    Response* r;
    Request* q;
    CURL* h;
  };

  static size_t on_body(char* data, size_t size, size_t n, void* p) {
    auto* w = static_cast<WriteCtx*>(p);
    std::string_view chunk(data, size * n);
    long status = 0;
    curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
    if (w->q->sink && status >= 200 && status < 300) {
      auto ok = w->q->sink(chunk);
      if (!ok) {
        w->r->sink_error = std::move(ok.error());
        return 0;  // aborts the transfer
      }
      return chunk.size();
    }
    size_t cap = w->q->sink ? kMaxSmallBody : w->q->max_body;
    if (w->r->body.size() + chunk.size() > cap) {
      w->r->too_big = true;
      return 0;
    }
    w->r->body.append(chunk);
    return chunk.size();
  }

  // Called by curl about once a second even when no byte moves: the
  // deadline and the activity timeout are enforced here (curl's own
  // low-speed check averages over several seconds and reacts late).
  static int on_progress(void* p, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t) {
    auto* self = static_cast<Impl*>(p);
    auto now = Clock::now();
    if (self->opt.deadline != Clock::time_point::max() && now >= self->opt.deadline) return 1;
    if (self->cancelled()) return 1;
    if (dlnow != self->last_bytes) {
      self->last_bytes = dlnow;
      self->last_activity = now;
    } else if (self->opt.activity_timeout.count() > 0 && now - self->last_activity >= self->opt.activity_timeout) {
      self->stalled = true;
      return 1;
    }
    return 0;
  }

  // One HTTP exchange, no retries.
  Result<Response> perform(Request& q) {
    Response r;
    if (cancelled()) return fail_msg(who(), ": GET ", q.url, ": cancelled (another part of the pull failed)");
    milliseconds left = TRY(time_left(cat(who(), ": GET ", q.url)));
    curl_easy_reset(curl);
    errbuf[0] = 0;
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_URL, q.url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "husk-image/" HUSK_VERSION);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, q.follow_redirects ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    if (!opt.tls_verify) {
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_blob ca{};
    if (!opt.tls.ca_pem.empty()) {
      ca.data = opt.tls.ca_pem.data();
      ca.len = opt.tls.ca_pem.size();
      ca.flags = CURL_BLOB_NOCOPY;  // opt outlives the transfer
      curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (!opt.tls.client_cert.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLCERT, opt.tls.client_cert.c_str());
      curl_easy_setopt(curl, CURLOPT_SSLKEY, opt.tls.client_key.c_str());
    }
    // The deadline bounds this transfer; nothing else does.
    if (left.count() > 0) curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
    last_bytes = 0;
    last_activity = Clock::now();
    stalled = false;
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &Impl::on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
    curl_slist* hdrs = nullptr;
    for (const std::string& h : q.headers) hdrs = curl_slist_append(hdrs, h.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    if (q.use_basic) {
      curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(curl, CURLOPT_USERNAME, q.userpwd_user.c_str());
      curl_easy_setopt(curl, CURLOPT_PASSWORD, q.userpwd_pass.c_str());
    }
    if (!q.post_fields.empty()) curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, q.post_fields.c_str());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    WriteCtx w{&r, &q, curl};
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &w);
    r.code = curl_easy_perform(curl);
    curl_slist_free_all(hdrs);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    char* eff = nullptr;
    curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff);
    if (eff) r.effective_url = eff;
    r.curl_error = errbuf[0] ? errbuf : curl_easy_strerror(r.code);
    // curl's own timer (set from the deadline above) may fire a few ms
    // before our clock reaches the deadline: a timeout that close to it is
    // the deadline's.
    if (opt.deadline != Clock::time_point::max() && r.code != CURLE_OK &&
        (Clock::now() >= opt.deadline ||
         (r.code == CURLE_OPERATION_TIMEDOUT && Clock::now() + milliseconds(250) >= opt.deadline)))
      r.deadline_passed = true;
    r.stalled = stalled && !r.deadline_passed;
    return r;
  }

  Result<> transfer_error(const std::string& what, const Response& r) {
    // The store's errors name the blob already.
    if (r.sink_error) return fail(Error(*r.sink_error).with_context(who()));
    if (r.deadline_passed) return fail_msg(what, ": the pull did not finish within its timeout of ", secs(opt.timeout));
    if (r.too_big) return fail_msg(what, ": the answer is larger than allowed here");
    if (r.stalled)
      return fail_msg(what, ": no data for ", secs(opt.activity_timeout), " (", opt.activity_timeout_name,
                      opt.retry_stalled ? "" : "; a stalled pull is not retried", ")");
    return fail_msg(what, ": ", r.curl_error);
  }

  // Sleep before try `attempt` (1-based), within the deadline.
  bool cancelled() const { return opt.cancel && opt.cancel->load(); }

  bool backoff(int attempt) {
    auto wait = milliseconds(std::min(4000, 250 << std::min(attempt - 1, 4)));
    if (opt.deadline != Clock::time_point::max() && Clock::now() + wait >= opt.deadline) return false;
    for (auto end = Clock::now() + wait; Clock::now() < end; std::this_thread::sleep_for(milliseconds(50)))
      if (cancelled()) return false;
    return true;
  }

  Result<Response> ping_once(const std::string& scheme) {
    Request q;
    q.url = cat(scheme, "://", host, "/v2/");
    return perform(q);
  }

  Result<> ping() {
    std::string what = cat(who(), ": ping");
    Response r;
    for (int attempt = 1;; ++attempt) {
      base = "https://" + host;
      r = TRY(ping_once("https"));
      if (r.code != CURLE_OK && !opt.tls_verify && !r.deadline_passed) {
        // Not TLS there: podman's --tls-verify=false also means plain HTTP.
        Response plain = TRY(ping_once("http"));
        if (plain.code == CURLE_OK) {
          base = "http://" + host;
          r = std::move(plain);
        }
      }
      bool again = transient(r) && (opt.retry_stalled || !r.stalled);
      if (!again || attempt >= opt.attempts || !backoff(attempt)) break;
    }
    if (r.code != CURLE_OK) {
      auto e = transfer_error(cat(what, " ", base, "/v2/"), r);
      if (r.code == CURLE_PEER_FAILED_VERIFICATION || r.code == CURLE_SSL_CACERT_BADFILE)
        return fail_msg(
            e.error().str(), " (the registry's certificate is not trusted here",
            opt.tls.ca_files.empty() ? "" : cat(", also not by ", opt.tls.ca_files.size(), " CA file(s) from certs.d"),
            "; put its CA in /etc/containers/certs.d/", host,
            "/ca.crt or --cert-dir, or skip the check with tls_verify = false / --tls-verify=false)");
      if (r.code == CURLE_SSL_CONNECT_ERROR && opt.tls_verify)
        return fail_msg(e.error().str(), " (no TLS there? a plain-HTTP registry needs --tls-verify=false)");
      return e;
    }
    if (r.status == 200) return {};
    if (r.status != 401) return fail_msg(what, " ", base, "/v2/: ", status_text(r), " (is this an OCI registry?)");
    std::vector<Challenge> cs = parse_challenges(r.headers["www-authenticate"]);
    for (const Challenge& c : cs) {
      if (c.scheme == "bearer") {
        realm = c.param("realm");
        service = c.param("service");
        if (realm.empty()) return fail_msg(what, ": its Bearer challenge has no realm");
        if (!realm.starts_with("https://") && !realm.starts_with("http://"))
          return fail_msg(what, ": token realm \"", realm, "\" is not an http(s) URL");
        auth = Auth::kBearer;
        return {};
      }
    }
    for (const Challenge& c : cs) {
      if (c.scheme == "basic") {
        auth = Auth::kBasic;
        if (!opt.credentials || opt.credentials->username.empty())
          return fail_msg(who(),
                          ": authentication required (Basic) but no credentials were found for it "
                          "(use --creds, --authfile or a task's auth block)");
        return {};
      }
    }
    return fail_msg(what, ": 401 without a Bearer or Basic challenge (WWW-Authenticate: \"",
                    r.headers["www-authenticate"], "\")");
  }

  // A token for `scope` from the realm, cached until it expires.
  Result<std::string> token(const std::string& scope) {
    std::lock_guard guard(tokens->mu);
    auto it = tokens->tokens.find(scope);
    if (it != tokens->tokens.end() && Clock::now() < it->second.expires) return it->second.value;
    std::string what = cat(who(), ": token server ", realm);
    Request q;
    std::string query = cat("scope=", url_escape(curl, scope));
    if (!service.empty()) query += cat("&service=", url_escape(curl, service));
    const Credentials* c = opt.credentials ? &*opt.credentials : nullptr;
    if (c && !c->identity_token.empty()) {
      // OAuth2 refresh-token exchange, as docker does with identity tokens.
      q.url = realm;
      q.post_fields = cat("grant_type=refresh_token&client_id=husk&refresh_token=", url_escape(curl, c->identity_token),
                          "&", query);
    } else {
      q.url = cat(realm, realm.find('?') == std::string::npos ? "?" : "&", query);
      if (c && !c->username.empty()) {
        q.use_basic = true;
        q.userpwd_user = c->username;
        q.userpwd_pass = c->password;
      }
    }
    q.follow_redirects = true;
    Response r;
    for (int attempt = 1;; ++attempt) {
      r = TRY(perform(q));
      bool again = transient(r) && (opt.retry_stalled || !r.stalled);
      if (!again || attempt >= opt.attempts || !backoff(attempt)) break;
    }
    if (r.code != CURLE_OK) return fail(transfer_error(what, r).error());
    if (r.status == 401 || r.status == 403)
      return fail_msg(who(), ": authentication failed: the token server ", realm, " refused ", creds_text(), ": ",
                      status_text(r));
    if (r.status != 200) return fail_msg(what, ": ", status_text(r));
    auto doc = oci::JsonDoc::parse(r.body);
    if (!doc) return fail(std::move(doc.error()).with_context(what + ": answer"));
    oci::J root = doc->root();
    std::string tok = TRY_CTX(oci::opt_string(root["token"]), what).value_or("");
    if (tok.empty()) tok = TRY_CTX(oci::opt_string(root["access_token"]), what).value_or("");
    if (tok.empty()) return fail_msg(what, ": the answer has no token");
    int64_t expires_in = TRY_CTX(oci::opt_int(root["expires_in"], 0, INT32_MAX), what).value_or(60);
    // Docker's rule: less than 60s means 60s. Renew a little early.
    expires_in = std::max<int64_t>(expires_in, 60);
    tokens->tokens[scope] = Token{tok, Clock::now() + std::chrono::seconds(expires_in - 5)};
    return tok;
  }

  Result<> authorize(Request& q, const std::string& scope) {
    if (auth == Auth::kBearer) {
      std::string tok = TRY(token(scope));
      q.headers.push_back("Authorization: Bearer " + tok);
    } else if (auth == Auth::kBasic) {
      q.use_basic = true;
      q.userpwd_user = opt.credentials->username;
      q.userpwd_pass = opt.credentials->password;
    }
    return {};
  }

  std::string pull_scope() const { return cat("repository:", repository, ":pull"); }

  Result<> auth_error(std::string what, const Response& r) {
    if (what.starts_with(who() + ": ")) what.erase(0, who().size() + 2);  // said once is enough
    if (auth == Auth::kBasic)
      return fail_msg(who(), ": authentication failed: the registry rejected ", creds_text(), ": ", status_text(r));
    if (!opt.credentials)
      return fail_msg(who(), ": authentication required: ", repository, " cannot be pulled with ", creds_text(),
                      "; use --creds, --authfile or a task's auth block (", what, ": ", status_text(r), ")");
    return fail_msg(who(), ": access denied: ", creds_text(), " may not pull ", repository, " (", what, ": ",
                    status_text(r), ")");
  }

  // A request with auth and retries of transient failures. `prepare` is
  // run before every try (a blob sets its Range header from what it has).
  Result<Response> get(const std::string& what, Request base_q, const std::function<Result<>(Request&)>& prepare) {
    Response r;
    for (int attempt = 1;; ++attempt) {
      Request q = base_q;
      if (prepare) TRYV(prepare(q));
      TRYV(authorize(q, pull_scope()));
      r = TRY(perform(q));
      if (r.sink_error) return fail(transfer_error(what, r).error());
      if (r.code == CURLE_OK && r.status == 401 && auth == Auth::kBearer && attempt == 1) {
        // The token may have been revoked or expired early: fetch once more.
        std::lock_guard guard(tokens->mu);
        tokens->tokens.erase(pull_scope());
        continue;
      }
      bool again = transient(r) && (opt.retry_stalled || !r.stalled);
      if (!again || attempt >= opt.attempts || !backoff(attempt)) break;
    }
    if (r.code != CURLE_OK) return fail(transfer_error(what, r).error());
    if (r.status == 401 || r.status == 403) return fail(auth_error(what, r).error());
    return r;
  }
};

Result<RegistryClient> RegistryClient::clone() const {
  auto impl = std::make_unique<Impl>();
  const Impl& m = *impl_;
  impl->host = m.host;
  impl->repository = m.repository;
  impl->base = m.base;
  impl->opt = m.opt;
  impl->auth = m.auth;
  impl->realm = m.realm;
  impl->service = m.service;
  impl->tokens = m.tokens;
  impl->curl = curl_easy_init();
  if (!impl->curl) return fail_msg("curl_easy_init failed");
  return RegistryClient(std::move(impl));
}

RegistryClient::RegistryClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { base_ = impl_->base; }
RegistryClient::RegistryClient(RegistryClient&&) noexcept = default;
RegistryClient& RegistryClient::operator=(RegistryClient&&) noexcept = default;
RegistryClient::~RegistryClient() = default;

Result<RegistryClient> RegistryClient::connect(const std::string& host, const std::string& repository,
                                               RegistryOptions options) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto impl = std::make_unique<Impl>();
  impl->host = host;
  impl->repository = repository;
  impl->opt = std::move(options);
  impl->curl = curl_easy_init();
  if (!impl->curl) return fail_msg("curl_easy_init failed");
  TRYV(impl->ping());
  return RegistryClient(std::move(impl));
}

Result<FetchedManifest> RegistryClient::manifest(const std::string& reference) {
  Impl& m = *impl_;
  std::string url = cat(m.base, "/v2/", m.repository, "/manifests/", reference);
  std::string what = cat(m.who(), ": manifest ", m.repository, ":", reference);
  Request q;
  q.url = url;
  q.max_body = kMaxManifest;
  q.headers.push_back(cat("Accept: ", oci::media::kOciIndex, ", ", oci::media::kOciManifest, ", ",
                          oci::media::kDockerList, ", ", oci::media::kDockerManifest));
  Response r = TRY(m.get(what, q, nullptr));
  if (r.status == 404) return fail_msg(what, ": not found (", status_text(r), ")");
  if (r.status != 200) return fail_msg(what, ": ", status_text(r));
  FetchedManifest out;
  out.digest = sha256_of(r.body);
  out.content_type = r.headers["content-type"];
  if (reference.starts_with("sha256:")) {
    if (out.digest.str() != reference)
      return fail_msg(what, ": the registry sent content with digest ", out.digest.str(), ", not the one asked for");
  } else if (auto it = r.headers.find("docker-content-digest"); it != r.headers.end()) {
    auto claimed = parse_digest(it->second, "Docker-Content-Digest");
    if (claimed && *claimed != out.digest)
      return fail_msg(what, ": the content's digest is ", out.digest.str(), " but the registry says ", it->second);
  }
  out.bytes = std::move(r.body);
  return out;
}

Result<> RegistryClient::fetch_blob(const BlobStore& store, const Descriptor& d, const BlobProgressFn& progress) {
  Impl& m = *impl_;
  std::string what = cat(m.who(), ": blob ", d.digest.str());
  for (int round = 0;; ++round) {
    BlobWriter w = TRY(store.begin(d.digest, d.size, round == 0));
    bool resumed_old = w.size() > 0;
    // Per try: where the Range request started, and how many bytes of the
    // answer to drop (a server that ignores Range sends the whole blob).
    uint64_t asked_from = 0, skip = 0;
    bool first_chunk = true;
    Request q;
    q.url = cat(m.base, "/v2/", m.repository, "/blobs/", d.digest.str());
    q.follow_redirects = true;  // registries send blobs from storage (S3, CDNs)
    q.sink = [&](std::string_view chunk) -> Result<> {
      if (first_chunk) {
        first_chunk = false;
        long status = 0;
        curl_easy_getinfo(m.curl, CURLINFO_RESPONSE_CODE, &status);
        if (asked_from > 0 && status == 200) skip = asked_from;
      }
      size_t drop = std::min<uint64_t>(skip, chunk.size());
      chunk.remove_prefix(drop);
      skip -= drop;
      if (chunk.empty()) return {};
      TRYV(w.write(chunk));
      if (progress) progress(d.digest, w.size(), d.size);
      return {};
    };
    auto prepare = [&](Request& rq) -> Result<> {
      asked_from = w.size();
      skip = 0;
      first_chunk = true;
      if (asked_from > 0) rq.headers.push_back(cat("Range: bytes=", asked_from, "-"));
      return {};
    };
    if (progress) progress(d.digest, w.size(), d.size);
    // A failure with nothing to resume leaves no empty partial file.
    auto failed = [&](Error e) {
      if (w.size() == 0) w.discard();
      return fail(std::move(e));
    };
    auto got = m.get(what, q, prepare);
    if (!got) return failed(std::move(got.error()));
    Response r = std::move(*got);
    if (r.status == 404)
      return failed(Error::msg(cat(what, ": not found in ", m.repository, " (", status_text(r), ")")));
    if (r.status == 416 && round == 0) continue;  // our partial file is as long as the blob: start over
    if (r.status != 200 && r.status != 206) return failed(Error::msg(cat(what, ": ", status_text(r))));
    auto committed = w.commit();
    if (!committed) {
      // A partial file from an earlier pull may have held the bad bytes:
      // one fresh download decides.
      if (resumed_old && round == 0) continue;
      return fail(std::move(committed.error()).with_context(m.who()));
    }
    return {};
  }
}

}  // namespace husk::image
