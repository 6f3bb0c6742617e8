"""The stage kinds: each a function ``(context, stage config, inputs) -> outputs`` (``Handoff`` in and out),
so a strategy is a list of them and any stage can run from a file of inputs alone.

- ``search``: one study over some parameters (all, the rest, or a named group such as the learning-rate
  group), the others at the architecture's defaults or at the best input's values; the inputs' values of
  the searched parameters are tried first.
- ``zones``: the inputs grouped into zones (``tuneflow.strategy.zones``); one study per zone, over the
  zone's own narrowed space, with its share of the budget; each zone's best are handed on.
- ``decay``: every input trained with every learning-rate decay scheme, once each (enqueued trials).
- ``repeat``: the best inputs re-trained with new seeds; the significance verdict; the winner exported.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution

from tuneflow.search import space as search_space
from tuneflow.strategy import spaces
from tuneflow.strategy import zones as zoning
from tuneflow.strategy.backend import Backend, StudyRequest
from tuneflow.strategy.config import StageConfig
from tuneflow.strategy.handoff import Handoff

log = logging.getLogger("tuneflow")


@dataclass
class Context:
    backend: Backend
    #: Sampler seed of every stage unless the stage sets its own.
    seed: int | None = 0


StageFunction = Callable[[Context, StageConfig, Handoff], Handoff]


def request_for(context: Context, stage: StageConfig, name: str, distributions: dict[str, BaseDistribution],
                **extra: Any) -> StudyRequest:
    args = dict(stage.sampler_args)
    if context.seed is not None and "seed" not in args and stage.sampler not in ("grid",):
        args["seed"] = context.seed
    return StudyRequest(name=name, distributions=distributions, n_trials=stage.n_trials, sampler=stage.sampler,
                        sampler_args=args, pruner=stage.pruner, overrides=list(stage.overrides), **extra)


def grid_in_proportion(request: StudyRequest, seed: int | None) -> StudyRequest:
    """The inputs queued up to the study's budget (more would stay WAITING in the finished study), and a
    grid larger than the budget as the budget's points only.

    Optuna's GridSampler lists every point of its grid when built and again for each trial (the zones
    strategy's 5 points per parameter make 8.6 million on lstm_attention: seconds per study), then runs
    distinct points in random order. When the budget covers the whole grid that is what runs; otherwise
    the budget's points are chosen here without listing the grid, spread over it (``spread_points``:
    a random draw of a few points leaves whole regions out, which measured worse than random search in
    the replay), and queued (after the inputs) in a study whose random sampler only stands in for a
    failed trial's replacement, a point of the same grid (the gridded ranges are choices)."""
    request.enqueue = request.enqueue[: request.n_trials]
    if request.sampler != "grid":
        return request
    grid = search_space.grid_of(request.distributions)
    size = math.prod(len(values) for values in grid.values())
    if size <= request.n_trials:
        return request
    seed = request.sampler_args.get("seed", seed)
    queued = list(request.enqueue)
    wanted = request.n_trials - len(queued)
    for point in spread_points(grid, wanted + len(queued), seed):
        if wanted <= 0:
            break
        if point not in queued:
            queued.append(point)
            wanted -= 1
    log.info(f"study {request.name}: {len(queued)} of the grid's {size} points, spread over it")
    request.enqueue = queued
    request.sampler, request.sampler_args = "random", {} if seed is None else {"seed": seed}
    return request


def spread_points(grid: Mapping[str, Sequence[Any]], n: int, seed: int | None) -> list[dict[str, Any]]:
    """``n`` distinct grid points spread over the whole grid: a scrambled Halton sequence (scipy's
    ``stats.qmc``, the low-discrepancy points Optuna's QMCSampler draws) snapped to the grid's cells, so a
    small budget covers every region instead of a random draw's clumps; random points where the snapped
    ones repeat."""
    from scipy.stats import qmc

    names = list(grid)
    size = math.prod(len(values) for values in grid.values())
    units = qmc.Halton(d=len(names), scramble=True, seed=seed).random(n)
    points: list[dict[str, Any]] = []
    for row in units:
        point = {name: grid[name][min(int(u * len(grid[name])), len(grid[name]) - 1)] for name, u in zip(names, row)}
        if point not in points:
            points.append(point)
    draw = random.Random(seed)
    while len(points) < min(n, size):
        point = grid_point(grid, draw.randrange(size))
        if point not in points:
            points.append(point)
    return points


def grid_point(grid: Mapping[str, Sequence[Any]], index: int) -> dict[str, Any]:
    """The grid's point number ``index`` (the last parameter varying fastest, as itertools.product)."""
    point: dict[str, Any] = {}
    for name, values in reversed(list(grid.items())):
        index, at = divmod(index, len(values))
        point[name] = values[at]
    return {name: point[name] for name in grid}


