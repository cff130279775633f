"""Population-screen findings: the worklist rows one patient's assessment gives.

A finding is one thing a quality or pharmacy team acts on, taken from the same Assessment the
single-patient surfaces show, with what the record says about whose patient it is
(``fhir.attribution``). Its ``kind``:

- ``red_flag``: a red flag that fired (status ``present`` or ``possible``);
- ``exposure``: an avoid rule hit by a medicine the patient takes (status ``current``) or has on
  order (``ordered``): the risks the guidelines warn about;
- ``exposure_unconfirmed``: an avoid rule that applies unless an unrecorded fact says otherwise
  (e.g. a muscle relaxant with age not recorded);
- ``condition``: a routing context documented or likely (status ``documented`` or ``likely``);
- ``plan``: a plan step for this patient (status ``recommended``), so a team can find who would
  benefit from a change (e.g. iron for RLS with low ferritin); ``strength`` is the
  recommendation's strength;
- ``plan_conditional``: a step whose safety gate is unknown (status ``conditional``; the action
  says what to confirm). It is never counted as a recommendation;
- ``data_incomplete`` (finding ``DATA-INCOMPLETE``, made by ``core.screen_patient``): the
  patient's findings may be missing because data that may be theirs was lost (status
  ``patient_data``: lines naming them, or conflicting copies of a resource; ``export_data``:
  lines whose patient is unknown) or because they could not be assessed (``not_assessed``).

``severity`` is one scale with one meaning on every row: how soon someone should act
(``SEVERITY``). ``rows_of(assessment, kb, patient_id, attribution)`` is the only place findings
are made, so the local engine, the Spark engine and a single-patient check give identical rows
for identical assessments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields

from ..assessment import Assessment, AvoidItem
from ..fhir.attribution import NOBODY, Attribution, Party, Trigger
from ..knowledge import Knowledge

__all__ = [
    "ACTIONABLE",
    "COLUMNS",
    "FLAGGED",
    "INCOMPLETE",
    "KINDS",
    "SEVERITY",
    "Finding",
    "PatientColumns",
    "finding_names",
    "mark_row",
    "rows_of",
]

INCOMPLETE = "DATA-INCOMPLETE"
"""The finding id of the row that marks a patient's findings as incomplete (kind
``data_incomplete``): data that may be theirs was lost, or they could not be assessed, so "no
findings" cannot be read as "nothing found"."""

SEVERITY: dict[str, str] = {
    "urgent": "Act today: a red flag is present (emergency, urgent or same-day assessment).",
    "high": "Act within days: the patient takes a contraindicated medicine, or a red flag is "
    "possible and must be ruled out.",
    "moderate": "Review at the next contact: the patient takes a medicine the guidelines say to "
    "avoid for them (or a contraindicated one, unless an unrecorded fact says otherwise).",
    "low": "Consider: a medicine to use with caution, an avoid rule that holds unless an "
    "unrecorded fact says otherwise, or a plan step this patient would benefit from.",
    "info": "No action by itself: a condition documented or likely, a plan step waiting for a "
    "safety fact, or findings that may be incomplete (see the problems file).",
}
"""The one severity scale, most urgent first: how soon someone should act on the row."""

