"""An Assessment as a FHIR R4 Bundle of proposals (``legspasm assess --format fhir``).

The Bundle (type ``collection``) holds:

- a ``Device`` for legspasm, its version being the knowledge-base version;
- a ``RequestGroup`` (status draft, intent proposal) whose actions are the red flags and then the
  plan steps grouped by phase, each action citing its sources as ``RelatedArtifact`` and pointing
  at a ``MedicationRequest`` (dose, frequency, maximum and duration), a ``ServiceRequest`` (tests,
  referrals, urgent assessment) or a ``CommunicationRequest`` (advice);
- a ``CarePlan`` that references the RequestGroup;
- provisional or differential ``Condition`` resources for the likely and possible conditions;
- one ``DetectedIssue`` per red flag and per avoid item.

Every id is derived from the case, the date and the rule, so the output is deterministic.
The function is pure; ``legspasm.fhir.check`` validates the result.
"""

from __future__ import annotations

import uuid
from typing import Any
from xml.sax.saxutils import escape

from ..assessment import Assessment, CitationRef, MedicationPlan, PlanStep
from ..render.words import basis_words
from .systems import BASE, RXNORM, UCUM, system_url

__all__ = ["KNOWLEDGE_TAG", "assessment_bundle", "plan_step_resource"]

KNOWLEDGE_TAG = BASE + "/CodeSystem/knowledge-version"
_NS = uuid.UUID("6c3f0b8e-3f3b-5d0e-9a51-6c6567737061")
_PHASES = {
    "acute": "During an episode",
    "work-up": "Work-up",
    "first-line": "First-line care",
    "medication": "Medicines",
    "refractory": "Refractory care",
    "referral": "Referral",
    "prevention": "Prevention",
    "follow-up": "Follow-up",
}
_SEVERITY = {"contraindicated": "high", "avoid": "moderate", "caution": "low"}
_UCUM_DOSE = {"mg": "mg", "g": "g", "mcg": "ug", "mg/24h": "mg/(24.h)"}


class _Builder:
    def __init__(self, a: Assessment, subject: str | None) -> None:
        self.a = a
        self.key = f"{a.case_id or 'case'}|{a.as_of.isoformat()}|{a.knowledge_version}"
        self.entries: list[dict[str, Any]] = []
        self.cites = {c.id: c for c in a.citations}
        self.subject: dict[str, str] | None = {"reference": subject} if subject else None
        self.device = ""

    def add(self, kind: str, name: str, resource: dict[str, Any]) -> str:
        rid = str(uuid.uuid5(_NS, f"{self.key}|{kind}|{name}"))
        url = f"urn:uuid:{rid}"
        self.entries.append(
            {"fullUrl": url, "resource": {"resourceType": kind, "id": rid, **resource}}
        )
        return url

    def docs(self, ids: list[str]) -> list[dict[str, Any]]:
        out = []
        for cid in ids:
            c: CitationRef | None = self.cites.get(cid)
            if c is None:
                continue
            art: dict[str, Any] = {"type": "citation", "label": f"[{c.number}] {c.id}"}
            art["display"] = c.text
            words = basis_words(c.basis)
            art["citation"] = f"{c.text} ({words})" if words else c.text
            if c.url:
                art["url"] = c.url
            out.append(art)
        return out


