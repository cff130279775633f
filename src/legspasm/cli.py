"""Command-line interface. Thin: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success; 2 bad input (file, field, value, option, or an audit database that
cannot be opened); 3 knowledge base invalid; 4 internal evaluation error.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .errors import CaseValidationError, InputError, KnowledgeError, LegspasmError, StoreError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="legspasm: cited decision support for leg cramps, spasms and RLS.",
)
kb_app = typer.Typer(no_args_is_help=True, help="Read and check the knowledge base.")
app.add_typer(kb_app, name="kb")
fhir_app = typer.Typer(no_args_is_help=True, help="FHIR R4 artefacts legspasm defines.")
app.add_typer(fhir_app, name="fhir")
feedback_app = typer.Typer(no_args_is_help=True, help="CDS Hooks card feedback (audit store).")
app.add_typer(feedback_app, name="feedback")


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"
    fhir = "fhir"


class Color(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


class ReportFormat(StrEnum):
    text = "text"
    json = "json"


class SchemaName(StrEnum):
    case = "case"
    assessment = "assessment"


def _fail(exc: LegspasmError) -> NoReturn:
    code = (
        2
        if isinstance(exc, InputError | StoreError)
        else 3
        if isinstance(exc, KnowledgeError)
        else 4
    )
    typer.echo(f"error: {exc.message}", err=True)
    raise typer.Exit(code)


def _as_of(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: --as-of: {value!r} is not a date (use YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None


_ASSESS_EXAMPLES = """Examples:

legspasm assess src/legspasm/examples/rls-low-ferritin.yaml --as-of 2026-11-21

legspasm assess src/legspasm/examples/rls-record.fhir.json -f fhir > plan.json

legspasm assess EXPORT/ --patient 123 -f markdown > plan.md

