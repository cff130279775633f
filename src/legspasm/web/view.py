"""Page rendering: the Jinja2 environment and what each template is given.

Templates only lay out what the Assessment says; anything clinical (which condition, which dose,
which warning) comes from the engine. The intake form is drawn from the intake Questionnaire
itself, so the form, the Questionnaire and the case model cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from ..assessment import Assessment, MissingDatum
from ..audit import Invocation
from ..case import Case
from ..fhir.intake import questionnaire
from ..knowledge import Knowledge
from ..render.charts import charts
from ..render.handout import PRESCRIBED, handout_view
from ..render.report import AVOID_STATUS, NOTE_KINDS, PHASE_TITLES, RECORD_FIELDS
from ..render.words import (
    BOTTOM_LINE_LABELS,
    basis_words,
    care_missing,
    page_citations,
    red_flag_screen,
)
from .examples import Example
from .form import DOSE_UNITS, MED_ROWS, ORDER_ROWS, OUTCOME_LABELS, WEIGHT_UNITS, lab_units

__all__ = ["EVIDENCE_DOCS", "AnswerGroup", "Templates", "answer_fields"]

_STATE = {"met": "Met", "not_met": "Not met", "unknown": "Unknown"}


@dataclass(frozen=True)
class AnswerGroup:
    """One missing datum with the form fields that answer it on the result page."""

    question: str
    affects: list[str]
    items: list[dict[str, Any]]  # Questionnaire items (linkId = form field)
    labs: list[str]  # lab ids whose value, unit and date are asked
    crcl: bool  # ask age, sex, weight and creatinine
    where: str


def _index(items: Sequence[Mapping[str, Any]], out: dict[str, dict[str, Any]]) -> None:
    for it in items:
        if it["type"] == "group":
            _index(it["item"], out)
        else:
            out[it["linkId"]] = dict(it)


def answer_fields(
    missing: Sequence[MissingDatum], kb: Knowledge, items: Mapping[str, dict[str, Any]]
) -> list[AnswerGroup]:
    """The in-place answers for each missing datum (those the form can take)."""
    out = []
    for m in missing:
        where = m.where
        leaf = items.get(where)
        labs: list[str] = []
        if where.startswith("labs:"):
            names = [
                n.strip() for n in where.removeprefix("labs:").replace(" and ", ",").split(",")
            ]
            labs = [n for n in names if n in kb.labs]
        crcl = m.fact == "crcl"
        if crcl:
            labs = ["creatinine"]
        out.append(
            AnswerGroup(
                m.question, m.changes or m.affects, [leaf] if leaf else [], labs, crcl, where
            )
        )
    return out


def _options(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    opts = []
    for o in item.get("answerOption", []):
        if "valueCoding" in o:
            opts.append((o["valueCoding"]["code"], o["valueCoding"]["display"]))
        else:
            opts.append((str(o["valueInteger"]), str(o["valueInteger"])))
    return opts


def _limit(item: Mapping[str, Any], name: str) -> str:
    for ext in item.get("extension", []):
        if ext["url"].endswith(name):
            v = ext.get("valueInteger", ext.get("valueDecimal"))
            return f"{v:g}" if isinstance(v, float) else str(v)
    return ""


def _field_id(name: str) -> str:
    return "f-" + name.replace(".", "-").replace("_", "-")


def _refs(ids: Sequence[str], numbers: Mapping[str, int]) -> Markup:
    links = [
        f'<a href="#ref-{numbers[i]}" class="ref">[{numbers[i]}]</a>' for i in ids if i in numbers
    ]
    return Markup("".join(links))


def _days(d: dt.date | None, as_of: dt.date) -> str:
    return "" if d is None else f"{(d - as_of).days} days from {as_of.isoformat()}"


# The evidence review and its addenda, shipped with the package (docs/evidence/): the source the
# knowledge base is encoded from, so a citation of it opens a page.
_EVIDENCE = Path(__file__).resolve().parent.parent / "docs" / "evidence"
EVIDENCE_DOCS = {p.name: p for p in sorted(_EVIDENCE.glob("*.md"))}


class Templates:
    """The Jinja2 environment, bound to one knowledge base."""

    def __init__(self, kb: Knowledge) -> None:
        self.kb = kb
        self.env = Environment(
            loader=PackageLoader("legspasm.web", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            field_id=_field_id,
            options=_options,
            limit=_limit,
            refs=_refs,
            days=_days,
            state_text=_STATE,
            status_text=AVOID_STATUS,
            phases=PHASE_TITLES,
            kb_version=kb.version,
            bottom_line_labels=BOTTOM_LINE_LABELS,
            basis_words=basis_words,
            record_fields=RECORD_FIELDS,
            note_kinds=NOTE_KINDS,
        )

    @cached_property
    def questionnaire(self) -> dict[str, Any]:
        return questionnaire(self.kb.version)

    @cached_property
    def items(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        _index(self.questionnaire["item"], out)
        return out

    @cached_property
    def drug_names(self) -> list[str]:
        names = {d.name for d in self.kb.drugs.values()}
        names |= {b for d in self.kb.drugs.values() for b in d.brands}
        return sorted(names, key=str.lower)

    @cached_property
    def labs(self) -> list[tuple[str, str, list[str]]]:
        return [
            (lab_id, lab.name, lab_units(self.kb, lab_id)) for lab_id, lab in self.kb.labs.items()
        ]

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(name).render(**context)

    def page(self, name: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
        return HTMLResponse(self.render(name, context), status_code=status)

    def _form_context(self) -> dict[str, Any]:
        return {
            "labs": self.labs,
            "lab_names": {lab_id: name for lab_id, name, _ in self.labs},
            "lab_units": {lab_id: units for lab_id, _, units in self.labs},
            "weight_units": WEIGHT_UNITS,
            "dose_units": DOSE_UNITS,
            "medicine_outcomes": OUTCOME_LABELS,
            "drug_names": self.drug_names,
        }

    def intake(
        self,
        values: Mapping[str, list[str]],
        errors: Mapping[str, str],
        *,
        status: int,
        examples: Mapping[str, Example],
        upload_error: str | None,
        upload_patients: list[str],
        note: str | None,
        as_of: dt.date,
    ) -> HTMLResponse:
        def rows(kind: str, least: int) -> int:
            used = {int(k.split(".")[1]) for k in values if k.startswith(f"{kind}.")}
            return max([least, *(n + 1 for n in used)])

        context = {
            **self._form_context(),
            "title": "New assessment" if not errors else "Check the form",
            "groups": self.questionnaire["item"],
            "values": values,
            "errors": errors,
            "conditions": sorted(
                ((c.id, c.name) for c in self.kb.concepts.values()), key=lambda c: c[1].lower()
            ),
            "med_rows": rows("med", MED_ROWS),
            "order_rows": rows("order", ORDER_ROWS),
            "examples": list(examples.values()),
            "upload_error": upload_error,
            "upload_patients": upload_patients,
            "note": note,
            "as_of": as_of,
        }
        return self.page("intake.html", context, status=status)

    def result(
        self,
        inv: Invocation,
        a: Assessment,
        case: Case | None,
        *,
        editable: bool,
        open_pages: bool,
        answers: Mapping[str, list[str]] | None = None,
        errors: Mapping[str, str] | None = None,
        status: int = 200,
        cap: str = "",
    ) -> HTMLResponse:
        context = {
            **self._form_context(),
            **self._assessment_context(inv, a),
            "cap": cap,
            "title": "Assessment",
            "case": case,
            "editable": editable and open_pages,
            "open_pages": open_pages,
            "answer_groups": answer_fields(a.missing_data, self.kb, self.items)
            if case is not None
            else [],
            "values": answers or {},
            "errors": errors or {},
        }
        return self.page("result.html", context, status=status)

    def _assessment_context(self, inv: Invocation, a: Assessment) -> dict[str, Any]:
        shown = [c for c in a.conditions if c.status in ("documented", "likely", "possible")]
        return {
            "inv": inv,
            "a": a,
            "refs_shown": page_citations(a),
            "care_missing": care_missing(a),
            "screen_flags": red_flag_screen(a)[0],
            "step_names": {
                s.id: s.medication.drug.name if s.medication else s.summary for s in a.plan
            },
            "charts": charts(a, self.kb),
            "numbers": {c.id: c.number for c in a.citations},
            "shown_conditions": shown,
            "unlikely": [c.name for c in a.conditions if c.status == "unlikely"],
            "steps_by_phase": [
                (phase, title, [s for s in a.plan if s.phase == phase])
                for phase, title in PHASE_TITLES.items()
                if any(s.phase == phase for s in a.plan)
            ],
        }

    def print_view(self, inv: Invocation, a: Assessment, cap: str = "") -> HTMLResponse:
        context = {
            **self._assessment_context(inv, a),
            "title": "Print: summary and handout",
            "cap": cap,
            "ho": handout_view(a),
            "prescribed": PRESCRIBED,
        }
        return self.page("print.html", context)

    def document(self, path: Path) -> HTMLResponse:
        """A Markdown document of the package as a page (tables and headings kept)."""
        text = path.read_text(encoding="utf-8")
        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
        title = next((ln[2:] for ln in text.splitlines() if ln.startswith("# ")), path.name)
        return self.page("document.html", {"title": title, "body": Markup(body)})

    def history(self, rows: Sequence[Invocation], patient: str | None) -> HTMLResponse:
        entries = []
        for inv in rows:
            a = inv.assessment or {}
            conditions = [
                c["name"]
                for c in a.get("conditions", [])
                if c.get("status") in ("documented", "likely")
            ]
            entries.append(
                {
                    "inv": inv,
                    "conditions": conditions,
                    "red_flags": [r["name"] for r in a.get("red_flags", [])],
                    "avoid": len(a.get("avoid", [])),
                }
            )
        return self.page(
            "history.html", {"title": "History", "entries": entries, "patient": patient or ""}
        )
