"""The Spark engine's columnar first pass, in Spark SQL: the same choice as the local engine's
(``columnar``), made on the cluster.

Spark reads the NDJSON files as text and, per line, parses the few elements the choice needs
(``from_json``: resource type, id, the patient references, who the patient and an order belong
to) and keys the line to its patient (``Patient/<id>``, ``urn:uuid:<id>``). For a line of a type
the mapping reads it takes the values of its codes, texts and displays
(``relevance.STRINGS``); each distinct value is judged once, in Python, by the mapping's own
lookups (``relevance.relevant_value``). A line holds something the rules read when one of its
values does, or it is an intake QuestionnaireResponse, names its medicine by reference, or holds
a ``\\u`` escape (a member name the extraction might not see). Spark's JSON reader is more
lenient than Python's (a second value on a line, single quotes, NaN...): a file with a line it
might read differently, or that it cannot read, is read line by line by ``core.read_file`` as
without the first pass. Lines it cannot key go to Python whole. Only the chosen patients' lines
are handed to Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ..fhir.attribution import PartyNames, party_of
from ..knowledge import Knowledge
from .columnar import _valid_type
from .relevance import MAX_OPENERS, READ_TYPES, STRINGS, SUSPECT, SUSPECT_WORDS, relevant_value

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkFirstPass", "file_name", "prescribers_of", "smaller_name"]

_LENIENT = (
    r"\}\s*\{",  # a second value after the first (read up to the first; Python refuses)
    r"[:,\[{]\s*'",  # a single-quoted name or value
)
"""What Spark's ``from_json`` reads and Python's ``json`` does not (besides
``relevance.SUSPECT``; a line that does not end with its object, or holds a byte that was not
UTF-8, is checked apart). Not checked: stray closing brackets after a line's object (Spark reads
up to the object's end), a corruption no export this project knows has shown."""

_SCHEMA = (
    "resourceType STRING, id STRING, subject STRUCT<reference: STRING>,"
    " patient STRUCT<reference: STRING>, beneficiary STRUCT<reference: STRING>,"
    " managingOrganization STRING, generalPractitioner STRING, requester STRING"
)


def file_name(uri: str) -> str:
    """The name of the file Spark's ``input_file_name()`` gives as a URI."""
    return Path(unquote(urlparse(uri).path)).name


def _count(col: Column, chars: str) -> Column:
    """How many of ``chars`` ``col`` holds."""
    from pyspark.sql import functions as F

    return F.regexp_count(col, F.lit("[" + "".join("\\" + c for c in chars) + "]"))


