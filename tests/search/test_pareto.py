"""The knee of a Pareto set (tuneflow.search.pareto.knee): the trial nearest the utopia point once each
objective is min-max normalised over the set, oriented so that its best value is 0."""

from __future__ import annotations

import optuna
import pytest

from tuneflow.search.pareto import knee, pareto_set, solutions


def study_of(directions: list[str], points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    for point in points:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, list(point))
    return study


def test_the_knee_is_the_balanced_trial_not_an_extreme() -> None:
    # accuracy (maximised) against seconds (minimised); trial 4 is dominated by trial 1.
    study = study_of(["maximize", "minimize"], [(0.9, 10), (0.8, 2), (0.85, 4), (0.7, 1), (0.6, 5)])
    front = pareto_set(study)
    assert [t.number for t in front] == [0, 1, 2, 3]
    # Normalised distances to (best accuracy, fewest seconds): #0 1.0, #1 0.512, #2 0.417, #3 1.0.
    assert knee(front, study.directions).number == 2  # type: ignore[union-attr]
    assert solutions(front)[2] == {"number": 2, "params": front[2].params, "values": [0.85, 4.0]}


def test_the_knee_follows_the_directions() -> None:
    # The same points, both minimised: (0.6, 5) is now on the front and (0.7, 1) wins the balance.
    study = study_of(["minimize", "minimize"], [(0.9, 10), (0.8, 2), (0.85, 4), (0.7, 1), (0.6, 5)])
    front = pareto_set(study)
    assert [t.number for t in front] == [3, 4]
    assert knee(front, study.directions).number == 3  # type: ignore[union-attr]


@pytest.mark.parametrize("points", [[(1.0, 1.0)], [(1.0, 1.0), (1.0, 1.0)]])
def test_a_single_point_or_ties_go_to_the_first_trial(points: list[tuple[float, float]]) -> None:
    study = study_of(["minimize", "minimize"], points)
    assert knee(pareto_set(study), study.directions).number == 0  # type: ignore[union-attr]


def test_no_trial_no_knee() -> None:
    assert knee([], []) is None
