"""Collects the unknown facts that would change a result, and what each would change."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..assessment import MissingDatum
from .explain import label, where

__all__ = ["Missing"]


class Missing:
    def __init__(self) -> None:
        self._by_fact: dict[str, list[str]] = {}

    def add(self, facts: Iterable[str], affects: str) -> None:
        for f in facts:
            ids = self._by_fact.setdefault(f, [])
            if affects not in ids:
                ids.append(affects)

    def result(self, name: Callable[[str], str] | None = None) -> list[MissingDatum]:
        """Each unknown fact with what it affects (ids, and ``name`` of each in words)."""
        return [
            MissingDatum(
                fact=f,
                question=label(f),
                where=where(f),
                affects=ids,
                changes=[name(x) for x in ids] if name is not None else [],
            )
            for f, ids in self._by_fact.items()
        ]
