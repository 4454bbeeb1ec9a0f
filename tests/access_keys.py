"""A stand-in for Cloudflare Access in tests: RSA keys made here, a JWKS over real HTTP, tokens.

``JwksServer`` serves ``/cdn-cgi/access/certs`` on a free port from a ``ThreadingHTTPServer``
and counts the fetches, so tests can see the verifier's cache and its refetch on an unknown kid.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

TEAM_DOMAIN = "https://videofleet-test.cloudflareaccess.com"
AUD = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"


class SigningKey:
    """An RSA key pair with a key id, as Access has two at a time."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def token(self, **overrides: Any) -> str:
        """A token as Access signs it for a person; ``overrides`` change or drop (None) claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": [AUD],
            "email": "ada@example.com",
            "exp": now + 600,
            "iat": now,
            "nbf": now,
            "iss": TEAM_DOMAIN,
            "type": "app",
            "identity_nonce": "6ei69kawdKzMIAPF",
            "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
            "country": "GB",
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})

    def service_token(self, client_id: str) -> str:
        """A token as Access signs it for a service token: empty ``sub``, ``common_name``."""
        return self.token(sub="", email=None, common_name=client_id, identity_nonce=None)


class JwksServer:
    """The team's certs endpoint on 127.0.0.1 and a free port."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.user_agents: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                server.user_agents.append(self.headers.get("User-Agent", ""))
                body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/cdn-cgi/access/certs"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
