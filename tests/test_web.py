"""The clinician web pages over real HTTP (uvicorn on a port, SQLite audit store).

The form is the same path to the engine as a case file: for every golden vignette the form can
hold, submitting its fields gives exactly the assessment ``evaluate`` gives for the case file.
Bad input is shown next to its field, with everything typed kept. The browser tests
(``test_web_browser.py``) drive the same pages in Chromium.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader

from legspasm import Knowledge
from legspasm.assessment import Assessment
from legspasm.audit import AuditStore
from legspasm.caseio import load_case
from legspasm.engine import evaluate
from legspasm.fhir.intake import intake_leaves
from legspasm.server import create_app
from legspasm.settings import Settings
from legspasm.web import STATIC
from legspasm.web.form import case_to_form, read_form
from live_server import serve

AS_OF = dt.date(2026, 11, 21)
ROOT = Path(__file__).resolve().parents[1]
VIGNETTES = ROOT / "tests" / "vignettes"
SHARED = ROOT.parent / "shared" / "data"
SYNTHEA_NAME = "0fe762e3-9350-4387-98d4-a7e8a739d4e1.json"


def synthea_bundle() -> Path:
    """A Synthea patient from ../shared/data (the fixture copy when the checkout has none)."""
    shared = SHARED / "synthea-smart-bulk-data-server" / "bundles" / SYNTHEA_NAME
    return shared if shared.exists() else ROOT / "tests" / "fixtures" / "synthea" / SYNTHEA_NAME


@dataclass
class Web:
    base: str
    client: httpx.Client
    store: AuditStore


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'audit.sqlite3'}"
    store = AuditStore.open(url)
    app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), store=store)
    with (
        serve(app) as base,
        httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
    ):
        yield Web(base, client, store)
    store.close()


def form_of(case_file: Path, kb: Knowledge) -> dict[str, list[str]]:
    return case_to_form(load_case(case_file), kb)


def submit(web: Web, fields: Mapping[str, list[str]]) -> httpx.Response:
    return web.client.post("/assess", data=dict(fields))


def assessed(web: Web, r: httpx.Response) -> tuple[str, Assessment]:
    assert r.status_code == 303, r.text[:2000]
    m = re.fullmatch(r"/assessments/([0-9a-f-]{36})", r.headers["location"])
    assert m, r.headers["location"]
    inv = web.store.invocation(m.group(1))
    assert inv is not None
    assert inv.assessment is not None
    return m.group(1), Assessment.model_validate(inv.assessment)


def field_error(html: str, field_id: str) -> str:
    m = re.search(rf'id="{re.escape(field_id)}-error"><strong>Error:</strong> ([^<]*)</p>', html)
    assert m, f"no error shown for {field_id}"
    return m.group(1)


def same(a: Assessment, b: Assessment) -> None:
    x = a.model_dump(mode="json", exclude={"case_id"})
    y = b.model_dump(mode="json", exclude={"case_id"})
    assert x == y


# --- the form --------------------------------------------------------------------------------


def test_intake_form_mirrors_the_questionnaire(web: Web, kb: Knowledge) -> None:
    page = web.client.get("/?form=full").text
    names = set(re.findall(r'name="([^"]+)"', page))
    for link in intake_leaves():
        assert link in names, link
    for lab_id in kb.labs:
        assert f"lab.{lab_id}.value" in names
    for drug in kb.drugs.values():
        assert f'<option value="{drug.name}">' in page
    for concept in kb.concepts:
        assert f'value="{concept}"' in page
    # every visible control has a label (explicit, wrapping, or aria-label)
    ids = set(re.findall(r'<label for="([^"]+)"', page))
    for tag in re.findall(r"<(?:input|select)\b[^>]*>", page):
        if 'type="radio"' in tag or 'type="checkbox"' in tag or 'type="hidden"' in tag:
            continue
        m = re.search(r'id="([^"]+)"', tag)
        assert "aria-label=" in tag or (m and m.group(1) in ids), tag


def representable() -> list[Path]:
    return sorted(VIGNETTES.glob("*/case.yaml"))


@pytest.mark.parametrize("case_file", representable(), ids=lambda p: p.parent.name)
def test_the_form_gives_the_engine_s_assessment(web: Web, kb: Knowledge, case_file: Path) -> None:
    """Each vignette through the web form equals ``evaluate`` on the case file, when the form
    can hold the case; otherwise the form's case is what the form shows (nothing invented)."""
    case = load_case(case_file)
    fields = case_to_form(case, kb)
    parsed = read_form(fields, kb)
    assert parsed.errors == {}
    _, got = assessed(web, submit(web, fields))
    from legspasm.caseio import parse_case

    formed = parse_case(parsed.data)
    same(got, evaluate(formed, kb, AS_OF))
    lossless = all(c.concept for c in case.conditions) and all(lab.name for lab in case.labs)
    if lossless:
        same(got, evaluate(case, kb, AS_OF))


