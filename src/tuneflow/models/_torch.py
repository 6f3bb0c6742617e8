"""The training loop shared by every PyTorch architecture.

One loop, so the learning-rate group (initial rate, schedule, decay factor, early-stopping patience)
means the same thing for the MLP, the CNN and the LSTM: mini-batch Adam, a validation pass per epoch,
the schedule stepped on that pass, the best epoch's weights restored at the end.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneflow.models.base import Reporter

#: Validation metrics of a model's outputs against the targets, e.g. ``{"val_loss": ..., ...}``.
MetricsFn = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]

#: A term added to the training loss, computed from the model after its forward pass.
ExtraLossFn = Callable[[nn.Module], torch.Tensor]

LR_SCHEDULES = ("constant", "step", "plateau")


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; an explicit device must exist here."""
    from tuneflow.errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device is {device!r}, but must be auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device is {device!r}, but this machine has no CUDA GPU; use device=auto or cpu")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise ConfigError(f"device is {device!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return chosen


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def make_scheduler(
    optimizer: torch.optim.Optimizer, params: Mapping[str, Any]
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    schedule = str(params.get("lr_schedule", "constant"))
    decay = float(params.get("lr_decay", 0.5))
    if schedule == "constant":
        return None
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=int(params.get("lr_step_epochs", 5)), gamma=decay
        )
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=decay, patience=int(params.get("lr_plateau_patience", 2))
        )
    raise ValueError(f"lr_schedule is {schedule!r}, but must be one of {', '.join(LR_SCHEDULES)}")


def fit(
    model: nn.Module,
    loss_fn: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    params: Mapping[str, Any],
    report: Reporter,
    metrics_fn: MetricsFn,
    *,
    device: str,
    monitor: str = "val_loss",
    extra_loss: ExtraLossFn | None = None,
) -> tuple[nn.Module, dict[str, float], int]:
    """Train ``model`` and return it with the best epoch's metrics and the number of epochs run.

    ``monitor`` (always minimised) drives early stopping and the plateau schedule.
    ``report`` is called after every epoch and may raise to stop training (pruning).
    ``extra_loss(model)``, if given, is added to every training batch's loss right after the forward
    pass (a penalty the model recorded during it, such as attention regularisation).
    """
    torch_device = resolve_device(device)
    model = model.to(torch_device)
    x_train, y_train = (torch.as_tensor(a).to(torch_device) for a in train)
    x_val, y_val = (torch.as_tensor(a).to(torch_device) for a in val)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=float(params["lr"]),
        weight_decay=float(params.get("weight_decay", 0.0)),
    )
    scheduler = make_scheduler(optimizer, params)
    batch_size = int(params.get("batch_size", 64))
    patience = int(params.get("patience", 5))
    epochs = int(params.get("epochs", 20))

    best_score, best_state, best_metrics, stale_epochs = math.inf, None, {}, 0
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), device=torch_device)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            if extra_loss is not None:
                loss = loss + extra_loss(model)
            loss.backward()
            optimizer.step()

        model.eval()
        with torch.no_grad():
            metrics = metrics_fn(model(x_val), y_val)
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        report(epoch, metrics)

        score = metrics[monitor]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        elif scheduler is not None:
            scheduler.step()
        if score < best_score:
            best_score, best_metrics, stale_epochs = score, dict(metrics), 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale_epochs += 1
            if stale_epochs >= patience:
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    best_metrics.pop("lr", None)
    return model.cpu(), best_metrics, epoch


def plain(value: torch.Tensor) -> float:
    """A float32 scalar as the Python float of its shortest decimal: ``.item()`` widens float32 0.98 to
    0.9800000190734863, the noise MLflow, the CSV and the report would show; float32 holds no more digits."""
    return float(str(value.detach().cpu().to(torch.float32).numpy()))


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    loss = plain(nn.functional.cross_entropy(logits, targets))
    # Counted exactly: 441 right of 450 is 0.98, not float32's mean.
    accuracy = int((logits.argmax(dim=1) == targets).sum().item()) / len(targets)
    return {"val_loss": loss, "val_accuracy": accuracy}


def regression_metrics(target_std: float, unit_metric: str = "val_mae") -> MetricsFn:
    """Metrics of a regressor trained on a standardised target.

    ``val_loss`` is the MSE in standardised units (what training minimises); ``unit_metric`` is the
    mean absolute error back in the target's own units (``target_std`` times the standardised MAE),
    the number a user reads (degrees C for temperatures).
    """

    def metrics(predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        error = predictions.reshape(targets.shape) - targets
        return {
            "val_loss": plain(error.pow(2).mean()),
            unit_metric: plain(error.abs().mean() * float(target_std)),
        }

    return metrics
