"""``tuneflow repeat STUDY --top K --seeds S``: are the best configurations really better?

Re-trains the ``K`` best completed trials with ``S`` new seeds each, on every date range of their data
(tabular data: its one holdout split). The seed changes what training randomises: weights
initialisation, batch order, dropout, bagging. The data split is the study's own (``data.split_seed``,
the date ranges): every configuration is then scored on the same validation examples, so the comparison
is paired, and the finite size of that set is accounted for by a Wilson interval for accuracies
(``tuneflow.analysis.significance``). The new seeds are the smallest numbers no finalist was tuned with
(1..S for the default ``seed=0``), the same for every finalist.

Each repeat is one MLflow run under the study's parent run, tagged ``tuneflow.role=repeat``,
``tuneflow.repeat_of_trial``, ``tuneflow.repeat_of_run`` and ``tuneflow.repeat_seed``; models are not
logged unless ``--log-models``. Running the command again reuses the repeats already finished (a
stopped ``repeat`` resumes). It ends with the significance table, written to
``<root-dir>/studies/<study>/significance.csv`` and the parent run, and exports the leader as
``conf/best/<study>.yaml`` (``python -m tuneflow +best=<study>`` retrains it).
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneflow.errors import ConfigError
from tuneflow.storage.readers import (
    Parser,
    StudyLocation,
    add_store_arguments,
    check_output_folder,
    experiment_of_run,
    fail,
    load_study,
    top_trials,
)
from tuneflow.storage.urls import shown

ROLE = "repeat"
REPEAT_OF_TRIAL_TAG = "tuneflow.repeat_of_trial"
REPEAT_OF_RUN_TAG = "tuneflow.repeat_of_run"
REPEAT_SEED_TAG = "tuneflow.repeat_seed"
#: JSON list of the validation ranges (fold names) the repeat was scored on.
RANGES_TAG = "tuneflow.ranges"
#: Validation examples per repeat, logged when the objective is an accuracy (for the Wilson interval).
EXAMPLES_PARAM = "val_examples"
VERDICT_TAG = "tuneflow.verdict"
RUN_NAME_TAG = "mlflow.runName"


@dataclass(frozen=True)
class RepeatRecord:
    """One finished repeat as MLflow holds it."""

    trial: int
    seed: int
    run_id: str
    #: Objective per validation range.
    scores: dict[str, float]
    n_examples: int | None
    #: The run's objective over its ranges (as ``data.objective_over_ranges`` combines them).
    objective: float | None = None


def choose_seeds(used: Iterable[int], count: int) -> list[int]:
    """The ``count`` smallest non-negative seeds that none of ``used`` is."""
    taken, candidate = set(used), 0
    seeds: list[int] = []
    while len(seeds) < count:
        if candidate not in taken:
            seeds.append(candidate)
        candidate += 1
    return seeds


def record_of(run: Any, objective: str) -> RepeatRecord | None:
    """A finished repeat run's scores per range (``<range>/best_<objective>``, or ``best_<objective>``
    when there is one range), or None when they are missing."""
    tags, metrics = run.data.tags, run.data.metrics
    ranges = json.loads(tags.get(RANGES_TAG, "[]"))
    if len(ranges) > 1:
        keys = {name: f"{name}/best_{objective}" for name in ranges}
    else:
        keys = {(ranges[0] if ranges else "holdout"): f"best_{objective}"}
    if not all(key in metrics for key in keys.values()):
        return None
    examples = run.data.params.get(EXAMPLES_PARAM)
    return RepeatRecord(
        trial=int(tags[REPEAT_OF_TRIAL_TAG]),
        seed=int(tags[REPEAT_SEED_TAG]),
        run_id=run.info.run_id,
        scores={name: float(metrics[key]) for name, key in keys.items()},
        n_examples=int(examples) if examples else None,
        objective=float(metrics["objective"]) if "objective" in metrics else None,
    )


def finished_repeats(client: Any, experiment_id: str, study_name: str, objective: str) -> list[RepeatRecord]:
    from tuneflow.tracking.runs import filter_value

    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`tuneflow.role` = {filter_value(ROLE)} and tags.`tuneflow.study` = {filter_value(study_name)} "
                      "and attributes.status = 'FINISHED'",
        max_results=50_000,
    )
    records = [record_of(run, objective) for run in runs]
    return [r for r in records if r is not None]


def finalists_by_trial(records: Sequence[RepeatRecord], trials: Sequence[int] | None = None,
                       seeds: Sequence[int] | None = None) -> dict[int, Any]:
    """``significance.Finalist`` per trial number, from its repeats (optionally only these trials and
    seeds), in the order of ``trials`` (else by trial number)."""
    from tuneflow.analysis.significance import Finalist

    by_trial: dict[int, dict[tuple[int, str], float]] = {}
    objectives: dict[int, dict[int, float]] = {}
    examples: dict[int, int | None] = {}
    for record in records:
        if (trials is not None and record.trial not in trials) or (seeds is not None and record.seed not in seeds):
            continue
        units = by_trial.setdefault(record.trial, {})
        for name, value in record.scores.items():
            units[(record.seed, name)] = value
        if record.objective is not None:
            objectives.setdefault(record.trial, {})[record.seed] = record.objective
        examples[record.trial] = record.n_examples
    order = list(trials) if trials is not None else sorted(by_trial)
    finalists = {}
    for n in order:
        if n in by_trial:
            seeds_seen = {seed for seed, _ in by_trial[n]}
            # The runs' own objectives when every repeat has one, else the mean over ranges.
            complete = n in objectives and set(objectives[n]) == seeds_seen
            finalists[n] = Finalist(label(n), by_trial[n], examples[n], objectives[n] if complete else None)
    return finalists


def label(trial_number: int) -> str:
    """How tables name a finalist."""
    return f"trial {trial_number}"


def validation_layout(cfg: Any) -> tuple[list[str], int | None]:
    """The names of the configuration's validation ranges, and its validation examples when the
    objective is an accuracy on one fixed set (what a Wilson interval needs)."""
    from tuneflow.data import folds as datasets
    from tuneflow.trial.arch_task import hyperparameters

    folds = datasets.load_folds(cfg.data, hyperparameters(cfg))
    examples = None
    if "accuracy" in str(cfg.arch.objective) and len(folds) == 1 and hasattr(folds[0].data, "y_val"):
        examples = int(len(folds[0].data.y_val))
    return [fold.name for fold in folds], examples


@dataclass(frozen=True)
class Plan:
    trials: list[Any]
    seeds: list[int]
    configs: dict[tuple[int, int], Any]


def plan_repeats(study: Any, client: Any, location: StudyLocation, experiment: str, top: int, n_seeds: int,
                 log_models: bool) -> Plan:
    """Compose every repeat's config before training any, so a config that no longer composes fails
    at once."""
    from tuneflow.analysis.recompose import trial_config

    trials = top_trials(study, top)
    if not trials:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet; nothing to repeat")
    originals = {t.number: trial_config(t, study, client) for t in trials}
    seeds = choose_seeds((int(cfg.seed) for cfg in originals.values()), n_seeds)
    where = {"tracking.uri": location.tracking_uri, "tracking.experiment": experiment,
             "tracking.log_model": log_models, "root_dir": str(location.root_dir)}
    configs = {(t.number, seed): trial_config(t, study, client, {"seed": seed, **where})
               for t in trials for seed in seeds}
    return Plan(trials, seeds, configs)


def run_repeats(plan: Plan, study: Any, client: Any, parent_run_id: str, done: set[tuple[int, int]],
                progress: Any = print) -> int:
    """Train the planned repeats not already finished; returns how many failed."""
    from tuneflow.storage.study import RUN_ID_ATTR
    from tuneflow.tracking import runs as tracking
    from tuneflow.trial.arch_task import run_single

    todo = [(t, seed) for t in plan.trials for seed in plan.seeds if (t.number, seed) not in done]
    failures = 0
    for index, (trial, seed) in enumerate(todo, start=1):
        cfg = plan.configs[(trial.number, seed)]
        ranges, examples = validation_layout(cfg)
        tags = {
            tracking.ROLE_TAG: ROLE,
            tracking.STUDY_TAG: study.study_name,
            tracking.PARENT_TAG: parent_run_id,
            REPEAT_OF_TRIAL_TAG: str(trial.number),
            REPEAT_OF_RUN_TAG: str(trial.user_attrs.get(RUN_ID_ATTR, "")),
            REPEAT_SEED_TAG: str(seed),
            RANGES_TAG: json.dumps(ranges),
            RUN_NAME_TAG: f"{study.study_name}-trial-{trial.number}-seed-{seed}",
        }
        started = time.perf_counter()
        head = f"[{index}/{len(todo)}] trial {trial.number} seed {seed}:"
        try:
            value, run_id, _ = run_single(cfg, tags=tags)
        except Exception as error:  # noqa: BLE001 - one failing repeat is a gap in the table, not a crash
            failures += 1
            progress(f"{head} FAILED ({type(error).__name__}: {error})")
            continue
        if examples is not None:
            tracking.log_values(client, run_id, params={EXAMPLES_PARAM: examples})
        progress(f"{head} {cfg.arch.objective}={value:.6g} in {time.perf_counter() - started:.1f}s "
                 f"(MLflow run {run_id})")
    return failures


def table_rows(table: Any, study: Any) -> list[dict[str, Any]]:
    """The significance table as CSV rows."""
    trials = {label(t.number): t for t in study.get_trials(deepcopy=False)}
    rows = []
    for row in table.rows:
        comparison = row.comparison
        trial = trials[row.label]
        rows.append({
            "rank": row.rank,
            "trial": trial.number,
            "study_value": trial.value,
            "repeats": row.n_repeats,
            "mean": row.mean,
            "ci_low": row.ci[0],
            "ci_high": row.ci[1],
            "wilson_low": row.wilson[0] if row.wilson else "",
            "wilson_high": row.wilson[1] if row.wilson else "",
            "compared_with": comparison.other if comparison else "",
            "pairs": comparison.n_pairs if comparison else "",
            "mean_difference": comparison.mean_difference if comparison else "",
            "p_value": comparison.p_value if comparison else "",
            "p_holm": comparison.p_adjusted if comparison else "",
            "wins_every_range": comparison.wins_every_range if comparison else "",
            "verdict": row.verdict,
        })
    return rows


def _shown(value: Any, digits: int = 5) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def format_table(rows: Sequence[Mapping[str, Any]], objective: str) -> str:
    header = (f"{'rank':>4} {'trial':>5} {'study':>9} {'n':>3} {'mean ' + objective:>16} {'95% CI':>23} "
              f"{'Wilson 95%':>17} {'vs':>9} {'diff':>10} {'p (Holm)':>9} {'all ranges':>10}  verdict")
    lines = [header]
    for row in rows:
        ci = f"[{_shown(row['ci_low'])}, {_shown(row['ci_high'])}]"
        wilson = f"[{_shown(row['wilson_low'], 4)}, {_shown(row['wilson_high'], 4)}]" if row["wilson_low"] != "" else "-"
        wins = {True: "yes", False: "no"}.get(row["wins_every_range"], "-")
        lines.append(
            f"{'#' + str(row['rank']):>4} {row['trial']:>5} {_shown(row['study_value']):>9} {row['repeats']:>3} "
            f"{_shown(row['mean']):>16} {ci:>23} {wilson:>17} {_shown(row['compared_with']):>9} "
            f"{_shown(row['mean_difference'], 3):>10} {_shown(row['p_holm'], 3):>9} {wins:>10}  {row['verdict']}"
        )
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    from tuneflow.tracking.trials_csv import write_table

    return write_table(rows, path, None if rows else ["rank"])


def conclude(study: Any, client: Any, location: StudyLocation, parent_run_id: str | None, experiment_id: str,
             trials: Sequence[int] | None, seeds: Sequence[int] | None, conf_dir: str | Path,
             out_dir: Path, export_best: bool = True, log: bool = True, progress: Any = print) -> Any:
    """Significance table over the finished repeats: printed, written to ``out_dir``, logged to the
    parent run; the leader (or, without repeats, the best trial) exported as the best config."""
    from tuneflow.analysis.significance import significance_table
    from tuneflow.storage.study import RUN_ID_ATTR
    from tuneflow.tracking import runs as tracking

    objective = objective_of(study, client)
    records = finished_repeats(client, experiment_id, study.study_name, objective) if experiment_id else []
    finalists = list(finalists_by_trial(records, trials, seeds).values())
    direction = study.direction.name.lower()
    table = significance_table(finalists, direction)
    rows = table_rows(table, study)
    if rows:
        progress(format_table(rows, objective))
        for note in table.notes:
            progress(f"note: {note}")
        progress(f"verdict: {table.verdict}  [{table.test}]")
        path = write_csv(rows, out_dir / "significance.csv")
        if log and parent_run_id:
            client.log_artifact(parent_run_id, str(path), artifact_path="repeats")
            tracking.log_values(client, parent_run_id, tags={VERDICT_TAG: table.verdict[:5000]})
    if export_best:
        from tuneflow.analysis.best import export
        from tuneflow.analysis.recompose import trial_config

        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        if rows:
            chosen = by_number[int(rows[0]["trial"])]
            why = [f"chosen by its repeats: mean {objective} {rows[0]['mean']:.6g} over {rows[0]['repeats']} "
                   f"new seeds, 95% CI [{rows[0]['ci_low']:.6g}, {rows[0]['ci_high']:.6g}]", f"verdict: {table.verdict}"]
        else:
            chosen = study.best_trial
            why = ["chosen as the study's best trial (no repeats yet: tuneflow repeat tells whether it is really best)"]
        header = [f"Best configuration of study {study.study_name!r}: trial {chosen.number} "
                  f"({objective}={chosen.value:.6g} in the study, MLflow run {chosen.user_attrs.get(RUN_ID_ATTR, '?')})",
                  *why, f"Exported {datetime.date.today().isoformat()} from {shown(location.storage_url)}"]
        path = export(trial_config(chosen, study, client), study.study_name, header, conf_dir)
        progress(f"best config: {path} (retrain: python -m tuneflow +best={path.stem})")
    return table


def objective_of(study: Any, client: Any) -> str:
    """The study's objective name, from its parent run's params (the sweeper logs it there); ``value``
    for a study tuneflow did not run."""
    from tuneflow.storage.readers import parent_run_id

    run_id = parent_run_id(study)
    if run_id:
        objective = client.get_run(run_id).data.params.get("objective")
        if objective:
            return str(objective)
    return "value"


#: Upper bounds of --seeds and --top.
MAX_SEEDS, MAX_TOP = 1000, 1000


def parse_arguments(argv: Sequence[str]) -> Any:
    parser = Parser(prog="tuneflow repeat", description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_store_arguments(parser)
    parser.add_argument("--top", type=int, default=3, help="finalists: the K best completed trials (default 3)")
    parser.add_argument("--seeds", type=int, default=3, help="new seeds per finalist (default 3)")
    parser.add_argument("--conf-dir", default="conf", help="where conf/best/<study>.yaml goes (default: ./conf)")
    parser.add_argument("--log-models", action="store_true", help="log each repeat's model to MLflow")
    args = parser.parse_args(list(argv))
    if args.top < 2:
        parser.error(f"--top is {args.top}, but comparing needs at least 2 finalists")
    if args.seeds < 2:
        parser.error(f"--seeds is {args.seeds}, but an interval needs at least 2 repeats")
    # Each finalist trains once per seed: past these, a repeat runs for days (and its plan alone fills memory).
    if args.seeds > MAX_SEEDS:
        parser.error(f"--seeds is {args.seeds}, but must be at most {MAX_SEEDS}")
    if args.top > MAX_TOP:
        parser.error(f"--top is {args.top}, but must be at most {MAX_TOP}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from tuneflow.console import quiet_library_warnings

    quiet_library_warnings()
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        location = StudyLocation.from_arguments(args)
    except ConfigError as error:
        return fail(error)
    try:
        check_output_folder(args.conf_dir, "--conf-dir")
        study = load_study(location)
        if len(study.directions) > 1:  # its finalists have no single ranking to repeat and compare
            raise ConfigError(f"study {study.study_name!r} has {len(study.directions)} objectives; tuneflow repeat "
                              "compares the finalists of a single-objective study (tuneflow report lists its Pareto set)")
        from tuneflow.storage.readers import mlflow_client, parent_run_id

        client = mlflow_client(location)
        parent = parent_run_id(study)
        if parent is None:
            raise ConfigError(f"study {study.study_name!r} has no MLflow parent run; was it run by tuneflow?")
        experiment_id = experiment_of_run(client, parent, location)
        experiment = client.get_experiment(experiment_id).name
        plan = plan_repeats(study, client, location, experiment, args.top, args.seeds, args.log_models)
        objective = objective_of(study, client)
    except Exception as error:  # noqa: BLE001 - fixable errors become one line, bugs keep their traceback
        return fail(error)
    done = {(r.trial, r.seed) for r in finished_repeats(client, experiment_id, study.study_name, objective)}
    numbers = [t.number for t in plan.trials]
    print(f"repeating trials {', '.join(map(str, numbers))} of study {study.study_name!r} "
          f"with seeds {', '.join(map(str, plan.seeds))}"
          + (f" ({sum((n, s) in done for n in numbers for s in plan.seeds)} already done)" if done else ""))
    try:
        failures = run_repeats(plan, study, client, parent, done)
    except KeyboardInterrupt:
        print("tuneflow: interrupted; finished repeats are kept, run the same command to go on", file=sys.stderr)
        return 130
    conclude(study, client, location, parent, experiment_id, numbers, plan.seeds, args.conf_dir, location.study_dir)
    if failures:
        print(f"tuneflow: {failures} repeat(s) failed; see their FAILED MLflow runs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
