"""Properties of the intake form (``legspasm.web.form``), in-process.

- What the form shows of a case, it reads back exactly (patient, symptoms, neurological findings,
  red-flag screen, named medicines and labs).
- Whatever a browser (or anyone) posts, reading it never crashes, and every problem is reported
  against a field the page shows, so it can be displayed next to that field.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from legspasm import Case
from legspasm.caseio import parse_case
from legspasm.engine import evaluate
from legspasm.errors import CaseValidationError
from legspasm.web.examples import EXAMPLES
from legspasm.web.form import case_to_form, field_of, read_form
from legspasm.web.view import Templates
from strategies import AS_OF, KB, cases

_PAGE = bytes(
    Templates(KB)
    .intake(
        {},
        {},
        status=200,
        examples=EXAMPLES,
        upload_error=None,
        upload_patients=[],
        note=None,
        as_of=AS_OF,
    )
    .body
).decode()
FIELDS = sorted(set(re.findall(r'name="([^"]+)"', _PAGE)) - {"file", "patient"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_what_the_form_shows_it_reads_back(case: Case) -> None:
    parsed = read_form(case_to_form(case, KB), KB)
    assert parsed.errors == {}
    again = parse_case(parsed.data)
    for part in ("symptoms", "neuro", "red_flags"):
        # an empty list of cramp sites says no more than an unanswered item
        assert _shown(getattr(again, part)) == _shown(getattr(case, part))
    p, q = again.patient, case.patient
    assert (p.age_years, p.birth_date, p.sex, p.weight) == (
        q.age_years,
        q.birth_date,
        q.sex,
        q.weight,
    )
    assert (p.pregnant, p.trimester, p.dialysis) == (q.pregnant, q.trimester, q.dialysis)
    assert [_medicine(m.name, m.rxnorm) for m in again.medications] == [
        _medicine(m.name, m.rxnorm) for m in case.medications
    ]
    assert [(m.dose, m.times_per_day, m.start_date, m.status) for m in again.medications] == [
        (m.dose, m.times_per_day, m.start_date, m.status) for m in case.medications
    ]
    shown = {lab.name for lab in case.labs if lab.name}
    assert {lab.name for lab in again.labs} == shown


def _shown(model: BaseModel) -> Any:
    def drop_empty(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: drop_empty(v) for k, v in x.items() if v != []}
        return x

    return drop_empty(model.model_dump(exclude_none=True))


def _medicine(name: str | None, rxnorm: str | None) -> str | None:
    """The knowledge-base drug a medicine entry names (or its text when there is none)."""
    return KB.lookups.match_drug(name, rxnorm) or name or rxnorm


_VALUES = st.one_of(
    st.sampled_from(
        ["", "yes", "no", "1", "0", "3.5", "-2", "1e9", "nan", "inf", "abc", "2026-11-31"]
    ),
    st.sampled_from(
        ["2026-01-01", "mg", "kg", "lb", "mmol/L", "furlongs", "stroke", "night_or_rest"]
    ),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(FIELDS), st.lists(_VALUES, min_size=1, max_size=2), max_size=25)
)
def test_any_post_is_read_without_crashing_and_errors_name_a_shown_field(
    form: dict[str, list[str]],
) -> None:
    parsed = read_form(form, KB)
    assert set(parsed.errors) <= set(FIELDS)
    if parsed.errors:
        return
    try:
        evaluate(parse_case(parsed.data), KB, dt.date(2026, 11, 21))
    except CaseValidationError as exc:
        for path, _ in exc.problems:
            assert field_of(path, parsed.rows) in FIELDS, path


def test_every_case_path_named_by_an_error_maps_to_a_shown_field() -> None:
    parsed = read_form(
        {
            "med.1.name": ["gabapentin"],
            "med.2.name": ["baclofen"],
            "med.2.dose": ["5"],
            "med.2.unit": ["mg"],
            "lab.sodium.value": ["130"],
            "lab.ferritin.value": ["40"],
            "order.1.name": ["quinine"],
        },
        KB,
    )
    assert field_of("medications[1].dose", parsed.rows) == "med.2.dose"
    assert field_of("medications[1].end_date", parsed.rows) == "med.2.end_date"
    assert field_of("labs[0].unit", parsed.rows) == "lab.ferritin.unit"
    assert field_of("labs[1].value", parsed.rows) == "lab.sodium.value"
    assert field_of("orders[0]", parsed.rows) == "order.1.name"
    assert field_of("symptoms.rls.irls_items[3]", parsed.rows) == "symptoms.rls.irls_items.4"
    assert field_of("conditions[2].concept", parsed.rows) == "conditions"
    assert field_of("patient.weight.value", parsed.rows) == "patient.weight.value"


def test_every_intake_item_has_a_label_written_for_people() -> None:
    """One source of labels (legspasm.intake_text): every leaf has one, none is a field path
    or a slug, and the form and the Questionnaire say the same."""
    from legspasm.fhir.intake import intake_leaves, questionnaire
    from legspasm.intake_text import LABELS

    items: dict[str, dict[str, Any]] = {}

    def visit(nodes: list[dict[str, Any]]) -> None:
        for it in nodes:
            if it["type"] == "group":
                visit(it["item"])
            elif it["type"] != "display":
                items[it["linkId"]] = it

    visit(questionnaire("test")["item"])
    for link in intake_leaves():
        assert link in LABELS, link
        text = LABELS[link].text
        assert "_" not in text, text
        assert not re.search(r"\b\d+ \d+\b", text), text  # "Severity 0 10"
        slug = link.rsplit(".", 1)[-1]
        if slug.count("_") >= 2:  # "Velocity dependent tone": a field name, not a question
            assert text != slug.replace("_", " ").capitalize(), text
        assert text[0].isupper(), text
        assert items[link]["text"] == text
        # the web form shows the Questionnaire's text for the item
        assert f">{text}</" in _PAGE.replace("&#39;", "'").replace("&#34;", '"'), link
        for opt in items[link].get("answerOption", []):
            if "valueCoding" in opt:
                assert "_" not in opt["valueCoding"]["display"], opt
