"""``legspasm screen``: run an engine over an export, write the table, the problems and the summary.

The command-line surface calls :func:`screen`; everything it prints goes through ``echo`` so a
test can read it. Problems never stop a run: each is listed with its file and line.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..errors import InputError
from ..knowledge import load_knowledge
from .findings import ACTIONABLE, KINDS, SEVERITY
from .local import Progress, ScreenRun, screen_local
from .output import (
    check_output,
    commit,
    discard,
    partial,
    summary_paths,
    write_findings,
    write_problems,
)
from .rates import NOT_RECORDED, rate_tables

__all__ = ["DEFAULT_KINDS", "check_kinds", "screen"]

Engine = Literal["local", "spark"]

DEFAULT_KINDS: tuple[str, ...] = ("red_flag", "exposure", "exposure_unconfirmed", "condition")
"""What a screen writes unless told: exposures and red flags, and the conditions (plan
opportunities only on request: ``plan``, ``plan_conditional`` or ``all``)."""

_GROUPS = {
    "all": KINDS,
    "actionable": tuple(k for k in KINDS if k in ACTIONABLE),
    "plans": ("plan", "plan_conditional"),
}


def check_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """The kinds asked for (names in ``KINDS``, comma-separated lists, or the groups ``all``,
    ``actionable`` and ``plans``), with ``data_incomplete`` always; InputError for others."""
    out = {"data_incomplete"}
    for item in kinds:
        for k in (x.strip() for x in item.split(",")):
            if k in _GROUPS:
                out.update(_GROUPS[k])
            elif k in KINDS:
                out.add(k)
            elif k:
                known = ", ".join((*KINDS, *_GROUPS))
                raise InputError(f"--kind {k!r}: not a kind of finding (give one of: {known})")
    return frozenset(out)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    """A progress display on the terminal: bytes read with the patients found, then patients
    assessed of those found."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[what]}"),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int, patients: int) -> None:
            if phase == "read":
                what = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB, {patients:,} patients found"
            else:
                what = f"{done:,}/{total:,} patients"
            if phase not in tasks:
                label = "reading" if phase == "read" else "assessing"
                tasks[phase] = bar.add_task(label, total=total, what=what)
            bar.update(tasks[phase], completed=done, total=total, what=what)

        yield update


def _run(
    engine: Engine,
    folder: Path,
    as_of: dt.date,
    workers: int | None,
    spill_dir: Path | None,
    bucket_mb: float | None,
    master: str,
    progress: Progress | None,
    first_pass: bool,
) -> ScreenRun:
    if engine == "local":
        return screen_local(
            folder,
            as_of,
            workers=workers,
            spill_dir=spill_dir,
            bucket_mb=bucket_mb,
            progress=progress,
            first_pass=first_pass,
        )
    from .spark import spark_screen

    run = spark_screen(folder, as_of, master=master, first_pass=first_pass)
    return ScreenRun(
        findings=run.findings,
        problems=run.problems,
        problems_total=run.problems_total,
        shared=run.shared,
        files=run.files,
        input_bytes=run.input_bytes,
        population=run.population,
        assessed=run.assessed,
        cleanup=run.close,
    )


