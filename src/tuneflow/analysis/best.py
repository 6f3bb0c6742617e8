"""Export a chosen configuration as a composable Hydra config: ``conf/best/<study>.yaml``.

``python -m tuneflow +best=<study>`` then retrains it in one run, model logged. The file holds the
trial's resolved values (arch, params, data, seed), so it does not change when the package's defaults
do; it selects the arch and the mode it was tuned in through its defaults list, the way
lightning-hydra-template's ``experiment`` configs do. ``conf/`` under the folder tuneflow runs in is on
Hydra's search path (``hydra_plugins/tuneflow_best``); with another folder, pass ``--config-dir``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The config group of exported configurations, and the folder (under the project's conf/) it lives in.
GROUP = "best"
#: Top-level nodes a retrain takes from the trial. Not trial/tracking/root_dir/mode: those belong to
#: where and how it runs now (mode is chosen through the defaults list).
EXPORTED_NODES = ("arch", "params", "data", "seed", "device")


def option_name(study_name: str) -> str:
    """A study name as a Hydra option name (``+best=NAME``): letters, digits, ``_``, ``-``, ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)


def best_yaml(cfg: DictConfig, study_name: str, header: Sequence[str]) -> str:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    body = {key: resolved[key] for key in EXPORTED_NODES if key in resolved}
    # The retrain lands in the study's MLflow experiment, beside the trials it came from.
    body["tracking"] = {"experiment": str(OmegaConf.select(cfg, "tracking.experiment") or study_name)}
    defaults: list[Any] = [f"/arch: {cfg.arch.name}"]
    mode = OmegaConf.select(cfg, "mode.name")
    if mode:
        defaults.append(f"override /mode: {mode}")
    defaults.append("_self_")
    lines = ["# @package _global_", *(f"# {line}" for line in header),
             f"# Retrain: python -m tuneflow +{GROUP}={option_name(study_name)}", "defaults:"]
    lines += [f"  - {entry}" for entry in defaults]
    return "\n".join(lines) + "\n" + OmegaConf.to_yaml(OmegaConf.create(body))


def export(cfg: DictConfig, study_name: str, header: Sequence[str], conf_dir: str | Path = "conf") -> Path:
    """Write ``<conf_dir>/best/<study>.yaml`` (replacing an earlier export) and return its path."""
    path = Path(conf_dir) / GROUP / f"{option_name(study_name)}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(best_yaml(cfg, study_name, header))
    tmp.replace(path)
    return path
