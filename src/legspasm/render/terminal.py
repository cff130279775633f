"""The text report on a terminal: wrapped to its width, red flags and "do not" in colour.

The words are render_text's, unchanged; only line breaks (hanging indent under each bullet) and
styles are added. Piped output stays plain (the CLI asks for this only on a terminal).
"""

from __future__ import annotations

import re
import textwrap

from rich.text import Text

from ..assessment import Assessment
from .report import render_text

__all__ = ["styled_report"]

_ALARM = re.compile(r"\b(CONTRAINDICATED|EMERGENCY|URGENT|SAME-DAY|AVOID|Withheld)\b")
_CARE = re.compile(r"\b(CONDITIONAL|CAUTION|caution|Before prescribing, confirm|First confirm)\b")
_BULLET = re.compile(r"^(\s*)(\* )?")


def _wrap(line: str, width: int) -> list[str]:
    if len(line) <= width:
        return [line]
    m = _BULLET.match(line)
    lead = len(m.group(1)) + len(m.group(2) or "") if m else 0
    return textwrap.wrap(
        line, width=width, subsequent_indent=" " * lead, break_on_hyphens=False
    ) or [line]


def styled_report(a: Assessment, width: int) -> Text:
    """The report as rich Text: headings bold, the red-flag section and the bottom line's red
    flag and "do not" lines bold red, conditional and caution words in yellow."""
    loud = {b.text for b in a.bottom_line if b.kind in ("red-flag", "hold", "do-not")}
    lines = render_text(a).splitlines()
    out = Text()
    section = ""
    for i, line in enumerate(lines):
        underline = i + 1 < len(lines) and set(lines[i + 1]) <= {"-", "="} and lines[i + 1]
        if underline:
            section = line
        style = ""
        if underline:
            style = "bold red" if section.startswith("RED FLAGS") else "bold"
        elif line and set(line) <= {"-", "="}:
            style = "dim"
        elif any(t in line for t in loud) or section.startswith("RED FLAGS"):
            style = "bold red"
        for part in _wrap(line, max(width, 40)):
            t = Text(part, style=style)
            if not style:
                t.highlight_regex(_ALARM, "bold red")
                t.highlight_regex(_CARE, "bold yellow")
            out.append(t)
            out.append("\n")
    return out
