"""The approval tasks' questions and answers (Airflow's human-in-the-loop tasks ask them).

approve_deletions asks when plan_documents found deletions past the guard;
approve_cutover when compare_generations accepted a new generation of a source
that wants a person's approval. Each asks nothing (and is skipped) otherwise.
The answer is written as an ApprovalResult the next stage and the report read.
"""

from __future__ import annotations

from typing import Literal

from rag_ingest.run import RunContext
from rag_ingest.stage_results import ApprovalResult, CutoverResult, MassDeletePendingResult

ApprovalKind = Literal["mass_delete", "cutover"]
APPROVE = "Approve"
REJECT = "Reject"


def question(ctx: RunContext, kind: ApprovalKind) -> tuple[str, str] | None:
    """(subject, Markdown body) of what the run asks a person, or None: nothing to ask."""
    source = ctx.source.name
    if kind == "mass_delete":
        if not ctx.layout.stage_file(MassDeletePendingResult.NAME).exists():
            return None
        pending = ctx.result(MassDeletePendingResult)
        listed = "\n".join(f"- `{uri}`" for uri in pending.examples)
        more = pending.would_delete - len(pending.examples)
        return (
            f"Delete {pending.would_delete} documents of source '{source}'?",
            f"{pending.reason}.\n\n**Approve** deletes them (and writes this run's changes); "
            f"**Reject** ends the run: nothing is written or deleted.\n\nThe first "
            f"{len(pending.examples)} of them:\n\n{listed}"
            + (f"\n\n... and {more} more." if more > 0 else ""),
        )
    if not ctx.layout.stage_file(CutoverResult.NAME).exists():
        return None
    verdict = ctx.result(CutoverResult)
    if not verdict.awaiting_approval:
        return None
    rows = "".join(
        f"| {name}{' (decides)' if name == verdict.metric else ''} | {live} | {new} |\n"
        for name, (live, new) in verdict.measures.items()
    )
    return (
        f"Cut source '{source}' over to generation {verdict.candidate}?",
        "Both generations answered the same queries, each with its own model:\n\n"
        f"| measure | `{verdict.live_before}` (live) | `{verdict.candidate}` (new) |\n"
        f"|---|---|---|\n{rows}\n"
        f"{verdict.reason}.\n\n**Approve** makes the new generation serve (the live one is "
        "kept for rollback); **Reject** keeps the live one and marks the new one refused.",
    )


def record_answer(
    ctx: RunContext, kind: ApprovalKind, chosen: list[str], by: str, seconds: float = 0.0
) -> ApprovalResult:
    """The person's answer, for the next stage and the report."""
    return ctx.record(
        ApprovalResult(
            kind=kind,
            approved=chosen == [APPROVE],
            by=by,
            answer=", ".join(chosen) or "no answer",
            seconds=seconds,
        )
    )
