"""tuneflow's own app: an architecture (``conf/arch/NAME.yaml``: a trainer function) trained on every fold
of its data (``conf/data/NAME.yaml``: a holdout split or one fold per date range).

This is a client of the public API like any user's task: it reports per epoch through
``tuneflow.report``, reads the current trial for the study's start date and best trial, logs the model
through ``tuneflow.log_model`` and returns its metrics. The sweeper knows nothing of it. ``check_job``
is the plan-time check the sweeper runs on a job config before it creates anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from tuneflow.data import folds as datasets
from tuneflow.dotted import import_function
from tuneflow.errors import ConfigError, MetricIsNaN
from tuneflow.models.base import Trainer, TrainResult
from tuneflow.trial import api


def load_trainer(path: str) -> Trainer:
    """``tuneflow.models.mlp.train`` (or a project's ``my_model.train``) -> the function."""
    return import_function(path, "arch.trainer")


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    return dict(OmegaConf.to_container(cfg.params, resolve=True))  # type: ignore[arg-type]


def check_torch_threads(threads: Any) -> int | None:
    """``torch_threads`` as a count, or None for PyTorch's own default (one thread per core)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"torch_threads is {threads!r}, but must be a whole number of at least 1, or null")
    return threads


def limit_torch_threads(threads: Any) -> None:
    """Cap the threads PyTorch trains with in this process. With several workers on one machine, each
    using every core, they slow each other down several-fold (benchmarks/README.md, parallel.py)."""
    count = check_torch_threads(threads)
    if count is None:
        return
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch is in use and sees a GPU, else ``cpu``; an explicit device must
    exist on this machine. Trainers always receive a concrete device."""
    import sys

    if device == "auto" and "torch" not in sys.modules:
        return "cpu"  # a trainer that does not use PyTorch: nothing to place on a GPU
    if device == "cpu":
        return device
    from tuneflow.models._torch import resolve_device as torch_device

    return str(torch_device(device))


@dataclass
class FoldResults:
    values: list[float] = field(default_factory=list)
    #: The folds' names (date ranges as ``start..end``), in the order of ``values``.
    names: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    last: TrainResult | None = None
    epochs: int = 0
    #: The trial's objective: ``values`` combined by ``data.objective_over_ranges``.
    objective: float = math.nan


class FoldReporter:
    """The ``report`` hook a trainer gets: per-fold metric names, one step counter over the folds (so
    the pruner compares trials at the same point of the same range), handed to ``tuneflow.report``."""

    def __init__(self, objective: str) -> None:
        self.objective = objective
        self.prefix = ""
        self.step_offset = 0

    def start_fold(self, index: int, name: str, steps_per_fold: int, n_folds: int) -> None:
        self.prefix = f"{name}/" if n_folds > 1 else ""
        self.step_offset = index * steps_per_fold

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.objective not in metrics:
            raise ConfigError(
                f"arch.objective is {self.objective!r}, but the trainer reports {', '.join(sorted(metrics))}"
            )
        named = {f"{self.prefix}{key}": value for key, value in metrics.items()}
        try:
            api.report(self.step_offset + step, named, value=float(metrics[self.objective]))
        except MetricIsNaN:
            raise MetricIsNaN(
                f"{self.prefix}{self.objective} is {api.non_finite(float(metrics[self.objective]))} at step {step}: "
                "training diverged"
            ) from None


def train_folds(cfg: DictConfig, reporter: FoldReporter | None = None) -> FoldResults:
    """Train once per fold; per-fold metrics are prefixed with the fold's name when there are several."""
    limit_torch_threads(cfg.get("torch_threads"))
    trainer = load_trainer(str(cfg.arch.trainer))
    reporter = reporter or FoldReporter(str(cfg.arch.objective))
    device = resolve_device(str(cfg.get("device", "auto")))
    params = hyperparameters(cfg)
    folds = datasets.load_folds(cfg.data, params)
    steps_per_fold = int(cfg.arch.get("steps_per_fold") or params.get("epochs", 1000))
    results = FoldResults()
    for index, fold in enumerate(folds):
        reporter.start_fold(index, fold.name, steps_per_fold, len(folds))
        result = trainer(params, fold.data, reporter, seed=int(cfg.seed), device=device)
        if reporter.objective not in result.metrics:
            raise ConfigError(
                f"arch.objective is {reporter.objective!r}, but the trainer's result holds "
                f"{', '.join(sorted(result.metrics)) or 'no metric'}"
            )
        value = float(result.metrics[reporter.objective])
        if not math.isfinite(value):
            raise MetricIsNaN(f"{reporter.prefix}{reporter.objective} is {api.non_finite(value)} after training")
        results.values.append(value)
        results.names.append(fold.name)
        results.epochs += result.epochs_run
        for key, metric in result.metrics.items():
            results.metrics[f"{reporter.prefix}best_{key}"] = float(metric)
        for key, metric in result.extra.items():
            results.metrics[f"{reporter.prefix}{key}"] = float(metric)
        results.last = result
    if len(folds) > 1:
        # Each range's value is kept beside their mean.
        for key in {k.split("/", 1)[1] for k in results.metrics if "/" in k}:
            per_fold = [results.metrics[f"{fold.name}/{key}"] for fold in folds if f"{fold.name}/{key}" in results.metrics]
            results.metrics[key] = sum(per_fold) / len(per_fold)
    how = str(cfg.data.get("objective_over_ranges", "mean")) if "data" in cfg else "mean"
    results.objective = datasets.aggregate(results.values, how, str(cfg.arch.get("direction", "minimize")))
    return results


def compare_with_best(study: Any, results: FoldResults, objective: str, direction: str) -> dict[str, float]:
    """How a finished trial fares against the study's best so far, range by range.

    ``ranges_beaten`` counts the ranges on which it is better than the best trial, and
    ``beats_best_on_every_range`` is 1 when that is all of them: with several ranges, a new best that
    wins only on average may be noise; one that wins on every range can be trusted more. Empty when
    there is one range, no best yet, or the best was scored on other ranges.
    """
    if study is None or len(results.names) < 2 or len(study.directions) > 1:  # no single best to compare with
        return {}
    try:
        best = study.best_trial
    except ValueError:
        return {}
    theirs = [best.user_attrs.get(f"{name}/best_{objective}") for name in results.names]
    if any(value is None for value in theirs):
        return {}
    better = [(mine < other) if direction == "minimize" else (mine > other)
              for mine, other in zip(results.values, theirs)]
    return {"ranges_beaten": float(sum(better)), "beats_best_on_every_range": float(all(better))}


def pin_automatic_date_ranges(cfg: DictConfig, study_as_of: str | None) -> None:
    """Automatic date ranges change with the month; a study keeps the ranges of the day it began,
    so trials run weeks apart (or resumed next month) are still compared on the same ranges."""
    if study_as_of and cfg.data.get("kind") == "timeseries" and cfg.data.get("as_of") is None:
        with open_dict(cfg):
            cfg.data.as_of = study_as_of


def run(cfg: DictConfig) -> dict[str, float]:
    """The task of ``python -m tuneflow +arch=NAME``: train on every fold, return the metrics (the
    combined ``objective`` among them) and log the trained model."""
    started = time.perf_counter()
    trial = api.current_trial()
    study = trial.study if trial is not None else None
    results = train_folds(cfg)
    direction = str(cfg.arch.get("direction", "minimize"))
    versus_best = compare_with_best(study, results, str(cfg.arch.objective), direction)
    metrics = {**results.metrics, "objective": results.objective, "epochs_run": float(results.epochs), **versus_best}
    metrics["train_seconds"] = time.perf_counter() - started
    if trial is not None and trial.objectives:
        # A multi-objective study names its objectives (hydra.sweeper.objective=[val_accuracy,
        # train_seconds]): the architecture's metric is the combined objective under its own name.
        metrics.setdefault(str(cfg.arch.objective), results.objective)
    if versus_best and trial is not None and trial.run_id is not None:
        _tag(trial, "tuneflow.beats_best_on_every_range", str(bool(versus_best["beats_best_on_every_range"])).lower())
    if cfg.get("tracking", {}).get("log_model", True) and results.last is not None:
        api.log_model(results.last.model, results.last.flavor)
    return metrics


def _tag(trial: api.Trial, key: str, value: str) -> None:
    from tuneflow.tracking import runs as tracking

    assert trial.tracking_uri is not None and trial.run_id is not None
    tracking.client_for(trial.tracking_uri).set_tag(trial.run_id, key, value)


def check_job(cfg: DictConfig) -> None:
    """Plan-time check of one job config (the sweeper runs it on the smallest and the largest point of
    the space before it creates anything): an architecture is chosen, its trainer imports, the folds
    can be built (date ranges inside the data, window within them), the device and threads exist."""
    if "arch" not in cfg:
        raise ConfigError(f"no architecture chosen: add +arch=NAME, one of {', '.join(available_archs())}")
    check_arch(cfg)
    check_added_keys(cfg)
    check_seed(cfg.get("seed"))
    load_trainer(str(cfg.arch.trainer))
    params = OmegaConf.to_container(cfg.params, resolve=True) if "params" in cfg else {}
    datasets.check_folds(cfg.get("data") or {}, params)  # type: ignore[arg-type]
    check_torch_threads(cfg.get("torch_threads"))
    device = str(cfg.get("device", "auto"))
    if device not in ("auto", "cpu"):  # only then is torch worth importing here
        resolve_device(device)


#: What an architecture config must say (conf/arch/NAME.yaml).
ARCH_KEYS = ("name", "trainer", "objective")
#: Seeds numpy, PyTorch and LightGBM all take.
MAX_SEED = 2**32 - 1


def check_arch(cfg: DictConfig) -> None:
    """The architecture config names itself, its trainer (module.function) and its objective."""
    arch = cfg.arch
    if not isinstance(arch, DictConfig):
        raise ConfigError(f"arch is {arch!r}; conf/arch/NAME.yaml must hold an arch: mapping (name, trainer, objective)")
    for key in ARCH_KEYS:
        value = OmegaConf.select(arch, key, throw_on_missing=False)
        if value is None or value == "":
            raise ConfigError(f"arch.{key} is missing in the architecture's config (conf/arch/*.yaml); "
                              f"an architecture names its {', '.join(ARCH_KEYS)}")
        if not isinstance(value, str):
            raise ConfigError(f"arch.{key} is {value!r}, but must be text")


def check_added_keys(cfg: DictConfig) -> None:
    """``+name=value`` adds a key the config does not have (Hydra refuses ``+`` on an existing one): a
    config group that does not exist (``+optimizer=adam``) or a parameter the architecture lacks
    (``+params.z=1``). tuneflow's app reads no such key, so it would be silently ignored."""
    hydra_node = cfg.get("hydra") if "hydra" in cfg else _running_hydra_config()
    if hydra_node is None:
        return  # composed outside Hydra (tests, tuneflow repeat): no command line to check
    overrides = OmegaConf.select(hydra_node, "overrides.task", default=None) or []
    choices = OmegaConf.select(hydra_node, "runtime.choices", default=None) or {}
    for override in overrides:
        text = str(override)
        if not text.startswith("+") or text.startswith("++") or "=" not in text:
            continue
        key = text[1:].split("=", 1)[0]
        if key in choices or key.startswith("hydra"):
            continue
        parent = key.rpartition(".")[0]
        siblings = OmegaConf.select(cfg, parent, default=None) if parent else None
        known = sorted(str(k) for k in siblings if k != key.rpartition(".")[2]) if isinstance(siblings, DictConfig) else []
        where = f"; known names under {parent}: {', '.join(known)}" if known else (
            f"; there is no config group {key}/ either" if not parent else "")
        raise ConfigError(f"{text}: tuneflow's config has no {key}, and nothing would read it{where}")


def _running_hydra_config() -> Any:
    """A plain run's task config has no ``hydra`` node; Hydra keeps it aside."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed is {seed!r}, but must be a whole number from 0 to {MAX_SEED}")


def available_archs(where: str | None = None) -> list[str]:
    """Architectures of the package (``tuneflow/conf/arch``) and of the project (``./conf/arch``);
    ``where`` = ``"package"`` or ``"project"`` for one of them."""
    from importlib.resources import files
    from pathlib import Path

    folders = {"package": files("tuneflow").joinpath("conf/arch"), "project": Path.cwd() / "conf" / "arch"}
    chosen = folders.values() if where is None else [folders[where]]
    names = {p.name.removesuffix(".yaml") for folder in chosen if folder.is_dir()
             for p in folder.iterdir() if p.name.endswith(".yaml")}
    return sorted(names)


def run_single(cfg: DictConfig, tags: Mapping[str, str] | None = None) -> tuple[float, str, dict[str, float]]:
    """A plain training run (no ``-m``): the arch's default params, one MLflow run, errors raised.
    ``tags`` are added to the run's (``tuneflow repeat`` links its runs to the trial they repeat).
    Returns the objective, the MLflow run id and the metrics."""
    from tuneflow.tracking import runs as tracking
    from tuneflow.trial.job import flatten, start_run_record

    check_torch_threads(cfg.get("torch_threads"))  # before any run exists
    root_dir = str(cfg.root_dir)
    tracking_uri = tracking.resolve_tracking_uri(cfg.tracking.uri, root_dir)
    client = tracking.client_for(tracking_uri)
    experiment_id = tracking.experiment_id_for(
        client,
        cfg.tracking.experiment or str(cfg.arch.name),
        tracking.default_artifact_location(client.tracking_uri, root_dir),
    )
    created = client.create_run(
        experiment_id, tags={tracking.ROLE_TAG: "single", tracking.ARCH_TAG: str(cfg.arch.name), **(tags or {})}
    )
    run_id = created.info.run_id
    store = tracking.artifact_store(client, created.info.artifact_uri)
    params = {**hyperparameters(cfg), **{f"data.{k}": v for k, v in flatten(cfg.data).items()}, "seed": cfg.seed}
    start_run_record(client, run_id, store, cfg, params)
    buffer = tracking.MetricBuffer(client, run_id)
    handle = api.Trial(number=None, params={}, run_id=run_id, study_name=None, objective=str(cfg.arch.objective),
                       metrics_buffer=buffer, tracking_uri=tracking_uri, artifact_uri=created.info.artifact_uri)
    try:
        with api.running(handle):
            metrics = run(cfg)
        buffer.flush(metrics=[(key, value, 0) for key, value in metrics.items()])
    except BaseException:
        try:
            buffer.flush()
        finally:
            tracking.terminate(client, run_id, "FAIL")
        raise
    tracking.terminate(client, run_id, "COMPLETE")
    return metrics["objective"], run_id, metrics
