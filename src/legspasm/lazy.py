"""Lazy package exports (PEP 562): a package names what it exports and where each name lives;
a submodule is imported the first time one of its names is used, so ``legspasm --help`` or a
case file read by the CLI does not pay for the FHIR boundary, the engine or the models it never
touches. Type checkers see the real imports (each package repeats them under TYPE_CHECKING).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``where`` maps each exported name to
    the submodule (relative, e.g. ``".engine"``) that defines it."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        # Kept on the package, so the next use is an ordinary attribute lookup.
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*where, *importlib.import_module(package).__dict__})

    return __getattr__, __dir__
