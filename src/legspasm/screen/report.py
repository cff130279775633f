"""``legspasm screen ... --report report.html``: one static HTML page a quality team can open.

Made from the run's summary alone (``FILE.summary.json`` keeps every number shown), so a report
can be made again from a saved summary (``write_report``). The page is self-contained: plots are
inline SVG drawn with matplotlib (its text kept as text, so it stays searchable and sharp), the
style is inline, and nothing is fetched from the network. It shows

- the run (input, date, knowledge base, patients screened, problems) and the severity scale;
- patients with each red flag or exposure per 1,000 screened (plot and table), and patients by
  their most urgent finding;
- per clinic, clinician and prescriber: patients screened, patients with each finding, and the
  rate (a heat map of clinics by finding, the prescribers with the most patients to review, and
  the tables);
- every finding id with its name.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from .findings import ACTIONABLE
from .rates import ANY, GROUPS

__all__ = ["render_report", "write_report"]

MAX_ROWS = 2_000
"""Rows shown per rates table (the summary JSON holds them all)."""

_TOP_FINDINGS = 20
_TOP_CLINICS = 25
_HEAT_FINDINGS = 12
_TOP_PRESCRIBERS = 20
_KIND_COLOURS = {"red_flag": "#b42318", "exposure": "#b54708", "exposure_unconfirmed": "#c4a484"}
_SEVERITY_COLOURS = {
    "urgent": "#b42318",
    "high": "#d9480f",
    "moderate": "#b54708",
    "low": "#667085",
    "info": "#98a2b3",
}
_TITLES = {"clinic": "Per clinic", "clinician": "Per clinician", "prescriber": "Per prescriber"}


def _svg(fig: Any, label: str) -> str:
    """A matplotlib figure as inline SVG (no XML header), labelled for screen readers."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    svg = text[text.index("<svg") :]
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(label)}" ', 1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "legspasm-screen-report",
            "font.size": 9,
            "font.family": "sans-serif",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _findings_plot(s: Mapping[str, Any]) -> str | None:
    kinds = s["finding_kinds"]
    shown = [(k, n) for k, n in s["by_finding"].items() if kinds[k] in ACTIONABLE]
    shown = shown[:_TOP_FINDINGS]
    if not shown or not s["patients"]:
        return None
    plt = _pyplot()
    per_1000 = [1000 * n / s["patients"] for _, n in shown]
    labels = [f"{k}  {_cut(s['finding_names'][k], 48)}" for k, _ in shown]
    fig, ax = plt.subplots(figsize=(9.5, 0.32 * len(shown) + 1.0))
    y = list(range(len(shown)))[::-1]
    colours = [_KIND_COLOURS.get(kinds[k], "#667085") for k, _ in shown]
    ax.barh(y, per_1000, color=colours)
    ax.set_yticks(y, labels)
    ax.set_xlabel("patients per 1,000 screened")
    for yi, v, (_, n) in zip(y, per_1000, shown, strict=True):
        ax.text(v, yi, f" {n:,}", va="center", fontsize=8)
    ax.margins(x=0.12)
    from matplotlib.patches import Patch

    present = [k for k in _KIND_COLOURS if any(kinds[f] == k for f, _ in shown)]
    ax.legend(
        handles=[Patch(color=_KIND_COLOURS[k], label=k.replace("_", " ")) for k in present],
        loc="lower right",
        frameon=False,
    )
    return _svg(fig, "Patients per 1,000 screened with each red flag or exposure")


def _severity_plot(s: Mapping[str, Any]) -> str | None:
    counts = s["patients_by_severity"]
    if not any(counts.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 2.2))
    levels = list(counts)
    ax.bar(levels, [counts[k] for k in levels], color=[_SEVERITY_COLOURS[k] for k in levels])
    for i, k in enumerate(levels):
        ax.text(i, counts[k], f"{counts[k]:,}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("patients")
    ax.margins(y=0.15)
    return _svg(fig, "Patients by their most urgent finding")


def _heatmap(s: Mapping[str, Any]) -> str | None:
    """Clinics (largest first) by the most frequent red flags and exposures: rate per 1,000."""
    kinds = s["finding_kinds"]
    top = [k for k in s["by_finding"] if kinds[k] in ACTIONABLE][:_HEAT_FINDINGS]
    clinics = [c for c in s["screened"]["clinic"] if c["patients"]][:_TOP_CLINICS]
    if not top or len(clinics) < 1:
        return None
    rates = {(r["key"], r["finding_id"]): r for r in s["rates"]["clinic"]}
    cols = [ANY, *top]
    grid = [
        [1000 * rates[(c["key"], f)]["rate"] if (c["key"], f) in rates else 0.0 for f in cols]
        for c in clinics
    ]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(cols), 0.9 + 0.3 * len(clinics)))
    im = ax.imshow(grid, aspect="auto", cmap="Oranges")
    ax.set_xticks(range(len(cols)), ["any", *top], rotation=60, ha="right")
    ax.set_yticks(
        range(len(clinics)), [f"{_cut(c['name'], 30)} ({c['patients']:,})" for c in clinics]
    )
    peak = max((v for row in grid for v in row), default=0.0) or 1.0
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            colour = "white" if v > 0.6 * peak else "black"
            ax.text(j, i, f"{v:.0f}" if v else "", ha="center", va="center", fontsize=7, c=colour)
    fig.colorbar(im, ax=ax, label="patients per 1,000 screened", shrink=0.8)
    return _svg(fig, "Rate per 1,000 screened of each red flag or exposure, per clinic")


def _prescriber_plot(s: Mapping[str, Any]) -> str | None:
    rows = [r for r in s["rates"]["prescriber"] if r["finding_id"] == ANY]
    rows.sort(key=lambda r: (-r["patients"], r["name"]))
    rows = rows[:_TOP_PRESCRIBERS]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 0.3 * len(rows) + 1.0))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [r["patients"] for r in rows], color="#b54708")
    ax.set_yticks(y, [_cut(r["name"], 40) for r in rows])
    ax.set_xlabel("patients with a red flag or exposure from their orders")
    for yi, r in zip(y, rows, strict=True):
        rate = f"{100 * r['rate']:.0f} % of {r['screened']:,}" if r["rate"] is not None else ""
        ax.text(r["patients"], yi, f" {r['patients']:,} ({rate})", va="center", fontsize=8)
    ax.margins(x=0.25)
    return _svg(fig, "Prescribers with the most patients to review")


def _tables(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for g in GROUPS:
        rows: Sequence[dict[str, Any]] = s["rates"][g]
        out.append(
            {
                "id": g,
                "title": _TITLES[g],
                "rows": rows[:MAX_ROWS],
                "more": max(0, len(rows) - MAX_ROWS),
                "screened": s["screened"][g][:MAX_ROWS],
            }
        )
    return out


def render_report(summary: Mapping[str, Any]) -> str:
    """The report page for a screen's summary."""
    env = Environment(
        loader=PackageLoader("legspasm.screen", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "" if v is None else f"{100 * v:.1f} %"
    plots = {
        "findings": _findings_plot(summary),
        "severity": _severity_plot(summary),
        "clinics": _heatmap(summary),
        "prescribers": _prescriber_plot(summary),
    }
    return env.get_template("report.html").render(
        s=summary,
        plots=plots,
        tables=_tables(summary),
        any_id=ANY,
        actionable=ACTIONABLE,
        max_rows=MAX_ROWS,
    )


def write_report(summary: Mapping[str, Any], path: Path) -> None:
    """Write the report page to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(summary), encoding="utf-8")
