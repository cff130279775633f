"""Patient-specific dosing: renal band (renal function or haemodialysis), weight band, start,
maximum, stop date; and which dosing facts are unknown (they make the proposal conditional)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..assessment import Confirmation, DrugRef, MedicationPlan, ProductRef
from ..knowledge.model import Dose, Drug, Regimen, RenalBand, WeightBand
from .context import EvalContext

__all__ = [
    "DoseResult",
    "band_for",
    "daily_limit_mg",
    "drug_ref",
    "plan_medication",
    "product_ref",
]

_FREQ = {
    0.5: "every other day",
    1.0: "once daily",
    2.0: "twice daily",
    3.0: "three times daily",
    4.0: "four times daily",
}
_RENAL_FACTS = ["renal_function"]


@dataclass(frozen=True, slots=True)
class DoseResult:
    plan: MedicationPlan | None
    not_recommended: str | None  # reason when the band says the drug is not recommended
    confirm: list[Confirmation] = field(default_factory=list)


def drug_ref(drug: Drug) -> DrugRef:
    code = next((c.code for c in drug.codes if c.system == "rxnorm" and c.verified), None)
    return DrugRef(id=drug.id, name=drug.name, rxnorm=code, label=drug.label)


def product_ref(reg: Regimen, dose: Dose | None) -> ProductRef | None:
    """The regimen's verified product when the proposed dose is one unit of it: the regimen's
    own starting dose. A renal band's own start, or no dose, has no product (its strength may
    differ), so the order then carries the ingredient code only."""
    p = reg.product
    if p is None or not p.verified or p.display is None or dose is None or dose != reg.start:
        return None
    return ProductRef(rxnorm=p.code, name=p.display, tty=p.tty)


def _mg(d: Dose) -> float:
    return d.value * {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "mg/24h": 1.0}[d.unit]


def _fmt(d: Dose) -> str:
    return f"{d.value:g} {d.unit}"


def _max_daily(reg: Regimen, band: RenalBand | None, plan: bool = True) -> Dose | None:
    """The lowest of the regimen maximum, the renal band maximum and (for a plan) the
    indication's maximum."""
    limits = [
        d
        for d in (
            reg.max_daily,
            band.daily_max if band else None,
            reg.indication_max if plan else None,
        )
        if d is not None
    ]
    return min(limits, key=_mg) if limits else None


def band_for(reg: Regimen, ctx: EvalContext) -> tuple[RenalBand | None, bool]:
    """The renal band for this patient, and whether renal function was needed but unknown.

    On haemodialysis the regimen's haemodialysis band applies; on dialysis of another or unknown
    kind, a regimen with renal bands cannot be placed (unknown)."""
    renal = ctx.renal
    if renal.dialysis is True:
        if renal.haemodialysis is True and reg.haemodialysis is not None:
            return reg.haemodialysis, False
        return None, bool(reg.renal_bands or reg.haemodialysis)
    if not reg.renal_bands:
        return None, False
    if renal.value is None:
        return None, True
    return next((b for b in reg.renal_bands if b.holds(renal.value)), None), False


def _weight_band(reg: Regimen, weight: float | None) -> WeightBand | None:
    if weight is None:
        return None
    for b in reg.weight_bands:
        lo = b.weight_min if b.weight_min is not None else float("-inf")
        hi = b.weight_max if b.weight_max is not None else float("inf")
        if lo <= weight < hi:
            return b
    return None


