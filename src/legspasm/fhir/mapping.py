"""One FHIR R4 record -> one legspasm Case, with what was used and what was not.

``to_case(record, kb, as_of)`` is the single mapping the CLI, the CDS Hooks service and the
population screen share. It reads Patient, Condition, MedicationRequest / MedicationStatement /
MedicationDispense (with referenced or contained Medication), Observation (labs, body weight,
pregnancy status), AllergyIntolerance and QuestionnaireResponse to the intake Questionnaire.
Nothing is dropped silently: every resource is either used (``DataUsed``) or listed with the
reason it was not (``Unmapped``), including malformed resources with their element path.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ..assessment import Assessment, DataUsed, Note, Unmapped
from ..case import (
    Allergy,
    Case,
    ConditionEntry,
    LabResult,
    MedicationEntry,
    MedicationOrder,
    Quantity,
)
from ..errors import FhirError
from ..knowledge import Knowledge
from ..knowledge.model import RecordObservation
from ..units import UnitError, normalise
from .elements import Malformed, codings, concept_text, fhir_date, number, obj, objs, string
from .intake import IRLS_ITEMS, read_answers
from .read import Entry, Record, subject_reference
from .systems import CONCEPT, ICD10CM, INTAKE, LOINC, RXNORM, SNOMED, SYSTEM_NAMES, UCUM

__all__ = ["READ_TYPES", "Deceased", "MappedCase", "Source", "to_case"]

READ_TYPES = frozenset(
    {
        "Condition",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationDispense",
        "Observation",
        "AllergyIntolerance",
        "QuestionnaireResponse",
    }
)
"""The resource types a patient's record is read from, besides Patient: nothing in any other
type (Encounter, Procedure, Claim...) reaches the case."""

MatchedBy = Literal["code", "text", "answer", "element"]
_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
_SEX_EXTENSIONS = {
    _US_CORE + n for n in ("us-core-individual-sex", "us-core-sex", "us-core-birthsex")
}
# SNOMED 248152002 Female (finding), 248153007 Male (finding) (US Core sex value set, as in the
# US Core 9 examples); F and M are the birthsex extension's codes.
_SEX_CODES = {"248152002": "female", "248153007": "male", "F": "female", "M": "male"}
_CODE_NAMES = {SNOMED: "SNOMED", ICD10CM: "ICD-10-CM", RXNORM: "RxNorm", LOINC: "LOINC"}


@dataclass(frozen=True, slots=True)
class Source:
    """The resource that gave the case a knowledge-base drug or condition concept, and what it
    said: a population screen's worklist names it (the triggering order, its code and date)."""

    kind: Literal["drug", "concept"]
    id: str  # the drug or concept id
    entry: Entry
    system: str  # the code's system URL; "" when there is no code
    # the matched code; for a medicine matched by name, the order's own first RxNorm code
    # (a product the knowledge base does not list); "" when it has none
    code: str
    display: str  # the coding's display, else the medicine's or condition's text
    start: dt.date | None  # a medicine's start, a condition's onset
    active: bool  # a current medicine, an active condition


@dataclass(frozen=True, slots=True)
class Deceased:
    """The Patient's record of death, when it is on or before as_of."""

    on: dt.date | None  # None: deceasedBoolean true, no date

    @property
    def note(self) -> str:
        when = f"died on {self.on}" if self.on else "is recorded as deceased"
        return (
            f"The patient {when} (Patient.deceased): nothing here is for a living patient; "
            "no card or worklist row is made from this record."
        )


@dataclass(frozen=True)
class MappedCase:
    """A case read from a FHIR record, with the record's data accounted for."""

    case: Case
    data_used: tuple[DataUsed, ...]
    unmapped: tuple[Unmapped, ...]
    counts: dict[str, dict[str, int]]
    """Per resource type: resources used (at least in part), and resources not used at all."""
    notes: tuple[str, ...] = ()  # about the input as a whole, e.g. a Bundle without a type
    sources: tuple[Source, ...] = ()  # which resource gave each drug and condition concept
    # The Patient says they died on or before as_of (Patient.deceased[x]): the surfaces make no
    # card and no worklist row from the record, and the assessment says why.
    deceased: Deceased | None = None

    def annotate(self, assessment: Assessment) -> Assessment:
        """The assessment with this record's ``data_used``, ``unmapped`` and input notes."""
        notes = [*assessment.notes, *(Note(kind="data", text=n) for n in self.notes)]
        if self.deceased is not None:
            notes.insert(0, Note(kind="data", text=self.deceased.note))
        return assessment.model_copy(
            update={
                "data_used": list(self.data_used),
                "unmapped": list(self.unmapped),
                "notes": notes,
            }
        )


@dataclass(order=True)
class _Dated:
    date: dt.date
    order: int
    entry: Entry = field(compare=False)
    payload: Any = field(compare=False)


def _code_label(system: str | None, code: str, display: str | None) -> str:
    name = _CODE_NAMES.get(system or "", system or "no system")
    return f"{name} {code}" + (f" {display}" if display else "")


def _icd(code: str) -> str:
    """ICD-10-CM as written with or without the dot (G2581 -> G25.81)."""
    return code if "." in code or len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _status(res: Mapping[str, Any], key: str, path: str) -> str | None:
    """The code of a status CodeableConcept (Condition.clinicalStatus...)."""
    cc = obj(res, key, path)
    cs = codings(cc, f"{path}.{key}")
    return cs[0][1] if cs else None