def searched_names(stage: StageConfig, inputs: Handoff) -> list[str]:
    if stage.params == "all":
        return list(inputs.space)
    if stage.params == "rest":
        return [name for name in inputs.space if name not in inputs.groups]
    return [str(name) for name in stage.params if str(name) in inputs.space]


def points_inside(points: Sequence[Mapping[str, Any]], distributions: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
    """The inputs' values of the searched parameters, where they are points of the space, once each."""
    inside: list[dict[str, Any]] = []
    for params in points:
        point = {name: params[name] for name in distributions if name in params}
        if (len(point) == len(distributions) and all(spaces.contains(distributions[n], v) for n, v in point.items())
                and point not in inside):
            inside.append(point)
    return inside


def inputs_of(context: Context, stage: StageConfig, inputs: Handoff, members: Sequence[Mapping[str, Any]],
              distributions: Mapping[str, BaseDistribution], fixed: Mapping[str, Any],
              ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], float, str]]]:
    """The inputs that are points of the stage's space: (to train first, already known).

    Known: scored by the previous stage with this stage's overrides (the same fidelity: not a fast-mode
    screen's value in a full-mode stage) and with this study's values of everything it does not search.
    Those are added to the study with their value (the sampler learns from them); training them again
    would only cost the same epochs twice."""
    same = inputs.overrides is not None and list(inputs.overrides) == list(stage.overrides)
    enqueue: list[dict[str, Any]] = []
    known: list[tuple[dict[str, Any], float, str]] = []
    for member in members:
        params = member["params"]
        inside = points_inside([params], distributions)
        if not inside or inside[0] in enqueue or inside[0] in [k[0] for k in known]:
            continue
        point = inside[0]
        others = {*fixed, *(k for k in params if k not in distributions)}
        measured_here = same and member.get("value") is not None and all(
            params.get(k, context.backend.default_value(k)) == fixed.get(k, context.backend.default_value(k))
            for k in others)
        if measured_here:
            known.append((point, float(member["value"]), f"{member.get('study')}#{member.get('trial')}"))
        else:
            enqueue.append(point)
    return enqueue, known


def passed_on(stage: StageConfig, inputs: Handoff, why: str) -> Handoff:
    log.info(f"stage {stage.name}: skipped, {why}; its inputs are handed on")
    return Handoff(stage.name, list(inputs.finalists), list(inputs.searched), dict(inputs.space),
                   groups=list(inputs.groups), note=f"skipped: {why}", overrides=inputs.overrides)


def search(context: Context, stage: StageConfig, inputs: Handoff) -> Handoff:
    names = searched_names(stage, inputs)
    if not names:
        return passed_on(stage, inputs, f"none of its parameters ({stage.params}) is in the search space")
    distributions = spaces.parse({name: inputs.space[name] for name in names})
    if stage.grid_steps:
        distributions = zoning.gridded(distributions, stage.grid_steps)
    best = inputs.best
    fixed = ({k: v for k, v in best["params"].items() if k not in distributions}
             if stage.others == "best" and best else {})
    enqueue, known = inputs_of(context, stage, inputs, inputs.finalists, distributions, fixed)
    request = request_for(context, stage, stage.name, distributions, fixed=fixed, enqueue=enqueue, known=known)
    candidates = context.backend.run_study(grid_in_proportion(request, context.seed))
    searched = list(dict.fromkeys([*inputs.searched, *names]))
    groups = list(dict.fromkeys([*inputs.groups, *(names if stage.params not in ("all", "rest") else [])]))
    return Handoff(stage.name, candidates[: stage.top_k], searched, dict(inputs.space), groups=groups,
                   overrides=list(stage.overrides))


