"""The patient handout: plain-language knowledge data (handouts.yaml), validated at load and chosen
by the pure engine. Sections follow the routing contexts; unsafe self-care (stretching, massage,
fluid and salt) is left out exactly when the plan withholds it; the urgent sections are always
there and describe every red flag; every handout citation is numbered in the assessment."""

from __future__ import annotations

import copy
import datetime as dt
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from legspasm import Assessment, Knowledge, KnowledgeError, evaluate, load_knowledge
from legspasm.caseio import parse_case
from legspasm.engine.derive import FactMap
from legspasm.engine.handout import handout
from legspasm.knowledge.loader import DATA_DIR
from strategies import AS_OF, KB, case_dicts

VIGNETTES = Path(__file__).parent / "vignettes"
AS_OF_VIGNETTE = dt.date(2026, 11, 21)
URGENT = ["HO-URGENT-EMERGENCY", "HO-URGENT-SAME-DAY"]
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

# section: (vignettes where it is shown, vignettes where it is not)
SHOWN_IN = {
    "HO-CRAMP-DURING": ([NLC, PREGNANCY, CIRRHOSIS], [RLS, HEAT, FMD]),
    "HO-CRAMP-NIGHTLY": ([NLC, PREGNANCY], [RLS, CIRRHOSIS, HEAT]),
    "HO-HEAT": ([HEAT], [NLC, RLS]),
    "HO-RLS": ([RLS], [NLC, HEAT]),
    "HO-FMD": ([FMD], [NLC, RLS]),
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
    assert set(SHOWN_IN) | set(URGENT) == set(kb.handouts)


def test_typical_nocturnal_cramps_get_the_cramp_handout_in_file_order(kb: Knowledge) -> None:
    a = vignette(NLC, kb)
    assert sections(a) == [*CRAMP_SELF_CARE, *URGENT]
    assert sections(a) == [s for s in kb.handouts if s in sections(a)]


def test_urgent_sections_with_no_condition_at_all(kb: Knowledge) -> None:
    """The pure function on its own: no context established, no red flag -> only the urgent
    sections, whose citations are their red flags' citations."""
    out = handout(kb, [], [], FactMap({}))
    assert [s.id for s in out] == URGENT
    for s in out:
        want = {c for i in s.items if i.red_flag for c in kb.red_flags[i.red_flag].citations}
        assert set(s.citations) == want
        assert all(i.red_flag for i in s.items)


# --- unsafe advice is left out, urgent help never is ------------------------------------------


def test_dvt_drops_stretching_and_massage_but_keeps_the_urgent_sections(kb: Knowledge) -> None:
    a = vignette(NLC, kb, unilateral_leg_swelling=True)
    assert "RF-DVT" in {rf.id for rf in a.red_flags}
    assert not set(CRAMP_SELF_CARE) & set(sections(a))
    assert sections(a) == URGENT
    dvt = [i for s in a.handout for i in s.items if i.red_flag == "RF-DVT"]
    assert len(dvt) == 1
    assert "Do not rub or stretch that leg" in dvt[0].text


def test_dvt_in_pregnancy_drops_the_cramp_sections(kb: Knowledge) -> None:
    a = vignette("pregnancy-dvt-unilateral-calf-swelling", kb)
    assert "RF-DVT" in {rf.id for rf in a.red_flags}
    assert sections(a) == URGENT


def test_dvt_keeps_advice_it_does_not_withhold(kb: Knowledge) -> None:
    """A possible DVT withholds stretching and massage only: RLS tips (self-care) stay."""
    a = vignette(RLS, kb, unilateral_leg_swelling=True)
    assert "RF-DVT" in {rf.id for rf in a.red_flags}
    assert sections(a) == ["HO-RLS", *URGENT]


def test_compartment_syndrome_withholds_all_self_care(kb: Knowledge) -> None:
    a = vignette(RLS, kb, pain_on_passive_stretch=True)
    assert "RF-COMPARTMENT" in {rf.id for rf in a.red_flags}
    assert sections(a) == URGENT


def test_functional_motor_disorder_drops_stretching_advice(kb: Knowledge) -> None:
    """C13: with FMD, passive-stretching advice is withheld (AV-FMD-PASSIVE-STRETCH), in the
    handout as in the plan, and FMD advice is given instead."""
    a = vignette("fmd-with-nocturnal-cramps-no-passive-stretch", kb)
    assert {"NLC-ACUTE", "NLC-STRETCH"} <= {w.id for w in a.withheld}
    assert sections(a) == ["HO-FMD", *URGENT]


def test_heat_cramp_first_aid_is_left_out_when_fluid_and_salt_are_not_advised(
    kb: Knowledge,
) -> None:
    """C4: no electrolyte drink advice in heart failure (AV-FLUID-SALT), as for EX-ACUTE."""
    data = case_data(HEAT)
    data["conditions"] = [{"concept": "heart_failure"}]
    a = assess(data, kb)
    assert "EX-ACUTE" in {w.id for w in a.withheld}
    assert "HO-HEAT" not in sections(a)
    assert sections(a) == URGENT


def test_handout_tags_cover_what_the_text_advises(kb: Knowledge) -> None:
    """A section that advises stretching or massage carries the tag that withholds it."""
    for s in kb.handouts.values():
        text = " ".join(i.text for i in s.items).lower()
        if "stretch" in text and not s.urgency and s.id != "HO-FMD":
            assert "stretching" in s.tags, s.id
        if "rub" in text or "massag" in text:
            assert "massage" in s.tags or s.urgency, s.id
        if "drink" in text:
            assert "fluid-salt" in s.tags, s.id


# --- citations, red flags and content ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in VIGNETTES.iterdir() if p.is_dir()))
def test_every_handout_citation_is_numbered(name: str, kb: Knowledge) -> None:
    a = vignette(name, kb)
    numbered = {c.id for c in a.citations}
    for s in a.handout:
        assert s.citations, s.id
        assert set(s.citations) <= numbered, (s.id, set(s.citations) - numbered)
    for s in URGENT:
        assert s in sections(a)


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
    # The urgent sections are always there, last, in file order.
    assert ids[-2:] == URGENT
    assert ids == [s for s in KB.handouts if s in ids]
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