class _Mapper:
    def __init__(
        self, record: Record, kb: Knowledge, as_of: dt.date, orders: Sequence[Entry] = ()
    ) -> None:
        self.record, self.kb, self.as_of, self.order_entries = record, kb, as_of, orders
        self.orders: list[MedicationOrder] = []
        self.used: list[DataUsed] = []
        self.skipped: dict[tuple[str, str, str], list[str]] = {}
        self.used_ids: dict[str, set[int]] = defaultdict(set)  # resource type -> id(resource)
        self.skipped_ids: dict[str, set[int]] = defaultdict(set)
        self.patient: dict[str, Any] = {}
        self.deceased: Deceased | None = None
        self.answers: dict[str, Any] = {}
        self.conditions: list[ConditionEntry] = []
        self.ruled_out: list[str] = []
        self.medications: list[MedicationEntry] = []
        self.sources: list[Source] = []
        self.allergies: list[Allergy] = []
        self.no_known_allergy = False
        self.labs: dict[str, list[_Dated]] = defaultdict(list)
        self.observations: dict[str, list[_Dated]] = defaultdict(list)
        self.intake: list[_Dated] = []
        self.handlers: dict[str, Callable[[Entry, str], None]] = {
            "Condition": self._condition,
            "MedicationRequest": self._medication,
            "MedicationStatement": self._medication,
            "MedicationDispense": self._medication,
            "Observation": self._observation,
            "AllergyIntolerance": self._allergy,
            "QuestionnaireResponse": self._questionnaire_response,
        }
        assert set(self.handlers) == READ_TYPES
        rec = kb.record
        self.measure_codes = {
            key: {c.code for c in rec[key].codes if c.verified}
            for key in ("body_weight", "body_height", "gestational_age")
        }
        self.pregnancy_codes = {c.code for c in rec["pregnancy_status"].codes if c.verified}
        self.no_allergy_codes = {c.code for c in rec["no_known_allergy"].codes if c.verified}

    # -- bookkeeping ------------------------------------------------------------------------
    def use(self, e: Entry, fld: str, value: str, how: MatchedBy) -> None:
        self.used.append(DataUsed(source=e.label, field=fld, value=value, matched_by=how))
        self.used_ids[e.type].add(id(e.resource))

    def skip(self, e: Entry, item: str, reason: str) -> None:
        self.skipped.setdefault((e.type, item, reason), []).append(e.label)
        self.skipped_ids[e.type].add(id(e.resource))

    # -- driver -----------------------------------------------------------------------------
    def run(self) -> MappedCase:
        rec = self.record
        if rec.patient is not None:
            self._guard(rec.patient, self._patient)
        for e in rec.entries:
            handler = self.handlers.get(e.type)
            if handler is None:
                if e.type not in ("Medication", "Bundle"):
                    self.skip(e, e.type, "resource type not used by legspasm")
                continue
            self._guard(e, handler)
        for e in self.order_entries:
            if e.type == "MedicationRequest":
                self._guard(e, self._order)
            else:
                self.skip(e, _describe(e), "order type not checked by legspasm")
        for e in rec.shared:
            if e.type in self.handlers:
                self.skip(e, e.type, "names no patient, so it cannot be attributed")
        for e in rec.foreign:
            what = _describe(e)
            self.skip(e, what, f"belongs to {subject_reference(e.resource)}, not in this input")
        self._pick_labs()
        self._pick_weight()
        self._pick_gestation()
        self._pick_intake()
        self._pick_pregnancy()
        case = self._case()
        unmapped = tuple(
            Unmapped(
                resource_type=rt,
                item=item,
                reason=reason,
                count=len(sources),
                sources=sources[:5],
            )
            for (rt, item, reason), sources in self.skipped.items()
        )
        counts = {
            rt: {
                "used": len(self.used_ids[rt]),
                "unmapped": len(self.skipped_ids[rt] - self.used_ids[rt]),
            }
            for rt in sorted(set(self.used_ids) | set(self.skipped_ids))
        }
        return MappedCase(
            case,
            tuple(self.used),
            unmapped,
            counts,
            self.record.notes,
            tuple(self.sources),
            self.deceased,
        )

    def _guard(self, e: Entry, handler: Callable[[Entry, str], None]) -> None:
        try:
            handler(e, e.type)
        except Malformed as exc:
            self.skip(e, exc.path, f"malformed: {exc.problem}")

    def _case(self) -> Case:
        values: dict[str, Any] = {k: v for k, v in self.answers.items() if k != "patient"}
        patient = {**self.answers.get("patient", {}), **self.patient}
        if patient.get("sex") == "male" and patient.get("pregnant") is True:
            del patient["pregnant"]
            self.skipped.setdefault(
                ("Patient", "patient.pregnant true", "contradicts sex male: not used"), []
            ).append(self.record.patient.label if self.record.patient else "Patient")
        values["patient"] = patient
        values["id"] = self.record.patient_id
        values["conditions"] = self.conditions
        values["conditions_ruled_out"] = sorted(set(self.ruled_out))
        values["medications"] = self.medications
        values["orders"] = self.orders
        values["labs"] = [d.payload for ds in self.labs.values() for d in ds]
        values["allergies"] = self.allergies
        if self.no_known_allergy and not self.allergies:
            values["none_known"] = ["allergies"]
        try:
            return Case.model_validate(values)
        except ValidationError as exc:  # every part was validated on its own: a mapping bug
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise FhirError(self.record.source, where, err["msg"]) from None

    # -- Patient ----------------------------------------------------------------------------
    def _patient(self, e: Entry, path: str) -> None:
        res = e.resource
        gender = string(res, "gender", path)
        if gender is None:
            gender = self._sex_extension(e, path)  # reports its own use
            if gender is not None:
                self.patient["sex"] = gender
        elif gender in ("male", "female"):
            self.patient["sex"] = gender
            self.use(e, "patient.sex", gender, "element")
        elif gender is not None:
            self.skip(e, f"gender {gender}", "Cockcroft-Gault needs female or male: sex unknown")
        self._deceased(e, path)
        raw = res.get("birthDate")
        born = fhir_date(raw, f"{path}.birthDate")
        if born is None:
            return
        if len(str(raw)) < 10:
            self.skip(e, f"birthDate {raw}", "partial birth date: age not computed")
        elif born > self.as_of:
            self.skip(e, f"birthDate {raw}", f"after as_of {self.as_of}: age not computed")
        else:
            self.patient["birth_date"] = born
            self.use(e, "patient.birth_date", born.isoformat(), "element")

    def _deceased(self, e: Entry, path: str) -> None:
        """Patient.deceasedBoolean / deceasedDateTime: dead on or before as_of, or not."""
        res = e.resource
        flag = res.get("deceasedBoolean")
        if "deceasedDateTime" in res:
            on = fhir_date(res["deceasedDateTime"], f"{path}.deceasedDateTime")
            if on is not None and on <= self.as_of:
                self.deceased = Deceased(on)
                self.use(e, "patient.deceased", f"died {on}", "element")
            elif on is not None:
                self.skip(e, f"deceasedDateTime {on}", f"after as_of {self.as_of}: not used")
        elif flag is True:
            self.deceased = Deceased(None)
            self.use(e, "patient.deceased", "deceased (no date)", "element")
        elif flag is not None and not isinstance(flag, bool):
            self.skip(e, f"deceasedBoolean {flag!r}", "not true or false: not used")

    def _sex_extension(self, e: Entry, path: str) -> str | None:
        """Sex from the US Core sex extensions when Patient.gender is absent."""
        for xpath, ext in objs(e.resource, "extension", path):
            url = ext.get("url")
            if url in _SEX_EXTENSIONS:
                coding = obj(ext, "valueCoding", xpath)
                code = string(coding, "code", xpath) if coding else string(ext, "valueCode", xpath)
                sex = _SEX_CODES.get(code or "")
                if sex is not None:
                    self.use(e, "patient.sex", f"{sex} (from {url.rsplit('/', 1)[-1]})", "code")
                    return sex
        return None

    # -- Condition --------------------------------------------------------------------------
    def _concepts_of(self, system: str | None, code: str) -> tuple[str, ...]:
        """The knowledge-base concepts one coding means."""
        if system == CONCEPT:
            return (code,) if code in self.kb.concepts else ()
        if system in SYSTEM_NAMES:
            key = _icd(code) if system == ICD10CM else code
            return self.kb.lookups.concept_by_code.get((SYSTEM_NAMES[system], key), ())
        return ()

    def _concepts(self, cc: Mapping[str, Any] | None, path: str) -> list[str]:
        found: list[str] = []
        for system, code, _ in codings(cc, path):
            for one in self._concepts_of(system, code):
                if one not in found:
                    found.append(one)
        return found

    def _coding_of(
        self, cc: Mapping[str, Any] | None, concept: str, path: str
    ) -> tuple[str, str, str | None]:
        """The first coding of ``cc`` that means ``concept``: (system, code, display)."""
        for system, code, display in codings(cc, path):
            if system is not None and concept in self._concepts_of(system, code):
                return system, code, display
        return "", "", None

    def _condition(self, e: Entry, path: str) -> None:
        res = e.resource
        cc = obj(res, "code", path)
        label = _first_label(cc, f"{path}.code")
        concepts = self._concepts(cc, f"{path}.code")
        verification = _status(res, "verificationStatus", path)
        clinical = _status(res, "clinicalStatus", path)
        if verification == "entered-in-error":
            self.skip(e, label, "entered in error")
            return
        if not concepts:
            self.skip(e, label, "code not in legspasm's value sets")
            return
        if verification == "refuted":
            self.ruled_out.extend(concepts)
            for c in concepts:
                self.use(e, "conditions_ruled_out", f"{c} (refuted: {label})", "code")
            return
        if verification in ("unconfirmed", "provisional", "differential"):
            self.skip(e, label, f"verification status {verification}: not counted")
            return
        abated = any(k.startswith("abatement") for k in res)
        status: Literal["active", "resolved", "inactive"]
        if clinical in ("inactive", "remission"):
            status = "inactive"
        elif clinical == "resolved" or (clinical is None and abated):
            status = "resolved"
        else:
            status = "active"  # active, recurrence, relapse, or not stated (R4 allows absence)
        onset = fhir_date(res.get("onsetDateTime"), f"{path}.onsetDateTime")
        if onset is None:
            period = obj(res, "onsetPeriod", path)
            if period is not None:
                onset = fhir_date(period.get("start"), f"{path}.onsetPeriod.start")
        abatement = fhir_date(res.get("abatementDateTime"), f"{path}.abatementDateTime")
        if abatement is None:
            aperiod = obj(res, "abatementPeriod", path)
            if aperiod is not None:
                abatement = fhir_date(aperiod.get("end"), f"{path}.abatementPeriod.end")
        if onset is not None and abatement is not None and abatement < onset:
            self.skip(e, label, "abatement before onset: dates not used")
            onset = abatement = None
        for c in concepts:
            self.conditions.append(
                ConditionEntry(concept=c, status=status, onset=onset, abatement=abatement)
            )
            self.use(e, "conditions", f"{c} ({status}; {label})", "code")
            system, code, display = self._coding_of(cc, c, f"{path}.code")
            text = display or concept_text(cc, f"{path}.code") or ""
            self.sources.append(
                Source("concept", c, e, system, code, text, onset, status == "active")
            )

    # -- Medications ------------------------------------------------------------------------
    def _medication_concept(
        self, e: Entry, path: str
    ) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]], str]:
        """The medication CodeableConcept, ingredient concepts, and the path used."""
        res = e.resource
        cc = obj(res, "medicationCodeableConcept", path)
        if cc is not None:
            return cc, [], f"{path}.medicationCodeableConcept"
        ref_obj = obj(res, "medicationReference", path)
        if ref_obj is None:
            raise Malformed(f"{path}.medication[x]", "required element missing")
        ref = string(ref_obj, "reference", f"{path}.medicationReference")
        if ref is None:
            text = string(ref_obj, "display", f"{path}.medicationReference")
            return ({"text": text} if text else None), [], f"{path}.medicationReference"
        med: Mapping[str, Any] | None = None
        if ref.startswith("#"):
            for cpath, c in objs(res, "contained", path):
                if c.get("id") == ref[1:]:
                    med, mpath = c, cpath
                    break
        else:
            hit = self.record.resolve(ref)
            if hit is not None:
                med, mpath = hit.resource, hit.label
        if med is None:
            raise Malformed(f"{path}.medicationReference", f"{ref} is not in this input")
        ingredients = []
        for ipath, ing in objs(med, "ingredient", mpath):
            icc = obj(ing, "itemCodeableConcept", ipath)
            if icc is not None:
                ingredients.append(icc)
        return obj(med, "code", mpath), ingredients, mpath

    def _match_drugs(
        self, cc: Mapping[str, Any] | None, ingredients: list[Mapping[str, Any]], path: str
    ) -> tuple[list[str], MatchedBy, str, str | None]:
        """Knowledge-base drugs for a medication: (drug ids, how, label, matched rxnorm)."""
        label = concept_text(cc, path) or "medication without code or text"
        idx = self.kb.lookups
        for concept in (cc, *ingredients):
            for system, code, _ in codings(concept, path):
                if system == RXNORM and code in idx.drug_by_code:
                    hits: list[str] = [idx.drug_by_code[code]]
                    for ing in ingredients:  # a coded product: add its other coded ingredients
                        for s2, c2, _ in codings(ing, path):
                            d = idx.drug_by_code.get(c2) if s2 == RXNORM else None
                            if d is not None and d not in hits:
                                hits.append(d)
                    return hits, "code", label, code
        texts = [concept_text(c, path) or "" for c in (cc, *ingredients)]
        texts += [d or "" for c in (cc, *ingredients) for _, _, d in codings(c, path)]
        hits = []
        for t in texts:
            hits += [d for d in idx.drugs_named(t) if d not in hits]
        return hits, "text", label, None

    def _medication(self, e: Entry, path: str) -> None:
        res = e.resource
        status = string(res, "status", path)
        if status is None:
            raise Malformed(f"{path}.status", "required element missing")
        cc, ingredients, mpath = self._medication_concept(e, path)
        drugs, how, label, rxnorm = self._match_drugs(cc, ingredients, mpath)
        state = self._med_state(e, status, label)
        if state is None:
            return
        active, start, end, dosage = state
        if not drugs:
            # Kept by name, so the medicine list is known and nothing is lost: legspasm cannot
            # check its interactions, which makes every proposal wait for that check.
            try:
                kept = MedicationEntry(
                    name=label[:200],
                    start_date=start,
                    end_date=end,
                    status="active" if active else "stopped",
                )
            except ValidationError:
                kept = MedicationEntry(name=label[:200], status="active" if active else "stopped")
            self.medications.append(kept)
            self.use(
                e,
                "medications",
                f"{label} ({'current' if active else 'stopped'}; not in the knowledge base: "
                "interactions not checked)",
                "text",
            )
            return
        for part in self._unknown_components(label):
            self.skip(
                e,
                f"{part} (in {label!r})",
                "ingredient not in the knowledge base: its interactions were not checked",
            )
        dose, times = self._dosage(dosage) if len(drugs) == 1 else (None, None)
        as_needed, timing, route = _dosage_extras(dosage, f"{path}.dosage")
        outcome = _outcome(res, path)
        for d in drugs:
            drug = self.kb.drugs[d]
            try:
                entry = MedicationEntry(
                    outcome=outcome,
                    name=drug.name if how == "text" else None,
                    rxnorm=rxnorm if how == "code" else None,
                    dose=dose,
                    times_per_day=times,
                    start_date=start,
                    end_date=end,
                    status="active" if active else "stopped",
                    as_needed=as_needed,
                    timing=timing,
                    route=route,
                )
            except ValidationError as exc:
                self.skip(e, label, "unusable: " + exc.errors()[0]["msg"])
                return
            if how == "code" and len(drugs) > 1:
                entry = entry.model_copy(update={"rxnorm": None, "name": drug.name})
            self.medications.append(entry)
            # The worklist names the order's drug code: the coding that matched, else (a match
            # by name) the order's own first RxNorm coding, e.g. a product code the knowledge
            # base does not list.
            code, display = (
                (rxnorm, _display_of(cc, ingredients, rxnorm, mpath))
                if rxnorm
                else (_first_rxnorm(cc, ingredients, mpath))
            )
            self.sources.append(
                Source(
                    "drug",
                    d,
                    e,
                    RXNORM if code else "",
                    code or "",
                    display or label,
                    start,
                    active,
                )
            )
            parts = [f"{drug.name} ({'current' if active else 'stopped'})"]
            if status == "unknown":
                parts.append("status unknown: taken as current")
            parts += _dose_text(dose, times)
            if start:
                parts.append(f"started {start}")
            if outcome:
                parts.append(
                    f"outcome {outcome.replace('_', ' ')} (from the status reason's words)"
                )
            parts.append(f"from {label!r}")
            self.use(e, "medications", "; ".join(parts), how)

    def _order(self, e: Entry, path: str) -> None:
        """A medicine being ordered now (a CDS Hooks draft order), whatever its status says."""
        cc, ingredients, mpath = self._medication_concept(e, path)
        drugs, how, label, rxnorm = self._match_drugs(cc, ingredients, mpath)
        if not drugs:
            self.skip(e, label, "order not in the knowledge base: its safety was not checked")
            return
        dosages = objs(e.resource, "dosageInstruction", path)
        dosage = dosages[0][1] if dosages else None
        dose, times = self._dosage(dosage) if len(drugs) == 1 else (None, None)
        days = _order_days(e.resource, dosage, path)
        for d in drugs:
            drug = self.kb.drugs[d]
            coded = how == "code" and len(drugs) == 1
            try:
                order = MedicationOrder(
                    id=e.label,
                    name=None if coded else drug.name,
                    rxnorm=rxnorm if coded else None,
                    dose=dose,
                    times_per_day=times,
                    duration_days=days,
                )
            except ValidationError as exc:
                self.skip(e, label, "unusable order: " + exc.errors()[0]["msg"])
                return
            self.orders.append(order)
            parts = [f"{drug.name} (being ordered)"]
            parts += _dose_text(dose, times)
            if days:
                parts.append(f"for {days} days")
            parts.append(f"from {label!r}")
            self.use(e, "orders", "; ".join(parts), how)

    def _unknown_components(self, label: str) -> list[str]:
        """Ingredients of a combination product ("A 5 MG / B 325 MG") that match no drug."""
        parts = [p.strip() for p in label.split(" / ")]
        if len(parts) < 2:
            return []
        idx = self.kb.lookups
        return [p for p in parts if p and not idx.drugs_named(p)]

    def _med_state(
        self, e: Entry, status: str, medicine: str
    ) -> tuple[bool, dt.date | None, dt.date | None, Mapping[str, Any] | None] | None:
        """(active, start, end, dosage) or None when the resource does not count."""
        res, path = e.resource, e.type
        label = f"{medicine} (status {status})"
        if e.type == "MedicationDispense":
            if status != "completed":
                self.skip(e, label, "only completed dispenses count as taken")
                return None
            handed = fhir_date(res.get("whenHandedOver"), f"{path}.whenHandedOver")
            supply = obj(res, "daysSupply", path)
            days = number(supply, "value", f"{path}.daysSupply") if supply else None
            end = handed + dt.timedelta(days=int(days)) if handed and days else None
            active = end is not None and end >= self.as_of
            dosages = objs(res, "dosageInstruction", path)
            return active, handed, end if not active else None, dosages[0][1] if dosages else None
        if status in ("entered-in-error", "cancelled", "not-taken", "draft", "intended"):
            self.skip(e, label, "not a medicine being taken")
            return None
        active = status in ("active", "on-hold", "unknown")
        if e.type == "MedicationRequest":
            dosages = objs(res, "dosageInstruction", path)
            dosage = dosages[0][1] if dosages else None
            start = fhir_date(res.get("authoredOn"), f"{path}.authoredOn")
            end = None
            bounds = _bounds(dosage, f"{path}.dosageInstruction[0]") if dosage else None
            if bounds is not None:
                start = fhir_date(bounds.get("start"), "boundsPeriod.start") or start
                end = fhir_date(bounds.get("end"), "boundsPeriod.end")
        else:
            dosages = objs(res, "dosage", path)
            dosage = dosages[0][1] if dosages else None
            period = obj(res, "effectivePeriod", path)
            start = end = None
            if period is not None:
                start = fhir_date(period.get("start"), f"{path}.effectivePeriod.start")
                end = fhir_date(period.get("end"), f"{path}.effectivePeriod.end")
            else:
                start = fhir_date(res.get("effectiveDateTime"), f"{path}.effectiveDateTime")
        if start is not None and start > self.as_of:
            self.skip(e, label, f"starts after as_of {self.as_of}")
            return None
        return active, start, end, dosage

    def _dosage(self, dosage: Mapping[str, Any] | None) -> tuple[Quantity | None, float | None]:
        if dosage is None:
            return None, None
        path = "dosage"
        dose = None
        for dpath, dr in objs(dosage, "doseAndRate", path):
            q = obj(dr, "doseQuantity", dpath)
            if q is not None:
                value = number(q, "value", f"{dpath}.doseQuantity")
                unit = string(q, "code", dpath) if q.get("system") == UCUM else None
                unit = unit or string(q, "unit", dpath)
                if value is not None and unit and value >= 0:
                    try:
                        normalise(value, unit, "mg")
                        dose = Quantity(value=value, unit=unit)
                    except UnitError:
                        dose = None  # "1 tablet": not a mass, so no daily dose is computed
                break
        times = None
        timing = obj(dosage, "timing", path)
        rep = obj(timing, "repeat", f"{path}.timing") if timing else None
        if rep is not None:
            freq = number(rep, "frequency", f"{path}.timing.repeat")
            period = number(rep, "period", f"{path}.timing.repeat")
            unit = string(rep, "periodUnit", f"{path}.timing.repeat")
            per_day = {"d": 1.0, "h": 24.0, "wk": 1 / 7, "min": 1440.0}.get(unit or "")
            if freq and period and per_day:
                t = round(freq / period * per_day, 6)
                times = t if 0 < t <= 24 else None
        return dose, times

    # -- Observation ------------------------------------------------------------------------
    def _observation(self, e: Entry, path: str) -> None:
        res = e.resource
        cc = obj(res, "code", path)
        if cc is None:
            raise Malformed(f"{path}.code", "required element missing")
        status = string(res, "status", path)
        if status is None:
            raise Malformed(f"{path}.status", "required element missing")
        loincs = [(c, d) for s, c, d in codings(cc, f"{path}.code") if s == LOINC]
        label = _first_label(cc, f"{path}.code")
        lab_id = next(
            (
                self.kb.lookups.lab_by_loinc[c]
                for c, _ in loincs
                if c in self.kb.lookups.lab_by_loinc
            ),
            None,
        )
        measure = next(
            (k for k, codes in self.measure_codes.items() if any(c in codes for c, _ in loincs)),
            None,
        )
        is_preg = any(c in self.pregnancy_codes for c, _ in loincs)
        if lab_id is None and measure is None and not is_preg:
            self.skip(e, label, "code not used by the knowledge base")
            return
        if status not in ("final", "amended", "corrected", "preliminary"):
            self.skip(e, label, f"status {status}: no usable result")
            return
        when = _effective(res, path)
        if when is None:
            self.skip(e, label, "no effective date: cannot tell whether it is current")
            return
        if when > self.as_of:
            self.skip(e, label, f"dated after as_of {self.as_of}")
            return
        if is_preg:
            answer = obj(res, "valueCodeableConcept", path)
            self.observations["pregnancy_status"].append(_Dated(when, len(self.used), e, answer))
            return
        q = obj(res, "valueQuantity", path)
        if q is None:
            kinds = [k for k in res if k.startswith("value")]
            why = f"value is {kinds[0]}, not a quantity" if kinds else "no value"
            self.skip(e, label, why)
            return
        qpath = f"{path}.valueQuantity"
        if q.get("comparator") is not None:
            self.skip(e, label, f"value is a bound ({q.get('comparator')}): not an exact result")
            return
        value = number(q, "value", qpath)
        unit = string(q, "code", qpath) if q.get("system") == UCUM else None
        unit = unit or string(q, "unit", qpath)
        if value is None or unit is None:
            raise Malformed(qpath, "a result needs a value and a unit")
        spec = self.kb.labs[lab_id] if lab_id else None
        rule = self.kb.record[measure] if measure else None
        canonical = spec.unit if spec else (rule.unit if rule and rule.unit else "kg")
        try:
            v = normalise(
                value,
                unit,
                canonical,
                spec.molar_mass if spec else None,
                spec.monovalent if spec else False,
            )
        except UnitError as exc:
            self.skip(e, f"{label} in {unit!r}", f"unit not usable: {exc.message}")
            return
        lo, hi = (
            spec.plausible if spec else (rule.plausible if rule and rule.plausible else (0, 1e9))
        )
        if not lo <= v <= hi:
            self.skip(
                e, f"{label} {value:g} {unit}", f"implausible (plausible {lo:g}-{hi:g} {canonical})"
            )
            return
        if value < 0:
            raise Malformed(f"{qpath}.value", "negative result")
        if measure is not None:
            self.observations[measure].append(
                _Dated(when, len(self.used), e, Quantity(value=value, unit=unit))
            )
            return
        assert lab_id is not None
        self.labs[lab_id].append(
            _Dated(
                when, len(self.used), e, LabResult(name=lab_id, value=value, unit=unit, date=when)
            )
        )

    def _latest(self, items: list[_Dated], what: str) -> _Dated | None:
        if not items:
            return None
        items.sort()
        latest = items[-1]
        for older in items[:-1]:
            self.skip(older.entry, what, "an earlier result: the latest one is used")
        return latest

    def _pick_labs(self) -> None:
        for lab_id, items in self.labs.items():
            latest = self._latest(items, self.kb.labs[lab_id].name)
            assert latest is not None
            lab: LabResult = latest.payload
            self.labs[lab_id] = [latest]
            self.use(
                latest.entry, "labs", f"{lab_id} {lab.value:g} {lab.unit} ({lab.date})", "code"
            )

    def _window(self, rule: RecordObservation, d: _Dated, what: str) -> bool:
        age = (self.as_of - d.date).days
        if age > rule.max_age_days:
            self.skip(
                d.entry,
                f"{what} of {d.date}",
                f"older than {rule.max_age_days} days ({rule.max_age_basis}): not used",
            )
            return False
        return True

    def _pick_weight(self) -> None:
        for key, fld in (("body_weight", "weight"), ("body_height", "height")):
            rule = self.kb.record[key]
            latest = self._latest(self.observations[key], rule.name)
            if latest is None or not self._window(rule, latest, rule.name):
                continue
            q: Quantity = latest.payload
            self.patient[fld] = q
            self.use(
                latest.entry, f"patient.{fld}", f"{q.value:g} {q.unit} ({latest.date})", "code"
            )

    def _pick_gestation(self) -> None:
        """Gestational age, aged forward to as_of from the day it was recorded."""
        rule = self.kb.record["gestational_age"]
        latest = self._latest(self.observations["gestational_age"], rule.name)
        if latest is None or not self._window(rule, latest, rule.name):
            return
        q: Quantity = latest.payload
        weeks = round(normalise(q.value, q.unit, "week") + (self.as_of - latest.date).days / 7, 1)
        top = rule.plausible[1] if rule.plausible else 45
        if weeks > top:
            self.skip(
                latest.entry,
                f"{rule.name} {q.value:g} {q.unit} ({latest.date})",
                f"{weeks:g} weeks by {self.as_of}: past {top:g}, so not used",
            )
            return
        self.patient["gestational_weeks"] = weeks
        self.use(
            latest.entry,
            "patient.gestational_weeks",
            f"{weeks:g} weeks on {self.as_of} ({q.value:g} {q.unit} on {latest.date})",
            "code",
        )

    def _pick_pregnancy(self) -> None:
        rule = self.kb.record["pregnancy_status"]
        latest = self._latest(self.observations["pregnancy_status"], rule.name)
        if latest is None or not self._window(rule, latest, rule.name):
            return
        answers = (
            {(c.system, c.code) for c in rule.positive},
            {(c.system, c.code) for c in rule.negative},
        )
        got = {(SYSTEM_NAMES.get(s or "", ""), c) for s, c, _ in codings(latest.payload, "value")}
        if got & answers[0]:
            value = True
        elif got & answers[1]:
            value = False
        else:
            self.skip(latest.entry, rule.name, "answer not recognised as pregnant or not pregnant")
            return
        answered = self.answers.get("patient", {}).get("pregnant")
        if answered is not None and answered != value:
            # Conflicting sources: the safer assumption (pregnant) stands, and both are shown.
            self.skip(
                latest.entry,
                f"{rule.name} {str(value).lower()} vs intake answer {str(answered).lower()}",
                "conflicting records: pregnancy is assumed until clarified",
            )
            value = True
        self.patient["pregnant"] = value
        self.use(latest.entry, "patient.pregnant", str(value).lower(), "code")

    # -- AllergyIntolerance -----------------------------------------------------------------
    def _allergy(self, e: Entry, path: str) -> None:
        res = e.resource
        cc = obj(res, "code", path)
        label = concept_text(cc, f"{path}.code")
        if label is None:
            self.skip(e, "AllergyIntolerance without code", "no substance named")
            return
        verification = _status(res, "verificationStatus", path)
        clinical = _status(res, "clinicalStatus", path)
        if verification in ("refuted", "entered-in-error"):
            self.skip(e, label, f"verification status {verification}")
            return
        if clinical in ("inactive", "resolved"):
            self.skip(e, label, f"clinical status {clinical}")
            return
        idx = self.kb.lookups
        drug = next(
            (
                idx.drug_by_code[c]
                for s, c, _ in codings(cc, f"{path}.code")
                if s == RXNORM and c in idx.drug_by_code
            ),
            None,
        )
        if any(
            s == SNOMED and c in self.no_allergy_codes for s, c, _ in codings(cc, f"{path}.code")
        ):
            self.no_known_allergy = True
            self.use(e, "none_known", f"allergies ({label})", "code")
            return
        substance = self.kb.drugs[drug].name if drug else label
        if self.kb.allergy_target(substance) is None:
            # Recorded, so the allergy list is known; not a drug legspasm checks against.
            self.allergies.append(Allergy(substance=substance[:200]))
            self.use(e, "allergies", f"{label} (not a drug or class legspasm checks)", "text")
            return
        reactions = [
            concept_text(m, f"{rp}.manifestation")
            for rp, r in objs(res, "reaction", path)
            for _, m in objs(r, "manifestation", rp)
        ]
        reaction = "; ".join(r for r in reactions if r) or None
        self.allergies.append(Allergy(substance=substance, reaction=reaction))
        self.use(e, "allergies", substance, "code" if drug else "text")

    # -- QuestionnaireResponse --------------------------------------------------------------
    def _questionnaire_response(self, e: Entry, path: str) -> None:
        res = e.resource
        q = string(res, "questionnaire", path)
        if q is None or q.split("|")[0] != INTAKE:
            self.skip(e, f"questionnaire {q}", "not legspasm's intake questionnaire")
            return
        status = string(res, "status", path)
        if status not in ("completed", "amended"):
            self.skip(e, f"status {status}", "only completed or amended intake answers are used")
            return
        authored = fhir_date(res.get("authored"), f"{path}.authored")
        if authored is None:
            self.skip(e, "intake answers", "no authored date: cannot tell whether they are current")
            return
        if authored > self.as_of:
            self.skip(e, "intake answers", f"authored after as_of {self.as_of}")
            return
        self.intake.append(_Dated(authored, len(self.intake), e, None))

    def _pick_intake(self) -> None:
        rule = self.kb.record["intake"]
        latest = self._latest(self.intake, "intake answers")
        if latest is None or not self._window(rule, latest, "intake answers"):
            return
        e = latest.entry
        answers = read_answers(e.resource, e.type)
        for where, problem in answers.problems:
            self.skip(e, where, problem)
        values = answers.values
        rls = values.get("symptoms", {}).get("rls", {})
        items = rls.get("irls_items")
        if items is not None and None in items:
            n = IRLS_ITEMS - items.count(None)
            self.skip(
                e,
                "symptoms.rls.irls_items",
                f"{n} of {IRLS_ITEMS} IRLS items answered: total not computed",
            )
            del rls["irls_items"]
        self.answers = values
        if answers.answered:
            shown = [a for a in answers.answered if ".irls_items." not in a]
            irls = len(answers.answered) - len(shown)
            if irls:
                shown.append(f"symptoms.rls.irls_items ({irls} of {IRLS_ITEMS})")
            self.use(
                e,
                "intake",
                f"{len(answers.answered)} answers ({latest.date}): " + ", ".join(shown),
                "answer",
            )


