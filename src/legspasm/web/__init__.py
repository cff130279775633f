"""The clinician web pages (intake, result, print and handout, PDF, history, SMART launch).

Served by the same app as the CDS Hooks service (``legspasm.server``, ``legspasm serve``): the
route table is ``routes.ROUTES``, what the pages share ``state.WebState``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC"]

STATIC = Path(__file__).parent / "static"
