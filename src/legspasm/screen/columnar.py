"""The local engine's columnar first pass: DuckDB reads the export, Python assesses only the
patients who hold something the rules read.

1. **Scan.** DuckDB reads each NDJSON file (``read_json_objects``) and keeps, per line, its
   resource type and id, the patient it is about (the same key as ``core.patient_key`` for the
   usual ``Patient/<id>`` and ``urn:uuid:<id>`` references), whether the raw line of a type the
   mapping reads matches ``relevance.relevance_pattern(kb)``, and for Patient and
   MedicationRequest lines who the patient and order belong to. Lines it cannot key (shared
   resources, other reference forms) are kept whole for Python.
2. **Check.** A file DuckDB cannot read, or with a line that is not a JSON object, has no valid
   or known resource type, or that Python's JSON reader might refuse (``relevance.SUSPECT``,
   deep nesting), is read line by line by ``core.read_file`` instead, so each of its problems is
   reported with its file and line exactly as without the first pass, and its patients are all
   assessed.
3. **Choose.** Assessed: every patient with a matching line, every patient of a file read line
   by line or of a line Python keyed, every patient with two resources of one type and id (their
   copies are compared), and every key without its Patient resource (reported); every patient
   when the export lost lines whose patient is unknown (every one's findings are then marked).
4. **Fetch.** DuckDB reads the clean files again and hands over only the chosen patients' lines,
   which are assessed as without the first pass. Every other patient is counted as screened with
   no finding, and in the denominators of their clinic, clinician and prescribers.

The findings, problems and summary are the same as assessing every patient (tests run both).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..documents import finite
from ..fhir.attribution import PartyNames, party_of, patient_parties
from ..knowledge import Knowledge
from .core import is_resource_type
from .rates import Population
from .relevance import MAX_OPENERS, READ_TYPES, SUSPECT, SUSPECT_WORDS, relevance_pattern

if TYPE_CHECKING:
    import duckdb

__all__ = ["FirstPass", "is_ndjson"]

_PATHS = (
    "$.resourceType",
    "$.id",
    "$.subject.reference",
    "$.patient.reference",
    "$.beneficiary.reference",
    "$.managingOrganization",
    "$.generalPractitioner",
    "$.requester",
)

# v: json_extract(json, _PATHS), each a JSON text or NULL. The key is the patient's id for a
# Patient with a string id, else the first string reference of subject, patient, beneficiary
# when it reads Patient/<id> or urn:uuid:<id>; NULL otherwise (Python keys the line).
_MACROS = r"""
CREATE OR REPLACE MACRO ref_of(v) AS CASE
    WHEN left(v[3], 1) = '"' THEN v[3] ->> '$'
    WHEN left(v[4], 1) = '"' THEN v[4] ->> '$'
    WHEN left(v[5], 1) = '"' THEN v[5] ->> '$' END;
CREATE OR REPLACE MACRO key_of(v) AS CASE
    WHEN v[1] = '"Patient"' THEN
        CASE WHEN left(v[2], 1) = '"' AND v[2] <> '""' THEN v[2] ->> '$' END
    WHEN regexp_full_match(ref_of(v), 'Patient/[^/?]+') THEN substr(ref_of(v), 9)
    WHEN starts_with(ref_of(v), 'urn:uuid:') AND length(ref_of(v)) > 9
        THEN substr(ref_of(v), 10) END;
"""


_PATH_LIST = "[" + ", ".join("'" + p + "'" for p in _PATHS) + "]"


def _source(files: list[Path]) -> str:
    names = ", ".join(_sql_text(str(f)) for f in files)
    return f"read_json_objects([{names}], format = 'newline_delimited', filename = true)"


@contextmanager
def _polled(con: duckdb.DuckDBPyConnection, report: Callable[[float], None]) -> Iterator[None]:
    """Tell ``report`` how far (0 to 1) the query running on ``con`` got, every 0.2 s."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.2):
            try:
                done = con.query_progress()
            except Exception:
                return
            if done >= 0:
                report(min(done, 100.0) / 100)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def _stream(relation: Any, rows: int = 2048) -> Any:
    """A relation's result as Arrow batches, streamed (DuckDB 2 and 1 name it differently)."""
    if hasattr(relation, "to_arrow_reader"):
        return relation.to_arrow_reader(rows)
    return relation.fetch_record_batch(rows)


def is_ndjson(path: Path) -> bool:
    return path.name.lower().endswith((".ndjson", ".ndjson.gz"))