_ROUTES = ("oral", "intrathecal", "intravenous", "transdermal", "inhaled")


def _dosage_extras(
    dosage: Mapping[str, Any] | None, path: str
) -> tuple[bool | None, str | None, Any]:
    """As-needed use, the timing text and the route of a Dosage (route by its words)."""
    if dosage is None:
        return None, None, None
    prn = dosage.get("asNeededBoolean")
    as_needed = (
        prn if isinstance(prn, bool) else (True if "asNeededCodeableConcept" in dosage else None)
    )
    text = string(dosage, "text", path)
    timing = text[:200] if text else None
    route = None
    rc = obj(dosage, "route", path)
    if rc is not None:
        words = " ".join(w.lower() for w in [concept_text(rc, f"{path}.route") or ""] if w)
        route = next((r for r in _ROUTES if r in words), "other" if words else None)
    return as_needed, timing, route


# How a medicine worked, from the words of its statusReason (no code for these outcomes was
# verified, so they are read by text and reported as a text match).
_OUTCOMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("augmentation", ("augmentation",)),
    ("not_tolerated", ("not tolerated", "intoleran", "side effect", "adverse")),
    (
        "ineffective",
        ("ineffective", "not effective", "no effect", "lack of efficacy", "no benefit"),
    ),
)
Outcome = Literal["ineffective", "not_tolerated", "augmentation"]


