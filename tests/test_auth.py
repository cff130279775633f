"""CDS Hooks JWT verification: what passes, every refusal, JWKS from a file and from a real
local HTTP server, key rotation, the replay cache, and random headers (never a crash)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from legspasm.errors import AuthError
from legspasm.service.auth import Claims, JwksCache, ReplayCache, TokenVerifier
from legspasm.settings import Issuer, Settings

NOW = 1_800_000_000.0
ISS = "https://ehr.example.org/fhir"
AUD = "https://cds.example.org/cds-services/legspasm-order-sign"
OTHER_AUD = "https://cds.example.org/cds-services/other-service"

EC_KEY = ec.generate_private_key(ec.SECP384R1())
EC2_KEY = ec.generate_private_key(ec.SECP384R1())
P256_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_SMALL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
DROP = object()  # a claim or header value meaning "leave this out"


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", **extra}


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    return {
        **RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
        "kid": kid,
        "use": "sig",
        **extra,
    }


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


STANDARD_JWKS = jwks(
    ec_jwk(EC_KEY, "ec1", alg="ES384"),
    rsa_jwk(RSA_KEY, "rsa1", alg="RS384"),
    ec_jwk(P256_KEY, "p256"),
    rsa_jwk(RSA_SMALL_KEY, "rsa-small"),
    {**RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True), "kid": "rsa-private"},
)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(clock_now: float = NOW, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "ehr-client-1",
        "iat": int(clock_now),
        "exp": int(clock_now) + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def sign(
    payload: dict[str, Any], key: Any = EC_KEY, alg: str = "ES384", kid: Any = "ec1", **header: Any
) -> str:
    headers = {"kid": kid, "typ": "JWT", **header}
    headers = {k: v for k, v in headers.items() if v is not DROP}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hmac_token(secret: bytes, alg: str, payload: dict[str, Any], kid: str = "rsa1") -> str:
    """An HMAC-signed token built by hand (PyJWT itself refuses a PEM key as an HMAC secret)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "RS384": hashlib.sha384}[alg]
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{segment(payload)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(verifier: TokenVerifier, authorization: Any, fragment: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        verifier.verify(authorization, AUD)
    reason = info.value.reason
    assert fragment in reason, reason
    if isinstance(authorization, str) and len(authorization) > 40:
        token = authorization.split()[-1]
        assert token not in reason
        assert token not in str(info.value)
    return info.value


def make_settings(*issuers: Issuer, **values: Any) -> Settings:
    return Settings(issuers=list(issuers), **values)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jwks_path(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(STANDARD_JWKS))
    return path


@pytest.fixture
def verifier(jwks_path: Path, clock: Clock) -> TokenVerifier:
    return TokenVerifier(make_settings(Issuer(iss=ISS, jwks_file=jwks_path)), clock=clock)


class JwksServer(ThreadingHTTPServer):
    """Serves ``document`` at /jwks.json (and a few bad responses); counts requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _JwksHandler)
        self.document: dict[str, Any] = STANDARD_JWKS
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str = "/jwks.json") -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{path}"


class _JwksHandler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests[self.path] += 1
            document = self.server.document
        if self.path == "/jwks.json":
            self._send(200, json.dumps(document).encode(), "application/json")
        elif self.path == "/not-json":
            self._send(200, b"<html>hello</html>", "text/html")
        elif self.path == "/huge":
            self._send(200, b'{"keys": [' + b" " * (2 << 20) + b"]}", "application/json")
        elif self.path == "/drip":
            self._drip()
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """A valid response, one byte every 0.1 s: no single read ever times out."""
        body = json.dumps(STANDARD_JWKS).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for i in range(min(len(body), 50)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client gave up, as it should
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


@pytest.fixture
def server() -> Iterator[JwksServer]:
    srv = JwksServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


@pytest.fixture
def url_verifier(server: JwksServer, http: httpx.Client, clock: Clock) -> TokenVerifier:
    settings = make_settings(Issuer(iss=ISS, jwks_url=server.url()), fhir_timeout_s=2.0)
    return TokenVerifier(settings, http=http, clock=clock)


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(EC_KEY, "ES384", "ec1"), (RSA_KEY, "RS384", "rsa1")]
)
def test_valid_token_from_file_jwks(verifier: TokenVerifier, key: Any, alg: str, kid: str) -> None:
    payload = claims()
    result = verifier.verify(bearer(sign(payload, key, alg, kid)), AUD)
    assert result == Claims(
        iss=ISS, sub="ehr-client-1", jti=payload["jti"], exp=NOW + 300, tenant=None
    )


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(EC_KEY, "ES384", "ec1"), (RSA_KEY, "RS384", "rsa1")]
)
def test_valid_token_from_url_jwks(
    url_verifier: TokenVerifier, server: JwksServer, key: Any, alg: str, kid: str
) -> None:
    for _ in range(3):
        payload = claims()
        result = url_verifier.verify(bearer(sign(payload, key, alg, kid)), AUD)
        assert result.jti == payload["jti"]
        assert result.iss == ISS
    assert server.requests["/jwks.json"] == 1  # cached


def test_default_http_client_fetches_the_url(
    server: JwksServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    verifier = TokenVerifier(make_settings(Issuer(iss=ISS, jwks_url=server.url())), clock=clock)
    assert verifier.verify(bearer(sign(claims())), AUD).iss == ISS
    assert server.requests["/jwks.json"] == 1


def test_audience_as_list_containing_the_endpoint(verifier: TokenVerifier) -> None:
    token = sign(claims(aud=[OTHER_AUD, AUD]))
    assert verifier.verify(bearer(token), AUD).iss == ISS


def test_scheme_is_case_insensitive_and_tolerates_spacing(verifier: TokenVerifier) -> None:
    assert verifier.verify(f"bearer {sign(claims())}", AUD)
    assert verifier.verify(f"  BEARER   {sign(claims())}  ", AUD)


def test_jku_equal_to_the_configured_url_is_accepted(
    url_verifier: TokenVerifier, server: JwksServer
) -> None:
    token = sign(claims(), jku=server.url())
    assert url_verifier.verify(bearer(token), AUD).iss == ISS


def test_within_leeway_is_accepted(verifier: TokenVerifier) -> None:
    # expired 10 s ago and issued 10 s in the future are both inside the 30 s leeway
    assert verifier.verify(bearer(sign(claims(iat=int(NOW) - 300, exp=int(NOW) - 10))), AUD)
    assert verifier.verify(bearer(sign(claims(iat=int(NOW) + 10, exp=int(NOW) + 300))), AUD)


def test_tenant_must_match_when_configured(jwks_path: Path, clock: Clock) -> None:
    settings = make_settings(Issuer(iss=ISS, jwks_file=jwks_path, tenant="hospital-a"))
    verifier = TokenVerifier(settings, clock=clock)
    assert verifier.verify(bearer(sign(claims(tenant="hospital-a"))), AUD).tenant == "hospital-a"
    refused(verifier, bearer(sign(claims(tenant="hospital-b"))), "tenant does not match")
    refused(verifier, bearer(sign(claims())), "tenant does not match")
    refused(verifier, bearer(sign(claims(tenant=7))), "tenant is not a string")


def test_tenant_passes_through_when_not_configured(verifier: TokenVerifier) -> None:
    assert verifier.verify(bearer(sign(claims(tenant="t-9"))), AUD).tenant == "t-9"


def test_sub_is_optional(verifier: TokenVerifier) -> None:
    assert verifier.verify(bearer(sign(claims(sub=DROP))), AUD).sub is None


def test_same_token_from_many_threads_is_accepted_once(verifier: TokenVerifier) -> None:
    token = bearer(sign(claims()))
    results: list[str] = []
    barrier = threading.Barrier(16)

    def attempt() -> None:
        barrier.wait()
        try:
            verifier.verify(token, AUD)
            results.append("ok")
        except AuthError as exc:
            results.append(exc.reason)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1
    assert results.count("jti replayed") == 15


# --- refused: claims -----------------------------------------------------------------------

CLAIM_REFUSALS = [
    pytest.param({"iss": "https://evil.example.org"}, "unknown issuer", id="wrong-issuer"),
    pytest.param({"iss": DROP}, "missing claim iss", id="missing-iss"),
    pytest.param({"aud": OTHER_AUD}, "wrong audience", id="wrong-audience"),
    pytest.param({"aud": [OTHER_AUD]}, "wrong audience", id="wrong-audience-list"),
    pytest.param({"aud": DROP}, "missing claim aud", id="missing-aud"),
    pytest.param({"aud": AUD + "/"}, "wrong audience", id="audience-not-exact"),
    pytest.param({"iat": int(NOW) - 400, "exp": int(NOW) - 100}, "token expired", id="expired"),
    pytest.param({"iat": int(NOW) + 100, "exp": int(NOW) + 400}, "iat is in the future", id="iat"),
    pytest.param({"exp": int(NOW) + 3700}, "lifetime exceeds 3600 s", id="lifetime-too-long"),
    pytest.param({"jti": DROP}, "missing claim jti", id="missing-jti"),
    pytest.param({"jti": ""}, "jti is empty", id="empty-jti"),
    pytest.param({"jti": 12345}, "invalid token", id="jti-not-string"),
    pytest.param({"exp": DROP}, "missing claim exp", id="missing-exp"),
    pytest.param({"iat": DROP}, "missing claim iat", id="missing-iat"),
    pytest.param({"exp": "soon"}, "exp is not a number", id="exp-string"),
    pytest.param({"iat": True}, "iat is not a number", id="iat-bool"),
    pytest.param({"exp": float("nan")}, "exp is out of range", id="exp-nan"),
    pytest.param({"exp": 10**400}, "exp is out of range", id="exp-huge"),
    pytest.param({"nbf": int(NOW) + 100}, "not yet valid (nbf)", id="nbf-future"),
    pytest.param({"iat": int(NOW), "exp": int(NOW)}, "exp is not after iat", id="exp-equals-iat"),
    pytest.param({"sub": 42}, "invalid token", id="sub-not-string"),
]


@pytest.mark.parametrize(("overrides", "reason"), CLAIM_REFUSALS)
def test_refused_claims(verifier: TokenVerifier, overrides: dict[str, Any], reason: str) -> None:
    refused(verifier, bearer(sign(claims(**overrides))), reason)


def test_replayed_token_is_refused(verifier: TokenVerifier) -> None:
    token = bearer(sign(claims()))
    verifier.verify(token, AUD)
    refused(verifier, token, "jti replayed")
    # the same jti in a freshly signed token is a replay too
    payload = claims()
    verifier.verify(bearer(sign(payload)), AUD)
    refused(verifier, bearer(sign(payload, RSA_KEY, "RS384", "rsa1")), "jti replayed")


def test_refused_token_does_not_burn_its_jti(verifier: TokenVerifier) -> None:
    payload = claims()
    refused(verifier, bearer(sign({**payload, "aud": OTHER_AUD})), "wrong audience")
    assert verifier.verify(bearer(sign(payload)), AUD).jti == payload["jti"]


# --- refused: algorithms and signatures ----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_refused(verifier: TokenVerifier, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": "ec1"}
    token = f"{segment(header)}.{segment(claims())}."
    refused(verifier, bearer(token), "not allowed")


@pytest.mark.parametrize("alg", ["HS384", "HS256"])
@pytest.mark.parametrize(
    "secret", [RSA_PUBLIC_PEM, b"a random shared secret of good length 0123456789abcdef"]
)
def test_hmac_is_refused(verifier: TokenVerifier, alg: str, secret: bytes) -> None:
    refused(verifier, bearer(hmac_token(secret, alg, claims())), f"alg '{alg}' not allowed")


def test_disallowed_alg_is_refused_before_anything_else(
    url_verifier: TokenVerifier, server: JwksServer
) -> None:
    # alg is checked first: before the issuer (unknown here), the kid and any JWKS fetch
    stranger = claims(iss="https://unknown.example.org")
    tokens = [
        f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': 'ec1'})}.{segment(stranger)}.",
        hmac_token(RSA_PUBLIC_PEM, "HS384", stranger, kid="nope"),
        hmac_token(RSA_PUBLIC_PEM, "HS256", stranger),
        sign(stranger, P256_KEY, "ES256", "p256", typ="x"),
        sign(stranger, RSA_KEY, "RS256", "rsa1", jku="https://attacker.example/jwks"),
    ]
    for token in tokens:
        refused(url_verifier, bearer(token), "not allowed")
    assert sum(server.requests.values()) == 0


def test_hmac_signature_under_an_rs384_label_is_refused(verifier: TokenVerifier) -> None:
    # the key-confusion attack with the header lying about the algorithm: RS384 verification
    # with the RSA key object rejects an HMAC value
    refused(verifier, bearer(hmac_token(RSA_PUBLIC_PEM, "RS384", claims())), "bad signature")


def test_other_algorithms_are_refused(verifier: TokenVerifier) -> None:
    refused(verifier, bearer(sign(claims(), P256_KEY, "ES256", "p256")), "alg 'ES256' not allowed")
    refused(verifier, bearer(sign(claims(), RSA_KEY, "RS256", "rsa1")), "alg 'RS256' not allowed")
    refused(verifier, bearer(sign(claims(), RSA_KEY, "PS384", "rsa1")), "alg 'PS384' not allowed")
    no_alg = segment({"typ": "JWT", "kid": "ec1"})
    refused(verifier, bearer(f"{no_alg}.{segment(claims())}.AAAA"), "alg None not allowed")


@pytest.mark.parametrize(
    ("alg", "kid", "reason"),
    [
        ("ES384", "p256", "not an EC P-384 key"),  # a P-256 key offered for ES384
        ("ES384", "rsa1", "not an EC P-384 key"),
        ("RS384", "ec1", "not an RSA key"),
        ("RS384", "rsa-small", "shorter than 2048 bits"),
        ("RS384", "rsa-private", "private key material"),
    ],
)
def test_key_of_the_wrong_type_is_refused(
    verifier: TokenVerifier, alg: str, kid: str, reason: str
) -> None:
    # the header names a key that cannot verify this alg: refused before any verification
    key = EC_KEY if alg == "ES384" else RSA_KEY
    refused(verifier, bearer(sign(claims(), key, alg, kid)), reason)


def test_key_published_for_another_alg_is_refused(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(rsa_jwk(RSA_KEY, "rsa1", alg="RS256"))))
    verifier = TokenVerifier(make_settings(Issuer(iss=ISS, jwks_file=path)), clock=clock)
    refused(verifier, bearer(sign(claims(), RSA_KEY, "RS384", "rsa1")), "key is for alg 'RS256'")


def test_signature_by_another_key_is_refused(verifier: TokenVerifier) -> None:
    refused(verifier, bearer(sign(claims(), EC2_KEY, "ES384", "ec1")), "bad signature")


def test_tampered_signature_is_refused(verifier: TokenVerifier) -> None:
    for key, alg, kid in [(EC_KEY, "ES384", "ec1"), (RSA_KEY, "RS384", "rsa1")]:
        head, body, sig = sign(claims(), key, alg, kid).split(".")
        raw = bytearray(unb64(sig))
        raw[len(raw) // 2] ^= 0x01
        refused(verifier, bearer(f"{head}.{body}.{b64(bytes(raw))}"), "bad signature")
        refused(verifier, bearer(f"{head}.{body}."), "bad signature")


def test_tampered_payload_is_refused(verifier: TokenVerifier) -> None:
    for key, alg, kid in [(EC_KEY, "ES384", "ec1"), (RSA_KEY, "RS384", "rsa1")]:
        head, body, sig = sign(claims(aud=OTHER_AUD), key, alg, kid).split(".")
        payload = json.loads(unb64(body))
        payload["aud"] = AUD
        refused(verifier, bearer(f"{head}.{segment(payload)}.{sig}"), "bad signature")


# --- refused: header -----------------------------------------------------------------------


def test_unknown_kid_is_refused(verifier: TokenVerifier) -> None:
    refused(verifier, bearer(sign(claims(), kid="no-such-key")), "unknown kid 'no-such-key'")


def test_missing_or_bad_kid_is_refused(verifier: TokenVerifier) -> None:
    refused(verifier, bearer(sign(claims(), kid=DROP)), "missing kid")
    refused(verifier, bearer(sign(claims(), kid="")), "missing kid")
    header = {"alg": "ES384", "typ": "JWT", "kid": 7}
    refused(verifier, bearer(f"{segment(header)}.{segment(claims())}.AAAA"), "malformed token")


def test_typ_must_be_jwt(verifier: TokenVerifier) -> None:
    assert verifier.verify(bearer(sign(claims(), typ="jwt")), AUD)
    refused(verifier, bearer(sign(claims(), typ="at+jwt")), "typ is not JWT")
    refused(verifier, bearer(sign(claims(), typ=None)), "typ is not JWT")  # PyJWT drops it


def test_crit_header_is_refused(verifier: TokenVerifier) -> None:
    header = {"alg": "ES384", "typ": "JWT", "kid": "ec1", "crit": ["exp"], "exp": 1}
    refused(verifier, bearer(f"{segment(header)}.{segment(claims())}.AAAA"), "malformed token")
    header = {"alg": "ES384", "typ": "JWT", "kid": "ec1", "crit": ["b64"], "b64": True}
    refused(verifier, bearer(f"{segment(header)}.{segment(claims())}.AAAA"), "crit header not")


def test_jku_elsewhere_is_refused_and_never_fetched(
    url_verifier: TokenVerifier, server: JwksServer
) -> None:
    for jku in [server.url("/evil.json"), "https://attacker.example/jwks.json", 7]:
        refused(url_verifier, bearer(sign(claims(), jku=jku)), "jku is not the issuer's")
    assert server.requests["/evil.json"] == 0
    assert server.requests["/jwks.json"] == 0


def test_jku_with_a_file_issuer_is_refused(verifier: TokenVerifier, server: JwksServer) -> None:
    refused(verifier, bearer(sign(claims(), jku=server.url())), "jku is not the issuer's")
    assert sum(server.requests.values()) == 0


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("   ", "missing Authorization header"),
        ("Basic xyz", "scheme is not Bearer"),
        ("Basic dXNlcjpwYXNz", "scheme is not Bearer"),
        ("Bearer", "malformed Bearer credentials"),
        ("Bearer a.b.c d", "malformed Bearer credentials"),
        ("Bearerabc.def.ghi", "scheme is not Bearer"),
        ("Bearer garbage", "not a compact JWS"),
        ("Bearer not.a.jwt!", "not a compact JWS"),
        ("Bearer a.b.c.d", "not a compact JWS"),
        ("Bearer abc.def.ghi", "malformed token"),
        (f"Bearer {b64(b'not json')}.{b64(b'{}')}.", "malformed token"),
        (f"Bearer {b64(b'[1]')}.{b64(b'{}')}.", "malformed token"),
        (f"Bearer {b64(b'[' * 3000)}.{b64(b'{}')}.", "malformed token"),
        ("Bearer " + "a" * 20_000 + ".b.c", "too large"),
        (b"Bearer abc", "not text"),
    ],
)
def test_malformed_authorization_is_refused(
    verifier: TokenVerifier, authorization: Any, reason: str
) -> None:
    refused(verifier, authorization, reason)


def test_malformed_payload_is_refused(verifier: TokenVerifier) -> None:
    head = segment({"alg": "ES384", "typ": "JWT", "kid": "ec1"})
    for body in [b"not json", b"[1, 2]", b"[" * 3000, b'{"iss": 5}']:
        with pytest.raises(AuthError):
            verifier.verify(bearer(f"{head}.{b64(body)}.AAAA"), AUD)


# --- JWKS by URL: failures, rotation, caching ----------------------------------------------


def test_unreachable_jwks_url_is_refused_quickly(http: httpx.Client, clock: Clock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(
        Issuer(iss=ISS, jwks_url=f"http://127.0.0.1:{port}/jwks.json"), fhir_timeout_s=1.0
    )
    verifier = TokenVerifier(settings, http=http, clock=clock)
    started = time.monotonic()
    refused(verifier, bearer(sign(claims())), "JWKS fetch for issuer")
    assert time.monotonic() - started < 3.0
    # within 10 s of a failure the URL is not tried again
    refused(verifier, bearer(sign(claims())), "unavailable (recent failure)")


def test_silent_jwks_server_times_out(http: httpx.Client, clock: Clock) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        settings = make_settings(
            Issuer(iss=ISS, jwks_url=f"http://127.0.0.1:{port}/jwks.json"), fhir_timeout_s=0.5
        )
        verifier = TokenVerifier(settings, http=http, clock=clock)
        started = time.monotonic()
        refused(verifier, bearer(sign(claims())), "Timeout")
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3.0


@pytest.mark.parametrize(
    ("path", "reason"), [("/missing", "HTTP 404"), ("/not-json", "JWKS document is not JSON")]
)
def test_bad_jwks_response_is_refused(
    server: JwksServer, http: httpx.Client, clock: Clock, path: str, reason: str
) -> None:
    settings = make_settings(Issuer(iss=ISS, jwks_url=server.url(path)))
    verifier = TokenVerifier(settings, http=http, clock=clock)
    refused(verifier, bearer(sign(claims())), reason)


def test_oversized_jwks_is_refused(server: JwksServer, http: httpx.Client, clock: Clock) -> None:
    settings = make_settings(Issuer(iss=ISS, jwks_url=server.url("/huge")))
    verifier = TokenVerifier(settings, http=http, clock=clock)
    refused(verifier, bearer(sign(claims())), "JWKS document too large")


def test_slow_drip_jwks_is_cut_off_at_the_deadline(
    server: JwksServer, http: httpx.Client, clock: Clock
) -> None:
    settings = make_settings(Issuer(iss=ISS, jwks_url=server.url("/drip")), fhir_timeout_s=0.5)
    verifier = TokenVerifier(settings, http=http, clock=clock)
    started = time.monotonic()
    refused(verifier, bearer(sign(claims())), "JWKS fetch too slow")
    assert time.monotonic() - started < 2.0


def test_jwks_document_without_keys_is_refused(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "jwks.json"
    for document in ['{"kty": "EC"}', "[]", '{"keys": {}}']:
        path.write_text(document)
        verifier = TokenVerifier(make_settings(Issuer(iss=ISS, jwks_file=path)), clock=clock)
        refused(verifier, bearer(sign(claims())), "no keys list")
    verifier = TokenVerifier(
        make_settings(Issuer(iss=ISS, jwks_file=tmp_path / "absent.json")), clock=clock
    )
    refused(verifier, bearer(sign(claims())), "unreadable")


def test_key_rotation_refetches_at_most_every_10_s(
    url_verifier: TokenVerifier, server: JwksServer, clock: Clock
) -> None:
    server.document = jwks(ec_jwk(EC_KEY, "ec1"))
    url_verifier.verify(bearer(sign(claims())), AUD)
    assert server.requests["/jwks.json"] == 1

    server.document = jwks(ec_jwk(EC_KEY, "ec1"), ec_jwk(EC2_KEY, "ec2"))
    clock.now += 5  # the last fetch was 5 s ago: an unknown kid does not refetch yet
    for _ in range(3):
        refused(url_verifier, bearer(sign(claims(clock.now), EC2_KEY, kid="ec2")), "unknown kid")
    assert server.requests["/jwks.json"] == 1

    clock.now += 6  # 11 s after the last fetch: one refetch finds the new key
    result = url_verifier.verify(bearer(sign(claims(clock.now), EC2_KEY, kid="ec2")), AUD)
    assert result.iss == ISS
    assert server.requests["/jwks.json"] == 2
    url_verifier.verify(bearer(sign(claims(clock.now), EC_KEY, kid="ec1")), AUD)
    assert server.requests["/jwks.json"] == 2


def test_jwks_cache_expires(server: JwksServer, http: httpx.Client, clock: Clock) -> None:
    settings = make_settings(Issuer(iss=ISS, jwks_url=server.url()), jwks_cache_s=60)
    cache = JwksCache(settings, http=http, clock=clock)
    issuer = settings.issuers[0]
    first = cache.key(issuer, "ec1", "ES384")
    assert isinstance(first, jwt.PyJWK)
    assert first.algorithm_name == "ES384"
    clock.now += 30
    cache.key(issuer, "ec1", "ES384")
    assert server.requests["/jwks.json"] == 1
    server.document = jwks(rsa_jwk(RSA_KEY, "rsa1"))  # ec1 retired
    clock.now += 31
    assert cache.key(issuer, "rsa1", "RS384").algorithm_name == "RS384"
    assert server.requests["/jwks.json"] == 2
    with pytest.raises(AuthError, match="unknown kid"):
        cache.key(issuer, "ec1", "ES384")
    with pytest.raises(AuthError, match="not allowed"):
        cache.key(issuer, "rsa1", "HS256")


def test_jwks_file_is_reread_when_the_cache_expires(jwks_path: Path, clock: Clock) -> None:
    verifier = TokenVerifier(make_settings(Issuer(iss=ISS, jwks_file=jwks_path)), clock=clock)
    verifier.verify(bearer(sign(claims())), AUD)
    jwks_path.write_text(json.dumps(jwks(ec_jwk(EC2_KEY, "ec2"))))
    clock.now += 301
    verifier.verify(bearer(sign(claims(clock.now), EC2_KEY, kid="ec2")), AUD)
    refused(verifier, bearer(sign(claims(clock.now))), "unknown kid 'ec1'")


# --- ReplayCache ---------------------------------------------------------------------------


def test_replay_cache_is_thread_safe() -> None:
    cache = ReplayCache()
    for round_ in range(5):
        outcomes: list[bool] = []
        barrier = threading.Barrier(32)

        def attempt(
            key: str, barrier: threading.Barrier = barrier, outcomes: list[bool] = outcomes
        ) -> None:
            barrier.wait()
            outcomes.append(cache.check_and_add(key, NOW + 60, NOW))

        threads = [threading.Thread(target=attempt, args=(f"jti-{round_}",)) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count(True) == 1
        assert outcomes.count(False) == 31


def test_replay_cache_prunes_expired_entries() -> None:
    cache = ReplayCache()
    assert cache.check_and_add("a", NOW + 10, NOW)
    assert cache.check_and_add("b", NOW + 20, NOW)
    assert not cache.check_and_add("a", NOW + 10, NOW + 5)
    assert len(cache) == 2
    assert cache.check_and_add("c", NOW + 100, NOW + 10)  # "a" expired at NOW + 10
    assert len(cache) == 2
    assert cache.check_and_add("a", NOW + 40, NOW + 10)  # seen again after it expired: new
    assert not cache.check_and_add("a", NOW + 40, NOW + 39)
    assert cache.check_and_add("z", NOW + 1000, NOW + 999)
    assert len(cache) == 1  # only "z" is still valid
    assert cache.check_and_add("old", NOW, NOW + 1)  # already expired: accepted, not stored
    assert len(cache) == 1


def test_replay_cache_when_full_evicts_the_soonest_expiring() -> None:
    cache = ReplayCache(max_entries=3)
    assert cache.check_and_add("late", NOW + 300, NOW)
    assert cache.check_and_add("soon", NOW + 10, NOW)
    assert cache.check_and_add("mid", NOW + 100, NOW)
    assert cache.check_and_add("new", NOW + 200, NOW)  # full: "soon" makes room
    assert len(cache) == 3
    assert not cache.check_and_add("late", NOW + 300, NOW)
    assert not cache.check_and_add("mid", NOW + 100, NOW)
    assert cache.check_and_add("soon", NOW + 10, NOW)  # the documented cost of eviction
    with pytest.raises(ValueError, match="max_entries"):
        ReplayCache(max_entries=0)


# --- random input never crashes ------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["ES384", "RS384", "none", "HS256", "ES256"]) | JSON,
        "typ": st.sampled_from(["JWT", "jwt"]) | JSON,
        "kid": st.sampled_from(["ec1", "rsa1", "p256", "rsa-small", "rsa-private", "x"]) | JSON,
        "jku": JSON,
        "crit": JSON,
        "b64": st.booleans(),
    },
)
PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISS) | JSON,
        "aud": st.sampled_from([AUD, [AUD], OTHER_AUD]) | JSON,
        "exp": st.integers(int(NOW) - 100, int(NOW) + 100_000) | JSON,
        "iat": st.integers(int(NOW) - 100_000, int(NOW) + 100) | JSON,
        "nbf": JSON,
        "jti": st.text(max_size=10) | JSON,
        "sub": JSON,
        "tenant": JSON,
    },
)
STRUCTURED = st.builds(
    lambda h, p, s: f"Bearer {segment(h)}.{segment(p)}.{b64(s)}",
    HEADERS,
    PAYLOADS | JSON,
    st.binary(max_size=520),
)


@pytest.fixture(scope="module")
def module_verifier(tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(STANDARD_JWKS))
    return TokenVerifier(make_settings(Issuer(iss=ISS, jwks_file=path)), clock=Clock())


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text()
    | st.binary()
    | st.text().map(lambda t: "Bearer " + t)
    | st.from_regex(r"\A[Bb]earer [A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\Z")
    | STRUCTURED
)
def test_any_authorization_header_is_refused_with_auth_error(
    module_verifier: TokenVerifier, authorization: str | bytes
) -> None:
    candidates: list[Any] = [authorization]
    if isinstance(authorization, bytes):
        candidates.append(authorization.decode("latin-1"))  # as an ASGI server would give it
    for value in candidates:
        with pytest.raises(AuthError):
            module_verifier.verify(value, AUD)
