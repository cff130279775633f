"""Shared fixtures: the bundled knowledge base, loaded once per session."""

from __future__ import annotations

import pytest

from legspasm import Knowledge, load_knowledge


@pytest.fixture(scope="session")
def kb() -> Knowledge:
    return load_knowledge()