def _medication_request(
    b: _Builder, step: PlanStep, med: MedicationPlan, ref: dict[str, str]
) -> dict[str, Any]:
    # The prescribable product (SCD/SBD) first when there is a verified one for this dose, then
    # the ingredient; the text names the product a clinician signs for.
    cc: dict[str, Any] = {"text": med.product.name if med.product else med.drug.name}
    coding = []
    if med.product:
        coding.append({"system": RXNORM, "code": med.product.rxnorm, "display": med.product.name})
    if med.drug.rxnorm:
        coding.append({"system": RXNORM, "code": med.drug.rxnorm, "display": med.drug.name})
    if coding:
        cc["coding"] = coding
    text = med.start
    if med.dose and med.frequency:
        text = f"{med.dose} {med.frequency}. {text}"
    if med.renal_band and med.renal_band not in text:
        text += f" ({med.renal_band})"
    dosage: dict[str, Any] = {"text": text}
    repeat: dict[str, Any] = {}
    if med.times_per_day:
        if med.times_per_day >= 1 and float(med.times_per_day).is_integer():
            repeat.update(frequency=int(med.times_per_day), period=1, periodUnit="d")
        else:
            repeat.update(frequency=1, period=round(1 / med.times_per_day, 3), periodUnit="d")
    if med.stop_date is not None:
        repeat["boundsPeriod"] = {"start": b.a.as_of.isoformat(), "end": med.stop_date.isoformat()}
    elif med.stop_after_days:
        repeat["boundsDuration"] = {
            "value": med.stop_after_days,
            "unit": "d",
            "system": UCUM,
            "code": "d",
        }
    if repeat:
        dosage["timing"] = {"repeat": repeat}
    if med.dose_value is not None and med.dose_unit in _UCUM_DOSE:
        dosage["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": med.dose_value,
                    "unit": med.dose_unit,
                    "system": UCUM,
                    "code": _UCUM_DOSE[med.dose_unit],
                }
            }
        ]
    if med.max_daily_dose_mg is not None:
        dosage["maxDosePerPeriod"] = {
            "numerator": {
                "value": med.max_daily_dose_mg,
                "unit": "mg",
                "system": UCUM,
                "code": "mg",
            },
            "denominator": {"value": 1, "unit": "d", "system": UCUM, "code": "d"},
        }
    notes = [n for n in (med.titration, med.renal_band and f"Renal band: {med.renal_band}") if n]
    notes += med.notes + step.warnings
    if step.status == "conditional":
        asks = "; ".join(c.question for c in step.confirm)
        notes.insert(0, f"Conditional: before prescribing, confirm {asks}.")
    res: dict[str, Any] = {
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": cc,
        "subject": ref,
        "authoredOn": b.a.as_of.isoformat(),
        "requester": {"reference": b.device, "display": "legspasm"},
        "reasonCode": [_reason(b.a, step)],
        "dosageInstruction": [dosage],
    }
    if notes:
        res["note"] = [{"text": n} for n in notes]
    return res


def _reason(a: Assessment, step: PlanStep) -> dict[str, Any]:
    """Why the step: its condition as SNOMED CT and ICD-10-CM codings where the knowledge base
    has verified ones, and always by name (never the pathway's id)."""
    c = next((x for x in a.conditions if x.id == step.context), None)
    if c is None:
        return {"text": step.context.replace("_", " ")}
    coding = [
        {
            "system": system_url(k.system),
            "code": k.code,
            **({"display": k.display} if k.display else {}),
        }
        for k in c.codes
    ]
    return {**({"coding": coding} if coding else {}), "text": c.name}


def _step_resource(b: _Builder, step: PlanStep, ref: dict[str, str]) -> tuple[str, dict[str, Any]]:
    if step.medication is not None and not step.review:
        return "MedicationRequest", _medication_request(b, step, step.medication, ref)
    common = {"subject": ref, "authoredOn": b.a.as_of.isoformat()}
    if step.phase in ("work-up", "referral", "refractory"):
        return "ServiceRequest", {
            "status": "draft",
            "intent": "proposal",
            "code": {"text": step.text},
            "reasonCode": [_reason(b.a, step)],
            **common,
            "requester": {"reference": b.device, "display": "legspasm"},
            "note": [{"text": w} for w in step.warnings] or None,
        }
    payload = [{"contentString": step.text}]
    if step.medication is not None:  # a review of a current medicine: its schedule, no order
        m = step.medication
        schedule = "; ".join(
            x
            for x in (
                f"{m.drug.name}: {m.start}",
                m.titration and f"titration: {m.titration}",
                m.max_daily_dose and f"maximum {m.max_daily_dose} per day",
            )
            if x
        )
        payload.append({"contentString": f"Schedule to check the current dose against: {schedule}"})
    return "CommunicationRequest", {
        "status": "draft",
        "payload": payload,
        "reasonCode": [_reason(b.a, step)],
        **common,
        "sender": {"reference": b.device, "display": "legspasm"},
        "note": [{"text": w} for w in step.warnings] or None,
    }


