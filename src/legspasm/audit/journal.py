"""The audit journal: invocations acknowledged from a local file, moved to the database later.

A request appends its :class:`Invocation` to this process's journal (one JSON line, written
with one ``os.write`` and ``fdatasync``'ed) before it answers, so what was answered survives the
process being killed. Concurrent requests share an ``fdatasync`` (group commit): one of them
syncs every line written before it starts, the others wait for it, and a request returns only
after a sync that began after its own line was written. A background thread moves the journal
into the :class:`AuditStore` in batches, one transaction each, and records how far it got in a
sidecar file. Replaying is harmless: every record has a unique id and the store skips ids it
holds (:meth:`AuditStore.record_invocations`), so a crash between the database commit and the
offset write duplicates nothing.

Files, in one folder per database (``journal_dir``)::

    audit-<pid>-<token>.jsonl    one per process, appended only by it (never interleaved)
    audit-<pid>-<token>.offset   bytes of it already in the database
    database                     the database these journals belong to (password masked)

A process holds an exclusive ``flock`` on its own journal while it lives. A journal whose lock
can be taken belongs to a process that is gone (killed, crashed, or stopped while the database
was down): it is adopted, drained and deleted, at start-up before serving and every few seconds
after. A last line without its newline was being written when the process died, so it was
never acknowledged: it is ignored. When its own journal is drained and large, a process empties
it (the offset 0 is made durable first, so a crash in between only replays). On a clean stop
(the app's lifespan, SIGTERM) everything is drained and the file removed.

Reads through the store in this process first drain the journal
(:meth:`AuditStore.add_read_barrier`), so a page that reads the invocation a request just
made finds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ..errors import StoreError
from .records import CardRecord, Invocation
from .shown import RecentCards
from .store import AuditStore, RawJSON

__all__ = ["Journal", "decode", "default_directory", "encode", "open_journal", "recover"]

log = logging.getLogger("legspasm.audit.journal")

SUFFIX = ".jsonl"
BATCH = 200  # records per database transaction
INTERVAL_S = 0.1  # how often the background thread looks for new records
RESCAN_S = 10.0  # how often it looks for journals of processes that are gone
ROTATE_BYTES = 8 * 1024 * 1024  # a drained journal larger than this is emptied
_DATABASE = "database"


# -- records as lines -----------------------------------------------------------------------


def _json(value: Any, what: str) -> str:
    if isinstance(value, RawJSON):  # e.g. ``Assessment.model_dump_json()``
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        # e.g. a date in the assessment: pass model_dump(mode="json")
        raise StoreError(f"{what}: not JSON: {exc}") from None


def encode(inv: Invocation) -> bytes:
    """One invocation as one line: its fields as a JSON object, then its assessment and case
    as JSON, separated by tabs (JSON text never holds a raw tab or newline), so that the
    drain stores the large parts without parsing them."""
    if inv.received_at.tzinfo is None or inv.received_at.utcoffset() is None:
        raise StoreError(
            f"invocation {inv.id}: received_at must be timezone-aware, "
            f"got {inv.received_at.isoformat()}"
        )
    head = {
        "id": inv.id,
        "received_at": inv.received_at.astimezone(dt.UTC).isoformat(),
        "service_id": inv.service_id,
        "hook": inv.hook,
        "hook_instance": inv.hook_instance,
        "knowledge_version": inv.knowledge_version,
        "patient_id": inv.patient_id,
        "user_id": inv.user_id,
        "fhir_server": inv.fhir_server,
        "status_code": inv.status_code,
        "outcome": inv.outcome,
        "latency_ms": inv.latency_ms,
        "cards": [[c.uuid, c.rule, c.indicator, c.summary] for c in inv.cards],
        "as_of": None if inv.as_of is None else inv.as_of.isoformat(),
        "error": inv.error,
        "label": inv.label,
    }
    what = f"invocation {inv.id}"
    parts = (_json(head, what), _json(inv.assessment, what), _json(inv.case, what))
    return "\t".join(parts).encode("utf-8") + b"\n"


def _decode(line: bytes, raw: bool) -> Invocation:
    head_text, assessment_text, case_text = line.decode("utf-8").split("\t")
    d = json.loads(head_text)

    def big(text: str) -> Any:
        if text == "null":
            return None
        return RawJSON(text) if raw else json.loads(text)

    return Invocation(
        id=d["id"],
        received_at=dt.datetime.fromisoformat(d["received_at"]),
        service_id=d["service_id"],
        hook=d["hook"],
        hook_instance=d["hook_instance"],
        knowledge_version=d["knowledge_version"],
        patient_id=d["patient_id"],
        user_id=d["user_id"],
        fhir_server=d["fhir_server"],
        status_code=d["status_code"],
        outcome=d["outcome"],
        latency_ms=d["latency_ms"],
        cards=tuple(CardRecord(*c) for c in d["cards"]),
        assessment=big(assessment_text),
        as_of=None if d["as_of"] is None else dt.date.fromisoformat(d["as_of"]),
        error=d["error"],
        case=big(case_text),
        label=d["label"],
    )


def decode(line: bytes) -> Invocation:
    """The invocation of one journal line (raises ValueError, KeyError or TypeError)."""
    return _decode(line, raw=False)


def default_directory(store_url: str) -> Path | None:
    """Where the journal of the database at ``store_url`` (masked) goes by default: beside a
    SQLite file (``<file>.journal``); for PostgreSQL, ``legspasm-journal/<db>-<hash>`` in the
    working directory. None for an in-memory SQLite database (nothing of it survives anyway)."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        db = url.database
        if db in (None, "", ":memory:") or url.query.get("mode") == "memory":
            return None
        return Path(str(db).removeprefix("file:").split("?", 1)[0] + ".journal")
    digest = hashlib.sha256(store_url.encode()).hexdigest()[:12]
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(url.database or "db"))
    return Path("legspasm-journal") / f"{name}-{digest}"


