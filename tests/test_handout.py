"""The patient handout: plain-language knowledge data (handouts.yaml), validated at load and chosen
by the pure engine. Sections follow the routing contexts, one for every pathway; unsafe self-care
(stretching, massage, fluid and salt) is left out exactly when the plan withholds it; warning signs
are only those relevant to this patient (as the data says), a present red flag is a sign found
today; every handout citation is numbered in the assessment but none is printed. Every vignette's
handout is one page (US Letter and A4), at reading grade 8 or lower (textstat), with no rule id,
field name or citation number."""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import textstat
import yaml
from hypothesis import HealthCheck, given, settings
from pypdf import PdfReader

from legspasm import Assessment, Knowledge, KnowledgeError, evaluate, load_knowledge
from legspasm.caseio import parse_case
from legspasm.engine.derive import FactMap
from legspasm.engine.handout import handout
from legspasm.knowledge.loader import DATA_DIR
from legspasm.render.handout import handout_text, handout_view
from legspasm.render.pdf import handout_pdf
from strategies import AS_OF, KB, case_dicts

VIGNETTES = Path(__file__).parent / "vignettes"
AS_OF_VIGNETTE = dt.date(2026, 11, 21)
URGENT = ["HO-URGENT-EMERGENCY", "HO-URGENT-SAME-DAY"]
SAME_DAY = "HO-URGENT-SAME-DAY"
QUININE = "HO-QUININE"
CRAMP_SELF_CARE = ["HO-CRAMP-DURING", "HO-CRAMP-NIGHTLY"]

# --- helpers ----------------------------------------------------------------------------------


