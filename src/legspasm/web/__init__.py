"""The clinician web pages (intake, result, print and handout, PDF, history).

Served by the same app as the CDS Hooks service (``legspasm serve``); see ``pages``.
"""

from __future__ import annotations

from pathlib import Path

from .pages import SERVICE_ID, web_router

__all__ = ["SERVICE_ID", "STATIC", "web_router"]

STATIC = Path(__file__).parent / "static"
