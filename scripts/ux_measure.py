"""Measure how fast the answer reads, for the specialist review's cases (tests/vignettes/rev-*).

For each case: words of the text report before its references; on the result page at 1280x800
and 390x844 (Chromium): words visible on load, screens of the page as loaded, and the screen on
which the first dose and the first "do not" appear (1.0 = the bottom of the first screen).

    .venv/bin/python scripts/ux_measure.py [--chromium /usr/bin/chromium] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402

from legspasm import evaluate, load_case  # noqa: E402
from legspasm.audit import AuditStore  # noqa: E402
from legspasm.knowledge import load_knowledge  # noqa: E402
from legspasm.render import render_text  # noqa: E402
from legspasm.server import create_app  # noqa: E402
from legspasm.settings import Settings  # noqa: E402
from live_server import serve, upload_result  # noqa: E402

AS_OF = dt.date(2026, 11, 20)
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def _screen_of(page: Any, selector: str, height: int) -> float | None:
    box = page.locator(selector).first.bounding_box() if page.locator(selector).count() else None
    return None if box is None else round((box["y"] + box["height"]) / height, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    kb = load_knowledge()
    cases = sorted((ROOT / "tests" / "vignettes").glob("rev-*/case.yaml"))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/audit.sqlite3"
        with AuditStore.open(url) as store, sync_playwright() as p:
            app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), store=store)
            with serve(app) as base:
                browser = p.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
                )
                for case in cases:
                    a = evaluate(load_case(case), kb, AS_OF)
                    report = render_text(a).split("\nREFERENCES\n")[0]
                    row: dict[str, Any] = {
                        "case": case.parent.name,
                        "report_words": len(report.split()),
                        "bottom_line_words": sum(len(b.text.split()) for b in a.bottom_line),
                    }
                    for name, (w, h) in VIEWPORTS.items():
                        page = upload_result(browser, base, case, w, h)
                        visible = page.locator("main").inner_text()
                        height = page.evaluate("document.documentElement.scrollHeight")
                        row[f"{name}_visible_words"] = len(visible.split())
                        row[f"{name}_screens"] = round(height / h, 1)
                        row[f"{name}_first_dose_screen"] = _screen_of(page, ".bl-start", h)
                        row[f"{name}_do_not_screen"] = _screen_of(page, ".bl-do-not", h)
                        row[f"{name}_red_flag_screen"] = _screen_of(page, ".bl-red-flag", h)
                        page.context.close()
                    rows.append(row)
                browser.close()
    keys = list(rows[0])
    print("\t".join(keys))
    for r in rows:
        print("\t".join(str(r[k]) for k in keys))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
