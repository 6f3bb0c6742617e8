"""A strategy run by tuneflow's sweeper: ``python -m tuneflow +arch=NAME -m +strategy=staged``.

Each stage study is a ``StudySweeper`` sweep of its own (its own Optuna study ``<study>/<stage>``, its own
MLflow parent run, pruning, resume, many workers: everything a study has), configured from the stage
(space, budget, sampler, pruner, overrides). The sweeper's own files are not touched: this module is a
layer above it, and the Hydra plugin hands it the multirun when the app's config has a ``strategy``.
All stage runs are nested (MLflow's ``mlflow.parentRunId``) under one strategy run in the study's
experiment.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tuneflow.search import space as search_space
from tuneflow.storage import locks
from tuneflow.storage.study import open_storage, study_settings
from tuneflow.strategy import spaces
from tuneflow.strategy.backend import (
    RepeatResult,
    StudyRequest,
    add_known,
    candidates_of,
    pruner_config,
    sampler_config,
)
from tuneflow.strategy.config import StageConfig, StrategyConfig, strategy_config
from tuneflow.strategy.handoff import Handoff
from tuneflow.strategy.runner import run_strategy, strategy_folder
from tuneflow.sweeper.plan import split_arguments
from tuneflow.sweeper.sweep import StudySweeper
from tuneflow.tracking import runs as tracking

log = logging.getLogger("tuneflow")

STRATEGY_ROLE = "strategy"
STAGE_TAG = "tuneflow.stage"
STRATEGY_TAG = "tuneflow.strategy"
#: Trials a stage queued from its inputs carry the input's place in the stage's list.
INPUT_ATTR = "tuneflow_stage_input"


def is_strategy(config: Any) -> bool:
    """Whether the app's config asks for a strategy (a ``strategy`` node with ``stages``)."""
    node = OmegaConf.select(config, "strategy", default=None) if config is not None else None
    return node is not None and OmegaConf.select(node, "stages", default=None) is not None


class StageSweeper(StudySweeper):
    """The app's sweeper for one stage study: the inputs are queued once the study is open (once: a
    resumed or second worker finds them there)."""

    enqueue: list[dict[str, Any]]
    #: The stage's request: its known points are added as completed trials before the inputs are queued.
    request: StudyRequest
    #: Called with the opened study (its plan checked, so nothing is created before bad input shows).
    on_open: Any

    def loop(self, opened: Any, plan: Any, csv_path: Path) -> Any:
        self.on_open(opened)
        study, settings = opened.study, plan.settings
        # Under the lock workers ask under: a second worker asks only once the first has queued them all,
        # and finds them there (queued once).
        with locks.study_lock(settings.storage_url, settings.root_dir, settings.name, "ask"):
            if not study.get_trials(deepcopy=False):
                request = dataclasses.replace(self.request, distributions=dict(plan.distributions),
                                              enqueue=list(self.enqueue))
                add_known(study, request)
                for index, params in enumerate(request.enqueue):
                    point = {k: v for k, v in params.items() if k in plan.distributions}
                    study.enqueue_trial(point, user_attrs={INPUT_ATTR: index}, skip_if_exists=True)
        return super().loop(opened, plan, csv_path)


