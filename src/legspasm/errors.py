"""One error tree for legspasm.

    LegspasmError                 root: every error legspasm raises on purpose
    ├── KnowledgeError            the knowledge base failed to load or validate
    │                             (.file, .entry, .field name the place)
    ├── InputError                a user-supplied file or value is unusable
    │   ├── DocumentError         JSON or YAML text cannot be parsed (.location, .problem)
    │   ├── CaseFileError         a case file cannot be read or parsed (.path)
    │   ├── CaseValidationError   a case has wrong types or impossible values
    │   │                         (.problems: list of (field, message))
    │   ├── FhirError             a FHIR file or resource is malformed (.source, .location)
    │   ├── DataUnavailable       data a CDS Hooks request needs could not be had (.keys)
    │   └── ConfigError           the service's settings cannot be used as given (.setting)
    ├── EvaluationError           the engine met something it cannot handle (a bug)
    ├── AuthError                 a CDS Hooks caller's JWT was refused (.reason: for logs only,
    │                             never sent to the caller)
    └── StoreError                the audit store cannot be opened, migrated or written

Surfaces translate this tree into exit codes (CLI: InputError -> 2) or HTTP statuses in one
place each; nothing below the surfaces prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthError",
    "CaseFileError",
    "CaseValidationError",
    "ConfigError",
    "DataUnavailable",
    "DocumentError",
    "EvaluationError",
    "FhirError",
    "InputError",
    "KnowledgeError",
    "LegspasmError",
    "SeveralPatients",
    "StoreError",
]


class LegspasmError(Exception):
    """Root of every error legspasm raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KnowledgeError(LegspasmError):
    """The knowledge base is inconsistent: names the file, the entry and the field."""

    def __init__(self, file: str, entry: str | None, field: str | None, problem: str) -> None:
        where = file
        if entry:
            where += f" › {entry}"
        if field:
            where += f" › {field}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.entry = entry
        self.field = field
        self.problem = problem


class InputError(LegspasmError):
    """User input cannot be used as given."""


class DocumentError(InputError):
    """JSON or YAML text that cannot be parsed (or is beyond the reading bounds).

    ``location`` is ``line L column C`` when the parser knows it; the reader that called the
    parser adds the file (as a CaseFileError or FhirError)."""

    def __init__(self, location: str | None, problem: str) -> None:
        super().__init__(f"{location}: {problem}" if location else problem)
        self.location = location
        self.problem = problem


class CaseFileError(InputError):
    """A case file cannot be read or parsed."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class CaseValidationError(InputError):
    """A case has wrong types or impossible values; every problem names its field."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None) -> None:
        lines = [f"  {field}: {msg}" for field, msg in problems]
        head = f"{source}: invalid case" if source else "invalid case"
        super().__init__(head + "\n" + "\n".join(lines))
        self.problems = list(problems)
        self.source = source


class FhirError(InputError):
    """FHIR input that cannot be read: names the source and the location in it.

    ``location`` is as precise as the problem allows: a line of an NDJSON file, a bundle entry,
    or a resource with the element path (``Observation/abc › valueQuantity.value``).
    """

    def __init__(self, source: str, location: str | None, problem: str) -> None:
        where = f"{source} › {location}" if location else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.location = location
        self.problem = problem


class SeveralPatients(FhirError):
    """FHIR input that holds several patients when one was expected; ``ids`` names them all."""

    def __init__(self, source: str, problem: str, ids: Sequence[str]) -> None:
        super().__init__(source, None, problem)
        self.ids = list(ids)


class DataUnavailable(InputError):
    """Prefetch keys a CDS Hooks request lacks and the FHIR server could not supply (HTTP 412)."""

    def __init__(self, keys: Sequence[str], problem: str) -> None:
        super().__init__(f"prefetch {', '.join(keys)}: {problem}")
        self.keys = list(keys)
        self.problem = problem


class ConfigError(InputError):
    """Settings the service cannot run with; names the environment variable."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class EvaluationError(LegspasmError):
    """The engine met a construct it cannot evaluate. This is a bug in legspasm."""


class AuthError(LegspasmError):
    """A CDS Hooks request's JWT was refused. The caller only ever sees a bare 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"token refused: {reason}")
        self.reason = reason


class StoreError(LegspasmError):
    """The audit store cannot be opened, migrated or written (names the database, not secrets)."""
