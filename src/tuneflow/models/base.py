"""The one small contract every architecture implements.

A trainer is plain PyTorch / LightGBM code. It knows neither Optuna nor MLflow: it receives its
hyperparameters as a mapping, a dataset, and a ``report`` hook it calls once per epoch (or per batch of
boosting rounds) with its validation metrics. The hook may raise to stop training early (that is how
pruning reaches the loop); a trainer lets that exception propagate.

Adding an architecture = one module exposing ``train(...) -> TrainResult`` plus one file in
``conf/arch/`` that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: ``report(step, metrics)``: called after every epoch with validation metrics such as
#: ``{"val_loss": 0.31, "val_accuracy": 0.93}``. May raise (for example ``optuna.TrialPruned``).
Reporter = Callable[[int, Mapping[str, float]], None]

#: How a trained model is saved: the MLflow flavor that knows the model's type (``pytorch``,
#: ``lightgbm``, ``sklearn``, ...; ``pyfunc`` for any object with ``predict``; None = from its type).
Flavor = str | None


@dataclass
class TrainResult:
    """What one training run hands back to the trial runner."""

    #: Final validation metrics (the best epoch's, when early stopping restored it).
    metrics: dict[str, float]
    #: The trained model object (``torch.nn.Module`` or ``lightgbm.Booster``).
    model: Any
    #: The MLflow flavor that saves ``model``.
    flavor: Flavor
    #: Epochs (or boosting rounds) actually run.
    epochs_run: int
    #: A few input rows, so the saved model documents its input shape.
    input_example: Any | None = None
    #: Anything else worth recording as a metric (e.g. ``best_epoch``).
    extra: dict[str, float] = field(default_factory=dict)


class Trainer(Protocol):
    """``train(params, data, report, seed=..., device=...) -> TrainResult``."""

    def __call__(
        self,
        params: Mapping[str, Any],
        data: Any,
        report: Reporter,
        *,
        seed: int,
        device: str,
    ) -> TrainResult: ...


def no_report(step: int, metrics: Mapping[str, float]) -> None:
    """A reporter for plain training runs outside a study."""
