"""hydra.sweeper.direction and objective as tuneflow resolves them: one objective or several (as Hydra's
Optuna sweeper takes a list of directions), each named, and a pruner refused where Optuna cannot prune."""

from __future__ import annotations

from typing import Any

import pytest

from tuneflow.errors import ConfigError
from tuneflow.storage.study import study_settings

NOP = {"_target_": "optuna.pruners.NopPruner"}


def settings(**sweeper: Any) -> Any:
    return study_settings({"storage": "sqlite:///:memory:", "root_dir": "mlruns", "pruner": NOP, **sweeper})


def test_one_direction_is_a_single_objective_study() -> None:
    one = settings(direction="maximize", objective="val_accuracy")
    assert (one.directions, one.objective, one.objectives, one.multi_objective) == (("maximize",), "val_accuracy", (), False)
    assert settings().directions == ("minimize",)


@pytest.mark.parametrize("key", ["direction", "directions"])
def test_a_list_of_directions_names_each_objective(key: str) -> None:
    named = settings(**{key: ["maximize", "minimize"]}, objective=["val_accuracy", "train_seconds"])
    assert (named.directions, named.objectives, named.objective) == (
        ("maximize", "minimize"), ("val_accuracy", "train_seconds"), None)
    assert named.multi_objective
    assert settings(direction=["minimize", "minimize"]).objectives == ("objective_0", "objective_1")


@pytest.mark.parametrize(
    ("sweeper", "message"),
    [
        ({"direction": "up"}, "hydra.sweeper.direction is 'up', but must be minimize, maximize or a list of them"),
        ({"direction": ["minimize", "sideways"]}, "must be minimize, maximize or a list of them"),
        ({"direction": 1}, "hydra.sweeper.direction is 1, but must be minimize, maximize or a list of them"),
        ({"direction": ["minimize", "minimize"], "objective": ["a"]},
         "hydra.sweeper.objective names 1 objectives (a) but hydra.sweeper.direction has 2"),
        ({"direction": ["minimize", "minimize"], "objective": "a"}, "name one objective per direction"),
        ({"direction": ["minimize", "minimize"], "pruner": {"_target_": "optuna.pruners.MedianPruner"}},
         "hydra.sweeper.pruner: Optuna cannot prune a study with 2 objectives; add hydra/sweeper/pruner=none"),
    ],
)
def test_a_bad_direction_objective_or_pruner_is_one_line(sweeper: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(**sweeper)
    assert message in str(error.value) and "\n" not in str(error.value)