def test_bad_input_is_shown_next_to_its_field_and_nothing_typed_is_lost(web: Web) -> None:
    fields = {
        "patient.age_years": ["seventy"],
        "patient.sex": ["female"],
        "symptoms.cramp.present": ["yes"],
        "lab.ferritin.value": ["40"],
        "lab.ferritin.unit": ["ng/mL"],
        "lab.potassium.value": ["4.1"],
        "lab.potassium.unit": ["furlongs"],
        "med.1.dose": ["300"],
        "med.1.unit": ["mg"],
        "symptoms.rls.irls_items.1": ["3"],
        "allergies": ["penicillin"],
    }
    r = submit(web, fields)
    assert r.status_code == 422
    html = r.text
    assert "is not a number" in field_error(html, "f-patient-age-years")
    assert "name" in field_error(html, "f-med-1-name")
    assert "all ten" in field_error(html, "f-symptoms-rls-irls-items-2")
    # the typed values come back
    assert 'value="seventy"' in html
    assert 'value="40"' in html
    assert 'value="penicillin"' in html
    assert 'value="300"' in html
    assert re.search(r'name="symptoms.cramp.present" value="yes" checked', html)
    # the form-level problems fixed, the engine's checks name the lab field
    fixed = {
        **fields,
        "patient.age_years": ["70"],
        "med.1.name": ["gabapentin"],
        "symptoms.rls.irls_items.1": [""],
    }
    r = submit(web, fixed)
    assert r.status_code == 422
    assert "furlongs" in field_error(r.text, "f-lab-potassium-unit")


def test_engine_problems_map_back_to_the_form_field(web: Web) -> None:
    r = submit(
        web,
        {
            "patient.sex": ["male"],
            "patient.pregnant": ["yes"],
            "lab.ferritin.value": ["10000000"],
            "lab.ferritin.unit": ["ng/mL"],
        },
    )
    assert r.status_code == 422
    assert "plausible" in field_error(r.text, "f-lab-ferritin-value")
    assert "male" in field_error(r.text, "f-patient-pregnant")


def test_derived_values_are_computed_live_by_the_engine(web: Web) -> None:
    body = {
        "patient.age_years": "78",
        "patient.sex": "male",
        "patient.weight.value": "60",
        "patient.weight.unit": "kg",
        "lab.creatinine.value": "247.5",
        "lab.creatinine.unit": "umol/L",
        **{f"symptoms.rls.irls_items.{i}": "3" for i in range(1, 11)},
    }
    d = web.client.post("/intake/derived", data=body).json()
    assert d["irls_total"] == 30
    assert d["irls_severity"] == "severe"
    # Cockcroft-Gault by hand: (140-78) * 60 / (72 * 247.5/88.42) = 18.46
    assert d["crcl_ml_min"] == pytest.approx(18.5, abs=0.1)
    body["symptoms.rls.irls_items.10"] = "4"
    assert web.client.post("/intake/derived", data=body).json()["irls_severity"] == "very severe"
    half = web.client.post("/intake/derived", data={"patient.age_years": "x"}).json()
    assert half["errors"] == {"patient.age_years": "'x' is not a number"}


# --- upload and examples -----------------------------------------------------------------------


