"""The screening report in a real browser (Debian's Chromium, driven by Playwright): it opens
from a file with no network, draws its plots, has no serious accessibility problem, and is saved
as ``build/screenshots/40-screen-report.png`` for a reviewer. Skipped when Chromium is absent
(unless LEGSPASM_REQUIRE_BROWSER=1), as the web page's browser tests are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from legspasm import Knowledge
from legspasm.screen.run import screen
from legspasm.screen.synth import synthesize
from test_web_browser import SHOTS, browser, no_serious_axe_violations

__all__ = ["browser"]  # the fixture, shared with the web page's browser tests

AS_OF = dt.date(2026, 11, 21)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, kb: Knowledge) -> Path:
    folder = tmp_path_factory.mktemp("report") / "export"
    synthesize(str(folder), 1500, 5, kb)
    out = folder.parent / "report.html"
    screen(
        folder,
        folder.parent / "w.parquet",
        AS_OF,
        report=out,
        echo=lambda _: None,
        show_progress=False,
    )
    return out


@pytest.fixture
def desk(browser: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A desktop-sized page, with the page errors and the addresses it asked for."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    asked: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: asked.append(r.url))
    yield page, errors, asked
    context.close()


def test_the_report_opens_offline_and_draws_its_plots(
    report: Path, desk: tuple[Any, list[str], list[str]]
) -> None:
    page, errors, asked = desk
    page.goto(report.as_uri())
    assert [u for u in asked if not u.startswith("file:")] == []
    boxes = page.eval_on_selector_all(
        "figure svg",
        "els => els.map(e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height])",
    )
    assert len(boxes) >= 3
    assert all(w > 200 and h > 80 for w, h in boxes), boxes
    assert page.get_by_role("heading", name="Per clinic", exact=True).is_visible()
    assert page.get_by_role(
        "img", name="Patients per 1,000 screened with each red flag or exposure"
    ).is_visible()
    no_serious_axe_violations(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "40-screen-report.png"), full_page=True)
    assert errors == []


SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-smart-bulk-data-server"


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"shared data not present: {SYNTHEA}")
def test_the_report_of_a_real_synthea_export(
    tmp_path: Path, desk: tuple[Any, list[str], list[str]]
) -> None:
    """67 Synthea patients (a folder of Bundles, no clinic recorded): the report opens offline
    and shows what the screen found, per 1,000 screened."""
    out = tmp_path / "report.html"
    s = screen(
        SYNTHEA / "bundles",
        tmp_path / "w.parquet",
        AS_OF,
        report=out,
        echo=lambda _: None,
        show_progress=False,
    )
    page, errors, asked = desk
    page.goto(out.as_uri())
    assert [u for u in asked if not u.startswith("file:")] == []
    assert page.get_by_text(f"{s['patients']:,} patients screened from").is_visible()
    for fid in s["by_finding"]:
        assert page.get_by_role("cell", name=fid, exact=True).first.is_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "41-screen-report-synthea.png"), full_page=True)
    assert errors == []
