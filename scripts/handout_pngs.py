"""Write one PNG per pathway of a vignette's patient handout (US Letter) to build/handouts/.

Needs pypdfium2 (not a project dependency: `.venv/bin/pip install pypdfium2`). For each routing
context, the first vignette (by name) where it is documented or likely is drawn at 80 dpi.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pypdfium2 as pdfium
import yaml

from legspasm import evaluate, load_case, load_knowledge
from legspasm.render.pdf import handout_pdf

ROOT = Path(__file__).resolve().parent.parent
VIGNETTES = ROOT / "tests" / "vignettes"
OUT = ROOT / "build" / "handouts"


def main() -> int:
    kb = load_knowledge()
    OUT.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    page_size = sys.argv[1] if len(sys.argv) > 1 else "letter"
    for folder in sorted(p for p in VIGNETTES.iterdir() if p.is_dir()):
        exp = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
        as_of = exp["as_of"]
        as_of = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
        a = evaluate(load_case(folder / "case.yaml"), kb, as_of)
        new = [
            c.id for c in a.conditions if c.status in ("documented", "likely") and c.id not in done
        ]
        if not new:
            continue
        done.update(new)
        pdf = pdfium.PdfDocument(handout_pdf(a, page_size=page_size))  # type: ignore[arg-type]
        image = pdf[0].render(scale=80 / 72).to_pil()
        path = OUT / f"{new[0]}--{folder.name}-{page_size}.png"
        image.save(path)
        print(path.relative_to(ROOT), f"({len(pdf)} page)")
    missing = sorted(set(kb.contexts) - done)
    if missing:
        print("no vignette for:", ", ".join(missing))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
