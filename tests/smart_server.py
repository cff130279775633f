"""A SMART on FHIR test double for the web page's EHR launch: one local HTTP server that is both
the FHIR server (``/fhir``, bearer token required) and its authorization server (``/auth``).

It checks what a real authorization server checks: the client id, the registered redirect URI,
``aud`` equal to the FHIR base, a known ``launch``, PKCE with S256 (the token endpoint recomputes
the challenge from the verifier), single-use codes; and it answers the token with the launch's
patient (and an ``appContext`` when the launch carries one). The FHIR side serves the resources
of ``FhirServer`` only to the access token it issued."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from live_server import FhirServer, _Server

__all__ = ["SmartServer"]


class SmartServer:
    def __init__(
        self,
        resources: Sequence[Mapping[str, Any]],
        client_id: str,
        redirect_uri: str,
    ) -> None:
        self.fhir = FhirServer(resources)  # its answer() serves the searches
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.launches: dict[str, dict[str, str]] = {}  # launch -> {"patient", "appContext"?}
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens: set[str] = set()
        self.fhir_requests: list[str] = []
        self.refusals: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def send(self, code: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/fhir/.well-known/smart-configuration":
                    self.send(200, outer.configuration())
                elif parts.path == "/auth/authorize":
                    code, location = outer.authorize(parse_qs(parts.query))
                    self.send(
                        code,
                        None if location else {"error": "refused"},
                        {"Location": location} if location else None,
                    )
                elif parts.path.startswith("/fhir/"):
                    auth = self.headers.get("Authorization", "")
                    if auth.removeprefix("Bearer ") not in outer.tokens:
                        outer.refusals.append(self.path)
                        self.send(401, {"resourceType": "OperationOutcome", "issue": []})
                        return
                    outer.fhir_requests.append(self.path)
                    self.send(*outer.fhir.answer(self.path))
                else:
                    self.send(404, {"error": "not found"})

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/auth/token":
                    self.send(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                self.send(*outer.token({k: v[0] for k, v in form.items()}))

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.iss = f"{self.base}/fhir"
        self.fhir.url = self.iss
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.base,
            "authorization_endpoint": f"{self.base}/auth/authorize",
            "token_endpoint": f"{self.base}/auth/token",
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "client-public", "context-ehr-patient"],
        }

    def authorize(self, q: Mapping[str, list[str]]) -> tuple[int, str | None]:
        one = {k: v[0] for k, v in q.items()}
        problems = [
            one.get("response_type") != "code" and "response_type",
            one.get("client_id") != self.client_id and "client_id",
            one.get("redirect_uri") != self.redirect_uri and "redirect_uri",
            one.get("aud") != self.iss and "aud",
            one.get("launch") not in self.launches and "launch",
            one.get("code_challenge_method") != "S256" and "code_challenge_method",
            not one.get("code_challenge") and "code_challenge",
            not one.get("state") and "state",
        ]
        bad = [p for p in problems if p]
        if bad:
            self.refusals.append("authorize: " + ",".join(bad))
            return 400, None
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "challenge": one["code_challenge"],
            "redirect_uri": one["redirect_uri"],
            **self.launches[one["launch"]],
        }
        return 302, f"{one['redirect_uri']}?{urlencode({'code': code, 'state': one['state']})}"

    def token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)  # single use
        if grant is None or form.get("grant_type") != "authorization_code":
            self.refusals.append("token: code")
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.decode().rstrip("=") != grant["challenge"]:
            self.refusals.append("token: PKCE")
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            self.refusals.append("token: redirect_uri")
            return 400, {"error": "invalid_grant"}
        access = secrets.token_urlsafe(24)
        self.tokens.add(access)
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "launch openid fhirUser patient/*.read",
            "patient": grant["patient"],
        }
        if "appContext" in grant:
            body["appContext"] = grant["appContext"]
        return 200, body

    def __enter__(self) -> SmartServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.fhir.httpd.server_close()  # its own server was never started: only its answers
