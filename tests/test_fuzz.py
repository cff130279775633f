"""Property-based fuzzing of every reader and surface (issue 13): whatever arrives, the answer is
a result or an error that names its place, never a crash.

- case files and FHIR files through ``legspasm assess``: exit 0 or 2 (never 4, never a traceback),
  and an error names the file;
- NDJSON lines through the screen's reader and per-patient assessment: every line is a resource
  or a problem with its file and line, and assessment never raises;
- web uploads and CDS Hooks requests over HTTP to the real service on a port: never a 5xx; a 4xx
  from the CDS service is an OperationOutcome whose issue says what is wrong.

Inputs are valid documents mutated structurally (a value replaced by hostile JSON: deep nesting,
long integers, non-finite numbers, impossible dates, wrong types) and byte-wise (flips, cuts,
insertions, invalid UTF-8). The budget is ``FUZZ_EXAMPLES`` per surface (a bounded
default with a fixed seed in the suite; ``make fuzz`` runs 10,000 with a random seed).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from legspasm import Knowledge
from legspasm.cli import app as cli
from legspasm.screen.core import attribute, read_file, screen_patient
from live_server import serve

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
RANDOM = os.environ.get("LEGSPASM_FUZZ_RANDOM") == "1"
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
# A failing input can be hundreds of kB; hypothesis warns before printing it, and with warnings
# as errors that warning would hide the failure it reports.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
AS_OF = dt.date(2026, 11, 21)
TALLY: Counter[str] = Counter()  # surface:outcome -> inputs (written by `make fuzz`)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    if out := os.environ.get("LEGSPASM_FUZZ_REPORT"):
        Path(out).write_text(json.dumps(dict(sorted(TALLY.items())), indent=2) + "\n")


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "src" / "legspasm" / "examples"

# --- inputs ------------------------------------------------------------------------------------

HOSTILE: list[Any] = [
    None,
    True,
    0,
    -1,
    10**5000 // 10**4000,  # a 1,001-digit integer (still parses)
    1e308,
    "",
    "2026-13-45",
    "9999-99-99T99:99:99Z",
    "x" * 5000,
    "\u0000\ud7ff\ufffe",
    [],
    {},
    {"resourceType": "Patient"},
    {"reference": "Patient/../../etc/passwd"},
    {"value": "NaN", "unit": "ng/mL"},
]
RAW_HOSTILE = [
    b"[" * 5000 + b"]" * 5000,
    b"9" * 5000,
    b"1e999",
    b"NaN",
    b"-Infinity",
    b'"\\ud800"',
    b"\xff\xfe",
    b"\xc3(",
    b'{"a":1,"a":2}',
    b"&a [*a, *a, *a, *a]",
    b"!!python/object:os.system",
    b"2026-13-45",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(HOSTILE),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*path, i))


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one to three of its values replaced, or keys deleted."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            doc = copy.deepcopy(draw(json_values))
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(json_values))  # never a shared object
    return doc


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with bytes flipped, cut or inserted (hostile snippets among them)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, len(out) - 1)))
        how = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if how == "flip" and out:
            out[at] = draw(st.integers(0, 255))
        elif how == "cut":
            del out[at : at + draw(st.integers(1, 64))]
        elif how == "insert":
            out[at:at] = draw(st.sampled_from(RAW_HOSTILE) | st.binary(max_size=16))
        else:
            del out[at:]
    return bytes(out)


def _document(path: Path) -> Any:
    import yaml

    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


CASE_FILES = sorted(EXAMPLES_DIR.glob("*.yaml"))
FHIR_FILE = EXAMPLES_DIR / "rls-record.fhir.json"
HOOKS = {p.stem: json.loads(p.read_text()) for p in sorted((EXAMPLES_DIR / "cds-hooks").glob("*"))}


def _as_text(doc: Any, suffix: str) -> bytes:
    if suffix == ".json":
        return json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")


@st.composite
def case_inputs(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes): a case file or a FHIR Bundle, mutated in structure and/or in bytes."""
    source = draw(st.sampled_from([*CASE_FILES, FHIR_FILE]))
    suffix = draw(st.sampled_from([".json", ".yaml"])) if source.suffix == ".yaml" else ".json"
    doc = draw(mutated(_document(source))) if draw(st.booleans()) else _document(source)
    data = _as_text(doc, suffix)
    if draw(st.booleans()):
        data = draw(damaged(data))
    return suffix, data


# --- case files and FHIR files through the CLI -------------------------------------------------


def _check_cli(tmp_path: Path, suffix: str, data: bytes) -> None:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    result = CliRunner().invoke(cli, ["assess", str(path), "--as-of", AS_OF.isoformat()])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    TALLY[f"assess:exit {result.exit_code}"] += 1
    assert result.exit_code in (0, 2), (result.exit_code, result.output[-2000:])
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "error:" in result.output
        assert path.name in result.output or "input" in result.output, result.output[-500:]