def case_data(name: str) -> dict[str, Any]:
    data = yaml.safe_load((VIGNETTES / name / "case.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def assess(data: dict[str, Any], kb: Knowledge) -> Assessment:
    return evaluate(parse_case(data), kb, AS_OF_VIGNETTE)


def vignette(name: str, kb: Knowledge, **red_flags: bool) -> Assessment:
    data = case_data(name)
    if red_flags:
        data["red_flags"] = {**(data.get("red_flags") or {}), **red_flags}
    return assess(data, kb)


def sections(a: Assessment) -> list[str]:
    return [s.id for s in a.handout]


# --- which sections a patient gets ------------------------------------------------------------

NLC = "nlc-typical-middle-aged-man-no-drugs"
RLS = "rls-low-ferritin-crcl-25"
HEAT = "exertional-heat-cramps-runner"
FMD = "fmd-functional-dystonia-on-baclofen"
CIRRHOSIS = "cirrhosis-cramps-ascites-diuretics-baclofen"
PREGNANCY = "pregnancy-cramps-second-trimester-on-cyclobenzaprine"
STROKE = "rev-04-stroke-diazepam"
SECONDARY = "rev-01-thiazide-cramps"
DIALYSIS = "dialysis-cramps-on-gabapentin-enacarbil"
CLAUDICATION = "claudication-not-exertional-cramps"
MSK = "boundary-age-64-cyclobenzaprine-allowed"
MSK_OLDER = "boundary-age-65-cyclobenzaprine-beers-avoid"
CORD = "cord-spasticity-sci-focal-refractory-on-lisinopril"
FAINT = "presyncope-vasovagal-young-woman"
TETANY = "tetany-hyperventilation-normal-labs"
QUININE_TOXICITY = "quinine-toxicity-bruising-nocturnal-cramps"

# section: (vignettes where it is shown, vignettes where it is not)
SHOWN_IN = {
    "HO-CRAMP-DURING": ([NLC, PREGNANCY, CIRRHOSIS], [RLS, HEAT, FMD]),
    "HO-CRAMP-NIGHTLY": ([NLC, PREGNANCY], [RLS, CIRRHOSIS, HEAT]),
    "HO-HEAT": ([HEAT], [NLC, RLS]),
    "HO-RLS": ([RLS], [NLC, HEAT]),
    "HO-FMD": ([FMD], [NLC, RLS]),
    "HO-SECONDARY": ([SECONDARY], [NLC, RLS]),
    "HO-PREGNANCY": ([PREGNANCY], [NLC, RLS]),
    "HO-CIRRHOSIS": ([CIRRHOSIS], [NLC, DIALYSIS]),
    "HO-DIALYSIS": ([DIALYSIS], [NLC, CIRRHOSIS]),
    "HO-CLAUDICATION": ([CLAUDICATION], [NLC, HEAT]),
    "HO-MSK": ([MSK, MSK_OLDER], [NLC, STROKE]),
    "HO-STROKE": ([STROKE], [NLC, CORD]),
    "HO-CORD": ([CORD], [NLC, STROKE]),
    "HO-PRESYNCOPE": ([FAINT], [NLC, RLS]),
    "HO-TETANY": ([TETANY], [NLC, RLS]),
}


@pytest.mark.parametrize("section", sorted(SHOWN_IN))
def test_section_follows_its_contexts(section: str, kb: Knowledge) -> None:
    shown, not_shown = SHOWN_IN[section]
    for name in shown:
        a = vignette(name, kb)
        assert section in sections(a), f"{section} missing for {name}"
        status = {c.id: c.status for c in a.conditions}
        assert any(status[c] in ("documented", "likely") for c in kb.handouts[section].contexts)
    for name in not_shown:
        assert section not in sections(vignette(name, kb)), f"{section} shown for {name}"


def test_every_section_is_exercised_by_the_table(kb: Knowledge) -> None:
    assert set(SHOWN_IN) | set(URGENT) | {QUININE} == set(kb.handouts)


def test_every_pathway_has_its_own_section(kb: Knowledge) -> None:
    """Each routing context (pathway) has a plain-language section of its own."""
    covered = {c for s in kb.handouts.values() for c in s.contexts}
    assert covered == set(kb.contexts)


def test_typical_nocturnal_cramps_get_the_cramp_handout_in_file_order(kb: Knowledge) -> None:
    a = vignette(NLC, kb)
    assert sections(a) == [*CRAMP_SELF_CARE, QUININE, SAME_DAY]
    assert sections(a) == [s for s in kb.handouts if s in sections(a)]


def test_urgent_sections_with_no_condition_at_all(kb: Knowledge) -> None:
    """The pure function on its own: no context established, no red flag, nothing taken -> only
    the warning signs that matter for anyone with leg pain (DVT), cited by the red flag."""
    out = handout(kb, [], [], FactMap({}))
    assert [s.id for s in out] == [SAME_DAY]
    assert [i.red_flag for i in out[0].items] == ["RF-DVT"]
    assert set(out[0].citations) == set(kb.red_flags["RF-DVT"].citations)


def red_flag_lines(a: Assessment) -> dict[str, bool]:
    """The red flags the handout describes, each with whether it is found today."""
    return {i.red_flag: i.found for s in a.handout for i in s.items if i.red_flag}


# --- only the warning signs that matter for this patient --------------------------------------


def test_nocturnal_cramps_get_only_their_mimics(kb: Knowledge) -> None:
    """The review's complaint: 11 bullets, most irrelevant (FAST, antipsychotic dystonia, quinine
    bleeding, cyclobenzaprine with antidepressants). A man with typical cramps and no medicines
    gets DVT and the neurological mimics of cramps only."""
    assert red_flag_lines(vignette(NLC, kb)) == {
        "RF-DVT": False,
        "RF-NEUROMUSCULAR": False,
        "RF-MYELOPATHY": False,
    }


@pytest.mark.parametrize(
    ("name", "shown", "not_shown"),
    [
        (STROKE, {"RF-STROKE", "RF-DVT"}, {"RF-QUININE-TOXICITY", "RF-HEATSTROKE"}),
        (FAINT, {"RF-STROKE"}, {"RF-COMPARTMENT", "RF-NEUROMUSCULAR"}),
        (HEAT, {"RF-HEATSTROKE", "RF-RHABDO", "RF-COMPARTMENT"}, {"RF-STROKE"}),
        (MSK, {"RF-COMPARTMENT", "RF-CAUDA", "RF-RHABDO"}, {"RF-HEATSTROKE"}),
        (CLAUDICATION, {"RF-ISCHAEMIA", "RF-CLTI"}, {"RF-HEATSTROKE"}),
        (QUININE_TOXICITY, {"RF-QUININE-TOXICITY"}, {"RF-STROKE"}),
        ("itb-pump-withdrawal-fever-rigidity", {"RF-ITB-WITHDRAWAL"}, {"RF-QUININE-TOXICITY"}),
        ("acute-dystonia-after-metoclopramide", {"RF-DYSTONIA"}, {"RF-QUININE-TOXICITY"}),
        (RLS, {"RF-DVT"}, {"RF-STROKE", "RF-DYSTONIA", "RF-HYPERTHERMIA", "RF-TETANY"}),
    ],
)
def test_warning_signs_follow_the_patient(
    name: str, shown: set[str], not_shown: set[str], kb: Knowledge
) -> None:
    lines = red_flag_lines(vignette(name, kb))
    assert shown <= set(lines), (name, sorted(lines))
    assert not not_shown & set(lines), (name, sorted(lines))


def test_a_present_red_flag_is_a_sign_found_today_not_a_future_if(kb: Knowledge) -> None:
    """The review: the DVT handout listed her current problem as a future 'see a doctor if'."""
    a = vignette("dvt-unilateral-swelling", kb)
    assert red_flag_lines(a)["RF-DVT"] is True
    v = handout_view(a)
    assert any("One leg is swollen" in t for t in v.found)
    assert v.alert
    for s in v.sections:
        assert not any("One leg is swollen" in t for t in s.items), s.id


def test_pregnancy_words_only_in_pregnancy(kb: Knowledge) -> None:
    for name in (NLC, RLS, STROKE, HEAT):
        text = handout_text(vignette(name, kb)).lower()
        assert "in pregnancy" not in text, name
    assert "in pregnancy" in handout_text(vignette(PREGNANCY, kb)).lower()


def test_stroke_handout_explains_spasticity_and_diazepam(kb: Knowledge) -> None:
    """The review: the stroke handout said nothing about spasticity, stretching or diazepam."""
    a = vignette(STROKE, kb)
    sec = next(s for s in a.handout if s.id == "HO-STROKE")
    text = " ".join(i.text for i in sec.items).lower()
    for want in ("spasticity", "physical therapist", "every day", "splints", "diazepam"):
        assert want in text, want
    assert "AV-BENZO-STROKE" in {i.id for i in a.avoid}
    assert set(kb.avoid_rules["AV-BENZO-STROKE"].citations) <= set(sec.citations)
    v = handout_view(a)
    assert v.medicines is not None
    assert "diazepam" in v.medicines
    assert v.taper is not None
    assert "diazepam" in v.taper


def test_quinine_is_stopped_not_tapered(kb: Knowledge) -> None:
    v = handout_view(vignette(QUININE_TOXICITY, kb))
    assert v.medicines is not None
    assert "quinine" in v.medicines
    assert v.taper is None or "quinine" not in v.taper


def test_lines_tied_to_an_avoid_rule_need_it_on_the_avoid_list(kb: Knowledge) -> None:
    """The dopamine-agonist line comes with AV-DA-RLS; the benzodiazepine line with stroke."""
    a = vignette(RLS, kb)
    assert "AV-DA-RLS" in {i.id for i in a.avoid}
    assert "ropinirole" in handout_text(a)
    assert "benzodiazepines" not in handout_text(a)
    assert "ropinirole" not in handout_text(vignette(STROKE, kb))


def test_older_adults_get_the_beers_line_younger_ones_the_short_course(kb: Knowledge) -> None:
    younger, older = handout_text(vignette(MSK, kb)), handout_text(vignette(MSK_OLDER, kb))
    assert "At 65 and over, muscle relaxants" in older
    assert "At 65 and over, muscle relaxants" not in younger
    assert "only for a short time" in younger


# --- unsafe advice is left out, urgent help never is ------------------------------------------


def test_dvt_drops_stretching_and_massage_but_keeps_the_urgent_sections(kb: Knowledge) -> None:
    a = vignette(NLC, kb, unilateral_leg_swelling=True)
    assert "RF-DVT" in {rf.id for rf in a.red_flags}
    assert not set(CRAMP_SELF_CARE) & set(sections(a))
    assert sections(a) == [QUININE, SAME_DAY]
    dvt = [i for s in a.handout for i in s.items if i.red_flag == "RF-DVT"]
    assert len(dvt) == 1
    assert dvt[0].found
    assert "Do not rub or stretch that leg" in dvt[0].text


def test_dvt_in_pregnancy_drops_the_cramp_sections(kb: Knowledge) -> None:
    a = vignette("pregnancy-dvt-unilateral-calf-swelling", kb)
    assert "RF-DVT" in {rf.id for rf in a.red_flags}
    assert sections(a) == ["HO-PREGNANCY", QUININE, SAME_DAY]
    pregnancy = next(s for s in a.handout if s.id == "HO-PREGNANCY")
    assert not any("Stretching" in i.text for i in pregnancy.items)


def test_dvt_keeps_advice_it_does_not_withhold(kb: Knowledge) -> None:
    """A possible DVT withholds stretching and massage only: RLS tips (self-care) stay."""
    a = vignette(RLS, kb, unilateral_leg_swelling=True)
    assert "RF-DVT" in {rf.id for rf in a.red_flags}
    assert sections(a) == ["HO-RLS", QUININE, SAME_DAY]


def test_compartment_syndrome_withholds_all_self_care(kb: Knowledge) -> None:
    a = vignette(RLS, kb, pain_on_passive_stretch=True)
    assert "RF-COMPARTMENT" in {rf.id for rf in a.red_flags}
    assert sections(a) == [QUININE, *URGENT]
    assert red_flag_lines(a)["RF-COMPARTMENT"] is True


def test_functional_motor_disorder_drops_stretching_advice(kb: Knowledge) -> None:
    """C13: with FMD, passive-stretching advice is withheld (AV-FMD-PASSIVE-STRETCH), in the
    handout as in the plan, and FMD advice is given instead."""
    a = vignette("fmd-with-nocturnal-cramps-no-passive-stretch", kb)
    assert {"NLC-ACUTE", "NLC-STRETCH"} <= {w.id for w in a.withheld}
    assert sections(a) == ["HO-FMD", QUININE, SAME_DAY]


def test_heat_cramp_first_aid_is_left_out_when_fluid_and_salt_are_not_advised(
    kb: Knowledge,
) -> None:
    """C4: no electrolyte drink advice in heart failure (AV-FLUID-SALT), as for EX-ACUTE."""
    data = case_data(HEAT)
    data["conditions"] = [{"concept": "heart_failure"}]
    a = assess(data, kb)
    assert "EX-ACUTE" in {w.id for w in a.withheld}
    assert "HO-HEAT" not in sections(a)
    assert sections(a) == [QUININE, *URGENT]


def test_handout_tags_cover_what_the_text_advises(kb: Knowledge) -> None:
    """A line that advises stretching, massage or extra fluid and salt carries the tag that
    withholds it (on the line or its section); lines that say not to are exempt."""
    for s in kb.handouts.values():
        if s.urgency:
            continue
        for item in s.items:
            text = item.text.lower()
            tags = set(s.tags) | set(item.tags)
            if re.search(r"\bstretch", text) and s.id != "HO-FMD":
                assert "stretching" in tags, (s.id, item.text)
            if "rub" in text or "massag" in text:
                assert "massage" in tags, (s.id, item.text)
            if re.search(r"(?<!not )drink", text) or "more salt" in text:
                assert "fluid-salt" in tags, (s.id, item.text)


# --- citations, red flags and content ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in VIGNETTES.iterdir() if p.is_dir()))
def test_every_handout_citation_is_numbered(name: str, kb: Knowledge) -> None:
    a = vignette(name, kb)
    numbered = {c.id for c in a.citations}
    for s in a.handout:
        assert s.citations, s.id
        assert set(s.citations) <= numbered, (s.id, set(s.citations) - numbered)
    # Every red flag this patient has is in the handout: found today when present.
    lines = red_flag_lines(a)
    for rf in a.red_flags:
        assert lines.get(rf.id) is (rf.status == "present"), rf.id


# --- what the patient reads: one page, plain words, no codes -------------------------------

ALL = sorted(p.name for p in VIGNETTES.iterdir() if p.is_dir())
RULE_ID = re.compile(r"\b[A-Z]{2,}-[A-Z0-9-]+\b")
CITATION_NUMBER = re.compile(r"\[\d+\]")
# snake_case or dotted fact names (red_flag, lab.ferritin), enum values as field names
FIELD_NAME = re.compile(r"\b[a-z]+_[a-z_]+\b|\b[a-z]+\.[a-z_]+\b")
MAX_GRADE = 8.0


def _expected_as_of(name: str) -> dt.date:
    exp = yaml.safe_load((VIGNETTES / name / "expected.yaml").read_text(encoding="utf-8"))
    as_of = exp["as_of"]
    return as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))