def test_upload_a_synthea_bundle(web: Web, kb: Knowledge) -> None:
    path = synthea_bundle()
    r = web.client.post(
        "/upload", files={"file": (path.name, path.read_bytes(), "application/json")}
    )
    invocation_id, a = assessed(web, r)
    assert a.derived.age_years == 71
    assert a.data_used, "the record's data is listed"
    assert any(i.severity == "avoid" and "diazepam" in i.target for i in a.avoid)
    page = web.client.get(f"/assessments/{invocation_id}").text
    assert "From the record" in page
    assert "upload: " + path.name in page
    inv = web.store.invocation(invocation_id)
    assert inv is not None
    assert inv.patient_id == "Patient/" + path.stem


def test_upload_problems_name_the_file(web: Web, tmp_path: Path) -> None:
    r = web.client.post(
        "/upload", files={"file": ("broken.json", b"{not json", "application/json")}
    )
    assert r.status_code == 422
    assert "broken.json" in field_error(r.text, "f-file")
    assert "not valid JSON" in r.text
    assert "/tmp" not in field_error(r.text, "f-file")
    r = web.client.post("/upload", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 422
    r = web.client.post(
        "/upload", files={"file": ("case.yaml", b"patient: {age_years: 300}\n", "text/yaml")}
    )
    assert r.status_code == 422
    assert "patient.age_years" in field_error(r.text, "f-file")


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("int.json", b'{"resourceType": "Patient", "id": ' + b"9" * 5000 + b"}", "digits"),
        ("date.yaml", b"patient: {birth_date: 2026-13-45}\n", "not a valid date"),
        (
            "bomb.yaml",
            b"a: &a [x,x,x,x,x,x,x,x,x]\n"
            + b"".join(
                f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode()
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "YAML aliases",
        ),
    ],
)
def test_hostile_uploads_are_422_with_a_short_message(
    web: Web, name: str, content: bytes, says: str
) -> None:
    r = web.client.post("/upload", files={"file": (name, content, "application/octet-stream")})
    assert r.status_code == 422
    assert says in field_error(r.text, "f-file")
    assert len(r.content) < 200_000


def test_upload_with_several_patients_asks_which(web: Web) -> None:
    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "birthDate": "1950-01-01"}
        for i in range(3)
    ]
    ndjson = "\n".join(json.dumps(p) for p in patients).encode()
    r = web.client.post(
        "/upload", files={"file": ("Patient.ndjson", ndjson, "application/x-ndjson")}
    )
    assert r.status_code == 422
    assert "3 patients" in field_error(r.text, "f-file")
    assert re.search(r'<select id="f-patient" name="patient"><option>p0</option>', r.text)
    r = web.client.post(
        "/upload",
        files={"file": ("Patient.ndjson", ndjson, "application/x-ndjson")},
        data={"patient": "p2"},
    )
    _, a = assessed(web, r)
    assert a.derived.age_years == 76


def test_every_example_opens(web: Web) -> None:
    page = web.client.get("/?form=full").text
    names = re.findall(r'action="/examples/([\w-]+)"', page)
    assert len(names) >= 6
    for name in names:
        _, a = assessed(web, web.client.post(f"/examples/{name}"))
        assert a.conditions
    filled = web.client.get("/?example=rls-low-ferritin").text
    assert 'name="lab.ferritin.value"' in filled
    assert re.search(r'name="lab.ferritin.value"[^>]*value="40"', filled)


# --- the result page ---------------------------------------------------------------------------


