"""The local screening engine: group a Bulk Data export by patient on disk, assess in parallel.

Memory stays bounded whatever the input size:

1. **Spill.** Every file is streamed once; each resource is written, as one canonical JSON line
   keyed by its patient, to one of B bucket files chosen by a hash of the patient id. B grows with
   the input (about 16 MB of input per bucket), so a bucket stays small. Resources that belong to
   no patient (Medication, Organization...) are kept in memory as the export's shared data (they
   are reference data, counted per type in the summary); problems are counted and kept.
2. **Assess.** Buckets go to a pool of worker processes (both cores by default), each with the
   knowledge base loaded once. A worker groups its bucket by patient, assesses each patient with
   ``core.assess_patient`` (resources in canonical order) and writes the bucket's findings,
   sorted, to a result file.
3. **Merge.** The sorted result files are merged (``heapq.merge``) into one stream in the
   findings' natural order, so the output is identical for any number of workers, and identical
   to the Spark engine's.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..fhir.attribution import PartyNames
from ..fhir.read import Entry
from ..knowledge import Knowledge, load_knowledge
from .core import (
    ANYONE,
    MAX_PROBLEMS_KEPT,
    Problem,
    attribute,
    canonical,
    export_loss,
    input_files,
    lost_line,
    read_file,
    screen_patient,
    unique,
)
from .findings import Finding
from .rates import Population

__all__ = ["Progress", "ScreenRun", "remove_stale_spills", "screen_local"]

_BUCKET_BYTES = 16 * 1024 * 1024
_MAX_BUCKETS = 512
_BUCKETS_PER_WORKER = 16

Progress = Callable[[str, int, int, int], None]
"""``progress(phase, done, total, patients)``: phase ``read`` counts bytes of input (and the
patients found so far), phase ``assess`` counts patients assessed of those found."""


@dataclass
class ScreenRun:
    """What a screen produced. ``findings`` streams in order; read it once."""

    findings: Iterator[Finding]
    problems: list[Problem]
    problems_total: int
    shared: dict[str, int]  # resource type -> resources that name no patient
    files: int
    input_bytes: int
    population: Population  # patients screened, per clinic, clinician and prescriber
    cleanup: Callable[[], None] = field(default=lambda: None)

    def close(self) -> None:
        self.cleanup()


_SPILL = "legspasm-screen-"


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _spill_prefix() -> str:
    """Spill folders are named for their host and process, so a later run can tell one left by
    a killed run (its process gone) from one in use."""
    return f"{_SPILL}{_host()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_spills(where: Path) -> list[Path]:
    """Remove the spill folders that runs killed on this host left in ``where`` (their process
    is gone); those of running screens, and of other hosts sharing the folder, stay."""
    host = f"{_SPILL}{_host()}-"
    removed = []
    for p in where.glob(f"{host}*-*"):
        pid = p.name.removeprefix(host).split("-", 1)[0]
        if p.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(key.encode()) % buckets


# --- worker side -------------------------------------------------------------------------------

_KB: Knowledge | None = None
_SHARED: list[Any] = []
_NAMES: PartyNames | None = None


def _init(shared_path: str) -> None:
    global _KB, _SHARED, _NAMES
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler: just stop
    _KB = load_knowledge()
    with open(shared_path, encoding="utf-8") as fh:
        _SHARED = [json.loads(line) for line in fh]
    _NAMES = PartyNames(Entry(r, "") for r in _SHARED)


def _assess_bucket(args: tuple[str, str, str, str]) -> tuple[int, list[Problem], tuple[Any, ...]]:
    """Assess one bucket file; write its sorted findings to ``out``. (patients, problems,
    denominators)."""
    bucket, out, as_of_text, lost_elsewhere = args
    assert _KB is not None
    as_of = dt.date.fromisoformat(as_of_text)
    groups: dict[str, list[str]] = {}
    with open(bucket, encoding="utf-8") as fh:
        for line in fh:
            key, _, text = line.rstrip("\n").partition("\t")
            groups.setdefault(key, []).append(text)
    rows: list[Finding] = []
    problems: list[Problem] = []
    population = Population()
    for pid in sorted(groups):
        one = screen_patient(
            pid, groups[pid], _SHARED, _KB, as_of, "export", lost_elsewhere, _NAMES
        )
        rows.extend(one.rows)
        problems.extend(one.problems)
        if one.assessed:
            population.add(one.patient.clinic, one.patient.clinician, one.prescribers)
    rows.sort()
    with open(out, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r.as_tuple(), ensure_ascii=False) + "\n")
    return population.patients, problems, population.as_tuple()


# --- driver side -------------------------------------------------------------------------------


@dataclass
class _Problems:
    """The problems of a run: all counted, the first ``MAX_PROBLEMS_KEPT`` kept, and those that
    lost data of an unknown patient counted with the smallest few (for every patient's mark)."""

    kept: list[Problem] = field(default_factory=list)
    total: int = 0
    anyone: int = 0
    anyone_first: list[Problem] = field(default_factory=list)

    def add(self, p: Problem) -> None:
        self.total += 1
        if len(self.kept) < MAX_PROBLEMS_KEPT:
            self.kept.append(p)
        if p.owner == ANYONE:
            self.anyone += 1
            self.anyone_first = heapq.nsmallest(_SHOWN, [*self.anyone_first, p])

    def loss(self) -> str:
        return export_loss(self.anyone, self.anyone_first)


_SHOWN = 3


def _spill(
    files: list[Path],
    tmp: Path,
    buckets: int,
    problems: _Problems,
    counts: Counter[str],
    shared: list[Any],
    on_read: Callable[[int, int], None],
) -> list[Path]:
    """Stream every file into the bucket files; ``on_read(bytes, patients)`` is told how many
    bytes were read and Patient resources found, after each file and every few thousand lines."""
    paths = [tmp / f"bucket-{i:04d}.tsv" for i in range(buckets)]
    handles: list[IO[str]] = [p.open("w", encoding="utf-8", buffering=1 << 16) for p in paths]
    done = patients = 0
    try:
        for f in files:
            for n, (res, problem) in enumerate(read_file(f), start=1):
                if n % _TICK == 0:
                    on_read(done, patients)
                if problem is None:
                    assert res is not None
                    key, problem = attribute(res, f.name)
                if problem is not None:
                    problems.add(problem)
                    if problem.owner not in ("", ANYONE):
                        bucket = handles[_bucket_of(problem.owner, buckets)]
                        bucket.write(f"{problem.owner}\t{lost_line(problem)}\n")
                    continue
                assert res is not None
                if key is None:
                    shared.append(res)
                    counts[f"shared:{res['resourceType']}"] += 1
                    continue
                patients += res["resourceType"] == "Patient"
                handles[_bucket_of(key, buckets)].write(f"{key}\t{canonical(res)}\n")
            done += f.stat().st_size
            on_read(done, patients)
    finally:
        for h in handles:
            h.close()
    counts["patients"] = patients
    return paths


_TICK = 5_000


def _merged(results: list[Path], owner: object) -> Iterator[Finding]:
    """The sorted result files merged; ``owner`` (their folder) lives as long as the stream."""

    def rows(p: Path) -> Iterator[Finding]:
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                yield Finding(*json.loads(line))

    yield from heapq.merge(*(rows(p) for p in results))
    del owner


def screen_local(
    folder: Path,
    as_of: dt.date,
    *,
    workers: int | None = None,
    spill_dir: Path | None = None,
    bucket_mb: float | None = None,
    progress: Progress | None = None,
) -> ScreenRun:
    """Screen the export in ``folder``; ``progress`` is told how far it got (``Progress``).

    ``bucket_mb``: input per bucket (default 16 MB); it bounds the memory a worker needs. There
    are at least ``_BUCKETS_PER_WORKER`` buckets per worker, so the assessment reports progress
    in steps of a few patients, whatever the size.
    """
    files, skipped = input_files(folder)
    total_bytes = sum(f.stat().st_size for f in files)
    per_bucket = int(bucket_mb * 1024 * 1024) if bucket_mb else _BUCKET_BYTES
    workers = workers or os.cpu_count() or 1
    buckets = min(_MAX_BUCKETS, max(total_bytes // per_bucket + 1, _BUCKETS_PER_WORKER * workers))
    remove_stale_spills(Path(spill_dir or tempfile.gettempdir()))
    tmpdir = tempfile.TemporaryDirectory(prefix=_spill_prefix(), dir=spill_dir)
    tmp = Path(tmpdir.name)
    problems = _Problems()
    for p in skipped:
        problems.add(p)
    counts: Counter[str] = Counter()
    shared: list[Any] = []

    def on_read(done: int, patients: int) -> None:
        if progress:
            progress("read", done, total_bytes, patients)

    try:
        paths = _spill(files, tmp, buckets, problems, counts, shared, on_read)
        found = counts.pop("patients")
        shared_path = tmp / "shared.ndjson"
        shared, conflicts = unique(sorted(canonical(r) for r in shared), ANYONE)
        for p in conflicts:
            problems.add(p)
        with shared_path.open("w", encoding="utf-8") as fh:
            for res in shared:
                fh.write(canonical(res) + "\n")
        del shared
        results = [tmp / f"result-{i:04d}.ndjson" for i in range(buckets)]
        loss = problems.loss()
        jobs = [
            (str(b), str(r), as_of.isoformat(), loss) for b, r in zip(paths, results, strict=True)
        ]
        population = Population()
        if progress:
            progress("assess", 0, found, 0)
        if workers == 1 or buckets == 1:
            _init(str(shared_path))
            outcomes: Iterator[tuple[int, list[Problem], tuple[Any, ...]]] = map(
                _assess_bucket, jobs
            )
            pool = None
        else:
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            pool = ctx.Pool(min(workers, buckets), initializer=_init, initargs=(str(shared_path),))
            outcomes = pool.imap(_assess_bucket, jobs)
        try:
            for _, probs, counted in outcomes:
                population.merge(Population.from_tuple(counted))
                for p in probs:
                    problems.add(p)
                if progress:
                    done = population.patients
                    progress("assess", done, max(found, done), done)
        except BaseException:
            if pool is not None:
                pool.terminate()  # stopped: the workers' remaining buckets are not wanted
            raise
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        for b in paths:
            b.unlink()
    except BaseException:
        tmpdir.cleanup()
        raise
    return ScreenRun(
        findings=_merged(results, tmpdir),
        problems=sorted(problems.kept),
        problems_total=problems.total,
        shared={
            k.removeprefix("shared:"): v
            for k, v in sorted(counts.items())
            if k.startswith("shared:")
        },
        files=len(files),
        input_bytes=total_bytes,
        population=population,
        cleanup=tmpdir.cleanup,
    )