class SweeperBackend:
    def __init__(self, sweeper: StudySweeper, arguments: Sequence[str], strategy: StrategyConfig) -> None:
        assert sweeper.config is not None
        self.sweeper = sweeper
        self.strategy = strategy
        self.settings = study_settings(sweeper.sweeper_cfg, str(sweeper.config.hydra.job.name))
        self.study = self.settings.name
        self.direction = self.settings.direction
        node = self.settings.params_node
        space, space_fixed = search_space.parse_search_space(sweeper.space, node)
        cli_distributions, cli_fixed = split_arguments(arguments, node)
        fixed_paths = {path.lstrip("~+") for path in cli_fixed}
        space = {n: d for n, d in space.items() if search_space.config_path(n, node) not in fixed_paths}
        space.update(cli_distributions)
        self.space = spaces.to_syntax(space)
        # What every job of every stage gets: the command line's fixed overrides and the space's fixed values.
        parsed = OverridesParser.create().parse_overrides(list(arguments))
        self.arguments = [a for a, o in zip(arguments, parsed) if not o.is_sweep_override()]
        self.arguments += [f"{path}={value}" for path, value in space_fixed.items()
                           if path not in fixed_paths]
        self.strategy_run_id: str | None = None
        #: The multirun's folder; each stage study's jobs go to a folder of their own under it.
        self.sweep_dir = str(sweeper.config.hydra.sweep.dir)

    @property
    def client(self) -> Any:
        """MLflow's client, once a stage needs it (building it creates an embedded store)."""
        return tracking.client_for(self.settings.tracking_uri)

    def default_space(self) -> dict[str, str]:
        return dict(self.space)

    def stage_lock(self, stage: str) -> AbstractContextManager[None]:
        return locks.study_lock(self.settings.storage_url, self.settings.root_dir, f"{self.study}/{stage}", "stage")

    def has_params(self, names: Sequence[str]) -> bool:
        config = self.sweeper.config
        assert config is not None
        node = self.settings.params_node
        return all(OmegaConf.select(config, search_space.config_path(n, node), default=_Missing) is not _Missing
                   for n in names)

    def default_value(self, name: str) -> Any:
        assert self.sweeper.config is not None
        path = search_space.config_path(name, self.settings.params_node)
        return OmegaConf.select(self.sweeper.config, path, default=None)

    def stage_sweeper(self, request: StudyRequest) -> StageSweeper:
        stage = StageSweeper.__new__(StageSweeper)
        stage.__dict__.update(self.sweeper.__dict__)
        sampler = sampler_config(request.sampler, request.sampler_args)
        stage.sweeper_cfg = {
            **self.sweeper.sweeper_cfg,
            "study_name": f"{self.study}/{request.name}",
            # The known points are completed trials of the study on top of the stage's budget.
            "n_trials": request.n_trials + len(request.known),
            "sampler": sampler,
            "pruner": pruner_config(request.pruner),
            # Every stage's runs in the strategy's experiment, where they nest under its run.
            "experiment": self.settings.experiment,
        }
        # The stage's own multirun folder (<sweep dir>/<stage>[/zone-k]/trial_N): its trials' folders, its
        # multirun.yaml and optimization_results.yaml beside no other stage's.
        assert self.sweeper.hydra_context is not None and self.sweeper.task_function is not None
        stage.setup(hydra_context=self.sweeper.hydra_context, task_function=self.sweeper.task_function,
                    config=stage_sweep_config(self.sweeper.config, f"{self.sweep_dir}/{request.name}"))
        stage.space = spaces.to_syntax(request.distributions)
        stage.zoom = {}
        stage.enqueue = list(request.enqueue)
        stage.request = request
        stage.on_open = lambda opened: self.nest(opened.parent_run_id, request.name)
        return stage

    def run_study(self, request: StudyRequest) -> list[dict[str, Any]]:
        stage = self.stage_sweeper(request)
        node = self.settings.params_node
        arguments = [*self.arguments, *request.overrides, *search_space.to_overrides(request.fixed, node)]
        name = f"{self.study}/{request.name}"
        stage.sweep(arguments)
        study = optuna.load_study(study_name=name, storage=open_storage(self.settings.storage_url))
        return candidates_of(study, request.fixed)

    def nest(self, run_id: str, stage: str) -> None:
        """A stage study's parent run under the strategy run, which the first stage study to open creates:
        a stage whose input is bad stops before either exists."""
        if self.strategy_run_id is None:
            self.open_strategy_run()
        assert self.strategy_run_id is not None
        tracking.log_values(self.client, run_id, tags={tracking.PARENT_TAG: self.strategy_run_id, STAGE_TAG: stage})

    def repeat(self, request: StudyRequest, candidates: Sequence[dict[str, Any]], seeds: int) -> RepeatResult:
        """The candidates as one study (each once), then ``tuneflow repeat`` on it: new seeds on every date
        range, the significance verdict; the winner exported as ``conf/best/<study>.yaml``."""
        self.run_study(request)
        with outside_the_running_app():
            return self._repeat(request, candidates, seeds)

    def _repeat(self, request: StudyRequest, candidates: Sequence[dict[str, Any]], seeds: int) -> RepeatResult:
        from tuneflow.analysis import repeat as repeats
        from tuneflow.analysis.best import export
        from tuneflow.analysis.recompose import trial_config
        from tuneflow.storage.readers import StudyLocation, load_study, parent_run_id

        location = StudyLocation(f"{self.study}/{request.name}", Path(self.settings.root_dir),
                                 self.settings.storage_url, self.settings.tracking_uri)
        study = load_study(location)
        parent = parent_run_id(study)
        assert parent is not None
        experiment_id = self.client.get_run(parent).info.experiment_id
        experiment = self.client.get_experiment(experiment_id).name
        plan = repeats.plan_repeats(study, self.client, location, experiment, len(candidates), seeds, False)
        objective = repeats.objective_of(study, self.client)
        done = {(r.trial, r.seed) for r in repeats.finished_repeats(self.client, experiment_id, study.study_name, objective)}
        repeats.run_repeats(plan, study, self.client, parent, done, progress=log.info)
        numbers = [t.number for t in plan.trials]
        table = repeats.conclude(study, self.client, location, parent, experiment_id, numbers, plan.seeds, "conf",
                                 location.study_dir, export_best=False, progress=log.info)
        rows = repeats.table_rows(table, study)
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        ranked = []
        for row in rows:
            trial = by_number[int(row["trial"])]
            source = next((c for c in candidates if all(c["params"].get(k) == v for k, v in trial.params.items())), {})
            ranked.append({**source, "params": dict(trial.params), "value": float(trial.value),  # type: ignore[arg-type]
                           "study": study.study_name, "trial": trial.number,
                           "repeat_mean": float(row["mean"]), "repeats": int(row["repeats"])})
        if ranked:
            chosen = by_number[ranked[0]["trial"]]
            header = [f"Chosen by strategy stage {request.name!r} of study {self.study!r}: trial {chosen.number} of "
                      f"{study.study_name!r}, mean {objective} {ranked[0]['repeat_mean']:.6g} over "
                      f"{ranked[0]['repeats']} new seeds", f"verdict: {table.verdict}"]
            path = export(trial_config(chosen, study, self.client), self.study, header)
            log.info(f"best config: {path} (retrain: python -m tuneflow +best={path.stem})")
        return RepeatResult(ranked, table.verdict)

    def open_strategy_run(self) -> str:
        """The strategy's MLflow run: created by the first worker (under the strategy's lock, so two
        workers starting together make one), found by the others and by a resumed strategy."""
        with locks.study_lock(self.settings.storage_url, self.settings.root_dir, self.study, "stage"):
            return self._open_strategy_run()

    def _open_strategy_run(self) -> str:
        name, stages = self.strategy.name, self.strategy.stages
        experiment_id = tracking.experiment_id_for(
            self.client, self.settings.experiment,
            tracking.default_artifact_location(self.client.tracking_uri, self.settings.root_dir))
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tracking.ROLE_TAG}` = '{STRATEGY_ROLE}' and tags.`{tracking.STUDY_TAG}` = '{self.study}'",
            order_by=["attributes.start_time ASC"], max_results=1)
        if runs:
            run_id = str(runs[0].info.run_id)
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment_id, run_name=f"{self.study} ({name})", tags={
                tracking.ROLE_TAG: STRATEGY_ROLE, tracking.STUDY_TAG: self.study, STRATEGY_TAG: name})
            run_id = str(run.info.run_id)
            tracking.log_values(self.client, run_id, params={
                "strategy": name, **{f"stage.{i}": f"{s.name} ({s.kind}, {s.n_trials} trials, {s.sampler}, {s.pruner})"
                                     for i, s in enumerate(stages)}})
        self.strategy_run_id = run_id
        return run_id


def stage_sweep_config(config: Any, sweep_dir: str) -> Any:
    """The multirun's config with ``hydra.sweep.dir`` set to ``sweep_dir``: in the config the sweeper and
    launcher read, and as a Hydra override, since launchers compose each job's config again from the
    multirun's overrides (``hydra.overrides.hydra``)."""
    from omegaconf import open_dict, read_write

    stage_config = copy.deepcopy(config)
    with read_write(stage_config), open_dict(stage_config):
        stage_config.hydra.sweep.dir = sweep_dir
        stage_config.hydra.overrides.hydra.append(f"hydra.sweep.dir={search_space.override_value(sweep_dir)}")
    return stage_config


@contextmanager
def outside_the_running_app() -> Iterator[None]:
    """``tuneflow repeat`` recomposes each finalist's config with Hydra's compose API, which refuses to
    start while an app runs (GlobalHydra is one per process); the running app's Hydra is put aside and
    put back after."""
    from hydra.core.global_hydra import GlobalHydra

    instance = GlobalHydra.instance()
    saved = instance.hydra if instance.is_initialized() else None
    instance.clear()
    try:
        yield
    finally:
        instance.clear()
        if saved is not None:
            instance.initialize(saved)


class _Missing:
    """Sentinel for a config path that does not exist."""


def sweep_strategy(sweeper: StudySweeper, arguments: list[str]) -> Handoff:
    """The multirun as a strategy: every stage not finished yet, under one MLflow strategy run."""
    assert sweeper.config is not None
    node = OmegaConf.to_container(sweeper.config.strategy, resolve=True)
    assert isinstance(node, dict)
    strategy = strategy_config({str(k): v for k, v in node.items()})
    backend = SweeperBackend(sweeper, arguments, strategy)
    folder = strategy_folder(backend.settings.root_dir, backend.study)

    def logged(stage: StageConfig, handoff: Handoff) -> None:
        if backend.strategy_run_id is None:  # a stage that ran no study (skipped) still belongs to the run
            backend.open_strategy_run()
        assert backend.strategy_run_id is not None
        backend.client.log_artifact(backend.strategy_run_id, str(folder / f"{stage.name}.yaml"), artifact_path="stages")

    status = "FAILED"
    try:
        result = run_strategy(strategy, backend, folder, on_stage=logged)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if backend.strategy_run_id is not None:
            backend.client.set_terminated(backend.strategy_run_id, status=status)
    best = result.best
    if best is not None:
        log.info(f"strategy {strategy.name} of study {backend.study!r}: best {best['params']} "
                 f"({best.get('repeat_mean', best['value']):.6g}); stages in {folder}")
    return result
