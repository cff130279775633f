"""Population-screen findings: the rows one patient's assessment gives.

A finding is one thing a quality or pharmacy team acts on, taken from the same Assessment the
single-patient surfaces show:

- ``red_flag``: a red flag that fired (severity: its urgency);
- ``exposure``: an avoid rule hit by a medicine the patient takes (status ``current``) or has on
  order (``ordered``): the risks the guidelines warn about (severity: contraindicated, avoid or
  caution);
- ``condition``: a routing context documented or likely (severity: that status);
- ``plan``: a plan step for this patient (severity: the recommendation's strength), so a team can
  find who would benefit from a change (e.g. iron for RLS with low ferritin);
- ``plan_conditional``: a step whose safety gate is unknown (severity ``conditional``; the detail
  says what to confirm). It is never counted as a recommendation;
- ``exposure_unconfirmed``: an avoid rule that applies unless an unrecorded fact says otherwise
  (e.g. a muscle relaxant with age not recorded);
- ``data_incomplete`` (finding ``DATA-INCOMPLETE``, made by ``core.screen_patient``): the
  patient's findings may be missing because data that may be theirs was lost (severity
  ``patient_data``: lines naming them, or conflicting copies of a resource; ``export_data``:
  lines whose patient is unknown) or because they could not be assessed (``not_assessed``).

``rows_of(assessment, patient_id)`` is the only place findings are made, so the local engine, the
Spark engine and a single-patient check give identical rows for identical assessments.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from ..assessment import Assessment

__all__ = ["COLUMNS", "Finding", "rows_of"]


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    patient_id: str
    finding_id: str
    kind: str  # red_flag | exposure | exposure_unconfirmed | condition | plan | plan_conditional
    # | data_incomplete
    severity: str
    detail: str
    citations: str  # citation ids, ";"-separated, in the assessment's order
    knowledge_version: str

    def as_tuple(self) -> tuple[str, ...]:
        return astuple(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Finding))


def rows_of(a: Assessment, patient_id: str) -> list[Finding]:
    """The findings of one assessment, sorted (kind order, then id)."""
    v = a.knowledge_version
    out: list[Finding] = []
    for rf in a.red_flags:
        out.append(
            Finding(
                patient_id,
                rf.id,
                "red_flag",
                rf.urgency,
                f"{rf.name}. {rf.action}",
                ";".join(rf.citations),
                v,
            )
        )
    for item in a.avoid:
        if item.status not in ("current", "ordered"):
            continue
        out.append(
            Finding(
                patient_id,
                item.id,
                "exposure_unconfirmed" if item.confirm else "exposure",
                item.severity,
                f"{item.target}: {item.reason}",
                ";".join(item.citations),
                v,
            )
        )
    for c in a.conditions:
        if c.status in ("documented", "likely"):
            out.append(
                Finding(patient_id, c.id, "condition", c.status, c.name, ";".join(c.citations), v)
            )
    for s in a.plan:
        if s.status == "conditional":
            confirm = "; ".join(c.question for c in s.confirm)
            detail = f"{s.text} Before prescribing, confirm: {confirm}."
            out.append(
                Finding(
                    patient_id,
                    s.id,
                    "plan_conditional",
                    "conditional",
                    detail,
                    ";".join(s.citations),
                    v,
                )
            )
            continue
        out.append(Finding(patient_id, s.id, "plan", s.strength, s.text, ";".join(s.citations), v))
    return sorted(set(out))
