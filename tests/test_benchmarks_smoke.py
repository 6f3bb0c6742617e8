"""The benchmark scripts run end to end in their quick modes and print the tables they promise: the rows and
columns a reader of benchmarks/README.md expects (never timings: those are the benchmarks' business)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
QUICK_RUNS = {
    "search_quality": ["search_quality.py", "--quick"],
    "scale": ["scale.py", "--quick"],
    "time_to_good": ["time_to_good.py", "--quick"],
    "parallel": ["parallel.py", "--quick"],
    "workers": ["workers.py", "--quick"],
    "failures": ["failures.py", "--quick"],
    "replay": ["replay.py", "--quick"],
}


def table(output: str, first_header: str) -> list[dict[str, str]]:
    """The markdown table whose first column is ``first_header``, as one dict per row."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
    return rows


@pytest.fixture(scope="module")
def quick_outputs() -> dict[str, str]:
    """Every quick run, started together (most of their time is process start-up)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    processes = {
        name: subprocess.Popen([sys.executable, *args], cwd=BENCHMARKS, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, args in QUICK_RUNS.items()
    }
    outputs = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, f"{name} --quick failed:\n{stderr[-3000:]}"
        outputs[name] = stdout
    return outputs


@pytest.mark.slow
def test_search_quality_compares_tuneflow_with_random_and_optuna_per_task_and_budget(quick_outputs: dict[str, str]) -> None:
    rows = table(quick_outputs["search_quality"], "task")
    assert [(r["task"], r["trials"]) for r in rows[:-1]] == [("naval_propulsion", "10"), ("naval_propulsion", "20")]
    assert {r["tuneflow vs random"] for r in rows[:-1]} <= {"win", "tie", "loss"}
    totals = rows[-1]
    assert totals["task"] == "**wins/ties/losses**"
    assert sum(int(n) for n in totals["tuneflow vs optuna-tpe"].split("/")) == 2


@pytest.mark.slow
def test_scale_reports_every_size_and_how_cost_grows(quick_outputs: dict[str, str]) -> None:
    rows = table(quick_outputs["scale"], "trials in study")
    assert [r["trials in study"] for r in rows] == ["30", "100", "growth per step"]
    assert float(rows[1]["ask ms"]) > 0 and float(rows[1]["peak RSS MB"]) > 0
    # A joining worker's read and first ask, in wall and CPU time; the best run found the way tuneflow does.
    assert float(rows[1]["cold read+first ask s"]) >= float(rows[1]["cold read s"]) > 0
    assert float(rows[1]["same, CPU s"]) > 0 and float(rows[1]["best run ms"]) > 0
    # The sweeper's ask and its own bookkeeping, its job's reports, and the same study in Optuna's journal file.
    assert float(rows[1]["ask CPU ms"]) > 0 and float(rows[1]["bookkeeping CPU ms"]) > 0
    assert float(rows[1]["its first report s"]) > 0 and float(rows[1]["report ms"]) > 0
    assert float(rows[1]["journal: first ask s"]) > 0 and float(rows[1]["journal MB"]) > 0
    assert 0 < float(rows[1]["CSV share of sweeper time %"]) <= 100 / 21 + 0.05
    assert "Bulk rows checked to read back as written" in quick_outputs["scale"]


@pytest.mark.slow
def test_time_to_good_has_a_row_per_strategy_and_checks_epochs_against_mlflow(quick_outputs: dict[str, str]) -> None:
    rows = table(quick_outputs["time_to_good"], "strategy")
    assert [r["strategy"] for r in rows] == ["grid", "random", "tpe (hydra-optuna)", "tuneflow"]
    assert all(r["reached"] in ("0/1", "1/1") for r in rows)
    assert rows[1]["epochs vs random"] in ("1x", "-")
    checked = quick_outputs["time_to_good"].split("Epochs checked against MLflow epochs_run: ")[1].split(" ")[0]
    agree, total = (int(n) for n in checked.split("/"))
    assert total >= 4 and agree == total


@pytest.mark.slow
def test_parallel_shares_one_study_between_two_workers(quick_outputs: dict[str, str]) -> None:
    rows = table(quick_outputs["parallel"], "variant")
    assert [r["variant"] for r in rows] == ["1 worker, torch_threads=1", "2 workers, torch_threads=1"]
    assert rows[0]["trials per worker"] == "2"
    assert sorted(int(n) for n in rows[1]["trials per worker"].split("+")) in ([0, 2], [1, 1])



@pytest.mark.slow
def test_workers_reports_trials_per_minute_for_each_worker_count(quick_outputs: dict[str, str]) -> None:
    rows = table(quick_outputs["workers"], "storage")
    assert [(r["storage"], r["workers"], r["trials"]) for r in rows] == [
        ("embedded (journal)", "1", "4"), ("embedded (journal)", "2", "4")]
    assert rows[0]["vs 1 worker"] == "1.00x" and float(rows[1]["trials/min"]) > 0

@pytest.mark.slow
def test_failures_compares_samplers_per_shape_for_each_worker_count(quick_outputs: dict[str, str]) -> None:
    output = quick_outputs["failures"]
    samplers = ["random", "optuna-tpe", "tuneflow", "optuna-tpe-no-failures"]
    shapes = ["half-space", "corner", "nan-lr"]
    for workers in ("**1 worker**", "**2 workers**"):
        section = output.split(workers)[1]
        rows = table(section, "shape")
        assert [(r["shape"], r["sampler"]) for r in rows] == [(shape, s) for shape in shapes for s in samplers]
        assert {"failed 11-30", "failed 11-20", "failed 21-30", "regret@20", "regret@30"} <= set(rows[0])
        assert all(r["failed 11-30"].endswith("%") for r in rows if r["sampler"] != "optuna-tpe-no-failures")
        verdicts = table(section[section.index("| shape | failed share"):], "shape")
        assert [r["shape"] for r in verdicts] == shapes
        assert all(r["failed share: tuneflow vs random"] in ("lower", "tie", "higher") for r in verdicts)
        assert all(r["goal met"] in ("yes", "no") for r in verdicts)


@pytest.mark.slow
def test_replay_compares_each_strategy_with_random_on_every_recorded_table(quick_outputs: dict[str, str]) -> None:
    output = quick_outputs["replay"]
    for name in ("quadratic/full", "lstm_attention/fast"):
        rows = table(output.split(f"**{name}**")[1], "strategy")
        assert [r["strategy"] for r in rows] == ["random (no pruning)", "tpe (no pruning)",
                                                 "tpe + median (tuneflow default)"]
        assert all(r["reached"] in ("0/2", "1/2", "2/2") for r in rows)
        assert int(rows[0]["pruned"].split(".")[0]) == 0 and float(rows[2]["trials"]) >= 1
    summary = table(output, "table")
    assert [r["table"] for r in summary] == ["quadratic/full", "lstm_attention/fast", "**tables with >= 5x**"]


def load_run_all() -> Any:
    spec = importlib.util.spec_from_file_location("run_all", BENCHMARKS / "run_all.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["run_all"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_run_all_rewrites_only_what_stands_between_a_benchmarks_markers() -> None:
    run_all = load_run_all()
    readme = ("# Benchmarks\nintro\n<!-- results:scale -->\nold table\n<!-- /results:scale -->\nreading\n"
              "<!-- results:parallel -->\nkeep me\n<!-- /results:parallel -->\n")
    updated = run_all.replace_block(readme, "scale", "| new | table |\n")
    assert updated == readme.replace("old table", "| new | table |")
    with pytest.raises(KeyError, match="results:overhead"):
        run_all.replace_block(readme, "overhead", "x")
    assert {b.name for b in run_all.BENCHMARKS} >= {"overhead", "time_to_good_mlp", "search_quality", "scale", "parallel",
                                                    "failures", "replay"}
