"""Patient-specific dosing: renal band from CrCl (or haemodialysis), start, maximum, stop date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..assessment import DrugRef, MedicationPlan
from ..knowledge.model import Dose, Drug, Regimen, RenalBand
from .derive import CrCl, FactMap

__all__ = ["DoseResult", "band_for", "drug_ref", "plan_medication"]

_FREQ = {
    0.5: "every other day",
    1.0: "once daily",
    2.0: "twice daily",
    3.0: "three times daily",
    4.0: "four times daily",
}


@dataclass(frozen=True, slots=True)
class DoseResult:
    plan: MedicationPlan | None
    not_recommended: str | None  # reason when the band says the drug is not recommended
    needs_crcl: bool


def drug_ref(drug: Drug) -> DrugRef:
    code = next((c.code for c in drug.codes if c.system == "rxnorm" and c.verified), None)
    return DrugRef(id=drug.id, name=drug.name, rxnorm=code)


def _mg(d: Dose) -> float:
    return d.value * {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "mg/24h": 1.0}[d.unit]


def _fmt(d: Dose) -> str:
    return f"{d.value:g} {d.unit}"


def _max_daily(reg: Regimen, band: RenalBand | None) -> Dose | None:
    """The lower of the regimen maximum and the renal band maximum."""
    limits = [d for d in (reg.max_daily, band.daily_max if band else None) if d is not None]
    return min(limits, key=_mg) if limits else None


def band_for(reg: Regimen, facts: FactMap, crcl: CrCl) -> tuple[RenalBand | None, bool]:
    """The renal band for this patient, and whether CrCl was needed but unknown."""
    if facts["haemodialysis"] is True and reg.haemodialysis is not None:
        return reg.haemodialysis, False
    if not reg.renal_bands:
        return None, False
    if crcl.value is None:
        return None, True
    for b in reg.renal_bands:
        lo = b.crcl_min if b.crcl_min is not None else float("-inf")
        hi = b.crcl_max if b.crcl_max is not None else float("inf")
        if lo <= crcl.value < hi:
            return b, False
    return None, False


def plan_medication(
    drug: Drug, reg: Regimen, facts: FactMap, crcl: CrCl, as_of: dt.date
) -> DoseResult:
    band, needs_crcl = band_for(reg, facts, crcl)
    if band is not None and band.not_recommended:
        return DoseResult(None, f"{band.label}: {band.dosing}", False)
    notes: list[str] = []
    max_daily = _max_daily(reg, band)
    start, times = reg.start, reg.times_per_day
    if band is not None and band.start is not None:
        start, times = band.start, band.times_per_day
    dose = start
    start_text = reg.start_text
    if band is not None:
        start_text = f"{band.dosing} ({band.label})"
        if (
            dose is not None
            and times is not None
            and max_daily is not None
            and _mg(dose) * times > _mg(max_daily)
        ):
            dose, times = None, None
    any_band_limits = any(b.daily_max is not None for b in reg.renal_bands)
    if needs_crcl and any_band_limits:
        dose, times = None, None
        start_text = (
            "Renal function unknown, so no dose band can be chosen: "
            + crcl.note
            + ". Obtain serum creatinine, weight, age and sex before dosing."
        )
        max_daily = None
    elif needs_crcl:
        notes.append("CrCl unknown (" + crcl.note + "): check the renal band before titrating.")
    if crcl.value is not None and band is not None:
        notes.append(f"CrCl {crcl.value:g} mL/min ({crcl.note}).")
    for st in (
        drug.boxed_warning,
        drug.hepatic if _hepatic(facts) else None,
        drug.renal if _renal(facts, crcl) and not reg.renal_bands else None,
    ):
        if st is not None:
            notes.append(st.text)
    notes.extend(m.text for m in drug.monitoring)
    stop_date = None
    if reg.max_duration_days is not None:
        taken = facts[f"days_on.{drug.id}"]
        taken_days = int(taken) if isinstance(taken, float) else 0
        stop_date = as_of + dt.timedelta(days=max(reg.max_duration_days - taken_days, 0))
        if taken_days:
            notes.append(
                f"Already taken for {taken_days} days: the {reg.max_duration_days}-day "
                "limit counts from the first dose."
            )
    if reg.duration_text:
        notes.append(reg.duration_text[0].upper() + reg.duration_text[1:] + ".")
    plan = MedicationPlan(
        drug=drug_ref(drug),
        regimen=reg.id,
        form=reg.form,
        dose=_fmt(dose) if dose is not None else None,
        dose_value=dose.value if dose is not None else None,
        dose_unit=dose.unit if dose is not None else None,
        times_per_day=float(times) if times is not None and dose is not None else None,
        frequency=_FREQ.get(float(times), f"{times:g} times daily")
        if times is not None and dose is not None
        else None,
        start=start_text
        + (f"; {reg.timing}" if reg.timing and reg.timing not in start_text else ""),
        titration=None if needs_crcl and any_band_limits else reg.titration,
        max_daily_dose=_fmt(max_daily) if max_daily is not None else None,
        max_daily_dose_mg=_mg(max_daily) if max_daily is not None else None,
        renal_band=band.label if band is not None else None,
        stop_after_days=reg.max_duration_days,
        stop_date=stop_date,
        notes=notes,
    )
    return DoseResult(plan, None, needs_crcl)


def _hepatic(facts: FactMap) -> bool:
    return any(
        facts[f"condition.{c}"]
        for c in (
            "hepatic_impairment_mild",
            "hepatic_impairment_moderate_severe",
            "cirrhosis",
            "active_liver_disease",
        )
    )


def _renal(facts: FactMap, crcl: CrCl) -> bool:
    return bool(facts["dialysis"]) or (crcl.value is not None and crcl.value < 60)


def daily_limit_mg(reg: Regimen, facts: FactMap, crcl: CrCl) -> float | None:
    """The highest daily dose this patient's renal band (or the regimen) allows, in mg."""
    band, _ = band_for(reg, facts, crcl)
    limit = _max_daily(reg, band)
    return _mg(limit) if limit is not None else None
