"""The evaluation context: everything the engine's passes share, frozen once derived."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from ..facts import FactValue
from ..knowledge import Knowledge
from .derive import CurrentMed, Derivation, FactMap, OrderedMed, Renal

__all__ = ["EvalContext"]


@dataclass(frozen=True, slots=True)
class EvalContext:
    """Facts (with the routing overlay), renal function, current and ordered medicines and
    allergies of one patient at ``as_of``, with the knowledge base that judges them."""

    kb: Knowledge
    as_of: dt.date
    facts: FactMap
    renal: Renal
    current: tuple[CurrentMed, ...]
    orders: tuple[OrderedMed, ...]
    allergies: frozenset[str]
    unmapped_current: tuple[str, ...]
    current_ids: frozenset[str] = frozenset()  # the drug ids of ``current``, set by ``of``

    @classmethod
    def of(cls, kb: Knowledge, d: Derivation, as_of: dt.date) -> EvalContext:
        return cls(
            kb,
            as_of,
            d.facts,
            d.renal,
            tuple(d.current),
            tuple(d.orders),
            d.allergies,
            tuple(d.unmapped_current),
            frozenset(c.drug_id for c in d.current),
        )

    def overlay(self, extra: dict[str, FactValue]) -> EvalContext:
        return dataclasses.replace(self, facts=self.facts.with_overlay(extra))
