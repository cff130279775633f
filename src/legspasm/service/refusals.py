"""Refused requests are counted, not stored one audit row each.

A request refused before it is processed (no token, a bad one, a replay) carries nothing worth
keeping but the fact, and a flood of them must not grow the audit store one row a request. The
counter keeps one count per service in memory and writes it, one row per service, when a
window (``window_s``, a minute by default) has passed and when the service stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from ..audit import Refusals

__all__ = ["RefusalCounter"]


class RefusalCounter:
    """Counts refusals per service; ``write`` receives the finished windows' counts."""

    def __init__(
        self,
        write: Callable[[Sequence[Refusals]], None],
        window_s: float = 60.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._write, self._window, self._now = write, timedelta(seconds=window_s), now
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], Refusals] = {}
        self._started: datetime | None = None

    def add(self, service_id: str, outcome: str = "unauthorized") -> None:
        """Count one refusal; write the counts of a window that has ended."""
        now = self._now()
        done: list[Refusals] = []
        with self._lock:
            if self._started is not None and now - self._started >= self._window:
                done, self._open, self._started = list(self._open.values()), {}, None
            if self._started is None:
                self._started = now
            c = self._open.setdefault(
                (service_id, outcome), Refusals(service_id, outcome, now, now)
            )
            c.count += 1
            c.last_at = now
        if done:
            self._write(done)

    def flush(self) -> None:
        """Write what is counted (the service is stopping)."""
        with self._lock:
            done, self._open, self._started = list(self._open.values()), {}, None
        if done:
            self._write(done)