def _outcome(res: Mapping[str, Any], path: str) -> Outcome | None:
    """The outcome a MedicationStatement's or MedicationRequest's statusReason states."""
    raw = res.get("statusReason")
    reasons = raw if isinstance(raw, list) else [raw] if raw is not None else []
    words = " ".join(
        (concept_text(r, f"{path}.statusReason") or "").lower()
        for r in reasons
        if isinstance(r, Mapping)
    )
    for outcome, keys in _OUTCOMES:
        if any(k in words for k in keys):
            return outcome  # type: ignore[return-value]
    return None


def _display_of(
    cc: Mapping[str, Any] | None, ingredients: list[Mapping[str, Any]], code: str, path: str
) -> str | None:
    """The display of the RxNorm coding with ``code`` in a medication concept or ingredient."""
    for concept in (cc, *ingredients):
        for system, c, display in codings(concept, path):
            if system == RXNORM and c == code and display:
                return display
    return None


def _first_rxnorm(
    cc: Mapping[str, Any] | None, ingredients: list[Mapping[str, Any]], path: str
) -> tuple[str | None, str | None]:
    """The first RxNorm coding of a medication concept or its ingredients: (code, display)."""
    for concept in (cc, *ingredients):
        for system, c, display in codings(concept, path):
            if system == RXNORM and c:
                return c, display
    return None, None


