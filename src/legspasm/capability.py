"""Plan links as capabilities: the card link carries a signed, expiring token, not just an id.

A CDS Hooks card links to ``/plan/{invocation}?t=TOKEN``. The token is ``EXPIRES.SIGNATURE``:
the expiry (Unix seconds) and an HMAC-SHA256, keyed with the server's link secret, over the
invocation id and that expiry. Whoever holds the link may read that one plan until it expires;
an id alone, a token for another plan, an altered expiry or a token past its time opens nothing.

Pure functions: the caller gives the key and the time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from enum import StrEnum

__all__ = ["LinkCheck", "check_token", "sign_token"]


class LinkCheck(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


def _signature(key: bytes, invocation_id: str, expires: int) -> str:
    mac = hmac.new(key, f"plan:{invocation_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign_token(key: bytes, invocation_id: str, expires: int) -> str:
    """The token that opens ``invocation_id``'s plan until ``expires`` (Unix seconds)."""
    return f"{expires}.{_signature(key, invocation_id, expires)}"


def check_token(key: bytes, invocation_id: str, token: str | None, now: float) -> LinkCheck:
    """Whether ``token`` opens ``invocation_id``'s plan at ``now`` (Unix seconds)."""
    if not token or len(token) > 100:
        return LinkCheck.INVALID
    expires_text, _, signature = token.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return LinkCheck.INVALID
    expires = int(expires_text)
    if not signature.isascii() or not hmac.compare_digest(
        signature, _signature(key, invocation_id, expires)
    ):
        return LinkCheck.INVALID
    return LinkCheck.VALID if now < expires else LinkCheck.EXPIRED