def _pdf_text(pdf: bytes) -> tuple[int, str, tuple[float, float]]:
    reader = PdfReader(io.BytesIO(pdf))
    box = reader.pages[0].mediabox
    text = " ".join(" ".join(p.extract_text().split()) for p in reader.pages)
    return len(reader.pages), text, (round(float(box.width)), round(float(box.height)))


@pytest.mark.parametrize("name", ALL)
def test_every_vignette_handout_is_one_plain_page(name: str, kb: Knowledge) -> None:
    a = evaluate(parse_case(case_data(name)), kb, _expected_as_of(name))
    text = handout_text(a)
    grade = textstat.flesch_kincaid_grade(text)
    assert grade <= MAX_GRADE, (name, grade)
    for pattern in (RULE_ID, CITATION_NUMBER, FIELD_NAME):
        assert not pattern.search(text), (name, pattern.pattern, pattern.findall(text))
    for page_size, size in (("letter", (612, 792)), ("a4", (595, 842))):
        pages, pdf_text, box = _pdf_text(handout_pdf(a, page_size=page_size))
        assert pages == 1, (name, page_size)
        assert box == size, (name, page_size)
        assert "Sources" not in pdf_text
        assert not CITATION_NUMBER.search(pdf_text), name
        assert not RULE_ID.search(pdf_text), name
        for s in handout_view(a).sections:
            assert " ".join(s.heading.split()) in pdf_text, (name, s.heading)