def _dose_text(dose: Quantity | None, times: float | None) -> list[str]:
    if dose is None:
        return []
    return [f"{dose.value:g} {dose.unit}" + (f" {times:g}x/day" if times else "")]


def _describe(e: Entry) -> str:
    """A short label for any resource: its code or medication, else its type."""
    try:
        for key in ("medicationCodeableConcept", "code"):
            cc = obj(e.resource, key, e.type)
            if cc is not None:
                return f"{e.type} {_first_label(cc, e.type)}"
    except Malformed:
        pass
    return e.type


def _first_label(cc: Mapping[str, Any] | None, path: str) -> str:
    cs = codings(cc, path)
    if cs:
        return _code_label(*cs[0])
    return concept_text(cc, path) or "no code"


def _bounds(dosage: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    timing = obj(dosage, "timing", path)
    rep = obj(timing, "repeat", f"{path}.timing") if timing else None
    return obj(rep, "boundsPeriod", f"{path}.timing.repeat") if rep else None


_DAYS_PER = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}


def _order_days(res: Mapping[str, Any], dosage: Mapping[str, Any] | None, path: str) -> int | None:
    """Planned duration of an order: expected supply, else the dosage's bounds."""
    durations = []
    disp = obj(res, "dispenseRequest", path)
    if disp is not None:
        durations.append(obj(disp, "expectedSupplyDuration", f"{path}.dispenseRequest"))
    if dosage is not None:
        timing = obj(dosage, "timing", "dosageInstruction[0]")
        rep = obj(timing, "repeat", "timing") if timing else None
        if rep is not None:
            durations.append(obj(rep, "boundsDuration", "timing.repeat"))
            period = obj(rep, "boundsPeriod", "timing.repeat")
            if period is not None:
                start = fhir_date(period.get("start"), "boundsPeriod.start")
                end = fhir_date(period.get("end"), "boundsPeriod.end")
                if start is not None and end is not None and end > start:
                    return (end - start).days
    for q in durations:
        if q is None:
            continue
        value = number(q, "value", "Duration")
        unit = string(q, "code", "Duration") or string(q, "unit", "Duration")
        per = _DAYS_PER.get((unit or "").lower())
        if value is not None and per is not None and value > 0:
            return max(1, round(value * per))
    return None


def _effective(res: Mapping[str, Any], path: str) -> dt.date | None:
    when = fhir_date(res.get("effectiveDateTime"), f"{path}.effectiveDateTime")
    if when is None:
        when = fhir_date(res.get("effectiveInstant"), f"{path}.effectiveInstant")
    if when is None:
        period = obj(res, "effectivePeriod", path)
        if period is not None:
            when = fhir_date(period.get("end") or period.get("start"), f"{path}.effectivePeriod")
    return when


def to_case(
    record: Record, kb: Knowledge, as_of: dt.date, orders: Sequence[Entry] = ()
) -> MappedCase:
    """Map one patient's FHIR record to a Case at ``as_of``; list what was and was not used.

    ``orders`` are resources being ordered now (CDS Hooks ``draftOrders``): a MedicationRequest
    among them becomes a ``Case.orders`` entry whatever its status; other order types are listed.
    """
    return _Mapper(record, kb, as_of, orders).run()