def plan_medication(drug: Drug, reg: Regimen, ctx: EvalContext, by: str) -> DoseResult:
    """The regimen for this patient; ``by`` names the proposal in confirmations."""
    facts = ctx.facts
    band, renal_unknown = band_for(reg, ctx)
    if band is not None and band.not_recommended:
        return DoseResult(None, f"{band.label}: {band.dosing}")
    confirm: list[Confirmation] = []
    notes: list[str] = []
    max_daily = _max_daily(reg, band)
    start, times = reg.start, reg.times_per_day
    if band is not None and band.start is not None:
        start, times = band.start, band.times_per_day
    dose = start
    start_text = reg.start_text
    if band is not None and band.start is not None:
        start_text = f"{band.dosing} ({band.label})"
    elif band is not None and band.dosing != "usual schedule":
        notes.append(f"{band.label}: {band.dosing}.")
    if (
        band is not None
        and dose is not None
        and times is not None
        and max_daily is not None
        and _mg(dose) * times > _mg(max_daily)
    ):
        dose, times = None, None
    if band is not None and band.dose_unverified:
        confirm.append(
            Confirmation(
                gate="renal",
                question=f"the {drug.name} dose on haemodialysis"
                if ctx.renal.dialysis
                else f"the {drug.name} dose for renal function {ctx.renal.note}",
                because=band.dosing,
                facts=[],
                by=by,
            )
        )
        dose, times, max_daily = None, None, None
        start_text = f"No dose until chosen for this renal function: {band.dosing} ({band.label})"
    if renal_unknown:
        dialysis = ctx.renal.dialysis is True
        confirm.append(
            Confirmation(
                gate="renal",
                question="the dialysis modality and its dose"
                if dialysis
                else "renal function (serum creatinine with age, sex and weight, or an eGFR)",
                because=f"the {drug.name} dose depends on it ({ctx.renal.note})",
                facts=["dialysis"] if dialysis else list(_RENAL_FACTS),
                by=by,
            )
        )
        if any(b.daily_max is not None for b in reg.renal_bands) or dialysis:
            dose, times, max_daily = None, None, None
            start_text = (
                "No dose until renal function is known: the dose band depends on it "
                f"({ctx.renal.note})."
            )
    bmi = facts["bmi"]
    if (
        band is not None
        and reg.renal_bands
        and ctx.renal.crcl.note.startswith("Cockcroft-Gault")
        and ctx.renal.value == ctx.renal.crcl.value
        and isinstance(bmi, float)
        and bmi >= ctx.kb.threshold("obesity_bmi")
    ):
        confirm.append(
            Confirmation(
                gate="renal",
                question=f"the renal band with your weight convention (BMI {bmi:g})",
                because="Cockcroft-Gault used actual body weight, which can overestimate "
                "clearance in obesity; no rule for the weight is encoded",
                facts=[],
                by=by,
            )
        )
    weight = facts["weight_kg"]
    if reg.weight_bands:
        wb = _weight_band(reg, weight if isinstance(weight, float) else None)
        if wb is None:
            confirm.append(
                Confirmation(
                    gate="weight",
                    question="body weight",
                    because=f"the {drug.name} dose depends on weight",
                    facts=["weight_kg"],
                    by=by,
                )
            )
            dose, times = None, None
            start_text = "No dose until body weight is known: " + "; ".join(
                f"{b.label}: {b.dosing}" for b in reg.weight_bands
            )
        else:
            start_text = f"{wb.dosing} ({wb.label})"
    if ctx.renal.value is not None and band is not None:
        notes.append(f"Renal function {ctx.renal.note}.")
    for st in (
        drug.boxed_warning,
        drug.hepatic if facts["liver_disease"] is True else None,
        drug.renal if _renal_impaired(ctx) and not reg.renal_bands else None,
    ):
        if st is not None:
            notes.append(st.text)
    notes.extend(m.text for m in drug.monitoring)
    stop_date = None
    if reg.max_duration_days is not None:
        taken = facts[f"days_on.{drug.id}"]
        taken_days = int(taken) if isinstance(taken, float) else 0
        stop_date = ctx.as_of + dt.timedelta(days=max(reg.max_duration_days - taken_days, 0))
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
        titration=None if dose is None and start_text.startswith("No dose") else reg.titration,
        max_daily_dose=_fmt(max_daily) if max_daily is not None else None,
        max_daily_dose_mg=_mg(max_daily) if max_daily is not None else None,
        renal_band=band.label if band is not None else None,
        stop_after_days=reg.max_duration_days,
        stop_date=stop_date,
        notes=notes,
        product=product_ref(reg, dose),
    )
    return DoseResult(plan, None, confirm)


def _renal_impaired(ctx: EvalContext) -> bool:
    return ctx.renal.dialysis is True or (ctx.renal.value is not None and ctx.renal.value < 60)


def daily_limit_mg(reg: Regimen, ctx: EvalContext) -> float | None:
    """The highest daily dose this patient's renal band (or the regimen) allows, in mg."""
    band, _ = band_for(reg, ctx)
    limit = _max_daily(reg, band, plan=False)
    return _mg(limit) if limit is not None else None
