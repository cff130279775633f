"""Writing a screen: the findings table (CSV or Parquet, by the file's suffix) and its summary.

The table has one row per finding (``findings.COLUMNS``) and is written as the findings stream
in, in batches, so memory stays bounded. The summary counts patients per finding and per
condition, the problems (each with file and line), and the resources that name no patient; it is
printed and saved as JSON next to the table (``FILE.summary.json``), with the problems in
``FILE.problems.csv`` (the first ``MAX_PROBLEMS_KEPT``; the summary counts them all), each with
the patient whose data it lost (``*``: unknown, so every patient's findings are marked
``data_incomplete``; empty: no patient's data).

Each file is written under a hidden partial name and renamed into place only when the run is
complete: the summary is removed first and written last, so an interrupted run leaves either the
previous complete output, or a table without a summary (incomplete), never a truncated table
beside a summary that looks complete.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .core import Problem
from .findings import COLUMNS, FLAGGED, SEVERITY, Finding
from .rates import Numerators

__all__ = [
    "Tally",
    "check_output",
    "commit",
    "discard",
    "partial",
    "summary_paths",
    "write_findings",
    "write_problems",
    "write_summary",
]

_BATCH = 50_000


def check_output(path: Path) -> str:
    """The table format for ``path`` ("csv" or "parquet"); InputError otherwise."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    raise InputError(f"--out {path}: give a .csv or .parquet file name")


def partial(path: Path) -> Path:
    """Where ``path`` is written until the run is complete (hidden, beside it)."""
    return path.with_name(f".{path.name}.partial")


def discard(paths: Iterable[Path]) -> None:
    """Remove the partial files of an interrupted run (the previous output stays)."""
    for p in paths:
        partial(p).unlink(missing_ok=True)


def commit(table: Path, problems: Path, summary: Path, content: dict[str, Any]) -> None:
    """Move a finished run's files into place: the old summary goes first, the new one last."""
    summary.unlink(missing_ok=True)
    os.replace(partial(table), table)
    os.replace(partial(problems), problems)
    write_summary(content, partial(summary))
    os.replace(partial(summary), summary)


def summary_paths(path: Path) -> tuple[Path, Path]:
    """Where the summary JSON and the problems CSV of a table at ``path`` go."""
    return path.with_name(path.name + ".summary.json"), path.with_name(path.name + ".problems.csv")


@dataclass
class Tally:
    """Counts gathered while the findings stream past, in memory that does not grow with the
    number of patients: the rows arrive sorted by patient, so a patient ends when the id changes.
    """

    rows: int = 0
    by_finding: Counter[str] = field(default_factory=Counter)  # finding id -> patients
    by_kind: Counter[str] = field(default_factory=Counter)  # kind -> rows
    by_severity: Counter[str] = field(default_factory=Counter)  # severity -> patients (highest)
    by_condition: Counter[str] = field(default_factory=Counter)  # context id -> patients
    patients_with_findings: int = 0  # patients with a clinical finding (not only a mark)
    flagged: int = 0  # patients with a red flag or an exposure
    incomplete: Counter[str] = field(default_factory=Counter)  # mark status -> patients
    names: dict[str, str] = field(default_factory=dict)  # finding id -> its name
    kinds: dict[str, str] = field(default_factory=dict)  # finding id -> its kind
    numerators: Numerators = field(default_factory=Numerators)
    _current: str | None = None
    _current_flagged: bool = False
    _current_severity: int | None = None
    _seen: set[str] = field(default_factory=set)  # the current patient's finding ids

    def add(self, f: Finding) -> None:
        if f.patient_id != self._current:
            if self._current is not None and f.patient_id < self._current:
                raise ValueError("findings must arrive sorted by patient")  # an engine bug
            self._end_patient()
            self._current = f.patient_id
            self._current_flagged = False
            self._seen.clear()
        self.rows += 1
        self.by_kind[f.kind] += 1
        self.numerators.add(f)
        if f.kind == "data_incomplete":
            self.incomplete[f.status] += 1
            return
        if self._current_severity is None:
            self.patients_with_findings += 1
        level = _LEVELS.index(f.severity)
        if self._current_severity is None or level < self._current_severity:
            self._current_severity = level
        # A rule can give a patient two rows (e.g. two benzodiazepines): count the patient once.
        if f.finding_id not in self._seen:
            self._seen.add(f.finding_id)
            self.by_finding[f.finding_id] += 1
            self.names.setdefault(f.finding_id, f.finding)
            self.kinds.setdefault(f.finding_id, f.kind)
            if f.kind == "condition":
                self.by_condition[f.finding_id] += 1
        if f.kind in FLAGGED and not self._current_flagged:
            self._current_flagged = True
            self.flagged += 1

    def _end_patient(self) -> None:
        if self._current_severity is not None:
            self.by_severity[_LEVELS[self._current_severity]] += 1
        self._current_severity = None

    def as_json(self) -> dict[str, Any]:
        self._end_patient()
        by_finding = sorted(self.by_finding.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "findings": self.rows,
            "patients_with_findings": self.patients_with_findings,
            "patients_with_red_flag_or_exposure": self.flagged,
            "patients_data_incomplete": sum(self.incomplete.values()),
            "data_incomplete": dict(sorted(self.incomplete.items())),
            "by_kind": dict(sorted(self.by_kind.items())),
            "patients_by_severity": {k: self.by_severity[k] for k in _LEVELS},
            "by_finding": dict(by_finding),
            "by_condition": dict(sorted(self.by_condition.items(), key=lambda kv: (-kv[1], kv[0]))),
            "finding_names": {k: self.names[k] for k, _ in by_finding},
            "finding_kinds": {k: self.kinds[k] for k, _ in by_finding},
        }


_LEVELS = tuple(SEVERITY)


def write_findings(rows: Iterable[Finding], path: Path, kind: str | None = None) -> Tally:
    """Write the findings to ``path`` (``kind`` csv or parquet, else by its suffix) and count
    them. In Parquet, ``age`` is an integer and ``started`` a date; every other column text."""
    kind = kind or check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    if kind == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            for f in rows:
                tally.add(f)
                w.writerow(f.as_tuple())
        return tally
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"age": pa.int32(), "started": pa.date32()}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
    convert: dict[str, Callable[[str], object]] = {
        "age": lambda v: int(v) if v else None,
        "started": lambda v: dt.date.fromisoformat(v) if v else None,
    }
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: list[Finding] = []

        def flush() -> None:
            cols = list(zip(*(b.as_tuple() for b in batch), strict=True))
            if not cols:  # no finding at all: an empty table, with its columns
                cols = [() for _ in COLUMNS]
            arrays = [
                pa.array(
                    [convert[name](v) for v in col] if name in convert else list(col),
                    schema.field(name).type,
                )
                for name, col in zip(COLUMNS, cols, strict=True)
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            batch.clear()

        for f in rows:
            tally.add(f)
            batch.append(f)
            if len(batch) >= _BATCH:
                flush()
        if batch or tally.rows == 0:
            flush()
    return tally


def write_problems(problems: Iterable[Problem], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("file", "line", "problem", "patient"))
        for p in problems:
            w.writerow((p.file, p.line, p.problem, p.owner))


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
