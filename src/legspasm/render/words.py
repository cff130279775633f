"""The assessment in a clinician's words: one vocabulary for every rendering (text, page, PDF,
card). No rule id, field name or basis code reaches a clinician; these say the same in words."""

from __future__ import annotations

from collections.abc import Sequence

from ..assessment import Assessment, CitationRef, MissingDatum, PlanStep

__all__ = [
    "BASIS_WORDS",
    "BOTTOM_LINE_LABELS",
    "basis_words",
    "care_missing",
    "grade_words",
    "page_citations",
    "reasons",
    "red_flag_screen",
]

# The evidence basis of an entry (knowledge-base codes) as a reader would say it.
BASIS_WORDS = {
    "V-stored": "",
    "V-2nd": "from a secondary source",
    "V-label": "from the label",
    "M": "not yet verified",
    "UNVERIFIED": "not yet verified",
    "local-policy": "local policy",
}
# How each kind of bottom-line line is marked where a surface marks it (screen readers, PDF).
BOTTOM_LINE_LABELS = {
    "red-flag": "Act first",
    "diagnosis": "Most likely",
    "do": "Do now",
    "start": "Start",
    "do-not": "Do not",
    "hold": "Hold",
    "missing": "Missing",
}


def reasons(rationale: Sequence[str], a: Assessment) -> list[str]:
    """A rationale without the entries that only restate a condition's status ("Restless legs
    syndrome: likely"): the conditions section says that once, not under every step."""
    status = {f"{c.name}: {w}" for c in a.conditions for w in ("likely", "on the record")}
    return [r for r in rationale if r not in status]


def basis_words(basis: str) -> str:
    return BASIS_WORDS.get(basis, "not yet verified")


def grade_words(s: PlanStep) -> str:
    """'strong for; certainty moderate; from the label' for a plan step."""
    parts = [s.strength]
    if s.certainty != "not graded":
        parts.append(f"certainty {s.certainty}")
    if basis_words(s.basis):
        parts.append(basis_words(s.basis))
    return "; ".join(parts)


def red_flag_screen(a: Assessment, names: dict[str, str] | None = None) -> tuple[list[str], int]:
    """The red flags not yet excluded because their features are not recorded, by name, and how
    many features are missing. Red flags are those MissingDatum.affects ids naming one."""
    flags: dict[str, str] = {}
    count = 0
    for m in a.missing_data:
        if m.affects and all(x.startswith("RF-") for x in m.affects):
            count += 1
            for x, name in zip(m.affects, m.changes or m.affects, strict=False):
                flags.setdefault(x, (names or {}).get(x, name))
    return list(flags.values()), count


def care_missing(a: Assessment) -> list[MissingDatum]:
    """Missing facts that could change the care plan (not only the red-flag screen)."""
    return [m for m in a.missing_data if not all(x.startswith("RF-") for x in m.affects)]


def page_citations(a: Assessment) -> list[CitationRef]:
    """The references a clinician page cites: every numbered one but those only the patient
    handout uses (the handout prints no numbers; the engine numbers its sources last)."""
    clinician = {c for rf in a.red_flags for c in rf.citations}
    clinician |= {c for x in a.conditions if x.status != "unlikely" for c in x.citations}
    clinician |= {c for s in a.plan for c in s.citations}
    clinician |= {c for i in a.avoid for c in i.citations}
    clinician |= {c for i in a.avoid if i.stopping for c in i.stopping.citations}
    handout_only = {c for h in a.handout for c in h.citations} - clinician
    return [c for c in a.citations if c.id not in handout_only]
