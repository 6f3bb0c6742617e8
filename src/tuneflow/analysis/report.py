"""``tuneflow report STUDY`` (or ``python -m tuneflow report STUDY``): what a study found, on disk and in MLflow.

- the top-k completed trials with their params, their score on every validation range
  (``<range>/<objective>``) and, once ``tuneflow repeat`` ran, their mean and 95% interval over new seeds;
- Optuna's parameter importances (fANOVA, ``optuna.importance``, seeded so reruns agree);
- plots: optimization history, intermediate values, parallel coordinates, importances; as one
  self-contained ``report.html`` (plotly, ``optuna.visualization``; works offline) and one PNG each
  (``optuna.visualization.matplotlib``: no browser needed);
- the trials that failed (raised or diverged) and where: how many, the parameter ranges they span against
  the completed trials' (``failed_trials.csv``), and a parallel-coordinates plot of completed and failed
  trials together (Optuna's own draws completed trials only);
- the significance table when repeats exist, and the chosen configuration exported as
  ``conf/best/<study>.yaml``.

Everything goes to ``--out`` (default ``<root-dir>/studies/<study>/report/``) and to the study's MLflow
parent run (artifacts under ``report/``). A study that is still running can be reported: its finished
trials are copied into memory first and every table and plot is drawn from that copy; nothing is locked.
"""

from __future__ import annotations

import html
import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneflow.errors import ConfigError
from tuneflow.search.failure_aware import describe_failures, region_failures
from tuneflow.storage.readers import (
    Parser,
    StudyLocation,
    add_store_arguments,
    check_output_folder,
    experiment_of_run,
    fail,
    finished_snapshot,
    load_study,
    mlflow_client,
    parent_run_id,
    top_trials,
)
from tuneflow.storage.study import ERROR_ATTR, SURPLUS_ATTR

#: Plot name -> the Optuna function that draws it (the same name in optuna.visualization and its
#: matplotlib twin).
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "intermediate_values": "plot_intermediate_values",
    "parallel_coordinate": "plot_parallel_coordinate",
    "param_importances": "plot_param_importances",
}
#: The plot of completed and failed trials together (only when some failed).
FAILURE_PLOT = "parallel_coordinate_with_failures"
#: Line colours of that plot.
COMPLETE_COLOUR, FAILED_COLOUR = "#1f77b4", "#d62728"
#: A PNG's legend (one entry per trial) is dropped beyond this many entries.
MAX_LEGEND_ENTRIES = 20
#: Seed of the fANOVA forest: the importances (table and plots) are the same on every rerun.
IMPORTANCE_SEED = 0


@dataclass
class StudyReport:
    study_name: str
    objective: str
    direction: str
    n_finished: int
    n_complete: int
    top: list[dict[str, Any]]
    importances: dict[str, float] | None
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    #: ``tuneflow.search.failure_aware.describe_failures`` of the study (None: no trial failed).
    failures: str | None = None
    #: Per parameter: the failed trials' range against the completed trials'.
    failure_ranges: list[dict[str, Any]] = field(default_factory=list)
    #: The failed trials (``failure_aware.region_failures``) and the completed ones, for the failure plots.
    failed_trials: list[Any] = field(default_factory=list)
    complete_trials: list[Any] = field(default_factory=list)


def range_scores(user_attrs: Mapping[str, Any], objective: str) -> dict[str, float]:
    """A trial's objective per validation range, from the ``<range>/best_<objective>`` user attributes
    (the trial's final metrics) written when a trial trains on several ranges (none for one range or
    tabular data); studies recorded before that naming wrote ``<range>/<objective>``."""
    scores: dict[str, float] = {}
    for suffix in (f"/{objective}", f"/best_{objective}"):
        scores.update({key[: -len(suffix)]: float(value) for key, value in sorted(user_attrs.items())
                       if key.endswith(suffix) and isinstance(value, (int, float))})
    return scores


