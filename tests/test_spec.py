"""JSON experiment specs: translated into one grid study, validated before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import load_study, study_runs, tuneflow_env

from tuneflow.cli import spec as specs
from tuneflow.trial.arch_task import available_archs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_experiments.json"


def parse(raw: dict[str, Any], name: str = "experiments") -> specs.Spec:
    return specs.parse_spec(raw, default_study_name=name, archs=available_archs())


def test_the_example_translates_to_a_grid_study_over_its_parameters_and_range() -> None:
    spec = parse(specs.read_spec_file(EXAMPLE), name=EXAMPLE.stem)
    assert spec.n_combinations == 27
    assert specs.to_overrides(spec) == [
        "-m",
        "+arch=lstm_attention",
        "~search_space",
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.n_trials=27",
        "hydra.sweeper.study_name=seed_experiments",
        'data.date_ranges=[["2014-01-01","2014-04-01"]]',
        "hydra.sweeper.params.num_of_attentions=choice(1, 2, 3)",
        "hydra.sweeper.params.attention_hidden_layer_size=choice(32, 128, 256)",
        "hydra.sweeper.params.attention_regularization=choice(0.1, 0.01, 0.001)",
    ]


def test_the_example_validates_and_builds_a_tuneflow_command() -> None:
    command = specs.build_command(EXAMPLE, ["-m", "mode=fast"])
    assert command[:3] == [sys.executable, "-m", "tuneflow"]
    assert command[-1] == "mode=fast" and command.count("-m") == 2  # python -m, tuneflow -m


@pytest.mark.parametrize(
    "raw",
    [
        {"architecture": "lstm-attention", "date-range": [["2014-01-01", "2014-04-01"]], "study-name": "s"},
        {"architecture": "lstm_attention", "date_range": [["2014-01-01", "2014-04-01"]], "study_name": "s"},
        {"architecture": "lstm_attention", "date_ranges": [["2014-01-01", "2014-04-01"]], "study-name": "s"},
        {"architecture": "lstm-attention", "date-ranges": ["2014-01-01", "2014-04-01"], "study_name": "s"},
    ],
    ids=["dashes", "underscores", "plural", "one bare pair"],
)
def test_dashes_and_underscores_mean_the_same(raw: dict[str, Any]) -> None:
    spec = parse({**raw, "parameters": {"num-of-attentions": [1, 2], "lr_schedule": ["constant", "step"]}})
    assert spec == specs.Spec(
        architecture="lstm_attention",
        parameters={"num_of_attentions": [1, 2], "lr_schedule": ["constant", "step"]},
        study_name="s",
        date_ranges=[["2014-01-01", "2014-04-01"]],
    )


def test_fixed_overrides_and_text_values() -> None:
    spec = parse({"architecture": "mlp", "parameters": {"lr_schedule": ["step", "plateau"], "dropout": [0.0]},
                  "overrides": {"params.epochs": 3, "mode": "fast", "tracking.log_model": False}})
    overrides = specs.to_overrides(spec)
    assert "hydra.sweeper.n_trials=2" in overrides
    assert not any(o.startswith("data.date_ranges") for o in overrides)
    assert {"params.epochs=3", "mode=fast", "tracking.log_model=false"} <= set(overrides)
    assert "hydra.sweeper.params.lr_schedule=choice(step, plateau)" in overrides


def test_a_range_needs_the_history_in_front_of_it_in_the_chosen_mode() -> None:
    spec = parse({"architecture": "lstm_attention", "parameters": {"hidden_size": [16]},
                  "date-range": [["2013-03-01", "2013-04-01"]]})
    with pytest.raises(specs.SpecError, match="data.history_days=730"):
        specs.check_date_ranges(spec, specs.compose_data_config(spec, []))
    with pytest.raises(specs.SpecError, match="data.history_days=730"):
        specs.check_date_ranges(spec, specs.compose_data_config(spec, ["mode=fast"]))
    one_year = specs.compose_data_config(spec, ["data.history_days=365"])
    assert specs.check_date_ranges(spec, one_year) == [["2013-03-01", "2013-04-01"]]


BASE = {"architecture": "lstm_attention", "parameters": {"num_of_attentions": [1, 2]}}
BAD_SPECS: dict[str, tuple[str, str]] = {
    "malformed JSON": ('{"architecture": "lstm_attention",\n  "parameters": {"a": [1,]}}',
                      "malformed JSON at line 2, column 26: Expecting value"),
    "not an object": ("[1, 2]", "must be a JSON object"),
    "unknown key": (json.dumps({**BASE, "date": 1}), "unknown key 'date' in the experiment spec; allowed keys: "
                    "architecture, date-range, parameters, study-name, overrides"),
    "unknown architecture": (json.dumps({**BASE, "architecture": "transformer"}),
                             "unknown architecture 'transformer'; choose one of cnn, lightgbm, lstm_attention"),
    "no parameters": (json.dumps({"architecture": "mlp"}), "has no 'parameters'"),
    "empty parameters": (json.dumps({**BASE, "parameters": {}}), "'parameters' must be a non-empty object"),
    "empty list": (json.dumps({**BASE, "parameters": {"num_of_attentions": []}}),
                   "parameter 'num_of_attentions' has an empty list"),
    "value not a list": (json.dumps({**BASE, "parameters": {"num_of_attentions": 2}}),
                         "parameter 'num_of_attentions' is 2, but must be a list"),
    "nested value": (json.dumps({**BASE, "parameters": {"num_of_attentions": [[1]]}}),
                     "is not a number, string, boolean or null"),
    "duplicate value": (json.dumps({**BASE, "parameters": {"num_of_attentions": [1, 1]}}), "lists 1 more than once"),
    "end before start": (json.dumps({**BASE, "date-range": [["2014-04-01", "2014-01-01"]]}),
                         "date-range[0] 2014-04-01..2014-01-01 ends on or before it starts"),
    "outside the data": (json.dumps({**BASE, "date-range": [["2015-11-01", "2016-02-01"]]}),
                         "date-range[0] 2015-11-01..2016-02-01 lies outside the data (2012-01-01..2015-12-31"),
    "not a date": (json.dumps({**BASE, "date-range": [["2014-13-01", "2014-14-01"]]}), "is not a date"),
    "dates for tabular data": (json.dumps({**BASE, "architecture": "mlp", "parameters": {"dropout": [0.1]},
                                           "date-range": [["2014-01-01", "2014-02-01"]]}), "which has no dates"),
}


@pytest.mark.parametrize(("text", "message"), BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_a_bad_spec_is_one_line_exit_2_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments.json").write_text(text)
    assert specs.main(["experiments.json"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tuneflow: error: ")
    assert message in lines[0]
    assert not (tmp_path / "mlruns").exists()


def test_a_bad_spec_exits_2_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "experiments.json").write_text(json.dumps({**BASE, "architecture": "lstm"}))
    result = subprocess.run([sys.executable, "-m", "tuneflow", "spec", "experiments.json"], cwd=tmp_path,
                            env=tuneflow_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("tuneflow: error: unknown architecture 'lstm'")
    assert not (tmp_path / "mlruns").exists()


def test_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert specs.main([str(tmp_path / "nope.json")]) == 2
    assert "cannot read experiment spec" in capsys.readouterr().err


RANGES = [["2014-01-01", "2014-01-15"], ["2014-06-01", "2014-06-15"]]


@pytest.mark.slow
def test_a_tiny_spec_runs_every_combination_once_over_each_range(project: Path) -> None:
    (project / "tiny.json").write_text(json.dumps({
        "architecture": "lstm-attention",
        "date-range": RANGES,
        "parameters": {"num_of_attentions": [1, 2], "lr_schedule": ["constant"]},
        "overrides": {"params.epochs": 1, "params.window": 3, "tracking.log_model": False},
    }))
    result = subprocess.run([sys.executable, "-m", "tuneflow", "spec", "tiny.json"], cwd=project,
                            env=tuneflow_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    study = load_study(project, "tiny")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert sorted(t.params["num_of_attentions"] for t in study.trials) == [1, 2]
    assert {t.params["lr_schedule"] for t in study.trials} == {"constant"}
    runs = study_runs(project, "tiny")
    assert len(runs) == 2
    for run in runs:
        for start, end in RANGES:
            assert f"{start}..{end}/best_val_mae" in run.data.metrics
        assert run.data.params["data.date_ranges"] == str(RANGES)
        assert run.data.metrics["objective"] == pytest.approx(
            sum(run.data.metrics[f"{s}..{e}/best_val_mae"] for s, e in RANGES) / 2
        )
    # The second trial is compared with the first (the best so far) range by range.
    first, second = sorted(runs, key=lambda r: int(r.data.tags["tuneflow.trial_number"]))
    assert "ranges_beaten" not in first.data.metrics
    wins = [second.data.metrics[f"{s}..{e}/best_val_mae"] < first.data.metrics[f"{s}..{e}/best_val_mae"]
            for s, e in RANGES]
    assert second.data.metrics["ranges_beaten"] == sum(wins)
    assert second.data.metrics["beats_best_on_every_range"] == float(all(wins))
    assert second.data.tags["tuneflow.beats_best_on_every_range"] == str(all(wins)).lower()


@pytest.mark.slow
def test_the_shipped_example_runs_as_written(project: Path) -> None:
    # As written, with one epoch per training so the 27 combinations stay quick.
    result = subprocess.run([sys.executable, "-m", "tuneflow", "spec", str(EXAMPLE), "params.epochs=1",
                             "tracking.log_model=false"], cwd=project, env=tuneflow_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    study = load_study(project, "seed_experiments")
    raw = json.loads(EXAMPLE.read_text())["parameters"]
    combos = {(t.params["num_of_attentions"], t.params["attention_hidden_layer_size"],
               t.params["attention_regularization"]) for t in study.trials}
    assert len(study.trials) == 27 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert combos == {(a, b, c) for a in raw["num_of_attentions"] for b in raw["attention_hidden_layer_size"]
                      for c in raw["attention_regularization"]}
    numbers_in_grid_order = [sorted(combos).index(c) for c in
                             [(t.params["num_of_attentions"], t.params["attention_hidden_layer_size"],
                               t.params["attention_regularization"]) for t in study.trials]]
    assert numbers_in_grid_order != sorted(numbers_in_grid_order), "combinations run in random order"
    assert len(study_runs(project, "seed_experiments")) == 27
