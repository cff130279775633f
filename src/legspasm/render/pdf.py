"""PDF views of an Assessment (reportlab): a clinician summary and a patient handout.

Same content and order as the web page's print view: red flags first, the likely conditions,
the plan by phase with doses and stop dates, what to avoid, what is missing, numbered
references; the handout is the plain-language sections the engine chose for this patient.
The standard PDF fonts cover Windows-1252 only, so a few symbols are written out.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Literal
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    FrameBreak,
    KeepTogether,
    ListFlowable,
    PageTemplate,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from ..assessment import Assessment, PlanStep
from .charts import Chart
from .handout import PRESCRIBED, HandoutView, handout_view
from .report import AVOID_STATUS, CRITERION_STATE, PHASE_TITLES, alternative_text, confirm_line
from .words import BOTTOM_LINE_LABELS, basis_words, care_missing, grade_words, red_flag_screen

__all__ = ["PAGE_SIZES", "PageSize", "handout_pdf", "summary_pdf"]

PAGE_SIZES = {"letter": LETTER, "a4": A4}
PageSize = Literal["letter", "a4"]

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


def _build(story: list[Flowable], title: str, pagesize: tuple[float, float] = A4) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=pagesize,
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
    grade = grade_words(s)
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


def _chart_drawing(c: Chart, width: float) -> Drawing:
    """A chart as a reportlab drawing: the same bands and marker as the page's SVG."""
    lo, hi = c.bands[0].low, c.bands[-1].high
    span = (hi - lo) or 1.0
    h, bar_y, bar_h = 34.0, 12.0, 9.0
    d = Drawing(width, h)

    def x(v: float) -> float:
        return 4 + (min(max(v, lo), hi) - lo) / span * (width - 8)

    for i, b in enumerate(c.bands):
        x0, x1 = x(b.low), x(b.high)
        rect = Rect(x0, bar_y, max(x1 - x0, 1), bar_h)
        rect.fillColor = colors.HexColor(_CHART_FILLS[i % len(_CHART_FILLS)])
        rect.strokeColor = colors.HexColor("#7b8794")
        rect.strokeWidth = 0.4
        d.add(rect)
        label = b.label.split(" (")[0]
        if len(label) * 3.0 <= x1 - x0 + 6:  # a label that does not fit is in the caption
            d.add(String((x0 + x1) / 2, 2, _t_plain(label), fontSize=6, textAnchor="middle"))
    vx = x(c.value)
    d.add(
        Line(
            vx,
            bar_y - 2,
            vx,
            bar_y + bar_h + 2,
            strokeColor=colors.HexColor("#10324f"),
            strokeWidth=2,
        )
    )
    d.add(
        String(
            min(max(vx, 20), width - 20),
            bar_y + bar_h + 4,
            _t_plain(f"{c.title}: {c.value:g} {c.unit}"),
            fontSize=7,
            textAnchor="middle",
            fontName="Helvetica-Bold",
        )
    )
    return d


_CHART_FILLS = ("#f3d6d9", "#fbe7c6", "#dcefe0", "#dfe7f1", "#eadff1", "#e9ecef")


def _t_plain(text: str) -> str:
    return text.translate(_SYMBOLS).encode("cp1252", "replace").decode("cp1252")


