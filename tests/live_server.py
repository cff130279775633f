"""Real servers on loopback ports for tests: the legspasm service (uvicorn) and a FHIR server.

``serve(app)`` runs an ASGI app under uvicorn in a thread and yields its base URL; requests go
over real TCP. ``FhirServer`` is a small read-only FHIR REST server (stdlib http.server) that
answers reads and ``?patient=`` searches from resources you give it, and counts the requests
and their Authorization headers, so tests can check what the service fetched.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import uvicorn


def free_port() -> int:
    """A port free on 127.0.0.1 now (for a server whose URL must be known before it starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 (``port``, or a free one); yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _subject(resource: Mapping[str, Any]) -> str | None:
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return str(ref["reference"]).removeprefix("Patient/")
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # the service opens up to 8 connections at once; 5 would drop some


class FhirServer:
    """A read-only FHIR server over ``resources`` (searchset Bundles, ``_count`` paging)."""

    def __init__(self, resources: Sequence[Mapping[str, Any]] = (), page_size: int = 50) -> None:
        self.resources = list(resources)
        self.page_size = page_size
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self.status: int = 200  # set to e.g. 500 to make every request fail
        self.delay_s: float = 0.0
        self.next_base: str | None = None  # where next links point (default: this server)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                outer.authorizations.append(self.headers.get("Authorization"))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                code, body = outer.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FhirServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if self.status != 200:
            return self.status, {"resourceType": "OperationOutcome", "issue": []}
        parts = urlsplit(path)
        segments = [s for s in parts.path.split("/") if s][1:]  # drop the "fhir" prefix
        query = parse_qs(parts.query)
        if len(segments) == 2:
            rtype, rid = segments
            for r in self.resources:
                if r.get("resourceType") == rtype and r.get("id") == rid:
                    return 200, dict(r)
            return 404, {"resourceType": "OperationOutcome", "issue": []}
        rtype = segments[0] if segments else ""
        values = query.get("patient") or query.get("subject")
        patient = values[0] if values else None
        hits = [
            r
            for r in self.resources
            if r.get("resourceType") == rtype and (patient is None or _subject(r) == patient)
        ]
        for d in query.get("date", []):  # date=geYYYY-MM-DD on an Observation's effective date
            if d.startswith("ge"):
                hits = [r for r in hits if str(r.get("effectiveDateTime", "9999"))[:10] >= d[2:]]
        size = min(self.page_size, int((query.get("_count") or [self.page_size])[0]))
        page = int((query.get("_page") or ["0"])[0])
        chunk = hits[page * size : (page + 1) * size]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "entry": [{"resource": r} for r in chunk],
        }
        if (page + 1) * size < len(hits):
            kept = [(k, v) for k, vs in query.items() if k != "_page" for v in vs]
            qs = urlencode([*kept, ("_page", str(page + 1))])
            base = self.next_base or self.url
            bundle["link"] = [{"relation": "next", "url": f"{base}/{rtype}?{qs}"}]
        return 200, bundle


def upload_result(browser: Any, base: str, case: Path | str, width: int, height: int) -> Any:
    """A new browser page of the given size on the result page of a case file uploaded through
    the web page (as a clinician would); the caller closes ``page.context``."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(base + "/?form=full")
    page.get_by_label("File", exact=True).set_input_files(str(case))
    page.get_by_role("button", name="Upload and assess").click()
    page.wait_for_url("**/assessments/*")
    return page