def test_handout_pdf_is_letter_by_default(kb: Knowledge) -> None:
    """Backward compatible: handout_pdf(a) still works, and prints on US Letter."""
    _, _, box = _pdf_text(handout_pdf(vignette(NLC, kb)))
    assert box == (612, 792)


def test_every_red_flag_has_one_item_in_the_section_of_its_urgency(kb: Knowledge) -> None:
    seen: dict[str, str] = {}
    for s in kb.handouts.values():
        for item in s.items:
            if item.red_flag is None:
                continue
            assert item.red_flag in kb.red_flags, item.red_flag
            assert item.red_flag not in seen, f"{item.red_flag} in {seen.get(item.red_flag)}"
            seen[item.red_flag] = s.id
            assert kb.red_flags[item.red_flag].urgency in s.urgency
    assert set(seen) == set(kb.red_flags)
    emergency = {r.id for r in kb.red_flags.values() if r.urgency == "emergency"}
    assert {r for r, s in seen.items() if s == "HO-URGENT-EMERGENCY"} == emergency
    same_day = set(kb.red_flags) - emergency
    assert {r for r, s in seen.items() if s == "HO-URGENT-SAME-DAY"} == same_day


def test_handout_entries_are_cited_and_in_plain_language(kb: Knowledge) -> None:
    for s in kb.handouts.values():
        assert s.basis != "UNVERIFIED", s.id
        for cid in s.citations:
            assert cid in kb.citations, (s.id, cid)
        # Short sentences for a reading age of about 11-12.
        for text in [i.text for i in s.items] + ([s.note] if s.note else []):
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                assert len(sentence.split()) <= 25, (s.id, sentence)


