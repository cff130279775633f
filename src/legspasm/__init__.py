"""legspasm: cited, patient-specific decision support for leg cramps, spasms and restless legs.

Public API::

    from legspasm import evaluate, load_knowledge, load_case
    kb = load_knowledge()
    assessment = evaluate(load_case("case.yaml"), kb, as_of=datetime.date(2026, 11, 21))

The names below are imported on first use (``legspasm.lazy``), so a command that needs only
part of the package starts without loading the rest.
"""

from typing import TYPE_CHECKING

from .lazy import exports

if TYPE_CHECKING:
    from .assessment import Assessment
    from .case import Case
    from .caseio import load_case, parse_case
    from .engine import evaluate
    from .errors import (
        CaseFileError,
        CaseValidationError,
        EvaluationError,
        InputError,
        KnowledgeError,
        LegspasmError,
    )
    from .knowledge import Knowledge, load_knowledge

__all__ = [
    "Assessment",
    "Case",
    "CaseFileError",
    "CaseValidationError",
    "EvaluationError",
    "InputError",
    "Knowledge",
    "KnowledgeError",
    "LegspasmError",
    "evaluate",
    "load_case",
    "load_knowledge",
    "parse_case",
]
__version__ = "0.1.0"

__getattr__, __dir__ = exports(
    __name__,
    {
        "Assessment": ".assessment",
        "Case": ".case",
        "load_case": ".caseio",
        "parse_case": ".caseio",
        "evaluate": ".engine",
        "CaseFileError": ".errors",
        "CaseValidationError": ".errors",
        "EvaluationError": ".errors",
        "InputError": ".errors",
        "KnowledgeError": ".errors",
        "LegspasmError": ".errors",
        "Knowledge": ".knowledge",
        "load_knowledge": ".knowledge",
    },
)
