"""What the sweeper makes of finished jobs: their outcomes told to Optuna, one progress line each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import FrozenTrial, TrialState

from tuneflow.storage.study import ERROR_ATTR
from tuneflow.trial.job import TrialOutcome

_STATES = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAIL}


def outcome_of(number: int, job_return: JobReturn) -> TrialOutcome:
    """The job's own outcome, or a FAIL outcome if the job raised before it could produce one."""
    if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, TrialOutcome):
        return job_return.return_value
    error = getattr(job_return, "_return_value", None)
    return TrialOutcome(number=number, state="FAIL", error=f"{type(error).__name__}: {error}")


def tell(study: optuna.Study, trial: optuna.trial.Trial, outcome: TrialOutcome) -> None:
    if outcome.error:
        trial.set_user_attr(ERROR_ATTR, outcome.error[:4000])
    if outcome.state == "COMPLETE":
        study.tell(trial, outcome.values or outcome.value, skip_if_finished=True)
    else:
        study.tell(trial, state=_STATES[outcome.state], skip_if_finished=True)


def progress_lines(
    outcomes: Sequence[TrialOutcome], counts: Mapping[str, int], best: FrozenTrial | None, target: int
) -> list[str]:
    """One line per finished job; ``counts`` and ``best`` as the study stands after the whole batch."""
    finished = counts["finished"] - sum(o.state in ("COMPLETE", "PRUNED") for o in outcomes)
    lines = []
    for outcome in outcomes:
        finished += outcome.state in ("COMPLETE", "PRUNED")
        lines.append(progress_line(outcome, finished, best, target))
    return lines


def progress_line(outcome: TrialOutcome, finished: int, best: FrozenTrial | None, target: int) -> str:
    value = "" if outcome.value is None else f" value={outcome.value:.6g}"
    if outcome.values is not None and len(outcome.values) > 1:
        value = " values=[" + ", ".join(f"{v:.6g}" for v in outcome.values) + "]"
    detail = ""
    if outcome.state == "PRUNED":
        detail = f" at step {outcome.pruned_at_step}"
    elif outcome.state == "FAIL":
        detail = f" ({outcome.error})"
    best_text = "" if best is None else f" | best={best.value:.6g} (#{best.number})"
    return (
        f"[{finished}/{target}] trial {outcome.number} {outcome.state}{detail}{value}"
        f" in {outcome.seconds:.1f}s{best_text}"
    )


def last_error(study: optuna.Study) -> str:
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if ERROR_ATTR in t.user_attrs]
    return failed[-1].user_attrs[ERROR_ATTR] if failed else "unknown"


def consecutive_runs(numbers: Sequence[int]) -> list[list[int]]:
    """``[3, 4, 9, 10, 11]`` -> ``[[3, 4], [9, 10, 11]]`` (sorted first)."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs
