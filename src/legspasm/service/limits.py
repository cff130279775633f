"""A request body size limit applied before anything reads or parses the body.

A pure ASGI middleware: a declared ``Content-Length`` above the limit is answered 413 at once,
without reading the body (and before authentication); a body without one (chunked) is read up
to the limit, then answered 413 or handed on unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyLimit"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """``on_refused(path, status)`` is told of each refusal (the service counts them)."""

    def __init__(
        self,
        app: App,
        max_bytes: int,
        on_refused: Callable[[str, int], None] = lambda path, status: None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                self.on_refused(scope.get("path", ""), 400)
                await self._refuse(send, 400, "Content-Length is not a number")
                return
            if size > self.max_bytes:
                self.on_refused(scope.get("path", ""), 413)
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        if headers.get(b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                self.on_refused(scope.get("path", ""), 413)
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        queue = iter(messages)

        async def replay() -> Message:
            return next(queue, None) or await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        mb = self.max_bytes / (1024 * 1024)
        await self._refuse(send, 413, f"the request body is larger than {mb:g} MB")

    @staticmethod
    async def _refuse(send: Send, status: int, text: str) -> None:
        body = json.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "too-costly", "diagnostics": text}],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/fhir+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
