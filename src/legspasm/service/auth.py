"""CDS Hooks caller authentication: the EHR's JWT, checked against the EHR's published keys.

Every CDS Hooks call carries ``Authorization: Bearer <JWT>`` signed by the EHR (CDS Hooks 2.0,
"Trusting CDS Clients"). :meth:`TokenVerifier.verify` accepts a token only when all of these
hold, checked in this order; the first failure raises :class:`AuthError` whose reason is for the
server log only (it never contains the token; claim values quoted in it are short reprs):

1. the header is ``Bearer <compact JWS>`` (scheme case-insensitive), at most 16 KiB;
2. the JOSE header parses and its ``alg`` is ES384 or RS384 — checked before anything else is
   looked at, so ``none``, HMAC and every other algorithm never reach a verifier; ``typ`` is
   JWT; ``kid`` is a non-empty string; no ``crit``;
3. the (still unverified) ``iss`` is a configured issuer, and a ``jku``, when present, equals
   that issuer's configured ``jwks_url`` (the URL in the token itself is never fetched);
4. the issuer's JWKS has a key with that ``kid`` whose type fits ``alg`` (EC P-384 for ES384,
   RSA of 2048 bits or more for RS384); the key is bound to that one algorithm, so an RSA
   public key can never serve as an HMAC secret;
5. the signature verifies with ``algorithms=[alg]``; ``aud`` equals the service endpoint URL
   (or is a list containing it); ``iss``, ``exp``, ``iat``, ``jti`` and ``aud`` are present;
6. against the injected clock, with ``jwt_leeway_s``: ``exp`` is not past, ``iat`` and ``nbf``
   are not in the future, and ``0 < exp - iat <= jwt_max_lifetime_s``;
7. ``tenant`` equals the issuer's when the issuer configuration names one;
8. the issuer's ``jti`` has not been seen on a token that is still valid (the replay guard:
   the audit store's in the service, shared and durable; :class:`ReplayCache` by default).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP384R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..errors import AuthError
from ..settings import Issuer, Settings

__all__ = ["ALGORITHMS", "Claims", "JwksCache", "ReplayCache", "TokenVerifier"]

# The only signature algorithms CDS Hooks clients may use (spec 2.0); never `none`, never HMAC.
ALGORITHMS: Final = frozenset({"ES384", "RS384"})
MAX_TOKEN_CHARS: Final = 16_384
MAX_JWKS_BYTES: Final = 1 << 20
# An unknown kid, or a failed fetch, triggers at most one fetch per issuer per this many seconds.
MIN_REFETCH_S: Final = 10.0
MIN_RSA_BITS: Final = 2048

_REQUIRED_CLAIMS: Final = ("exp", "iat", "jti", "aud", "iss")
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _quote(value: object) -> str:
    """A short, escaped rendering of an untrusted value for a log line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its caller."""

    iss: str
    sub: str | None
    jti: str
    exp: float
    tenant: str | None


class ReplayCache:
    """Token ids seen while their tokens are still valid, so a captured token cannot be replayed.

    ``check_and_add`` returns True the first time a key is seen (accept the token) and False
    while an entry for it is live. Entries are pruned once ``expires_at`` is at or before
    ``now``; a key that has already expired is accepted and not stored. Thread-safe.

    Bounded by ``max_entries``. When that many live entries exist, the soonest-expiring ones are
    evicted to make room. The alternative, refusing new tokens when full, would let one busy or
    compromised EHR lock every caller out; eviction only re-opens a replay window for the tokens
    closest to expiry, and only at a load (``max_entries`` tokens valid at once) far above what
    a CDS service sees. Expired entries always go first, so a live entry is evicted only when
    keeping it would exceed ``max_entries``.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # exactly one (expires_at, key) per entry
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def check_and_add(self, key: str, expires_at: float, now: float) -> bool:
        """True if ``key`` is new (and is now remembered until ``expires_at``), False if seen."""
        if math.isnan(expires_at) or math.isnan(now):
            raise ValueError("expires_at and now must be numbers")
        with self._lock:
            self._prune(now)
            if key in self._expiry:
                return False
            if expires_at <= now:
                return True
            while len(self._expiry) >= self._max_entries:
                _, evicted = heapq.heappop(self._heap)
                del self._expiry[evicted]
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def _prune(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            del self._expiry[key]


@dataclass(slots=True)
class _IssuerKeys:
    """One issuer's JWKS as last fetched, and the fetch bookkeeping (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_kid: dict[str, list[dict[str, Any]]] | None = None
    fetched_at: float = 0.0
    last_attempt: float | None = None
    last_failed: bool = False
    prepared: dict[tuple[str, str], jwt.PyJWK] = field(default_factory=dict)


def _within(now: float, since: float, window: float) -> bool:
    """``now`` is less than ``window`` seconds after ``since`` (a clock going back is outside)."""
    return 0.0 <= now - since < window


class JwksCache:
    """Public keys per issuer from a file or a URL, cached for ``jwks_cache_s``.

    A URL is fetched with httpx (the injected client, or a short-lived one per fetch), without
    following redirects, with ``fhir_timeout_s`` as the timeout for each network step and, roughly,
    for the whole body; the document may be at most 1 MiB. A file is re-read when the cache
    expires. An unknown kid triggers at most one refetch per issuer per 10 s (key rotation);
    after a failed fetch the issuer is not fetched again for 10 s either. Every failure raises
    AuthError. Keys carrying private material, keys whose type does not fit the algorithm and
    RSA keys under 2048 bits are refused. Thread-safe: one lock per issuer, held while fetching.
    """

    def __init__(
        self,
        settings: Settings,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = settings.jwks_cache_s
        self._timeout = settings.fhir_timeout_s
        self._http = http
        self._clock = clock
        self._issuers: dict[tuple[str, str | None, str | None], _IssuerKeys] = {}
        self._lock = threading.Lock()

    def key(self, issuer: Issuer, kid: str, alg: str) -> Any:
        """The key with ``kid`` for ``alg``: a :class:`jwt.PyJWK` bound to ``alg``."""
        if alg not in ALGORITHMS:
            raise AuthError(f"alg {_quote(alg)} not allowed")
        state = self._state(issuer)
        with state.lock:
            now = self._clock()
            if state.by_kid is None or not _within(now, state.fetched_at, self._ttl):
                by_kid = self._refresh(issuer, state, now)
            else:
                by_kid = state.by_kid
                if kid not in by_kid and not _within(now, state.last_attempt or 0.0, MIN_REFETCH_S):
                    by_kid = self._refresh(issuer, state, now)
            candidates = by_kid.get(kid)
            if not candidates:
                raise AuthError(f"unknown kid {_quote(kid)} for issuer {_quote(issuer.iss)}")
            prepared = state.prepared.get((kid, alg))
            if prepared is None:
                prepared = _prepare(candidates, kid, alg)
                state.prepared[(kid, alg)] = prepared
            return prepared

    def _state(self, issuer: Issuer) -> _IssuerKeys:
        source = str(issuer.jwks_file) if issuer.jwks_file is not None else None
        ident = (issuer.iss, issuer.jwks_url, source)
        with self._lock:
            state = self._issuers.get(ident)
            if state is None:
                state = self._issuers[ident] = _IssuerKeys()
            return state

    def _refresh(
        self, issuer: Issuer, state: _IssuerKeys, now: float
    ) -> dict[str, list[dict[str, Any]]]:
        if (
            state.last_failed
            and state.last_attempt is not None
            and _within(now, state.last_attempt, MIN_REFETCH_S)
        ):
            raise AuthError(f"JWKS for issuer {_quote(issuer.iss)} unavailable (recent failure)")
        state.last_attempt = now
        try:
            by_kid = _parse_jwks(self._load(issuer))
        except AuthError:
            state.last_failed = True
            raise
        state.last_failed = False
        state.by_kid = by_kid
        state.fetched_at = now
        state.prepared = {}
        return by_kid

    def _load(self, issuer: Issuer) -> bytes:
        if issuer.jwks_file is not None:
            try:
                raw = issuer.jwks_file.read_bytes()
            except OSError as exc:
                raise AuthError(
                    f"JWKS file for issuer {_quote(issuer.iss)} unreadable ({type(exc).__name__})"
                ) from exc
            if len(raw) > MAX_JWKS_BYTES:
                raise AuthError("JWKS document too large")
            return raw
        url = issuer.jwks_url
        if url is None:  # excluded by Issuer's validator
            raise AuthError(f"issuer {_quote(issuer.iss)} has no JWKS source")
        try:
            if self._http is not None:
                return self._fetch(self._http, url)
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                return self._fetch(client, url)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise AuthError(
                f"JWKS fetch for issuer {_quote(issuer.iss)} failed ({type(exc).__name__})"
            ) from exc

    def _fetch(self, client: httpx.Client, url: str) -> bytes:
        deadline = time.monotonic() + self._timeout
        with client.stream(
            "GET",
            url,
            headers={"Accept": "application/jwk-set+json, application/json"},
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
        ) as response:
            if response.status_code != 200:
                raise AuthError(f"JWKS fetch returned HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise AuthError("JWKS document too large")
                if time.monotonic() > deadline:
                    raise AuthError("JWKS fetch too slow")
            return bytes(body)


def _parse_jwks(raw: bytes) -> dict[str, list[dict[str, Any]]]:
    """The JWKS keys that have a kid, by kid (several keys may share one, e.g. EC and RSA)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise AuthError("JWKS document is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise AuthError("JWKS document has no keys list")
    by_kid: dict[str, list[dict[str, Any]]] = {}
    for jwk in document["keys"]:
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk["kid"]:
            by_kid.setdefault(jwk["kid"], []).append(jwk)
    return by_kid


def _unfit(jwk: dict[str, Any], alg: str) -> str | None:
    """Why this JWK cannot verify ``alg`` signatures, or None if it can."""
    if "d" in jwk:
        return "JWKS entry holds private key material"
    if alg == "ES384" and not (jwk.get("kty") == "EC" and jwk.get("crv") == "P-384"):
        return "not an EC P-384 key"
    if alg == "RS384" and jwk.get("kty") != "RSA":
        return "not an RSA key"
    if "alg" in jwk and jwk["alg"] != alg:
        return f"key is for alg {_quote(jwk['alg'])}"
    if "use" in jwk and jwk["use"] != "sig":
        return "key use is not sig"
    if "key_ops" in jwk and not (isinstance(jwk["key_ops"], list) and "verify" in jwk["key_ops"]):
        return "key_ops lacks verify"
    return None


def _prepare(candidates: list[dict[str, Any]], kid: str, alg: str) -> jwt.PyJWK:
    problems: list[str] = []
    for jwk in candidates:
        problem = _unfit(jwk, alg)
        if problem is None:
            try:
                pyjwk = jwt.PyJWK.from_dict(jwk, algorithm=alg)
            except (jwt.PyJWTError, ValueError, TypeError, AttributeError, KeyError) as exc:
                problems.append(f"unusable ({type(exc).__name__})")
                continue
            key = pyjwk.key
            if alg == "ES384" and not (
                isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP384R1)
            ):
                problems.append("not an EC P-384 public key")
            elif alg == "RS384" and not isinstance(key, RSAPublicKey):
                problems.append("not an RSA public key")
            elif isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
                problems.append(f"RSA key shorter than {MIN_RSA_BITS} bits")
            else:
                return pyjwk
        else:
            problems.append(problem)
    raise AuthError(f"key {_quote(kid)} does not fit {alg}: {'; '.join(problems)}")


class TokenVerifier:
    """Verifies the bearer JWT on a CDS Hooks call (see the module docstring for the rules)."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        replay: Callable[[str, float, float], bool] | None = None,
    ) -> None:
        """``replay(key, expires_at, now)`` is the replay guard: True the first time a token
        id is seen. The service passes the audit store's (shared by workers, durable across
        restarts); the default is one process's memory (:class:`ReplayCache`)."""
        self._settings = settings
        self._clock = clock
        self._jwks = JwksCache(settings, http, clock)
        self._replay = replay or ReplayCache().check_and_add

    def verify(self, authorization: str | None, audience: str) -> Claims:
        """The claims of the caller's token; ``audience`` is this service's endpoint URL.

        Raises AuthError for every refusal; nothing else escapes for any header value.
        """
        token = _bearer_token(authorization)
        alg, kid, header = _checked_header(token)
        issuer = self._issuer(_unverified_iss(token))
        if "jku" in header and (issuer.jwks_url is None or header["jku"] != issuer.jwks_url):
            raise AuthError("jku is not the issuer's configured JWKS URL")
        key = self._jwks.key(issuer, kid, alg)
        payload = _decode(token, key, alg, audience, issuer.iss)
        return self._check_claims(payload, issuer)

    def _issuer(self, iss: str) -> Issuer:
        for issuer in self._settings.issuers:
            if issuer.iss == iss:
                return issuer
        raise AuthError(f"unknown issuer {_quote(iss)}")

    def _check_claims(self, payload: dict[str, Any], issuer: Issuer) -> Claims:
        settings = self._settings
        leeway = settings.jwt_leeway_s
        now = self._clock()
        exp = _number(payload, "exp")
        iat = _number(payload, "iat")
        if exp + leeway <= now:
            raise AuthError("token expired")
        if iat > now + leeway:
            raise AuthError("iat is in the future")
        if "nbf" in payload and _number(payload, "nbf") > now + leeway:
            raise AuthError("token not yet valid (nbf)")
        if exp <= iat:
            raise AuthError("exp is not after iat")
        if exp - iat > settings.jwt_max_lifetime_s:
            raise AuthError(f"token lifetime exceeds {settings.jwt_max_lifetime_s:g} s")
        jti = payload["jti"]
        if not isinstance(jti, str) or not jti:
            raise AuthError("jti is empty")
        sub = payload.get("sub")
        if sub is not None and not isinstance(sub, str):
            raise AuthError("sub is not a string")
        tenant = payload.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError("tenant is not a string")
        if issuer.tenant is not None and tenant != issuer.tenant:
            raise AuthError("tenant does not match the issuer's")
        replay_key = hashlib.sha256(
            f"{issuer.iss}\x00{jti}".encode("utf-8", "surrogatepass")
        ).hexdigest()
        if not self._replay(replay_key, exp + leeway, now):
            raise AuthError("jti replayed")
        return Claims(iss=issuer.iss, sub=sub, jti=jti, exp=exp, tenant=tenant)


