"""The knowledge base: the bundled data is consistent, and a corrupted copy is refused with an
error that names the file, the entry and the field."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from legspasm import Knowledge, KnowledgeError, load_knowledge
from legspasm.knowledge.loader import DATA_DIR

# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A private copy of the bundled knowledge data to corrupt."""
    dst = tmp_path / "data"
    shutil.copytree(DATA_DIR, dst)
    return dst


def read(data: Path, rel: str) -> Any:
    return yaml.safe_load((data / rel).read_text(encoding="utf-8"))


def write(data: Path, rel: str, doc: Any) -> None:
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    (data / rel).write_text(text, encoding="utf-8")


def edit(data: Path, rel: str, fn: Callable[[Any], None]) -> None:
    doc = read(data, rel)
    fn(doc)
    write(data, rel, doc)


def rec_files(data: Path) -> list[str]:
    return sorted(f"recommendations/{p.name}" for p in (data / "recommendations").glob("*.yaml"))


def refused(data: Path) -> KnowledgeError:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(data)
    return info.value


def first_rec(data: Path) -> tuple[str, dict[str, Any]]:
    rel = rec_files(data)[0]
    return rel, read(data, rel)["recommendations"][0]


# --- the bundled knowledge base ---------------------------------------------------------------


def test_bundled_knowledge_loads(kb: Knowledge) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", kb.version)
    assert f"## {kb.version}" in kb.changelog
    for kind in ("recommendations", "red_flags", "avoid_rules", "drugs", "labs", "citations"):
        assert getattr(kb, kind), f"no {kind}"


def test_yaml_round_trip_of_the_data_still_loads(data: Path, kb: Knowledge) -> None:
    """Control for the corruption tests: rewriting every file unchanged is accepted."""
    for path in sorted(data.rglob("*.yaml")):
        rel = str(path.relative_to(data))
        write(data, rel, read(data, rel))
    again = load_knowledge(data)
    assert set(again.recommendations) == set(kb.recommendations)
    assert set(again.drugs) == set(kb.drugs)


def test_every_rule_is_cited_with_known_citations(kb: Knowledge) -> None:
    groups: dict[str, Any] = {
        **kb.recommendations,
        **kb.red_flags,
        **kb.avoid_rules,
        **kb.contexts,
    }
    for ident, entry in groups.items():
        assert len(entry.citations) >= 1, f"{ident} is uncited"
        for cid in entry.citations:
            assert cid in kb.citations, f"{ident} cites unknown {cid}"
    for rec in kb.recommendations.values():
        assert rec.context in kb.contexts


RULE_ID_LIKE = re.compile(r"\b[A-Z]{2,}-[A-Z0-9-]+\b")


def test_every_rule_has_a_short_summary(kb: Knowledge) -> None:
    """The bottom line and card summaries print these words: one short sentence with no rule
    ids and no citation brackets, so a card summary (under 140 characters) never cuts it."""
    groups: dict[str, Any] = {**kb.recommendations, **kb.red_flags, **kb.avoid_rules}
    assert len(groups) == len(kb.recommendations) + len(kb.red_flags) + len(kb.avoid_rules)
    for ident, entry in groups.items():
        summary = entry.summary
        assert isinstance(summary, str), ident
        assert len(summary) <= 90, (ident, len(summary))
        assert summary[:1].isupper(), (ident, summary)
        assert summary.endswith("."), (ident, summary)
        assert not RULE_ID_LIKE.search(summary), (ident, summary)
        assert "[" not in summary, (ident, summary)


def test_every_verified_code_names_its_source(kb: Knowledge) -> None:
    owners: list[tuple[str, Any]] = [
        (f"drug {d.id}", c) for d in kb.drugs.values() for c in d.codes
    ]
    owners += [(f"concept {k.id}", c) for k in kb.concepts.values() for c in k.codes]
    owners += [(f"lab {lab.id}", c) for lab in kb.labs.values() for c in lab.codes]
    assert owners
    for owner, code in owners:
        if code.verified:
            assert len(code.source.strip()) >= 3, owner
            low = code.source.lower()
            assert "not found" not in low, (owner, code.source)
            assert "unverified" not in low, (owner, code.source)


