"""The exported best configuration composes through Hydra's search path and pins what the trial ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hydra_plugins.tuneflow_best.tuneflow_best import is_tuneflow_path
from tuneflow.analysis.best import export, option_name
from tuneflow.analysis.recompose import compose


def test_an_exported_config_composes_as_plus_best_from_the_project_conf(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trial = compose(["+arch=lstm_attention", "mode=fast", "params.hidden_size=16", "params.lr=0.003", "seed=4"])
    OmegaConf.update(trial, "data.as_of", "2015-06-15")  # the study's pinned day
    path = export(trial, "lstm wide/v2", ["Best configuration of study 'lstm wide/v2'"])
    assert path == Path("conf/best/lstm_wide_v2.yaml")
    text = path.read_text()
    assert text.startswith("# @package _global_\n# Best configuration")
    assert "python -m tuneflow +best=lstm_wide_v2" in text

    retrain = compose(["+best=lstm_wide_v2"])
    assert retrain.arch.name == "lstm_attention" and retrain.mode.name == "fast"
    assert (retrain.params.hidden_size, retrain.params.lr, retrain.seed) == (16, 0.003, 4)
    assert retrain.params.epochs == 4  # fast mode's epochs, written out resolved
    assert retrain.data.as_of == "2015-06-15" and retrain.data.n_ranges == 1
    assert retrain.tracking.experiment == "lstm wide/v2"
    # A command-line override still wins over the exported value.
    assert compose(["+best=lstm_wide_v2", "params.epochs=9"]).params.epochs == 9


def test_the_search_path_is_added_for_tuneflow_only() -> None:
    assert is_tuneflow_path("pkg://tuneflow.conf")
    assert is_tuneflow_path("file:///venv/lib/python3.11/site-packages/tuneflow/conf")
    assert not is_tuneflow_path("pkg://someone_else.conf")
    assert not is_tuneflow_path("file:///home/me/project/conf")


def test_option_names_are_safe_for_hydra() -> None:
    assert option_name("mlp") == "mlp"
    assert option_name("lstm-attention.v2") == "lstm-attention.v2"
    assert option_name("a b/c=d") == "a_b_c_d"