def test_stretching_programme_is_the_trial_protocol_with_its_low_certainty(kb: Knowledge) -> None:
    """A7/C12: the Hallegraeff protocol, presented as low certainty, with a diary at 6 weeks."""
    s = kb.handouts["HO-CRAMP-NIGHTLY"]
    text = " ".join(i.text for i in s.items)
    for want in ("10 seconds", "3 times", "3 minutes", "6 weeks", "diary", "0 to 10"):
        assert want in text, want
    assert s.note is not None
    assert "not sure" in s.note
    assert "over 55" in s.note
    assert {"S11", "S13", "S15"} <= set(s.citations)
    # "Avoid prolonged plantar flexion in bed" is basis M in the review: left out.
    assert "plantar" not in text
    assert "bedclothes" not in text


def test_massage_is_presented_as_patient_reported(kb: Knowledge) -> None:
    """B6: massage rests on a patient survey (S17), not on trials."""
    s = kb.handouts["HO-CRAMP-DURING"]
    assert "S17" in s.citations
    assert s.note is not None
    assert "patients report" in s.note


def test_an_assessment_stored_before_the_handout_still_validates(kb: Knowledge) -> None:
    a = vignette(NLC, kb)
    doc = a.model_dump(mode="json")
    del doc["handout"]
    old = Assessment.model_validate(doc)
    assert old.handout == []