# RxNorm ingredient codes from shared/clinical/verification-codes.md §3 (VERIFIED rows) and the
# evidence review §4.3 (V rows); the ingredient name is the knowledge-base drug id.
VERIFIED_RXNORM = {
    "tizanidine": "57258",
    "clonazepam": "2598",
    "alprazolam": "596",
    "pregabalin": "187832",
    "gabapentin": "25480",
    "pramipexole": "746741",
    "rotigotine": "616739",
    "quetiapine": "51272",
    "chlorpromazine": "2403",
    "prochlorperazine": "8704",
    "promethazine": "8745",
    "metoclopramide": "6915",
    "ferrous_sulfate": "24947",
    "iron_dextran": "5992",
    "phenelzine": "8123",
    "tranylcypromine": "10734",
    "isocarboxazid": "6011",
    "selegiline": "9639",
    "linezolid": "190376",
    "fluvoxamine": "42355",
    "ciprofloxacin": "2551",
    "diphenhydramine": "3498",
    "hydroxyzine": "5553",
    "dantrolene": "3105",
    "baclofen": "1292",
    "cyclobenzaprine": "21949",
    "orphenadrine": "7715",
    "methocarbamol": "6845",
    "carisoprodol": "2101",
    "metaxalone": "59078",
    "chlorzoxazone": "2410",
    "quinine": "9071",
    "oxycodone": "7804",
    "methadone": "6813",
    "tramadol": "10689",
    "hydrochlorothiazide": "5487",
    "furosemide": "4603",
    "spironolactone": "9997",
    "atorvastatin": "83367",
    "simvastatin": "36567",
    "raloxifene": "72143",
    "salmeterol": "36117",
    "formoterol": "25255",
    "sertraline": "36437",
    "citalopram": "2556",
    "escitalopram": "321988",
    "fluoxetine": "4493",
    "paroxetine": "32937",
    "venlafaxine": "39786",
    "duloxetine": "72625",
    "mirtazapine": "15996",
    "amitriptyline": "704",
    "dipyridamole": "3521",
    "botulinum_toxin_a": "1712",
    "diazepam": "3322",
    "lorazepam": "6470",
    "oxazepam": "7781",
    "haloperidol": "5093",
    "risperidone": "35636",
    "olanzapine": "61381",
    "aripiprazole": "89013",
    "ascorbic_acid": "1151",
    "morphine": "7052",
    "codeine": "2670",
    "naloxone": "7242",
    "bupropion": "42347",
    "carbamazepine": "2002",
    "ropinirole": "72302",
    "levodopa": "6375",
}
# verification-codes.md §3: no source found. These must never carry a "verified" RxNorm code.
RXNORM_NOT_FOUND = [
    "gabapentin_enacarbil",
    "iron_sucrose",
    "ferric_carboxymaltose",
    "ferumoxytol",
    "teriparatide",
]
# Codes the verification showed to be a different drug than once believed.
WRONG_RXNORM = {"dantrolene": "3247"}  # 3247 is desipramine


def _rxnorm(kb: Knowledge, drug_id: str, verified_only: bool = True) -> set[str]:
    return {
        c.code
        for c in kb.drugs[drug_id].codes
        if c.system == "rxnorm" and (c.verified or not verified_only)
    }


@pytest.mark.parametrize(("drug_id", "code"), sorted(VERIFIED_RXNORM.items()))
def test_rxnorm_code_matches_the_verification(kb: Knowledge, drug_id: str, code: str) -> None:
    if drug_id not in kb.drugs:
        pytest.skip(f"{drug_id} is not in the knowledge base")
    assert code in _rxnorm(kb, drug_id), f"{drug_id}: {_rxnorm(kb, drug_id)} lacks {code}"
    assert kb.lookups.drug_by_code[code] == drug_id


def test_spot_check_named_rxnorm_codes(kb: Knowledge) -> None:
    """The codes the brief singles out, none of them skippable."""
    for drug_id, code in [
        ("pramipexole", "746741"),
        ("rotigotine", "616739"),
        ("cyclobenzaprine", "21949"),
        ("dantrolene", "3105"),
        ("baclofen", "1292"),
    ]:
        assert code in _rxnorm(kb, drug_id), drug_id


def test_unverifiable_rxnorm_codes_are_not_marked_verified(kb: Knowledge) -> None:
    for drug_id in RXNORM_NOT_FOUND:
        if drug_id in kb.drugs:
            assert not _rxnorm(kb, drug_id), f"{drug_id} has a verified RxNorm code"
    for drug_id, wrong in WRONG_RXNORM.items():
        assert wrong not in _rxnorm(kb, drug_id, verified_only=False)
        assert wrong not in kb.lookups.drug_by_code


