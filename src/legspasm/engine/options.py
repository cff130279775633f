"""One preferred option per choice: the others fold under it, each with its reason.

Steps that share an ``option.group`` are alternatives for the same place in the plan (iron by
mouth or by vein; one alpha-2-delta ligand; one oral antispasticity agent). After the gates have
judged them, the preferred one is the first, in knowledge-base order, that asks nothing the
others do not (a confirmation only it needs, such as a dose that waits for renal function, puts
it behind an option that does not). Options that were withheld (not recommended on dialysis,
tried before without benefit) are named in the preferred step's reason.
"""

from __future__ import annotations

from ..assessment import PlanStep, Withheld
from ..knowledge import Knowledge

__all__ = ["choose_options"]


def _name(step_id: str, kb: Knowledge) -> str:
    rec = kb.recommendations[step_id]
    if rec.medication is not None:
        return kb.drugs[rec.medication.drug].name
    return rec.statement.split(":")[0].split(".")[0]


def choose_options(kb: Knowledge, plan: list[PlanStep], withheld: list[Withheld]) -> list[PlanStep]:
    """The plan with each option group's preferred step first and its alternatives after it."""
    recs = kb.recommendations
    groups: dict[str, list[PlanStep]] = {}
    for step in plan:
        opt = recs[step.id].option
        if opt is not None:
            groups.setdefault(opt.group, []).append(step)
    if not groups:
        return plan
    gone = {w.id: w for w in withheld}
    chosen: dict[str, list[PlanStep]] = {}
    for gid, members in groups.items():
        questions = [{c.question for c in s.confirm} for s in members]
        shared = set.intersection(*questions)
        own = [q - shared for q in questions]
        best = min(range(len(members)), key=lambda i: (len(own[i]), i))
        preferred = members[best]
        passed = [
            f"{_name(r.id, kb)} not proposed: {gone[r.id].reason}"
            for r in recs.values()
            if r.option is not None and r.option.group == gid and r.id in gone
        ]
        passed += [
            f"{_name(s.id, kb)} first needs {'; '.join(sorted(own[i]))}"
            for i, s in enumerate(members[:best])
        ]
        opt = recs[preferred.id].option
        assert opt is not None
        reason = f"Preferred here: {'; '.join(passed)}." if passed else None
        out = [preferred.model_copy(update={"option_group": gid, "option_reason": reason})]
        for i, s in enumerate(members):
            if s is preferred:
                continue
            alt = recs[s.id].option
            assert alt is not None
            extra = f"; it also needs {'; '.join(sorted(own[i]))}" if own[i] else ""
            out.append(
                s.model_copy(
                    update={
                        "option_group": gid,
                        "alternative_to": preferred.id,
                        "option_reason": f"Choose it {alt.choose_when}{extra}.",
                    }
                )
            )
        chosen[gid] = out
    result: list[PlanStep] = []
    for step in plan:
        opt = recs[step.id].option
        if opt is None:
            result.append(step)
        elif opt.group in chosen:
            result.extend(chosen.pop(opt.group))
    return result