class SparkFirstPass:
    """The lines of an export's NDJSON files as Spark sees them, the files Python must read, and
    (after ``choose``) the chosen patients' lines and the others' denominators."""

    def __init__(self, spark: SparkSession, files: list[Path], kb: Knowledge) -> None:
        self.spark = spark
        self.kb = kb
        self.files = files
        self.clean: list[Path] = []
        self.python: list[Path] = []
        self.assess: DataFrame | None = None
        self._keep: list[Any] = []  # what to unpersist

    def _lines(self, files: list[Path]) -> DataFrame:
        from pyspark.sql import functions as F

        text = F.col("value")
        p = F.from_json(text, _SCHEMA, {"mode": "PERMISSIVE"})
        df = self.spark.read.text([str(f) for f in files]).select(
            F.input_file_name().alias("uri"), text.alias("value"), p.alias("p")
        )
        rt, rid = F.col("p.resourceType"), F.col("p.id")
        ref = F.coalesce(
            F.col("p.subject.reference"),
            F.col("p.patient.reference"),
            F.col("p.beneficiary.reference"),
        )
        # a string id (a number would read as text too): "id" then a quote, and the id in quotes
        literal_id = text.rlike(r'"id"\s*:\s*"') & (
            F.instr(text, F.concat(F.lit('"'), rid, F.lit('"'))) > 0
        )
        key = (
            F.when(rt == "Patient", F.when((rid != "") & literal_id, rid))
            .when(ref.rlike("^Patient/[^/?]+$"), F.substring(ref, 9, 1 << 20))
            .when(ref.startswith("urn:uuid:") & (F.length(ref) > 9), F.substring(ref, 10, 1 << 20))
        )
        suspect = (
            rt.isNull()
            | ~text.startswith("{")
            | ~F.rtrim(text).endswith("}")
            | (F.instr(text, '"resourceType"') == 0)
            | text.rlike("\\x{FFFD}")  # a byte that was not UTF-8 (read as U+FFFD by Java)
            | ((F.length(text) >= 2 * MAX_OPENERS) & (_count(text, "{[") >= MAX_OPENERS))
        )
        for w in SUSPECT_WORDS:
            suspect = suspect | (F.instr(text, w) > 0)
        for pattern in (*SUSPECT, *_LENIENT):
            suspect = suspect | text.rlike(pattern)  # one at a time: faster in Java than one
        read = rt.isin(*sorted(READ_TYPES))
        strings = F.when(read, F.regexp_extract_all(text, F.lit(STRINGS), F.lit(1)))
        always = read & (
            (rt == "QuestionnaireResponse")
            | (F.instr(text, '"medicationReference"') > 0)
            | (F.instr(text, "\\u") > 0)
        )
        return df.select(
            "uri",
            "value",
            rt.alias("rt"),
            F.when(rid != "", rid).alias("id"),
            key.alias("key"),
            strings.alias("strings"),
            F.coalesce(always, F.lit(False)).alias("always"),
            F.coalesce(suspect, F.lit(True)).alias("bad"),
            F.when(rt == "Patient", F.col("p.managingOrganization")).alias("mo"),
            F.when(rt == "Patient", F.col("p.generalPractitioner")).alias("gp"),
            F.when(rt == "MedicationRequest", F.col("p.requester")).alias("req"),
        )

    # -- read and check --------------------------------------------------------------------------
    def scan(self) -> None:
        """Read the files once (kept for the choice); those Spark cannot read or may read
        differently go to ``python``."""
        files = list(self.files)
        if not files:
            return
        try:
            broken = self._read(files)
        except Exception:  # e.g. a gzip file that ends early: Python reports how far it got
            self.close()
            self.python += [f for f in files if f.name.lower().endswith(".gz")]
            files = [f for f in files if not f.name.lower().endswith(".gz")]
            broken = self._read(files) if files else set()
        self.python += [f for f in files if f.name in broken]
        self.clean = [f for f in files if f.name not in broken]

    def _read(self, files: list[Path]) -> set[str]:
        """Read ``files`` into ``slim`` (the columns the choice needs); the names of the files
        with a line Python must read instead."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        lines = (
            self._lines(files)
            .select(
                "uri",
                "rt",
                "id",
                "key",
                "strings",
                "always",
                "bad",
                F.when(F.col("key").isNull(), F.col("value")).alias("raw"),
                "mo",
                "gp",
                "req",
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        self._keep.append(lines)
        per_file = lines.groupBy("uri").agg(
            F.max(F.col("bad").cast("int")).alias("bad"), F.collect_set("rt").alias("types")
        )
        broken = {
            r["uri"]
            for r in per_file.collect()
            if r["bad"] or not all(_valid_type(t) for t in r["types"])
        }
        slim = lines.filter(~F.col("uri").isin(*sorted(broken))) if broken else lines
        # each distinct code, text and display once, judged in Python by the mapping's lookups
        values = slim.select(F.explode("strings").alias("v")).distinct().collect()
        known = sorted(r["v"] for r in values if relevant_value(self.kb, r["v"]))
        found = F.arrays_overlap(F.col("strings"), F.array(*(F.lit(v) for v in known)))
        hit = F.col("always") | (F.coalesce(found, F.lit(False)) if known else F.lit(False))
        self.slim = slim.withColumn("hit", hit)
        return {file_name(u) for u in broken}

    def unkeyed(self) -> Iterator[tuple[str, str]]:
        """(file name, line) of every clean line Spark could not key."""
        if not self.clean:
            return iter(())
        rows = self.slim.filter("key IS NULL").select("uri", "raw").toLocalIterator()
        return ((file_name(r["uri"]), r["raw"]) for r in rows)

    # -- choose ----------------------------------------------------------------------------------
    def choose(self, python_keys: Any, everyone: bool) -> None:
        """Decide whom to assess. ``python_keys``: a DataFrame (``key``) of the patients whose
        lines Python read; with ``everyone`` every patient is."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        if not self.clean:
            self.assess = python_keys
            return
        keyed = self.slim.filter("key IS NOT NULL")
        chosen = keyed.filter("hit") if not everyone else keyed
        dups = keyed.filter("id IS NOT NULL").groupBy("key", "rt", "id").count().filter("count > 1")
        ghosts = (
            keyed.groupBy("key")
            .agg(F.sum((F.col("rt") == "Patient").cast("int")).alias("n"))
            .filter("n = 0")
        )
        assess = (
            chosen.select("key")
            .union(python_keys.select("key"))
            .union(dups.select("key"))
            .union(ghosts.select("key"))
            .distinct()
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        self._keep.append(assess)
        self.assess = assess

    def fetch(self) -> Any:
        """An RDD of (key, line) of the chosen patients' lines in the clean files."""
        from pyspark.sql import functions as F

        if not self.clean or self.assess is None:
            return self.spark.sparkContext.emptyRDD()
        lines = self._lines(self.clean).filter(F.col("key").isNotNull())
        return lines.join(F.broadcast(self.assess), "key", "left_semi").select("key", "value").rdd

    def skipped(self, names: PartyNames) -> tuple[list[tuple[str | None, str | None, int]], Any]:
        """The patients not assessed: (managingOrganization, generalPractitioner, patients) and
        an RDD of (patient key, requester) of their orders, distinct."""
        if not self.clean or self.assess is None:
            return [], self.spark.sparkContext.emptyRDD()
        out = self.slim.filter("key IS NOT NULL").join(self.assess, "key", "left_anti")
        combos = [
            (r["mo"], r["gp"], int(r["count"]))
            for r in out.filter("rt = 'Patient'").groupBy("mo", "gp").count().collect()
        ]
        orders = (
            out.filter("rt = 'MedicationRequest' AND req IS NOT NULL")
            .select("key", "req")
            .distinct()
            .rdd.map(lambda r: (r["key"], r["req"]))
        )
        return combos, orders

    def close(self) -> None:
        while self._keep:
            self._keep.pop().unpersist()


def prescribers_of(orders: Iterable[tuple[str, str]], names: PartyNames) -> Iterator[Any]:
    """((patient key, prescriber key), prescriber name) of each order."""
    import json

    for key, req in orders:
        p = party_of(json.loads(req), names)
        if p.key:
            yield (key, p.key), p.name


def smaller_name(a: str, b: str) -> str:
    """The smaller of two names, an empty one aside (as ``Population.name`` keeps)."""
    return min(a, b) if a and b else (a or b)
