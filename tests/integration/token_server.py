"""A small token server for the registry's `auth: token:` mode (the Docker
token authentication spec): GET /token?service=S&scope=repository:NAME:ACTIONS
with optional HTTP basic credentials answers a JWT (RS256, the issuer's
certificate in its x5c header) granting the asked actions to known users
and nothing to anonymous or unknown ones; wrong passwords get 401. POST
/token with grant_type=refresh_token (the OAuth2 exchange docker does with
an identity token) grants the same to the user a known refresh token
names; an unknown one gets 401."""
import base64
import http.server
import json
import socketserver
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class TokenServer:
    def __init__(self, key_path, cert_path, issuer, service, users, refresh_tokens=None):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer, self.service, self.users = issuer, service, users
        self.refresh_tokens = refresh_tokens or {}  # refresh token -> user
        self.requests = []  # (user or None, scope)
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv._answer(self)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                srv._answer(self, form)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.realm = "http://127.0.0.1:%d/token" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _token(self, subject, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(sig)

    def _refuse(self, h, why):
        body = json.dumps({"details": why}).encode()
        h.send_response(401)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _answer(self, h, form=None):
        q = form if form is not None else urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query)
        user = None
        auth = h.headers.get("Authorization", "")
        if form is not None:
            if q.get("grant_type") != ["refresh_token"]:
                return self._refuse(h, "unsupported grant_type")
            user = self.refresh_tokens.get(q.get("refresh_token", [""])[0])
            if not user:
                return self._refuse(h, "invalid refresh token")
        elif auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != password:
                return self._refuse(h, "invalid username or password")
            user = name
        access = []
        for scope in q.get("scope", []):
            for one in scope.split(" "):
                parts = one.split(":")
                if len(parts) >= 3 and parts[0] == "repository" and user:
                    access.append({"type": "repository", "name": ":".join(parts[1:-1]),
                                   "actions": parts[-1].split(",")})
            self.requests.append((user, scope) if form is None else (user, scope, "refresh_token"))
        token = self._token(user or "", access)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