MEMORY_LIMIT = "256MB"
"""What DuckDB may hold in memory; beyond it, it works from the spill folder (the first pass's
memory does not grow with the export)."""


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class FirstPass:
    """The first pass over an export's NDJSON files (``scan``), then what to assess (``choose``),
    their lines (``fetch``) and the patients left out (``skipped``)."""

    kb: Knowledge
    tmp: Path
    threads: int
    con: duckdb.DuckDBPyConnection = field(init=False)
    clean: list[Path] = field(default_factory=list)  # files DuckDB reads
    python: list[Path] = field(default_factory=list)  # files read line by line

    def __post_init__(self) -> None:
        import duckdb

        # A database file in the spill folder, so the line table is not held in memory.
        self.con = duckdb.connect(str(self.tmp / "first-pass.duckdb"))
        c = self.con
        c.execute(f"SET threads = {max(1, self.threads)}")
        c.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        c.execute(f"SET temp_directory = {_sql_text(str(self.tmp / 'duckdb-spill'))}")
        c.execute("SET preserve_insertion_order = false")
        c.execute(_MACROS)
        c.execute(
            "CREATE MACRO hit(j) AS regexp_matches(j, $$" + relevance_pattern(self.kb) + "$$)"
        )
        words = " OR ".join(f"contains(j, {_sql_text(w)})" for w in SUSPECT_WORDS)
        c.execute(
            f"CREATE MACRO suspect(j) AS {words} OR regexp_matches(j, $$"
            + "|".join(SUSPECT)
            + "$$) OR ("
            f"strlen(j) >= {2 * MAX_OPENERS} AND strlen(j) - "
            f"strlen(replace(replace(j, '[', ''), '{{', '')) >= {MAX_OPENERS})"
        )
        read = ", ".join(_sql_text(t) for t in sorted(READ_TYPES))
        c.execute(
            f"CREATE MACRO domain(rt, j) AS CASE WHEN rt IN ({read}) THEN hit(j) ELSE false END"
        )
        c.execute(
            "CREATE TABLE line (file VARCHAR, rt VARCHAR, id VARCHAR, key VARCHAR, hit BOOLEAN,"
            " bad BOOLEAN, raw VARCHAR, mo VARCHAR, gp VARCHAR, req VARCHAR)"
        )

    def close(self) -> None:
        self.con.close()

    # -- 1 and 2: scan and check -----------------------------------------------------------------
    def scan(self, files: list[Path], on_read: Callable[[int, int], None]) -> None:
        """Read every file into the line table; ``on_read(bytes, patients)`` is told how far
        it got. Files that cannot be read cleanly go to ``python``."""
        import duckdb

        sizes = {f: f.stat().st_size for f in files}
        total = sum(sizes.values())
        try:
            with _polled(self.con, lambda done: on_read(int(done * total), 0)):
                self._insert(files)
            self.clean = list(files)
        except duckdb.Error:
            self.clean = []
            for f in files:  # one at a time, to tell which cannot be read
                try:
                    self._insert([f])
                    self.clean.append(f)
                except duckdb.Error:
                    self.python.append(f)
        ((patients,),) = self.con.execute(
            "SELECT count(*) FROM line WHERE rt = 'Patient'"
        ).fetchall()
        on_read(sum(sizes[f] for f in self.clean), int(patients))
        self._check()

    def _insert(self, files: list[Path]) -> None:
        if not files:
            return
        self.con.execute(
            f"""
            INSERT INTO line
            SELECT parse_filename(filename), rt, id, key, domain(rt, json),
                   left(json, 1) <> '{{' OR rt IS NULL OR suspect(json),
                   CASE WHEN key IS NULL THEN json END,
                   CASE WHEN rt = 'Patient' THEN v[6] END,
                   CASE WHEN rt = 'Patient' THEN v[7] END,
                   CASE WHEN rt = 'MedicationRequest' THEN v[8] END
            FROM (
                SELECT filename, json, v, key_of(v) AS key,
                       CASE WHEN left(v[1], 1) = '"' THEN v[1] ->> '$' END AS rt,
                       CASE WHEN left(v[2], 1) = '"' AND v[2] <> '""' THEN v[2] ->> '$' END AS id
                FROM (SELECT filename, json, json_extract(json, {_PATH_LIST}) AS v
                      FROM {_source(files)})
            )
            """
        )

    def _check(self) -> None:
        """Files with a line Python would read otherwise are read line by line instead."""
        types = [r[0] for r in self.con.execute("SELECT DISTINCT rt FROM line").fetchall()]
        unknown = [t for t in types if t is not None and not _valid_type(t)]
        broken = {
            r[0]
            for r in self.con.execute(
                "SELECT DISTINCT file FROM line WHERE bad OR list_contains(?::VARCHAR[], rt)",
                [unknown],
            ).fetchall()
        }
        if not broken:
            return
        self.con.execute(
            "DELETE FROM line WHERE file IN (SELECT unnest(?::VARCHAR[]))", [sorted(broken)]
        )
        self.python += [f for f in self.clean if f.name in broken]
        self.clean = [f for f in self.clean if f.name not in broken]

    def unkeyed(self) -> Iterator[tuple[str, str]]:
        """(file name, line) of every clean line DuckDB could not key: shared resources and
        lines whose patient Python must tell (or report)."""
        cur = self.con.execute("SELECT file, raw FROM line WHERE key IS NULL ORDER BY file")
        while batch := cur.fetchmany(2048):
            yield from batch

    # -- 3: choose -------------------------------------------------------------------------------
    def choose(self, python_keys: Iterable[str], everyone: bool) -> int:
        """Decide whom to assess: ``python_keys`` are the patients whose lines Python read; with
        ``everyone`` every patient is. Returns the patients with a Patient resource chosen."""
        c = self.con
        import pyarrow as pa

        python_key = pa.table({"key": pa.array(sorted(set(python_keys)), pa.string())})
        c.register("python_key_arrow", python_key)
        c.execute("CREATE TABLE python_key AS SELECT key FROM python_key_arrow")
        c.unregister("python_key_arrow")
        where = "TRUE" if everyone else "hit"
        c.execute(
            f"""
            CREATE TABLE assess AS
            SELECT key FROM line WHERE key IS NOT NULL AND {where}
            UNION SELECT key FROM python_key
            UNION SELECT key FROM line WHERE key IS NOT NULL AND id IS NOT NULL
                  GROUP BY key, rt, id HAVING count(*) > 1
            UNION SELECT key FROM line WHERE key IS NOT NULL
                  GROUP BY key HAVING count(*) FILTER (WHERE rt = 'Patient') = 0
            """
        )
        ((chosen,),) = c.execute(
            "SELECT count(*) FROM line WHERE rt = 'Patient' AND key IN (SELECT key FROM assess)"
        ).fetchall()
        c.execute("CHECKPOINT")  # the tables to the database file: out of memory's way
        return int(chosen)

    # -- 4: fetch and count ----------------------------------------------------------------------
    def fetch(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(key, resource) of every line of a chosen patient in the clean files, a file at a
        time (DuckDB's reading buffers stay those of one file)."""
        for f in self.clean:
            chosen = self.con.sql(
                f"""
                SELECT key, json FROM (
                    SELECT key_of(json_extract(json, {_PATH_LIST})) AS key, json
                    FROM {_source([f])}
                ) WHERE key IN (SELECT key FROM assess)
                """
            )
            for batch in _stream(chosen):
                keys, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                for key, text in zip(keys, texts, strict=True):
                    yield key, json.loads(text, parse_float=finite, parse_constant=finite)

    def skipped(self, names: PartyNames) -> Population:
        """The patients not assessed, counted per clinic, clinician and prescriber."""
        out = Population()
        rows = self.con.execute(
            """
            SELECT mo, gp, count(*) FROM line
            WHERE rt = 'Patient' AND key NOT IN (SELECT key FROM assess)
            GROUP BY ALL ORDER BY ALL
            """
        ).fetchall()
        for mo, gp, n in rows:
            patient = {
                "managingOrganization": None if mo is None else json.loads(mo),
                "generalPractitioner": None if gp is None else json.loads(gp),
            }
            clinic, clinician = patient_parties(patient, names)
            out.add_many(clinic, clinician, n)
        cur = self.con.execute(
            """
            SELECT DISTINCT key, req FROM line
            WHERE rt = 'MedicationRequest' AND req IS NOT NULL
              AND key NOT IN (SELECT key FROM assess)
            ORDER BY ALL
            """
        )
        current: str | None = None
        seen: set[str] = set()  # the current patient's prescribers (rows come by patient)
        while batch := cur.fetchmany(4096):
            for key, req in batch:
                if key != current:
                    current, seen = key, set()
                p = party_of(json.loads(req), names)
                out.name(p)
                if p.key and p.key not in seen:
                    seen.add(p.key)
                    out.add_prescriber(p)
        return out


def _valid_type(rt: str) -> bool:
    """As ``core.parse_line`` and ``core.read_file`` accept a resource type."""
    return bool(rt) and rt[0].isupper() and rt.isalnum() and is_resource_type(rt)
