"""``tuneflow report`` of a multi-objective study: its Pareto set instead of a best trial.

- the Pareto-optimal trials (Optuna's ``study.best_trials``) with their objectives and params, the knee
  marked (``tuneflow.search.pareto.knee``), printed and written as ``pareto_trials.csv``;
- the Pareto front drawn by Optuna (``optuna.visualization.plot_pareto_front``: ``pareto_front.png``
  through its matplotlib twin, and inside a self-contained ``report.html``);
- one of the Pareto trials, ``--trial N`` or the knee by default, exported as ``conf/best/<study>.yaml``
  (retrain: ``python -m tuneflow +best=<study>``).
"""

from __future__ import annotations

import datetime
import html
import warnings
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from tuneflow.errors import ConfigError
from tuneflow.search import pareto
from tuneflow.storage.readers import StudyLocation, finished_snapshot
from tuneflow.storage.study import RUN_ID_ATTR
from tuneflow.storage.urls import shown


def rows(front: list[FrozenTrial], names: list[str], knee: FrozenTrial | None) -> list[dict[str, Any]]:
    """One row per Pareto trial: number, whether it is the knee, each objective, each param, MLflow run."""
    return [{"trial": t.number, "knee": t is knee, **dict(zip(names, t.values)), **t.params,
             "mlflow_run_id": t.user_attrs.get(RUN_ID_ATTR)} for t in front]


def chosen_trial(front: list[FrozenTrial], knee: FrozenTrial | None, number: int | None) -> FrozenTrial:
    """The Pareto trial ``--trial`` names, or the knee."""
    if number is None:
        if knee is None:
            raise ConfigError("the study has no completed trial yet; report it once one finished")
        return knee
    for trial in front:
        if trial.number == number:
            return trial
    raise ConfigError(
        f"--trial {number} is not Pareto-optimal; choose one of {', '.join(str(t.number) for t in front)}"
    )


def draw(snapshot: Any, names: list[str], out_dir: Path) -> tuple[list[Path], str]:
    """The Pareto front as a PNG (matplotlib) and as plotly HTML for report.html."""
    import matplotlib.pyplot as plt
    import optuna.visualization as plotly_plots
    import optuna.visualization.matplotlib as mpl_plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = mpl_plots.plot_pareto_front(snapshot, target_names=names)
        figure = plotly_plots.plot_pareto_front(snapshot, target_names=names)
    png = out_dir / "pareto_front.png"
    image = axes.get_figure(root=True)
    assert image is not None
    image.set_size_inches(9, 5.5)
    image.tight_layout()
    image.savefig(png, dpi=90)
    plt.close(image)
    return [png], figure.to_html(full_html=False, include_plotlyjs=True)


def write(study: Any, out_dir: Path, conf_dir: str, trial_number: int | None, export_best: bool,
          client: Any, location: StudyLocation) -> tuple[list[str], list[Path]]:
    """Print lines and files of a multi-objective study's report (and its export)."""
    from tuneflow.analysis.best import export
    from tuneflow.analysis.recompose import trial_config
    from tuneflow.tracking.trials_csv import write_table

    snapshot = finished_snapshot(study)
    names = pareto.objective_names(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is "experimental" (stable since Optuna 3.2)
        snapshot.set_metric_names(names)  # the copy's lines and axes name the objectives as the study does
    front = pareto.pareto_set(snapshot)
    if not front:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet; report it once one finished")
    knee = pareto.knee(front, study.directions)
    chosen = chosen_trial(front, knee, trial_number)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = rows(front, names, knee)
    written = [write_table(table, out_dir / "pareto_trials.csv")]
    pngs, plot_html = draw(snapshot, names, out_dir)
    written += pngs
    lines = [f"study {study.study_name!r}: {len(snapshot.get_trials(deepcopy=False))} trials, "
             f"{len(study.directions)} objectives", *pareto.describe(snapshot)]
    if export_best:
        values = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, chosen.values))
        why = "the knee of the Pareto set (nearest the utopia point, objectives min-max normalised)" \
            if chosen is knee else "chosen with --trial among the Pareto set"
        header = [f"Configuration of study {study.study_name!r}: Pareto trial {chosen.number} ({values}, "
                  f"MLflow run {chosen.user_attrs.get(RUN_ID_ATTR, '?')})", why,
                  f"Exported {datetime.date.today().isoformat()} from {shown(location.storage_url)}"]
        path = export(trial_config(chosen, study, client), study.study_name, header, conf_dir)
        lines.append(f"best config: {path} (trial {chosen.number}; retrain: python -m tuneflow +best={path.stem})")
    page = out_dir / "report.html"
    cells = "".join(f"<th>{html.escape(str(k))}</th>" for k in table[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in table)
    page.write_text(
        f"<html><head><meta charset='utf-8'><title>{html.escape(study.study_name)}</title></head><body>"
        f"<h1>Study {html.escape(study.study_name)}: Pareto front</h1>{plot_html}"
        f"<h2>Pareto-optimal trials</h2><table border='1'><tr>{cells}</tr>{body}</table></body></html>"
    )
    written.append(page)
    return lines, written