legspasm assess case.yaml -f json | jq .bottom_line
"""


@app.command(epilog=_ASSESS_EXAMPLES)
def assess(
    case: Annotated[
        str,
        typer.Argument(
            help="Case file (.yaml, .yml, .json) or FHIR R4 record: a Bundle or resource "
            "(.json), an NDJSON file, or a bulk-export folder of NDJSON files."
        ),
    ],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Assessment date, YYYY-MM-DD (default: today).")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
    patient: Annotated[
        str | None,
        typer.Option("--patient", help="Patient id, when the FHIR input holds several patients."),
    ] = None,
    color: Annotated[
        Color,
        typer.Option(
            "--color",
            help="Text format: colour and wrap to the terminal (auto: only on a terminal; "
            "NO_COLOR is honoured).",
        ),
    ] = Color.auto,
) -> None:
    """Assess one patient and print the plan, bottom line first (and, for FHIR input, the
    data used and not)."""
    from .inputs import load_patient
    from .knowledge import load_knowledge
    from .render import render_markdown, render_text

    date = _as_of(as_of)
    try:
        kb = load_knowledge()
        loaded = load_patient(case, kb, date, patient)
        try:
            result = loaded.assess(kb, date)
        except CaseValidationError as exc:  # name the file, not only the case id
            raise CaseValidationError(exc.problems, source=case) from None
    except LegspasmError as exc:
        _fail(exc)
    if fmt is Format.fhir:
        from .fhir import assessment_bundle, check_bundle

        bundle = assessment_bundle(result, loaded.subject)
        problems = check_bundle(bundle, frozenset({loaded.subject} if loaded.subject else ()))
        if problems:  # a bug in legspasm: never hand out invalid FHIR
            typer.echo(
                "error: FHIR output failed validation:\n  " + "\n  ".join(problems), err=True
            )
            raise typer.Exit(4)
        typer.echo(json.dumps(bundle, indent=2, ensure_ascii=False))
    elif fmt is Format.json:
        typer.echo(result.model_dump_json(indent=2))
    elif fmt is Format.markdown:
        typer.echo(render_markdown(result), nl=False)
    elif color is Color.always or (color is Color.auto and sys.stdout.isatty()):
        from rich.console import Console

        from .render.terminal import styled_report

        console = Console(force_terminal=color is Color.always, highlight=False)
        console.print(styled_report(result, console.width), end="", soft_wrap=True)
    else:
        typer.echo(render_text(result), nl=False)


@app.command()
def synth(
    out: Annotated[str, typer.Argument(help="Folder to write (created; must be new or empty).")],
    patients: Annotated[int, typer.Option("--patients", help="Patients in the export.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 1,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Dates are relative to this day, YYYY-MM-DD (2026-11-21)."),
    ] = None,
    gz: Annotated[bool, typer.Option("--gzip", help="Write .ndjson.gz files.")] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="A FHIR Bulk Data export (e.g. Synthea) whose patients are copied first, with "
            "their clinics and clinicians, and partly given the synthetic clinical layer; "
            "generated patients fill up to --patients.",
        ),
    ] = None,
    prevalence: Annotated[
        float,
        typer.Option(
            "--prevalence",
            help="Share of generated patients with the clinical layer (conditions, medicines, "
            "labs the rules read); the others only have visits. 0.05 looks like a clinic.",
        ),
    ] = 1.0,
    clinics: Annotated[
        int, typer.Option("--clinics", help="Clinics the generated patients belong to.")
    ] = 12,
) -> None:
    """Write a synthetic FHIR Bulk Data export (NDJSON) for screening tests and benchmarks."""
    from .knowledge import load_knowledge
    from .screen.synth import AS_OF, synthesize

    date = _as_of(as_of) if as_of is not None else AS_OF
    try:
        kb = load_knowledge()
        summary = synthesize(
            out,
            patients,
            seed,
            kb,
            as_of=date,
            gzip_output=gz,
            source=source,
            clinics=clinics,
            prevalence=prevalence,
        )
    except LegspasmError as exc:
        _fail(exc)
    typer.echo(summary.line(), err=True)


@app.command()
def screen(
    input: Annotated[
        Path,
        typer.Argument(help="A FHIR Bulk Data export folder (NDJSON, .gz) or a folder of bundles."),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The findings table: FILE.csv or FILE.parquet.")
    ],
    as_of: Annotated[str, typer.Option("--as-of", help="Assessment date, YYYY-MM-DD.")],
    engine: Annotated[
        str, typer.Option("--engine", help="local (processes on this machine) or spark.")
    ] = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Local worker processes (default: all cores).")
    ] = None,
    spill_dir: Annotated[
        Path | None, typer.Option("--spill-dir", help="Where the local engine groups on disk.")
    ] = None,
    master: Annotated[
        str, typer.Option("--master", help="Spark master URL for --engine spark.")
    ] = "local[2]",
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Kinds of finding to write, repeated or comma-separated: red_flag, exposure, "
            "exposure_unconfirmed, condition, plan, plan_conditional; or actionable, plans, all. "
            "Default: red flags, exposures and conditions (plan opportunities on request). "
            "data_incomplete rows are always written.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write a static HTML report (plots, rates) here."),
    ] = None,
    assess_all: Annotated[
        bool,
        typer.Option(
            "--assess-all",
            help="Assess every patient, not only those the columnar first pass finds holding "
            "something the rules read (the same output, slower).",
        ),
    ] = False,
) -> None:
    """Screen every patient of an export: findings table, problems and a summary."""
    from .screen.run import DEFAULT_KINDS
    from .screen.run import screen as run_screen

    if engine not in ("local", "spark"):
        _fail(InputError(f"--engine {engine!r}: give local or spark"))
    if workers is not None and workers < 1:
        _fail(InputError("--workers: give 1 or more"))
    try:
        with _terminate_as_exit():
            run_screen(
                input,
                out,
                _as_of(as_of),
                engine="spark" if engine == "spark" else "local",
                workers=workers,
                spill_dir=spill_dir,
                master=master,
                kinds=kind or DEFAULT_KINDS,
                report=report,
                first_pass=not assess_all,
                echo=typer.echo,
            )
    except LegspasmError as exc:
        _fail(exc)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C, so the spill folder and the
    partial output files are removed and the previous output stays; exit code 143."""

    stopped: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopped.append(signum)
        typer.echo("screen: stopped (SIGTERM); the previous output, if any, is unchanged", err=True)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except Exception:
        if stopped:  # a library that turned the signal into its own error (DuckDB: interrupted)
            raise SystemExit(128 + stopped[0]) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


@fhir_app.command("questionnaire")
def fhir_questionnaire() -> None:
    """Print legspasm's intake Questionnaire (FHIR R4 JSON): answers to it are read by assess."""
    from .fhir import questionnaire
    from .knowledge import load_knowledge

    try:
        kb = load_knowledge()
    except LegspasmError as exc:
        _fail(exc)
    typer.echo(json.dumps(questionnaire(kb.version), indent=2, ensure_ascii=False))


@app.command()
def schema(name: Annotated[SchemaName, typer.Argument(help="case or assessment")]) -> None:
    """Print the JSON Schema of the case file or of the JSON assessment."""
    from .assessment import Assessment
    from .case import Case

    model = Case if name is SchemaName.case else Assessment
    doc = model.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    typer.echo(json.dumps(doc, indent=2))


@kb_app.command("check")
def kb_check() -> None:
    """Validate every knowledge file; exit 3 naming file, entry and field on the first problem."""
    from .knowledge import load_knowledge

    try:
        kb = load_knowledge()
    except LegspasmError as exc:
        _fail(exc)
    typer.echo(
        f"knowledge base {kb.version} is valid: {len(kb.citations)} citations, "
        f"{len(kb.contexts)} contexts, {len(kb.red_flags)} red flags, "
        f"{len(kb.recommendations)} recommendations, {len(kb.avoid_rules)} avoid rules, "
        f"{len(kb.drugs)} drugs, {len(kb.concepts)} concepts, {len(kb.labs)} labs"
    )


