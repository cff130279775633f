"""One report layout, two renderings (Markdown and plain text).

The layout reads like a clinical reference answer for this one patient: red flags first, then the
likely condition(s) with their criteria, the plan by phase, what to avoid, what is missing, and a
numbered reference list. Citation ids become [n] markers in order of first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..assessment import Assessment, AvoidItem, Confirmation, MedicationPlan, PlanStep
from .words import basis_words, care_missing, grade_words, reasons, red_flag_screen

__all__ = [
    "AVOID_STATUS",
    "CRITERION_STATE",
    "PHASE_TITLES",
    "alternative_text",
    "confirm_line",
    "render_markdown",
    "render_text",
]

PHASE_TITLES = {
    "acute": "During an episode",
    "work-up": "Work-up",
    "first-line": "First-line care",
    "medication": "Medicines",
    "refractory": "If refractory",
    "referral": "Referral",
    "prevention": "Prevention",
    "follow-up": "Follow-up and monitoring",
}
CRITERION_STATE = {"met": "met", "not_met": "not met", "unknown": "unknown"}
# What an avoid item's status means, in words (every rendering uses these).
AVOID_STATUS = {
    "current": "the patient takes it",
    "proposed": "would have been proposed",
    "general": "do not start",
    "ordered": "being ordered now",
}


# The case fields a FHIR record fills, as a clinician names them.
RECORD_FIELDS = {
    "labs": "labs",
    "medications": "medicines",
    "conditions": "conditions",
    "allergies": "allergies",
    "patient.weight": "weight",
    "patient.height": "height",
    "patient.birth_date": "date of birth",
    "patient.sex": "sex",
}
NOTE_KINDS = {"unmapped": "not used", "stale": "out of date", "derived": "derived", "data": "data"}


class _Doc:
    def __init__(self, md: bool, numbers: dict[str, int]) -> None:
        self.md = md
        self.numbers = numbers
        self.used: set[str] = set()  # the citations the report cites: its reference list
        self.lines: list[str] = []

    def h(self, level: int, text: str) -> None:
        if self.lines:
            self.lines.append("")
        if self.md:
            self.lines.append("#" * level + " " + text)
        else:
            self.lines.append(text.upper() if level <= 2 else text)
            self.lines.append(("=" if level == 1 else "-") * len(text))

    def p(self, text: str) -> None:
        if self.md and self.lines and self.lines[-1] and not self.lines[-1].startswith("#"):
            self.lines.append("")  # Markdown paragraphs (and a paragraph after a list) need one
        self.lines.append(text)

    def li(self, text: str, depth: int = 0) -> None:
        self.lines.append("  " * depth + ("- " if self.md else "* ") + text)

    def b(self, text: str) -> str:
        return f"**{text}**" if self.md else text

    def i(self, text: str) -> str:
        return f"_{text}_" if self.md else text

    def refs(self, ids: Iterable[str]) -> str:
        shown = [i for i in ids if i in self.numbers]
        self.used.update(shown)
        return "".join(f"[{self.numbers[i]}]" for i in shown)


def confirm_line(items: Iterable[Confirmation], lead: str = "Before prescribing, confirm") -> str:
    """'Before prescribing, confirm: age (...); allergies (...)' in one sentence."""
    parts = [f"{c.question}: {c.because}" if c.because else c.question for c in items]
    return f"{lead}: " + "; ".join(parts) + "."


def _med(
    doc: _Doc, m: MedicationPlan, depth: int, conditional: bool = False, review: bool = False
) -> None:
    name = m.drug.name + (f" (RxNorm {m.drug.rxnorm})" if m.drug.rxnorm else "")
    dose = f"{m.dose} {m.frequency}" if m.dose and m.frequency else m.start
    lead = (
        "schedule to check the current dose against: "
        if review
        else "only once confirmed: "
        if conditional
        else ""
    )
    doc.li(f"{lead}{doc.b(name)}, {m.form}: {dose}", depth)
    if m.dose and m.frequency:
        doc.li(f"start: {m.start}", depth + 1)
    if m.titration:
        doc.li(f"titration: {m.titration}", depth + 1)
    if m.max_daily_dose:
        doc.li(
            f"maximum: {m.max_daily_dose} per day" + (f" ({m.renal_band})" if m.renal_band else ""),
            depth + 1,
        )
    if m.stop_after_days is not None and m.stop_date is not None:
        doc.li(f"stop after {m.stop_after_days} days: by {m.stop_date.isoformat()}", depth + 1)
    if m.dose is None and m.drug.label:
        doc.li(f"current label: {m.drug.label}", depth + 1)
    for n in m.notes:
        doc.li(n, depth + 1)


def alternative_text(s: PlanStep, bold: Callable[[str], str] = str) -> str:
    """An option folded under the preferred one: what it is, its dose, when to choose it."""
    m = s.medication
    if m is not None:
        dose = f"{m.dose} {m.frequency}" if m.dose and m.frequency else m.start
        what = f"{bold(m.drug.name)}, {m.form}: {dose}"
        if m.titration:
            what += f"; titration: {m.titration}"
        if m.max_daily_dose:
            what += f"; maximum {m.max_daily_dose} per day"
    else:
        what = s.text
    return f"{what}. {s.option_reason or ''}".rstrip()


def _alternative(doc: _Doc, s: PlanStep) -> None:
    cond = " (conditional)" if s.status == "conditional" else ""
    doc.li(f"alternative{cond}: {alternative_text(s, doc.b)}", 1)


def _step(doc: _Doc, s: PlanStep, a: Assessment) -> None:
    lead = doc.b("CONDITIONAL") + ": " if s.status == "conditional" else ""
    doc.li(f"{lead}{s.text} {doc.refs(s.citations)} {doc.i('(' + grade_words(s) + ')')}")
    if s.confirm:
        lead = "Before prescribing, confirm" if s.medication else "First confirm"
        doc.li(doc.b(confirm_line(s.confirm, lead)), 1)
    if s.grade_note:
        doc.li(f"evidence: {s.grade_note}", 1)
    if s.medication:
        _med(doc, s.medication, 1, s.status == "conditional", s.review)
    for p in s.products:
        doc.li(f"product: {p.name}; dose per its current label: {p.label}", 1)
    if s.option_reason:
        doc.li(f"choice: {s.option_reason}", 1)
    for w in s.warnings:
        doc.li(f"{doc.b('caution')}: {w}", 1)
    why = reasons(s.rationale, a)
    if why:
        doc.li("why: " + "; ".join(why), 1)


def _avoid(doc: _Doc, a: AvoidItem, whole: Assessment) -> None:
    where = AVOID_STATUS[a.status]
    unless = " unless confirmed otherwise" if a.confirm else ""
    doc.li(
        f"{doc.b(a.severity.upper())}{unless}: {a.target} ({where}). {a.reason} "
        f"{doc.refs(a.citations)}"
    )
    if a.confirm:
        doc.li(confirm_line(a.confirm, "Not recorded, so assumed to apply"), 1)
    if a.stopping is not None:
        doc.li(f"how to stop: {a.stopping.text} {doc.refs(a.stopping.citations)}", 1)
    why = reasons(a.rationale, whole)
    if why:
        doc.li("why: " + "; ".join(why), 1)


def _record(doc: _Doc, a: Assessment) -> None:
    """What the FHIR record contributed, grouped; text matches are flagged for checking."""
    doc.h(2, "Data used from the record")
    groups: dict[tuple[str, str], list[str]] = {}
    for u in a.data_used:
        value = u.value.split(";")[0] if u.field == "medications" else u.value
        key = (u.field, value)
        groups.setdefault(key, []).append(u.matched_by)
    by_field: dict[str, list[str]] = {}
    for (fld, value), hows in groups.items():
        flag = " [matched by name in free text: check]" if "text" in hows else ""
        times = f" ×{len(hows)}" if len(hows) > 1 else ""
        by_field.setdefault(RECORD_FIELDS.get(fld, fld), []).append(f"{value}{times}{flag}")
    for fld, values in by_field.items():
        doc.li(f"{doc.b(fld)}: " + "; ".join(values[:12]) + (" ..." if len(values) > 12 else ""))
    if a.unmapped:
        total = sum(m.count for m in a.unmapped)
        doc.h(2, f"Not used from the record ({total} resources or elements)")
        reasons: dict[str, list[str]] = {}
        for m in a.unmapped:
            times = f" ×{m.count}" if m.count > 1 else ""
            reasons.setdefault(f"{m.resource_type}: {m.reason}", []).append(m.item + times)
        for reason, items in reasons.items():
            more = f" and {len(items) - 8} more" if len(items) > 8 else ""
            doc.li(f"{reason}: " + "; ".join(items[:8]) + more)


def _red_flags(doc: _Doc, a: Assessment) -> None:
    doc.h(2, "Red flags: act before anything else")
    for rf in a.red_flags:
        head = rf.urgency.upper() + (" (possible: exclude it)" if rf.status == "possible" else "")
        doc.li(f"{doc.b(head)}: {rf.name}. {rf.action} {doc.refs(rf.citations)}")
        if rf.order:
            doc.li(f"order: {rf.order}", 1)
        if rf.rationale:
            doc.li("why: " + "; ".join(rf.rationale), 1)
    held = [w for w in a.withheld if any(w.by == rf.id for rf in a.red_flags)]
    if held:
        doc.li("held until the red flag is excluded: " + "; ".join(w.text for w in held))


def _plan(doc: _Doc, a: Assessment, level: int) -> None:
    doc.h(level, "What to do")
    if not a.plan:
        doc.p("No plan step applies yet.")
    for phase, title in PHASE_TITLES.items():
        steps = [s for s in a.plan if s.phase == phase]
        if steps:
            doc.h(level + 1, title)
            for s in steps:
                if s.alternative_to:
                    _alternative(doc, s)
                else:
                    _step(doc, s, a)
    red = {rf.id for rf in a.red_flags}
    other = [w for w in a.withheld if w.by not in red]
    if other:
        doc.h(level + 1, "Withheld for this patient")
        for w in other:
            doc.li(f"{w.text} {doc.b('Withheld')}: {w.reason}")


def _conditions(doc: _Doc, a: Assessment, level: int) -> None:
    shown = [c for c in a.conditions if c.status in ("documented", "likely", "possible")]
    doc.h(level, "What it probably is")
    if not shown:
        doc.p("No condition is established yet; see the missing data below.")
    for c in shown:
        status = "on the record" if c.status == "documented" else c.status
        doc.li(f"{doc.b(c.name)}: {status} {doc.refs(c.citations)}")
        for k in c.criteria:
            doc.li(f"{CRITERION_STATE[k.state]}: {k.text}", 1)
    ruled = [c.name for c in a.conditions if c.status == "unlikely"]
    if ruled:
        doc.p(doc.i("Unlikely:") + " " + ", ".join(ruled) + ".")


def _missing(doc: _Doc, a: Assessment) -> None:
    care = care_missing(a)
    flags, features = red_flag_screen(a)
    if not care and not flags:
        return
    doc.h(2, "Missing data that could change this answer")
    for m in care:
        changes = ", ".join(m.changes or m.affects)
        doc.li(f"{m.question}: could change {changes}")
    if flags:
        more = f" and {len(flags) - 6} more" if len(flags) > 6 else ""
        doc.li(
            f"red-flag screen not documented ({features} features): "
            + ", ".join(flags[:6])
            + more
            + " not excluded"
        )


def _render(a: Assessment, md: bool) -> str:
    doc = _Doc(md, {c.id: c.number for c in a.citations})
    title = "legspasm assessment" + (f": {a.case_id}" if a.case_id else "")
    doc.h(1, title)
    doc.p(
        f"As of {a.as_of.isoformat()} · knowledge base {a.knowledge_version}. Decision support "
        "for a clinician, not a substitute for clinical judgement."
    )
    if a.bottom_line:
        doc.h(2, "Bottom line")
        for line in a.bottom_line:
            doc.li(doc.b(line.text) if line.kind in ("red-flag", "do-not") else line.text)
    if a.red_flags:
        _red_flags(doc, a)
    if a.avoid:
        doc.h(2, "What not to do")
        for item in a.avoid:
            _avoid(doc, item, a)
    if a.red_flags:
        doc.h(2, "Once the red flag is excluded")
        _plan(doc, a, 3)
        _conditions(doc, a, 3)
    else:
        _plan(doc, a, 2)
        _conditions(doc, a, 2)
    _missing(doc, a)
    d = a.derived
    doc.h(2, "Derived values")
    doc.li(f"age: {d.age_years:g} years" if d.age_years is not None else "age: unknown")
    crcl_refs = doc.refs(["CG1976"]) if d.crcl_ml_min is not None else ""
    doc.li(f"creatinine clearance: {d.crcl_note} {crcl_refs}".rstrip())
    if d.renal_function_note:
        doc.li(f"renal function used for dosing: {d.renal_function_note}")
    if d.egfr is not None:
        doc.li(f"eGFR: {d.egfr:g} mL/min/1.73 m²")
    if d.irls_total is not None:
        doc.li(f"IRLS total: {d.irls_total} of 40 ({d.irls_severity})")
    if a.data_used or a.unmapped:
        _record(doc, a)
    if a.notes:
        doc.h(2, "Data notes")
        for n in a.notes:
            doc.li(f"{NOTE_KINDS[n.kind]}: {n.text}")
    doc.h(2, "References")
    for ref in (c for c in a.citations if c.id in doc.used):
        extra = f" ({basis_words(ref.basis)})" if basis_words(ref.basis) else ""
        doc.p(f"{ref.number}. {ref.text}{extra}" + (f" {ref.url}" if ref.url else ""))
    return "\n".join(doc.lines) + "\n"


def render_markdown(a: Assessment) -> str:
    return _render(a, md=True)


def render_text(a: Assessment) -> str:
    return _render(a, md=False)