def _bearer_token(authorization: object) -> str:
    if authorization is None:
        raise AuthError("missing Authorization header")
    if not isinstance(authorization, str):
        raise AuthError("Authorization header is not text")
    if len(authorization) > MAX_TOKEN_CHARS + 64:
        raise AuthError("Authorization header too large")
    parts = authorization.split()
    if not parts:
        raise AuthError("missing Authorization header")
    scheme = parts[0]
    if not (scheme.isascii() and scheme.lower() == "bearer"):
        raise AuthError("Authorization scheme is not Bearer")
    if len(parts) != 2:
        raise AuthError("malformed Bearer credentials")
    token = parts[1]
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError("token too large")
    if not _COMPACT_JWS.fullmatch(token):
        raise AuthError("token is not a compact JWS")
    return token


def _checked_header(token: str) -> tuple[str, str, dict[str, Any]]:
    """``alg`` (allow-listed before anything else), ``kid`` and the whole JOSE header."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("malformed token") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise AuthError(f"alg {_quote(alg)} not allowed")
    typ = header.get("typ")
    if not (isinstance(typ, str) and typ.isascii() and typ.upper() == "JWT"):
        raise AuthError("typ is not JWT")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("missing kid")
    if "crit" in header:
        raise AuthError("crit header not supported")
    return alg, kid, header


def _unverified_iss(token: str) -> str:
    """The ``iss`` claim before verification: only to choose the issuer's keys."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("malformed token payload") from None
    iss = payload.get("iss")
    if not isinstance(iss, str) or not iss:
        raise AuthError("missing claim iss")
    return iss


def _decode(token: str, key: Any, alg: str, audience: str, iss: str) -> dict[str, Any]:
    """Signature, ``aud``, ``iss`` and presence of the required claims (times are checked after,
    against the injected clock)."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=iss,
            options={
                "require": list(_REQUIRED_CLAIMS),
                "verify_signature": True,
                "verify_aud": True,
                "verify_iss": True,
                "verify_sub": True,
                "verify_jti": True,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "strict_aud": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.InvalidSignatureError:
        raise AuthError("bad signature") from None
    except jwt.InvalidAudienceError:
        raise AuthError("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise AuthError("wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"missing claim {exc.claim}") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token ({type(exc).__name__})") from None


def _number(payload: dict[str, Any], name: str) -> float:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise AuthError(f"{name} is out of range") from None
    if not math.isfinite(number):
        raise AuthError(f"{name} is out of range")
    return number
