"""Load and validate the knowledge base once; every problem names file, entry and field."""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import KnowledgeError
from ..expr import ExprError, compile_expr
from .model import (
    AvoidRule,
    Citation,
    Concept,
    Confirm,
    Context,
    Drug,
    DrugClass,
    Gate,
    HandoutSection,
    Knowledge,
    Lab,
    Lookups,
    Manifest,
    Recommendation,
    RecordObservation,
    RedFlag,
    Regimen,
    Scale,
    Threshold,
)

__all__ = ["DATA_DIR", "load_knowledge"]

# Thresholds the engine reads by name from policy.yaml.
_POLICY = (
    "reproductive_age_min",
    "reproductive_age_max",
    "trimester_2_week",
    "trimester_3_week",
    "obesity_bmi",
    "card_repeat_days",
)

DATA_DIR = Path(__file__).parent / "data"
M = TypeVar("M", bound=BaseModel)

try:  # the C loader is several times faster; PyYAML without libyaml still works
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


# The bundled YAML files already parsed, as JSON (several times faster to read than YAML): each
# entry is used only when its file's SHA-256 matches, so a stale snapshot is never read; any
# other knowledge folder, or a changed file, is parsed from YAML. scripts/kb_snapshot.py
# rebuilds it (a test says when).
SNAPSHOT = Path(__file__).with_name("snapshot.json")


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data


def _read(path: Path, root: Path) -> Any:
    rel = _rel(path, root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KnowledgeError(rel, None, None, "file is missing") from None
    if path.is_relative_to(DATA_DIR):
        entry = _snapshot().get(path.relative_to(DATA_DIR).as_posix())
        if entry is not None and entry["sha256"] == hashlib.sha256(raw).hexdigest():
            return entry["data"]
    return _parse(raw, rel)


def _parse(raw: bytes, rel: str) -> Any:
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise KnowledgeError(rel, None, None, f"not valid YAML: {exc}") from None


def build_snapshot() -> dict[str, Any]:
    """The bundled knowledge files parsed, with their hashes (what snapshot.json must hold)."""
    out: dict[str, Any] = {}
    for path in sorted(DATA_DIR.rglob("*.yaml")):
        raw = path.read_bytes()
        rel = path.relative_to(DATA_DIR).as_posix()
        out[rel] = {"sha256": hashlib.sha256(raw).hexdigest(), "data": _parse(raw, rel)}
    return out


def _rel(path: Path, root: Path) -> str:
    """The path as shown in errors: relative to the knowledge folder's parent."""
    return str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)


