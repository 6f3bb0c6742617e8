"""A report names each trial by the number it has everywhere else, failed and running trials in between."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tuneflow.analysis.report import top_rows
from tuneflow.storage.readers import finished_snapshot


def test_the_snapshot_keeps_every_trial_number() -> None:
    study = optuna.create_study()
    space = {"x": FloatDistribution(0, 1)}
    outcomes = [(TrialState.COMPLETE, 0.3), (TrialState.FAIL, None), (TrialState.FAIL, None),
                (TrialState.COMPLETE, 0.1), (TrialState.RUNNING, None), (TrialState.PRUNED, None),
                (TrialState.COMPLETE, 0.2)]
    for state, value in outcomes:
        trial = study.ask(space)
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        elif state != TrialState.RUNNING:
            study.tell(trial, state=state)
    snapshot = finished_snapshot(study)
    assert [(t.number, t.state) for t in snapshot.trials if t.state == TrialState.COMPLETE] == [
        (0, TrialState.COMPLETE), (3, TrialState.COMPLETE), (6, TrialState.COMPLETE)]
    assert snapshot.best_trial.number == study.best_trial.number == 3
    assert [t.params for t in snapshot.trials] == [t.params for t in study.trials]
    assert [row["trial"] for row in top_rows(snapshot, 3, "value")] == [3, 6, 0]