@FUZZ
@given(item=case_inputs())
def test_assess_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, item: tuple[str, bytes]
) -> None:
    _check_cli(tmp_path_factory.mktemp("fuzz"), *item)


# --- NDJSON lines through the screen -----------------------------------------------------------


def _resources() -> list[dict[str, Any]]:
    bundle = json.loads(FHIR_FILE.read_text())
    return [e["resource"] for e in bundle["entry"]]


RESOURCES = _resources()


@st.composite
def ndjson_files(draw: st.DrawFn) -> bytes:
    lines = []
    for res in RESOURCES:
        doc = draw(mutated(res)) if draw(st.integers(0, 3)) == 0 else res
        line = json.dumps(doc, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 5)) == 0:
            line = draw(damaged(line))
        lines.append(line.replace(b"\n", b" "))
    return b"\n".join(lines) + b"\n"


@FUZZ
@given(data=ndjson_files(), gz=st.booleans())
def test_screen_reads_any_ndjson_line_by_line(
    tmp_path_factory: pytest.TempPathFactory, kb: Knowledge, data: bytes, gz: bool
) -> None:
    import gzip

    folder = tmp_path_factory.mktemp("ndjson")
    path = folder / ("export.ndjson.gz" if gz else "export.ndjson")
    path.write_bytes(gzip.compress(data) if gz else data)
    lines = data.count(b"\n")
    groups: dict[str, list[str]] = {}
    shared: list[Any] = []
    seen = 0
    TALLY["screen:files"] += 1
    for res, problem in read_file(path):
        if problem is not None:
            TALLY["screen:problem lines"] += 1
            assert problem.file == path.name
            assert 0 <= problem.line <= lines + 1
            assert problem.problem
            seen += 1
            continue
        assert res is not None
        seen += 1
        TALLY["screen:resources"] += 1
        key, unattributed = attribute(res, path.name)
        if unattributed is not None:
            continue
        if key is None:
            shared.append(res)
        else:
            groups.setdefault(key, []).append(json.dumps(res, sort_keys=True))
    blank = sum(1 for line in data.split(b"\n")[:-1] if not line.strip())
    assert seen + blank >= lines - 1  # each line a resource or a problem (a log head aside)
    for pid, texts in groups.items():
        one = screen_patient(pid, texts, shared, kb, AS_OF, "fuzz", "")
        TALLY["screen:patients assessed" if one.assessed else "screen:patients not assessed"] += 1
        assert one.assessed or any(r.kind == "data_incomplete" for r in one.rows)


# --- the service over HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from legspasm.server import create_app
    from legspasm.settings import Settings

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'audit.db'}"
    with (
        serve(create_app(Settings(dev=True, database_url=url, as_of=AS_OF))) as base,
        httpx.Client(base_url=base, timeout=60, trust_env=False) as client,
    ):
        client.headers["Origin"] = base
        yield client


SERVICE_OF = {
    "patient-view-rls": "legspasm-patient-view",
    "order-select-quinine-cramps": "legspasm-order-select",
    "order-sign-pramipexole-rls": "legspasm-order-sign",
}


@st.composite
def hook_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(HOOKS)))
    doc = draw(mutated(HOOKS[name]))
    body = json.dumps(doc, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        body = draw(damaged(body))
    return SERVICE_OF[name], body


@FUZZ
@given(item=hook_bodies())
def test_cds_hooks_never_5xx(service: httpx.Client, item: tuple[str, bytes]) -> None:
    sid, body = item
    r = service.post(
        f"/cds-services/{sid}", content=body, headers={"Content-Type": "application/json"}
    )
    TALLY[f"cds-hooks:HTTP {r.status_code}"] += 1
    assert r.status_code < 500, (r.status_code, r.text[:1000])
    if r.status_code >= 400:
        out = r.json()
        assert out["resourceType"] == "OperationOutcome"
        assert out["issue"][0]["diagnostics"]


@FUZZ
@given(item=case_inputs(), name=st.sampled_from(["case.yaml", "case.json", "x.ndjson", "x.txt"]))
def test_upload_never_5xx(service: httpx.Client, item: tuple[str, bytes], name: str) -> None:
    suffix, data = item
    filename = name if name.endswith((".ndjson", ".txt")) else f"case{suffix}"
    r = service.post("/upload", files={"file": (filename, data, "application/octet-stream")})
    TALLY[f"upload:HTTP {r.status_code}"] += 1
    assert r.status_code < 500, (r.status_code, r.text[:1000])
    assert r.status_code in (200, 303, 400, 413, 422), r.status_code
