"""The cutover: both generations on the same golden queries, then (approved) the switch.

`compare` (the compare_generations task) runs the source's golden set on the
live generation and on the complete configured one, each with its own model,
and gives the verdict: not worse than `generations.max_metric_drop`, or
refused. `cutover` (the cutover task) moves the pointer for an accepted
verdict, after a person's approval where the source asks for one
(`approval.cutover`, the approve_cutover task between the two). A retried
cutover whose switch already happened records it and moves nothing.
"""

from __future__ import annotations

import dataclasses
import time

from rag_ingest import generations as gen
from rag_ingest.config import ConfigError, Settings, load_settings
from rag_ingest.generations import GenerationRecord
from rag_ingest.pipeline.binding import GenerationError, live_record
from rag_ingest.pipeline.generation import switch
from rag_ingest.run import RunContext
from rag_ingest.stage_results import ApprovalResult, CutoverResult
from rag_ingest.stores import open_generations


def compare(config_path: str | None, source_name: str, run_id: str) -> CutoverResult:
    """Measure a complete configured generation against the live one; the verdict."""

    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    configured = load_settings(ctx.config_path)
    gens = open_generations(configured)
    pointer = gens.pointer(source_name)
    live = live_record(gens, source_name)
    if pointer is None or live is None:
        raise GenerationError(f"source {source_name!r} has no live generation yet")
    candidate = gens.record(source_name, gen.spec_of(configured).name)

    def result(accepted: bool, reason: str, **figures: object) -> CutoverResult:
        return ctx.record(
            CutoverResult(
                candidate=candidate.name if candidate else "",
                live_before=live.name,
                live_after=live.name,
                accepted=accepted,
                reason=reason,
                awaiting_approval=accepted and ctx.source.approval.cutover,
                seconds=round(time.perf_counter() - started, 3),
                **figures,  # type: ignore[arg-type]
            )
        )

    if candidate is None or candidate.name == live.name:
        return result(False, "nothing to cut over: the configured generation is live")
    state = gen.status(candidate, pointer)
    if state != "complete":
        return result(False, f"nothing to cut over: the configured generation is {state}")
    measures = _measure(ctx, configured, live, candidate)
    metric = _metric(ctx, configured)
    live_value, candidate_value = measures.get(metric, (None, None))
    decision = gen.decide_cutover(
        metric, live_value, candidate_value, configured.generations.max_metric_drop
    )
    figures = {
        "metric": metric,
        "live_value": live_value,
        "candidate_value": candidate_value,
        "measures": {name: list(pair) for name, pair in measures.items()},
    }
    evaluation = {**figures, "live": live.name, "run_id": run_id}
    changes: dict[str, object] = {"reason": decision.reason, "evaluation": evaluation}
    if not decision.accepted and live_value is not None:
        changes["refused_at"] = gen.now_utc()
    gens.put(gen.with_times(candidate, **changes))
    return result(decision.accepted, decision.reason, **figures)


def _metric(ctx: RunContext, configured: Settings) -> str:
    """The measure the verdict is taken on ("" when the source has nothing to measure)."""
    gate = ctx.source.evaluation
    if gate is None:
        return ""
    if configured.generations.metric == "ndcg@10":
        if gate.dataset is None:
            raise ConfigError(
                f"generations.metric is ndcg@10 but sources[{ctx.source.name}].evaluation "
                "has no dataset to measure it on"
            )
        return "dataset ndcg@10"
    return f"recall@{gate.k}"


def _measure(
    ctx: RunContext, configured: Settings, live: GenerationRecord, candidate: GenerationRecord
) -> dict[str, tuple[float, float]]:
    """Every measure the source has, on both generations with the same queries:
    metric -> (live, candidate); each generation embeds the queries with its own model."""
    from rag_ingest.pipeline.evaluate import dataset_scores, golden_recall

    gate = ctx.source.evaluation
    if gate is None:
        return {}
    both = [gen.settings_for(configured, record) for record in (live, candidate)]
    golden = [round(golden_recall(settings, ctx.source)[0], 4) for settings in both]
    measures = {f"recall@{gate.k}": (golden[0], golden[1])}
    if gate.dataset is not None:
        scored = [dataset_scores(settings, ctx.source) for settings in both]
        for name in scored[0]:
            measures[f"dataset {name}"] = (scored[0][name], scored[1][name])
    return measures


def cutover(config_path: str | None, source_name: str, run_id: str) -> CutoverResult:
    """Switch to an accepted candidate (approved, where the source asks for a person)."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    verdict = ctx.result(CutoverResult)
    if not verdict.accepted:
        return verdict
    configured = load_settings(ctx.config_path)
    gens = open_generations(configured)
    pointer = gens.pointer(source_name)
    candidate = gens.record(source_name, verdict.candidate)
    if pointer is None or candidate is None:
        raise GenerationError(
            f"source {source_name!r}: generation {verdict.candidate} is gone since it was measured"
        )

    def result(switched: bool, reason: str) -> CutoverResult:
        return ctx.record(
            dataclasses.replace(
                verdict,
                switched=switched,
                live_after=candidate.name if switched else verdict.live_before,
                reason=reason,
                seconds=round(verdict.seconds + time.perf_counter() - started, 3),
            )
        )

    if pointer.live == candidate.name:  # a retry after the switch: nothing more to move
        return result(True, verdict.reason)
    if verdict.awaiting_approval:
        answer = _approval(ctx)
        if not answer.approved:
            reason = f"rejected by {answer.by or 'nobody'} ({answer.answer}); {verdict.reason}"
            gens.put(gen.with_times(candidate, refused_at=gen.now_utc(), reason=reason))
            return result(False, reason)
        reason = f"approved by {answer.by}; {verdict.reason}"
    else:
        reason = verdict.reason
    evaluation = dict(candidate.evaluation)
    switch(gens, pointer, candidate, reason=reason, evaluation=evaluation)
    return result(True, reason)


def _approval(ctx: RunContext) -> ApprovalResult:
    answer = ctx.approval("cutover")
    if answer is None:
        raise GenerationError(
            f"source {ctx.source.name!r}: the cutover waits for a person's approval, and the "
            "run has none (the approve_cutover task did not answer)"
        )
    return answer
