"""The patient handout as the patient reads it: one view for the PDF, the print page and tests.

Only the words a patient needs: the sections the engine chose, the signs found today (present red
flags) apart from the "if" lists, and the patient's current medicines the plan says to review or
stop. No citation numbers, rule ids or field names: provenance stays in the Assessment.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..assessment import Assessment

__all__ = ["HandoutView", "ViewSection", "handout_text", "handout_view"]

TITLE = "Your legs: what you can do"
FOUND_LEAD = "Your clinician found signs that need checking today."
URGENT_LEAD = "Your clinician wants some signs checked urgently."
FOLLOW = "Follow what they tell you today before anything else on this sheet."
PRESCRIBED = "Medicines your clinician prescribed"


@dataclass(frozen=True, slots=True)
class ViewSection:
    id: str
    heading: str
    items: tuple[str, ...]
    note: str | None
    urgent: bool


@dataclass(frozen=True, slots=True)
class HandoutView:
    title: str
    given: str
    alert: tuple[str, ...]  # the lead lines of the urgent box (empty: no box)
    found: tuple[str, ...]  # the signs found today
    sections: tuple[ViewSection, ...]
    medicines: str | None  # "Your medicines to talk about ...", or None
    taper: str | None  # which of them not to stop all at once


def _names(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def handout_view(a: Assessment) -> HandoutView:
    """What the patient handout says for this assessment, in reading order."""
    found = tuple(i.text for s in a.handout for i in s.items if i.found)
    alert: tuple[str, ...] = ()
    if found:
        alert = (FOUND_LEAD, FOLLOW)
    elif a.red_flags:
        alert = (URGENT_LEAD, FOLLOW)
    sections = []
    for s in a.handout:
        items = tuple(i.text for i in s.items if not i.found)
        if not items:
            continue
        urgent = any(i.red_flag for i in s.items)
        sections.append(ViewSection(s.id, s.heading, items, s.note, urgent))
    current: list[str] = []
    taper: list[str] = []
    for item in a.avoid:
        if item.status != "current":
            continue
        name = item.drug.name if item.drug is not None else item.target
        if name not in current:
            current.append(name)
        if item.stopping is not None and item.stopping.gradual and name not in taper:
            taper.append(name)
    for step in a.plan:
        if step.review and step.medication is not None:
            name = step.medication.drug.name
            if name not in current:
                current.append(name)
    medicines = None
    if current:
        medicines = f"Your medicines to talk about with your clinician: {_names(current)}."
    taper_line = None
    if taper:
        taper_line = (
            f"Do not stop {_names(taper)} all at once. "
            "Your clinician will tell you how to cut down slowly."
        )
    return HandoutView(
        title=TITLE,
        given=(
            f"Given on {a.as_of.isoformat()}. Keep this sheet. "
            "Ask your clinician if anything is unclear."
        ),
        alert=alert,
        found=found,
        sections=tuple(sections),
        medicines=medicines,
        taper=taper_line,
    )


def handout_text(a: Assessment) -> str:
    """Every word of the handout as plain text, one line each (for checks such as reading
    grade; the write-in heading is included, the write-in lines are not)."""
    v = handout_view(a)
    lines = [v.title, v.given, *v.alert, *v.found]
    for s in v.sections:
        lines += [s.heading, *s.items]
        if s.note:
            lines.append(s.note)
    lines += [t for t in (v.medicines, v.taper) if t]
    lines.append(PRESCRIBED)
    return "\n".join(lines)
