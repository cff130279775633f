"""Page rendering: the Jinja2 environment and what each template is given.

Templates only lay out what the Assessment says; anything clinical (which condition, which dose,
which warning) comes from the engine. The intake form is drawn from the intake Questionnaire
itself, so the form, the Questionnaire and the case model cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import re
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
from ..fhir.intake import intake_leaves, questionnaire
from ..intake_text import IRLS_LICENCE_URL, option_text
from ..knowledge import Knowledge
from ..render.charts import charts
from ..render.handout import PRESCRIBED, handout_view
from ..render.report import AVOID_STATUS, NOTE_KINDS, PHASE_TITLES, RECORD_FIELDS
from ..render.words import (
    BOTTOM_LINE_LABELS,
    basis_words,
    care_missing,
    page_citations,
    reasons,
    red_flag_screen,
)
from . import steps
from .examples import Example
from .form import DOSE_UNITS, MED_ROWS, ORDER_ROWS, OUTCOME_LABELS, WEIGHT_UNITS, lab_units

__all__ = ["EVIDENCE_DOCS", "AnswerGroup", "Templates", "answer_fields"]

_STATE = {"met": "Met", "not_met": "Not met", "unknown": "Unknown"}
PREGNANCY = frozenset(
    {
        "patient.pregnant",
        "patient.trimester",
        "patient.gestational_weeks",
        "patient.postpartum",
        "patient.lactating",
    }
)
"""Asked only when the patient's sex is female or not known."""
_CONTROLS = ("step", "go", "shown", steps.SCREEN_ITEM, steps.SCREEN_NONE)
_MED_FIELDS = {
    "name": "",
    "dose": "dose",
    "unit": "dose unit",
    "times_per_day": "times a day",
    "start_date": "start date",
    "end_date": "stop date",
    "status": "status",
    "outcome": "how it worked",
    "duration_days": "days",
}


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


