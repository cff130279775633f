"""Parsing JSON and YAML documents: bounded, strict, and with errors that name their place.

Every surface reads case files, FHIR JSON and NDJSON lines through these functions, so every
parser failure becomes a ``DocumentError`` (location and problem, never a traceback):

- nesting deep enough to exhaust the JSON parser's recursion, and YAML deeper than ``MAX_DEPTH``;
- integers longer than Python's digit limit, and numbers that are not finite (``NaN``,
  ``Infinity``, which JSON does not allow, and ``1e999``, which would be read as infinity);
- YAML dates that are not dates (``2026-13-45``);
- duplicate keys (JSON and YAML), which would otherwise silently keep the last value;
- YAML aliases whose expansion exceeds ``MAX_NODES`` values (an "alias bomb").

``excerpt`` quotes a value for an error message in bounded time and length.
"""

from __future__ import annotations

import json
import math
import reprlib
import sys
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import DocumentError

__all__ = ["MAX_DEPTH", "MAX_NODES", "NotFinite", "excerpt", "finite", "parse_json", "parse_yaml"]

MAX_DEPTH = 100
"""Deepest YAML nesting accepted (a case file needs 5)."""
MAX_NODES = 1_000_000
"""Most values a YAML document may expand to once its aliases are resolved."""

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def excerpt(value: Any, limit: int = 80) -> str:
    """``repr`` of a value, bounded in depth, items and length (safe on shared structures)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class NotFinite(ValueError):
    """A JSON number that is not a finite number (raised while parsing)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"{excerpt(text, 40)} is not a finite number")


def finite(text: str) -> float:
    """``parse_float`` / ``parse_constant`` for ``json.loads``: refuse NaN, Infinity and
    numbers too large for a float (which would otherwise become infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise NotFinite(text)
    return value


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text; raise DocumentError (``location`` ``line L column C`` when known)."""
    try:
        data = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_float=finite, parse_constant=finite
        )
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}"
        ) from None
    except _Duplicate as exc:
        raise DocumentError(None, f"duplicate key {excerpt(exc.key)}") from None
    except NotFinite as exc:
        raise DocumentError(None, str(exc)) from None
    except RecursionError:
        raise DocumentError(None, "nested too deeply to read") from None
    except ValueError as exc:  # an integer beyond Python's digit limit
        if "integer string conversion" in str(exc):
            limit = sys.get_int_max_str_digits()
            raise DocumentError(None, f"a number with more than {limit:,} digits") from None
        raise DocumentError(None, f"not valid JSON: {excerpt(str(exc))}") from None
    return data


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reports bad timestamps at their mark."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merges may be overridden by the keys written beside them
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {excerpt(key)}", key_node.start_mark
                    )
                seen.add(key)
            except TypeError:
                pass  # an unhashable key: SafeLoader refuses it with its own message
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid date or time ({exc})", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _expanded_size(root: Node) -> int:
    """How many values the node graph stands for once aliases are expanded (memoised, so an
    alias bomb is measured, not expanded); also refuses nesting beyond MAX_DEPTH."""
    sizes: dict[int, int] = {}
    # Iterative post-order walk: (node, depth, children done?)
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        if depth > MAX_DEPTH:
            raise DocumentError(None, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, SequenceNode):
            kids: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            kids = [n for pair in node.value for n in pair]
        else:
            sizes[key] = 1
            continue
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[key] > MAX_NODES:
                raise DocumentError(
                    None, f"expands to more than {MAX_NODES:,} values (YAML aliases)"
                )
            continue
        if key in on_path:
            raise DocumentError(None, "a YAML alias refers to itself")
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((k, depth + 1, False) for k in kids if id(k) not in sizes)
    return sizes[id(root)]


def parse_yaml(text: str) -> Any:
    """Parse one YAML document; raise DocumentError (``line L column C`` when known)."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # an unprintable character, found before parsing starts
        raise DocumentError(None, f"not valid YAML: {excerpt(str(exc).splitlines()[0])}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        problem = exc.problem or exc.context or "not valid YAML"
        raise DocumentError(where, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(None, f"not valid YAML: {excerpt(str(exc))}") from None
    except RecursionError:
        raise DocumentError(None, f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
