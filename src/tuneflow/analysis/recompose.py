"""A finished trial's training config, recomposed: for repeats with new seeds and for the exported best.

The sweeper records each trial's fixed job overrides (``+arch=mlp``, ``mode=fast``, ``params.epochs=3``,
...) as the trial user attribute ``tuneflow_overrides``; with the trial's sampled params they are exactly
the overrides its job was composed from, so Hydra's compose API rebuilds the same config (defaults,
interpolations and all). Trials recorded before that attribute existed fall back to the resolved
``config.yaml`` their MLflow run carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from tuneflow.errors import ConfigError
from tuneflow.storage.study import AS_OF_ATTR, OVERRIDES_ATTR, RUN_ID_ATTR


def compose(overrides: Sequence[str], *, with_hydra: bool = False) -> DictConfig:
    """Tuneflow's app config for ``overrides``, composed by Hydra as ``python -m tuneflow`` composes it
    (the project's ``conf/`` included); ``with_hydra`` keeps the ``hydra`` node."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)


def job_overrides(trial: Any) -> list[str] | None:
    """The overrides the trial's job was composed from (without ``trial.number``), if recorded."""
    from tuneflow.search.space import PARAMS_NODE, to_overrides

    fixed = trial.user_attrs.get(OVERRIDES_ATTR)
    if fixed is None:
        return None
    return [*fixed, *to_overrides(trial.params, PARAMS_NODE)]


def trial_config(trial: Any, study: Any, client: Any | None = None, changes: Mapping[str, Any] | None = None) -> DictConfig:
    """The trial's config as its job saw it, with ``changes`` (``{"seed": 3}``) applied on top.

    ``client`` (MLflow) is only needed for the fallback on the run's ``config.yaml``.
    """
    from tuneflow.trial.arch_task import pin_automatic_date_ranges

    overrides = job_overrides(trial)
    if overrides is not None:
        cfg = compose(overrides)
    else:
        cfg = _config_from_run(trial, client)
    with open_dict(cfg):
        for path, value in (changes or {}).items():
            OmegaConf.update(cfg, path, value, force_add=True)
    pin_automatic_date_ranges(cfg, study.user_attrs.get(AS_OF_ATTR))
    return cfg


def _config_from_run(trial: Any, client: Any | None) -> DictConfig:
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if client is None or not run_id:
        raise ConfigError(
            f"trial {trial.number} records neither its overrides nor an MLflow run; it cannot be recomposed"
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tuneflow-config-") as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception as error:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            raise ConfigError(f"trial {trial.number}: cannot read config.yaml of MLflow run {run_id}: {error}") from None
        cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg
