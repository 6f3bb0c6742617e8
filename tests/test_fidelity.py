"""The fast-vs-full fidelity check: rank correlation of the two modes, printed and logged to MLflow."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Result, mlflow_client, tuneflow_env

from tuneflow.analysis import fidelity
from tuneflow.analysis.fidelity import Measurement, Row
from tuneflow.errors import ConfigError


def run_fidelity(project: Path, *args: str) -> Result:
    done = subprocess.run([sys.executable, "-m", "tuneflow", "fidelity", *args], cwd=project, env=tuneflow_env(),
                          capture_output=True, text=True, timeout=300)
    return Result(done.returncode, done.stdout, done.stderr)


def rows(fast: list[float], full: list[float]) -> list[Row]:
    return [Row(i, {"x": i}, {"fast": Measurement(a), "full": Measurement(b)}) for i, (a, b) in enumerate(zip(fast, full))]


def test_the_same_order_correlates_perfectly_and_the_reverse_negatively() -> None:
    assert fidelity.correlate(rows([1, 2, 3, 4], [10, 20, 30, 40]))[0] == pytest.approx(1.0)
    assert fidelity.correlate(rows([1, 2, 3, 4], [40, 30, 20, 10]))[0] == pytest.approx(-1.0)


def test_a_configuration_that_failed_in_either_mode_is_left_out() -> None:
    table = rows([1, 2, 3, 4], [10, 20, 30, 40])
    table[1].results["full"] = Measurement(error="MetricIsNaN: diverged")
    rho, _, compared = fidelity.correlate(table)
    assert (rho, compared) == (pytest.approx(1.0), 3)
    assert fidelity.ranks(table, "fast", "minimize") == {0: 1, 2: 2, 3: 3}
    assert fidelity.ranks(table, "fast", "maximize") == {3: 1, 2: 2, 0: 3}
    assert math.isnan(fidelity.correlate(table[:3])[0]), "two pairs are too few to rank"


def test_configurations_are_sampled_reproducibly_from_the_space() -> None:
    space = {"lr": "tag(log, interval(1e-4, 1e-1))", "hidden_size": "choice(16, 32)", "epochs": "3"}
    first, fixed = fidelity.sample_configurations(space, 4, seed=1)
    assert first == fidelity.sample_configurations(space, 4, seed=1)[0]
    assert fixed == {"params.epochs": "3"}
    assert all(1e-4 <= p["lr"] <= 1e-1 and p["hidden_size"] in (16, 32) for p in first)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["+arch=mlp", "--configs", "2"], "needs at least 3"), (["+arch=mlp", "mode=fast"], "both modes")],
)
def test_bad_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fidelity.parse_arguments(argv)


@pytest.mark.slow
def test_a_tiny_check_prints_a_correlation_and_logs_one_mlflow_run(project: Path) -> None:
    result = run_fidelity(project, "+arch=lstm_attention", "--configs", "3", "--reseed", "params.epochs=1")
    assert result.returncode == 0, result.output
    assert re.search(r"noise ceiling: .* spearman=\S+", result.stdout), result.stdout
    match = re.search(r"spearman=(\S+) \(p=(\S+)\) over 3 of 3 configurations", result.stdout)
    assert match, result.stdout
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("fidelity")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert {k: run.data.params[k] for k in ("arch", "K", "seed")} == {"arch": "lstm_attention", "K": "3", "seed": "0"}
    assert run.data.metrics["spearman"] == pytest.approx(float(match.group(1)), abs=1e-3)
    assert {"p_value", "seconds_fast", "seconds_full", "spearman_full_vs_reseeded"} <= set(run.data.metrics)
    table = Path(client.download_artifacts(run.info.run_id, "fidelity.csv", str(project)))
    with table.open() as handle:
        lines = list(csv.DictReader(handle))
    assert [line["config"] for line in lines] == ["0", "1", "2"]
    assert sorted(line["fast_rank"] for line in lines) == ["1", "2", "3"]
    # The printed correlation is Spearman's of the table's fast and full scores, recomputed here.
    from scipy.stats import spearmanr

    fast = [float(line["fast_val_mae"]) for line in lines]
    full = [float(line["full_val_mae"]) for line in lines]
    assert float(match.group(1)) == pytest.approx(spearmanr(fast, full).statistic, abs=1e-3)