def open_journal(
    store: AuditStore, directory: Path | None = None, interval_s: float = INTERVAL_S
) -> Journal | None:
    """This process's journal for ``store`` in ``directory`` (default: :func:`default_directory`),
    with the journals of processes that are gone drained; None for an in-memory database."""
    where = directory if directory is not None else default_directory(store.url)
    return None if where is None else Journal.open(where, store, interval_s=interval_s)


# -- the journal files ----------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Source:
    """One journal file being drained: this process's own, or one it adopted."""

    path: Path
    fd: int  # holds the flock
    offset: int  # bytes already in the database (complete lines only)
    own: bool

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".offset")

    def read_offset(self) -> int:
        try:
            return max(0, int(self.sidecar.read_text().strip() or 0))
        except (OSError, ValueError):
            return 0  # unreadable: replay from the start (idempotent)

    def write_offset(self, offset: int, *, durable: bool = False) -> None:
        tmp = self.sidecar.with_suffix(".offset.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{offset}\n".encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.sidecar)
        if durable:
            _fsync_dir(self.path.parent)
        self.offset = offset

    def remove(self) -> None:
        for p in (self.sidecar, self.path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        os.close(self.fd)


def _adopt(path: Path) -> _Source | None:
    """The journal at ``path`` when no living process holds it (its lock is taken here)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if os.fstat(fd).st_nlink == 0:  # drained and deleted by another process meanwhile
        os.close(fd)
        return None
    src = _Source(path, fd, 0, own=False)
    src.offset = src.read_offset()
    if src.offset > os.fstat(fd).st_size:
        src.offset = 0
    return src


class Journal:
    """This process's audit journal in ``directory`` for ``store``. Open with :meth:`open`;
    :meth:`start` the background drain (the app's lifespan), :meth:`close` on the way out."""

    def __init__(
        self,
        directory: Path,
        store: AuditStore,
        *,
        batch: int = BATCH,
        interval_s: float = INTERVAL_S,
        rotate_bytes: int = ROTATE_BYTES,
    ) -> None:
        self.directory = directory
        self.store = store
        self.batch = batch
        self.interval_s = interval_s
        self.rotate_bytes = rotate_bytes
        self._write_lock = threading.Lock()  # appends, and emptying the file
        # group commit: bytes ever written (never reset, unlike the file) and how many of them
        # are known durable; one fdatasync at a time, the others wait for it
        self._written = 0
        self._synced = 0
        self._sync_failed = 0  # lines up to here were in an fdatasync that failed
        self._syncing = False
        self._sync_done = threading.Condition(threading.Lock())
        self._recent = RecentCards()  # the last records with cards, for rules_shown
        self._drain_lock = threading.Lock()  # one drain at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._adopted: list[_Source] = []
        name = f"audit-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        path = directory / name
        # Locked before it has a journal's name: another process starting in the same folder
        # (a worker) must never take a new journal for the journal of a process that is gone.
        new = directory / f".{name}.new"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(new, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(new, path)
        self._own = _Source(path, fd, 0, own=True)
        self._size = 0  # bytes of complete lines written to the own journal
        _fsync_dir(directory)

    @classmethod
    def open(cls, directory: Path, store: AuditStore, **kw: Any) -> Journal:
        """Create this process's journal in ``directory`` (created if missing), drain every
        journal left by a process that is gone into ``store``, and make ``store``'s reads
        drain this journal first. Raises StoreError when the folder is unusable or belongs to
        another database while holding records."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _claim_directory(directory, store.url)
            journal = cls(directory, store, **kw)
        except OSError as exc:
            raise StoreError(f"audit journal {directory}: {exc.strerror or exc}") from None
        store.add_read_barrier(journal.flush)
        store.add_pending_rules(journal.rules_shown)
        try:
            journal.adopt()
            journal.flush()
        except BaseException:
            journal.close(drain=False)
            raise
        return journal

    @property
    def path(self) -> Path:
        return self._own.path

    # -- the request path -----------------------------------------------------------------

    def rules_shown(self, patient_id: str, since: dt.datetime, service_id: str | None) -> set[str]:
        """The rules of cards this process acknowledged to ``patient_id`` since ``since`` (kept
        in memory for the last records, drained or not: repeat suppression reads them)."""
        return self._recent.rules(patient_id, since, service_id)

    def append(self, inv: Invocation) -> None:
        """Write ``inv`` to the journal and wait until it is on disk (raises StoreError).
        After :meth:`close`, the record goes straight to the store."""
        line = encode(inv)
        with self._write_lock:
            fd = self._own.fd
            if fd >= 0:
                start = self._size
                try:
                    view = memoryview(line)
                    while view:  # one write for the whole line, unless the disk takes less
                        view = view[os.write(fd, view) :]
                except OSError as exc:
                    # a part of the line (e.g. the disk is full): cut it off, so the next
                    # line does not continue it
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                    raise StoreError(f"audit journal {self.path}: write failed: {exc}") from None
                self._size = start + len(line)
                self._written += len(line)
                mine = self._written
                if inv.cards and inv.patient_id and inv.status_code == 200:
                    when = inv.received_at
                    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
                    rules = frozenset(c.rule for c in inv.cards)
                    self._recent.add(inv.patient_id, inv.service_id, when, rules)
        if fd < 0:
            self.store.record_invocation(inv)
            return
        self._sync(fd, mine)

    def _sync(self, fd: int, mine: int) -> None:
        """Return once the first ``mine`` bytes ever written are on disk: by an fdatasync of
        this thread, or of another that began after they were written (raises StoreError)."""
        with self._sync_done:
            while self._syncing and self._synced < mine and self._sync_failed < mine:
                self._sync_done.wait()
            if self._synced >= mine:
                return
            if self._sync_failed >= mine:
                raise StoreError(f"audit journal {self.path}: fdatasync failed")
            self._syncing = True
            # every line counted here was written before the fdatasync below begins
            upto = self._written
        failed: OSError | None = None
        try:
            os.fdatasync(fd)
        except OSError as exc:
            failed = exc
        with self._sync_done:
            self._syncing = False
            if failed is None:
                self._synced = max(self._synced, upto)
            else:  # never retried for these lines: a later fdatasync may not report it again
                self._sync_failed = max(self._sync_failed, upto)
            self._sync_done.notify_all()
        if failed is not None:
            raise StoreError(f"audit journal {self.path}: fdatasync failed: {failed}") from None

    # -- draining -------------------------------------------------------------------------

    def adopt(self) -> int:
        """Take over the journals in the folder that no living process holds; how many."""
        known = {self._own.path, *(s.path for s in self._adopted)}
        found = 0
        for path in sorted(self.directory.glob(f"audit-*{SUFFIX}")):
            if path in known:
                continue
            src = _adopt(path)
            if src is not None:
                log.info("audit journal %s: left by a process that is gone; loading it", path)
                self._adopted.append(src)
                found += 1
        return found

    def flush(self) -> int:
        """Move every complete record of this journal (and adopted ones) into the store now;
        how many were new to it. Raises StoreError when the database fails."""
        with self._drain_lock:
            moved = 0
            for src in list(self._adopted):
                moved += _drain(self.store, src, os.fstat(src.fd).st_size, self.batch)
                _finish(src)
                self._adopted.remove(src)
            if self._own.fd >= 0:
                moved += _drain(self.store, self._own, self._size, self.batch)
                self._maybe_empty()
            return moved

    def _maybe_empty(self) -> None:
        own = self._own
        if own.offset < self.rotate_bytes:
            return
        with self._write_lock:
            if self._size != own.offset:
                return
            own.write_offset(0, durable=True)  # first: a crash after it only replays
            os.ftruncate(own.fd, 0)
            self._size = 0

    # -- the background thread ------------------------------------------------------------

    def start(self) -> None:
        """Drain in a background thread every ``interval_s`` until :meth:`close`."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="legspasm-audit-journal", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        since_scan, failures = 0.0, 0
        while not self._stop.wait(self.interval_s * min(2**failures, 100)):
            try:
                since_scan += self.interval_s
                if since_scan >= RESCAN_S:
                    since_scan = 0.0
                    self.adopt()
                if self._adopted or self._size > self._own.offset:
                    self.flush()
                failures = 0
            except (StoreError, OperationalError, OSError) as exc:
                failures += 1
                log.error("audit journal %s: could not move records: %s", self.path, exc)
            except Exception:  # never let the thread die: the journal keeps every record
                failures += 1
                log.exception("audit journal %s: unexpected error", self.path)

    def close(self, *, drain: bool = True) -> None:
        """Stop the thread, move everything into the store (when ``drain``) and remove the
        drained journal; a journal that could not be drained stays for the next start."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if drain:
                self.flush()
        except StoreError as exc:
            log.error("audit journal %s: kept for the next start: %s", self.path, exc)
        finally:
            self._closed = True
            self.store.remove_read_barrier(self.flush)
            self.store.remove_pending_rules(self.rules_shown)
            with self._drain_lock, self._write_lock:  # the order flush takes them in
                own = self._own
                if drain and self._size == own.offset:
                    own.remove()
                else:
                    os.close(own.fd)
                own.fd = -1
                for src in self._adopted:  # not drained: left for the next start
                    os.close(src.fd)
                self._adopted.clear()


def _claim_directory(directory: Path, store_url: str) -> None:
    """Record which database the folder's journals belong to; refuse another database's
    folder while it holds journals."""
    marker = directory / _DATABASE
    try:
        known = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        known = None
    if known == store_url:
        return
    if known is not None and any(directory.glob(f"audit-*{SUFFIX}")):
        raise StoreError(
            f"audit journal {directory}: holds records for {known}, not {store_url} "
            "(give each database its own LEGSPASM_JOURNAL_DIR)"
        )
    tmp = marker.with_name(f".{_DATABASE}-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.write_text(store_url + "\n", encoding="utf-8")  # one per process: workers start at once
    os.replace(tmp, marker)


def recover(directory: Path, store: AuditStore) -> int:
    """Drain into ``store`` every journal in ``directory`` that no living process holds (e.g.
    after ``kill -9``), without starting the service; how many records were new."""
    if not directory.is_dir():
        return 0
    _claim_directory(directory, store.url)
    moved = 0
    for path in sorted(directory.glob(f"audit-*{SUFFIX}")):
        src = _adopt(path)
        if src is not None:
            moved += _drain(store, src, os.fstat(src.fd).st_size, BATCH)
            _finish(src)
    return moved


def _transient(exc: StoreError) -> bool:
    """A failure of the database itself (down, unreachable): worth retrying later, unlike a
    record it refuses."""
    return isinstance(exc.__cause__, OperationalError)


def _drain(store: AuditStore, src: _Source, size: int, batch: int) -> int:
    """Move ``src``'s complete lines up to ``size`` into ``store``, a batch per transaction,
    recording the offset after each; how many records were new."""
    moved = 0
    for end, lines in _batches(src, size, batch):
        invs = [inv for inv, _ in lines]
        try:
            moved += store.record_invocations(invs)
        except StoreError as exc:
            if _transient(exc):
                raise
            for inv, line in lines:  # one by one: only the record refused is set aside
                try:
                    moved += store.record_invocations([inv])
                except StoreError as one:
                    if _transient(one):
                        raise
                    _reject(src, line, one.message)
        src.write_offset(end)
    return moved


def _batches(
    src: _Source, size: int, batch: int
) -> Iterator[tuple[int, list[tuple[Invocation, bytes]]]]:
    """(offset after the batch, its records and lines) over complete lines from the offset."""
    if size <= src.offset:
        return
    data = os.pread(src.fd, size - src.offset, src.offset)
    last = data.rfind(b"\n")
    if last < 0:
        return
    pos, base = 0, src.offset
    lines: list[tuple[Invocation, bytes]] = []
    while pos <= last:
        nl = data.index(b"\n", pos)
        line = data[pos:nl]
        pos = nl + 1
        try:
            lines.append((_decode(line, raw=True), line))
        except (ValueError, KeyError, TypeError) as exc:
            _reject(src, line, f"not a journal record: {exc}")
        if len(lines) >= batch:
            yield base + pos, lines
            lines = []
    yield base + pos, lines


def _reject(src: _Source, line: bytes, why: str) -> None:
    """Keep a line the store cannot take aside (``<journal>.rejected``), so it blocks none."""
    log.error("audit journal %s: %s; kept in %s.rejected", src.path, why, src.path.name)
    with (src.path.parent / f"{src.path.name}.rejected").open("ab") as f:
        f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())


def _finish(src: _Source) -> None:
    """An adopted journal is drained: delete it. Its torn last line, if any, was being written
    when its process died, so it was never acknowledged."""
    size = os.fstat(src.fd).st_size
    if size > src.offset:
        log.warning(
            "audit journal %s: ignored %d bytes of a record being written when its process "
            "died (never acknowledged)",
            src.path,
            size - src.offset,
        )
    src.remove()
