"""Which lines of an export can matter to the rules, decided on the raw text, before any parsing.

A patient none of whose resources holds anything the knowledge base reads gets no finding: their
case would hold only age, sex, medicines and conditions legspasm does not know, and allergies to
other substances, none of which starts a finding (tests/test_screen_first_pass.py checks this
on generated records). Only the resource types the mapping reads (``fhir.mapping.READ_TYPES``)
can hold such data. So the columnar first pass (``columnar``, and the Spark engine) assesses only
the patients with at least one line of those types that ``relevance_pattern(kb)`` matches, and
counts every other patient as screened with no finding.

The pattern is made from the knowledge base, never written by hand, and errs on the side of
matching (a line it matches in vain costs one assessment, never a finding):

- every code the mapping looks up, as a JSON string (optionally padded with spaces): the
  concepts' value sets (ICD-10-CM also without its dot), the concept ids, the drugs' RxNorm
  codes, the labs' and the record observations' LOINC codes and answer codes;
- every ingredient, brand and class name the mapping matches medicines and allergies by, as a
  whole word in any case (the mapping's word match on lower-cased text), a class also in the
  plural and with spaces for underscores;
- a QuestionnaireResponse (intake answers are always read) and a ``medicationReference`` (the
  medicine is named elsewhere);
- any text the mapping would read differently from the raw line: ``\\u`` escapes of ASCII
  characters, zero-width spaces (removed before matching), and the two characters whose lower
  case is ASCII (U+0130, U+212A).

``SUSPECT`` matches lines a lenient JSON reader (DuckDB, Spark) accepts but Python's may refuse
(NaN, Infinity, numbers too large, deep nesting is checked apart, a trailing comma): a file with
such a line is read line by line, so each problem is reported with its line as before.
"""

from __future__ import annotations

from typing import Any

from ..fhir.mapping import READ_TYPES
from ..knowledge import Knowledge

__all__ = [
    "MAX_OPENERS",
    "READ_TYPES",
    "STRINGS",
    "SUSPECT",
    "SUSPECT_WORDS",
    "relevance_pattern",
    "relevant_value",
]

SUSPECT_WORDS = ("NaN", "Infinity")
"""Not JSON: Python reads them, then refuses them as not finite (looked for as plain text)."""

SUSPECT = (
    r"[eE]\+?[0-9]{3}[,}\] \t]",  # a number with an exponent of 100 or more (past 1e308: infinite)
    r"[0-9]{300}",  # a number of 300 digits or more (infinite, or past Python's digit limit)
    r",\s*[}\]]",  # a trailing comma
)
"""Lines DuckDB or Spark may read while Python's ``json`` refuses them (or reads them as not
finite): their file is read line by line instead."""

MAX_OPENERS = 500
"""A line with this many ``[`` and ``{`` may be nested deeper than Python's ``json`` reads: its
file is read line by line (Python stops at about 1,000 levels)."""

_META = set(r"\.^$|?*+()[]{}")


def _literal(text: str) -> str:
    """``text`` as a regular expression matching itself (RE2 and Java alike)."""
    return "".join(f"\\{c}" if c in _META else c for c in text)


def _alternation(words: set[str]) -> str:
    """``words`` as one regular expression, factored as a trie (``pr(?:amipexole|egabalin)``):
    a backtracking engine (Spark's Java) then tries each letter once, not each word."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def regex(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [_literal(ch) + regex(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            body = f"(?:{body})?"
        return body

    return regex(trie)


def _codes(kb: Knowledge) -> set[str]:
    codes: set[str] = set(kb.concepts)
    for concept in kb.concepts.values():
        for c in concept.codes:
            codes.add(c.code)
            if c.system == "icd10cm":
                codes.add(c.code.replace(".", ""))
    codes |= set(kb.lookups.drug_by_code)
    codes |= set(kb.lookups.lab_by_loinc)
    for lab in kb.labs.values():
        codes |= {c.code for c in lab.codes}
    for rec in kb.record.values():
        codes |= {c.code for c in (*rec.codes, *rec.positive, *rec.negative)}
    return {c for c in codes if c}


def _words(kb: Knowledge) -> set[str]:
    words = set(kb.lookups.drug_by_word)
    for cid in kb.classes:
        words |= {cid, cid.replace("_", " ")}
    return {w.lower() for w in words if w}


STRINGS = r'"(?:code|text|display)"\s*:\s*"((?:[^"\\]|\\.)*)"'
"""The members whose values the mapping matches against the knowledge base (a coding's code and
display, a concept's text), as JSON text: group 1 is the value, still escaped."""


def relevant_value(kb: Knowledge, escaped: str) -> bool:
    """Whether a code, text or display (as JSON text, still escaped) may name something the
    knowledge base knows: the mapping's own lookups, on the value as it reads it."""
    import json

    try:
        value = json.loads(f'"{escaped}"')
    except ValueError:
        return True  # an escape Python refuses: let the line be read to tell
    text = value.replace("\u200b", "").strip()
    if text in _code_set(kb) or text.replace(".", "") in _code_set(kb):
        return True
    return bool(kb.lookups.drugs_named(text)) or kb.allergy_target(text) is not None


_CODES: list[tuple[Knowledge, set[str]]] = []


def _code_set(kb: Knowledge) -> set[str]:
    if not _CODES or _CODES[0][0] is not kb:
        _CODES[:] = [(kb, _codes(kb))]
    return _CODES[0][1]


def relevance_pattern(kb: Knowledge) -> str:
    """The pattern a raw NDJSON line matches when it may hold something the rules read."""
    codes = _alternation(_codes(kb))
    words = _alternation(_words(kb))
    # What may stand between a quote and a code the mapping strips (any whitespace, escaped or
    # not, zero-width spaces), and between a word and the character before it (an escape).
    pad = r"(?:\s|\\[bfnrt]|\\u[0-9a-f]{4}|[^\x00-\x7f])*"
    before = r"(?:^|[^a-z0-9_]|\\[bfnrt]|\\u[0-9a-f]{4})"
    return (
        "(?i)"
        + f'"{pad}(?:{codes}){pad}"'
        + f"|{before}(?:{words})s?(?:[^a-z0-9_]|$)"
        + r'|"resourceType"\s*:\s*"QuestionnaireResponse"'
        + r'|"medicationReference"'
        + r"|\\u00[2-7][0-9a-f]|\\u200b|\\u0130|\\u212a"
        + r"|(?-i:\x{200b}|\x{0130}|\x{212a})"  # as written: in any case, K is a k
    )