KINDS: tuple[str, ...] = (
    "red_flag",
    "exposure",
    "exposure_unconfirmed",
    "condition",
    "plan",
    "plan_conditional",
    "data_incomplete",
)
ACTIONABLE = frozenset({"red_flag", "exposure", "exposure_unconfirmed"})
"""The kinds a worklist acts on (exposures and red flags, apart from plan opportunities)."""
FLAGGED = frozenset({"red_flag", "exposure"})
"""The kinds that make a patient one "with a red flag or an exposure" (confirmed)."""


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One worklist row. Every value is text ("" when unknown); ``age`` is whole years and
    ``started`` an ISO date."""

    patient_id: str
    finding_id: str
    kind: str
    severity: str  # SEVERITY
    status: str  # per kind, see the module docstring
    finding: str  # the rule, red flag, recommendation or condition, in words
    action: str  # what to do, one line
    mrn: str
    age: str
    sex: str
    clinic: str  # the patient's clinic (Patient.managingOrganization)
    clinic_ref: str
    clinician: str  # the patient's clinician (Patient.generalPractitioner)
    clinician_ref: str
    resource: str  # the triggering resource, Type/id
    code_system: str
    code: str  # its drug or condition code
    code_display: str
    started: str  # when the medicine started or the condition began
    prescriber: str  # the triggering order's requester
    prescriber_ref: str
    order_clinic: str  # the serviceProvider of the triggering order's encounter
    order_clinic_ref: str
    strength: str  # plan rows: the recommendation's strength
    detail: str
    citations: str  # citation ids, ";"-separated, in the assessment's order
    knowledge_version: str

    def as_tuple(self) -> tuple[str, ...]:
        return astuple(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Finding))


_NAMED: list[tuple[Knowledge, Mapping[str, str]]] = []  # the last knowledge base's names


def _names(kb: Knowledge) -> Mapping[str, str]:
    if not _NAMED or _NAMED[0][0] is not kb:
        _NAMED[:] = [(kb, finding_names(kb))]
    return _NAMED[0][1]


def finding_names(kb: Knowledge) -> dict[str, str]:
    """Every finding id a screen can give, in words: red flags and conditions by name, plan
    steps by their summary, avoid rules by what they are about and their summary."""
    names = {rf.id: rf.name for rf in kb.red_flags.values()}
    names |= {c.id: c.name for c in kb.contexts.values()}
    names |= {r.id: r.summary for r in kb.recommendations.values()}
    for rule in kb.avoid_rules.values():
        about = rule.label or ", ".join(
            _bare(kb.drugs[d].name if d in kb.drugs else kb.classes[d].name)
            for d in rule.drugs
            if d in kb.drugs or d in kb.classes
        )
        names[rule.id] = (
            f"{about[:1].upper()}{about[1:]}: {rule.summary}" if about else rule.summary
        )
    return names


def _bare(name: str) -> str:
    """A drug or class name without its parenthetical ("benzodiazepine")."""
    return name.split(" (")[0]


@dataclass(frozen=True, slots=True)
class PatientColumns:
    """The columns every row of one patient shares."""

    mrn: str = ""
    age: str = ""
    sex: str = ""
    clinic: Party = NOBODY
    clinician: Party = NOBODY

    @classmethod
    def of(cls, a: Assessment, att: Attribution) -> PatientColumns:
        age = a.derived.age_years
        return cls(
            att.mrn,
            "" if age is None else str(math.floor(age)),
            att.sex,
            att.clinic,
            att.clinician,
        )

    def values(self) -> dict[str, str]:
        return {
            "mrn": self.mrn,
            "age": self.age,
            "sex": self.sex,
            "clinic": self.clinic.name,
            "clinic_ref": self.clinic.ref,
            "clinician": self.clinician.name,
            "clinician_ref": self.clinician.ref,
        }


def _trigger_values(t: Trigger | None) -> dict[str, str]:
    t = t or _NO_TRIGGER
    return {
        "resource": t.resource,
        "code_system": t.system,
        "code": t.code,
        "code_display": t.display,
        "started": t.started.isoformat() if t.started else "",
        "prescriber": t.prescriber.name,
        "prescriber_ref": t.prescriber.ref,
        "order_clinic": t.clinic.name,
        "order_clinic_ref": t.clinic.ref,
    }


_NO_TRIGGER = Trigger("", "", "", "", None, False)


def mark_row(
    patient_id: str, status: str, detail: str, version: str, patient: PatientColumns
) -> Finding:
    """The ``DATA-INCOMPLETE`` row of a patient whose findings may be missing."""
    return Finding(
        patient_id=patient_id,
        finding_id=INCOMPLETE,
        kind="data_incomplete",
        severity="info",
        status=status,
        finding="Findings may be incomplete",
        action="Check the problems file: data that may be this patient's was not read.",
        **patient.values(),
        **_trigger_values(None),
        strength="",
        detail=detail,
        citations="",
        knowledge_version=version,
    )


class _Rows:
    """The rows of one patient, built up."""

    def __init__(self, a: Assessment, kb: Knowledge, patient_id: str, att: Attribution) -> None:
        self.patient = PatientColumns.of(a, att).values()
        self.pid, self.version = patient_id, a.knowledge_version
        self.names = _names(kb)
        self.out: list[Finding] = []

    def add(
        self,
        fid: str,
        kind: str,
        severity: str,
        status: str,
        action: str,
        detail: str,
        citations: list[str],
        trigger: Trigger | None = None,
        strength: str = "",
        name: str | None = None,
    ) -> None:
        self.out.append(
            Finding(
                patient_id=self.pid,
                finding_id=fid,
                kind=kind,
                severity=severity,
                status=status,
                finding=name if name is not None else self.names.get(fid, fid),
                action=action,
                **self.patient,
                **_trigger_values(trigger),
                strength=strength,
                detail=detail,
                citations=";".join(citations),
                knowledge_version=self.version,
            )
        )


def _exposure_severity(item: AvoidItem) -> str:
    if item.confirm:
        return "moderate" if item.severity == "contraindicated" else "low"
    return {"contraindicated": "high", "avoid": "moderate"}.get(item.severity, "low")


def _exposure_action(item: AvoidItem) -> str:
    if item.confirm:
        asks = "; ".join(c.question for c in item.confirm)
        return f"Confirm {asks}: the rule holds unless it says otherwise."
    return item.if_taken or "Review it with the patient."


def rows_of(
    a: Assessment, kb: Knowledge, patient_id: str, attribution: Attribution | None = None
) -> list[Finding]:
    """The findings of one assessment, sorted (patient, finding id, kind...)."""
    att = attribution or Attribution()
    rows = _Rows(a, kb, patient_id, att)
    for rf in a.red_flags:
        rows.add(
            rf.id,
            "red_flag",
            "urgent" if rf.status == "present" else "high",
            rf.status,
            rf.summary or rf.action,
            f"{rf.name}. {rf.action}",
            rf.citations,
            name=rf.name,
        )
    for item in a.avoid:
        if item.status not in ("current", "ordered"):
            continue
        rows.add(
            item.id,
            "exposure_unconfirmed" if item.confirm else "exposure",
            _exposure_severity(item),
            item.status,
            _exposure_action(item),
            f"{item.target}: {item.reason}",
            item.citations,
            att.drug(item.drug.id) if item.drug is not None else None,
        )
    for c in a.conditions:
        if c.status in ("documented", "likely"):
            trigger = att.concept(kb.contexts[c.id].documented_by) if c.id in kb.contexts else None
            rows.add(c.id, "condition", "info", c.status, "", c.name, c.citations, trigger)
    for s in a.plan:
        ctx = kb.contexts.get(s.context)
        trigger = att.concept(ctx.documented_by) if ctx is not None else None
        if s.status == "conditional":
            confirm = "; ".join(c.question for c in s.confirm)
            action = f"{s.summary or s.text} Before prescribing, confirm: {confirm}."
            detail = f"{s.text} Before prescribing, confirm: {confirm}."
            rows.add(
                s.id,
                "plan_conditional",
                "info",
                "conditional",
                action,
                detail,
                s.citations,
                trigger,
                s.strength,
            )
            continue
        rows.add(
            s.id,
            "plan",
            "low",
            "recommended",
            s.summary or s.text,
            s.text,
            s.citations,
            trigger,
            s.strength,
        )
    return sorted(set(rows.out))
