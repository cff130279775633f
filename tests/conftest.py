"""Shared fixtures: the bundled knowledge base, loaded once per session."""

from __future__ import annotations

import pytest

from legspasm import Knowledge, load_knowledge


@pytest.fixture(scope="session")
def kb() -> Knowledge:
    return load_knowledge()


def every_card_every_time() -> Knowledge:
    """The knowledge base with repeat suppression off (``card_repeat_days`` 0), for a live
    service that tests send the same patient many times and expect the same cards each time."""
    kb = load_knowledge()
    off = kb.policy["card_repeat_days"].model_copy(update={"value": 0.0})
    return kb.model_copy(update={"policy": {**kb.policy, "card_repeat_days": off}})