def screen(
    folder: Path,
    out: Path,
    as_of: dt.date,
    *,
    engine: Engine = "local",
    workers: int | None = None,
    spill_dir: Path | None = None,
    bucket_mb: float | None = None,
    master: str = "local[2]",
    kinds: Iterable[str] = DEFAULT_KINDS,
    report: Path | None = None,
    first_pass: bool = True,
    echo: Callable[[str], None] = print,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Screen ``folder`` into ``out``; return the summary (also saved as JSON). InputError for
    an unusable folder or output name, or an unknown kind.

    ``kinds``: the kinds of finding written and counted (``KINDS``; ``data_incomplete`` rows are
    always written: a patient whose data was lost is never silently left out). ``report``: a
    static HTML report to write (plots and the rates tables). ``first_pass``: False assesses
    every patient instead of only those who hold something the rules read (the same output).
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (give a Bulk Data export or a folder of bundles)")
    kind = check_output(out)
    wanted = check_kinds(kinds)
    kb = load_knowledge()
    started = time.perf_counter()
    tty = sys.stderr.isatty() if show_progress is None else show_progress
    summary_json, problems_csv = summary_paths(out)
    written = (out, problems_csv, summary_json)
    try:
        with _progress(tty) as progress:
            run = _run(
                engine, folder, as_of, workers, spill_dir, bucket_mb, master, progress, first_pass
            )
            try:
                rows = (f for f in run.findings if f.kind in wanted)
                tally = write_findings(rows, partial(out), kind)
                patients = run.population.patients
            finally:
                run.close()
        write_problems(run.problems, partial(problems_csv))
    except OSError as exc:
        discard(written)
        raise InputError(
            f"{out}: cannot write the output ({exc.strerror or exc}); "
            "the previous output, if any, is unchanged"
        ) from None
    except BaseException:
        discard(written)
        raise
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "engine": engine,
        "input": str(folder),
        "output": str(out),
        "as_of": as_of.isoformat(),
        "knowledge_version": kb.version,
        "legspasm_version": __version__,
        "files": run.files,
        "input_bytes": run.input_bytes,
        "patients": patients,
        "patients_assessed": run.assessed,
        "patients_without_domain_data": patients - run.assessed,
        "kinds": [k for k in KINDS if k in wanted],
        "severity_scale": SEVERITY,
        **tally.as_json(),
        "problems": run.problems_total,
        "problems_in_file": len(run.problems),
        "problems_file": str(problems_csv),
        "resources_without_patient": run.shared,
        "seconds": round(seconds, 3),
        "patients_per_second": round(patients / seconds, 1) if seconds else None,
    }
    summary["screened"] = {
        g: [
            {"key": k, "name": run.population.names.get(k, k) or NOT_RECORDED, "patients": n}
            for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        for g, c in run.population.counts.items()
    }
    summary["rates"] = rate_tables(run.population, tally.numerators, summary["finding_names"])
    commit(out, problems_csv, summary_json, summary)
    if report is not None:
        from .report import write_report

        try:
            write_report(summary, report)
        except OSError as exc:
            raise InputError(f"{report}: cannot write the report ({exc.strerror or exc})") from None
        summary["report"] = str(report)
    _report(summary, run, echo)
    return summary


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _report(s: dict[str, Any], run: ScreenRun, echo: Callable[[str], None]) -> None:
    echo(
        f"screened {s['patients']:,} patients from {s['files']} files "
        f"({s['input_bytes'] / 1e6:.1f} MB) in {s['seconds']:.1f} s: {s['findings']:,} findings, "
        f"{s['patients_with_red_flag_or_exposure']:,} patients with a red flag or an exposure"
    )
    if s["patients_without_domain_data"]:
        echo(
            f"{s['patients_assessed']:,} patients assessed; the other "
            f"{s['patients_without_domain_data']:,} hold nothing the rules read (no finding)"
        )
    screened = s["patients"]
    groups = (
        ("patients per red flag or exposure", ("red_flag", "exposure", "exposure_unconfirmed")),
        ("patients per condition (documented or likely)", ("condition",)),
        ("patients per plan opportunity", ("plan", "plan_conditional")),
    )
    for title, kinds in groups:
        shown = [(k, n) for k, n in s["by_finding"].items() if s["finding_kinds"][k] in kinds]
        if not shown:
            continue
        echo(f"{title} (per 1,000 screened):")
        for fid, n in shown:
            rate = 1000 * n / screened if screened else 0.0
            name = _cut(s["finding_names"][fid], 58)
            echo(f"  {fid:<26} {n:>8,} {rate:>6.1f}  {name}")
    if s["patients_data_incomplete"]:
        marks = ", ".join(f"{k} {v:,}" for k, v in s["data_incomplete"].items())
        echo(
            f"{s['patients_data_incomplete']:,} patients have findings that may be incomplete "
            f"(a DATA-INCOMPLETE row: {marks}): data that may be theirs was lost"
        )
    if s["resources_without_patient"]:
        shared = ", ".join(f"{k} {v:,}" for k, v in s["resources_without_patient"].items())
        echo(f"resources naming no patient (kept as shared reference data): {shared}")
    if s["problems"]:
        kept = s["problems_in_file"]
        where = (
            f"every one in {s['problems_file']}"
            if kept == s["problems"]
            else f"the first {kept:,} in {s['problems_file']}"
        )
        echo(f"{s['problems']:,} problems ({where}):")
        for p in run.problems[:10]:
            where = f"{p.file}:{p.line}" if p.line else (p.file or "export")
            echo(f"  {where}: {p.problem}")
        if s["problems"] > 10:
            echo(f"  ... and {s['problems'] - 10:,} more")
    echo(f"table: {s['output']}; summary: {summary_paths(Path(s['output']))[0]}")
    if "report" in s:
        echo(f"report: {s['report']}")
