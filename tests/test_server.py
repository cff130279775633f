"""The app assembly (legspasm.server): the CDS Hooks service and the web pages meet there only,
and every endpoint and exception handler is a module-level function in a route table."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.exceptions import WebSocketRequestValidationError as WebSocketRVE
from fastapi.routing import APIRoute

from legspasm.server import create_app
from legspasm.settings import Settings

SRC = Path(__file__).parent.parent / "src" / "legspasm"


def _imports(package: str) -> set[str]:
    """Every module the package's modules import (relative imports resolved)."""
    found: set[str] = set()
    for path in (SRC / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    found.add(node.module or "")
                    continue
                base = ["legspasm", package][: 3 - node.level]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
                if node.module is None:  # from .. import web
                    found.update(".".join([*base, a.name]) for a in node.names)
    return found


@pytest.mark.parametrize(("package", "other"), [("service", "web"), ("web", "service")])
def test_the_interfaces_never_import_each_other(package: str, other: str) -> None:
    imported = _imports(package)
    assert f"legspasm.{package}" in {m.rsplit(".", 1)[0] for m in imported}  # the walk works
    assert not {m for m in imported if m.startswith(f"legspasm.{other}")}


def test_every_endpoint_and_handler_is_a_module_level_function(tmp_path: Path) -> None:
    settings = Settings(
        dev=True, database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}", as_of=dt.date(2026, 11, 21)
    )
    app = create_app(settings)
    ours = [r for r in app.routes if isinstance(r, APIRoute)]
    assert {r.path for r in ours} >= {"/cds-services/{service_id}", "/plan/{invocation_id}", "/"}
    for route in ours:
        fn = route.endpoint
        assert fn.__module__.startswith(("legspasm.service.", "legspasm.web.")), route.path
        assert "<locals>" not in fn.__qualname__, f"{route.path}: {fn.__qualname__}"
    ours_handled = {k: h for k, h in app.exception_handlers.items() if k is not WebSocketRVE}
    assert {Exception, RequestValidationError} <= set(ours_handled)
    for handler in ours_handled.values():
        assert handler.__module__ == "legspasm.service.outcome", handler
        assert "<locals>" not in handler.__qualname__
