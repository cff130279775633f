"""PDF views of an Assessment (reportlab): a clinician summary and a patient handout.

Same content and order as the web page's print view: red flags first, the likely conditions,
the plan by phase with doses and stop dates, what to avoid, what is missing, numbered
references; the handout is the plain-language sections the engine chose for this patient.
The standard PDF fonts cover Windows-1252 only, so a few symbols are written out.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    ListFlowable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from ..assessment import Assessment, PlanStep
from .report import AVOID_STATUS, CRITERION_STATE, PHASE_TITLES, alternative_text, confirm_line

__all__ = ["handout_pdf", "summary_pdf"]

_SYMBOLS = str.maketrans(
    {
        "≥": ">=",
        "≤": "<=",
        "→": "->",
        "≈": "~",
        "−": "-",
        "‑": "-",
        "²": "2",
        "α": "alpha-",
        "δ": "delta",
    }
)


def _t(text: str) -> str:
    """Text for a Paragraph: symbols outside Windows-1252 written out, markup escaped."""
    plain = text.translate(_SYMBOLS).encode("cp1252", "replace").decode("cp1252")
    return escape(plain)


class _Styles:
    def __init__(self, base: float) -> None:
        s = getSampleStyleSheet()
        self.title = ParagraphStyle("t", parent=s["Title"], fontSize=base + 7, alignment=TA_LEFT)
        self.h2 = ParagraphStyle("h2", parent=s["Heading2"], fontSize=base + 3, spaceBefore=8)
        self.h3 = ParagraphStyle("h3", parent=s["Heading3"], fontSize=base + 1, spaceBefore=4)
        self.body = ParagraphStyle("b", parent=s["BodyText"], fontSize=base, leading=base * 1.3)
        self.small = ParagraphStyle(
            "s", parent=self.body, fontSize=base - 1.5, textColor=colors.HexColor("#4a5360")
        )
        self.alert = ParagraphStyle(
            "a",
            parent=self.body,
            textColor=colors.HexColor("#a4001d"),
            borderColor=colors.HexColor("#a4001d"),
            borderWidth=1.5,
            borderPadding=5,
            spaceBefore=6,
            spaceAfter=8,
        )


def _refs(ids: Iterable[str], numbers: dict[str, int]) -> str:
    return "".join(f"[{numbers[i]}]" for i in ids if i in numbers)


def _bullets(items: Sequence[Flowable | str], st: _Styles) -> ListFlowable:
    flow = [Paragraph(i, st.body) if isinstance(i, str) else i for i in items]
    return ListFlowable(flow, bulletType="bullet", start="•", leftIndent=12)


def _build(story: list[Flowable], title: str) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=title,
        author="legspasm",
        subject="Leg cramps, spasms and restless legs",
    )
    doc.build(story)
    return buf.getvalue()


_UNLESS = " unless confirmed otherwise"


def _step(s: PlanStep, numbers: dict[str, int], st: _Styles) -> list[Flowable]:
    grade = f"{s.strength}; certainty {s.certainty}"
    if s.basis in ("M", "UNVERIFIED"):
        grade += "; not verified against the primary source"
    lead = "<b>CONDITIONAL:</b> " if s.status == "conditional" else ""
    out: list[Flowable] = [
        Paragraph(f"{lead}{_t(s.text)} {_refs(s.citations, numbers)} <i>({_t(grade)})</i>", st.body)
    ]
    if s.confirm:
        lead = "Before prescribing, confirm" if s.medication else "First confirm"
        out.append(Paragraph(f"<b>{_t(confirm_line(s.confirm, lead))}</b>", st.small))
    m = s.medication
    if m is not None:
        if s.review:
            out.append(Paragraph("Schedule to check the current dose against:", st.small))
        rows = [["Medicine", f"{m.drug.name}, {m.form}"]]
        if m.dose and m.frequency:
            rows.append(["Dose", f"{m.dose} {m.frequency}"])
        rows.append(["Start", m.start])
        if m.titration:
            rows.append(["Titration", m.titration])
        if m.max_daily_dose:
            band = f" ({m.renal_band})" if m.renal_band else ""
            rows.append(["Maximum", f"{m.max_daily_dose} per day{band}"])
        if m.stop_after_days is not None and m.stop_date is not None:
            rows.append(["Stop", f"after {m.stop_after_days} days: by {m.stop_date.isoformat()}"])
        if not m.dose and m.drug.label:
            rows.append(["Label", m.drug.label])
        rows += [["Note", n] for n in m.notes]
        table = Table(
            [[Paragraph(f"<b>{_t(k)}</b>", st.small), Paragraph(_t(v), st.small)] for k, v in rows],
            colWidths=[24 * mm, None],
        )
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#e8f5eb")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        out.append(table)
    out += [
        Paragraph(
            f"<b>Product:</b> {_t(p.name)}; dose per its current label: {_t(p.label or '')}",
            st.small,
        )
        for p in s.products
    ]
    if s.option_reason:
        out.append(Paragraph(_t(s.option_reason), st.small))
    out += [Paragraph(f"<b>Caution:</b> {_t(w)}", st.small) for w in s.warnings]
    return out


def _alternative(s: PlanStep, st: _Styles) -> Paragraph:
    cond = " (conditional)" if s.status == "conditional" else ""
    return Paragraph(f"<b>Alternative{cond}:</b> {_t(alternative_text(s))}", st.small)


def summary_pdf(a: Assessment) -> bytes:
    """The clinician summary as a PDF."""
    st = _Styles(10)
    numbers = {c.id: c.number for c in a.citations}
    title = "legspasm clinician summary" + (f": {a.case_id}" if a.case_id else "")
    story: list[Flowable] = [
        Paragraph(_t(title), st.title),
        Paragraph(
            _t(
                f"As of {a.as_of.isoformat()} · knowledge base {a.knowledge_version}. Decision "
                "support for a clinician, not a substitute for clinical judgement."
            ),
            st.small,
        ),
    ]
    for rf in a.red_flags:
        story.append(
            Paragraph(
                f"<b>{rf.urgency.upper()}{' (possible)' if rf.status == 'possible' else ''}: "
                f"{_t(rf.name)}.</b> {_t(rf.action)} "
                f"{_refs(rf.citations, numbers)}",
                st.alert,
            )
        )
    d = a.derived
    facts = [f"Age: {d.age_years:g} years" if d.age_years is not None else "Age: unknown"]
    facts.append(f"Creatinine clearance: {d.crcl_note}")
    if d.irls_total is not None:
        facts.append(f"IRLS total: {d.irls_total} ({d.irls_severity})")
    story.append(Paragraph(_t(" · ".join(facts)), st.body))
    story.append(Paragraph("What it probably is", st.h2))
    shown = [c for c in a.conditions if c.status in ("documented", "likely", "possible")]
    if not shown:
        story.append(Paragraph("No condition is established yet; see what is missing.", st.body))
    for c in shown:
        crit = "; ".join(f"{CRITERION_STATE[k.state]}: {k.text}" for k in c.criteria)
        story.append(
            Paragraph(f"<b>{_t(c.name)}</b>: {c.status} {_refs(c.citations, numbers)}", st.body)
        )
        story.append(Paragraph(_t(crit), st.small))
    story.append(Paragraph("What to do", st.h2))
    if not a.plan:
        story.append(Paragraph("No plan step applies yet.", st.body))
    for phase, heading in PHASE_TITLES.items():
        steps = [s for s in a.plan if s.phase == phase]
        if steps:
            story.append(Paragraph(_t(heading), st.h3))
            for s in steps:
                if s.alternative_to:
                    story.append(_alternative(s, st))
                    continue
                story.append(KeepTogether(_step(s, numbers, st)))
                story.append(Spacer(1, 3))
    if a.withheld:
        story.append(Paragraph("Withheld for this patient", st.h3))
        story.append(
            _bullets([f"{_t(w.text)} <b>Withheld:</b> {_t(w.reason)}" for w in a.withheld], st)
        )
    if a.avoid:
        story.append(Paragraph("What not to do", st.h2))
        story.append(
            _bullets(
                [
                    f"<b>{i.severity.upper()}</b>{_UNLESS if i.confirm else ''}"
                    f": {_t(i.target)} ({AVOID_STATUS[i.status]}). "
                    f"{_t(i.reason)} "
                    f"{_refs(i.citations, numbers)}"
                    + (f" <b>How to stop:</b> {_t(i.stopping.text)}" if i.stopping else "")
                    for i in a.avoid
                ],
                st,
            )
        )
    if a.missing_data:
        story.append(Paragraph("Still missing", st.h2))
        story.append(_bullets([_t(m.question) for m in a.missing_data], st))
    story.append(Paragraph("References", st.h2))
    for ref in a.citations:
        extra = " (expert opinion or unverified detail)" if ref.basis in ("M", "UNVERIFIED") else ""
        url = f" {_t(ref.url)}" if ref.url else ""
        story.append(Paragraph(f"{ref.number}. {_t(ref.text)}{extra}{url}", st.small))
    return _build(story, title)


def handout_pdf(a: Assessment) -> bytes:
    """The plain-language patient handout as a PDF."""
    st = _Styles(12.5)
    numbers = {c.id: c.number for c in a.citations}
    title = "Your legs: what you can do"
    story: list[Flowable] = [
        Paragraph(title, st.title),
        Paragraph(
            _t(
                f"Given on {a.as_of.isoformat()}. Keep this sheet. Ask your clinician if anything "
                "is unclear."
            ),
            st.small,
        ),
    ]
    if a.red_flags:
        story.append(
            Paragraph(
                "<b>Your clinician found signs that need checking urgently.</b> Follow what they "
                "tell you today before anything on this sheet.",
                st.alert,
            )
        )
    for s in a.handout:
        block: list[Flowable] = [
            Paragraph(_t(s.heading), st.h2),
            _bullets([_t(i.text) for i in s.items], st),
        ]
        if s.note:
            block.append(Paragraph(_t(s.note), st.small))
        refs = _refs(s.citations, numbers)
        if refs:
            block.append(
                Paragraph(f"Sources: {refs} (listed on your clinician's summary)", st.small)
            )
        story.append(KeepTogether(block))
    story.append(Paragraph("Medicines your clinician prescribed", st.h2))
    story.append(Spacer(1, 30 * mm))
    return _build(story, title)