# --- property: for every valid case -----------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case_dicts())
def test_handout_invariants(data: dict[str, Any]) -> None:
    a = evaluate(parse_case(data), KB, AS_OF)
    ids = sections(a)
    # In file order; the DVT signs (relevant to any leg pain) are always there.
    assert ids == [s for s in KB.handouts if s in ids]
    lines = red_flag_lines(a)
    assert "RF-DVT" in lines
    # Every red flag of the patient is described, found today exactly when present.
    for rf in a.red_flags:
        assert lines[rf.id] is (rf.status == "present"), rf.id
    # No section is empty.
    assert all(s.items for s in a.handout)
    # Nothing a fired red flag withholds is in the handout.
    unsafe = {t for rf in a.red_flags for t in KB.red_flags[rf.id].withhold_tags}
    for sid in ids:
        assert not unsafe & set(KB.handouts[sid].tags), (sid, unsafe)
    # A section with contexts is shown exactly when one of them is documented or likely, unless
    # its advice is withheld; never for an unlikely or unknown context.
    status = {c.id: c.status for c in a.conditions}
    for sec in KB.handouts.values():
        if sec.contexts and sec.id in ids:
            assert any(status.get(c) in ("documented", "likely") for c in sec.contexts), sec.id
    # Every handout citation has a number.
    numbered = {c.id for c in a.citations}
    for s in a.handout:
        assert set(s.citations) <= numbered


# --- corrupted copies are refused -------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A private copy of the bundled knowledge data to corrupt."""
    dst = tmp_path / "data"
    shutil.copytree(DATA_DIR, dst)
    return dst


def edit_handouts(data: Path, fn: Callable[[list[dict[str, Any]]], None]) -> None:
    path = data / "handouts.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    fn(doc["handouts"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


def by_id(sections: list[dict[str, Any]], ident: str) -> dict[str, Any]:
    return next(s for s in sections if s["id"] == ident)


def refused(data: Path) -> KnowledgeError:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(data)
    return info.value


def test_round_trip_of_the_handouts_still_loads(data: Path) -> None:
    """Control for the corruption tests: rewriting the file unchanged is accepted."""
    edit_handouts(data, lambda secs: None)
    assert list(load_knowledge(data).handouts) == list(load_knowledge().handouts)


def test_unknown_context(data: Path) -> None:
    edit_handouts(data, lambda secs: by_id(secs, "HO-RLS").update(contexts=["restless_legs"]))
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/handouts.yaml", "HO-RLS", "contexts")
    assert "unknown context 'restless_legs'" in err.problem


def test_unknown_red_flag(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        by_id(secs, "HO-URGENT-EMERGENCY")["items"][0]["red_flag"] = "RF-STROK"

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.file, err.entry, err.field) == (
        "data/handouts.yaml",
        "HO-URGENT-EMERGENCY",
        "items[0].red_flag",
    )
    assert "unknown red flag 'RF-STROK'" in err.problem
    assert "did you mean 'RF-STROKE'" in err.problem


def test_unknown_citation(data: Path) -> None:
    edit_handouts(data, lambda secs: by_id(secs, "HO-HEAT").update(citations=["S34", "S999"]))
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/handouts.yaml", "HO-HEAT", "citations")
    assert "S999" in err.problem


def test_uncited_section(data: Path) -> None:
    edit_handouts(data, lambda secs: by_id(secs, "HO-CRAMP-NIGHTLY").update(citations=[]))
    err = refused(data)
    assert (err.file, err.entry, err.field) == (
        "data/handouts.yaml",
        "HO-CRAMP-NIGHTLY",
        "citations",
    )
    assert "uncited" in err.problem