def test_result_page_red_flags_first_then_plan_avoid_and_numbered_citations(
    web: Web, kb: Knowledge
) -> None:
    fields = form_of(VIGNETTES / "dvt-unilateral-swelling" / "case.yaml", kb)
    invocation_id, a = assessed(web, submit(web, fields))
    page = web.client.get(f"/assessments/{invocation_id}").text
    heads = (
        "Bottom line",
        "Red flags: act before",
        "What not to do",
        "Once the red flag is excluded",
        "What to do",
        "What it probably is",
        "References",
    )
    order = [page.index(h) for h in heads]
    assert order == sorted(order)
    assert "Possible deep vein thrombosis" in page
    assert "Held until the red flag is excluded" in page
    # The reference list holds exactly what the page cites, in the assessment's numbering
    # (the one the cards use); sources only the patient handout uses are not listed.
    cited = {int(n) for n in re.findall(r'href="#ref-(\d+)"', page)}
    listed = {int(n) for n in re.findall(r'id="ref-(\d+)"', page)}
    assert cited == listed
    for ref in a.citations:
        if ref.number in listed and ref.url:
            assert f'href="{ref.url}"' in page
    handout_only = (
        {c for h in a.handout for c in h.citations}
        - {c for x in (*a.red_flags, *a.plan, *a.avoid) for c in x.citations}
        - {c for x in a.conditions if x.status != "unlikely" for c in x.citations}
    )
    assert not {r.number for r in a.citations if r.id in handout_only} & listed
    for s in a.plan:
        assert s.strength in page


def test_missing_data_answered_in_place_reassesses(web: Web) -> None:
    base = {
        "patient.age_years": ["62"],
        "patient.sex": ["male"],
        "symptoms.cramp.present": ["yes"],
        "symptoms.cramp.timing": ["night_or_rest"],
    }
    first_id, first = assessed(web, submit(web, base))
    assert not first.red_flags
    asked = {m.where for m in first.missing_data}
    assert "red_flags.unilateral_leg_swelling" in asked
    page = web.client.get(f"/assessments/{first_id}").text
    assert f'action="/assessments/{first_id}/answers"' in page
    assert 'name="red_flags.unilateral_leg_swelling"' in page
    r = web.client.post(
        f"/assessments/{first_id}/answers",
        data={
            "red_flags.unilateral_leg_swelling": "yes",
            "lab.potassium.value": "3.9",
            "lab.potassium.unit": "mmol/L",
        },
    )
    second_id, second = assessed(web, r)
    assert second_id != first_id
    assert [rf.id for rf in second.red_flags] == ["RF-DVT"]
    inv = web.store.invocation(second_id)
    assert inv is not None
    assert inv.case is not None
    assert inv.case["labs"] == [{"name": "potassium", "value": 3.9, "unit": "mmol/L"}]
    assert inv.case["patient"]["age_years"] == 62
    assert inv.label is not None
    assert inv.label.endswith("(answers added)")
    # the first assessment is unchanged
    again = web.store.invocation(first_id)
    assert again is not None
    assert Assessment.model_validate(again.assessment).red_flags == []
    bad = web.client.post(f"/assessments/{first_id}/answers", data={"lab.sodium.value": "abc"})
    assert bad.status_code == 422
    assert "not a number" in field_error(bad.text, "f-lab-sodium-value")


def test_print_view_and_pdfs(web: Web, kb: Knowledge) -> None:
    fields = form_of(VIGNETTES / "nlc-older-woman-on-cyclobenzaprine" / "case.yaml", kb)
    invocation_id, a = assessed(web, submit(web, fields))
    page = web.client.get(f"/assessments/{invocation_id}/print").text
    assert "Clinician summary" in page
    assert a.handout, "a cramp patient gets a handout"
    for section in a.handout:
        assert section.heading in page
    for name in ("summary", "handout"):
        r = web.client.get(f"/assessments/{invocation_id}/{name}.pdf")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF-")
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
        text = " ".join(text.split())
        if name == "summary":
            assert "What to do" in text
            assert "cyclobenzaprine" in text.lower()
        else:
            assert len(PdfReader(io.BytesIO(r.content)).pages) == 1
            for section in a.handout:
                assert " ".join(section.heading.split()) in text
            assert "Sources" not in text