def top_rows(study: Any, k: int, objective: str, repeats: Mapping[int, Any] | None = None) -> list[dict[str, Any]]:
    """The ``k`` best completed trials as table rows: rank, trial, value, per-range scores, repeats, params."""
    from tuneflow.analysis.significance import t_interval
    from tuneflow.storage.study import RUN_ID_ATTR

    rows = []
    for rank, trial in enumerate(top_trials(study, k), start=1):
        row: dict[str, Any] = {"rank": rank, "trial": trial.number, objective: trial.value}
        row.update({f"{name}/{objective}": value for name, value in range_scores(trial.user_attrs, objective).items()})
        finalist = (repeats or {}).get(trial.number)
        if finalist is not None:
            per_seed = list(finalist.per_seed().values())
            low, high = t_interval(per_seed)
            row.update({"repeats": len(per_seed), "repeat_mean": finalist.mean, "repeat_ci_low": low,
                        "repeat_ci_high": high})
        row.update({f"param.{name}": value for name, value in trial.params.items()})
        row["duration_s"] = trial.duration.total_seconds() if trial.duration else None
        row["mlflow_run_id"] = trial.user_attrs.get(RUN_ID_ATTR, "")
        rows.append(row)
    return rows


def importances(snapshot: Any) -> tuple[dict[str, float] | None, str | None]:
    """Optuna's fANOVA importances over the completed trials, or None and why not."""
    import optuna

    try:
        values = optuna.importance.get_param_importances(
            snapshot, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
        )
    except (ValueError, RuntimeError) as error:
        return None, f"no parameter importances: {error}"
    return dict(values), None


def plotly_figures(snapshot: Any) -> tuple[dict[str, Any], list[str]]:
    import optuna.visualization as plots

    return _draw(snapshot, plots, lambda fig: fig)


def matplotlib_figures(snapshot: Any) -> tuple[dict[str, Any], list[str]]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no browser
    import optuna.visualization.matplotlib as plots

    return _draw(snapshot, plots, lambda axes: _figure_of(axes))


def _figure_of(axes: Any) -> Any:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.get_figure()


def _draw(snapshot: Any, module: Any, to_figure: Callable[[Any], Any]) -> tuple[dict[str, Any], list[str]]:
    import optuna

    figures, notes = {}, []
    for name, function in PLOTS.items():
        kwargs: dict[str, Any] = {}
        if name == "param_importances":
            kwargs["evaluator"] = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" and "no intermediate values" warnings
                figures[name] = to_figure(getattr(module, function)(snapshot, **kwargs))
        except (ValueError, RuntimeError, TypeError) as error:
            notes.append(f"no {name} plot: {error}")
    return figures, notes


def build(study: Any, objective: str, k: int, repeats: Mapping[int, Any] | None = None) -> tuple[StudyReport, Any]:
    """Everything but the files, from a snapshot of the finished trials."""
    from optuna.trial import TrialState

    snapshot = finished_snapshot(study)
    n_complete = len(snapshot.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if n_complete == 0:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet; report it once one finished")
    values, note = importances(snapshot)
    # Failed trials are not in the snapshot (it holds what Optuna's plots and importances read): one more
    # read of the study, for the failure table and plot.
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS_ATTR)]
    failed = region_failures(trials)
    report = StudyReport(
        study_name=study.study_name,
        objective=objective,
        direction=study.direction.name.lower(),
        n_finished=len(snapshot.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))),
        n_complete=n_complete,
        top=top_rows(snapshot, k, objective, repeats),
        importances=values,
        notes=[note] if note else [],
        failures=describe_failures(trials),
        failure_ranges=failure_range_rows(trials, failed),
        failed_trials=failed,
        complete_trials=snapshot.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
    )
    return report, snapshot