_KINDS = (
    "citations",
    "contexts",
    "red_flags",
    "recommendations",
    "avoid_rules",
    "drugs",
    "concepts",
    "labs",
)


@kb_app.command("list")
def kb_list(
    kind: Annotated[str | None, typer.Argument(help="One of: " + ", ".join(_KINDS))] = None,
) -> None:
    """List knowledge-base entries (all kinds, or one)."""
    from .knowledge import load_knowledge

    if kind is not None and kind not in _KINDS:
        typer.echo(f"error: unknown kind {kind!r}; choose one of {', '.join(_KINDS)}", err=True)
        raise typer.Exit(2)
    try:
        kb = load_knowledge()
    except LegspasmError as exc:
        _fail(exc)
    for k in [kind] if kind else _KINDS:
        typer.echo(f"{k}:")
        for ident, entry in getattr(kb, k).items():
            title = (
                getattr(entry, "name", None)
                or getattr(entry, "title", None)
                or getattr(entry, "statement", None)
                or getattr(entry, "reason", "")
            )
            typer.echo(f"  {ident:28} {str(title)[:90]}")


@kb_app.command("show")
def kb_show(ident: Annotated[str, typer.Argument(help="Any knowledge-base id.")]) -> None:
    """Show one entry in full, as YAML."""
    import difflib

    import yaml

    from .knowledge import load_knowledge

    try:
        kb = load_knowledge()
    except LegspasmError as exc:
        _fail(exc)
    for k in _KINDS:
        entry = getattr(kb, k).get(ident)
        if entry is not None:
            data = _public(entry.model_dump(exclude_none=True, exclude_defaults=True))
            typer.echo(f"# {k[:-1] if k.endswith('s') else k}: {ident}")
            typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
            return
    every = [i for k in _KINDS for i in getattr(kb, k)]
    close = difflib.get_close_matches(ident, every, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    typer.echo(f"error: no knowledge-base entry {ident!r}{hint}", err=True)
    raise typer.Exit(2)


@feedback_app.command("report")
def feedback_report(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Audit database URL (default: LEGSPASM_DATABASE_URL, else "
            "sqlite:///legspasm-audit.sqlite3).",
        ),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Only feedback and cards of this service id.")
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ReportFormat.text,
) -> None:
    """Acceptance and override rates per rule, from card feedback in the audit store."""
    from pydantic import ValidationError

    from .audit import AuditStore, render_report, report_json
    from .audit.journal import default_directory, recover
    from .settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            typer.echo(f"error: LEGSPASM_{where.upper()}: {e['msg']}", err=True)
        raise typer.Exit(2) from None
    database_url = database_url or settings.database_url
    try:
        store = AuditStore.open(database_url, create=False)
        try:
            # Records a stopped or killed service left in its journal count too.
            folder = settings.journal_dir or default_directory(store.url)
            if folder is not None:
                recover(folder, store)
            rows = store.feedback_report(service)
        finally:
            store.close()
    except LegspasmError as exc:
        _fail(exc)
    if fmt is ReportFormat.json:
        typer.echo(json.dumps(report_json(rows), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_report(rows), nl=False)


_INTERNAL = {"compiled", "compiled_when", "compiled_unless", "compiled_possible", "targets"}


@app.command()
def serve(
    dev: Annotated[
        bool,
        typer.Option(
            "--dev", help="Local development: JWTs are NOT verified (a loud warning is logged)."
        ),
    ] = False,
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Assess as of this date (default: each day).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes serving the port (default 1), all on the one audit "
            "database: PostgreSQL, or a SQLite file on this machine.",
        ),
    ] = None,
) -> None:
    """Run the CDS Hooks service (discovery at /cds-services). Settings: LEGSPASM_* variables."""
    import logging

    from pydantic import ValidationError

    from .server import LOG_FORMAT
    from .server import serve as run_server
    from .settings import Settings

    overrides: dict[str, object] = {"dev": True} if dev else {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if as_of is not None:
        overrides["as_of"] = _as_of(as_of)
    if workers is not None:
        overrides["workers"] = workers
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            typer.echo(f"error: LEGSPASM_{where.upper()}: {e['msg']}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        run_server(settings, announce=lambda line: typer.echo(line, err=True))
    except LegspasmError as exc:
        _fail(exc)


def _public(data: object) -> object:
    """Drop load-time internals (compiled expressions, expanded targets) from a dumped entry."""
    if isinstance(data, dict):
        return {k: _public(v) for k, v in data.items() if k not in _INTERNAL}
    if isinstance(data, list):
        return [_public(v) for v in data]
    return data


def main() -> None:
    """Entry point: no traceback ever reaches the user."""
    try:
        app()
    except LegspasmError as exc:  # commands map their own errors; this is a safety net
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2 if isinstance(exc, InputError | StoreError) else 3)
    except Exception as exc:  # an engine bug: say so plainly, exit 4
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in legspasm; "
            "please report it with the input that caused it.",
            err=True,
        )
        sys.exit(4)