def test_handout_pdf_page_size_is_a_setting(tmp_path: Path, kb: Knowledge) -> None:
    """US Letter by default (the web fixture), A4 with handout_page_size; one page either way."""
    url = f"sqlite:///{tmp_path / 'a4.sqlite3'}"
    settings = Settings(dev=True, database_url=url, as_of=AS_OF, handout_page_size="a4")
    assert Settings(dev=True).handout_page_size == "letter"
    store = AuditStore.open(url)
    with (
        serve(create_app(settings, store=store)) as base,
        httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
    ):
        web = Web(base, client, store)
        fields = form_of(VIGNETTES / "rev-04-stroke-diazepam" / "case.yaml", kb)
        invocation_id, _ = assessed(web, submit(web, fields))
        pdf = client.get(f"/assessments/{invocation_id}/handout.pdf")
        assert pdf.status_code == 200
        reader = PdfReader(io.BytesIO(pdf.content))
        assert len(reader.pages) == 1
        box = reader.pages[0].mediabox
        assert (round(float(box.width)), round(float(box.height))) == (595, 842)
        text = " ".join(reader.pages[0].extract_text().split())
        assert "spasticity" in text
        assert "Sources" not in text
        summary = PdfReader(
            io.BytesIO(client.get(f"/assessments/{invocation_id}/summary.pdf").content)
        )
        box = summary.pages[0].mediabox
        assert (round(float(box.width)), round(float(box.height))) == (595, 842)
        assert "Bottom line" in summary.pages[0].extract_text()
    store.close()


def test_history_lists_web_and_cds_hooks_assessments(web: Web, kb: Knowledge) -> None:
    label = f"history-{uuid.uuid4().hex[:8]}"
    fields = {**form_of(VIGNETTES / "rls-low-ferritin-crcl-25" / "case.yaml", kb), "id": [label]}
    invocation_id, _ = assessed(web, submit(web, fields))
    page = web.client.get("/history").text
    assert f'href="/assessments/{invocation_id}"' in page
    only = web.client.get("/history", params={"patient": label}).text
    assert only.count('href="/assessments/') == 1
    assert web.client.get(f"/assessments/{invocation_id}").status_code == 200
    edit = web.client.get(f"/assessments/{invocation_id}/edit").text
    assert re.search(r'name="lab.ferritin.value"[^>]*value="40"', edit)


def test_unknown_assessments_are_404_pages(web: Web) -> None:
    for path in (
        f"/assessments/{uuid.uuid4()}",
        "/assessments/not-a-uuid",
        f"/plan/{uuid.uuid4()}",
    ):
        r = web.client.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
    assert web.client.get(f"/assessments/{uuid.uuid4()}/handout.pdf").status_code == 404


