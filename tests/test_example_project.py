"""The worked example of the README ("Tune your own model"): the bakery's own trainer and its own dated
CSV, named from the project's `conf/`, tuned by `python -m tuneflow` and by the `tuneflow` script,
from a copy of the repository's `conf/` and `examples/` (a user's project folder)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    Result,
    load_logged_model,
    load_study,
    mlflow_client,
    run_tuneflow,
    study_runs,
    tuneflow_env,
)

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture
def bakery(tmp_path: Path) -> Path:
    folder = tmp_path / "bakery-project"
    shutil.copytree(REPO / "conf", folder / "conf")
    shutil.copytree(REPO / "examples", folder / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def run_script(project: Path, *args: str) -> Result:
    """The `tuneflow` console script (no `python -m`: the project folder is not on sys.path by itself)."""
    script = Path(sys.executable).with_name("tuneflow")
    process = subprocess.run([str(script), *args], cwd=project, env=tuneflow_env(), capture_output=True,
                             text=True, timeout=300)
    return Result(process.returncode, process.stdout, process.stderr)


def test_the_bakery_trainer_is_tuned_on_every_date_range_of_its_own_csv(bakery: Path) -> None:
    result = run_tuneflow(bakery, "+arch=bakery_sgd", "-m", "hydra.sweeper.n_trials=3", "data.n_ranges=2",
                          "data.range_days=30", "params.epochs=3")
    assert result.returncode == 0, result.output

    study = load_study(bakery, "bakery_sgd")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    runs = {int(r.data.tags["tuneflow.trial_number"]): r for r in study_runs(bakery, "bakery_sgd")}
    client = mlflow_client(bakery)
    for trial in trials:
        run = runs[trial.number]
        # Two validation ranges of 30 days, each with its own step and best metrics, drawn as of the
        # day the study began (its params record that day).
        ranges = sorted({key.split("/")[0] for key in run.data.metrics if "/" in key})
        assert len(ranges) == 2 and all(".." in name for name in ranges)
        assert run.data.params["data.as_of"] == study.user_attrs["as_of"]
        for name in ranges:
            assert run.data.metrics[f"{name}/best_val_mae"] > 0
            assert len(client.get_metric_history(run.info.run_id, f"{name}/val_mae")) >= 1
        mean = sum(run.data.metrics[f"{name}/best_val_mae"] for name in ranges) / 2
        assert trial.value == pytest.approx(mean) == pytest.approx(run.data.metrics["objective"])
        # The model was saved through MLflow's scikit-learn flavor, picked from its type.
        model = load_logged_model(bakery, run.info.run_id)
        assert "sklearn" in model.metadata.flavors


def test_the_tuneflow_script_imports_the_projects_trainer_too(bakery: Path) -> None:
    result = run_script(bakery, "+arch=bakery_sgd", "-m", "hydra.sweeper.n_trials=1", "mode=fast")
    assert result.returncode == 0, result.output
    assert [t.state.name for t in load_study(bakery, "bakery_sgd").get_trials()] == ["COMPLETE"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("conf/arch/bakery_sgd.yaml", "examples.bakery.model.train", "examples.bakery.modle.train"),
         "arch.trainer 'examples.bakery.modle.train' cannot be imported: ModuleNotFoundError: No module named "
         "'examples.bakery.modle'"),
        (("examples/bakery/model.py", "import numpy as np", "import numpy as np\nimport sklearn.no_such_thing"),
         "cannot be imported: ModuleNotFoundError: No module named 'sklearn.no_such_thing'"),
        (("conf/data/bakery.yaml", "path: examples/bakery/daily_sales.csv", "path: examples/bakery/sales.csv"),
         "data.path 'examples/bakery/sales.csv' is not a file"),
        (("conf/data/bakery.yaml", "target: loaves", "target: croissants"),
         "data.path examples/bakery/daily_sales.csv has no column(s) 'croissants'"),
        (("conf/data/bakery.yaml", "date_column: date", "date_column: day"),
         "has no date column 'day' (columns: date, loaves, temperature, promo, holiday); set data.date_column"),
    ],
)
def test_a_broken_trainer_or_data_file_is_one_line_before_anything_exists(
    bakery: Path, change: tuple[str, str, str], message: str
) -> None:
    path, old, new = change
    file = bakery / path
    file.write_text(file.read_text().replace(old, new))
    result = run_tuneflow(bakery, "+arch=bakery_sgd", "-m", "hydra.sweeper.n_trials=1")
    assert result.returncode == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("tuneflow: error: ") and message in line
    assert "Traceback" not in result.output
    assert not (bakery / "mlruns").exists()