def assessment_bundle(a: Assessment, subject: str | None = None) -> dict[str, Any]:
    """The assessment as a FHIR R4 collection Bundle. ``subject``: e.g. ``Patient/123``."""
    b = _Builder(a, subject)
    b.device = b.add(
        "Device",
        "legspasm",
        {
            "status": "active",
            "deviceName": [{"name": "legspasm", "type": "user-friendly-name"}],
            "version": [{"type": {"text": "knowledge base"}, "value": a.knowledge_version}],
        },
    )
    if b.subject is None:
        pid = b.add(
            "Patient", "patient", {"identifier": [{"value": a.case_id}]} if a.case_id else {}
        )
        b.subject = {"reference": pid}
    ref: dict[str, str] = b.subject
    actions: list[dict[str, Any]] = []
    for rf in a.red_flags:
        sr = b.add(
            "ServiceRequest",
            f"red-flag/{rf.id}",
            {
                "status": "draft",
                "intent": "proposal",
                "priority": "stat" if rf.urgency == "emergency" else "urgent",
                "code": {"text": rf.order or rf.action},
                "reasonCode": [{"text": rf.name}],
                "subject": ref,
                "authoredOn": a.as_of.isoformat(),
                "requester": {"reference": b.device, "display": "legspasm"},
            },
        )
        actions.append(
            {
                "title": f"Red flag: {rf.name}",
                "description": f"{rf.urgency}: {rf.action}",
                "priority": "stat" if rf.urgency == "emergency" else "urgent",
                "documentation": b.docs(rf.citations) or None,
                "resource": {"reference": sr},
            }
        )
    for phase, title in _PHASES.items():
        steps = [s for s in a.plan if s.phase == phase]
        if not steps:
            continue
        sub: list[dict[str, Any]] = []
        for step in steps:
            kind, res = _step_resource(b, step, ref)
            url = b.add(kind, f"step/{step.id}", {k: v for k, v in res.items() if v is not None})
            action: dict[str, Any] = {
                "id": step.id,
                "title": step.text if len(step.text) <= 120 else step.text[:117] + "...",
                "description": f"{step.text} (Strength: {step.strength}; certainty: "
                f"{step.certainty}; basis: {step.basis}.)",
                "documentation": b.docs(step.citations) or None,
                "resource": {"reference": url},
            }
            if step.status == "conditional":
                asks = "; ".join(c.question for c in step.confirm)
                action["description"] = (
                    f"Conditional: before prescribing, confirm {asks}. " + action["description"]
                )
                action["condition"] = [
                    {
                        "kind": "applicability",
                        "expression": {
                            "language": "text/plain",
                            "description": f"Before prescribing, confirm: {asks}",
                        },
                    }
                ]
            if step.option_reason:
                action["description"] += f" {step.option_reason}"
            if step.alternative_to:
                # An option folded under the preferred one: a choice of at most one.
                head = next(x for x in sub if x.get("id") == f"choice-{step.alternative_to}")
                head["action"].append(action)
                continue
            if step.option_group and any(x.alternative_to == step.id for x in steps):
                action["title"] = f"Preferred: {action['title']}"
                sub.append(
                    {
                        "id": f"choice-{step.id}",
                        "title": f"Choose one ({step.option_group}); the first is preferred",
                        "groupingBehavior": "logical-group",
                        "selectionBehavior": "at-most-one",
                        "action": [action],
                    }
                )
                continue
            sub.append(action)
        actions.append({"title": title, "groupingBehavior": "logical-group", "action": sub})
    bottom = " ".join(line.text for line in a.bottom_line)
    notes = [f"Bottom line: {bottom}"] if bottom else []
    notes += [f"legspasm knowledge base {a.knowledge_version}, assessed as of {a.as_of}."]
    notes += [f"Withheld: {w.text} ({w.reason})." for w in a.withheld]
    notes += [
        f"Missing: {m.question}; could change {', '.join(m.changes or m.affects)}."
        for m in a.missing_data
    ]
    rg = b.add(
        "RequestGroup",
        "plan",
        {
            "instantiatesUri": [f"{BASE}/knowledge/{a.knowledge_version}"],
            "status": "draft",
            "intent": "proposal",
            "subject": ref,
            "authoredOn": a.as_of.isoformat(),
            "author": {"reference": b.device, "display": "legspasm"},
            "note": [{"text": n} for n in notes],
            **({"action": [_clean(x) for x in actions]} if actions else {}),
        },
    )
    addresses = []
    for c in a.conditions:
        if c.status not in ("likely", "possible"):
            continue
        met = [k.text for k in c.criteria if k.state == "met"]
        unknown = [k.text for k in c.criteria if k.state == "unknown"]
        cond = b.add(
            "Condition",
            f"condition/{c.id}",
            {
                "clinicalStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
                ),
                "verificationStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "provisional" if c.status == "likely" else "differential",
                ),
                "code": {"text": c.name},
                "subject": ref,
                "recordedDate": a.as_of.isoformat(),
                "note": [{"text": f"Criteria met: {'; '.join(met) or 'none'}."}]
                + ([{"text": f"Unknown: {'; '.join(unknown)}."}] if unknown else []),
            },
        )
        addresses.append({"reference": cond, "display": c.name})
    b.add(
        "CarePlan",
        "careplan",
        {
            "status": "draft",
            "intent": "proposal",
            "title": "legspasm plan for leg cramps, spasms or restless legs",
            **({"description": bottom} if bottom else {}),
            **({"text": _narrative(a)} if a.bottom_line else {}),
            "subject": ref,
            "created": a.as_of.isoformat(),
            "author": {"reference": b.device, "display": "legspasm"},
            **({"addresses": addresses} if addresses else {}),
            "activity": [{"reference": {"reference": rg}}],
        },
    )
    for rf in a.red_flags:
        b.add(
            "DetectedIssue",
            f"issue/{rf.id}",
            _issue(
                b,
                "high",
                f"Red flag: {rf.name}",
                f"{rf.action} " + " ".join(rf.rationale),
                rf.citations,
            ),
        )
    for item in a.avoid:
        detail = f"{item.reason} " + " ".join(item.rationale)
        res = _issue(
            b,
            _SEVERITY[item.severity],
            f"Avoid ({item.status}): {item.target}",
            detail,
            item.citations,
        )
        name = f"issue/{item.id}/{item.target}"
        if item.status == "ordered":
            name += f"/ordered/{item.order_id}"
        b.add("DetectedIssue", name, res)
    return {
        "resourceType": "Bundle",
        "meta": {"tag": [{"system": KNOWLEDGE_TAG, "code": a.knowledge_version}]},
        "type": "collection",
        "entry": b.entries,
    }