def test_no_rxnorm_code_names_two_drugs(kb: Knowledge) -> None:
    seen: dict[str, str] = {}
    for drug in kb.drugs.values():
        for c in drug.codes:
            if c.system == "rxnorm":
                assert c.code not in seen, f"{c.code}: {seen.get(c.code)} and {drug.id}"
                seen[c.code] = drug.id


VERIFIED_LOINC = {
    "ferritin": {"2276-4"},
    "iron": {"2498-4", "14798-3"},
    "tibc": {"2500-7"},
    "tsat": {"2502-3"},
    "creatinine": {"2160-0", "14682-9", "38483-4"},
    "egfr": {"98979-8", "62238-1", "33914-3", "77147-7", "48642-3", "48643-1"},
    "potassium": {"2823-3", "6298-4"},
    "sodium": {"2951-2", "2947-0"},
    "magnesium": {"19123-9", "2601-3"},
    "calcium": {"17861-6", "2000-8"},
    "ck": {"2157-6"},
    "tsh": {"3016-3"},
    "albumin": {"1751-7"},
}


def test_lab_loinc_codes_match_the_verification(kb: Knowledge) -> None:
    for lab_id, codes in VERIFIED_LOINC.items():
        if lab_id in kb.labs:
            have = {c.code for c in kb.labs[lab_id].codes if c.system == "loinc"}
            assert have == codes, lab_id


def test_prolactin_loinc_is_not_used_for_vitamin_b6(kb: Knowledge) -> None:
    """2842-3 is Prolactin [Mass/volume], not vitamin B6 (verification-codes.md §4)."""
    codings = [c for d in kb.drugs.values() for c in d.codes]
    codings += [c for k in kb.concepts.values() for c in k.codes]
    codings += [c for lab in kb.labs.values() for c in lab.codes]
    assert all(c.code != "2842-3" for c in codings)
    assert "2842-3" not in kb.lookups.lab_by_loinc
    assert all(code != "2842-3" for _system, code in kb.lookups.concept_by_code)
    for path in DATA_DIR.rglob("*.yaml"):
        assert "2842-3" not in path.read_text(encoding="utf-8"), path.name


# --- corrupted copies are refused -------------------------------------------------------------


def test_recommendation_citing_an_unknown_citation(data: Path) -> None:
    rel, rec = first_rec(data)

    def corrupt(doc: Any) -> None:
        doc["recommendations"][0]["citations"] = [*rec["citations"], "S999"]

    edit(data, rel, corrupt)
    err = refused(data)
    assert err.file == f"data/{rel}"
    assert err.entry == rec["id"]
    assert err.field == "citations"
    assert "S999" in err.problem
    assert f"data/{rel} › {rec['id']} › citations" in str(err)


def test_recommendation_with_a_near_miss_citation_gets_a_suggestion(data: Path) -> None:
    rel, rec = first_rec(data)
    real = rec["citations"][0]

    def corrupt(doc: Any) -> None:
        doc["recommendations"][0]["citations"] = [real + "x"]

    edit(data, rel, corrupt)
    err = refused(data)
    assert (err.entry, err.field) == (rec["id"], "citations")
    assert f"did you mean {real!r}" in err.problem


def test_uncited_recommendation(data: Path) -> None:
    rel, rec = first_rec(data)

    def corrupt(doc: Any) -> None:
        doc["recommendations"][0]["citations"] = []

    edit(data, rel, corrupt)
    err = refused(data)
    assert err.file == f"data/{rel}"
    assert err.entry == rec["id"]
    assert err.field == "citations"
    assert "at least 1" in err.problem


def test_recommendation_without_citations_key(data: Path) -> None:
    rel, rec = first_rec(data)
    edit(data, rel, lambda doc: doc["recommendations"][0].pop("citations"))
    err = refused(data)
    assert (err.file, err.entry, err.field) == (f"data/{rel}", rec["id"], "citations")


@pytest.mark.parametrize(
    ("rel", "key"),
    [("red_flags.yaml", "red_flags"), ("avoid.yaml", "avoid"), (None, "recommendations")],
)
def test_rule_without_summary_or_with_a_long_one(data: Path, rel: str | None, key: str) -> None:
    rel = rel or rec_files(data)[0]
    ident = read(data, rel)[key][0]["id"]
    edit(data, rel, lambda doc: doc[key][0].pop("summary"))
    err = refused(data)
    assert (err.file, err.entry, err.field) == (f"data/{rel}", ident, "summary")
    assert "required" in err.problem.lower()

    def too_long(doc: Any) -> None:
        doc[key][0]["summary"] = "A" * 90 + "."

    edit(data, rel, too_long)
    err = refused(data)
    assert (err.file, err.entry, err.field) == (f"data/{rel}", ident, "summary")


