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
import gc
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

from ..documents import finite
from ..fhir.attribution import PartyNames
from ..fhir.read import Entry
from ..knowledge import Knowledge, load_knowledge
from .columnar import FirstPass, is_ndjson
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
    assessed: int  # patients assessed (the others hold nothing the rules read)
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
    # What the worker keeps for its life (the knowledge, the shared reference data) leaves the
    # garbage collector's walks, as in the service (server.py): a full collection would otherwise
    # walk the whole knowledge base again every few hundred patients.
    gc.collect()
    gc.freeze()


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


class _Spill:
    """The bucket files a run groups its resources in by patient (a hash of the id), with the
    shared resources, the problems, and the patients seen (``keys``, when asked to keep them).
    """

    def __init__(
        self, tmp: Path, buckets: int, problems: _Problems, keep_keys: bool = False
    ) -> None:
        self.paths = [tmp / f"bucket-{i:04d}.tsv" for i in range(buckets)]
        self.handles: list[IO[str]] = [
            p.open("w", encoding="utf-8", buffering=1 << 16) for p in self.paths
        ]
        self.problems = problems
        self.shared: list[Any] = []
        self.counts: Counter[str] = Counter()
        self.patients = 0  # Patient resources spilled
        self.keys: set[str] | None = set() if keep_keys else None

    def _write(self, key: str, text: str) -> None:
        self.handles[_bucket_of(key, len(self.handles))].write(f"{key}\t{text}\n")
        if self.keys is not None:
            self.keys.add(key)

    def resource(self, res: Any, file: str) -> None:
        """A resource read from ``file``: into its patient's bucket, the shared resources, or
        the problems when its patient cannot be told."""
        key, problem = attribute(res, file)
        if problem is not None:
            self.problem(problem)
        elif key is None:
            self.shared.append(res)
            self.counts[res["resourceType"]] += 1
        else:
            self.keyed(key, res)

    def keyed(self, key: str, res: Any) -> None:
        self.patients += res.get("resourceType") == "Patient"
        self._write(key, canonical(res))

    def problem(self, p: Problem) -> None:
        """A problem; a line lost from a known patient travels with their resources."""
        self.problems.add(p)
        if p.owner not in ("", ANYONE):
            self._write(p.owner, lost_line(p))

    def read(self, files: list[Path], on_read: Callable[[Path, int], None]) -> None:
        """Stream ``files`` line by line; ``on_read(file, bytes)`` is told how far each got,
        every few thousand lines and at its end (with its size)."""
        for f in files:
            for n, (res, problem) in enumerate(read_file(f), start=1):
                if n % _TICK == 0:
                    on_read(f, 0)
                if problem is not None:
                    self.problem(problem)
                elif res is not None:
                    self.resource(res, f.name)
            on_read(f, f.stat().st_size)

    def close(self) -> None:
        for h in self.handles:
            h.close()


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
    first_pass: bool = True,
) -> ScreenRun:
    """Screen the export in ``folder``; ``progress`` is told how far it got (``Progress``).

    ``first_pass``: read the NDJSON files with DuckDB first and assess only the patients who
    hold something the rules read (``columnar``); False assesses every patient (the same
    output, slower).

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
    scanned = [0, 0]  # bytes and patients of the first pass
    read = 0  # bytes read line by line

    def report() -> None:
        if progress:
            progress("read", scanned[0] + read, total_bytes, scanned[1] + spill.patients)

    def on_read(f: Path, size: int) -> None:
        nonlocal read
        read += size
        report()

    def on_scan(done: int, patients: int) -> None:
        scanned[:] = [done, max(patients, scanned[1])]
        report()

    first = FirstPass(load_knowledge(), tmp, workers) if first_pass else None
    spill = _Spill(tmp, buckets, problems, keep_keys=first is not None)
    try:
        chosen = 0
        without = Population()
        try:
            if first is not None:
                first.scan([f for f in files if is_ndjson(f)], on_scan)
                python = [f for f in files if not is_ndjson(f) or f in first.python]
                spill.read(python, on_read)
                for name, raw in first.unkeyed():
                    spill.resource(json.loads(raw, parse_float=finite, parse_constant=finite), name)
                assert spill.keys is not None
                chosen = first.choose(spill.keys, everyone=problems.anyone > 0)
                chosen += spill.patients  # the Patient resources Python read
                for key, res in first.fetch():
                    spill.keyed(key, res)
            else:
                spill.read(files, on_read)
                chosen = spill.patients
        finally:
            spill.close()
        found = chosen
        counts = spill.counts
        paths = spill.paths
        shared_path = tmp / "shared.ndjson"
        shared, conflicts = unique(sorted(canonical(r) for r in spill.shared), ANYONE)
        spill.shared = []
        for p in conflicts:
            problems.add(p)
        with shared_path.open("w", encoding="utf-8") as fh:
            for one in shared:
                fh.write(canonical(one) + "\n")
        if first is not None:
            without = first.skipped(PartyNames(Entry(r, "") for r in shared))
            first.close()
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
        population.merge(without)
    except BaseException:
        if first is not None:
            first.close()
        tmpdir.cleanup()
        raise
    return ScreenRun(
        findings=_merged(results, tmpdir),
        problems=sorted(problems.kept),
        problems_total=problems.total,
        shared=dict(sorted(counts.items())),
        assessed=population.patients - without.patients,
        files=len(files),
        input_bytes=total_bytes,
        population=population,
        cleanup=tmpdir.cleanup,
    )