def plan_step_resource(
    a: Assessment, step: PlanStep, subject: str | None, intent: str = "proposal"
) -> dict[str, Any]:
    """One plan step as a stand-alone FHIR resource (a CDS Hooks suggestion's ``create``).

    MedicationRequest for a medicine, ServiceRequest for work-up and referral, otherwise a
    CommunicationRequest; status draft, with a deterministic id. It references nothing that
    the receiving EHR lacks (no Device), only the patient.
    """
    b = _Builder(a, subject)
    ref = b.subject or {"display": "the patient"}
    kind, res = _step_resource(b, step, ref)
    res = {k: v for k, v in res.items() if v is not None and k not in ("requester", "sender")}
    if kind != "CommunicationRequest":
        res["intent"] = intent
    rid = str(uuid.uuid5(_NS, f"{b.key}|{subject}|suggestion|{step.id}"))
    return {"resourceType": kind, "id": rid, **res}


def _issue(
    b: _Builder, severity: str, title: str, detail: str, citations: list[str]
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "status": "final",
        "code": {"text": title},
        "severity": severity,
        "patient": b.subject,
        "identifiedDateTime": b.a.as_of.isoformat(),
        "author": {"reference": b.device, "display": "legspasm"},
        "detail": detail.strip(),
    }
    url = next((b.cites[c].url for c in citations if c in b.cites and b.cites[c].url), None)
    if url:
        res["reference"] = url
    return res


def _cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _clean(action: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in action.items() if v is not None}
    if "action" in out:
        out["action"] = [_clean(x) for x in out["action"]]
    return out


_XHTML = "http://www.w3.org/1999/xhtml"


def _narrative(a: Assessment) -> dict[str, str]:
    """The bottom line as the CarePlan's human-readable narrative (an XHTML list)."""
    items = "".join(f"<li>{escape(line.text)}</li>" for line in a.bottom_line)
    return {
        "status": "generated",
        "div": f'<div xmlns="{_XHTML}"><p>Bottom line</p><ul>{items}</ul></div>',
    }