def test_duplicate_recommendation_id_across_files(data: Path) -> None:
    first, second = rec_files(data)[:2]
    rec = read(data, first)["recommendations"][0]

    def corrupt(doc: Any) -> None:
        clone = copy.deepcopy(rec)
        clone["context"] = doc["recommendations"][0]["context"]
        doc["recommendations"].append(clone)

    edit(data, second, corrupt)
    err = refused(data)
    assert err.file == f"data/{second}"
    assert err.entry == rec["id"]
    assert err.field == "id"
    assert "duplicate" in err.problem
    assert first in err.problem


def test_recommendation_id_clashing_with_an_avoid_rule(data: Path) -> None:
    rel, _rec = first_rec(data)
    rule_id = read(data, "avoid.yaml")["avoid"][0]["id"]

    def corrupt(doc: Any) -> None:
        doc["recommendations"][0]["id"] = rule_id

    edit(data, rel, corrupt)
    err = refused(data)
    assert (err.file, err.entry, err.field) == (f"data/{rel}", rule_id, "id")


def _first_regimen_with_start(doc: Any) -> tuple[int, int, dict[str, Any]]:
    for i, drug in enumerate(doc["drugs"]):
        for j, reg in enumerate(drug.get("regimens", [])):
            if isinstance(reg.get("start"), dict):
                return i, j, drug
    raise AssertionError("no regimen with a start dose")


def test_dose_without_unit(data: Path) -> None:
    doc = read(data, "drugs.yaml")
    i, j, drug = _first_regimen_with_start(doc)
    del doc["drugs"][i]["regimens"][j]["start"]["unit"]
    write(data, "drugs.yaml", doc)
    err = refused(data)
    assert err.file == "data/drugs.yaml"
    assert err.entry == drug["id"]
    assert err.field == f"regimens.{j}.start.unit"
    assert "required" in err.problem.lower()


def test_dose_in_an_unknown_unit(data: Path) -> None:
    doc = read(data, "drugs.yaml")
    i, j, drug = _first_regimen_with_start(doc)
    doc["drugs"][i]["regimens"][j]["start"]["unit"] = "tablets"
    write(data, "drugs.yaml", doc)
    err = refused(data)
    assert (err.file, err.entry, err.field) == (
        "data/drugs.yaml",
        drug["id"],
        f"regimens.{j}.start.unit",
    )


def test_expression_naming_an_unknown_fact(data: Path) -> None:
    rel, rec = first_rec(data)

    def corrupt(doc: Any) -> None:
        doc["recommendations"][0]["applies_when"] = {"fact": "neuro.exam_normel", "is": True}

    edit(data, rel, corrupt)
    err = refused(data)
    assert err.file == f"data/{rel}"
    assert err.entry == rec["id"]
    assert err.field == "applies_when"
    assert "unknown fact 'neuro.exam_normel'" in err.problem
    assert "did you mean 'neuro.exam_normal'" in err.problem


def test_expression_naming_an_unknown_concept(data: Path) -> None:
    def corrupt(doc: Any) -> None:
        doc["red_flags"][0]["when"] = {"any": [{"condition": "cirrhossis"}]}

    edit(data, "red_flags.yaml", corrupt)
    rf_id = read(data, "red_flags.yaml")["red_flags"][0]["id"]
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/red_flags.yaml", rf_id, "when")
    assert "'cirrhossis'" in err.problem
    assert "did you mean 'cirrhosis'" in err.problem


def test_avoid_rule_naming_an_unknown_drug(data: Path) -> None:
    def corrupt(doc: Any) -> None:
        doc["avoid"][0]["drugs"] = ["quinin"]

    edit(data, "avoid.yaml", corrupt)
    rule_id = read(data, "avoid.yaml")["avoid"][0]["id"]
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/avoid.yaml", rule_id, "drugs")
    assert "did you mean 'quinine'" in err.problem