def test_urgent_section_with_a_line_that_names_no_red_flag_needs_citations(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        by_id(secs, "HO-URGENT-SAME-DAY")["items"].append({"text": "If in doubt, get help."})

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.entry, err.field) == ("HO-URGENT-SAME-DAY", "citations")


def test_duplicate_id(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        clone = copy.deepcopy(by_id(secs, "HO-HEAT"))
        secs.append(clone)

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/handouts.yaml", "HO-HEAT", "id")
    assert "duplicate" in err.problem


def test_red_flag_in_the_section_of_another_urgency(data: Path) -> None:
    moved: list[int] = []

    def corrupt(secs: list[dict[str, Any]]) -> None:
        emergency = by_id(secs, "HO-URGENT-EMERGENCY")
        same_day = by_id(secs, "HO-URGENT-SAME-DAY")
        dvt = next(i for i in same_day["items"] if i["red_flag"] == "RF-DVT")
        same_day["items"].remove(dvt)
        moved.append(len(emergency["items"]))
        emergency["items"].append(dvt)

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.file, err.entry, err.field) == (
        "data/handouts.yaml",
        "HO-URGENT-EMERGENCY",
        f"items[{moved[0]}].red_flag",
    )
    assert "'same-day'" in err.problem


def test_red_flag_item_outside_an_urgent_section(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        by_id(secs, "HO-RLS")["items"][0]["red_flag"] = "RF-DVT"

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.entry, err.field) == ("HO-RLS", "items[0].red_flag")
    assert "no urgency" in err.problem


def test_red_flag_with_no_handout_item(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        same_day = by_id(secs, "HO-URGENT-SAME-DAY")
        same_day["items"] = [i for i in same_day["items"] if i["red_flag"] != "RF-RHABDO"]

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/handouts.yaml", "HO-URGENT-SAME-DAY", "items")
    assert "RF-RHABDO" in err.problem


def test_urgent_section_cannot_be_hidden_by_contexts_or_tags(data: Path) -> None:
    edit_handouts(data, lambda secs: by_id(secs, "HO-URGENT-EMERGENCY").update(tags=["self-care"]))
    err = refused(data)
    assert (err.entry, err.field) == ("HO-URGENT-EMERGENCY", "urgency")


def test_unknown_advice_tag(data: Path) -> None:
    edit_handouts(data, lambda secs: by_id(secs, "HO-CRAMP-DURING").update(tags=["masage"]))
    err = refused(data)
    assert (err.entry, err.field) == ("HO-CRAMP-DURING", "tags")
    assert "did you mean 'massage'" in err.problem


def test_unknown_field_is_refused(data: Path) -> None:
    edit_handouts(data, lambda secs: by_id(secs, "HO-HEAT").update(reading_age=11))
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/handouts.yaml", "HO-HEAT", "reading_age")


def test_missing_handouts_file(data: Path) -> None:
    (data / "handouts.yaml").unlink()
    err = refused(data)
    assert err.file == "data/handouts.yaml"
    assert "missing" in err.problem


def test_unknown_avoid_rule_on_a_line(data: Path) -> None:
    edit_handouts(
        data, lambda secs: by_id(secs, "HO-QUININE")["items"][0].update(avoid_rule="AV-QUINNE")
    )
    err = refused(data)
    assert (err.entry, err.field) == ("HO-QUININE", "items[0].avoid_rule")
    assert "did you mean 'AV-QUININE'" in err.problem


def test_undeclared_fact_in_a_line_when(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        by_id(secs, "HO-MSK")["items"][0]["when"] = {"fact": "agee", "ge": 65}

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.entry, err.field) == ("HO-MSK", "items[0].when")


def test_a_red_flag_line_cannot_be_withheld(data: Path) -> None:
    def corrupt(secs: list[dict[str, Any]]) -> None:
        by_id(secs, "HO-URGENT-SAME-DAY")["items"][0]["tags"] = ["massage"]

    edit_handouts(data, corrupt)
    err = refused(data)
    assert (err.entry, err.field) == ("HO-URGENT-SAME-DAY", "items[0].tags")