def _rows(values: Mapping[str, list[str]], kind: str, least: int) -> int:
    """How many medicine rows to show: ``least``, and one more than the last one used."""
    used = [int(m.group(1)) for k in values if (m := re.fullmatch(rf"{kind}\.(\d+)\.\w+", k))]
    return max([least, *(n + 1 for n in used)])


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
            reasons=reasons,
            record_fields=RECORD_FIELDS,
            note_kinds=NOTE_KINDS,
            label_for=self.label_for,
            pregnancy=PREGNANCY,
            irls_licence_url=IRLS_LICENCE_URL,
        )

    def label_for(self, name: str) -> str:
        """The human label of a form field, for error messages (never its field path)."""
        if name in self.items:
            return str(self.items[name]["text"])
        fixed = {
            "id": "Label for this assessment",
            "patient.age_years": "Age (years)",
            "patient.birth_date": "Date of birth",
            "patient.sex": "Sex",
            "patient.weight.value": "Weight",
            "patient.weight.unit": "Weight unit",
            "patient.weight": "Weight",
            "conditions": "Documented diagnoses",
            "allergies": "Allergies",
            "none_known": "Recorded as none",
        }
        if name in fixed:
            return fixed[name]
        parts = name.split(".")
        if parts[0] == "lab" and len(parts) == 3 and parts[1] in self.kb.labs:
            what = {"value": "", "unit": " unit", "date": " date"}.get(parts[2], "")
            return f"{self.kb.labs[parts[1]].name}{what}"
        if parts[0] in ("med", "order") and len(parts) == 3:
            who = "Medicine" if parts[0] == "med" else "Considered medicine"
            what = _MED_FIELDS.get(parts[2], parts[2].replace("_", " "))
            return f"{who} {parts[1]}" + (f" {what}" if what else "")
        return name.replace("_", " ")

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
            "conditions": self.conditions,
            "med_rows": rows("med", MED_ROWS),
            "order_rows": rows("order", ORDER_ROWS),
            "examples": list(examples.values()),
            "upload_error": upload_error,
            "upload_patients": upload_patients,
            "note": note,
            "as_of": as_of,
        }
        return self.page("intake.html", context, status=status)

    def step(
        self,
        step: int,
        values: Mapping[str, list[str]],
        errors: Mapping[str, str],
        *,
        as_of: dt.date,
        missing: Sequence[MissingDatum] = (),
        shown: set[str] | None = None,
        new: int = 0,
        note: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        """Step 1 (complaint, age, sex, red-flag screen) or step 2 (what the engine asks)."""
        kb = self.kb
        values = {k: v for k, v in values.items() if k not in _CONTROLS}
        screen = steps.red_flag_screen(kb, as_of)
        step1 = steps.step1_keys(kb, as_of)
        answered = steps.answered_keys(values)
        male = (values.get("patient.sex") or [""])[-1] == "male"
        context: dict[str, Any] = {
            **self._form_context(),
            "title": f"Step {step}" if not errors else "Check the form",
            "step": step,
            "values": values,
            "errors": errors,
            "note": note,
            "as_of": as_of,
            "conditions": self.conditions,
            "med_rows": _rows(values, "med", 3),
            "order_rows": _rows(values, "order", 1),
        }
        if step == 1:
            visible = {"patient.age_years", "patient.birth_date", "patient.sex"}
            visible |= set(steps.COMPLAINT) | {ln for g in screen for ln in g.links}
            context |= {
                "complaint": [self.items[link] for link in steps.COMPLAINT],
                "screen": [
                    {"title": g.title, "questions": [self.items[ln] for ln in g.links]}
                    for g in screen
                ],
                "hidden_names": [n for n in values if n not in visible],
                "shown": sorted(shown or ()),
            }
            return self.page("steps.html", context, status=status)
        done = step1 & answered
        asked = steps.asked_keys(missing, kb)
        display = ((shown or set()) | asked | answered) - done
        excluded = set(PREGNANCY) if male else set()
        if "irls" not in display:
            excluded |= {ln for ln in intake_leaves() if ".irls_items." in ln}
        leaf_keys = {ln if ".irls_items." not in ln else "irls" for ln in intake_leaves()}
        hidden = [
            n
            for n in values
            if (steps.key_of_name(n) in done and n != "conditions") or n in excluded
        ]
        more = leaf_keys - display - done - excluded
        if "irls" not in display:
            more.discard("irls")
        all_conditions = [cid for cid, _ in self.conditions]
        asked_conditions = (
            all_conditions
            if "conditions" in display - answered
            else [c for c in all_conditions if f"condition:{c}" in display]
        )
        context |= {
            "hidden_names": hidden,
            "shown": sorted(display | done),
            "asked": display,
            "answered": self._answered(values, done, screen),
            "asked_groups": steps.prune(self.questionnaire["item"], display - excluded),
            "asked_labs": [lab for lab in kb.labs if f"lab:{lab}" in display],
            "asked_weight": "patient.weight" in display,
            "asked_conditions": asked_conditions,
            "more_groups": steps.prune(self.questionnaire["item"], more),
            "more_labs": [lab for lab in kb.labs if f"lab:{lab}" not in display],
            "more_conditions": [c for c in all_conditions if c not in asked_conditions],
            "more_open": bool(errors) and any(steps.key_of_name(n) not in display for n in errors),
            "more_count": new,
        }
        return self.page("steps.html", context, status=status)

    @cached_property
    def conditions(self) -> list[tuple[str, str]]:
        return sorted(
            ((c.id, c.name) for c in self.kb.concepts.values()), key=lambda c: c[1].lower()
        )

    def _answered(
        self, values: Mapping[str, list[str]], done: set[str], screen: Sequence[steps.ScreenGroup]
    ) -> list[tuple[str, str]]:
        """Step 1's answers in words, for the summary at the top of step 2."""
        out: list[tuple[str, str]] = []
        age = (values.get("patient.age_years") or [""])[-1]
        birth = (values.get("patient.birth_date") or [""])[-1]
        if "patient.age" in done:
            out.append(("Age", f"{age} years" if age else f"born {birth}"))
        if "patient.sex" in done:
            out.append(("Sex", values["patient.sex"][-1]))
        words = {"yes": "yes", "no": "no"}
        for link in steps.COMPLAINT:
            if link in done:
                v = values[link][-1]
                out.append((self.label_for(link), words.get(v, option_text(link, v))))
        links = [ln for g in screen for ln in g.links if ln in done]
        present = [ln for ln in links if values[ln][-1] == "yes"]
        for ln in present:
            out.append((self.label_for(ln), "yes"))
        absent = [ln for ln in links if values[ln][-1] == "no"]
        if absent:
            out.append(("Red-flag signs recorded as absent", f"{len(absent)} of {len(links)}"))
        return out

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
            a = inv.assessment if isinstance(inv.assessment, dict) else {}  # read: a dict
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
