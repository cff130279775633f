"""Response headers every answer carries: patient data is never cached, never leaked in a
Referer, never framed by another site, and never content-sniffed.

A pure ASGI middleware (not ``BaseHTTPMiddleware``), so streaming responses stay streamed.
Static assets (``/static/``) may be cached; everything else is ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

__all__ = ["SecurityHeaders"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_ALWAYS = (
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
)
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """``extra``: more headers every answer carries (e.g. which worker process answered)."""

    def __init__(self, app: App, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.app = app
        self._static = (*_ALWAYS, *extra)
        self._other = (*self._static, _NO_STORE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                wanted = self._static if static else self._other
                headers.extend((k, v) for k, v in wanted if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
