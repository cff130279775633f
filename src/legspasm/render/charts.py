"""Pictures where a clinician would rather look: a value on its scale's bands.

Ferritin and TSAT against the RLS iron thresholds, renal function on a medicine's renal dose
bands, the IRLS total on its severity scale. Each chart is an inline SVG (no script, no external
file, role="img" with a title) with the same content as one sentence of text for screen readers
and the PDF's caption. Bands come from the knowledge base (scales and renal bands), never from
here. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from markupsafe import Markup

from ..assessment import Assessment
from ..knowledge import Knowledge

__all__ = ["Chart", "charts"]

_W, _H, _BAR_Y, _BAR_H = 560, 74, 24, 18
_FILLS = ("#f3d6d9", "#fbe7c6", "#dcefe0", "#dfe7f1", "#eadff1", "#e9ecef")


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float
    label: str
    range: str = ""  # the band's range as its source writes it ("76-100")


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    value: float
    unit: str
    bands: tuple[Band, ...]
    text: str  # the chart as one sentence (its text equivalent)

    @property
    def svg(self) -> Markup:
        return Markup(_svg(self))


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 0.05 or v >= 100 else f"{v:.1f}"


def _svg(c: Chart) -> str:
    lo, hi = c.bands[0].low, c.bands[-1].high
    span = hi - lo or 1.0

    def x(v: float) -> float:
        return 10 + (min(max(v, lo), hi) - lo) / span * (_W - 20)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="chart-{c.id}-t" class="chart-svg">',
        f'<title id="chart-{c.id}-t">{escape(c.text)}</title>',
    ]
    for i, b in enumerate(c.bands):
        x0, x1 = x(b.low), x(b.high)
        parts.append(
            f'<rect x="{x0:.1f}" y="{_BAR_Y}" width="{max(x1 - x0, 1):.1f}" height="{_BAR_H}" '
            f'fill="{_FILLS[i % len(_FILLS)]}" stroke="#7b8794" stroke-width="0.5"/>'
        )
        mid = (x0 + x1) / 2
        label = b.label if len(b.label) * 6.2 < x1 - x0 + 30 else b.label.split(" (")[0]
        if len(label) * 6.2 > x1 - x0 + 10:
            continue  # a label that does not fit is in the text equivalent
        parts.append(
            f'<text x="{mid:.1f}" y="{_BAR_Y + _BAR_H + 14}" font-size="11" '
            f'text-anchor="middle" fill="#1b1f24">{escape(label)}</text>'
        )
        parts.append(
            f'<text x="{x0:.1f}" y="{_BAR_Y - 4}" font-size="10" fill="#4a5360" '
            f'text-anchor="{"start" if i == 0 else "middle"}">{_fmt(b.low)}</text>'
        )
    parts.append(
        f'<text x="{x(hi):.1f}" y="{_BAR_Y - 4}" font-size="10" fill="#4a5360" '
        f'text-anchor="end">{_fmt(hi)}</text>'
    )
    vx = x(c.value)
    shown = _fmt(c.value) + (" ›" if c.value > hi else "")
    parts.append(
        f'<line x1="{vx:.1f}" y1="{_BAR_Y - 2}" x2="{vx:.1f}" y2="{_BAR_Y + _BAR_H + 2}" '
        f'stroke="#10324f" stroke-width="3"/>'
    )
    parts.append(
        f'<text x="{min(max(vx, 30), _W - 30):.1f}" y="12" font-size="12" font-weight="700" '
        f'text-anchor="middle" fill="#10324f">{escape(shown + " " + c.unit).strip()}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _band_of(value: float, bands: tuple[Band, ...]) -> Band:
    for b in bands:
        if value <= b.high:
            return b
    return bands[-1]


def _scale_chart(kb: Knowledge, scale_id: str, value: float, title: str, unit: str) -> Chart | None:
    sc = kb.scales.get(scale_id)
    if sc is None:
        return None
    bands: list[Band] = []
    for i, b in enumerate(sc.bands):
        low = bands[-1].high if bands else float(b.min)
        shown = (
            f"{b.min}"
            if b.min == b.max
            else f"up to {b.max}"
            if i == 0
            else f"{b.min} and above"
            if i == len(sc.bands) - 1
            else f"{b.min}-{b.max}"
        )
        bands.append(Band(low, float(b.max), b.label, shown))
    band = _band_of(value, tuple(bands))
    text = f"{title}: {_fmt(value)} {unit}".rstrip() + f", in the band “{band.label}”"
    return Chart(
        id=scale_id,
        title=title,
        value=value,
        unit=unit,
        bands=tuple(bands),
        text=text + f" ({', '.join(_band_text(b, unit) for b in bands)}).",
    )


def _band_text(b: Band, unit: str) -> str:
    return f"{b.range} {unit}: {b.label}".replace("  ", " ")


def _renal_charts(a: Assessment, kb: Knowledge) -> list[Chart]:
    value = a.derived.renal_function_ml_min
    if value is None:
        return []
    out: list[Chart] = []
    for s in a.plan:
        m = s.medication
        if m is None or m.renal_band is None or s.alternative_to:
            continue
        drug = kb.drugs.get(m.drug.id)
        reg = next((r for r in drug.regimens if r.id == m.regimen), None) if drug else None
        if reg is None or not reg.renal_bands:
            continue
        top = max(150.0, value)
        bands = tuple(
            Band(b.crcl_min or 0.0, b.crcl_max if b.crcl_max is not None else top, b.label, b.label)
            for b in sorted(reg.renal_bands, key=lambda b: b.crcl_min or 0.0)
        )
        band = next((b for b in reg.renal_bands if b.holds(value)), None)
        text = f"{m.drug.name}: renal function {_fmt(value)} mL/min on its renal dose bands" + (
            f", in the band {band.label}: {band.dosing}" if band else ""
        )
        out.append(
            Chart(
                id=f"renal-{m.drug.id}",
                title=f"{m.drug.name}: renal dose bands",
                value=value,
                unit="mL/min",
                bands=bands,
                text=text.rstrip(".") + ".",
            )
        )
    return out


def charts(a: Assessment, kb: Knowledge) -> list[Chart]:
    """The charts this assessment supports, in the order a clinician reads them."""
    out: list[Chart | None] = []
    d = a.derived
    rls = any(c.id == "rls" and c.status != "unlikely" for c in a.conditions)
    if rls and d.ferritin_ng_ml is not None:
        out.append(_scale_chart(kb, "ferritin-rls", d.ferritin_ng_ml, "Ferritin", "ng/mL"))
    if rls and d.tsat_percent is not None:
        out.append(_scale_chart(kb, "tsat-rls", d.tsat_percent, "TSAT", "%"))
    if d.irls_total is not None:
        out.append(_scale_chart(kb, "irls", float(d.irls_total), "IRLS total", "of 40"))
    out.extend(_renal_charts(a, kb))
    return [c for c in out if c is not None]
