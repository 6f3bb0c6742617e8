"""mode=fast shrinks a run (one 30-day range, few epochs) whatever the architecture; mode=full changes nothing."""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from pathlib import Path

import pytest
from conftest import mlflow_client, run_tuneflow
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from tuneflow.data import timeseries

ARCHS = sorted(p.name.removesuffix(".yaml") for p in files("tuneflow").joinpath("conf/arch").iterdir()
               if p.name.endswith(".yaml"))
FAST_EPOCHS = 4


def compose_tuneflow(*overrides: str) -> DictConfig:
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_full_is_the_default_and_records_its_name() -> None:
    cfg = compose_tuneflow("+arch=lstm_attention")
    assert cfg.mode.name == "full"
    assert "name: full" in OmegaConf.to_yaml(cfg, resolve=True)


@pytest.mark.parametrize("order", ["arch first", "mode first"])
def test_fast_lstm_attention_trains_one_30_day_range_with_capped_epochs(order: str) -> None:
    overrides = ["+arch=lstm_attention", "mode=fast"]
    cfg = compose_tuneflow(*(overrides if order == "arch first" else reversed(overrides)))
    assert cfg.mode.name == "fast"
    assert cfg.params.epochs == FAST_EPOCHS
    assert (cfg.data.n_ranges, cfg.data.range_days, cfg.data.history_days) == (1, 30, 730)
    folds = timeseries.build_folds(cfg.data, cfg.params.window)
    assert [period.days for period, _ in folds] == [30]


def test_full_lstm_attention_keeps_its_three_quarters_and_epochs() -> None:
    cfg = compose_tuneflow("+arch=lstm_attention", "mode=full")
    assert cfg.params.epochs == 10
    assert (cfg.data.n_ranges, cfg.data.range_days, cfg.data.history_days) == (3, 90, 730)
    assert cfg == compose_tuneflow("+arch=lstm_attention")


@pytest.mark.parametrize(("mode", "epochs"), [("fast", FAST_EPOCHS), ("full", 20)])
def test_mlp_epochs_follow_the_mode(mode: str, epochs: int) -> None:
    cfg = compose_tuneflow("+arch=mlp", f"mode={mode}")
    assert cfg.params.epochs == epochs
    assert cfg.data.name == "digits"


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_that_trains_in_epochs_honours_the_fast_mode(arch: str) -> None:
    """A new arch must read mode.params.epochs (see conf/mode/fast.yaml), or this test names it."""
    full = compose_tuneflow(f"+arch={arch}")
    if "epochs" not in full.params:
        pytest.skip(f"{arch} does not train in epochs")
    fast = compose_tuneflow(f"+arch={arch}", "mode=fast")
    assert fast.params.epochs == fast.mode.params.epochs <= full.params.epochs


def test_an_explicit_value_wins_over_the_mode() -> None:
    cfg = compose_tuneflow("+arch=lstm_attention", "mode=fast", "params.epochs=7", "data.history_days=500")
    assert (cfg.params.epochs, cfg.data.history_days, cfg.data.range_days) == (7, 500, 30)


def test_explicit_date_ranges_are_kept_in_fast_mode() -> None:
    cfg = compose_tuneflow("+arch=lstm_attention", "mode=fast", "data.date_ranges=[[2014-01-01,2014-02-01]]")
    folds = timeseries.build_folds(cfg.data, cfg.params.window)
    assert [(p.start, p.end) for p, _ in folds] == [(date(2014, 1, 1), date(2014, 2, 1))]


@pytest.mark.slow
def test_a_fast_run_logs_its_mode_and_one_range(project: Path) -> None:
    result = run_tuneflow(project, "+arch=lstm_attention", "mode=fast", "tracking.log_model=false")
    assert result.returncode == 0, result.output
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("lstm_attention")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["epochs"] == str(FAST_EPOCHS)
    assert run.data.params["data.n_ranges"] == "1" and run.data.params["data.range_days"] == "30"
    assert run.data.metrics["epochs_run"] <= FAST_EPOCHS
    config = OmegaConf.create(Path(client.download_artifacts(run.info.run_id, "config.yaml", str(project))).read_text())
    assert config.mode.name == "fast"
