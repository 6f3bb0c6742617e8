"""A synthetic architecture that trains in microseconds: for tests, smoke runs and overhead benchmarks.

Its "validation loss" after each epoch follows a learning curve towards a known optimum
(``(x - 2)^2 + (y + 1)^2``;
``twin_quadratic`` adds a second, shallower bowl), so pruners and samplers behave as on a real model, and a study's
result can be checked against the known answer. ``fail_above`` makes it raise and ``nan_above``
makes its metric NaN for large ``x``: the failure paths of a study can be exercised on purpose.
``noise`` adds a seed-dependent offset, so that repeats with new seeds vary as on a real model.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuneflow.models.base import Reporter, TrainResult


class QuadraticModel:
    """The 'trained model': predicts its final loss for any input (enough to save and load)."""

    def __init__(self, loss: float) -> None:
        self.loss = loss

    def predict(self, x: Any) -> np.ndarray:
        return np.full(len(x), self.loss)


def final_loss(params: Mapping[str, Any]) -> float:
    """The bowl around (2, -1); with ``second_optimum: [x, y, depth]`` the lower of it and a second bowl
    around (x, y) lifted by ``depth``: two separated zones, the second worse by ``depth`` at its bottom."""
    x, y = float(params["x"]), float(params["y"])
    loss = (x - 2.0) ** 2 + (y + 1.0) ** 2
    second = params.get("second_optimum")
    if second:
        x2, y2, depth = (float(v) for v in second)
        loss = min(loss, (x - x2) ** 2 + (y - y2) ** 2 + depth)
    return loss


def train(params: Mapping[str, Any], data: Any, report: Reporter, *, seed: int, device: str) -> TrainResult:
    x = float(params["x"])
    if params.get("fail_above") is not None and x > float(params["fail_above"]):
        raise RuntimeError(f"synthetic failure: x={x} > fail_above={params['fail_above']}")
    # The draw shifts the whole curve, like a lucky or unlucky initialisation would; it depends on the
    # seed and the configuration, as a real training run's luck does.
    noise = float(params.get("noise") or 0.0)
    draw = np.random.default_rng(zlib.crc32(repr((seed, x, float(params["y"]))).encode())).standard_normal()
    target = final_loss(params) + noise * float(draw)
    epochs = int(params.get("epochs", 20))
    loss = target
    for epoch in range(1, epochs + 1):
        # Decays towards the target: a bad configuration is already visibly bad after a few epochs.
        loss = target + 10.0 / epoch
        if params.get("nan_above") is not None and x > float(params["nan_above"]) and epoch >= 2:
            loss = float("nan")
        # Optional wall time per epoch: lets tests kill a worker in the middle of a trial. (No sleep(0):
        # it yields the CPU, which costs milliseconds per epoch on a busy machine.)
        if params.get("seconds_per_epoch"):
            time.sleep(float(params["seconds_per_epoch"]))
        report(epoch, {"val_loss": loss})
    return TrainResult(
        metrics={"val_loss": loss},
        model=QuadraticModel(loss),
        flavor="pyfunc",
        epochs_run=epochs,
    )
