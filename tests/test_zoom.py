"""Zooming in on an earlier study's finalists: a smaller space around them, and the finalists first."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneflow.errors import ConfigError
from tuneflow.search import zoom

SPACE = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "batch_size": CategoricalDistribution((16, 32, 64, 128)),
    "layers": IntDistribution(1, 8),
}


def finished(value: float, **params: object) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(params=params, distributions={k: SPACE[k] for k in params}, value=value)


FINALISTS = [
    finished(0.10, lr=1e-3, dropout=0.2, batch_size=32, layers=2),
    finished(0.12, lr=1e-2, dropout=0.3, batch_size=64, layers=3),
]


def test_the_top_trials_are_the_best_completed_ones_best_first() -> None:
    worse = finished(0.5, lr=1e-4, dropout=0.0, batch_size=16, layers=1)
    trials = [worse, *FINALISTS]
    assert zoom.top_trials(trials, "minimize", 2) == FINALISTS
    assert zoom.top_trials(trials, "maximize", 1) == [worse]


def test_numeric_ranges_shrink_around_the_finalists_on_their_own_scale() -> None:
    zoomed = zoom.narrow(SPACE, FINALISTS, margin=0.5)
    # lr spans one decade (1e-3..1e-2); half a decade more on each side, on the log scale.
    assert zoomed["lr"].low == pytest.approx(10**-3.5) and zoomed["lr"].high == pytest.approx(10**-1.5)
    assert zoomed["lr"].log
    assert zoomed["dropout"].low == pytest.approx(0.15) and zoomed["dropout"].high == pytest.approx(0.35)
    assert (zoomed["layers"].low, zoomed["layers"].high) == (1, 4)  # 2..3 widened by 0.5, rounded outwards
    assert zoomed["batch_size"].choices == (32, 64)


def test_the_zoomed_space_never_leaves_the_original_bounds() -> None:
    edge = [finished(0.1, lr=1e-1, dropout=0.5, batch_size=128, layers=8),
            finished(0.2, lr=1e-2, dropout=0.4, batch_size=128, layers=7)]
    zoomed = zoom.narrow(SPACE, edge, margin=3.0)
    assert zoomed["lr"].high == pytest.approx(1e-1)
    assert zoomed["dropout"].high == 0.5 and zoomed["layers"].high == 8


def test_finalists_that_agree_still_leave_a_neighbourhood() -> None:
    same = [finished(0.1, dropout=0.25), finished(0.2, dropout=0.25)]
    zoomed = zoom.narrow({"dropout": SPACE["dropout"]}, same, margin=0.5)
    assert zoomed["dropout"].low < 0.25 < zoomed["dropout"].high


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="zoom_top_k is 0"):
        zoom.top_trials(FINALISTS, "minimize", 0)
    with pytest.raises(ConfigError, match="zoom_margin is -1"):
        zoom.narrow(SPACE, FINALISTS, margin=-1)


def test_finalists_are_enqueued_once_and_asked_first() -> None:
    study = optuna.create_study()
    zoomed = zoom.narrow(SPACE, FINALISTS)
    zoom.enqueue_finalists(study, FINALISTS, zoomed)
    zoom.enqueue_finalists(study, FINALISTS, zoomed)  # a second worker: nothing more is queued
    first, second = study.ask(zoomed), study.ask(zoomed)
    assert first.params == FINALISTS[0].params and second.params == FINALISTS[1].params
    assert len(study.trials) == 2


@pytest.mark.slow
def test_a_full_study_zooms_in_on_a_fast_screen(project) -> None:  # type: ignore[no-untyped-def]
    from conftest import load_study, run_tuneflow

    quad = ["+arch=quadratic", "-m", "hydra/sweeper/pruner=none"]
    assert run_tuneflow(project, *quad, "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=screen").returncode == 0
    result = run_tuneflow(project, *quad, "hydra.sweeper.n_trials=4", "hydra.sweeper.study_name=zoomed",
                          "hydra.sweeper.zoom.study=screen", "hydra.sweeper.zoom.top_k=2")
    assert result.returncode == 0, result.output
    screen, zoomed = load_study(project, "screen"), load_study(project, "zoomed")
    finalists = zoom.top_trials(screen.trials, "minimize", 2)
    assert [t.params for t in zoomed.trials[:2]] == [t.params for t in finalists]
    assert [t.user_attrs["tuneflow_zoom_of_trial"] for t in zoomed.trials[:2]] == [t.number for t in finalists]
    assert len(zoomed.trials) == 4 and all(t.state.name == "COMPLETE" for t in zoomed.trials)
    narrowed = zoom.narrow(screen.trials[0].distributions, finalists)
    for trial in zoomed.trials:
        assert trial.distributions == narrowed
    # Running it again resumes: nothing is queued twice.
    again = run_tuneflow(project, *quad, "hydra.sweeper.n_trials=5", "hydra.sweeper.study_name=zoomed",
                         "hydra.sweeper.zoom.study=screen", "hydra.sweeper.zoom.top_k=2")
    assert again.returncode == 0, again.output
    assert len(load_study(project, "zoomed").trials) == 5
