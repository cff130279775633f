"""The Spark screening engine: the same reading and assessment as the local engine, on a cluster.

1. **First pass.** Spark SQL reads the NDJSON files and chooses the patients to assess, as the
   local engine's DuckDB pass does (``spark_columnar``); the files it leaves (ones Spark cannot
   read, or may read differently from Python), the folders of Bundles, and every file when the
   first pass is off, are read by Python.
2. **Read.** Those files are distributed, one file a task; each task streams its file through
   ``core.read_file`` and emits one record per line: a patient's resource (keyed by
   ``core.patient_key``, as canonical JSON), a resource that names no patient (shared reference
   data: Medication, Organization...) or a problem with its file and line. The lines the first
   pass could not key are attributed by Python the same way.
3. **Share.** The shared resources (few) are collected to the driver, sorted and broadcast; the
   problems are collected to the driver (at most ``MAX_PROBLEMS_KEPT``, the first in order, and
   the total counted).
4. **Assess.** The chosen patients' resources are grouped by patient id; each partition loads
   the knowledge base once (once per Python worker, which Spark reuses) and assesses every
   patient with ``core.screen_patient``: resources sorted by their canonical JSON, so the order
   lines arrive in cannot change a finding. A group without its Patient resource is a problem.
   The patients left out are counted per clinic, clinician and prescriber.
5. **Stream.** The findings are sorted (by Spark when there are many) in their natural order
   and streamed to the driver a partition at a time (``toLocalIterator``): the driver never
   holds a large table, and the rows are identical to the local engine's.

PySpark is an optional extra (``pip install 'legspasm[spark]'``) and is imported only here, only
when the engine runs. Spark needs Java 17 or later.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..documents import finite
from ..errors import InputError
from ..fhir.attribution import Party, PartyNames, patient_parties
from ..fhir.read import Entry
from ..knowledge import Knowledge, load_knowledge
from .columnar import is_ndjson
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
from .spark_columnar import SparkFirstPass, prescribers_of, smaller_name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["MAX_PROBLEMS_KEPT", "SparkRun", "spark_screen", "spark_session"]

"""Problems brought to the driver (the first in (file, line) order); all are counted."""

SHUFFLE_PARTITIONS = 8
"""``spark.sql.shuffle.partitions`` in a session this module starts (its own shuffles are sized
by the input and by the findings, below)."""

SOURCE = "export"
"""The source name assessments are made under (as the local engine)."""

NEEDS_EXTRA = "the Spark engine needs the 'spark' extra: pip install 'legspasm[spark]'"

FINDINGS_PER_PARTITION = 200_000
"""Findings per partition of the final sort: the most the driver holds at once (tens of MB)."""

INPUT_BYTES_PER_PARTITION = 64 * 1024 * 1024
"""Input per partition of the per-patient grouping (at least Spark's default parallelism)."""

# The records the stages emit, (kind, key, payload): a patient's resource or lost-line marker
# (patient id, text), a shared resource ("", json), a problem ("", (file, line, problem, owner)),
# a finding ("", row tuple), and a partition's tally ("", (findings, population)).
_OWN, _SHARED, _PROBLEM, _FINDING, _TALLY = range(5)


@dataclass
class SparkRun:
    """What a Spark screen produced. ``findings`` streams in order from the cluster: read it once,
    before ``close()``. Use as a context manager, or call ``close()``."""

    findings: Iterator[Finding]
    problems: list[Problem]  # sorted; at most MAX_PROBLEMS_KEPT
    problems_total: int
    population: Population  # patients screened, per clinic, clinician and prescriber
    shared: dict[str, int]  # resource type -> resources that name no patient
    files: int
    input_bytes: int
    assessed: int = 0  # patients assessed (the others hold nothing the rules read)
    _close: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Release the cached data and stop the SparkSession (when this run started it)."""
        while self._close:
            self._close.pop()()

    def __enter__(self) -> SparkRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- executor side -----------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _knowledge(kb_dir: str | None) -> Knowledge:
    """The knowledge base, loaded once per Python worker process (Spark reuses workers)."""
    return load_knowledge(Path(kb_dir) if kb_dir else None)


def _read_records(path: str) -> Iterator[tuple[int, str, Any]]:
    """One export file as records: (_OWN, patient id, json), (_SHARED, "", json) or
    (_PROBLEM, "", (file, line, problem, owner)), a problem that lost a known patient's line
    also as (_OWN, patient id, lost-line marker)."""
    for res, problem in read_file(Path(path)):
        key = None
        if problem is None:
            if res is None:
                continue
            key, problem = attribute(res, Path(path).name)
        yield from _record(res, key, problem)


def _record(res: Any, key: str | None, problem: Problem | None) -> Iterator[tuple[int, str, Any]]:
    """One read line as records (see ``_read_records``)."""
    if problem is not None:
        yield _PROBLEM, "", (problem.file, problem.line, problem.problem, problem.owner)
        if problem.owner not in ("", ANYONE):
            yield _OWN, problem.owner, lost_line(problem)
    elif key is None:
        yield _SHARED, "", canonical(res)
    else:
        yield _OWN, key, canonical(res)


def _assess_partition(
    groups: Iterable[tuple[str, Iterable[str]]],
    shared: Any,  # a Broadcast of the shared resources, parsed and sorted
    as_of: dt.date,
    kb_dir: str | None,
    lost_elsewhere: str,
) -> Iterator[tuple[int, str, Any]]:
    """Assess every patient group of one partition: its findings and problems, then its tally
    (findings, and the patients screened per clinic, clinician and prescriber)."""
    kb = _knowledge(kb_dir)
    shared_resources = shared.value
    names = PartyNames(Entry(r, "") for r in shared_resources)
    population = Population()
    findings = 0
    for pid, texts in groups:
        one = screen_patient(
            pid, list(texts), shared_resources, kb, as_of, SOURCE, lost_elsewhere, names
        )
        for p in one.problems:
            yield _PROBLEM, "", (p.file, p.line, p.problem, p.owner)
        if one.assessed:
            population.add(one.patient.clinic, one.patient.clinician, one.prescribers)
        findings += len(one.rows)
        for row in one.rows:
            yield _FINDING, "", row.as_tuple()
    yield _TALLY, "", (findings, population.as_tuple())


def _summarize(
    records: Iterable[tuple[int, str, Any]],
) -> Iterator[tuple[int, list[Any], int, tuple[Any, ...]]]:
    """One partition's problems (counted, the first MAX_PROBLEMS_KEPT kept) and tallies."""
    problems: list[Any] = []
    n_problems = findings = 0
    population = Population()
    for kind, _, payload in records:
        if kind == _PROBLEM:
            n_problems += 1
            problems.append(tuple(payload))
            if len(problems) >= 2 * MAX_PROBLEMS_KEPT:
                problems = heapq.nsmallest(MAX_PROBLEMS_KEPT, problems)
        elif kind == _TALLY:
            findings += payload[0]
            population.merge(Population.from_tuple(payload[1]))
    yield n_problems, heapq.nsmallest(MAX_PROBLEMS_KEPT, problems), findings, population.as_tuple()


def _keyed_records(lines: Iterable[tuple[str, str]]) -> Iterator[tuple[int, str, Any]]:
    """The records of lines the first pass could not key: Python tells whose each is."""
    for name, raw in lines:
        res = json.loads(raw, parse_float=finite, parse_constant=finite)
        yield from _record(res, *attribute(res, name))


def _without(sc: Any, first: SparkFirstPass, names: PartyNames) -> Population:
    """The patients the first pass left out, per clinic, clinician and prescriber."""
    out = Population()
    combos, orders = first.skipped(names)
    for mo, gp, n in combos:
        patient = {
            "managingOrganization": None if mo is None else json.loads(mo),
            "generalPractitioner": None if gp is None else json.loads(gp),
        }
        clinic, clinician = patient_parties(patient, names)
        out.add_many(clinic, clinician, n)
    names_bc = sc.broadcast(names)
    per_patient = orders.mapPartitions(lambda it: prescribers_of(it, names_bc.value)).reduceByKey(
        smaller_name
    )
    counted = (
        per_patient.map(lambda kv: (kv[0][1], (1, kv[1])))
        .reduceByKey(lambda a, b: (a[0] + b[0], smaller_name(a[1], b[1])))
        .collect()
    )
    names_bc.destroy()
    for key, (n, name) in sorted(counted):
        out.counts["prescriber"][key] += n
        out.name(Party(key, name) if name else Party(key, ""))
    return out


# --- driver side -------------------------------------------------------------------------------


def _import_pyspark() -> None:
    try:
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise InputError(NEEDS_EXTRA) from None


def spark_session(master: str = "local[2]") -> SparkSession:
    """A quiet SparkSession for screening (no UI, no progress bar, WARN logs, few shuffle
    partitions); its Python workers run this interpreter when ``master`` is local."""
    _import_pyspark()
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        # Workers must import legspasm: use this very interpreter (e.g. the venv's).
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    else:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder: Any = SparkSession.builder
    spark: SparkSession = (
        builder.master(master)
        .appName("legspasm screen")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", "WARN")
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    return spark


def spark_screen(
    folder: Path,
    as_of: dt.date,
    *,
    master: str = "local[2]",
    kb_dir: Path | None = None,
    session: SparkSession | None = None,
    first_pass: bool = True,
) -> SparkRun:
    """Screen the export in ``folder`` on Spark (``master``, e.g. ``local[2]``), or in ``session``
    when given (then ``master`` is not used and ``close()`` leaves the session running).
    ``first_pass``: choose in Spark SQL the patients to assess (``spark_columnar``), as the
    local engine does; False assesses every patient.

    InputError when PySpark is not installed; KnowledgeError (on the driver, before any job)
    when the knowledge base in ``kb_dir`` does not load.
    """
    _import_pyspark()
    from pyspark import StorageLevel
    from pyspark.sql import SparkSession

    kb = load_knowledge(kb_dir)  # fail here, clearly, rather than inside a task
    files, skipped = input_files(folder)
    input_bytes = sum(f.stat().st_size for f in files)

    closers: list[Any] = []
    if session is None:
        owned = SparkSession.getActiveSession() is None
        session = spark_session(master)
        if owned:
            closers.append(session.stop)
    spark = session
    run = SparkRun(iter(()), [], 0, Population(), {}, len(files), input_bytes, _close=closers)
    try:
        sc = spark.sparkContext
        level = StorageLevel.MEMORY_AND_DISK

        # 1. the first pass in Spark SQL; the files it leaves are read line by line (one task
        # each), as are the lines it cannot key; the shared resources go to every task
        first = None
        python = files
        if first_pass:
            first = SparkFirstPass(spark, [f for f in files if is_ndjson(f)], kb)
            closers.append(first.close)
            first.scan()
            python = [f for f in files if f not in first.clean]
        records = sc.parallelize([str(p) for p in python], max(1, len(python))).flatMap(
            _read_records
        )
        if first is not None:
            unkeyed = list(_keyed_records(first.unkeyed()))
            records = records.union(sc.parallelize(unkeyed, max(1, len(unkeyed) // 10_000)))
        records = records.persist(level)
        closers.append(records.unpersist)
        texts = sorted(records.filter(lambda r: r[0] == _SHARED).map(lambda r: r[2]).collect())
        run.shared = dict(
            sorted(Counter(str(json.loads(t)["resourceType"]) for t in texts).items())
        )
        shared, conflicts = unique(texts, ANYONE)
        shared_bc = sc.broadcast(shared)
        closers.append(shared_bc.destroy)
        names = PartyNames(Entry(r, "") for r in shared)
        del texts, shared

        # 2. what the export lost whose patient is unknown (every patient's findings say so)
        anyone = records.filter(lambda r: r[0] == _PROBLEM and r[2][3] == ANYONE).map(
            lambda r: tuple(r[2])
        )
        early = [p for p in skipped + conflicts if p.owner == ANYONE]
        first_lost = sorted(early + [Problem(*t) for t in anyone.takeOrdered(3)])[:3]
        lost = anyone.count() + len(early)
        lost_elsewhere = export_loss(lost, first_lost)

        own = records.filter(lambda r: r[0] == _OWN).map(lambda r: (r[1], r[2]))
        without = Population()
        if first is not None:
            # the patients to assess, their lines from the clean files, the others counted
            python_keys = own.map(lambda kv: (kv[0],)).distinct().toDF("key STRING")
            first.choose(python_keys, everyone=lost > 0)
            fetched = first.fetch().map(
                lambda r: (r[0], canonical(json.loads(r[1], parse_float=finite)))
            )
            own = own.union(fetched)
            without = _without(sc, first, names)

        # 3. group by patient and assess; bring the problems and the tallies to the driver
        groups = max(sc.defaultParallelism, -(-input_bytes // INPUT_BYTES_PER_PARTITION))
        kb_text = str(kb_dir) if kb_dir else None
        assessed = (
            own.groupByKey(groups)
            .mapPartitions(
                lambda g: _assess_partition(g, shared_bc, as_of, kb_text, lost_elsewhere)
            )
            .persist(level)
        )
        closers.append(assessed.unpersist)
        parts = (
            records.filter(lambda r: r[0] == _PROBLEM)
            .union(assessed.filter(lambda r: r[0] != _FINDING))
            .mapPartitions(_summarize)
            .collect()
        )
        for p in parts:
            run.population.merge(Population.from_tuple(p[3]))
        run.assessed = run.population.patients
        run.population.merge(without)
        findings = sum(p[2] for p in parts)
        run.problems_total = len(skipped) + len(conflicts) + sum(p[0] for p in parts)
        kept = heapq.nsmallest(MAX_PROBLEMS_KEPT, (t for p in parts for t in p[1]))
        found = skipped + conflicts + [Problem(*t) for t in kept]
        run.problems = sorted(found)[:MAX_PROBLEMS_KEPT]

        # 4. sort the findings and stream them to the driver, a partition at a time (few
        # findings: collected and sorted at once, without a sampling job and a shuffle)
        rows = assessed.filter(lambda r: r[0] == _FINDING).map(lambda r: tuple(r[2]))
        if findings <= FINDINGS_PER_PARTITION:
            run.findings = iter(sorted(Finding(*t) for t in rows.collect()))
        else:
            ordered = rows.sortBy(lambda t: t, numPartitions=-(-findings // FINDINGS_PER_PARTITION))
            run.findings = (Finding(*t) for t in ordered.toLocalIterator())
    except BaseException:
        run.close()
        raise
    return run
