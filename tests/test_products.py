"""Prescribable products (issue 16, part 2): a regimen's RxNorm clinical or branded drug (SCD/SBD)
is the regimen's form at its starting dose strength, reaches the plan only when verified and only
for that dose, and codes the FHIR MedicationRequest before the ingredient."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from legspasm import Case, Knowledge, KnowledgeError, evaluate, load_knowledge
from legspasm.assessment import Assessment
from legspasm.engine.dosing import product_ref
from legspasm.fhir.output import assessment_bundle
from legspasm.fhir.systems import RXNORM
from legspasm.knowledge.loader import DATA_DIR
from legspasm.knowledge.model import Dose, Regimen
from strategies import KB

AS_OF = dt.date(2026, 11, 21)
VIGNETTES = Path(__file__).parent / "vignettes"
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?) MG\b")


def regimens(kb: Knowledge) -> list[tuple[str, Regimen]]:
    return [(d.id, r) for d in kb.drugs.values() for r in d.regimens]


def verified(kb: Knowledge) -> list[tuple[str, Regimen]]:
    return [(d, r) for d, r in regimens(kb) if r.product is not None and r.product.verified]


def _mg(d: Dose) -> float:
    return d.value * {"mg": 1.0, "g": 1000.0, "mcg": 0.001}[d.unit]


# -- the bundled knowledge base -------------------------------------------------------------------
def test_the_verified_products_are_the_ones_checked_against_vsac() -> None:
    got = {(d, r.id): r.product.code for d, r in verified(KB) if r.product}
    assert got == {
        ("cyclobenzaprine", "msk-spasm-ir"): "828320",
        ("gabapentin_enacarbil", "rls"): "1101338",
        ("gabapentin", "rls"): "310431",
        ("pregabalin", "rls"): "483448",
        ("diltiazem", "nocturnal-cramps"): "833217",
    }


@pytest.mark.parametrize(("drug", "reg"), verified(KB), ids=lambda x: getattr(x, "id", x))
def test_a_verified_product_is_one_unit_of_the_start_dose_in_the_regimen_form(
    drug: str, reg: Regimen
) -> None:
    p = reg.product
    assert p is not None
    assert p.display is not None
    assert p.system == "rxnorm"
    assert p.tty in ("SCD", "SBD")
    name = p.display
    # The product is the drug: its name begins with the ingredient.
    assert name.lower().startswith(KB.drugs[drug].name.split(" (")[0].lower()), name
    # One unit is the starting dose: a single "NN MG" strength equal to it.
    assert reg.start is not None
    assert reg.start.unit in ("mg", "g", "mcg")
    strengths = [float(s) for s in _STRENGTH.findall(name)]
    assert strengths == [_mg(reg.start)], (name, reg.start)
    # The dose form: oral, extended release exactly when the regimen is, capsule or tablet as
    # the regimen says (either when it names both).
    form = reg.form.lower()
    assert "Oral" in name
    assert ("Extended Release" in name) == ("extended-release" in form), (name, form)
    kinds = {k for k in ("capsule", "tablet") if k in form}
    assert kinds, form
    assert any(k.title() in name for k in kinds), (name, form)
    if p.tty == "SCD":
        assert "[" not in name, "a clinical drug names no brand"
    else:
        assert name.endswith("]"), "a branded drug names its brand"


def test_every_product_records_its_source() -> None:
    for _, reg in regimens(KB):
        if reg.product is not None:
            assert len(reg.product.source) > 20
            assert reg.product.verified or "re-check" in reg.product.source


def test_a_verified_product_code_is_its_drug_when_ordered() -> None:
    # A draft order coded with the product alone is still that drug (interactions, doses).
    assert KB.lookups.match_drug(None, "310431") == "gabapentin"
    assert KB.lookups.match_drug(None, "1101338") == "gabapentin_enacarbil"
    # An unverified product code is not used to match anything.
    assert KB.lookups.match_drug(None, "310325") is None


# -- the plan -----------------------------------------------------------------------------------
def test_the_product_belongs_to_the_start_dose_only() -> None:
    reg = next(r for r in KB.drugs["gabapentin"].regimens if r.id == "rls")
    p = product_ref(reg, reg.start)
    assert p is not None
    assert (p.rxnorm, p.name, p.tty) == ("310431", "gabapentin 300 MG Oral Capsule", "SCD")
    # A renal band's own start (100 mg) is not one 300 mg capsule; no dose has no product.
    assert product_ref(reg, Dose(value=100, unit="mg")) is None
    assert product_ref(reg, None) is None


def test_an_unverified_product_never_reaches_the_plan() -> None:
    reg = next(r for r in KB.drugs["ferrous_sulfate"].regimens if r.id == "rls-iron")
    assert reg.product is not None
    assert not reg.product.verified
    assert product_ref(reg, reg.start) is None


def vignette(name: str) -> Assessment:
    data = yaml.safe_load((VIGNETTES / name / "case.yaml").read_text())
    return evaluate(Case.model_validate(data), KB, AS_OF)


def medication_requests(a: Assessment) -> dict[str, dict[str, Any]]:
    """The bundle's MedicationRequests by the drug id of their plan step."""
    bundle = assessment_bundle(a, "Patient/p1")
    reqs = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    out: dict[str, dict[str, Any]] = {}
    for s in a.plan:
        m = s.medication
        if m is None or s.review:
            continue
        text = m.product.name if m.product else m.drug.name
        (res,) = [r for r in reqs if r["medicationCodeableConcept"]["text"] == text]
        out[m.drug.id] = res
    return out