def summary_pdf(
    a: Assessment, chart_list: Sequence[Chart] = (), page_size: PageSize = "letter"
) -> bytes:
    """The clinician summary as a PDF: the bottom line first, then the detail in page order;
    US Letter by default, A4 by setting (as the handout)."""
    pagesize = PAGE_SIZES[page_size]
    st = _Styles(10)
    numbers = {c.id: c.number for c in a.citations}
    used: set[str] = set()

    def refs(ids: Iterable[str]) -> str:
        ids = list(ids)
        used.update(i for i in ids if i in numbers)
        return _refs(ids, numbers)

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
    if a.bottom_line:
        rows = [
            [
                Paragraph(f"<b>{_t(BOTTOM_LINE_LABELS[b.kind].upper())}</b>", st.small),
                Paragraph(
                    f"<b>{_t(b.text)}</b>"
                    if b.kind in ("red-flag", "do-not", "hold")
                    else _t(b.text),
                    st.body,
                ),
            ]
            for b in a.bottom_line
        ]
        box = Table(rows, colWidths=[22 * mm, None])
        red = bool(a.red_flags)
        box.setStyle(
            TableStyle(
                [
                    (
                        "BOX",
                        (0, 0),
                        (-1, -1),
                        1.5 if red else 1,
                        colors.HexColor("#a4001d" if red else "#10324f"),
                    ),
                    (
                        "BACKGROUND",
                        (0, 0),
                        (-1, -1),
                        colors.HexColor("#fdecee" if red else "#f7fafd"),
                    ),
                    ("LINEBELOW", (0, 0), (-1, -2), 0.3, colors.HexColor("#c9d0d8")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story += [Paragraph("Bottom line", st.h2), box]
    for rf in a.red_flags:
        story.append(
            Paragraph(
                f"<b>{rf.urgency.upper()}{' (possible)' if rf.status == 'possible' else ''}: "
                f"{_t(rf.name)}.</b> {_t(rf.action)} {refs(rf.citations)}"
                + (f" <b>Order:</b> {_t(rf.order)}" if rf.order else ""),
                st.alert,
            )
        )
    red_ids = {rf.id for rf in a.red_flags}
    held = [w for w in a.withheld if w.by in red_ids]
    if held:
        story.append(
            Paragraph(
                "<b>Held until the red flag is excluded:</b> " + _t(" ".join(w.text for w in held)),
                st.small,
            )
        )
    d = a.derived
    facts = [f"Age: {d.age_years:g} years" if d.age_years is not None else "Age: unknown"]
    facts.append(
        f"Creatinine clearance: {d.crcl_note}"
        + (f" {refs(['CG1976'])}" if d.crcl_ml_min is not None else "")
    )
    if d.irls_total is not None:
        facts.append(f"IRLS total: {d.irls_total} of 40 ({d.irls_severity})")
    story.append(Paragraph(_t(" · ".join(facts)), st.body))
    width = pagesize[0] - 36 * mm
    for chart in chart_list:
        story.append(_chart_drawing(chart, width))
        story.append(Paragraph(_t(chart.text), st.small))
    if a.red_flags:
        story.append(Paragraph("Once the red flag is excluded", st.h2))
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
                refs(s.citations)
                story.append(KeepTogether(_step(s, numbers, st)))
                story.append(Spacer(1, 3))
    other = [w for w in a.withheld if w.by not in red_ids]
    if other:
        story.append(Paragraph("Withheld for this patient", st.h3))
        story.append(_bullets([f"{_t(w.text)} <b>Withheld:</b> {_t(w.reason)}" for w in other], st))
    if a.avoid:
        story.append(Paragraph("What not to do", st.h2))
        story.append(
            _bullets(
                [
                    f"<b>{i.severity.upper()}</b>{_UNLESS if i.confirm else ''}"
                    f": {_t(i.target)} ({AVOID_STATUS[i.status]}). "
                    f"{_t(i.reason)} "
                    f"{refs(i.citations)}"
                    + (f" <b>How to stop:</b> {_t(i.stopping.text)}" if i.stopping else "")
                    for i in a.avoid
                ],
                st,
            )
        )
    story.append(Paragraph("What it probably is", st.h2))
    shown = [c for c in a.conditions if c.status in ("documented", "likely", "possible")]
    if not shown:
        story.append(Paragraph("No condition is established yet; see what is missing.", st.body))
    for c in shown:
        crit = "; ".join(f"{CRITERION_STATE[k.state]}: {k.text}" for k in c.criteria)
        status = "on the record" if c.status == "documented" else c.status
        story.append(Paragraph(f"<b>{_t(c.name)}</b>: {status} {refs(c.citations)}", st.body))
        story.append(Paragraph(_t(crit), st.small))
    care = care_missing(a)
    flags, _ = red_flag_screen(a)
    if care or flags:
        story.append(Paragraph("Still missing", st.h2))
        lines = [_t(m.question) for m in care]
        if flags:
            lines.append(
                _t("Red-flag screen not documented: " + ", ".join(flags) + " not excluded")
            )
        story.append(_bullets(lines, st))
    story.append(Paragraph("References", st.h2))
    for ref in (r for r in a.citations if r.id in used):
        words = basis_words(ref.basis)
        extra = f" ({words})" if words else ""
        url = f" {_t(ref.url)}" if ref.url else ""
        story.append(Paragraph(f"{ref.number}. {_t(ref.text)}{extra}{url}", st.small))
    return _build(story, title, pagesize)


def _handout_story(
    v: HandoutView, base: float, width: float
) -> tuple[list[Flowable], list[Flowable]]:
    """The full-width head (title, date, urgent box) and the two-column body of the handout."""
    st = _Styles(base)
    h2 = ParagraphStyle("ho-h2", parent=st.h2, spaceBefore=base * 0.6, spaceAfter=base * 0.2)
    urgent_h2 = ParagraphStyle("ho-uh2", parent=h2, textColor=colors.HexColor("#a4001d"))
    body = ParagraphStyle("ho-b", parent=st.body, leading=base * 1.22)
    note = ParagraphStyle("ho-n", parent=st.small, leading=(base - 1.5) * 1.22)
    head: list[Flowable] = [
        Paragraph(_t(v.title), st.title),
        Paragraph(_t(v.given), st.small),
    ]
    if v.alert:
        lines = [f"<b>{_t(v.alert[0])}</b>"]
        lines += [f"&bull; {_t(t)}" for t in v.found]
        lines.append(_t(v.alert[1]))
        head.append(Paragraph("<br/>".join(lines), st.alert))
    head.append(Spacer(1, base * 0.3))

    def bullets(items: Sequence[str]) -> ListFlowable:
        return ListFlowable(
            [Paragraph(_t(i), body) for i in items],
            bulletType="bullet",
            start="•",
            leftIndent=base,
            bulletFontSize=base * 0.8,
        )

    cols: list[Flowable] = []
    for s in v.sections:
        block: list[Flowable] = [
            Paragraph(_t(s.heading), urgent_h2 if s.urgent else h2),
            bullets(s.items),
        ]
        if s.note:
            block.append(Paragraph(_t(s.note), note))
        cols.append(KeepTogether(block))
    if v.medicines:
        block = [Paragraph("Your medicines", h2), Paragraph(_t(v.medicines), body)]
        if v.taper:
            block.append(Paragraph(f"<b>{_t(v.taper)}</b>", body))
        cols.append(KeepTogether(block))
    line = Table([[""]] * 2, colWidths=[width], rowHeights=[base * 2] * 2)
    line.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.6, colors.black)]))
    cols.append(KeepTogether([Paragraph(_t(PRESCRIBED), h2), line]))
    return head, cols