def test_secure_mode_closes_the_pages_that_list_or_create(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    settings = Settings(
        database_url=url,
        as_of=AS_OF,
        issuers=[{"iss": "https://ehr", "jwks_file": jwks}],
        public_url="https://cds.example",
        link_secret="test-link-secret-0123456789abcdef-xyz",
    )
    with AuditStore.open(url) as store:
        with (
            serve(create_app(settings, store=store)) as base,
            httpx.Client(base_url=base, trust_env=False) as client,
        ):
            for path in ("/", "/history"):
                r = client.get(path)
                assert r.status_code == 404
                assert "LEGSPASM_WEB_PAGES" in r.text
            r = client.post("/assess", data={"symptoms.cramp.present": "yes"})
            assert r.status_code == 404
            assert store.count_invocations() == 0
        opened = Settings(**{**settings.model_dump(), "web_pages": True})
        with serve(create_app(opened, store=store)) as base:
            assert httpx.get(base + "/", trust_env=False).status_code == 200


def test_upload_the_ndjson_files_of_a_bulk_export(web: Web) -> None:
    patients = [
        {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1948-05-01"}
        for pid in ("a1", "b2")
    ]
    ferritin = {
        "resourceType": "Observation",
        "id": "fer-1",
        "status": "final",
        "subject": {"reference": "Patient/a1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]},
        "effectiveDateTime": "2026-11-01",
        "valueQuantity": {"value": 40, "unit": "ng/mL"},
    }
    export = [
        ("file", ("Patient.000.ndjson", "\n".join(map(json.dumps, patients)).encode())),
        ("file", ("Observation.000.ndjson", json.dumps(ferritin).encode())),
    ]
    r = web.client.post("/upload", files=export)
    assert r.status_code == 422
    assert "2 patients" in field_error(r.text, "f-file")
    _, a = assessed(web, web.client.post("/upload", files=export, data={"patient": "a1"}))
    assert any(u.field == "labs" and "ferritin" in u.value for u in a.data_used)
    broken = [*export[:1], ("file", ("Observation.000.ndjson", b'{"resourceType": "Obs\n'))]
    r = web.client.post("/upload", files=broken, data={"patient": "a1"})
    assert r.status_code == 422
    shown = field_error(r.text, "f-file")
    assert "Observation.000.ndjson" in shown
    assert "line 1" in shown
    assert "/tmp" not in shown
    assert "export" not in shown
    mixed = [*export[:1], ("file", ("case.yaml", b"id: x\n"))]
    r = web.client.post("/upload", files=mixed)
    assert r.status_code == 422
    assert "bulk export" in field_error(r.text, "f-file")


def test_cross_site_form_posts_are_refused(web: Web) -> None:
    before = web.store.count_invocations()
    form = {"symptoms.cramp.present": "yes"}
    for headers in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.example"},
        {"Origin": "null"},  # a sandboxed frame or a data: page
    ):
        for path in ("/assess", "/upload", "/examples/nocturnal-cramps", "/intake/derived"):
            r = web.client.post(path, data=form, headers=headers)
            assert r.status_code == 403, (path, headers)
    assert web.store.count_invocations() == before
    host = web.base.removeprefix("http://")
    ok = web.client.post(
        "/assess", data=form, headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    )
    assert ok.status_code == 303
    # Our pages send no referrer, so Chromium's own same-origin post says Origin: null.
    own = web.client.post(
        "/assess", data=form, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    )
    assert own.status_code == 303


def test_every_answer_forbids_caching_framing_and_referrers(web: Web) -> None:
    form = {"symptoms.cramp.present": "yes", "patient.age_years": "60"}
    plan = web.client.post("/assess", data=form)
    assert plan.status_code == 303
    pages = [web.client.get(plan.headers["location"]), web.client.get("/"), web.client.get("/nope")]
    pages.append(web.client.get("/cds-services"))
    for r in pages:
        assert r.headers["cache-control"] == "no-store", r.url
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert r.headers["x-content-type-options"] == "nosniff"
    css = web.client.get("/static/" + next(p.name for p in STATIC.iterdir() if p.is_file()))
    assert css.status_code == 200
    assert "no-store" not in css.headers.get("cache-control", "")


def test_a_wrong_method_is_405_with_allow(web: Web) -> None:
    r = web.client.put("/assess")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["resourceType"] == "OperationOutcome"


# --- the adaptive intake -------------------------------------------------------------------------

_CONTROL = re.compile(r"<(input|select)\b([^>]*)>")


def visible_fields(html: str) -> set[str]:
    """The names of the form controls a step shows (not its hidden fields)."""
    out = set()
    for _, attrs in _CONTROL.findall(html):
        m = re.search(r'name="([^"]+)"', attrs)
        if m and 'type="hidden"' not in attrs:
            out.add(m.group(1))
    return out


def hidden_fields(html: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for _, attrs in _CONTROL.findall(html):
        m = re.search(r'type="hidden" name="([^"]+)" value="([^"]*)"', attrs)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2).replace("&#34;", '"'))
    return out


def _answer_of(name: str) -> str:
    """One answer: a question, or one row of the medicine or laboratory table (a medicine with
    its dose, times a day and start date; a result with its unit and date)."""
    m = re.fullmatch(r"((?:med|order|lab)\.\w+)\.\w+", name)
    return m.group(1) if m else name


def _core(a: Assessment) -> tuple[object, ...]:
    """What the clinician acts on: what it probably is, red flags, what to do, what not to do."""
    return (
        {c.id: c.status for c in a.conditions if c.status in ("documented", "likely", "possible")},
        sorted(r.id for r in a.red_flags),
        sorted(s.id for s in a.plan),
        sorted(i.id for i in a.avoid),
    )


def adaptive_flow(web: Web, full: Mapping[str, list[str]]) -> tuple[int, int, Assessment]:
    """A clinician going through the two steps for the patient ``full`` describes: in each
    step they answer what the page asks and the record knows (the red-flag screen with its
    "none of the others" box when no red flag is present). Returns (answers given, questions
    step 1 showed, the assessment)."""
    page = web.client.get("/").text
    asked = visible_fields(page) - {"screen_none"}
    step1_questions = len(asked - {"patient.birth_date"})
    screen = hidden_fields(page)["screen_item"]
    values: dict[str, list[str]] = {"step": ["1"], "go": ["next"], "screen_item": screen}
    answered: set[str] = set()
    for name in sorted(asked):
        if name in full and not (name in screen and full[name] != ["yes"]):
            values[name] = list(full[name])
            answered.add(name)
    answers = len(answered)
    if not any(full.get(n) == ["yes"] for n in screen):
        values["screen_none"] = ["yes"]
        answers += 1
    r = web.client.post("/intake/step", data=values)
    for _ in range(5):
        assert r.status_code == 200, r.text[:2000]
        posted: dict[str, list[str]] = hidden_fields(r.text)
        # the folded "More details" are not asked: only what the page shows outside them
        asked_now = visible_fields(r.text.split('<details class="more"', 1)[0])
        new = 0
        for name in asked_now:
            if name in full:
                posted[name] = list(full[name])
                if not name.endswith((".unit", ".status")) and name not in answered:
                    answered.add(name)
                    new += 1
        answers += new
        posted["go"] = ["next"] if new else ["now"]
        r = web.client.post("/intake/step", data=posted)
        if r.status_code == 303:
            break
    _, a = assessed(web, r)
    return len({_answer_of(n) for n in answered}), step1_questions, a


CRAMP_PATIENTS = [
    VIGNETTES / "nlc-typical-middle-aged-man-no-drugs" / "case.yaml",
    ROOT / "src" / "legspasm" / "examples" / "nocturnal-cramps.yaml",
]


@pytest.mark.parametrize(
    "case_file", CRAMP_PATIENTS, ids=lambda p: p.parent.name if p.name == "case.yaml" else p.stem
)
def test_a_typical_cramp_patient_needs_at_most_15_answers(
    web: Web, kb: Knowledge, case_file: Path
) -> None:
    case = load_case(case_file)
    full = case_to_form(case, kb)
    answers, step1, got = adaptive_flow(web, full)
    assert _core(got) == _core(evaluate(case, kb, AS_OF))
    before = len({_answer_of(k) for k in full if not k.endswith((".unit", ".status"))})
    print(f"{case_file.parent.name}: {answers} answers (the full form: {before}); step 1: {step1}")
    assert answers <= 15


def test_step_one_errors_name_the_field_by_its_label(web: Web) -> None:
    r = web.client.post(
        "/intake/step", data={"step": "1", "go": "next", "patient.age_years": "250"}
    )
    assert r.status_code == 422
    summary = r.text.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    assert "Age (years):" in summary
    assert "patient.age_years" not in summary
    assert "250" in field_error(r.text, "f-patient-age-years") or field_error(
        r.text, "f-patient-age-years"
    )


def test_the_evidence_review_a_citation_names_opens_as_a_page(web: Web, kb: Knowledge) -> None:
    """The project's own evidence review ships with it: its citation links to a page that
    opens (headings and tables rendered), and an unknown document is a 404, not a file read."""
    cites = {a.id: c for a in kb.citations.values() for c in [a] if c.url and "/docs/" in c.url}
    assert set(cites) == {"LS-REVIEW"}
    fields = form_of(VIGNETTES / "rev-11-probe-ms-spasticity" / "case.yaml", kb)
    invocation_id, a = assessed(web, submit(web, fields))
    page = web.client.get(f"/assessments/{invocation_id}").text
    if "LS-REVIEW" in {c.id for c in a.citations}:
        assert 'href="/docs/evidence/evidence.md"' in page
    doc = web.client.get("/docs/evidence/evidence.md")
    assert doc.status_code == 200
    assert "<h1>Clinical evidence review" in doc.text
    assert "<table>" in doc.text
    for name in ("verification-codes.md", "verification-doses.md", "verification-doses-2.md"):
        assert web.client.get(f"/docs/evidence/{name}").status_code == 200
    assert web.client.get("/docs/evidence/..%2Fsettings.py").status_code == 404
    assert web.client.get("/docs/evidence/nothing.md").status_code == 404
