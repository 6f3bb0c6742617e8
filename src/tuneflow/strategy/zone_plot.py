"""The parallel-coordinates plot of a zones stage, coloured by zone (``tuneflow report`` of a strategy):
each zone's input trials (read from the previous stage's finalists file) and the trials of the zone's own
study (from the Optuna storage, where the report can read it), one line each, one colour per zone.

Plotly's ``Parcoords`` (the figure ``optuna.visualization.plot_parallel_coordinate`` draws) rather than that
function: it plots one study and colours by objective, while a zones stage is several studies and the
colour here is the zone. The page is self-contained (plotly.js embedded), as ``report.html`` is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from tuneflow.strategy import handoff as files
from tuneflow.strategy import spaces
from tuneflow.strategy.backend import KNOWN_ATTR
from tuneflow.strategy.handoff import Handoff

#: A zone study's name -> the study (None where it cannot be read: the plot then shows the files' points).
StudyLoader = Callable[[str], "optuna.Study | None"]


def zone_points(handoff: Handoff, previous: Handoff | None, load: StudyLoader | None = None) -> list[dict[str, Any]]:
    """Every point of the zones stage: {zone, params, value, source} (source: input, trial or best)."""
    inputs = {(f.get("study"), f.get("trial")): f for f in (previous.finalists if previous else [])}
    points: list[dict[str, Any]] = []
    for zone in handoff.zones:
        number = zone["zone"]
        best = zone.get("best") or {}
        for member in zone.get("inputs", []):
            found = inputs.get((member.get("study"), member.get("trial")))
            if found is not None:
                points.append({"zone": number, "params": found["params"], "value": found.get("value"),
                               "source": "input"})
        study = load(zone["study"]) if load is not None else None
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if study is not None else []
        # An input the zone's study took with its known value is drawn once, as the input it is.
        trials = [t for t in trials if KNOWN_ATTR not in t.user_attrs]
        for trial in trials:
            # The zone's fixed parameters are not the trial's: they are the zone best's.
            points.append({"zone": number, "params": {**best.get("params", {}), **trial.params},
                           "value": trial.value, "source": "trial"})
        if not trials and best:
            points.append({"zone": number, "params": best["params"], "value": best.get("value"), "source": "best"})
    return points


def _axis(name: str, dist: BaseDistribution, values: Sequence[Any]) -> dict[str, Any]:
    if isinstance(dist, CategoricalDistribution):
        labels = [str(c) for c in dist.choices]
        return {"label": name, "values": [labels.index(str(v)) if str(v) in labels else math.nan for v in values],
                "tickvals": list(range(len(labels))), "ticktext": labels}
    if getattr(dist, "log", False):
        return {"label": f"log10({name})", "values": [math.log10(float(v)) for v in values]}
    return {"label": name, "values": [float(v) for v in values]}


def figure(points: Sequence[Mapping[str, Any]], space: Mapping[str, str], objective: str = "value") -> Any:
    """One line per point, one axis per searched parameter (log10 where the space is log; a categorical's
    choices as ticks) and the objective last; the colour is the zone."""
    import plotly.graph_objects as go

    distributions = spaces.parse(dict(space))
    names = [n for n in distributions if all(n in p["params"] for p in points)]
    dimensions = [_axis(n, distributions[n], [p["params"][n] for p in points]) for n in names]
    dimensions.append({"label": objective, "values": [float(p["value"]) for p in points]})
    zones = sorted({int(p["zone"]) for p in points})
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    # A discrete colour scale: zone k's band of [0, 1] holds one colour, so the colour bar reads as zones.
    scale: list[list[Any]] = []
    for index, _ in enumerate(zones):
        colour = palette[index % len(palette)]
        scale += [[index / len(zones), colour], [(index + 1) / len(zones), colour]]
    colour_of = {zone: index + 0.5 for index, zone in enumerate(zones)}
    line = {"color": [colour_of[int(p["zone"])] for p in points], "colorscale": scale, "cmin": 0,
            "cmax": len(zones), "showscale": True,
            "colorbar": {"title": "zone", "tickvals": [colour_of[z] for z in zones],
                         "ticktext": [str(z) for z in zones]}}
    return go.Figure(go.Parcoords(line=line, dimensions=dimensions))


def write_zone_plots(paths: Sequence[Path], out_dir: Path, load: StudyLoader | None = None) -> list[Path]:
    """``zones_<stage>.html`` in ``out_dir`` for each zones stage among ``paths`` (stage files, in the
    order they ran); the paths written."""
    written = []
    previous: Handoff | None = None
    for path in paths:
        handoff = files.read(path)
        points = zone_points(handoff, previous, load) if handoff.zones else []
        if points:
            fig = figure(points, handoff.space)
            fig.update_layout(title=f"stage {handoff.stage}: {len(points)} points in {len(handoff.zones)} zone(s)")
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"zones_{handoff.stage}.html"
            fig.write_html(target, include_plotlyjs=True, full_html=True)
            written.append(target)
        previous = handoff
    return written