def _handout_build(v: HandoutView, base: float, pagesize: tuple[float, float]) -> tuple[bytes, int]:
    margin = 13 * mm
    gap = 7 * mm
    page_w, page_h = pagesize
    inner_w = page_w - 2 * margin
    col_w = (inner_w - gap) / 2
    head, cols = _handout_story(v, base, col_w)
    head_h = 6 + sum(
        f.wrap(inner_w, page_h)[1] + f.getSpaceBefore() + f.getSpaceAfter() for f in head
    )
    if v.alert:
        head_h += 12  # the urgent box's border padding, above and below
    body_h = page_h - 2 * margin - head_h
    frames = [
        Frame(margin, page_h - margin - head_h, inner_w, head_h, id="head", **_NOPAD),
        Frame(margin, margin, col_w, body_h, id="left", **_NOPAD),
        Frame(margin + col_w + gap, margin, col_w, body_h, id="right", **_NOPAD),
    ]
    buf = io.BytesIO()
    doc = BaseDocTemplate(
        buf,
        pagesize=pagesize,
        title=v.title,
        author="legspasm",
        subject="Leg cramps, spasms and restless legs",
    )
    doc.addPageTemplates([PageTemplate(id="handout", frames=frames)])
    doc.build([*head, FrameBreak(), *cols])
    return buf.getvalue(), doc.page


_NOPAD = {"leftPadding": 0, "rightPadding": 0, "topPadding": 0, "bottomPadding": 0}


def handout_pdf(a: Assessment, page_size: PageSize = "letter") -> bytes:
    """The plain-language patient handout as a one-page PDF (US Letter by default, or A4).

    Two columns under a full-width head; the type is as large as fits on one page (13 pt down
    to 8 pt). No citation numbers: the sources are on the clinician's summary.
    """
    v = handout_view(a)
    pagesize = PAGE_SIZES[page_size]
    pdf = b""
    for tenth in range(130, 79, -5):
        pdf, pages = _handout_build(v, tenth / 10, pagesize)
        if pages == 1:
            return pdf
    return pdf