def zones(context: Context, stage: StageConfig, inputs: Handoff) -> Handoff:
    if not inputs.finalists:
        return passed_on(stage, inputs, "it has no inputs to group")
    names = [name for name in inputs.searched if name in inputs.space] or list(inputs.space)
    space = spaces.parse({name: inputs.space[name] for name in names})
    found = zoning.zones_of(inputs.finalists, space, stage.threshold, stage.margin, stage.max_zones)
    shares = zoning.budget_shares(stage.n_trials, len(found))
    log.info(f"stage {stage.name}: {len(inputs.finalists)} inputs form {len(found)} zone(s); "
             f"{', '.join(str(s) for s in shares)} trials each")
    finalists: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for zone, share in zip(found, shares):
        if stage.around_best:
            zone.space = zoning.box_around(zone.best["params"], space, stage.around_best)
        distributions = zoning.gridded(zone.space, stage.grid_steps) if stage.grid_steps else zone.space
        fixed = {k: v for k, v in zone.best["params"].items() if k not in distributions}
        enqueue, known = inputs_of(context, stage, inputs, zone.members, distributions, fixed)
        request = request_for(context, stage, f"{stage.name}/zone-{zone.number}", distributions, fixed=fixed,
                              enqueue=enqueue, known=known)
        request.n_trials = share
        candidates = context.backend.run_study(grid_in_proportion(request, context.seed))
        kept = [{**c, "zone": zone.number} for c in candidates[: stage.top_k]]
        finalists.extend(kept)
        records.append({
            "zone": zone.number,
            "study": kept[0]["study"] if kept else request.name,
            "inputs": [{"study": m.get("study"), "trial": m.get("trial"), "value": m.get("value")} for m in zone.members],
            "bounds": spaces.to_syntax(zone.space),
            "best": kept[0] if kept else None,
        })
    reverse = context.backend.direction == "maximize"
    finalists.sort(key=lambda c: c["value"], reverse=reverse)
    return Handoff(stage.name, finalists, list(inputs.searched), dict(inputs.space), zones=records,
                   groups=list(inputs.groups), note=f"{len(found)} zone(s)", overrides=list(stage.overrides))


def decay(context: Context, stage: StageConfig, inputs: Handoff) -> Handoff:
    keys = sorted({key for scheme in stage.schemes.values() for key in scheme})
    if not inputs.finalists:
        return passed_on(stage, inputs, "it has no inputs")
    if not context.backend.has_params(keys):
        return passed_on(stage, inputs, f"the architecture has no {', '.join(keys)}")
    points = []
    for candidate in inputs.finalists:
        for scheme in stage.schemes.values():
            # A key another scheme sets takes the candidate's value, else the architecture's default
            # (halving every 7 epochs leaves lr_plateau_patience as it was).
            unset = {key: candidate["params"].get(key, context.backend.default_value(key))
                     for key in keys if key not in scheme}
            points.append({**candidate["params"], **unset, **scheme})
    # One study: every (input, scheme) pair is one enqueued trial of a space made of exactly the values
    # they use, so nothing else is sampled.
    distributions: dict[str, BaseDistribution] = {}
    for name in dict.fromkeys(key for point in points for key in point):
        values = list(dict.fromkeys(point.get(name) for point in points))
        distributions[name] = CategoricalDistribution(tuple(values))
    request = request_for(context, stage, stage.name, distributions, enqueue=points)
    request.n_trials, request.sampler, request.sampler_args = len(points), "random", {}
    candidates = context.backend.run_study(request)
    finalists = []
    for candidate in inputs.finalists:
        # Each input's best scheme (its zone kept): the decay stage refines, it does not drop a zone.
        own = [c for c in candidates if all(c["params"].get(k) == v for k, v in candidate["params"].items()
                                            if k not in keys)]
        if own:
            used = next((name for name, values in stage.schemes.items()
                         if all(own[0]["params"].get(k) == v for k, v in values.items())), None)
            finalists.append({**own[0], "scheme": used, **({"zone": candidate["zone"]} if "zone" in candidate else {})})
    finalists.sort(key=lambda c: c["value"], reverse=context.backend.direction == "maximize")
    return Handoff(stage.name, finalists, list(inputs.searched), dict(inputs.space), groups=list(inputs.groups),
                   overrides=list(stage.overrides))


def repeat(context: Context, stage: StageConfig, inputs: Handoff) -> Handoff:
    if not inputs.finalists:
        return passed_on(stage, inputs, "it has no inputs")
    candidates = inputs.finalists[: stage.top]
    names = list(dict.fromkeys(k for c in candidates for k in c["params"]))
    distributions: dict[str, BaseDistribution] = {
        name: CategoricalDistribution(tuple(dict.fromkeys(c["params"].get(name) for c in candidates))) for name in names}
    request = request_for(context, stage, stage.name, distributions, enqueue=[dict(c["params"]) for c in candidates])
    request.n_trials, request.sampler, request.sampler_args = len(candidates), "random", {}
    result = context.backend.repeat(request, candidates, stage.seeds)
    log.info(f"stage {stage.name}: {result.verdict}")
    return Handoff(stage.name, result.ranked, list(inputs.searched), dict(inputs.space), groups=list(inputs.groups),
                   note=result.verdict, overrides=list(stage.overrides))


KINDS: dict[str, StageFunction] = {"search": search, "zones": zones, "decay": decay, "repeat": repeat}
