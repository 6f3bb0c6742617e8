"""A user's trainer, wrong: names that do not import are one line before anything exists (exit 2, the prepared
project byte for byte as it was); a trainer that diverges to a non-finite objective or calls ``sys.exit`` makes
its trial FAIL with the reason, and the study goes on (the earlier study's records stay as they were)."""

from __future__ import annotations

import pytest

from bad_input.conftest import Case, Project, check

#: Each case is quick (about 0.5 s in-process), but the suite runs ~290 of them: kept out of the fast subset.
pytestmark = pytest.mark.slow

GOOD_ARCH = "defaults:\n  - /data: none\narch:\n  name: mine\n  trainer: mine_model.train\n  objective: val_loss\n  direction: minimize\nparams:\n  x: 1.0\n"
SWEEP = ["+arch=mine", "-m", "hydra.sweeper.params.x=interval(0, 1)"]


def arch(trainer_path: str = "mine_model.train", module: str | None = None) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {
        "conf/arch/mine.yaml": "# @package _global_\n" + GOOD_ARCH.replace("mine_model.train", trainer_path)}
    files["mine_model.py"] = module if module is not None else "def train(params, data, report, *, seed, device):\n    pass\n"
    return files


CASES: dict[str, Case] = {
    "trainer module missing": Case(SWEEP, "arch.trainer 'nowhere.train' cannot be imported", files=arch("nowhere.train")),
    "trainer function missing": Case(SWEEP, "module mine_model has no function 'fit'", files=arch("mine_model.fit")),
    "trainer not module.function": Case(SWEEP, "name a function as module.function", files=arch("train")),
    "trainer module with a syntax error": Case(SWEEP, "arch.trainer 'mine_model.train' cannot be imported",
                                               files=arch(module="def train(:\n")),
    "trainer module that raises on import": Case(SWEEP, "arch.trainer 'mine_model.train' cannot be imported",
                                                 files=arch(module="raise RuntimeError('no GPU here')\n")),
    "trainer module that exits on import": Case(SWEEP, "arch.trainer 'mine_model.train' cannot be imported",
                                                files=arch(module="import sys\nsys.exit(3)\n")),
    "trainer is a number": Case(SWEEP, "arch.trainer is 3", files=arch("3")),
    "trainer is not callable": Case(SWEEP, "module mine_model has no function 'train'", files=arch(module="train = 3\n")),
    "trainer module missing, single run": Case(["+arch=mine"], "arch.trainer 'nowhere.train' cannot be imported",
                                               files=arch("nowhere.train")),
    "trainer of a package arch overridden to a missing one": Case(
        ["+arch=quadratic", "-m", "arch.trainer=tuneflow.models.nowhere.train"],
        "arch.trainer 'tuneflow.models.nowhere.train' cannot be imported"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_trainer_that_cannot_load(project_copy: Project, case: Case) -> None:
    check(project_copy, case)


TRAINER = """
import sys
from tuneflow.models.base import TrainResult

def train(params, data, report, *, seed, device):
    value = {value}
    report(1, {{"val_loss": 1.0}})
    report(2, {{"val_loss": value}})
    return TrainResult(metrics={{"val_loss": value}}, model=None, flavor="pyfunc", epochs_run=2)
"""

DIVERGING = {
    "+inf": ("float('inf')", "val_loss is inf"),
    "-inf": ("float('-inf')", "val_loss is -inf"),
    "1e308 * 10": ("1e308 * 10", "val_loss is inf"),
    "NaN": ("float('nan')", "val_loss is NaN"),
    "sys.exit(3)": ("sys.exit(3)", "sys.exit(3)"),
    "sys.exit()": ("sys.exit()", "sys.exit(None)"),
}


@pytest.mark.parametrize(("value", "reason"), DIVERGING.values(), ids=DIVERGING.keys())
def test_a_non_finite_objective_or_sys_exit_is_fail_and_the_study_goes_on(project_copy: Project, value: str, reason: str) -> None:
    import optuna
    from conftest import load_study

    before = [(t.number, t.state, t.value, t.params) for t in load_study(project_copy.path, "quadratic").trials]
    case = Case([*SWEEP, "hydra.sweeper.n_trials=3", "hydra.sweeper.max_failure_rate=0.5", "tracking.log_model=false"],
                "", files=arch(module=TRAINER.format(value=value)))
    outcome = project_copy.run(case)
    assert not outcome.traceback, outcome.traceback
    # Every trial fails the same way, so the study stops at its failure cap (1 of 3; max_failure_rate=1 would
    # never stop with an error, as in Hydra's Optuna sweeper): one line, exit 2, no traceback.
    assert outcome.returncode == 2, outcome.stdout + outcome.stderr
    assert outcome.stderr.strip().splitlines()[-1].startswith("tuneflow: error: study 'mine': 2 trials failed")
    trials = load_study(project_copy.path, "mine").trials
    assert len(trials) == 2, "the study went on after the first failure"
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all(reason in str(t.user_attrs.get("error")) for t in trials), [t.user_attrs for t in trials]
    assert [(t.number, t.state, t.value, t.params) for t in load_study(project_copy.path, "quadratic").trials] == before