def failure_range_rows(trials: Sequence[Any], failed: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per parameter of the failed trials: where they failed, where trials completed."""
    from optuna.trial import TrialState

    from tuneflow.search.failure_aware import failure_ranges

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    completed = {name: text for name, text, _ in failure_ranges(trials, complete)} if complete else {}
    return [{"param": name, "failed trials": text, "completed trials": completed.get(name, "")}
            for name, text, _ in failure_ranges(trials, failed)]


def write_files(report: StudyReport, snapshot: Any, out_dir: Path, extra_html: str = "") -> list[Path]:
    """``top_trials.csv``, ``importances.csv``, one PNG per plot and ``report.html``."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_write_csv(report.top, out_dir / "top_trials.csv")]
    if report.importances:
        written.append(_write_csv([{"param": k, "importance": v} for k, v in report.importances.items()],
                                  out_dir / "importances.csv"))
    pngs, notes = matplotlib_figures(snapshot)
    if report.failed_trials:
        written.append(_write_csv(failed_rows(report.failed_trials), out_dir / "failed_trials.csv"))
    plotted = plottable_failures(report.complete_trials, report.failed_trials)
    if plotted:
        pngs[FAILURE_PLOT] = failures_matplotlib(report.complete_trials, plotted)
    for name, figure in pngs.items():
        for axes in figure.axes:
            legend = axes.get_legend()
            if legend is not None and len(legend.get_texts()) > MAX_LEGEND_ENTRIES:
                legend.remove()  # one entry per trial: past a few dozen it hides the plot
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        figure.savefig(out_dir / f"{name}.png", dpi=90)
        plt.close(figure)
        written.append(out_dir / f"{name}.png")
    figures, plotly_notes = plotly_figures(snapshot)
    if plotted:
        figures[FAILURE_PLOT] = failures_plotly(report.complete_trials, plotted)
    report.notes.extend(note for note in notes + plotly_notes if note not in report.notes)
    path = out_dir / "report.html"
    path.write_text(html_page(report, figures, extra_html))
    written.append(path)
    return written


def _write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    from tuneflow.tracking.trials_csv import write_table

    return write_table(rows, path)


def html_page(report: StudyReport, figures: Mapping[str, Any], extra_html: str = "") -> str:
    """One self-contained page: tables, then the interactive plots (plotly.js embedded once)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>tuneflow report: {html.escape(report.study_name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>",
        f"<h1>Study {html.escape(report.study_name)}</h1>",
        f"<p>{report.n_finished} finished trials ({report.n_complete} complete); objective "
        f"{html.escape(report.objective)}, {report.direction}.</p>",
        f"<h2>Top {len(report.top)} trials</h2>", html_table(report.top),
    ]
    if report.failures:
        parts += ["<h2>Failed trials</h2>", f"<p>{html.escape(report.failures)}</p>", html_table(report.failure_ranges)]
    if report.importances:
        parts += ["<h2>Parameter importances (fANOVA)</h2>",
                  html_table([{"param": k, "importance": v} for k, v in report.importances.items()])]
    parts.append(extra_html)
    parts += [f"<p><i>{html.escape(note)}</i></p>" for note in report.notes]
    for index, (name, figure) in enumerate(figures.items()):
        parts += [f"<h2>{name.replace('_', ' ').capitalize()}</h2>",
                  figure.to_html(full_html=False, include_plotlyjs=index == 0)]
    parts.append("</body></html>")
    return "\n".join(parts)


def html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def format_top(rows: Sequence[Mapping[str, Any]], objective: str) -> str:
    """The top-k table for the terminal: rank, trial, value, ranges, repeats, params."""
    lines = []
    for row in rows:
        ranges = [f"{key.split('/')[0]}={_cell(value)}" for key, value in row.items()
                  if key.endswith(f"/{objective}")]
        repeats = ""
        if "repeat_mean" in row:
            repeats = (f" | {row['repeats']} new seeds: {_cell(row['repeat_mean'])} "
                       f"[{_cell(row['repeat_ci_low'])}, {_cell(row['repeat_ci_high'])}]")
        params = " ".join(f"{key[6:]}={_cell(value)}" for key, value in row.items() if key.startswith("param."))
        lines.append(f"#{row['rank']:<3} trial {row['trial']:<4} {objective}={_cell(row[objective])}"
                     + (f" ({', '.join(ranges)})" if ranges else "") + repeats + f"  {params}")
    return "\n".join(lines)

# --- failed trials -------------------------------------------------------------------------------------


def failed_rows(failed: Sequence[Any]) -> list[dict[str, Any]]:
    """``failed_trials.csv``: each failed trial, its error and params."""
    return [{"trial": t.number, "error": t.user_attrs.get(ERROR_ATTR, ""),
             **{f"param.{name}": value for name, value in t.params.items()}} for t in failed]


def plottable_failures(complete: Sequence[Any], failed: Sequence[Any]) -> list[Any]:
    """The failed trials that set every parameter the completed trials share (one that failed before it
    suggested them all has no line to draw); none when the completed trials share no parameter."""
    shared = set.intersection(*(set(t.params) for t in complete)) if complete else set()
    return [t for t in failed if shared and shared <= set(t.params)]


def failure_axes(complete: Sequence[Any], failed: Sequence[Any]) -> list[tuple[str, list[float], list[float], list[str]]]:
    """The parallel-coordinates axes of completed and failed trials: per parameter (in the order of the
    failed trials' params), its name, each trial's position on it (completed trials first, then failed), and
    tick positions and labels. Log parameters sit on a log10 axis, choices at their index."""
    from optuna.distributions import CategoricalDistribution

    trials = [*complete, *failed]
    names = [name for name in dict.fromkeys(n for t in failed for n in t.params)
             if all(name in t.params for t in trials)]
    axes = []
    for name in names:
        distribution = failed[0].distributions[name]
        values = [t.params[name] for t in trials]
        if isinstance(distribution, CategoricalDistribution):
            choices = [c for c in distribution.choices if c in values]
            positions = [float(choices.index(v)) for v in values]
            ticks, labels = [float(i) for i in range(len(choices))], [str(c) for c in choices]
        else:
            log = bool(getattr(distribution, "log", False))
            positions = [math.log10(v) if log else float(v) for v in values]
            low, high = min(values), max(values)
            ticks = [math.log10(low), math.log10(high)] if log else [float(low), float(high)]
            labels = [_cell(float(low)), _cell(float(high))]
        axes.append((name, positions, ticks, labels))
    return axes


def failures_plotly(complete: Sequence[Any], failed: Sequence[Any]) -> Any:
    """Parallel coordinates of completed (blue) and failed (red) trials, one line per trial."""
    import plotly.graph_objects as go

    outcome = [0] * len(complete) + [1] * len(failed)
    dimensions = [dict(label=name, values=positions, tickvals=ticks, ticktext=labels)
                  for name, positions, ticks, labels in failure_axes(complete, failed)]
    dimensions.append(dict(label="outcome", values=outcome, tickvals=[0, 1], ticktext=["complete", "failed"]))
    figure = go.Figure(go.Parcoords(
        line=dict(color=outcome, colorscale=[[0, COMPLETE_COLOUR], [1, FAILED_COLOUR]], cmin=0, cmax=1),
        dimensions=dimensions,
    ))
    figure.update_layout(title=f"Completed ({len(complete)}, blue) and failed ({len(failed)}, red) trials")
    return figure


def failures_matplotlib(complete: Sequence[Any], failed: Sequence[Any]) -> Any:
    """The same plot as ``failures_plotly`` for the PNG: each axis scaled to its own range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = failure_axes(complete, failed)
    figure, ax = plt.subplots()
    scaled = []
    for _, positions, ticks, _ in axes:
        low, high = min(positions + ticks), max(positions + ticks)
        scaled.append([(p - low) / (high - low) if high > low else 0.5 for p in positions])
    for index in range(len(complete) + len(failed)):
        is_failed = index >= len(complete)
        ax.plot(range(len(axes)), [column[index] for column in scaled], alpha=0.8 if is_failed else 0.35,
                color=FAILED_COLOUR if is_failed else COMPLETE_COLOUR, linewidth=1.2 if is_failed else 0.8)
    for x, (_name, positions, ticks, labels) in enumerate(axes):
        ax.axvline(x, color="black", linewidth=0.6)
        low, high = min(positions + ticks), max(positions + ticks)
        for tick, label in zip(ticks, labels):
            ax.annotate(label, (x, (tick - low) / (high - low) if high > low else 0.5), fontsize=7,
                        xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xticks(range(len(axes)), [name for name, *_ in axes])
    ax.set_yticks([])
    ax.set_title(f"Completed ({len(complete)}, blue) and failed ({len(failed)}, red) trials")
    return figure


def parse_arguments(argv: Sequence[str]) -> Any:
    parser = Parser(prog="tuneflow report", description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_store_arguments(parser)
    parser.add_argument("--top", type=int, default=10, help="trials in the top table (default 10)")
    parser.add_argument("--out", default=None, help="output folder (default: ROOT_DIR/studies/STUDY/report)")
    parser.add_argument("--conf-dir", default="conf", help="where conf/best/<study>.yaml goes (default: ./conf)")
    parser.add_argument("--no-export", action="store_true", help="do not write conf/best/<study>.yaml")
    parser.add_argument("--no-mlflow", action="store_true", help="write files only; log nothing to MLflow")
    parser.add_argument("--trial", type=int, default=None,
                        help="multi-objective study: the Pareto trial to export (default: the knee)")
    args = parser.parse_args(list(argv))
    if args.top < 1:
        parser.error(f"--top is {args.top}, but must be at least 1")
    return args


def zone_study(location: StudyLocation, name: str) -> Any:
    """A strategy's zone study, or None where it is not in the storage (the plot then shows the files')."""
    import dataclasses

    try:
        return load_study(dataclasses.replace(location, name=name))
    except ConfigError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    from tuneflow.analysis.repeat import (
        conclude,
        finalists_by_trial,
        finished_repeats,
        format_table,
        objective_of,
        table_rows,
    )
    from tuneflow.console import quiet_library_warnings

    quiet_library_warnings()
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        location = StudyLocation.from_arguments(args)
    except ConfigError as error:
        return fail(error)
    out_dir = Path(args.out) if args.out else location.study_dir / "report"
    try:
        check_output_folder(out_dir, "--out")
        if not args.no_export:
            check_output_folder(args.conf_dir, "--conf-dir")
        try:
            study = load_study(location)
        except ConfigError:
            from tuneflow.strategy import summary

            if not summary.stage_files(location.study_dir):
                raise
            # A strategy: its stages and zones (a zone's study read from the same storage, for the plot).
            return summary.print_report(location.study_dir, out_dir, lambda name: zone_study(location, name))
        client = mlflow_client(location)
        parent = parent_run_id(study)
        if len(study.directions) > 1:  # a Pareto set instead of a best trial
            from tuneflow.analysis import pareto_report

            pareto_lines, pareto_files = pareto_report.write(study, out_dir, args.conf_dir, args.trial, not args.no_export,
                                                 client, location)
        elif args.trial is not None:
            raise ConfigError(f"--trial picks a Pareto trial of a multi-objective study; study {study.study_name!r} "
                              "has one objective (its best trial is exported)")
    except Exception as error:  # noqa: BLE001 - fixable errors become one line, bugs keep their traceback
        return fail(error)
    if len(study.directions) > 1:
        print("\n".join(pareto_lines))
        print(f"report: {out_dir}/ ({', '.join(p.name for p in pareto_files)})")
        if parent and not args.no_mlflow:
            client.log_artifacts(parent, str(out_dir), artifact_path="report")
            print(f"logged to MLflow parent run {parent} (artifacts report/)")
        return 0
    try:
        experiment_id = experiment_of_run(client, parent, location) if parent else None
        objective = objective_of(study, client)
        records = finished_repeats(client, experiment_id, study.study_name, objective) if experiment_id else []
        repeats = finalists_by_trial(records)
        report, snapshot = build(study, objective, args.top, repeats)
    except Exception as error:  # noqa: BLE001 - fixable errors become one line, bugs keep their traceback
        return fail(error)
    print(f"study {study.study_name!r}: {report.n_finished} finished trials ({report.n_complete} complete)")
    print(format_top(report.top, objective))
    if report.failures:
        print(f"where trials failed: {report.failures}")
    if report.importances:
        print("importances: " + ", ".join(f"{k}={v:.3f}" for k, v in report.importances.items()))
    extra = ""
    if repeats or not args.no_export:
        lines: list[str] = []
        table = conclude(study, client, location, parent, experiment_id or "", None, None, args.conf_dir, out_dir,
                         export_best=not args.no_export, log=not args.no_mlflow, progress=lines.append)
        print("\n".join(lines))
        if table.rows:
            extra = (f"<h2>Significance over new seeds</h2><p>{html.escape(table.verdict)}</p>"
                     f"<pre>{html.escape(format_table(table_rows(table, study), objective))}</pre>")
    written = write_files(report, snapshot, out_dir, extra)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {out_dir}/ ({', '.join(p.name for p in written)})")
    if parent and not args.no_mlflow:
        client.log_artifacts(parent, str(out_dir), artifact_path="report")
        print(f"logged to MLflow parent run {parent} (artifacts report/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