def test_gabapentin_for_rls_is_ordered_as_its_clinical_drug_then_its_ingredient() -> None:
    a = vignette("rls-pramipexole-above-rls-maximum-augmentation-features")
    (step,) = [s for s in a.plan if s.medication and s.medication.drug.id == "gabapentin"]
    assert step.medication is not None
    assert step.medication.dose == "300 mg"
    assert step.medication.product is not None
    assert step.medication.product.rxnorm == "310431"
    cc = medication_requests(a)["gabapentin"]["medicationCodeableConcept"]
    assert cc["text"] == "gabapentin 300 MG Oral Capsule"
    assert cc["coding"] == [
        {"system": RXNORM, "code": "310431", "display": "gabapentin 300 MG Oral Capsule"},
        {"system": RXNORM, "code": "25480", "display": "gabapentin"},
    ]


def test_a_regimen_without_a_verified_product_keeps_the_ingredient_code_only() -> None:
    # Baclofen and tizanidine have no product; ferrous sulfate's is unverified.
    rls = medication_requests(vignette("rls-pramipexole-above-rls-maximum-augmentation-features"))
    stroke = medication_requests(vignette("stroke-generalised-spasticity-oral-agents"))
    for reqs, drug in ((rls, "ferrous_sulfate"), (stroke, "baclofen"), (stroke, "tizanidine")):
        (code,) = [c.code for c in KB.drugs[drug].codes if c.system == "rxnorm" and c.verified]
        cc = reqs[drug]["medicationCodeableConcept"]
        assert cc["text"] == KB.drugs[drug].name
        assert cc["coding"] == [{"system": RXNORM, "code": code, "display": KB.drugs[drug].name}]


def test_a_renal_band_start_dose_is_ordered_by_ingredient() -> None:
    # CrCl 25: pregabalin starts at the band's 25 mg, not one 50 mg capsule.
    a = vignette("rls-low-ferritin-crcl-25")
    (m,) = [s.medication for s in a.plan if s.medication and s.medication.drug.id == "pregabalin"]
    assert m is not None
    assert m.dose == "25 mg"
    assert m.product is None
    cc = medication_requests(a)["pregabalin"]["medicationCodeableConcept"]
    assert [c["code"] for c in cc["coding"]] == ["187832"]


# -- the loader refuses a product that is not prescribable ----------------------------------------
@pytest.fixture
def data(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(DATA_DIR, dst)
    return dst


def _set_product(data: Path, **change: Any) -> None:
    path = data / "drugs.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    drug = next(d for d in doc["drugs"] if d["id"] == "gabapentin")
    reg = next(r for r in drug["regimens"] if r["id"] == "rls")
    reg["product"] = {**reg["product"], **change}
    for k in [k for k, v in reg["product"].items() if v is None]:
        del reg["product"][k]
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"tty": "IN"}, "SCD or SBD"),
        ({"tty": "SCDF"}, "SCD or SBD"),
        ({"system": "snomed"}, "RxNorm code"),
        ({"code": "RX310431"}, "not an RXCUI"),
        ({"code": "25480"}, "ingredient code"),
        ({"display": None}, "RxNorm name"),
    ],
)
def test_the_loader_refuses_a_product_that_is_not_prescribable(
    data: Path, change: dict[str, Any], says: str
) -> None:
    _set_product(data, **change)
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(data)
    err = info.value
    assert err.entry == "gabapentin"
    assert err.field == "regimens.rls.product"
    assert says in str(err)


def test_an_unverified_product_may_omit_its_name(data: Path) -> None:
    _set_product(data, verified=False, display=None, source="not found in any source seen")
    kb = load_knowledge(data)
    reg = next(r for r in kb.drugs["gabapentin"].regimens if r.id == "rls")
    assert reg.product is not None
    assert product_ref(reg, reg.start) is None