def test_avoid_rule_replacing_with_an_unknown_context(data: Path) -> None:
    def corrupt(doc: Any) -> None:
        doc["avoid"][0]["replace_with"] = ["nocturnal_cramp"]

    edit(data, "avoid.yaml", corrupt)
    rule_id = read(data, "avoid.yaml")["avoid"][0]["id"]
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/avoid.yaml", rule_id, "replace_with")
    assert "did you mean 'nocturnal_cramps'" in err.problem


def test_red_flag_withholding_an_unknown_advice_tag(data: Path) -> None:
    def corrupt(doc: Any) -> None:
        doc["red_flags"][0]["withhold_tags"] = ["masage"]

    edit(data, "red_flags.yaml", corrupt)
    rf_id = read(data, "red_flags.yaml")["red_flags"][0]["id"]
    err = refused(data)
    assert (err.file, err.entry, err.field) == ("data/red_flags.yaml", rf_id, "withhold_tags")
    assert "did you mean 'massage'" in err.problem


def test_renal_band_above_the_regimen_maximum(data: Path) -> None:
    doc = read(data, "drugs.yaml")
    for i, drug in enumerate(doc["drugs"]):
        for reg in drug.get("regimens", []):
            bands = [b for b in reg.get("renal_bands", []) if "daily_max" in b]
            if bands and "max_daily" in reg:
                bands[0]["daily_max"] = {
                    "value": reg["max_daily"]["value"] * 2,
                    "unit": reg["max_daily"]["unit"],
                }
                write(data, "drugs.yaml", doc)
                err = refused(data)
                assert err.file == "data/drugs.yaml"
                assert err.entry == doc["drugs"][i]["id"]
                assert err.field == f"regimens.{reg['id']}.renal_bands"
                assert "exceeds the regimen maximum" in err.problem
                return
    pytest.fail("no regimen with banded maxima to corrupt")


def test_changelog_without_an_entry_for_the_manifest_version(data: Path) -> None:
    edit(data, "manifest.yaml", lambda doc: doc.update(version="9.9.9"))
    err = refused(data)
    assert err.file == "data/CHANGELOG.md"
    assert "9.9.9" in err.problem


def test_changelog_entry_removed(data: Path, kb: Knowledge) -> None:
    path = data / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8")
    assert f"## {kb.version}" in text
    path.write_text(text.replace(f"## {kb.version}", "## (unreleased)"), encoding="utf-8")
    err = refused(data)
    assert err.file == "data/CHANGELOG.md"
    assert kb.version in err.problem


def test_invalid_yaml(data: Path) -> None:
    rel = rec_files(data)[0]
    (data / rel).write_text("recommendations:\n  - id: [unclosed\n", encoding="utf-8")
    err = refused(data)
    assert err.file == f"data/{rel}"
    assert err.entry is None
    assert "not valid YAML" in err.problem


def test_missing_file(data: Path) -> None:
    (data / "labs.yaml").unlink()
    err = refused(data)
    assert err.file == "data/labs.yaml"
    assert "missing" in err.problem


def test_top_level_key_missing(data: Path) -> None:
    write(data, "citations.yaml", {"refs": []})
    err = refused(data)
    assert (err.file, err.field) == ("data/citations.yaml", "citations")


def test_unknown_field_in_an_entry(data: Path) -> None:
    rel, rec = first_rec(data)
    edit(data, rel, lambda doc: doc["recommendations"][0].update(strenght="strong"))
    err = refused(data)
    assert (err.file, err.entry, err.field) == (f"data/{rel}", rec["id"], "strenght")


def test_the_knowledge_snapshot_is_fresh_and_loads_the_same_knowledge(kb: Knowledge) -> None:
    """snapshot.json (the bundled files parsed, for start-up) matches every file's hash and
    content (rebuild with `python scripts/kb_snapshot.py` when this fails), and the knowledge
    loaded through it is the knowledge loaded from YAML."""
    import json
    import re

    from legspasm.knowledge import loader

    shipped = json.loads(loader.SNAPSHOT.read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps(loader.build_snapshot(), default=str))

    def text(k: Knowledge) -> str:
        return re.sub(r" at 0x[0-9a-f]+", "", repr(k))

    loader._snapshot.cache_clear()
    saved = loader.SNAPSHOT
    try:
        loader.SNAPSHOT = saved.with_name("no-such-snapshot.json")
        from_yaml = loader.load_knowledge()
    finally:
        loader.SNAPSHOT = saved
        loader._snapshot.cache_clear()
    assert text(loader.load_knowledge()) == text(from_yaml)