def _entries(path: Path, root: Path, key: str, model: type[M]) -> list[M]:
    data = _read(path, root)
    rel = _rel(path, root)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise KnowledgeError(rel, None, key, f"expected a top-level '{key}:' list")
    out: list[M] = []
    for i, raw in enumerate(data[key]):
        entry = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
        try:
            out.append(model.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise KnowledgeError(rel, str(entry), field, err["msg"]) from None
    return out


def _index(items: Iterable[M], rel: str, what: str, seen: dict[str, str]) -> dict[str, M]:
    out: dict[str, M] = {}
    for item in items:
        ident: str = getattr(item, "id")  # noqa: B009 - every entry model has an id
        if ident in seen:
            raise KnowledgeError(rel, ident, "id", f"duplicate id (already used by {seen[ident]})")
        seen[ident] = f"{what} in {rel}"
        out[ident] = item
    return out


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_refs(
    rel: str, entry: str, field: str, refs: Iterable[str], known: dict[str, Any], what: str
) -> None:
    for ref in refs:
        if ref not in known:
            raise KnowledgeError(rel, entry, field, f"unknown {what} {ref!r}" + _hint(ref, known))


def load_knowledge(root: Path | None = None) -> Knowledge:
    """Read, validate and cross-check every knowledge file under ``root`` (default: bundled)."""
    root = root or DATA_DIR
    f = root.joinpath
    # Ids are unique within a namespace: drugs and classes share one (``takes.<id>``), and so do
    # the rule kinds an assessment reports (recommendations, red flags, avoid rules).
    spaces: dict[str, dict[str, str]] = {}

    manifest_raw = _read(f("manifest.yaml"), root)
    try:
        manifest = Manifest.model_validate(manifest_raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise KnowledgeError(
            _rel(f("manifest.yaml"), root), None, ".".join(map(str, err["loc"])), err["msg"]
        ) from None

    def load(
        name: str, key: str, model: type[M], what: str, space: str | None = None
    ) -> tuple[str, dict[str, M]]:
        rel = _rel(f(name), root)
        seen = spaces.setdefault(space or what, {})
        return rel, _index(_entries(f(name), root, key, model), rel, what, seen)

    _cit_rel, citations = load("citations.yaml", "citations", Citation, "citation")
    _con_rel, concepts = load("concepts.yaml", "concepts", Concept, "concept")
    _lab_rel, labs = load("labs.yaml", "labs", Lab, "lab")
    _cls_rel, classes = load("drugs.yaml", "classes", DrugClass, "drug class", "drug")
    drug_rel, drugs = load("drugs.yaml", "drugs", Drug, "drug")
    ctx_rel, contexts = load("contexts.yaml", "contexts", Context, "context")
    rf_rel, red_flags = load("red_flags.yaml", "red_flags", RedFlag, "red flag", "rule")
    av_rel, avoid = load("avoid.yaml", "avoid", AvoidRule, "avoid rule", "rule")
    sc_rel, scales = load("scales.yaml", "scales", Scale, "scale")
    rec_rel, record = load("record.yaml", "record", RecordObservation, "record rule")
    ho_rel, handouts = load("handouts.yaml", "handouts", HandoutSection, "handout section")
    gate_rel, gates = load("gates.yaml", "gates", Gate, "gate", "rule")
    pol_rel, policy = load("policy.yaml", "policy", Threshold, "threshold")
    for want in _POLICY:
        if want not in policy:
            raise KnowledgeError(pol_rel, want, None, "missing: the engine needs this threshold")
    for want in ("body_weight", "body_height", "pregnancy_status", "no_known_allergy", "intake"):
        if want not in record:
            raise KnowledgeError(rec_rel, want, None, "missing: the FHIR mapping needs it")
    recs: dict[str, Recommendation] = {}
    rec_files: dict[str, str] = {}
    for path in sorted(f("recommendations").glob("*.yaml")):
        rel = _rel(path, root)
        for rid, rec in _index(
            _entries(path, root, "recommendations", Recommendation),
            rel,
            "recommendation",
            spaces.setdefault("rule", {}),
        ).items():
            recs[rid] = rec
            rec_files[rid] = rel
    if not recs:
        raise KnowledgeError(_rel(f("recommendations"), root), None, None, "no recommendations")

    ids = {
        "concepts": frozenset(concepts),
        "drugs": frozenset(drugs),
        "drugs_or_classes": frozenset(drugs) | frozenset(classes),
        "labs": frozenset(labs),
        "contexts": frozenset(contexts),
    }

    def compiled(rel: str, entry: str, field: str, src: Any) -> Any:
        if src is None:
            return None
        try:
            return compile_expr(src, ids)
        except ExprError as exc:
            raise KnowledgeError(rel, entry, field, str(exc)) from None

    def cites(rel: str, entry: str, field: str, refs: Iterable[str]) -> None:
        _check_refs(rel, entry, field, refs, citations, "citation id")

    def confirms(rel: str, entry: str, field: str, items: list[Confirm]) -> list[Confirm]:
        out = []
        for i, conf in enumerate(items):
            if (conf.fact is None) == (conf.when is None):
                raise KnowledgeError(rel, entry, f"{field}[{i}]", "give exactly one of fact, when")
            src = {"known": conf.fact} if conf.fact is not None else conf.when
            out.append(
                conf.model_copy(update={"compiled": compiled(rel, entry, f"{field}[{i}]", src)})
            )
        return out

    for pol in policy.values():
        cites(pol_rel, pol.id, "citations", pol.citations)
    new_gates = {}
    for g in gates.values():
        cites(gate_rel, g.id, "citations", g.citations)
        new_gates[g.id] = g.model_copy(
            update={"compiled": compiled(gate_rel, g.id, "passes_when", g.passes_when)}
        )
    for lab in labs.values():
        if lab.reference is not None:
            cites(_lab_rel, lab.id, "reference.citations", lab.reference.citations)

    for sc in scales.values():
        cites(sc_rel, sc.id, "citations", sc.citations)

    for cl in classes.values():
        if cl.stopping is not None:
            cites(drug_rel, cl.id, "stopping.citations", cl.stopping.citations)
    # Drugs: classes and every statement's citations.
    new_drugs = {}
    for d in drugs.values():
        _check_refs(drug_rel, d.id, "classes", d.classes, classes, "drug class")
        for fname in ("beers", "pregnancy", "hepatic", "renal", "boxed_warning", "stopping"):
            st = getattr(d, fname)
            if st is not None:
                cites(drug_rel, d.id, f"{fname}.citations", st.citations)
        for fname in ("contraindications", "interactions", "monitoring"):
            for i, st in enumerate(getattr(d, fname)):
                cites(drug_rel, d.id, f"{fname}[{i}].citations", st.citations)
        reg_ids: set[str] = set()
        new_regs = []
        for reg in d.regimens:
            if reg.id in reg_ids:
                raise KnowledgeError(drug_rel, d.id, f"regimens.{reg.id}", "duplicate regimen id")
            reg_ids.add(reg.id)
            cites(drug_rel, d.id, f"regimens.{reg.id}.citations", reg.citations)
            _check_bands(drug_rel, d.id, reg.id, reg.renal_bands, reg.max_daily)
            _check_product(drug_rel, d, reg)
            new_regs.append(
                reg.model_copy(
                    update={
                        "confirm": confirms(
                            drug_rel, d.id, f"regimens.{reg.id}.confirm", reg.confirm
                        )
                    }
                )
            )
        new_drugs[d.id] = d.model_copy(update={"regimens": new_regs})
    drugs = new_drugs

    new_ctx = {}
    for c in contexts.values():
        _check_refs(ctx_rel, c.id, "documented_by", c.documented_by, concepts, "concept")
        _check_refs(ctx_rel, c.id, "exclude_first", c.exclude_first, red_flags, "red flag")
        cites(ctx_rel, c.id, "citations", c.citations)
        crit_ids = [k.id for k in c.criteria]
        if len(set(crit_ids)) != len(crit_ids):
            raise KnowledgeError(ctx_rel, c.id, "criteria", "duplicate criterion id")
        _check_refs(
            ctx_rel, c.id, "required", c.required or [], dict.fromkeys(crit_ids), "criterion id"
        )
        crits = [
            k.model_copy(
                update={"compiled": compiled(ctx_rel, c.id, f"criteria.{k.id}.when", k.when)}
            )
            for k in c.criteria
        ]
        new_ctx[c.id] = c.model_copy(update={"criteria": crits})

    new_rf = {}
    for rf in red_flags.values():
        cites(rf_rel, rf.id, "citations", rf.citations)
        new_rf[rf.id] = rf.model_copy(
            update={
                "compiled": compiled(rf_rel, rf.id, "when", rf.when),
                "compiled_possible": compiled(rf_rel, rf.id, "possible_when", rf.possible_when),
            }
        )
        if new_rf[rf.id].compiled is None:
            raise KnowledgeError(rf_rel, rf.id, "when", "a red flag needs a 'when' expression")

    new_recs = {}
    for r in recs.values():
        rel = rec_files[r.id]
        cites(rel, r.id, "citations", r.citations)
        _check_refs(rel, r.id, "context", [r.context], contexts, "context")
        _check_refs(rel, r.id, "also_in", r.also_in, contexts, "context")
        if r.medication is not None:
            _check_refs(rel, r.id, "medication.drug", [r.medication.drug], drugs, "drug")
            regs = {g.id: g for g in drugs[r.medication.drug].regimens}
            _check_refs(rel, r.id, "medication.regimen", [r.medication.regimen], regs, "regimen")
        _check_refs(rel, r.id, "products", r.products, drugs, "drug")
        new_recs[r.id] = r.model_copy(
            update={
                "compiled_when": compiled(rel, r.id, "applies_when", r.applies_when),
                "compiled_unless": compiled(rel, r.id, "unless", r.unless),
                "confirm": confirms(rel, r.id, "confirm", r.confirm),
            }
        )

    _check_options(recs, rec_files)

    new_av = {}
    for a in avoid.values():
        cites(av_rel, a.id, "citations", a.citations)
        _check_refs(av_rel, a.id, "drugs", a.drugs, {**drugs, **classes}, "drug or class")
        if not a.drugs and not a.advice_tags and a.check != "allergy":
            raise KnowledgeError(av_rel, a.id, "drugs", "an avoid rule needs drugs or advice_tags")
        if a.check == "allergy" and a.when is not None:
            raise KnowledgeError(av_rel, a.id, "check", "an allergy check takes no 'when'")
        if a.check == "dose" and not a.drugs:
            raise KnowledgeError(av_rel, a.id, "check", "a dose check needs drugs")
        _check_refs(av_rel, a.id, "replace_with", a.replace_with, contexts, "context")
        targets = frozenset(
            d.id
            for d in drugs.values()
            if d.id in a.drugs or set(d.classes) & set(a.drugs) or a.check == "allergy"
        )
        new_av[a.id] = a.model_copy(
            update={"compiled": compiled(av_rel, a.id, "when", a.when), "targets": targets}
        )

    known_tags = {t for r in recs.values() for t in r.tags} | {"medication"}
    for rf in red_flags.values():
        _check_refs(
            rf_rel,
            rf.id,
            "withhold_tags",
            rf.withhold_tags,
            dict.fromkeys(known_tags),
            "advice tag",
        )
    for a in avoid.values():
        _check_refs(
            av_rel, a.id, "advice_tags", a.advice_tags, dict.fromkeys(known_tags), "advice tag"
        )

    _check_handouts(ho_rel, handouts, contexts, red_flags, citations, known_tags, new_av)
    handouts = {
        h.id: h.model_copy(
            update={
                "items": [
                    item.model_copy(
                        update={"compiled": compiled(ho_rel, h.id, f"items[{i}].when", item.when)}
                    )
                    for i, item in enumerate(h.items)
                ]
            }
        )
        for h in handouts.values()
    }

    changelog = f("CHANGELOG.md")
    if not changelog.exists():
        raise KnowledgeError(_rel(changelog, root), None, None, "file is missing")
    text = changelog.read_text(encoding="utf-8")
    if f"## {manifest.version}" not in text:
        raise KnowledgeError(
            _rel(changelog, root), None, None, f"no entry for knowledge version {manifest.version}"
        )
    return Knowledge(
        manifest=manifest,
        citations=citations,
        concepts=concepts,
        labs=labs,
        classes=classes,
        drugs=drugs,
        contexts=new_ctx,
        red_flags=new_rf,
        recommendations=new_recs,
        avoid_rules=new_av,
        scales=scales,
        record=record,
        handouts=handouts,
        gates=new_gates,
        policy=policy,
        changelog=text,
        lookups=_lookups(drugs, concepts, labs),
    )


def _check_options(recs: Mapping[str, Recommendation], rec_files: Mapping[str, str]) -> None:
    """An option group has at least two options, all in one phase."""
    groups: dict[str, list[Recommendation]] = {}
    for r in recs.values():
        if r.option is not None:
            groups.setdefault(r.option.group, []).append(r)
    for gid, members in groups.items():
        first = members[0]
        if len(members) < 2:
            raise KnowledgeError(
                rec_files[first.id], first.id, "option.group", f"{gid!r} has only this option"
            )
        for r in members[1:]:
            if r.phase != first.phase:
                raise KnowledgeError(
                    rec_files[r.id],
                    r.id,
                    "option.group",
                    f"{gid!r} mixes phases ({r.phase} here, {first.phase} in {first.id})",
                )


def _check_handouts(
    rel: str,
    handouts: dict[str, HandoutSection],
    contexts: dict[str, Context],
    red_flags: dict[str, RedFlag],
    citations: dict[str, Citation],
    known_tags: set[str],
    avoid: dict[str, AvoidRule],
) -> None:
    """References, citations and urgency of the patient handout; every red flag is described."""
    covered: set[str] = set()
    for h in handouts.values():
        _check_refs(rel, h.id, "contexts", h.contexts, contexts, "context")
        _check_refs(rel, h.id, "tags", h.tags, dict.fromkeys(known_tags), "advice tag")
        _check_refs(rel, h.id, "citations", h.citations, citations, "citation id")
        if h.urgency and (h.contexts or h.tags):
            raise KnowledgeError(
                rel, h.id, "urgency", "an urgent section is always shown: no contexts or tags"
            )
        for i, item in enumerate(h.items):
            tags_field = f"items[{i}].tags"
            _check_refs(rel, h.id, tags_field, item.tags, dict.fromkeys(known_tags), "advice tag")
            if item.avoid_rule is not None:
                _check_refs(
                    rel, h.id, f"items[{i}].avoid_rule", [item.avoid_rule], avoid, "avoid rule"
                )
            if item.red_flag is not None and (item.tags or item.avoid_rule):
                raise KnowledgeError(
                    rel,
                    h.id,
                    tags_field,
                    "a red-flag line is never withheld: no tags, no avoid_rule",
                )
            if item.red_flag is None:
                continue
            field = f"items[{i}].red_flag"
            _check_refs(rel, h.id, field, [item.red_flag], red_flags, "red flag")
            urgency = red_flags[item.red_flag].urgency
            if urgency not in h.urgency:
                listed = ", ".join(h.urgency) or "no urgency"
                raise KnowledgeError(
                    rel,
                    h.id,
                    field,
                    f"red flag {item.red_flag!r} is {urgency!r} but this section lists {listed}",
                )
            covered.add(item.red_flag)
        if not h.citations and not all(item.red_flag for item in h.items):
            raise KnowledgeError(
                rel, h.id, "citations", "uncited: only a section of red-flag items may omit them"
            )
    for rf in red_flags.values():
        if rf.id not in covered:
            home = next((h.id for h in handouts.values() if rf.urgency in h.urgency), None)
            raise KnowledgeError(
                rel,
                home,
                "items",
                f"no item describes red flag {rf.id!r} ({rf.urgency}) for patients",
            )


def _lookups(drugs: dict[str, Drug], concepts: dict[str, Concept], labs: dict[str, Lab]) -> Lookups:
    by_code: dict[str, str] = {}
    by_word: dict[str, str] = {}
    for d in drugs.values():
        for c in d.codes:
            if c.system == "rxnorm":
                by_code[c.code] = d.id
        for reg in d.regimens:  # a verified product of a regimen is that drug too
            if reg.product is not None and reg.product.verified:
                by_code.setdefault(reg.product.code, d.id)
        for w in (d.id.replace("_", " "), d.name, d.name.split(" (")[0], *d.brands):
            by_word[w.lower()] = d.id
    words = sorted(by_word, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b")
    return Lookups(
        drug_by_code=by_code,
        drug_by_word=by_word,
        drug_word_re=pattern,
        concept_by_code=_concept_index(concepts),
        lab_by_loinc={c.code: lab.id for lab in labs.values() for c in lab.codes},
    )


def _concept_index(concepts: dict[str, Concept]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Code -> the concepts it belongs to (K70.31 is both cirrhosis and ascites)."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for k in concepts.values():
        for c in k.codes:
            key = (c.system, c.code)
            if k.id not in out.get(key, ()):
                out[key] = (*out.get(key, ()), k.id)
    return out


_PRODUCT_TTYS = ("SCD", "SBD")


def _check_product(rel: str, drug: Drug, reg: Regimen) -> None:
    """A regimen's product is a prescribable RxNorm drug: system rxnorm, tty SCD or SBD, a
    numeric RXCUI other than the drug's ingredient codes, and its RxNorm name when verified."""
    p = reg.product
    if p is None:
        return
    field = f"regimens.{reg.id}.product"
    if p.system != "rxnorm":
        raise KnowledgeError(rel, drug.id, field, f"a product is an RxNorm code, not {p.system!r}")
    if p.tty not in _PRODUCT_TTYS:
        raise KnowledgeError(
            rel, drug.id, field, f"tty {p.tty!r}: a prescribable product is SCD or SBD"
        )
    if not p.code.isdigit():
        raise KnowledgeError(rel, drug.id, field, f"{p.code!r} is not an RXCUI")
    if any(c.system == "rxnorm" and c.code == p.code for c in drug.codes):
        raise KnowledgeError(
            rel, drug.id, field, f"{p.code} is the drug's ingredient code, not a product"
        )
    if p.verified and not p.display:
        raise KnowledgeError(rel, drug.id, field, "a verified product needs its RxNorm name")


def _check_bands(rel: str, drug: str, regimen: str, bands: list[Any], max_daily: Any) -> None:
    """Renal bands must not overlap, and no band may allow more than the regimen maximum."""
    spans = sorted((b.crcl_min or 0.0, b.crcl_max or float("inf"), b.label) for b in bands)
    for (_, hi, a), (lo, _, b) in itertools.pairwise(spans):
        if lo < hi:
            raise KnowledgeError(
                rel, drug, f"regimens.{regimen}.renal_bands", f"bands {a!r} and {b!r} overlap"
            )
    if max_daily is not None:
        for b in bands:
            if (
                b.daily_max is not None
                and b.daily_max.unit == max_daily.unit
                and b.daily_max.value > max_daily.value
            ):
                raise KnowledgeError(
                    rel,
                    drug,
                    f"regimens.{regimen}.renal_bands",
                    f"band {b.label!r} exceeds the regimen maximum",
                )
