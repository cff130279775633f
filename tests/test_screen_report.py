"""``legspasm screen --report``: one static HTML page, readable offline, whose numbers are the
summary's (numerator, denominator and rate per clinic, clinician and prescriber)."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from typer.testing import CliRunner

from legspasm.cli import app
from legspasm.screen.report import render_report
from legspasm.screen.run import screen
from test_screen_worklist import attributed_export

AS_OF = dt.date(2026, 11, 21)


class _Page(HTMLParser):
    """What a browser would fetch, and the table cells, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []
        self.rows: list[list[str]] = []
        self.svgs = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "audio", "video", "source") and a.get("src"):
            self.fetched.append(str(a["src"]))
        if tag == "link" and a.get("href"):
            self.fetched.append(str(a["href"]))
        if tag == "svg":
            self.svgs += 1
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None


def test_the_report_is_one_offline_page_with_the_summary_numbers(tmp_path: Path) -> None:
    folder = attributed_export(tmp_path / "export")
    report = tmp_path / "out" / "report.html"
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "screen",
            str(folder),
            "--as-of",
            "2026-11-21",
            "--out",
            str(tmp_path / "w.parquet"),
            "--report",
            str(report),
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"report: {report}" in r.output
    html = report.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    assert page.fetched == []  # nothing to fetch: no script, stylesheet or image by address
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert page.svgs >= 3  # plots inline
    summary = json.loads((tmp_path / "w.parquet.summary.json").read_text())
    # the clinic table: numerator, denominator and rate, as in the summary
    name = summary["finding_names"]["AV-BENZO-STROKE"]
    cells = {(row[0], row[1]): row[2:] for row in page.rows if len(row) == 5}
    river = "Riverside Clinic Organization/org-river"
    assert cells[(river, f"AV-BENZO-STROKE {name}")] == ["1", "2", "50.0 %"]
    assert cells[(river, "Any red flag or exposure")] == ["1", "2", "50.0 %"]
    (rate,) = [
        x
        for x in summary["rates"]["clinic"]
        if x["name"] == "Riverside Clinic" and x["finding_id"] == "AV-BENZO-STROKE"
    ]
    assert (rate["patients"], rate["screened"], rate["rate"]) == (1, 2, 0.5)
    # the lookup of ids to names, and the scale
    assert ["AV-BENZO-STROKE", "exposure", summary["finding_names"]["AV-BENZO-STROKE"]] in page.rows
    assert any(row[:1] == ["urgent"] for row in page.rows)


def test_the_report_can_be_made_again_from_the_saved_summary(tmp_path: Path) -> None:
    folder = attributed_export(tmp_path / "export")
    report = tmp_path / "report.html"
    s = screen(
        folder, tmp_path / "w.csv", AS_OF, report=report, echo=lambda _: None, show_progress=False
    )
    saved = json.loads((tmp_path / "w.csv.summary.json").read_text())
    assert render_report(saved) == report.read_text(encoding="utf-8")
    assert render_report(saved) == render_report(saved)  # the same bytes each time
    assert s["patients"] == 3


def test_a_report_that_cannot_be_written_exits_2(tmp_path: Path) -> None:
    folder = attributed_export(tmp_path / "export")
    (tmp_path / "taken").write_text("a file, not a folder")
    r = CliRunner().invoke(
        app,
        [
            "screen",
            str(folder),
            "--as-of",
            "2026-11-21",
            "--out",
            str(tmp_path / "w.csv"),
            "--report",
            str(tmp_path / "taken" / "report.html"),
        ],
    )
    assert r.exit_code == 2
    assert "cannot write the report" in r.output
    assert "Traceback" not in r.output
