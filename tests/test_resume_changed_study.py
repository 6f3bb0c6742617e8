"""A resume that changes what a study means is refused in one line naming the study and the change, exit
status 2, the study's records byte for byte as they were: another architecture under the same name, a
fixed value that changes the trials' fidelity, another grid, a parameter whose kind Optuna cannot change
within a study. ``hydra.sweeper.allow_changed_study=true`` mixes them when the user means it (except
kinds, which Optuna refuses); a moved range, another device or a value outside ``hydra.sweeper.study_keys``
is no change of meaning."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import load_study, run_tuneflow

pytestmark = pytest.mark.slow

Q = ["+arch=quadratic", "-m", "hydra.sweeper.n_trials=3"]
GRID = ["+arch=quadratic", "-m", "hydra.sweeper.study_name=g", "hydra/sweeper/sampler=grid",
        "hydra.sweeper.params.y=range(1,3)"]
CHANGED = "was run with other settings ({}): resuming it would mix trials that cannot be compared; use another " \
          "hydra.sweeper.study_name, or hydra.sweeper.allow_changed_study=true to mix them"
KINDS = "was run with other parameters ({}), which Optuna cannot change within a study; use another " \
        "hydra.sweeper.study_name"

CASES = {
    "another architecture": (["+arch=mlp", "-m", "hydra.sweeper.study_name=quadratic"],
                             "study 'quadratic' " + CHANGED.format("arch: quadratic -> mlp; data: none -> digits")),
    "a fixed value that changes fidelity": ([*Q, "params.epochs=3"],
                                            "study 'quadratic' " + CHANGED.format("params.epochs: unset -> 3")),
    "another mode": ([*Q, "mode=fast"], "study 'quadratic' " + CHANGED.format("mode: full -> fast")),
    "a float made a choice": ([*Q, "hydra.sweeper.params.x=choice(1,2)"],
                              "study 'quadratic' " + KINDS.format("x: float -> choice(1, 2)")),
    "a float made an int": ([*Q, "hydra.sweeper.params.x=tag(int, interval(-5, 5))"],
                            "study 'quadratic' " + KINDS.format("x: float -> int")),
    "a float made log-scaled": ([*Q, "hydra.sweeper.params.x=tag(log, interval(1, 5))"],
                                "study 'quadratic' " + KINDS.format("x: float -> float (log scale)")),
    "a new grid on a finished grid study": ([*GRID, "hydra.sweeper.params.x=range(3,5)"],
                                            "study 'g' " + CHANGED.format("the grid: x=[1, 2] y=[1, 2] -> x=[3, 4] y=[1, 2]")),
}


def fingerprint(project: Path) -> dict[str, str]:
    """Every file of the project's stores, by content (SQLite's side files and the locks come and go)."""
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((project / "mlruns").rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm", ".lock"))
    }


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a finished study (quadratic, 2 trials) and a finished grid (g, 2 x 2 points)."""
    project = tmp_path_factory.mktemp("changed")
    for args in (["+arch=quadratic", "-m", "hydra.sweeper.n_trials=2"], [*GRID, "hydra.sweeper.params.x=range(1,3)"]):
        done = run_tuneflow(project, *args)
        assert done.returncode == 0, done.output
    return project


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resume_that_changes_the_study_is_one_line_and_leaves_it_as_it_was(studies: Path, case: str) -> None:
    args, message = CASES[case]
    before = fingerprint(studies)
    result = run_tuneflow(studies, *args)
    assert (result.returncode, result.stderr.strip().splitlines()[-1:]) == (2, [f"tuneflow: error: {message}"])
    assert "Traceback" not in result.output
    assert fingerprint(studies) == before


def test_the_user_may_mix_a_changed_fixed_value_explicitly(studies: Path, tmp_path: Path) -> None:
    project = tmp_path / "copy"
    shutil.copytree(studies, project)
    result = run_tuneflow(project, *Q, "params.epochs=3", "hydra.sweeper.allow_changed_study=true")
    assert result.returncode == 0, result.output
    study = load_study(project, "quadratic")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[2].user_attrs["tuneflow_overrides"] == ["+arch=quadratic", "params.epochs=3"]
    # The study still means what it meant: the next run without the flag is refused again.
    again = run_tuneflow(project, *Q, "params.epochs=3", "hydra.sweeper.n_trials=4")
    assert again.returncode == 2 and "params.epochs: unset -> 3" in again.stderr


def test_a_moved_range_another_device_or_a_value_outside_the_study_keys_resumes(studies: Path, tmp_path: Path) -> None:
    project = tmp_path / "copy"
    shutil.copytree(studies, project)
    result = run_tuneflow(project, *Q, "hydra.sweeper.params.x=interval(-3, 3)", "device=cpu",
                          "params.seconds_per_epoch=0.001", "tracking.log_model=false")
    assert result.returncode == 0, result.output
    assert len(load_study(project, "quadratic").trials) == 3


def test_a_finished_grid_run_again_says_what_happened(studies: Path) -> None:
    before = fingerprint(studies)
    result = run_tuneflow(studies, *GRID, "hydra.sweeper.params.x=range(1,3)")
    assert result.returncode == 0, result.output
    assert ("study 'g' already has 4 trials finished, and this run's grid has 4 points: nothing left to run; "
            "use another hydra.sweeper.study_name for another grid") in result.output
    assert {k: v for k, v in fingerprint(studies).items() if "mlflow.db" not in k} == \
        {k: v for k, v in before.items() if "mlflow.db" not in k}
